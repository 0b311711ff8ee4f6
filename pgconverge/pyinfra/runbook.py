"""The runbooks as pyinfra operations: ``deploy``, ``restore``, ``drill`` and ``refresh``.

The runbooks themselves live in ``pgconverge.runbook`` (deploy.py, restore.py); these
operations only run them on a pyinfra host. An operation body runs at prepare time
(what ``--dry`` shows) and again at execute time; the read-only part of a runbook runs
both times, the changing part is yielded as a Python callback. A failure stops that host:
the callback prints what went wrong and what to do, and returns False (pyinfra marks the
host failed; other hosts go on).
"""

from __future__ import annotations

from typing import Any

from pyinfra import host
from pyinfra.api import FunctionCommand, StringCommand, operation

from pgconverge.pyinfra.host import PyinfraConsole, PyinfraShell, executing, fail_command, host_settings, say
from pgconverge.runbook import backup as backups
from pgconverge.runbook import gate
from pgconverge.runbook import deploy as deploy_runbook
from pgconverge.runbook import refresh as refresh_runbook
from pgconverge.runbook import restore as restore_runbook
from pgconverge.runbook.database import Database
from pgconverge.runbook.deploy import ShownPlans
from pgconverge.runbook.settings import EnvSettings, safe_name
from pgconverge.runbook.shell import LocalShell
from pgconverge.pyinfra.deploy_steps import _evidence_specs, restore_command

# Plans shown at prepare time, by (host, database): execute refuses when the plan moved.
_SHOWN: ShownPlans = {}


def _database(host_: Any, spec: str | dict, settings: EnvSettings) -> Database:
    return Database(PyinfraShell(host_), PyinfraConsole(host_), spec, settings)


def _cannot(run_now: bool, message: str, what: str):
    """This host fails with `message`: at execute time for real, at prepare time as a change to show."""
    if run_now:
        yield fail_command(message)
    else:
        say(host, message, fg="red")
        yield StringCommand("#", what, "will", "fail")


@operation(is_idempotent=True)
def deploy(database: str | dict, settings: EnvSettings | None = None):
    """
    Deploy one database by the whole runbook in one operation: preflight, gate, backup, converge,
    VACUUM ANALYZE, smoke checks, ledger. Kept for older deploy files; deploy.py calls one operation
    per step instead (``preflight``, ``gate_check``, ``backup``, ... in ``pgconverge.operations``).

    + database: connection, a URL or a dict of libpq keywords (``dbname``, ``service``, ``host``,
      ``port``, ``user``, ``passfile``) plus ``url_env`` and an optional ``name`` (the label used
      in plan files, backups and sign-offs); never a password
    + settings: an ``EnvSettings``; default: read from the host's ``pgconverge_*`` group data

    **Example:**

    .. code:: python

        from pgconverge import operations as pgc

        pgc.deploy(name="Deploy app", database={"url_env": "STAGING_DATABASE_URL"})
    """
    settings = settings or host_settings(host)
    run_now = executing(host)
    try:
        db = _database(host, database, settings)
    except Exception as e:  # a bad spec or sql/: report on this host only
        yield from _cannot(run_now, f"cannot start the deploy: {e}", "deploy")
        return
    try:
        checked = deploy_runbook.check_deploy(db, run_now, _SHOWN, gate.reader_of(_evidence_specs))
    except Exception as e:
        db.close()
        yield from _cannot(run_now, f"{db.label}: {e}", "deploy")
        return
    if not checked.work:
        db.close()
        say(host, f"nothing to do: {db.label} is converged")
        host.noop(f"database {db.label} is converged")
        return
    if not run_now:
        db.close()
        yield StringCommand("#", "pgconverge", "deploy", db.label + ":", checked.summary())
        return
    if checked.problem:
        db.close()
        yield fail_command(checked.problem)
        return

    def apply(state, host):  # noqa: ARG001 (pyinfra passes state and host by name)
        return deploy_runbook.apply_deploy(db, checked.plan, checked.backup_due, restore_command(settings))

    yield FunctionCommand(apply, (), {})


