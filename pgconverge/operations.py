"""pyinfra operations: converge databases through the host's own psql.

An operation body runs twice: at prepare time up to its first ``yield`` (pyinfra
asks "would it change anything?"), and again from the start at execute time.
So ``converge`` computes the plan before its first yield, prints it (that is what
``--dry`` shows), remembers its hash, and at execute time refuses to run when
the recomputed plan differs: the target changed under us.
"""

from __future__ import annotations

import shlex
import sys
from typing import Any, Callable

import click
from pyinfra import host
from pyinfra.api import FunctionCommand, OperationError, StringCommand, operation
from pyinfra.api.state import StateStage

from .api import Engine, Options
from .cli import format_plan
from .executor import render_script
from .planner import Plan, PlanError
from .runner import Conn, PsqlError, Runner, conn_from_spec, passfile_line, shell_command
from .shadow import default_cache_dir
from .source import SourceError, load_source

# Plans shown at prepare time, by (host, database): the execute stage must match them.
_SHOWN: dict[tuple[str, str], str] = {}


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
        return shell_command(self.env(), args, self.psql)

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


def _echo(text: str) -> None:
    # stderr: pyinfra keeps stdout for its own progress lines
    click.echo(text, err=True)


def show_plan(host_name: str, database: str, plan: Plan, refused: list, colours: bool | None = None) -> None:
    colours = sys.stderr.isatty() if colours is None else colours
    head = click.style(f"--> pgconverge plan for {database} on {host_name}", bold=True) if colours else \
        f"--> pgconverge plan for {database} on {host_name}"
    _echo(head)
    _echo(format_plan(plan, colours))
    for h in refused:
        line = f"-- REFUSED by policy: {h.name}: {h.reason}"
        _echo(click.style(line, fg="red", bold=True) if colours else line)


def say(host_: Any, text: str, fg: str | None = None, bold: bool = False) -> None:
    """One line of progress, prefixed with the host (stderr, like pyinfra's own)."""
    colours = sys.stderr.isatty()
    for line in text.splitlines() or [""]:
        shown = click.style(line, fg=fg, bold=bold) if colours and (fg or bold) else line
        _echo(f"    {host_.print_prefix}{shown}")


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


def _refuse(run_now: bool, message: str):
    """Fail this host: at prepare time say why (pyinfra then counts a change), at execute time fail."""
    if run_now:
        yield fail_command(message)
    else:
        _echo(click.style(f"-- {message}", fg="red", bold=True))
        yield StringCommand("#", "pgconverge", "refuses")


def _options(settings: dict[str, Any]) -> Options:
    return Options.build(**{k: v for k, v in settings.items() if v is not None})


@operation(is_idempotent=True)
def converge(
    database: str | dict,
    sql: str | list[str] = "sql/schema",
    allow_hazards: str | list[str] | None = None,
    drops: list[str] | None = None,
    only_schemas: list[str] | None = None,
    exclude_schemas: list[str] | None = None,
    compare_extension_versions: bool = False,
    lock_timeout: str | None = None,
    statement_timeout: str | None = None,
    lock_retries: int | None = None,
    check: bool = False,
    psql: str = "psql",
    on_plan: Callable[[Plan], None] | None = None,
):
    """
    Converge one database to the schema declared in ``sql``.

    + database: connection, a URL or a dict of libpq keywords (``dbname``, ``service``, ``host``,
      ``port``, ``user``, ``passfile``) plus ``url_env``, the name of an environment variable
      that holds the URL; never a password
    + sql: ``.sql`` file or folder (or a list) holding the desired state
    + allow_hazards: hazard names (or ``"all"``) this run may carry; others refuse the plan
    + drops: object ids that may be dropped, e.g. ``table:public.legacy``
    + only_schemas / exclude_schemas: schema scoping
    + compare_extension_versions: also converge extension versions
    + lock_timeout / statement_timeout: per step, e.g. ``"2s"`` / ``"30min"``
    + lock_retries: how often a step whose lock was not granted within lock_timeout is
      retried (rolled back, then again after a backoff); default 5
    + check: fail when changes are pending, changing nothing (CI drift check)
    + psql: the psql binary on the host
    + on_plan: called with the plan at prepare time (used by the deploy to write plan files)

    **Example:**

    .. code:: python

        from pgconverge import operations as pgc

        pgc.converge(
            name="Converge the app database",
            database={"service": "app_staging"},
            sql="sql/schema",
            allow_hazards=["index_build"],
        )
    """
    conn = conn_from_spec(database)
    runner = HostRunner(host, conn, psql)
    # parsed once per sql/ content: the body runs at plan and at execute time, for every database
    engine = Engine(runner, load_source(sql, cache_dir=default_cache_dir()), _options(dict(
        allow_hazards=allow_hazards, drops=drops, only_schemas=only_schemas, exclude_schemas=exclude_schemas,
        compare_extension_versions=compare_extension_versions, lock_timeout=lock_timeout,
        statement_timeout=statement_timeout, retries=lock_retries)))
    key = (host.name, conn.describe())
    run_now = executing(host)
    try:
        try:
            plan = engine.plan()
        except (SourceError, PlanError, PsqlError, ValueError) as e:
            # bad sql/, an unsupported kind, an edited data block: this host fails, with the cause
            yield from _refuse(run_now, f"{conn.describe()}: {e}; nothing was run")
            return
        refused = engine.policy().refused(plan.hazards)
        if not run_now or key not in _SHOWN:
            # (pyinfra -y skips change detection: the plan is first seen at execute time)
            show_plan(host.name, conn.describe(), plan, refused)
        if not run_now:
            _SHOWN[key] = plan.plan_hash
            if on_plan:
                on_plan(plan)
        if plan.is_empty:
            host.noop(f"database {conn.describe()} is converged")
            return
        problem = None
        if run_now and _SHOWN.get(key, plan.plan_hash) != plan.plan_hash:
            problem = (f"{conn.describe()}: the target changed between the plan shown and now; nothing was run. "
                       "Run again to review the new plan.")
        elif check:
            problem = (f"{conn.describe()}: {len(plan.steps)} change(s) and {len(plan.data_blocks)} data block(s) "
                       "pending (check mode)")
        elif refused:
            problem = f"{conn.describe()}: refused, nothing was run: " + "; ".join(
                f"{h.name}: {h.reason}" for h in refused)
        if problem:
            yield from _refuse(run_now, problem)
            return
        if not run_now:
            # prepare stage: this yield only tells pyinfra a change is coming; the generator
            # is not resumed, so tidy up now rather than at garbage collection
            runner.close()
            yield StringCommand(psql, "# apply", str(len(plan.steps)), "step(s) to", shlex.quote(conn.describe()))
            return
        script = render_script(plan, engine.options.settings)
        yield StringCommand(runner.command([]), _stdin=script)
        after = engine.plan()
        if not after.is_empty:
            yield fail_command(f"{conn.describe()}: did not converge; still pending:\n{after.to_sql()}")
    finally:
        runner.close()


def __getattr__(name: str):
    # The runbook operations (deploy, restore, drill) live in runbook.py, which imports this
    # module: resolved on first use so that either module may be imported first.
    if name in ("deploy", "restore", "drill"):
        from . import runbook

        return getattr(runbook, name)
    raise AttributeError(name)
