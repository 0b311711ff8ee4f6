"""Putting a backup back (the runbook's rollback) and the restore drill.

    restore   the newest backup of a database (or a chosen one), replayed in one transaction,
              its schema hash checked against the ledger run that took it, recorded
    drill     the same backup restored into a scratch database, its schema hash compared
              with the ledger, every table of the current schema looked for in it, the
              scratch database dropped, the drill recorded

``pick_backup`` is the read-only part of both (it runs in the dry run too).
"""

from __future__ import annotations

import secrets
import shlex
from dataclasses import dataclass

from pgconverge.api import Engine
from pgconverge.catalog.introspect import catalog_hash
from pgconverge.quoting import q
from pgconverge.runbook import backup as backups
from pgconverge.runbook import ledger, preflight
from pgconverge.runbook.database import Database
from pgconverge.runbook.settings import safe_name

YES = ("yes", "y", "true", "1")


@dataclass
class Picked:
    """The backup a restore or drill works on, and the ledger run that took it (None: not in the ledger)."""

    backup: backups.Backup
    size: int
    sha256: str
    run: ledger.Run | None

    @property
    def expected_hash(self) -> str | None:
        """The schema the backup holds, as the ledger recorded it when it was taken."""
        return self.run.before_hash if self.run else None


def belongs(db: Database, wanted: str, several: bool) -> bool:
    """Whether the backup named on the command line is this database's. On a host with one
    database anything goes (a wrong name fails later, loudly); with several, the file must be in
    this database's folder (or the database be named with pgconverge_database)."""
    if not several:
        return True
    folder = backups.folder(db.settings, db.label)
    if "/" in wanted:
        return wanted.rsplit("/", 1)[0].rstrip("/") == folder
    return db.shell.run(f"[ -f {shlex.quote(folder + '/' + wanted)} ]").ok


def selected(label: str, only: str | None) -> bool:
    return not only or only in (label, safe_name(label))


def pick_backup(db: Database, backup: str | None, only: str | None, several: bool) -> Picked | None:
    """Preflight, then the backup to work on with its size, sha256 and the ledger run that took it;
    None when this database is not the one selected (`only`, or the database `backup` belongs to)."""
    report = db.preflight()
    if not report.info:
        raise RuntimeError("; ".join(report.problems))
    if not selected(db.label, only) or (backup and not only and not belongs(db, backup, several)):
        return None
    chosen = backups.choose(db.shell, db.settings, db.label, backup)
    size, sha = backups.checksum_matches(db.shell, chosen, None)
    return Picked(chosen, size, sha, ledger.run_for_backup(db.runner, sha))


def describe_restore(db: Database, picked: Picked) -> str:
    took = f"taken by run #{picked.run.id} at {picked.run.started_at}" if picked.run else \
        "not in this database's ledger"
    return (f"restore: {picked.backup.path} ({preflight.human(picked.size)}, sha256 {picked.sha256[:16]}..., "
            f"{took}) -> {db.settings.env} database {db.label}")


def confirmation_refused(db: Database, picked: Picked, confirm: str | bool | None) -> str | None:
    """None when the restore may go on, else why not. Environments with pgconverge_confirm_restore
    ask the operator to type the database's name, unless pgconverge_confirm says yes already."""
    if not db.settings.confirm_restore or str(confirm or "").lower() in YES:
        return None
    answer = db.console.ask(f"Restore {picked.backup.path} into {db.settings.env} database {db.label}? Every "
                            "change since the backup is lost. Type the database name to confirm")
    if answer is None:
        return (f"restoring {db.settings.env} needs a confirmation and stdin is not a terminal: "
                "pass --data pgconverge_confirm=yes")
    return None if answer.strip() == db.label else "not confirmed; nothing was changed"


def apply_restore(db: Database, picked: Picked, before_hash: str) -> bool:
    """Replay the backup, check the schema hash against the ledger, record the restore. Closes `db`."""
    s, chosen, expected = db.settings, picked.backup, picked.expected_hash
    try:
        version = int((db.info or {}).get("server_version") or 150000)
        db.note_interrupted(lambda: before_hash, "a restore")
        db.say(f"restore: replaying {chosen.path} into {db.label} in one transaction")
        backups.restore(db.shell, db.runner, s, chosen, version)
        after = db.actual_hash()
        if expected and after != expected:
            outcome, msg = "failed", (f"restored {chosen.path}, but the schema hash {after[:12]} differs from the "
                                      f"{expected[:12]} recorded when the backup was taken")
        else:
            outcome = "restored"
            msg = f"restored {chosen.path}" + (", schema hash verified against the ledger" if expected else
                                               " (no ledger record of this backup to verify against)")
        run_id = ledger.record(db.runner, ledger.RunStart(
            action="restore", environment=s.env, actor=s.resolved_actor(), host=db.host_name, target=db.label,
            desired_hash=expected, before_hash=before_hash, backup=chosen.to_json()),
            outcome, after_hash=after, message=msg)
        db.say(f"restore: {msg} (ledger run #{run_id})", fg="green" if outcome == "restored" else "red")
        return outcome == "restored"
    except Exception as e:
        db.say(f"FAILED: restore of {db.label}: {e}", fg="red", bold=True)
        return False
    finally:
        db.close()