@operation()
def restore(database: str | dict, settings: EnvSettings | None = None, backup: str | None = None,
            confirm: str | None = None, only: str | None = None, several: bool = False):
    """
    Put a backup back: the newest of the database's backups, or ``backup``.

    + database: connection spec, as for ``deploy``
    + settings: an ``EnvSettings``; default: from the host's group data
    + backup: a backup path (or a file name in the database's backup folder); default: the newest
    + confirm: ``"yes"`` to skip the question environments with ``pgconverge_confirm_restore`` ask
    + only: restore only the database with this label (hosts carrying several)
    + several: the host carries several databases: a ``backup`` then applies only to the database
      whose folder holds it

    **Example:**

    .. code:: python

        pgc.restore(name="Restore app", database={"url_env": "PRODUCTION_DATABASE_URL"},
                    backup="backups/production/app/app-20250701T010101Z.dump")
    """
    settings = settings or host_settings(host)
    run_now = executing(host)
    db = None
    try:
        db = _database(host, database, settings)
        picked = restore_runbook.pick_backup(db, backup, only, several)
        if picked is None:
            db.close()
            host.noop(f"restore: {db.label} not selected")
            return
        backups.verify(db.shell, settings, picked.backup)
        say(host, restore_runbook.describe_restore(db, picked), bold=True)
        if not run_now:
            db.close()
            yield StringCommand("#", "pgconverge", "restore", picked.backup.path)
            return
        refusal = restore_runbook.confirmation_refused(db, picked, confirm)
        if refusal:
            db.close()
            yield fail_command(refusal)
            return
        before_hash = db.actual_hash()
    except Exception as e:
        if db:
            db.close()
        yield from _cannot(run_now, f"restore: {e}", "restore")
        return

    def apply(state, host):  # noqa: ARG001
        return restore_runbook.apply_restore(db, picked, before_hash)

    yield FunctionCommand(apply, (), {})


@operation()
def drill(database: str | dict, settings: EnvSettings | None = None, backup: str | None = None,
          only: str | None = None, several: bool = False):
    """
    The restore drill ("test restore procedure"): restore the newest backup (or ``backup``) into
    a scratch database, check its schema hash against the ledger run that took it, drop it.

    + database: connection spec, as for ``deploy``
    + settings: an ``EnvSettings``; default: from the host's group data
    + backup: a backup path or file name; default: the newest
    + only: drill only the database with this label
    + several: as for ``restore``

    **Example:**

    .. code:: python

        pgc.drill(name="Restore drill", database={"url_env": "PRODUCTION_DATABASE_URL"})
    """
    settings = settings or host_settings(host)
    run_now = executing(host)
    db = None
    try:
        db = _database(host, database, settings)
        picked = restore_runbook.pick_backup(db, backup, only, several)
        if picked is None:
            db.close()
            host.noop(f"drill: {db.label} not selected")
            return
        run = restore_runbook.drill_run(db, picked)
        say(host, restore_runbook.describe_drill(picked, run), bold=True)
        if not run_now:
            db.close()
            yield StringCommand("#", "pgconverge", "drill", picked.backup.path)
            return
    except Exception as e:
        if db:
            db.close()
        yield from _cannot(run_now, f"drill: {e}", "drill")
        return

    def apply(state, host):  # noqa: ARG001
        return restore_runbook.apply_drill(db, picked.backup, run)

    yield FunctionCommand(apply, (), {})


# --------------------------------------------------------------------------- refresh

# The hosts of the environments refreshes read from: (settings, database spec), loaded once per run.
_SOURCE_SPECS: dict[str, list[tuple[EnvSettings, str | dict]]] = {}


def _sources(env: str) -> list[refresh_runbook.Origin]:
    """The databases of inventory/<env>.py (production), their ledgers read from this machine."""
    from pgconverge.exec.runner import LocalRunner, PsqlError, conn_from_spec
    from pgconverge.pyinfra.inventory import load_hosts

    if env not in _SOURCE_SPECS:
        try:
            _SOURCE_SPECS[env] = [(h.settings(), spec) for h in load_hosts(env, ".") for spec in h.databases()]
        except (FileNotFoundError, ValueError) as e:
            raise refresh_runbook.RefreshRefused(f"cannot read environment {env}, whose ledger verifies the "
                                                 f"backup: {e}") from None
    found = []
    for settings, spec in _SOURCE_SPECS[env]:
        try:
            runner = LocalRunner(conn_from_spec(spec))
            label = (spec.get("name") or spec.get("dbname")) if isinstance(spec, dict) else None
            label = label or runner.query_json("SELECT to_json(current_database());")
        except (ValueError, PsqlError) as e:
            raise refresh_runbook.RefreshRefused(
                f"cannot reach {env}'s ledger from this machine to verify the backup against it: "
                f"{getattr(e, 'message', None) or e}") from None
        found.append(refresh_runbook.Origin(env, str(label), settings, runner))
    return found


