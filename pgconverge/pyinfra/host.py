"""Where pyinfra meets the engine: psql through a pyinfra host, and the lines an operation prints."""

from __future__ import annotations

import shlex
import sys
from typing import Any

import click
from pyinfra.api import FunctionCommand, OperationError, StringCommand
from pyinfra.api.state import StateStage

from pgconverge.cli.main import format_plan
from pgconverge.exec.runner import Conn, Runner, passfile_line, shell_command
from pgconverge.runbook.shell import pg_tool
from pgconverge.planning.steps import Plan


class HostRunner(Runner):
    """psql through the pyinfra host's connector (SSH or local alike).

    A password never travels in a command: it is streamed on stdin into a private
    (umask 077) password file on the host, removed by ``close()``.
    """

    def __init__(self, host_: Any, conn: Conn, psql: str = "psql"):
        self.host = host_
        self.conn = conn
        self.psql = psql
        self.passfile: str | None = None

    def for_database(self, dbname: str) -> HostRunner:
        other = HostRunner(self.host, self.conn.with_database(dbname), self.psql)
        other.passfile = self.passfile
        return other

    def env(self) -> dict[str, str]:
        env = dict(self.conn.env)
        if self.conn.password is not None:
            if self.passfile is None:
                ok, out = self.host.run_shell_command(
                    StringCommand("umask 077 && f=$(mktemp) && cat > \"$f\" && echo \"$f\""),
                    _stdin=passfile_line(self.conn.password))
                if not ok:
                    raise OperationError(f"cannot write a password file on {self.host.name}")
                self.passfile = out.stdout_lines[-1].strip()
            env["PGPASSFILE"] = self.passfile
        return env

    def command(self, args: list[str]) -> str:
        return shell_command(self.env(), [*self.conn.args(), *args], self.psql)

    def exec_tool(self, tool, args):
        ok, out = self.host.run_shell_command(StringCommand(pg_tool(self.env(), tool, [*self.conn.args(), *args])))
        return (0 if ok else 1), "\n".join(out.stdout_lines), "\n".join(out.stderr_lines)

    def exec_psql(self, args, stdin, on_line=None):
        ok, out = self.host.run_shell_command(StringCommand(self.command(args)), _stdin=stdin)
        stdout = "\n".join(out.stdout_lines)
        if on_line:
            for line in out.stdout_lines:
                on_line(line)
        return (0 if ok else 1), stdout, "\n".join(out.stderr_lines)

    def close(self) -> None:
        if self.passfile:
            self.host.run_shell_command(StringCommand(f"rm -f {shlex.quote(self.passfile)}"))
            self.passfile = None


def echo(text: str) -> None:
    # stderr: pyinfra keeps stdout for its own progress lines
    click.echo(text, err=True)


def show_plan(host_name: str, database: str, plan: Plan, refused: list, colours: bool | None = None) -> None:
    colours = sys.stderr.isatty() if colours is None else colours
    head = click.style(f"--> pgconverge plan for {database} on {host_name}", bold=True) if colours else \
        f"--> pgconverge plan for {database} on {host_name}"
    echo(head)
    echo(format_plan(plan, colours))
    for h in refused:
        line = f"-- REFUSED by policy: {h.name}: {h.reason}"
        echo(click.style(line, fg="red", bold=True) if colours else line)


def say(host_: Any, text: str, fg: str | None = None, bold: bool = False) -> None:
    """One line of progress, prefixed with the host (stderr, like pyinfra's own)."""
    colours = sys.stderr.isatty()
    for line in text.splitlines() or [""]:
        shown = click.style(line, fg=fg, bold=bold) if colours and (fg or bold) else line
        echo(f"    {host_.print_prefix}{shown}")


def executing(host_: Any) -> bool:
    """True in pyinfra's execute stage (the body of an operation also runs at prepare time)."""
    return host_.state.is_executing or host_.state.current_stage == StateStage.Execute


def fail_command(message: str) -> FunctionCommand:
    """A command that reports `message` and fails this host (other hosts carry on), without the
    traceback pyinfra prints for an exception raised inside an operation."""

    def fail(state, host):  # noqa: ARG001 (pyinfra passes state and host by name)
        say(host, message, fg="red", bold=True)
        return False

    return FunctionCommand(fail, (), {})


def refuse(run_now: bool, message: str):
    """Fail this host: at prepare time say why (pyinfra then counts a change), at execute time fail."""
    if run_now:
        yield fail_command(message)
    else:
        echo(click.style(f"-- {message}", fg="red", bold=True))
        yield StringCommand("#", "pgconverge", "refuses")
