"""The ledger: what pgconverge did to a database, kept in that database.

It lives in the schema ``pgconverge``, which introspection never manages. One row
per run in ``pgconverge.runs``; one row per one-time data block that ran in
``pgconverge.data_blocks`` (its hash makes an edited block detectable). No secret
is ever written here: connection details are recorded by their printable name only.

A run row is inserted with outcome ``running`` before the first change (so a run
that dies half way is visible as such) and finished with its outcome:

    deploy:  converged | unchanged | smoke_failed | failed
    restore: restored | failed
    drill:   passed | failed
    refresh: refreshed | failed     (staging rebuilt from another environment's backup)
    any:     interrupted (set by a later run: the process that wrote the row is gone)

Each row names its ``owner`` (machine, pid, process start). A later run on the same machine
whose owner process is gone (a kill -9, a crash, a lost machine reboot) marks the row
``interrupted`` with what it found (``close_interrupted``); a row owned by another machine is
left alone, since only that machine can tell whether its run still goes on.

Every function takes a ``runner.Runner``: the ledger is written through the same
psql transport as everything else, so it works over SSH and for managed databases.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pgconverge.catalog.introspect import LEDGER_SCHEMA
from pgconverge.quoting import lit, q
from pgconverge.exec.runner import Runner

RUNS = q(LEDGER_SCHEMA, "runs")
DATA_BLOCKS = q(LEDGER_SCHEMA, "data_blocks")

# Columns added after the first release of the table: added in place when missing.
_LATER_COLUMNS = {
    "action": "text NOT NULL DEFAULT 'deploy'",
    "host": "text",
    "target": "text",
    "owner": "jsonb",
    "snapshot": "jsonb",
    "sizes": "jsonb",
    "smoke_commands": "jsonb",
}

# Idempotent; safe to run at the start of every apply script.
ENSURE_SQL = f"""
CREATE SCHEMA IF NOT EXISTS {q(LEDGER_SCHEMA)};
CREATE TABLE IF NOT EXISTS {RUNS} (
    id bigserial PRIMARY KEY,
    environment text NOT NULL,
    actor text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    source_hash text,
    desired_hash text,
    before_hash text,
    after_hash text,
    plan_hash text,
    plan jsonb,
    backup jsonb,
    smoke jsonb,
    outcome text NOT NULL,
    message text,
    action text NOT NULL DEFAULT 'deploy',
    host text,
    target text,
    owner jsonb,
    snapshot jsonb,
    sizes jsonb
);
CREATE TABLE IF NOT EXISTS {DATA_BLOCKS} (
    name text PRIMARY KEY,
    sha256 text NOT NULL,
    ran_at timestamptz NOT NULL DEFAULT now(),
    actor text
);
""" + "".join(
    # Only when missing: ALTER TABLE would take an exclusive lock on every run otherwise.
    f"""DO $pgconverge$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                  WHERE attrelid = {lit(LEDGER_SCHEMA + '.runs')}::regclass AND attname = {lit(name)}
                    AND NOT attisdropped) THEN
    ALTER TABLE {RUNS} ADD COLUMN {q(name)} {ddl};
  END IF;
END $pgconverge$;
""" for name, ddl in _LATER_COLUMNS.items())

# Two first runs against one database must not race on CREATE SCHEMA / CREATE TABLE.
_ENSURE_LOCK = 1885365111

COLUMNS = ("id", "action", "environment", "actor", "host", "target", "started_at", "finished_at", "source_hash",
           "desired_hash", "before_hash", "after_hash", "plan_hash", "plan", "backup", "smoke", "outcome", "message",
           "owner", "snapshot", "sizes", "smoke_commands")
JSON_COLUMNS = ("plan", "backup", "smoke", "owner", "snapshot", "sizes", "smoke_commands")

DEPLOY_OK = ("converged", "unchanged")


@dataclass
class Run:
    """One ledger row."""

    id: int
    action: str
    environment: str
    actor: str
    outcome: str
    host: str | None = None
    target: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    source_hash: str | None = None
    desired_hash: str | None = None
    before_hash: str | None = None
    after_hash: str | None = None
    plan_hash: str | None = None
    plan: dict | None = None
    backup: dict | None = None
    smoke: dict | None = None
    message: str | None = None
    owner: dict | None = None
    # refresh: where the data came from (environment, database, run_id, sha256, schema_hash, mask_sha256, mask_files)
    snapshot: dict | None = None
    # deploy: each changed table's size and row estimate, before and after ({table id: {before, after}})
    sizes: dict | None = None
    smoke_commands: dict | None = None  # pgconverge_smoke_commands' results: {"passed", "commands": [...]}

    @property
    def smoke_passed(self) -> bool:
        commands_ok = not self.smoke_commands or bool(self.smoke_commands.get("passed"))
        return bool(self.smoke and self.smoke.get("passed")) and commands_ok

    def to_json(self) -> dict[str, Any]:
        return {c: getattr(self, c) for c in COLUMNS}


@dataclass
class RunStart:
    """What is known when a run starts."""

    action: str
    environment: str
    actor: str
    host: str | None = None
    target: str | None = None
    source_hash: str | None = None
    desired_hash: str | None = None
    before_hash: str | None = None
    plan_hash: str | None = None
    plan: dict | None = None
    backup: dict | None = None
    snapshot: dict | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _process_start(pid: int) -> str | None:
    """When process `pid` started (boot id and clock ticks since boot), to tell a reused pid from
    the original; None where /proc does not say."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    ticks = stat.rsplit(")", 1)[1].split()[19]  # field 22 of stat(5), counted after the command name
    return f"{_boot_id()}:{ticks}"


