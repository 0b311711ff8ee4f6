"""The deploy runbook as pyinfra operations, one per step:

    preflight -> gate -> backup -> extensions -> data_blocks(before) -> schema -> data_blocks(after)
    -> analyze -> smoke -> record

Each is an operation of its own: its own name, its own result (changed or no change) and its own line
in pyinfra's summary; a deploy file calls them in the order they run, and may put its own operations
between them (an application put in maintenance mode around the schema change).

What they share (the preflight report, the plan, the gate's verdict; then the ledger row and the
backup taken) is one ``runbook.deploy.DeployRun`` per host, database and phase: computed once when
pyinfra prepares the deploy (what ``--dry`` shows) and once when it executes it (the target may have
moved in between: the execute phase refuses a plan other than the one shown).

pyinfra runs an operation's body at prepare time only to detect changes, and not at all under
``-y``. The read-only checks must still refuse a host before anything runs, and a dry run must fail
when the real run would be refused, so each operation also does its share of the checks when the
deploy file calls it (``_when_called``). A refusal is printed once, by the operation of the step that
refuses (preflight, or the gate: policy, backups, the sign-off, check mode), as what refused, why and
the remedy; the host is then failed without pyinfra's "No hosts remaining!": a refusal is no crash.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable

from pyinfra import host
from pyinfra.api import FunctionCommand, StringCommand, operation
from pyinfra.connectors.util import CommandOutput

from pgconverge.pyinfra import smoke_commands
from pgconverge.pyinfra.host import (PyinfraConsole, PyinfraShell, data_origin, executing, fail_command,
                                     host_settings, say)
from pgconverge.runbook import deploy as runbook
from pgconverge.runbook import gate
from pgconverge.runbook.database import Database
from pgconverge.runbook.deploy import GATE, PREFLIGHT, DeployRun, Refusal, ShownPlans
from pgconverge.runbook.settings import EnvSettings, label_of

__all__ = ["preflight", "gate_check", "backup", "extensions", "data_blocks", "schema", "analyze", "smoke",
           "record"]

# The steps in the order a deploy runs them; a refusal of a stage is reported by the first step from it on.
ORDER = ("preflight", "gate", "backup", "extensions", "data_before", "schema", "data_after", "analyze", "smoke",
         "record")
_STAGE_STEP = {PREFLIGHT: "preflight", GATE: "gate"}

# Plans shown at prepare time, by (host, database): the execute phase refuses a plan that moved.
_SHOWN: ShownPlans = {}


@dataclass
class Shared:
    """One database of one host in one phase (prepare or execute), as the deploy's operations see it."""

    label: str
    run: DeployRun | None
    refusal: Refusal | None
    announced: bool = False
    refused_at: str | None = None  # the step that refused the host at prepare time
    deferred: bool = False  # the database does not exist yet at prepare time: an earlier operation makes it
    metas: list = field(default_factory=list)  # its operations' results so far (prepare time)


# by (phase: executing or not, host name, the database spec)
_SHARED: dict[tuple[bool, str, str], Shared] = {}
# The database specs of the environments sign-offs take their evidence from, loaded once per run.
_EVIDENCE_SPECS: dict[str, list[str | dict]] = {}


def _evidence_specs(env: str) -> list[str | dict]:
    """The databases of inventory/<env>.py (the sign-off's staging), as the CLI's signoff reads them:
    pyinfra's own loader, in a child process (this one is in the middle of a pyinfra run)."""
    if env not in _EVIDENCE_SPECS:
        from pgconverge.pyinfra.inventory import load_hosts

        _EVIDENCE_SPECS[env] = [spec for h in load_hosts(env, ".") for spec in h.databases()]
    return _EVIDENCE_SPECS[env]


def restore_command(settings: EnvSettings):
    """How an operator restores one database of this environment with pyinfra."""

    def command(host_name: str, label: str, backup_path: str | None) -> str:
        chosen = f" --data pgconverge_backup={backup_path}" if backup_path else ""
        return (f"pyinfra inventory/{settings.env}.py restore.py --limit '{host_name}' "
                f"--data pgconverge_database={label}{chosen}")

    return command


