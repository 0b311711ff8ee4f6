"""The executor: one psql script per plan, the same for the CLI, the API and pyinfra.

The script takes a session advisory lock first, so a second run fails at once
naming the holder. Transactional steps are grouped into units; each unit runs
in a PL/pgSQL block that sets a short lock_timeout and, when a lock is not
granted, rolls the attempt back (releasing every lock it took), sleeps with
backoff and tries again a bounded number of times. So a step never sits in the
lock queue behind a long transaction, blocking the queries that arrive after it.
``CONCURRENTLY`` steps run outside any transaction and are never retried
blindly: an INVALID index they leave is found by the next plan and rebuilt.
They wait for their lock up to ``concurrent_lock_timeout`` (default: no limit
but statement_timeout): SHARE UPDATE EXCLUSIVE does not conflict with reads or
writes, even while queued, and a build must wait for older writing transactions,
so a short timeout would only fail the build and leave an INVALID index behind.

A failure names its step: errors raised inside a unit are re-raised as
``pgconverge: step N/M (<kind> <object>) failed: ...`` with PostgreSQL's
SQLSTATE, DETAIL and HINT, and psql echoes any other failing statement
(``ECHO errors``). One-time data blocks run before or after the steps, each in
the same kind of retrying unit together with its ledger row.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from pgconverge.runbook.ledger import DATA_BLOCKS, ENSURE_SQL
from pgconverge.planning.steps import GROUP, NONE, OWN, Plan, Step
from pgconverge.quoting import lit

ADVISORY_KEY = 1885365110  # "pgcv": below 2^31, so it shows in pg_locks as classid 0, objid KEY
MARKER = "pgconverge:unit"
DATA_MARKER = "pgconverge:data"


@dataclass(frozen=True)
class ExecSettings:
    lock_timeout: str = "2s"
    statement_timeout: str = "30min"
    concurrent_lock_timeout: str = "0"  # CONCURRENTLY steps; "0": bounded by statement_timeout only
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
    RAISE EXCEPTION 'pgconverge: another pgconverge run holds the lock on database %: %; nothing was changed',
      current_database(), coalesce(holder, 'holder unknown') USING ERRCODE = 'lock_not_available';
  END IF;
END
"""
    return f"DO $pgconverge$ {body} $pgconverge$;\n"


def retry_block(statements: list[tuple[str, str]], lock_timeout: str, settings: ExecSettings,
                extra: str = "") -> str:
    """A transaction unit wrapped so that a lock timeout rolls back and retries.

    `statements` are (label, sql) pairs; the label names the step in any error.
    Each attempt is a subtransaction: when a lock is not granted within
    lock_timeout, everything the attempt did (and every lock it took) is rolled
    back, so nothing queues behind us while we sleep.
    """
    body_lines = []
    for label, text in statements:
        body_lines.append(f"      step := {lit(label)};")
        body_lines.append(f"      EXECUTE {lit(text)};")
    if extra:
        body_lines.append(extra)
    statements_sql = "\n".join(body_lines)
    body = f"""
DECLARE
  attempt int := 0;
  step text := '';
  err_state text;
  err_message text;
  err_detail text;
  err_hint text;
BEGIN
  LOOP
    attempt := attempt + 1;
    BEGIN
      PERFORM set_config('lock_timeout', {lit(lock_timeout)}, true);
{statements_sql}
      EXIT;
    EXCEPTION
      WHEN lock_not_available OR deadlock_detected THEN
        IF attempt > {int(settings.retries)} THEN
          RAISE EXCEPTION 'pgconverge: % : lock not granted within % after % attempt(s); gave up, nothing of it was applied',
            step, {lit(lock_timeout)}, attempt
            USING ERRCODE = SQLSTATE, DETAIL = SQLERRM,
                  HINT = 'another session holds a conflicting lock (see pg_locks and pg_stat_activity): '
                         'run again when it is gone, or raise lock_timeout / retries';
        END IF;
        RAISE NOTICE 'pgconverge: % : lock not granted within % (attempt %), retrying', step, {lit(lock_timeout)},
          attempt;
        PERFORM pg_sleep(least({float(settings.backoff_max)}, {float(settings.backoff)} * 2 ^ (attempt - 1)));
      WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS err_state = RETURNED_SQLSTATE, err_message = MESSAGE_TEXT,
                                err_detail = PG_EXCEPTION_DETAIL, err_hint = PG_EXCEPTION_HINT;
        -- same SQLSTATE, DETAIL and HINT; the message names the step
        err_message := format('pgconverge: %s failed (its transaction was rolled back): %s', step, err_message);
        IF coalesce(err_detail, '') = '' AND coalesce(err_hint, '') = '' THEN
          RAISE EXCEPTION USING ERRCODE = err_state, MESSAGE = err_message;
        ELSIF coalesce(err_hint, '') = '' THEN
          RAISE EXCEPTION USING ERRCODE = err_state, MESSAGE = err_message, DETAIL = err_detail;
        ELSIF coalesce(err_detail, '') = '' THEN
          RAISE EXCEPTION USING ERRCODE = err_state, MESSAGE = err_message, HINT = err_hint;
        ELSE
          RAISE EXCEPTION USING ERRCODE = err_state, MESSAGE = err_message, DETAIL = err_detail, HINT = err_hint;
        END IF;
    END;
  END LOOP;
END
"""
    tag = _tag(body)
    return f"DO {tag}{body}{tag};\n"


