"""The command line itself: --version, help text on every option, shell completion."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pgconverge
from pgconverge.cli.completion import _subcommands
from pgconverge.cli.main import build_parser

PGCONVERGE = str(Path(sys.executable).parent / "pgconverge")


def test_version() -> None:
    done = subprocess.run([PGCONVERGE, "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == f"pgconverge {pgconverge.__version__}"


def test_every_option_and_command_has_help_text() -> None:
    parser = build_parser()
    missing = []
    for name, sub in {"": parser, **_subcommands(parser)}.items():
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
                continue  # the commands are checked below; a suppressed option is hidden on purpose
            if not (action.help or "").strip():
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            assert all((c.help or "").strip() for c in action._choices_actions)
    for command in ("plan", "apply", "history", "signoff", "completion"):
        done = subprocess.run([PGCONVERGE, command, "--help"], capture_output=True, text=True)
        assert done.returncode == 0 and "usage: pgconverge " + command in done.stdout


def _complete(script: str, words: list[str], cwd: Path) -> list[str]:
    """COMPREPLY of the completion function for the command line `words` (the last one being typed)."""
    line = " ".join(f"'{w}'" for w in words)
    program = f"{script}\nCOMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; _pgconverge; printf '%s\\n' \"${{COMPREPLY[@]}}\""
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return [w for w in done.stdout.splitlines() if w]


def test_bash_completion_completes_commands_options_and_environments(tmp_path) -> None:
    script = subprocess.run([PGCONVERGE, "completion", "bash"], capture_output=True, text=True, check=True).stdout
    (tmp_path / "inventory").mkdir()
    for env in ("staging", "production"):
        (tmp_path / "inventory" / f"{env}.py").write_text(f"{env} = ['@local']\n")
    (tmp_path / "schema.sql").write_text("")
    assert _complete(script, ["pgconverge", "pl"], tmp_path) == ["plan"]
    assert set(_complete(script, ["pgconverge", ""], tmp_path)) >= {"plan", "apply", "history", "signoff",
                                                                     "completion", "--version"}
    assert _complete(script, ["pgconverge", "plan", "--scri"], tmp_path) == ["--script"]
    assert _complete(script, ["pgconverge", "apply", "--scri"], tmp_path) == []  # plan only
    assert sorted(_complete(script, ["pgconverge", "apply", "--env", ""], tmp_path)) == ["production", "staging"]
    assert _complete(script, ["pgconverge", "plan", "--sql", "sch"], tmp_path) == ["schema.sql"]
    assert _complete(script, ["pgconverge", "history", "--action", "res"], tmp_path) == ["restore"]
    assert _complete(script, ["pgconverge", "history", "--action", "ref"], tmp_path) == ["refresh"]
    assert _complete(script, ["pgconverge", "completion", "z"], tmp_path) == ["zsh"]
    assert _complete(script, ["pgconverge", "plan", "--lock-timeout", ""], tmp_path) == []  # a value, not an option


def test_zsh_completion_wraps_the_same_function() -> None:
    bash = subprocess.run([PGCONVERGE, "completion", "bash"], capture_output=True, text=True, check=True).stdout
    zsh = subprocess.run([PGCONVERGE, "completion", "zsh"], capture_output=True, text=True, check=True).stdout
    assert zsh.startswith("#compdef pgconverge\n") and "bashcompinit" in zsh and zsh.endswith(bash)