@dataclass(frozen=True)
class Owner:
    """The process that wrote a ``running`` row: while it lives, the run may go on."""

    machine: str
    pid: int
    started: str | None = None

    @classmethod
    def me(cls) -> Owner:
        return cls(socket.gethostname(), os.getpid(), _process_start(os.getpid()))

    @classmethod
    def from_json(cls, doc: dict | None) -> Owner | None:
        if not doc or "machine" not in doc or "pid" not in doc:
            return None
        return cls(str(doc["machine"]), int(doc["pid"]), doc.get("started"))

    def to_json(self) -> dict[str, Any]:
        return {"machine": self.machine, "pid": self.pid, "started": self.started}

    def alive(self) -> bool | None:
        """False when the process is gone, True when it runs, None when this machine cannot tell."""
        if self.machine != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        now = _process_start(self.pid)
        return not (self.started and now and now != self.started)


def _json(value: Any) -> str:
    return "NULL" if value is None else f"{lit(json.dumps(value, sort_keys=True, default=str))}::jsonb"


def _ensure_script() -> str:
    return ("BEGIN;\n"
            f"DO $pgconverge$ BEGIN PERFORM pg_advisory_xact_lock({_ENSURE_LOCK}); END $pgconverge$;\n"
            + ENSURE_SQL + "COMMIT;\n")


def ensure(runner: Runner) -> None:
    """Create the ledger schema and tables if missing (serialized between concurrent runs)."""
    runner.run_script(_ensure_script())


def exists(runner: Runner) -> bool:
    return bool(runner.query_json(f"SELECT to_json(to_regclass({lit(LEDGER_SCHEMA + '.runs')}) IS NOT NULL);"))


def start(runner: Runner, run: RunStart, ensure_first: bool = False) -> int:
    """Insert a row with outcome ``running``; returns its id. The ledger must exist, or
    ``ensure_first`` creates it in the same psql call."""
    sql = (_ensure_script() if ensure_first else "") + (f"INSERT INTO {RUNS} (action, environment, actor, host, target, source_hash, desired_hash, "
           f"before_hash, plan_hash, plan, backup, snapshot, owner, outcome) VALUES ("
           f"{lit(run.action)}, {lit(run.environment)}, {lit(run.actor)}, {lit(run.host)}, {lit(run.target)}, "
           f"{lit(run.source_hash)}, {lit(run.desired_hash)}, {lit(run.before_hash)}, {lit(run.plan_hash)}, "
           f"{_json(run.plan)}, {_json(run.backup)}, {_json(run.snapshot)}, {_json(Owner.me().to_json())}, 'running') "
           "RETURNING to_json(id);")
    return int(runner.query_json(sql))


def update(runner: Runner, run_id: int, finished: bool = False, **values: Any) -> None:
    """Set columns of a row: jsonb columns take Python objects, the others strings."""
    sets = ["finished_at = now()"] if finished else []
    if not values and not sets:
        return
    for name, value in values.items():
        if name not in COLUMNS or name == "id":
            raise ValueError(f"unknown ledger column {name!r}")
        sets.append(f"{q(name)} = {_json(value) if name in JSON_COLUMNS else lit(value)}")
    runner.run_script(f"UPDATE {RUNS} SET {', '.join(sets)} WHERE id = {int(run_id)};\n")