def _spec_key(spec: str | dict) -> str:
    # in memory only; a URL string may hold a password, so the key is a hash of it
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def shared(host_: Any, database: str | dict, settings: EnvSettings | None, created_here: bool = False) -> Shared:
    """The phase's shared state of this database, computed by the first operation that asks.
    `created_here`: an earlier operation of this deploy creates the database, so at prepare time a
    database that does not exist yet is no refusal; everything is checked when the deploy runs."""
    run_now = executing(host_)
    key = (run_now, host_.name, _spec_key(database))
    found = _SHARED.get(key)
    if found is not None:
        return found
    label = label_of(database)
    try:
        settings = settings or host_settings(host_)
        db = Database(PyinfraShell(host_), PyinfraConsole(host_), database, settings)
    except Exception as e:  # a bad spec or sql/: this host is refused at its preflight
        found = Shared(label, None, Refusal(PREFLIGHT, "preflight", f"{label}: cannot start the deploy: {e}",
                                            "correct the group data or sql/ named above"))
    else:
        try:
            checked = runbook.check_deploy(db, run_now, _SHOWN, gate.reader_of(_evidence_specs))
        except Exception as e:
            db.close()
            found = Shared(db.label, None, Refusal(PREFLIGHT, "preflight", f"{db.label}: {e}"))
        else:
            found = Shared(db.label, DeployRun(db, checked, restore_command(settings)), checked.refusal)
            try:
                found.run.run_commands = smoke_commands.runner_for(
                    host_, settings, data_origin(host_)(smoke_commands.KEY))
            except ValueError as e:  # a command's host is not in the inventory
                found.refusal = found.refusal or Refusal(PREFLIGHT, "preflight", f"{db.label}: {e}",
                                                         "correct the group data named above")
            r = found.refusal
            if created_here and not run_now and r and r.stage == PREFLIGHT and "does not exist" in r.why:
                say(host_, f"{db.label} does not exist yet: an earlier operation of this deploy creates it; "
                           "it is checked and planned when the deploy runs", fg="yellow")
                found = Shared(db.label, None, None, deferred=True)
    _SHARED[key] = found
    return found


def _fail_host_quietly(host_: Any) -> None:
    """Fail this host at prepare time. ``State.fail_hosts`` raises "No hosts remaining!" when it was
    the last one, which reads like a crash; a refusal is an answer, already printed."""
    state = host_.state
    state.failed_hosts.add(host_)
    state.active_hosts.discard(host_)


def _announce(host_: Any, s: Shared) -> None:
    r = s.refusal
    head = "pending changes (check mode)" if r.pending else f"REFUSED by {r.what}"
    say(host_, f"{head}: {r.text()}", fg="red", bold=True)
    s.announced = True


def _refuses_here(s: Shared, step: str) -> bool:
    """This step reports the host's refusal: it is the step of the refusing stage, or a later one (a
    deploy file that leaves that step out)."""
    return (s.refusal is not None and not s.announced
            and ORDER.index(step) >= ORDER.index(_STAGE_STEP[s.refusal.stage]))


def _when_called(step: str, database: str | dict, settings: EnvSettings | None,
                 created_here: bool = False) -> Shared | None:
    """At prepare time (also under -y, where pyinfra does not run operation bodies before executing):
    the checks, once per database, and the refusal reported by the step it belongs to."""
    if executing(host):
        return None
    s = shared(host, database, settings, created_here)
    if host not in host.state.active_hosts:
        return s if s.refused_at else None
    if _refuses_here(s, step):
        _announce(host, s)
        _fail_host_quietly(host)
        s.refused_at = step
    return s


def _settle(s: Shared | None, step: str, meta: Any) -> None:
    """A host refused at prepare time never executes; pyinfra would count each of its operations as an
    error. The summary tells the truth instead: the step that refused failed, the others changed
    nothing."""
    if s is None or meta is None or not hasattr(meta, "set_complete"):
        return
    if s.refused_at is None:
        s.metas.append(meta)
        return
    for m in [*s.metas, meta]:
        if not m.is_complete():
            m.set_complete(not (m is meta and step == s.refused_at), [], CommandOutput([]))
    s.metas.clear()


def _deploy_step(step: str) -> Callable[[Callable], Callable]:
    """A deploy operation: the pyinfra operation, plus its share of the checks when called."""

    def wrap(op: Callable) -> Callable:
        @functools.wraps(op)
        def call(*args: Any, **kwargs: Any):
            database = kwargs.get("database", args[0] if args else None)
            s = _when_called(step, database, kwargs.get("settings"), bool(kwargs.get("created_here")))
            meta = op(*args, **kwargs)
            _settle(s, step, meta)
            return meta

        call._inner = op._inner  # type: ignore[attr-defined]  (pyinfra's docs and nested calls use it)
        return call

    return wrap


