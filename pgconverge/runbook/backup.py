"""Backups before any change, and putting one back.

A backup is ``pg_dump`` run on the host (through its connector, like psql) into
``<backup_dir>/<database>/<database>-<UTC time>.dump`` (custom format, the default)
or ``.sql.gz`` (plain SQL, gzip-compressed by pg_dump itself). It is written under
a temporary name, verified (``pg_restore --list`` or ``gzip -t``) and only then
renamed, so a file with a final name is always a complete, readable backup. Its
size and sha256 go into the ledger. Older backups beyond the retention (a count and
an age) are pruned; the newest is never pruned.

A restore replaces the database's schemas with the backup's, in ONE transaction:
the current ledger is set aside (renamed), every non-system schema is dropped, the
backup is replayed, the backup's copy of the ledger is dropped and the current one
renamed back. So either everything is put back or nothing changed, and the ledger
keeps the history of what happened after the backup (including the restore).
"""

from __future__ import annotations

import re
import secrets
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from pgconverge.exec.progress import Count, Progress, Reporter, human_bytes, watching
from pgconverge.quoting import lit, q
from pgconverge.runbook.shell import (RemoteError, Shell, ShellRunner, file_facts, must, pg_tool, remove,
                                      write_private_file)
from pgconverge.runbook.settings import EnvSettings, safe_name

SUFFIX = {"custom": ".dump", "sql.gz": ".sql.gz"}
_NAME = re.compile(r"^(?P<db>.+)-(?P<stamp>\d{8}T\d{6}Z)(?:-\d+)?(?P<ext>\.dump|\.sql\.gz)$")
LOCK_WAIT = "60s"  # pg_dump waits this long for its ACCESS SHARE locks, then fails


class BackupError(RemoteError):
    """A backup could not be taken or verified: the run stops before any change."""