def step_label(index: int, total: int, step: Step) -> str:
    return f"step {index}/{total} ({step.kind} {step.object})"


def data_block_unit(block, settings: ExecSettings) -> str:
    """One data block and its ledger row, in one retrying transaction."""
    from pgconverge.exec.datablocks import statements

    label = f"data block {block.name} ({block.file}:{block.line})"
    record = (f"      step := {lit(label + ': ledger row')};\n"
              f"      INSERT INTO {DATA_BLOCKS} (name, sha256, actor) VALUES "
              f"({lit(block.name)}, {lit(block.sha256)}, current_user);")
    return retry_block([(label, text) for text in statements(block)], settings.lock_timeout, settings, record)


def render_script(plan: Plan, settings: ExecSettings | None = None, take_lock: bool = True,
                  scratch: bool = False) -> str:
    """The psql script that applies a plan: lock, data blocks "before", the steps, data blocks "after".
    `scratch`: for the proof's rehearsal, each step's scratch form where it has one (no code of sql/
    is run there)."""
    settings = settings or ExecSettings()
    out = [f"SET application_name = {lit(settings.application_name)};\n",
           "\\set ECHO errors\n"]  # psql prints any failing statement after its error
    if take_lock:
        out.append(lock_block(settings))
    blocks = list(plan.data_blocks)
    if blocks:
        out.append(ENSURE_SQL)

    def run_blocks(when: str) -> None:
        for b in blocks:
            if b.when == when:
                out.append(f"\\echo {DATA_MARKER} {b.name}\n")
                out.append(f"SET statement_timeout = {lit(settings.statement_timeout)};\n")
                out.append(data_block_unit(b, settings))

    run_blocks("before")
    total = len(plan.steps)
    number = {id(s): n for n, s in enumerate(plan.steps, 1)}
    for i, unit in enumerate(units(plan.steps)):
        first = unit.steps[0]
        out.append(f"\\echo {MARKER} {i}\n")
        out.append(f"SET statement_timeout = {lit(first.statement_timeout or settings.statement_timeout)};\n")
        if unit.mode == NONE:
            out.append(f"SET lock_timeout = {lit(first.lock_timeout or settings.concurrent_lock_timeout)};\n")
            out.append(first.sql.rstrip().rstrip(";") + ";\n")
        else:
            pairs = [(step_label(number[id(s)], total, s), text) for s in unit.steps
                     for text in ((s.scratch or (s.sql,)) if scratch else (s.sql,))]
            out.append(retry_block(pairs, first.lock_timeout or settings.lock_timeout, settings))
    run_blocks("after")
    out.append("RESET lock_timeout;\nRESET statement_timeout;\n")
    if take_lock:
        out.append(f"SELECT pg_advisory_unlock({ADVISORY_KEY}) \\g /dev/null\n")
    out.append(f"\\echo {MARKER} done\n")
    return "".join(out)


def failed_step(plan: Plan, last_marker: str | None) -> str:
    """Which step or data block a failed script was in, from the last marker psql printed."""
    if not last_marker:
        return ""  # taking the run lock: its message says so
    parts = last_marker.split()
    if parts[0] == DATA_MARKER:
        b = next((b for b in plan.data_blocks if b.name == parts[1]), None)
        return f"data block {parts[1]}" + (f" ({b.file}:{b.line})" if b else "")
    unit = units(plan.steps)[int(parts[1])]
    total = len(plan.steps)
    first = plan.steps.index(unit.steps[0]) + 1
    if len(unit.steps) == 1:
        s = unit.steps[0]
        return f"{step_label(first, total, s)}: {s.sql.strip()[:200]}"
    return f"steps {first}-{first + len(unit.steps) - 1}/{total} (one transaction)"


__all__ = ["ExecSettings", "Unit", "units", "render_script", "failed_step", "ADVISORY_KEY", "MARKER", "DATA_MARKER",
           "GROUP", "OWN", "NONE"]