def _body(step: str, database: str | dict, settings: EnvSettings | None):
    """What each deploy operation yields: nothing (no change), a description of the change (prepare
    time), the step run as a Python callback (execute time), or this host's failure."""
    run_now = executing(host)
    s = shared(host, database, settings)
    if s.refusal is not None:
        if run_now and _refuses_here(s, step):
            _announce(host, s)
            yield fail_command(f"{s.label}: stopped by {s.refusal.what}; nothing was changed")
        return
    if s.deferred:
        if step not in ("preflight", "gate"):
            yield StringCommand("#", "pgconverge", step, s.label + ":", "planned when the deploy runs")
        return
    run = s.run
    if step in ("preflight", "gate"):
        if step == "gate" and not run.checked.work:
            host.noop(f"database {s.label} is converged")
            say(host, f"nothing to do: {s.label} is converged")
        return
    if not run.has_work(step):
        return
    if not run_now:
        yield StringCommand("#", "pgconverge", step, s.label + ":", run.checked.summary())
        return

    def apply(state, host):  # noqa: ARG001 (pyinfra passes state and host by name)
        return runbook.run_part(run, step)

    yield FunctionCommand(apply, (), {})


_DATABASE_ARGS = """
    + database: connection, a URL or a dict of libpq keywords (``dbname``, ``service``, ``host``,
      ``port``, ``user``, ``passfile``) plus ``url_env`` and an optional ``name`` (the label used
      in plan files, backups and sign-offs); never a password
    + settings: an ``EnvSettings``; default: read from the host's ``pgconverge_*`` group data"""


@_deploy_step("preflight")
@operation(is_idempotent=True)
def preflight(database: str | dict, settings: EnvSettings | None = None, created_here: bool = False):
    """
    Preflight and plan (read-only): connection, server version, extensions and privileges, the plan
    with its hazards (proved on a copy of the target), plan files, and room for the backup.
    Fails the host (``--dry`` too) when a check fails or the plan cannot be made.

    + database: connection, a URL or a dict of libpq keywords plus ``url_env`` and ``name``
    + settings: an ``EnvSettings``; default: read from the host's ``pgconverge_*`` group data
    + created_here: an earlier operation of this deploy (``postgres.database``) creates the database:
      while it does not exist yet, the checks and the plan wait for the execute phase (``--dry``
      says so instead of refusing)

    **Example:**

    .. code:: python

        from pgconverge import operations as pgc

        pgc.preflight(name="Preflight app", database={"name": "app", "url_env": "STAGING_DATABASE_URL"})
    """
    yield from _body("preflight", database, settings)


@_deploy_step("gate")
@operation(is_idempotent=True)
def gate_check(database: str | dict, settings: EnvSettings | None = None):
    """
    The gate (read-only): the policy (``pgconverge_allow_hazards``, drops), backups for a plan that
    deletes data, check mode (``pgconverge_check``), the sign-off where ``pgconverge_require_signoff``
    is set, and that the plan is the one shown. Fails the host (``--dry`` too) when it refuses, naming
    the remedy.

    + database: connection, as for ``preflight``
    + settings: an ``EnvSettings``; default: from the host's group data

    **Example:**

    .. code:: python

        pgc.gate_check(name="Gate app", database={"name": "app", "url_env": "PRODUCTION_DATABASE_URL"})
    """
    yield from _body("gate", database, settings)


@_deploy_step("backup")
@operation(is_idempotent=False)
def backup(database: str | dict, settings: EnvSettings | None = None):
    """
    Open the run's ledger row (``running``) and take the backup: ``pg_dump`` on the host, verified,
    recorded with its size and sha256, old backups pruned. No change when there is nothing to do.

    + database: connection, as for ``preflight``
    + settings: an ``EnvSettings``; default: from the host's group data

    **Example:**

    .. code:: python

        pgc.backup(name="Back up app", database={"name": "app", "url_env": "STAGING_DATABASE_URL"})
    """
    yield from _body("backup", database, settings)


@_deploy_step("extensions")
@operation(is_idempotent=True)
def extensions(database: str | dict, settings: EnvSettings | None = None):
    """
    Create or update the extensions sql/ declares (the runbook's "enable pgcrypto"), ahead of the
    schema. No change when the plan has none, or when they must stay in the schema's order.

    + database: connection, as for ``preflight``
    + settings: an ``EnvSettings``; default: from the host's group data

    **Example:**

    .. code:: python

        pgc.extensions(name="Extensions of app", database={"name": "app", "url_env": "STAGING_DATABASE_URL"})
    """
    yield from _body("extensions", database, settings)


@_deploy_step("schema")
@operation(is_idempotent=True)
def schema(database: str | dict, settings: EnvSettings | None = None):
    """
    Converge the schema: the plan's steps (advisory lock, lock_timeout and retries, ``CONCURRENTLY``
    outside transactions), then a check that the database is at the desired schema.

    + database: connection, as for ``preflight``
    + settings: an ``EnvSettings``; default: from the host's group data

    **Example:**

    .. code:: python

        pgc.schema(name="Converge app", database={"name": "app", "url_env": "STAGING_DATABASE_URL"})
    """
    yield from _body("schema", database, settings)


