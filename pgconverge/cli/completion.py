"""``pgconverge completion bash|zsh``: a shell completion script, made from the argument parser
itself (so it cannot fall behind the options), with no dependency.

It completes the commands, each command's options, file and folder names where an option takes
one, the environments of ./inventory/ after ``--env`` and ``--from``, and the choices of options
that have them.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

SHELLS = ("bash", "zsh")
# option destinations whose value is a file, a folder or an environment's name
_FILES = frozenset({"sql", "script", "smoke", "out", "key", "allowed_signers"})
_FOLDERS = frozenset({"root"})
_ENVIRONMENTS = frozenset({"env", "from_env"})


def add_parser(sub: Any) -> None:
    p = sub.add_parser("completion", help="print a shell completion script (bash or zsh)",
                       description="Print a completion script. bash: eval \"$(pgconverge completion bash)\" in "
                                   "~/.bashrc; zsh: eval \"$(pgconverge completion zsh)\" in ~/.zshrc.")
    p.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    p.set_defaults(env_command=main)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps its subparsers here; there is no public accessor
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return [o for a in parser._actions if a.help != argparse.SUPPRESS for o in a.option_strings]


def _value_cases(name: str, parser: argparse.ArgumentParser) -> list[str]:
    """bash `case` branches for the values of this command's options (and its positional choices)."""
    cases = []
    for a in parser._actions:
        if not a.option_strings or a.nargs == 0 or a.help == argparse.SUPPRESS:
            continue
        if a.dest in _FILES:
            reply = 'COMPREPLY=($(compgen -f -- "$cur"))'
        elif a.dest in _FOLDERS:
            reply = 'COMPREPLY=($(compgen -d -- "$cur"))'
        elif a.dest in _ENVIRONMENTS:
            reply = 'COMPREPLY=($(compgen -W "$(_pgconverge_environments)" -- "$cur"))'
        elif a.choices:
            reply = f'COMPREPLY=($(compgen -W "{" ".join(map(str, a.choices))}" -- "$cur"))'
        else:
            reply = "COMPREPLY=()"  # a value nobody can guess: offer no option in its place
        pattern = "|".join(f"{name}:{o}" for o in a.option_strings)
        cases.append(f"        {pattern}) {reply}; return ;;")
    return cases


def bash_script(parser: argparse.ArgumentParser) -> str:
    commands = _subcommands(parser)
    value_cases: list[str] = []
    option_cases: list[str] = []
    for name, sub in commands.items():
        value_cases += _value_cases(name, sub)
        positional = [str(c) for a in sub._actions if not a.option_strings and a.choices for c in a.choices]
        words = " ".join(_options(sub) + positional)
        option_cases.append(f'        {name}) words="{words}" ;;')
    top = " ".join(list(commands) + _options(parser))
    return "\n".join([
        "# pgconverge completion (bash): eval \"$(pgconverge completion bash)\"",
        "_pgconverge_environments() {",
        "    local f",
        "    for f in inventory/*.py; do",
        '        [ -e "$f" ] || continue',
        '        f=${f##*/}; echo "${f%.py}"',
        "    done",
        "}",
        "_pgconverge() {",
        '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" cmd="" words="" i',
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        '        case "${COMP_WORDS[i]}" in -*) ;; *) cmd="${COMP_WORDS[i]}"; break ;; esac',
        "    done",
        '    if [ -z "$cmd" ]; then',
        f'        COMPREPLY=($(compgen -W "{top}" -- "$cur")); return',
        "    fi",
        '    case "$cmd:$prev" in',
        *value_cases,
        "    esac",
        '    case "$cmd" in',
        *option_cases,
        "    esac",
        '    COMPREPLY=($(compgen -W "$words" -- "$cur"))',
        "}",
        "complete -F _pgconverge pgconverge",
        "",
    ])


def zsh_script(parser: argparse.ArgumentParser) -> str:
    # zsh runs bash completion functions through bashcompinit: one script to keep right
    return "\n".join(["#compdef pgconverge", "# pgconverge completion (zsh): eval \"$(pgconverge completion zsh)\"",
                      "autoload -U +X bashcompinit && bashcompinit", bash_script(parser)])


def main(args: argparse.Namespace) -> int:
    parser = args.root_parser  # the whole command line's parser (cli/main.py sets it)
    sys.stdout.write(bash_script(parser) if args.shell == "bash" else zsh_script(parser))
    return 0
