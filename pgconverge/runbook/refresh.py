"""Refresh: rebuild a staging database from production's newest verified backup, masked.

    check     the target may be refreshed (not an environment behind a sign-off, not its own
              source), no run is in progress on it, the masking scripts parse and hold no
              transaction control                                            (read-only)
    pick      the source's newest backup of this database (or the one named), readable
              (pg_restore --list / gzip -t) and its sha256 found in the source's ledger: the
              production run that took it, and so the production schema it holds (read-only)
    apply     in ONE transaction: staging's ledger set aside, every schema dropped, the backup
              replayed, the masking scripts run, the snapshot's data-block records kept, the
              ledger put back; then a ``refresh`` row with the backup, its sha256, production's
              schema hash and the masking scripts' hash

Every refusal comes before the transaction, and a masking script that fails rolls the whole
transaction back: staging is as it was, and no row is written. Where the backup is read (a
folder the host shares with production, or the machine running pyinfra, the file then being
sent to the host) is the pyinfra layer's business: this module gets a Shell to read it with.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pglast

from pgconverge.exec.runner import PsqlError, Runner
from pgconverge.exec.script import ADVISORY_KEY
from pgconverge.quoting import lit, q
from pgconverge.runbook import backup as backups
from pgconverge.runbook import ledger, preflight
from pgconverge.runbook.database import Database
from pgconverge.runbook.settings import EnvSettings
from pgconverge.runbook.shell import Shell


class RefreshRefused(Exception):
    """The refresh cannot go on; nothing was changed."""


# --------------------------------------------------------------------------- the masking scripts


@dataclass(frozen=True)
class Masking:
    """The masking scripts (name relative to their folder, SQL), run in name order."""

    folder: str | None
    scripts: tuple[tuple[str, str], ...]

    @property
    def sha256(self) -> str | None:
        if self.folder is None:
            return None
        h = hashlib.sha256()
        for name, text in self.scripts:
            h.update(name.encode() + b"\0" + text.encode() + b"\0")
        return h.hexdigest()

    def describe(self) -> str:
        if self.folder is None:
            return "no masking (pgconverge_mask = False)"
        return (f"masked by {len(self.scripts)} script(s) in {self.folder} ({', '.join(n for n, _ in self.scripts)}; "
                f"sha256 {(self.sha256 or '')[:12]})")


# Statements that would end or split the refresh's one transaction, or cannot run inside one.
_NOT_IN_A_TRANSACTION = ("TransactionStmt", "VacuumStmt", "CreatedbStmt", "DropdbStmt", "ClusterStmt",
                         "ReindexStmt", "AlterSystemStmt", "CreateTableSpaceStmt", "DropTableSpaceStmt")


def load_masking(settings: EnvSettings) -> Masking:
    """The scripts of ``pgconverge_mask``; RefreshRefused when there are none (staging would get
    production's personal data as it is) or one cannot run inside the refresh's transaction."""
    if settings.mask is None:
        return Masking(None, ())
    folder = Path(settings.mask)
    files = sorted(f for f in folder.rglob("*.sql") if not f.name.startswith(".")) if folder.is_dir() else \
        [folder] if folder.is_file() else []
    if not files:
        raise RefreshRefused(f"no masking scripts in {settings.mask} (pgconverge_mask): {settings.env} would get "
                             f"{settings.refresh_from}'s data unmasked. Write them (e.g. UPDATE users SET email = ...), "
                             "or set pgconverge_mask = False for data with nothing to hide")
    scripts = []
    for f in files:
        name = str(f.relative_to(folder)) if folder.is_dir() else f.name
        text = f.read_text()
        try:
            statements = pglast.parse_sql(text)
        except pglast.parser.ParseError as e:
            raise RefreshRefused(f"masking script {f}: {e}") from None
        for raw in statements:
            kind = type(raw.stmt).__name__
            if kind in _NOT_IN_A_TRANSACTION:
                line = text[:raw.stmt_location or 0].count("\n") + 1
                raise RefreshRefused(f"masking script {f}, line {line}: {kind.removesuffix('Stmt')} cannot be part "
                                     "of the refresh, which restores and masks in one transaction")
        scripts.append((name, text))
    return Masking(str(settings.mask), tuple(scripts))


# --------------------------------------------------------------------------- where the data comes from


@dataclass(frozen=True)
class Origin:
    """The database of the source environment that this one is refreshed from."""

    environment: str
    label: str
    settings: EnvSettings  # the source's settings (its backup folder)
    ledger: Runner  # the source's ledger, read from the machine running the refresh


# The databases of an environment, each with its settings and its ledger; raises RefreshRefused
# when the environment cannot be read or its ledgers reached.
Sources = Callable[[str], list[Origin]]


@dataclass
class Snapshot:
    """The backup a refresh restores, verified against the source's ledger."""

    origin: Origin
    backup: backups.Backup  # its path where it is read (see ``pick``)
    size: int
    sha256: str
    run: ledger.Run  # the source's run that took it

    @property
    def schema_hash(self) -> str | None:
        return self.run.before_hash

    def to_json(self, masking: Masking) -> dict[str, Any]:
        """The ``snapshot`` column of the refresh row."""
        return {"environment": self.origin.environment, "database": self.origin.label, "run_id": self.run.id,
                "file": self.backup.path, "taken_at": self.run.started_at, "sha256": self.sha256,
                "schema_hash": self.schema_hash, "mask_sha256": masking.sha256,
                "mask_files": [name for name, _ in masking.scripts]}


def check_target(db: Database) -> None:
    """Refuses an environment that must not be overwritten by another's data."""
    s = db.settings
    if s.refresh_from == s.env:
        raise RefreshRefused(f"{s.env} cannot be refreshed from itself (pgconverge_refresh_from = {s.refresh_from!r})")
    if s.require_signoff:
        raise RefreshRefused(f"{s.env} requires a sign-off for its changes (pgconverge_require_signoff): it is not "
                             "an environment to overwrite with another one's data")


def find_origin(db: Database, sources: Sources) -> Origin:
    """The source environment's database with this database's label."""
    found = sources(db.settings.refresh_from)
    for origin in found:
        if origin.label == db.label:
            return origin
    raise RefreshRefused(f"{db.settings.refresh_from} has no database {db.label} (it has: "
                         f"{', '.join(o.label for o in found) or 'none'}); give the same name to the same "
                         "database in both environments")


def pick(db: Database, origin: Origin, reader: Shell, folder: str, wanted: str | None) -> Snapshot:
    """The backup to restore: `wanted` (a path, or a file name in `folder`) or the newest one in
    `folder` (read by `reader`), readable and recorded in the source's ledger; RefreshRefused otherwise.
    The newest backup that does not verify is refused, not passed over for an older one."""
    try:
        if wanted:
            path = wanted if "/" in wanted else f"{folder.rstrip('/')}/{wanted}"
            chosen = backups.choose(reader, EnvSettings(), origin.label, path if "/" in path else f"./{path}")
        else:
            found = backups.listing_in(reader, folder)
            if not found:
                raise RefreshRefused(f"no backups of {origin.label} in {folder} on {reader.name}: deploy "
                                     f"{origin.environment} first (its deploys take them), or name one with "
                                     "--data pgconverge_backup=FILE")
            chosen = found[0]
        backups.verify(reader, db.settings if reader is db.shell else EnvSettings(), chosen)
        size, sha = backups.checksum_matches(reader, chosen, None)
    except backups.BackupError as e:
        raise RefreshRefused(f"the backup does not verify: {e}") from None
    try:
        run = ledger.run_for_backup(origin.ledger, sha)
    except PsqlError as e:
        raise RefreshRefused(f"cannot read {origin.environment}'s ledger to verify {chosen.path}: {e.message}") from None
    if run is None:
        raise RefreshRefused(f"the backup does not verify: no run in {origin.environment} {origin.label}'s ledger took "
                             f"{chosen.path} (sha256 {sha[:16]}...): it is not one of its recorded backups, or it "
                             "changed since it was taken")
    return Snapshot(origin, chosen, size, sha, run)


def busy(db: Database) -> str | None:
    """Why the database cannot be refreshed now: a run in progress (a ``running`` ledger row whose
    process lives, or another machine's), or a session holding the run lock; None when idle."""
    for run in ledger.in_progress(db.runner):
        owner = ledger.Owner.from_json(run.owner)
        if owner is not None and owner.alive() is False:
            continue  # its process is gone: the refresh marks it interrupted
        who = f" by process {owner.pid} on {owner.machine}" if owner else ""
        return (f"{db.settings.env} {db.label} has a run in progress: ledger run #{run.id} ({run.action}, started "
                f"{run.started_at}{who}); let it finish, then refresh")
    holders = db.runner.query_json(
        "SELECT coalesce(json_agg(pid ORDER BY pid), '[]') FROM pg_catalog.pg_locks "
        f"WHERE locktype = 'advisory' AND classid = 0 AND objid = {ADVISORY_KEY} AND objsubid = 1 AND granted "
        "AND database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()) "
        "AND pid <> pg_backend_pid();") or []
    if holders:
        return (f"{db.settings.env} {db.label} has a run in progress: session(s) {', '.join(map(str, holders))} hold "
                "pgconverge's run lock; let it finish, then refresh")
    return None


def describe(db: Database, snap: Snapshot, masking: Masking) -> str:
    return (f"refresh: {snap.backup.path} ({preflight.human(snap.size)}, sha256 {snap.sha256[:16]}..., taken by "
            f"{snap.origin.environment} run #{snap.run.id} at {snap.run.started_at}, {snap.origin.environment} schema "
            f"{(snap.schema_hash or '?')[:12]}) -> {db.settings.env} database {db.label}, {masking.describe()}")


# --------------------------------------------------------------------------- the change


# pg_dump's script empties search_path for the session; masking scripts name tables as the
# application does. On the script's first line, so that psql's line numbers stay the file's.
MASK_PREAMBLE = "SET search_path TO DEFAULT; "


def epilogue(keep: str) -> str:
    """Inside the transaction, after the masking: the data-block records of the snapshot replace
    staging's (they describe the rows now there), the snapshot's ledger goes, staging's comes back."""
    src, dst = q("pgconverge", "data_blocks"), f"{q(keep)}.{q('data_blocks')}"
    return f"""DO $pgconverge$ BEGIN
  IF to_regclass({lit('pgconverge.data_blocks')}) IS NOT NULL AND to_regclass({lit(keep + '.data_blocks')}) IS NOT NULL THEN
    EXECUTE 'DELETE FROM {dst.replace("'", "''")}';
    EXECUTE 'INSERT INTO {dst.replace("'", "''")} (name, sha256, ran_at, actor) SELECT name, sha256, ran_at, actor FROM {src}';
  END IF;
END $pgconverge$;
""" + backups.restore_epilogue(keep)


def apply_refresh(db: Database, snap: Snapshot, masking: Masking, on_host: backups.Backup,
                  before_hash: str) -> bool:
    """Restore `on_host` (the snapshot's file as the host reads it) and mask it in one transaction,
    then record the refresh. Returns False on any problem (then nothing changed). Closes `db`."""
    s = db.settings
    try:
        version = int((db.info or {}).get("server_version") or 150000)
        db.say(f"refresh: replaying {on_host.path} into {db.label} and masking it, in one transaction")
        keep = backups.keep_name()
        backups.replay(db.shell, db.runner, s, on_host, prologue=backups.restore_prologue(keep, version),
                       epilogue=epilogue(keep), scripts=[(name, MASK_PREAMBLE + text) for name, text in masking.scripts],
                       no_owner=True)
        after = db.actual_hash()
        try:
            db.runner.run_script("ANALYZE;\n")  # a restore brings rows but no statistics
        except PsqlError as e:
            db.say(f"refresh: warning: ANALYZE failed: {e.message}", fg="yellow")
        expected = snap.schema_hash
        if expected and after != expected:
            outcome, msg = "failed", (f"refreshed from {snap.backup.path}, but the schema hash {after[:12]} differs "
                                      f"from the {expected[:12]} {snap.origin.environment} recorded when it was taken")
        else:
            outcome = "refreshed"
            msg = (f"refreshed from {snap.origin.environment} {snap.origin.label}'s backup {snap.backup.file} (run "
                   f"#{snap.run.id}), {masking.describe()}; schema {after[:12]}")
        run_id = ledger.record(db.runner, ledger.RunStart(
            action="refresh", environment=s.env, actor=s.resolved_actor(), host=db.host_name, target=db.label,
            desired_hash=expected, before_hash=before_hash, backup=snap.backup.to_json() | {"size": snap.size,
                                                                                            "sha256": snap.sha256},
            snapshot=snap.to_json(masking)), outcome, after_hash=after, message=msg)
        db.say(f"refresh: {msg} (ledger run #{run_id})", fg="green" if outcome == "refreshed" else "red")
        return outcome == "refreshed"
    except backups.ScriptFailed as e:
        db.say(f"FAILED: refresh of {db.label}: masking failed: {e}; {db.label} is as it was", fg="red", bold=True)
        return False
    except Exception as e:
        db.say(f"FAILED: refresh of {db.label}: {e}", fg="red", bold=True)
        return False
    finally:
        db.close()