def data_blocks(database: str | dict, settings: EnvSettings | None = None, when: str = "after", **kwargs: Any):
    """
    Run the pending one-time data blocks (``-- @data <name> before|after``) of one side of the
    schema change, each in its own transaction with its ledger row.

    + database: connection, as for ``preflight``
    + settings: an ``EnvSettings``; default: from the host's group data
    + when: ``"before"`` (before ``schema``: they see the old schema) or ``"after"``

    **Example:**

    .. code:: python

        pgc.data_blocks(name="Backfills of app", database={"name": "app", "url_env": "STAGING_DATABASE_URL"},
                        when="after")
    """
    if when not in ("before", "after"):
        raise ValueError(f"data_blocks(when={when!r}): expected 'before' or 'after'")
    op = _data_before if when == "before" else _data_after
    return op(database=database, settings=settings, **kwargs)


@_deploy_step("data_before")
@operation(is_idempotent=True)
def _data_before(database: str | dict, settings: EnvSettings | None = None):
    yield from _body("data_before", database, settings)


@_deploy_step("data_after")
@operation(is_idempotent=True)
def _data_after(database: str | dict, settings: EnvSettings | None = None):
    yield from _body("data_after", database, settings)


@_deploy_step("analyze")
@operation(is_idempotent=True)
def analyze(database: str | dict, settings: EnvSettings | None = None):
    """
    ``VACUUM (ANALYZE)`` of the tables the plan created or changed (``pgconverge_analyze``); a problem
    is a warning.

    + database: connection, as for ``preflight``
    + settings: an ``EnvSettings``; default: from the host's group data

    **Example:**

    .. code:: python

        pgc.analyze(name="Analyze app", database={"name": "app", "url_env": "STAGING_DATABASE_URL"})
    """
    yield from _body("analyze", database, settings)


@_deploy_step("smoke")
@operation(is_idempotent=False)
def smoke(database: str | dict, settings: EnvSettings | None = None):
    """
    The smoke checks of ``pgconverge_smoke`` (each ``.sql`` file one read-only query that returns no
    rows or only ``true``), then the commands of ``pgconverge_smoke_commands`` on the hosts they name
    (through those hosts' connectors). A failure fails the host, is recorded, and prints the restore
    command.

    + database: connection, as for ``preflight``
    + settings: an ``EnvSettings``; default: from the host's group data

    **Example:**

    .. code:: python

        pgc.smoke(name="Smoke checks of app", database={"name": "app", "url_env": "STAGING_DATABASE_URL"})
    """
    yield from _body("smoke", database, settings)


@_deploy_step("record")
@operation(is_idempotent=False)
def record(database: str | dict, settings: EnvSettings | None = None):
    """
    Finish the run's ledger row: ``converged`` or ``unchanged``, with the schema hash after the change
    and the smoke checks' results.

    + database: connection, as for ``preflight``
    + settings: an ``EnvSettings``; default: from the host's group data

    **Example:**

    .. code:: python

        pgc.record(name="Record app", database={"name": "app", "url_env": "STAGING_DATABASE_URL"})
    """
    yield from _body("record", database, settings)


def deploy_database(database: str | dict, settings: EnvSettings | None = None, label: str | None = None) -> None:
    """
    Every step of the runbook for one database, in order, each its own operation (what deploy.py
    does, for deploy files that need nothing in between).

    + database: connection, as for ``preflight``
    + settings: an ``EnvSettings``; default: from the host's group data
    + label: the database's name in the operations' names (default: its ``name``, else its dbname)

    **Example:**

    .. code:: python

        for spec in host_databases(host):
            pgc.deploy_database(spec, host_settings(host))
    """
    label = label or label_of(database)
    env = f" ({settings.env})" if settings else ""
    kw = dict(database=database, settings=settings)
    preflight(name=f"Preflight {label}{env}", **kw)
    gate_check(name=f"Gate {label}{env}", **kw)
    backup(name=f"Backup {label}{env}", **kw)
    extensions(name=f"Extensions {label}{env}", **kw)
    data_blocks(name=f"Data blocks before the schema {label}{env}", when="before", **kw)
    schema(name=f"Schema {label}{env}", **kw)
    data_blocks(name=f"Data blocks after the schema {label}{env}", when="after", **kw)
    analyze(name=f"Analyze {label}{env}", **kw)
    smoke(name=f"Smoke checks {label}{env}", **kw)
    record(name=f"Record {label}{env}", **kw)