def _send(db: Database, host_: Any, snap: refresh_runbook.Snapshot) -> backups.Backup:
    """The snapshot's file on the host: sent there by pyinfra's file transfer (SSH: sftp/scp; a
    local host: a copy) into a hidden file of the database's backup folder, which backup listings
    and pruning never take for one of the database's own, and its sha256 checked again there."""
    import secrets
    import shlex

    folder = backups.folder(db.settings, db.label)
    remote = f"{folder}/.refresh-{secrets.token_hex(4)}{backups.SUFFIX[snap.backup.format]}"
    res = db.shell.run(f"umask 077 && mkdir -p {shlex.quote(folder)}")
    if not res.ok:
        raise refresh_runbook.RefreshRefused(f"cannot create {folder} on {db.host_name}: {res.error}")
    if not host_.put_file(snap.backup.path, remote):
        raise refresh_runbook.RefreshRefused(f"sending {snap.backup.path} to {db.host_name}:{remote} failed")
    copy = backups.Backup(remote, snap.backup.format, snap.backup.taken_at)
    try:
        backups.checksum_matches(db.shell, copy, snap.sha256)
    except backups.BackupError as e:
        backups.remove(db.shell, remote)
        raise refresh_runbook.RefreshRefused(f"the copy on {db.host_name} does not verify: {e}") from None
    return copy


@operation()
def refresh(database: str | dict, settings: EnvSettings | None = None, backup: str | None = None,
            confirm: str | None = None, only: str | None = None):
    """
    Rebuild a staging database from production's newest verified backup (or ``backup``), masked
    by the scripts of ``pgconverge_mask``, in one transaction; recorded as a ``refresh`` row.

    + database: connection spec, as for ``deploy``
    + settings: an ``EnvSettings``; default: from the host's group data
    + backup: a backup of the source environment, a path (or a file name in its backup folder)
      where the refresh reads backups; default: the newest
    + confirm: ``"yes"`` to skip the question environments with ``pgconverge_confirm_restore`` ask
    + only: refresh only the database with this label (hosts carrying several)

    **Example:**

    .. code:: python

        pgc.refresh(name="Refresh app from production", database={"url_env": "STAGING_DATABASE_URL"})
    """
    settings = settings or host_settings(host)
    run_now = executing(host)
    db = None
    try:
        db = _database(host, database, settings)
        report = db.preflight()
        if not report.info:
            raise refresh_runbook.RefreshRefused("; ".join(report.problems))
        if not restore_runbook.selected(db.label, only):
            db.close()
            host.noop(f"refresh: {db.label} not selected")
            return
        refresh_runbook.check_target(db)
        masking = refresh_runbook.load_masking(settings)
        origin = refresh_runbook.find_origin(db, _sources)
        if settings.refresh_dir:  # a folder the host shares with the source: read there, nothing to send
            reader, folder = db.shell, f"{settings.refresh_dir.rstrip('/')}/{safe_name(origin.label)}"
        else:  # the source's backup folder on this machine (where a managed database's backups land)
            reader, folder = LocalShell("this machine"), backups.folder(origin.settings, origin.label)
        # pgconverge_backup is also the deploy's switch (True/False): only a string names a file
        snap = refresh_runbook.pick(db, origin, reader, folder, backup if isinstance(backup, str) else None)
        busy = refresh_runbook.busy(db)
        if busy:
            raise refresh_runbook.RefreshRefused(busy)
        say(host, refresh_runbook.describe(db, snap, masking), bold=True)
        if not run_now:
            db.close()
            yield StringCommand("#", "pgconverge", "refresh", snap.backup.path)
            return
        refusal = restore_runbook.confirmation_refused(db, restore_runbook.Picked(snap.backup, snap.size, snap.sha256,
                                                                                  None), confirm)
        if refusal:
            db.close()
            yield fail_command(f"refresh: {refusal}")
            return
    except Exception as e:
        if db:
            db.close()
        nothing = "" if "nothing" in str(e) else "; nothing was changed"
        yield from _cannot(run_now, f"refresh refused: {e}{nothing}", "refresh")
        return

    def apply(state, host):  # noqa: ARG001
        try:
            db.note_interrupted(db.actual_hash, "a refresh")
            still = refresh_runbook.busy(db)
            if still:
                raise refresh_runbook.RefreshRefused(still)
            before_hash = db.actual_hash()
            sent = reader is not db.shell
            on_host = _send(db, host, snap) if sent else snap.backup
        except Exception as e:
            say(host, f"refresh refused: {e}; nothing was changed", fg="red", bold=True)
            db.close()
            return False
        try:
            return refresh_runbook.apply_refresh(db, snap, masking, on_host, before_hash)
        finally:
            if sent:
                backups.remove(db.shell, on_host.path)

    yield FunctionCommand(apply, (), {})