def finish(runner: Runner, run_id: int, outcome: str, **values: Any) -> None:
    """Close a row: its outcome, the finish time and any other columns (after_hash, smoke, message...)."""
    values = {k: v for k, v in values.items() if v is not None}
    update(runner, run_id, finished=True, outcome=outcome, **values)


@dataclass(frozen=True)
class Interrupted:
    """A row found ``running`` whose run is gone, as it was marked."""

    run: Run
    message: str


def _found(run: Run, current_hash: str | None) -> str:
    if current_hash is None:
        return "schema not inspected"
    if current_hash == run.before_hash:
        return f"schema {current_hash[:12]}, as before that run: none of its plan is applied"
    if run.desired_hash and current_hash == run.desired_hash:
        return f"schema {current_hash[:12]}, the desired one: its plan is applied in full"
    return (f"schema {current_hash[:12]}, neither the one before that run ({(run.before_hash or '?')[:12]}) "
            f"nor the desired one ({(run.desired_hash or '?')[:12]}): partly applied, or changed since")


def close_interrupted(runner: Runner, current: Callable[[], str | None], by: str,
                      running: list[Run] | None = None) -> list[Interrupted]:
    """Mark ``interrupted`` the rows left ``running`` by a process of this machine that is gone,
    recording what was found: the schema now (``after_hash``, compared with the row's before and
    desired hashes), the backup it had taken, who found it. `current` gives the schema hash now
    (called once, only when a row is marked); `by` describes the run that looks. `running`: the
    rows left ``running`` as just read (a ``Look``); None: read here."""
    found: list[Interrupted] = []
    hashes: list[str | None] = []
    for run in _runs(runner, _RUNNING) if running is None else running:
        owner = Owner.from_json(run.owner)
        if owner is None or owner.alive() is not False:
            continue  # a live run, another machine's, or a row of a version that named no owner
        if not hashes:
            hashes.append(current())
        current_hash = hashes[0]
        backup = (run.backup or {}).get("file") if run.backup else None
        message = (f"interrupted: process {owner.pid} on {owner.machine} ended without finishing this {run.action} "
                   f"(found by {by}); {_found(run, current_hash)}; "
                   + (f"backup taken: {backup}" if backup else "no backup recorded"))
        runner.run_script(f"UPDATE {RUNS} SET outcome = 'interrupted', finished_at = now(), "
                          f"after_hash = {lit(current_hash)}, message = {lit(message)} "
                          f"WHERE id = {int(run.id)} AND outcome = 'running';\n")
        found.append(Interrupted(run, message))
    return found


def record(runner: Runner, run: RunStart, outcome: str, **values: Any) -> int:
    """A finished row in one go (restores and drills)."""
    run_id = start(runner, run, ensure_first=True)
    finish(runner, run_id, outcome, **values)
    return run_id


def _select(where: str = "true", limit: int | None = None, order: str = "id DESC") -> str:
    # every column, so that a ledger written by an older version (fewer columns) reads too
    lim = f" LIMIT {int(limit)}" if limit else ""
    return (f"SELECT coalesce(json_agg(r), '[]') FROM (SELECT * FROM {RUNS} "
            f"WHERE {where} ORDER BY {order}{lim}) r;")


def if_ledger(query: str, otherwise: str) -> str:
    """A psql script that runs `query` when the ledger exists and prints `otherwise` when it does
    not: psql itself asks first, so a read of a database without a ledger costs one round trip,
    not two (a no-op deploy reads the ledger several times per database)."""
    return (f"SELECT to_regclass({lit(LEDGER_SCHEMA + '.runs')}) IS NOT NULL AS pgconverge_ledger_exists \\gset\n"
            "\\if :pgconverge_ledger_exists\n" + query.rstrip() + "\n\\else\n"
            f"SELECT {lit(otherwise)};\n\\endif\n")


@dataclass(frozen=True)
class Look:
    """What a deploy's check reads from the ledger, in one statement (``look_query``), read along
    with the preflight: the rows left ``running``, and the newest refresh (for the plan page)."""

    running: list[Run]
    refreshed: Run | None

    @classmethod
    def from_json(cls, doc: dict) -> Look:
        def run(row: dict) -> Run:
            return Run(**{c: row.get(c) for c in COLUMNS})

        refreshed = doc.get("refreshed") or []
        return cls([run(r) for r in doc.get("running") or []], run(refreshed[0]) if refreshed else None)


def look_query() -> str:
    """The psql script of a ``Look``: one JSON value on one line (jsonb prints without the line
    breaks json_agg puts between rows)."""
    def rows(select: str) -> str:
        return "(" + select.removesuffix(";") + ")"

    query = (f"SELECT json_build_object('running', {rows(_select(_RUNNING))}, "
             f"'refreshed', {rows(_select(_REFRESHED, 1))})::jsonb;")
    return if_ledger(query, '{"running": [], "refreshed": []}')


