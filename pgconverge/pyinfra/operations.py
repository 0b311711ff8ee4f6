"""pyinfra operations: converge databases through the host's own psql.

An operation body runs twice: at prepare time up to its first ``yield`` (pyinfra
asks "would it change anything?"), and again from the start at execute time.
So ``converge`` computes the plan before its first yield, prints it (that is what
``--dry`` shows), remembers its hash, and at execute time refuses to run when
the recomputed plan differs: the target changed under us.
"""

from __future__ import annotations

import shlex
from typing import Any, Callable

from pyinfra import host
from pyinfra.api import FunctionCommand, StringCommand, operation

from pgconverge.api import Engine, Options
from pgconverge.exec.progress import LineReporter, run_watched
from pgconverge.exec.script import render_script
from pgconverge.planning.steps import Plan
from pgconverge.errors import PlanError
from pgconverge.exec.runner import PsqlError, conn_from_spec
from pgconverge.catalog.shadow import default_cache_dir
from pgconverge.pyinfra.host import HostRunner, executing, fail_command, refuse, say, show_plan
from pgconverge.source import SourceError, load_source

__all__ = ["converge", "deploy", "restore", "drill", "refresh", "preflight", "gate_check", "backup",
           "extensions", "data_blocks", "schema", "analyze", "smoke", "record", "deploy_database"]

# Plans shown at prepare time, by (host, database): the execute stage must match them.
_SHOWN: dict[tuple[str, str], str] = {}


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
    lock_deadline: str | None = None,
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
    + lock_timeout: how long each attempt of a step waits for its lock before it is rolled back,
      pauses (jittered backoff) and tries again; default ``"500ms"``
    + lock_deadline: how long a step keeps trying, pauses included, before the run fails naming
      the sessions that hold the lock; default ``"60s"``
    + statement_timeout: per step, default ``"30min"``
    + lock_retries: at most this many retries of a step (default: as many as fit the deadline)
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
    try:
        conn = conn_from_spec(database, "converge(database=...)")
    except ValueError as e:  # an unknown option, an unset url_env: a message for this host, not a traceback
        yield from refuse(executing(host), f"converge: {e}; nothing was run")
        return
    run_now = executing(host)
    try:
        options = _options(dict(
            allow_hazards=allow_hazards, drops=drops, only_schemas=only_schemas, exclude_schemas=exclude_schemas,
            compare_extension_versions=compare_extension_versions, lock_timeout=lock_timeout,
            lock_deadline=lock_deadline, statement_timeout=statement_timeout, retries=lock_retries))
    except ValueError as e:  # a misspelt duration: this host fails with the setting's name, before anything
        yield from refuse(run_now, f"{conn.describe()}: {e}; nothing was run")
        return
    runner = HostRunner(host, conn, psql)
    # parsed once per sql/ content: the body runs at plan and at execute time, for every database
    engine = Engine(runner, load_source(sql, cache_dir=default_cache_dir()), options)
    key = (host.name, conn.describe())
    try:
        try:
            plan = engine.plan()
        except (SourceError, PlanError, PsqlError, ValueError) as e:
            # bad sql/, an unsupported kind, an edited data block: this host fails, with the cause
            yield from refuse(run_now, f"{conn.describe()}: {e}; nothing was run")
            return
        refused = engine.policy(plan).refused(plan.hazards)
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
            yield from refuse(run_now, problem)
            return
        if not run_now:
            # prepare stage: this yield only tells pyinfra a change is coming; the generator
            # is not resumed, so tidy up now rather than at garbage collection
            runner.close()
            yield StringCommand(psql, "# apply", str(len(plan.steps)), "step(s) to", shlex.quote(conn.describe()))
            return
        script = render_script(plan, engine.options.settings)

        def run(state, host):  # noqa: ARG001 (pyinfra passes state and host by name)
            # a callback rather than a command: the password (prepended to psql's stdin) never
            # enters pyinfra's state, where a debug print could show a command's stdin
            try:
                # long steps report while they run, each step's time at the end (exec.progress)
                run_watched(runner, plan, script, LineReporter(lambda text: say(host, text)))
            except PsqlError as e:
                say(host, f"{conn.describe()}: {e}", fg="red", bold=True)
                return False
            return True

        yield FunctionCommand(run, (), {})
        after = engine.plan()
        if not after.is_empty:
            yield fail_command(f"{conn.describe()}: did not converge; still pending:\n{after.to_sql()}")
    finally:
        runner.close()


# The runbook's operations, importable from here like every other operation of pgconverge.
from pgconverge.pyinfra.runbook import deploy, drill, refresh, restore  # noqa: E402,F401
from pgconverge.pyinfra.deploy_steps import (  # noqa: E402,F401
    analyze, backup, data_blocks, deploy_database, extensions, gate_check, preflight, record, schema, smoke)