# --------------------------------------------------------------------------- the drill


def drill_run(db: Database, picked: Picked) -> ledger.Run:
    """The ledger run a drill compares with; raises when the backup is not one of its recorded ones."""
    if picked.run is None:
        raise RuntimeError(f"no run in {db.label}'s ledger took {picked.backup.path} (sha256 {picked.sha256[:16]}...): "
                           "the file is not one of this database's recorded backups")
    return picked.run


@dataclass(frozen=True)
class Coverage:
    """Which tables of the current schema a backup lacks: `missing` ones hold data no backup
    has; `after` ones were created (or renamed) by the very run that took the backup, right
    after it, so the next backup covers them."""

    missing: tuple[str, ...]
    after: tuple[str, ...]
    tables: int

    def describe(self, run: ledger.Run) -> str:
        text = f"all {self.tables} table(s) of the current schema are in it"
        if self.after:
            text = (f"{self.tables - len(self.after)} of the {self.tables} table(s) of the current schema are in it; "
                    f"{', '.join(self.after)} came with run #{run.id} after the backup (the next backup covers them)")
        return text


def covered(current: set[str], restored: set[str], run: ledger.Run) -> Coverage:
    """The current schema's tables (ids) against those a restored backup holds."""
    by_run = {str(step.get("object")) for step in ((run.plan or {}).get("steps") or [])
              if str(step.get("object", "")).startswith("table:")}
    absent = sorted(current - restored)
    return Coverage(tuple(t.removeprefix("table:") for t in absent if t not in by_run),
                    tuple(t.removeprefix("table:") for t in absent if t in by_run), len(current))


def describe_drill(picked: Picked, run: ledger.Run) -> str:
    return (f"drill: newest backup {picked.backup.path}, taken by run #{run.id} at {run.started_at}; expected "
            f"schema {(run.before_hash or '?')[:12]}")


def apply_drill(db: Database, chosen: backups.Backup, run: ledger.Run) -> bool:
    """Restore into a scratch database, compare its schema hash with the ledger, drop it, record. Closes `db`."""
    s = db.settings
    server = db.shadow or db.runner
    scratch = f"pgconverge_drill_{secrets.token_hex(5)}"
    outcome, msg, got = "failed", "", None
    try:
        server.run_script(f"CREATE DATABASE {q(scratch)} TEMPLATE template0;\n")
        try:
            scratch_runner = server.for_database(scratch)
            db.say(f"drill: restoring {chosen.path} into scratch database {scratch}")
            backups.replay(db.shell, scratch_runner, s, chosen)
            scratch_engine = Engine(scratch_runner, db.source, db.options)
            restored = db.actual_catalog(scratch_engine)
            got = catalog_hash(restored)
        finally:
            server.run_script(f"DROP DATABASE IF EXISTS {q(scratch)} WITH (FORCE);\n")
        expected = run.before_hash
        coverage = covered(set(db.actual_catalog().tables), set(restored.tables), run)
        if got != expected:
            msg = (f"backup {chosen.path} restores to schema {(got or '?')[:12]}, but run #{run.id} recorded "
                   f"{(expected or '?')[:12]} when it was taken")
        elif coverage.missing:
            msg = (f"backup {chosen.path} restores to schema {got[:12]}, as recorded, but it lacks table(s) of the "
                   f"current schema: {', '.join(coverage.missing)}; their data has no backup: take one "
                   "(a deploy with pgconverge_backup_when_unchanged) and drill again")
        else:
            outcome, msg = "passed", (f"backup {chosen.path} restores to schema {got[:12]}, as recorded by run "
                                      f"#{run.id} when it was taken; {coverage.describe(run)}")
    except Exception as e:
        msg = f"drill could not restore {chosen.path}: {e}"
    try:
        db.note_interrupted(db.actual_hash, "a drill")
        run_id = ledger.record(db.runner, ledger.RunStart(
            action="drill", environment=s.env, actor=s.resolved_actor(), host=db.host_name, target=db.label,
            desired_hash=run.before_hash, backup=chosen.to_json()), outcome, after_hash=got, message=msg)
        msg += f" (ledger run #{run_id})"
    except Exception as e:
        msg += f"; the ledger could not record it: {e}"
    finally:
        db.close()
    db.say(f"drill: {outcome.upper()}: {msg}", fg="green" if outcome == "passed" else "red", bold=True)
    return outcome == "passed"

