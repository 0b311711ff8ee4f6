"""The executor: one psql script per plan, the same for the CLI, the API and pyinfra.

The script takes a session advisory lock first, so a second run fails at once
naming the holder. Transactional steps are grouped into units; each unit runs
in a PL/pgSQL block that sets a short lock_timeout and, when a lock is not
granted, rolls the attempt back (releasing every lock it took), sleeps with
backoff and tries again a bounded number of times. So a step never sits in the
lock queue behind a long transaction, blocking the queries that arrive after it.
``CONCURRENTLY`` steps run outside any transaction and are never retried
blindly: an INVALID index they leave is found by the next plan and rebuilt.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from .planner import GROUP, NONE, OWN, Plan, Step, lit

ADVISORY_KEY = 1885365110  # "pgcv": below 2^31, so it shows in pg_locks as classid 0, objid KEY
MARKER = "pgconverge:unit"


@dataclass(frozen=True)
class ExecSettings:
    lock_timeout: str = "2s"
    statement_timeout: str = "30min"
    retries: int = 5  # attempts after the first for a unit whose lock is not granted
    backoff: float = 0.5  # seconds before the first retry, doubling up to backoff_max
    backoff_max: float = 8.0
    application_name: str = "pgconverge"


@dataclass
class Unit:
    mode: str
    steps: list[Step] = field(default_factory=list)


def units(steps: list[Step]) -> list[Unit]:
    """Consecutive "group" steps share a transaction; "own" and "none" steps stand alone."""
    out: list[Unit] = []
    for s in steps:
        if s.mode == GROUP and out and out[-1].mode == GROUP:
            out[-1].steps.append(s)
        else:
            out.append(Unit(s.mode, [s]))
    return out


def _tag(text: str) -> str:
    tag = "$pgconverge$"
    while tag in text:
        tag = f"$pgconverge_{secrets.token_hex(3)}$"
    return tag


def lock_block(settings: ExecSettings) -> str:
    body = f"""
DECLARE
  holder text;
BEGIN
  IF NOT pg_try_advisory_lock({ADVISORY_KEY}) THEN
    SELECT format('pid %s, user %s, application %s, client %s, running since %s',
                  a.pid, a.usename, a.application_name, coalesce(a.client_addr::text, 'local socket'),
                  a.backend_start)
      INTO holder
      FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE l.locktype = 'advisory' AND l.classid = 0 AND l.objid = {ADVISORY_KEY} AND l.objsubid = 1
       AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
     LIMIT 1;
    RAISE EXCEPTION 'another pgconverge run holds the lock on database %: %', current_database(),
      coalesce(holder, 'holder unknown') USING ERRCODE = 'lock_not_available';
  END IF;
END
"""
    return f"DO $pgconverge$ {body} $pgconverge$;\n"


def retry_block(unit_steps: list[Step], settings: ExecSettings) -> str:
    """A transaction unit wrapped so that a lock timeout rolls back and retries."""
    lock_timeout = unit_steps[0].lock_timeout or settings.lock_timeout
    statements = "\n".join(f"      EXECUTE {lit(s.sql)};" for s in unit_steps)
    body = f"""
DECLARE
  attempt int := 0;
BEGIN
  LOOP
    attempt := attempt + 1;
    BEGIN
      PERFORM set_config('lock_timeout', {lit(lock_timeout)}, true);
{statements}
      EXIT;
    EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
      IF attempt > {int(settings.retries)} THEN
        RAISE;
      END IF;
      RAISE NOTICE 'pgconverge: lock not granted within % (attempt %), retrying', {lit(lock_timeout)}, attempt;
      PERFORM pg_sleep(least({settings.backoff_max}, {settings.backoff} * 2 ^ (attempt - 1)));
    END;
  END LOOP;
END
"""
    tag = _tag(body)
    return f"DO {tag}{body}{tag};\n"


def render_script(plan: Plan, settings: ExecSettings | None = None, take_lock: bool = True) -> str:
    """The psql script that applies a plan."""
    settings = settings or ExecSettings()
    out = [f"SET application_name = {lit(settings.application_name)};\n"]
    if take_lock:
        out.append(lock_block(settings))
    for i, unit in enumerate(units(plan.steps)):
        first = unit.steps[0]
        out.append(f"\\echo {MARKER} {i}\n")
        out.append(f"SET statement_timeout = {lit(first.statement_timeout or settings.statement_timeout)};\n")
        if unit.mode == NONE:
            out.append(f"SET lock_timeout = {lit(first.lock_timeout or settings.lock_timeout)};\n")
            out.append(first.sql.rstrip().rstrip(";") + ";\n")
        else:
            out.append(retry_block(unit.steps, settings))
    out.append("RESET lock_timeout;\nRESET statement_timeout;\n")
    if take_lock:
        out.append(f"SELECT pg_advisory_unlock({ADVISORY_KEY}) \\g /dev/null\n")
    out.append(f"\\echo {MARKER} done\n")
    return "".join(out)


__all__ = ["ExecSettings", "Unit", "units", "render_script", "ADVISORY_KEY", "MARKER", "GROUP", "OWN", "NONE"]