@dataclass
class Backup:
    """One backup file on a host."""

    path: str
    format: str
    taken_at: datetime
    size: int | None = None
    sha256: str | None = None

    @property
    def file(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def to_json(self) -> dict[str, Any]:
        return {"file": self.path, "format": self.format, "taken_at": self.taken_at.isoformat(),
                "size": self.size, "sha256": self.sha256}


def folder(settings: EnvSettings, label: str) -> str:
    return f"{settings.backup_dir.rstrip('/')}/{safe_name(label)}"


def parse_name(path: str) -> Backup | None:
    """A Backup from one of our file names; None for files we did not write."""
    m = _NAME.match(path.rsplit("/", 1)[-1])
    if not m:
        return None
    stamp = datetime.strptime(m.group("stamp"), "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    return Backup(path, "custom" if m.group("ext") == ".dump" else "sql.gz", stamp)


def listing(shell: Shell, settings: EnvSettings, label: str) -> list[Backup]:
    """The backups of one database on the host, newest first."""
    return listing_in(shell, folder(settings, label))


def listing_in(shell: Shell, where: str) -> list[Backup]:
    """The backups in the folder `where` (files of other names are not ours), newest first."""
    res = shell.run(f"[ -d {shlex.quote(where)} ] && ls -1 {shlex.quote(where)} || true")
    found = [b for b in (parse_name(f"{where}/{n.strip()}") for n in res.stdout if n.strip()) if b]
    return sorted(found, key=lambda b: (b.taken_at, b.path), reverse=True)


def verify_command(settings: EnvSettings, path: str, fmt: str) -> str:
    if fmt == "custom":
        return f"{shlex.quote(settings.tool('pg_restore'))} --list {shlex.quote(path)} > /dev/null"
    return f"gzip -t {shlex.quote(path)}"


def verify(shell: Shell, settings: EnvSettings, backup: Backup) -> None:
    res = shell.run(verify_command(settings, backup.path, backup.format))
    if not res.ok:
        raise BackupError(f"backup {backup.path} on {shell.name} is not readable: {res.error}")


def file_size_sampler(shell: Shell, path: str, what: str) -> Callable[[], Progress]:
    """Samples of a file being written (pg_dump's output): its size on the host, read by ``stat``
    through `shell` (a command of its own, beside pg_dump's), and the rate since the start."""
    started = time.monotonic()
    command = f"stat -c %s {shlex.quote(path)} 2>/dev/null || echo 0"

    def sample() -> Progress:
        res = shell.run(command)
        size = int(res.stdout[-1].strip()) if res.ok and res.stdout and res.stdout[-1].strip().isdigit() else 0
        elapsed = time.monotonic() - started
        rate = f"{human_bytes(size / elapsed)}/s" if elapsed > 0 else ""
        return Progress(what, elapsed, "pg_dump writing", (Count("bytes", size),), rate)

    return sample


def take(shell: Shell, runner: ShellRunner, settings: EnvSettings, label: str,
         now: datetime | None = None, progress: Reporter | None = None) -> Backup:
    """pg_dump the database into a verified, timestamped file; raises BackupError. `progress` gets
    the bytes written so far while pg_dump runs."""
    now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    where = folder(settings, label)
    base = f"{safe_name(label)}-{now.strftime('%Y%m%dT%H%M%SZ')}"
    suffix = SUFFIX[settings.backup_format]
    # The folder holds copies of the data: private to its owner.
    res = shell.run(f"umask 077 && mkdir -p {shlex.quote(where)} && n=0 && f={shlex.quote(base)} && "
                   f"while [ -e {shlex.quote(where)}/\"$f\"{suffix} ]; do n=$((n+1)); f={shlex.quote(base)}-$n; done"
                   f" && echo \"$f\"")
    if not res.ok:
        raise BackupError(f"cannot create the backup folder {where} on {shell.name}: {res.error}")
    final = f"{where}/{res.stdout[-1].strip()}{suffix}"
    partial = f"{where}/.partial-{secrets.token_hex(4)}{suffix}"
    fmt_args = ["-Fc"] if settings.backup_format == "custom" else ["-Fp", "-Z", "6"]
    dump = pg_tool(runner.env(), settings.tool("pg_dump"),
                   ["--no-password", f"--lock-wait-timeout={LOCK_WAIT}", *fmt_args, "-f", partial])
    with watching(file_size_sampler(shell, partial, f"backup of {label}"), progress):
        res = runner.run_connected(dump)  # under umask 077
    if not res.ok:
        remove(shell, partial)
        raise BackupError(f"pg_dump failed on {shell.name}: {res.error}")
    res = shell.run(verify_command(settings, partial, settings.backup_format))
    if not res.ok:
        remove(shell, partial)
        raise BackupError(f"the backup does not verify ({'pg_restore --list' if settings.backup_format == 'custom' else 'gzip -t'}): "
                          f"{res.error}")
    fq = shlex.quote(final)
    res = shell.run(f"mv -n {shlex.quote(partial)} {fq} && [ ! -e {shlex.quote(partial)} ] && stat -c %s {fq} "
                   f"&& sha256sum {fq}")
    if not res.ok:
        remove(shell, partial)
        raise BackupError(f"cannot move the backup into place at {final}: {res.error}")
    return Backup(final, settings.backup_format, now, int(res.stdout[-2].strip()), res.stdout[-1].split()[0])


def beyond_retention(found: list[Backup], keep: int, max_age_days: float, now: datetime) -> list[Backup]:
    """The backups (newest first, as ``listing`` gives them) that retention deletes: all but the
    ``keep`` newest, and those older than ``max_age_days``; never the newest one, so a database
    always has something to go back to."""
    max_age = timedelta(days=max_age_days)
    return [b for i, b in enumerate(found) if i > 0 and (i >= max(keep, 1) or now - b.taken_at > max_age)]


def prune(shell: Shell, settings: EnvSettings, label: str, now: datetime | None = None) -> list[str]:
    """Delete backups beyond the retention: more than ``backup_keep`` newer ones, or older than
    ``backup_max_age_days``. The newest backup always stays. Returns the deleted paths."""
    found = listing(shell, settings, label)
    doomed = [b.path for b in beyond_retention(found, settings.backup_keep, settings.backup_max_age_days,
                                               now or datetime.now(timezone.utc))]
    if doomed:
        must(shell, "rm -f -- " + " ".join(shlex.quote(p) for p in doomed), "pruning backups")
    return doomed


def choose(shell: Shell, settings: EnvSettings, label: str, wanted: str | None) -> Backup:
    """The backup to restore: `wanted` (a path, or a file name in the database's folder) or the newest."""
    if wanted:
        path = wanted if "/" in wanted else f"{folder(settings, label)}/{wanted}"
        b = parse_name(path)
        if b is None:
            fmt = "custom" if path.endswith(".dump") else "sql.gz" if path.endswith(".sql.gz") else None
            if fmt is None:
                raise BackupError(f"{path}: not a backup file (.dump or .sql.gz)")
            b = Backup(path, fmt, datetime.fromtimestamp(0, timezone.utc))
        if not shell.run(f"[ -f {shlex.quote(path)} ]").ok:
            raise BackupError(f"no backup file {path} on {shell.name}")
        return b
    found = listing(shell, settings, label)
    if not found:
        raise BackupError(f"no backups of {label} in {folder(settings, label)} on {shell.name}")
    return found[0]


# --------------------------------------------------------------------------- putting one back


def keep_name() -> str:
    return f"pgconverge_keep_{secrets.token_hex(4)}"


def restore_prologue(keep: str, server_version: int) -> str:
    """Set the ledger aside and empty the database (inside the restore's transaction)."""
    public = ("CREATE SCHEMA public AUTHORIZATION pg_database_owner;\n"
              "GRANT USAGE ON SCHEMA public TO PUBLIC;\n"
              "COMMENT ON SCHEMA public IS 'standard public schema';\n") if server_version >= 150000 else (
              "CREATE SCHEMA public;\nGRANT ALL ON SCHEMA public TO PUBLIC;\n"
              "COMMENT ON SCHEMA public IS 'standard public schema';\n")
    return f"""SET lock_timeout = '30s';
DO $pgconverge$
DECLARE s text;
BEGIN
  IF to_regnamespace('pgconverge') IS NOT NULL THEN
    EXECUTE format('ALTER SCHEMA pgconverge RENAME TO %I', {lit(keep)});
  END IF;
  FOR s IN SELECT nspname FROM pg_catalog.pg_namespace
            WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', {lit(keep)})
              AND nspname NOT LIKE 'pg\\_temp\\_%' AND nspname NOT LIKE 'pg\\_toast\\_temp\\_%' LOOP
    EXECUTE format('DROP SCHEMA %I CASCADE', s);
  END LOOP;
END $pgconverge$;
{public}"""


def restore_epilogue(keep: str) -> str:
    """Drop the backup's copy of the ledger and put the current one back."""
    return f"""DROP SCHEMA IF EXISTS {q('pgconverge')} CASCADE;
DO $pgconverge$ BEGIN
  IF to_regnamespace({lit(keep)}) IS NOT NULL THEN
    EXECUTE format('ALTER SCHEMA %I RENAME TO pgconverge', {lit(keep)});
  END IF;
END $pgconverge$;
"""


def _as_sql(shell: Shell, settings: EnvSettings, backup: Backup, directory: str, no_owner: bool = False) -> str:
    """The backup as a plain SQL file next to it (pg_restore -f, or gunzip); returns its path.
    `no_owner` leaves out the archive's OWNER TO (custom format only): another environment's roles."""
    tmp = write_private_file(shell, "", directory)
    if backup.format == "custom":
        cmd = (f"{shlex.quote(settings.tool('pg_restore'))}{' --no-owner' if no_owner else ''} -f {shlex.quote(tmp)} "
               f"{shlex.quote(backup.path)}")
    else:
        cmd = f"gzip -dc {shlex.quote(backup.path)} > {shlex.quote(tmp)}"
    res = shell.run(f"umask 077 && {cmd}")
    if not res.ok:
        remove(shell, tmp)
        raise BackupError(f"cannot read backup {backup.path}: {res.error}")
    return tmp


class ScriptFailed(BackupError):
    """One of the scripts run after the backup in its transaction failed (everything was rolled back)."""

    def __init__(self, name: str, message: str):
        self.name = name
        super().__init__(message)


def replay(shell: Shell, runner: ShellRunner, settings: EnvSettings, backup: Backup, *,
           prologue: str = "", epilogue: str = "", scripts: list[tuple[str, str]] | None = None,
           no_owner: bool = False) -> None:
    """Replay a backup through psql in a single transaction (-1): all of it, or nothing.
    `scripts` ((name, SQL) pairs) run after the backup and before `epilogue`, in that same
    transaction; one that fails raises ScriptFailed naming it. `no_owner`: objects are owned by the
    role that replays them (a backup of another environment names roles this one may not have)."""
    directory = backup.path.rsplit("/", 1)[0] if "/" in backup.path else "."
    sql_file = _as_sql(shell, settings, backup, directory, no_owner)
    extra: list[str] = []
    try:
        pro = write_private_file(shell, prologue, directory) if prologue else None
        extra = [p for p in (pro,) if p]
        named: dict[str, str] = {}
        for name, text in scripts or []:
            named[write_private_file(shell, text, directory)] = name
        extra += list(named)
        epi = write_private_file(shell, epilogue, directory) if epilogue else None
        extra += [epi] if epi else []
        files = [x for f in (pro, sql_file, *named, epi) if f for x in ("-f", f)]
        cmd = pg_tool(runner.env(), settings.tool("psql"),
                      ["-X", "-q", "-w", "-v", "ON_ERROR_STOP=1", "--no-psqlrc", "-1", *files])
        res = runner.run_connected(f"{cmd} > /dev/null")
        if not res.ok:
            error = res.error
            for path, name in named.items():
                if path in error:  # psql names the file it stopped in: give the script's own name
                    lines = error.replace(path, name).splitlines()
                    # from the error on: the NOTICEs of the schemas dropped before it say nothing of it
                    first = next((i for i, ln in enumerate(lines) if "ERROR:" in ln), 0)
                    raise ScriptFailed(name, f"{name} failed, the whole transaction was rolled back and nothing was "
                                             f"changed: {chr(10).join(lines[first:])}")
            raise BackupError(f"restoring {backup.path} failed, nothing was changed: {error}")
    finally:
        remove(shell, sql_file, *extra)


def restore(shell: Shell, runner: ShellRunner, settings: EnvSettings, backup: Backup, server_version: int) -> None:
    """Put `backup` back into the database `runner` points at, keeping the current ledger."""
    keep = keep_name()
    replay(shell, runner, settings, backup, prologue=restore_prologue(keep, server_version),
           epilogue=restore_epilogue(keep))


def checksum_matches(shell: Shell, backup: Backup, expected: str | None) -> tuple[int, str]:
    """Size and sha256 of the file; raises when the ledger recorded another checksum."""
    size, sha = file_facts(shell, backup.path)
    if expected and sha != expected:
        raise BackupError(f"{backup.path} does not match the checksum recorded in the ledger "
                          f"({sha[:12]}... instead of {expected[:12]}...): the file changed since it was taken")
    backup.size, backup.sha256 = size, sha
    return size, sha