_RUNNING = "outcome = 'running'"
_REFRESHED = "action = 'refresh' AND outcome = 'refreshed'"


def _runs(runner: Runner, where: str = "true", limit: int | None = None) -> list[Run]:
    rows = runner.query_json(if_ledger(_select(where, limit), "[]")) or []
    return [Run(**{c: row.get(c) for c in COLUMNS}) for row in rows]


def history(runner: Runner, limit: int | None = 20, action: str | None = None) -> list[Run]:
    """The newest rows first."""
    return _runs(runner, f"action = {lit(action)}" if action else "true", limit)


def get(runner: Runner, run_id: int) -> Run | None:
    found = _runs(runner, f"id = {int(run_id)}", 1)
    return found[0] if found else None


def run_for_backup(runner: Runner, sha256: str) -> Run | None:
    """The deploy run that took the backup with this checksum."""
    found = _runs(runner, f"action = 'deploy' AND backup->>'sha256' = {lit(sha256)}", 1)
    return found[0] if found else None


def in_progress(runner: Runner) -> list[Run]:
    """Rows still ``running`` (call ``close_interrupted`` first: what is left is a live run, or
    another machine's, which only that machine can tell)."""
    return _runs(runner, _RUNNING)


def refresh_before(runner: Runner, run_id: int) -> Run | None:
    """The newest ``refresh`` that succeeded before run `run_id`: the snapshot that run worked on."""
    found = _runs(runner, f"action = 'refresh' AND outcome = 'refreshed' AND id < {int(run_id)}", 1)
    return found[0] if found else None


def snapshot_note(runner: Runner, look: Look | None = None) -> str | None:
    """What the database's data came from, for its plan page: the newest refresh, if any (from
    `look` when given: read along with the preflight)."""
    found = _runs(runner, _REFRESHED, 1) if look is None else [look.refreshed] if look.refreshed else []
    if not found or not found[0].snapshot:
        return None
    run, snap = found[0], found[0].snapshot
    return (f"refreshed from {snap.get('environment')} {snap.get('database')}'s backup sha256 "
            f"{str(snap.get('sha256'))[:12]} ({snap.get('environment')} schema {str(snap.get('schema_hash'))[:12]}, "
            f"masking {str(snap.get('mask_sha256') or 'none')[:12]}) by ledger run #{run.id} at {run.finished_at}")


def evidence(runner: Runner, desired_hash: str, smoke_hash: str | None = None) -> Run | None:
    """The newest deploy run that reached ``desired_hash`` and passed its smoke checks
    (the checks with ``smoke_hash``, when given): what a sign-off is based on."""
    where = (f"action = 'deploy' AND outcome IN ('converged', 'unchanged') AND desired_hash = {lit(desired_hash)} "
             f"AND after_hash IS NOT NULL AND (smoke->>'passed')::boolean")
    if smoke_hash is not None:
        where += f" AND smoke->>'sha256' = {lit(smoke_hash)}"
    found = _runs(runner, where, 1)
    return found[0] if found else None


def format_history(runs: list[Run]) -> str:
    """A table for people: newest first."""
    if not runs:
        return "-- no runs recorded"

    def short(h: str | None) -> str:
        return (h or "-")[:10]

    rows = [("id", "action", "env", "outcome", "started", "secs", "actor", "before", "after", "backup", "smoke")]
    for r in runs:
        secs = "-"
        if r.started_at and r.finished_at:
            from datetime import datetime

            try:
                secs = f"{(datetime.fromisoformat(r.finished_at) - datetime.fromisoformat(r.started_at)).total_seconds():.1f}"
            except ValueError:
                pass
        backup = (r.backup or {}).get("file", "-") if r.backup else "-"
        smoke = "-"
        if r.smoke:
            checks = r.smoke.get("checks") or []
            ok = sum(1 for c in checks if c.get("passed"))
            smoke = f"{ok}/{len(checks)} passed" if checks else ("passed" if r.smoke.get("passed") else "failed")
        rows.append((str(r.id), r.action, r.environment, r.outcome, (r.started_at or "-")[:19].replace("T", " "),
                     secs, r.actor, short(r.before_hash), short(r.after_hash), backup, smoke))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    for r in runs:
        if r.message:
            lines.append(f"  #{r.id}: {r.message.splitlines()[0][:200]}")
    return "\n".join(lines)
