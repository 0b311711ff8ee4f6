"""Where pyinfra meets the runbook: a Shell over the host's connector, psql through it, and the
lines an operation prints."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from typing import Any

import click
from pyinfra.api import FunctionCommand, StringCommand
from pyinfra.api.state import StateStage
from pyinfra.context import ContextObject, ctx_config, ctx_host

from pgconverge.exec.runner import Conn
from pgconverge.planning.steps import Plan
from pgconverge.runbook.settings import EnvSettings, database_specs
from pgconverge.runbook.shell import Result, ShellRunner
from pgconverge.runbook.style import format_plan, paint, use_colour


class PyinfraShell:
    """``runbook.shell.Shell`` over ``host.run_shell_command`` (SSH, @local, @pglocal alike).
    pyinfra reports success or failure only: a failed command has exit code 1."""

    def __init__(self, host_: Any):
        # pyinfra's host and config are greenlet-local (``pyinfra.host`` is a proxy of the current
        # one): a command run from another greenlet (the progress watcher's thread, under gevent)
        # runs on the real host, with the config of the operation that made this shell
        self.host = host_._get_module() if isinstance(host_, ContextObject) else host_
        self._config = ctx_config.get()

    @property
    def name(self) -> str:
        return self.host.name

    def run(self, command: str, stdin: str | None = None) -> Result:
        kwargs = {"_stdin": stdin} if stdin is not None else {}
        with ExitStack() as context:
            if ctx_host.get() is None:
                context.enter_context(ctx_host.use(self.host))
                if self._config is not None:
                    context.enter_context(ctx_config.use(self._config))
            ok, out = self.host.run_shell_command(StringCommand(command), **kwargs)
        return Result(0 if ok else 1, list(out.stdout_lines), list(out.stderr_lines))


class PyinfraConsole:
    """``runbook.shell.Console`` for a pyinfra host: lines prefixed like pyinfra's own, on stderr."""

    def __init__(self, host_: Any):
        self.host = host_

    def say(self, text: str, fg: str | None = None, bold: bool = False) -> None:
        say(self.host, text, fg=fg, bold=bold)

    def ask(self, question: str) -> str | None:
        if not sys.stdin.isatty():
            return None
        return click.prompt(f"{self.host.print_prefix}{question}", default="", show_default=False, err=True)

    def show_plan(self, database: str, plan: Plan, refused: list) -> None:
        # the deploy's refusal follows, once, with the remedies: the plan only marks the hazards
        show_plan(self.host.name, database, plan, refused, refused_label="not allowed by policy")


class HostRunner(ShellRunner):
    """psql through the pyinfra host's connector (SSH or local alike).

    A password never travels in a command: it is streamed on stdin into a private password
    file on the host that lives until psql has connected; a psql whose caller died is stopped
    (see ``exec.guard``).
    """

    def __init__(self, host_: Any, conn: Conn, psql: str = "psql"):
        super().__init__(PyinfraShell(host_), conn, psql)
        self.host = host_

    def _sibling(self, conn: Conn) -> HostRunner:
        return HostRunner(self.host, conn, self.psql)


def data_origin(host_: Any):
    """Where each of the host's data keys was set, for the messages of settings validation:
    --data, the host's own entry in the inventory, a group's group_data file, or all.py."""
    inventory = host_.inventory

    def origin(key: str) -> str:
        if key in inventory.get_override_data():
            return "--data on the command line"
        if key in inventory.get_host_data(host_.name):
            return f"the inventory entry of host {host_.name}"
        for group in host_.groups:
            if key in inventory.get_group_data(group):
                return f"group_data/{group}.py (group {group} of host {host_.name})"
        if key in inventory.get_data():
            return "group_data/all.py"
        return f"the data of host {host_.name}"

    return origin


def host_settings(host_: Any) -> EnvSettings:
    """The host's ``pgconverge_*`` data, validated (a bad key names the file that set it)."""
    return EnvSettings.from_data(host_.data, data_origin(host_))


def host_databases(host_: Any) -> list[str | dict]:
    """The host's ``pgconverge_databases``, validated (see ``runbook.settings.database_specs``)."""
    return database_specs(host_.data, data_origin(host_))


def echo(text: str) -> None:
    # stderr: pyinfra keeps stdout for its own progress lines
    click.echo(text, err=True)


def show_plan(host_name: str, database: str, plan: Plan, refused: list, colours: bool | None = None,
              refused_label: str = "REFUSED by policy") -> None:
    colours = use_colour() if colours is None else colours
    echo(paint(f"--> pgconverge plan for {database} on {host_name}", colours, bold=True))
    echo(format_plan(plan, colours))
    for h in refused:
        echo(paint(f"-- {refused_label}: {h.name}: {h.reason}", colours, fg="red", bold=True))


def say(host_: Any, text: str, fg: str | None = None, bold: bool = False) -> None:
    """One line of progress, prefixed with the host (stderr, like pyinfra's own)."""
    colours = use_colour()
    for line in text.splitlines() or [""]:
        echo(f"    {host_.print_prefix}{paint(line, colours, fg=fg, bold=bold)}")


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
        echo(paint(f"-- {message}", use_colour(), fg="red", bold=True))
        yield StringCommand("#", "pgconverge", "refuses")
