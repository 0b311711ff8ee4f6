"""The executor: one psql script per plan, the same for the CLI, the API and pyinfra.

The script takes a session advisory lock first, so a second run fails at once
naming the holder. Transactional steps are grouped into units; each unit runs
in a PL/pgSQL block that sets a short lock_timeout (500 ms by default) and,
when a lock is not granted, rolls the attempt back (releasing every lock it
took), sleeps a jittered, growing pause and tries again, until the unit's
``lock_deadline`` (60 s by default) has passed. So a step never sits in the
lock queue behind a long transaction for longer than one lock_timeout,
blocking the queries that arrive after it, and it sleeps holding no lock.

When the deadline passes, the unit fails with a message that names the
sessions holding (or queued for) locks on the tables the unit touches: pid,
user, application, state, how long their transaction has been open. The
session cannot ask ``pg_blocking_pids`` about its own wait (it is waiting), so
this is gathered in the block as soon as the lock is refused.

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

from pgconverge.exec.durations import seconds, setting_text
from pgconverge.runbook.ledger import DATA_BLOCKS, ENSURE_SQL
from pgconverge.planning.steps import GROUP, NONE, OWN, Plan, Step
from pgconverge.quoting import lit

ADVISORY_KEY = 1885365110  # "pgcv": below 2^31, so it shows in pg_locks as classid 0, objid KEY
MARKER = "pgconverge:unit"
DATA_MARKER = "pgconverge:data"


@dataclass(frozen=True)
class ExecSettings:
    """How the executor waits for locks. The defaults keep any other session's wait behind one of our
    lock requests under lock_timeout (500 ms), and give up on a unit after lock_deadline. Durations
    are PostgreSQL's ("500ms", "60s"; a number is milliseconds)."""

    lock_timeout: str | int = "500ms"  # each attempt of a transactional unit; then it rolls back and pauses
    lock_deadline: str | int = "60s"  # the whole wait of one unit, all attempts and pauses; then the run fails
    statement_timeout: str | int = "30min"
    concurrent_lock_timeout: str = "0"  # CONCURRENTLY steps; "0": bounded by statement_timeout only
    retries: int | None = None  # at most this many attempts after the first (None: lock_deadline decides)
    # the pause after attempt n: min(backoff_max, backoff * 2^(n-1)) seconds, times a random factor in
    # [0.5, 1) so that waiting runs do not fall into step with each other or with the holder
    backoff: float = 0.5
    backoff_max: float = 4.0
    application_name: str = "pgconverge"

    def __post_init__(self) -> None:
        # refused here, before anything runs, rather than by the server in the middle of a run
        seconds(self.lock_timeout, "lock_timeout")
        seconds(self.statement_timeout, "statement_timeout")
        seconds(self.concurrent_lock_timeout, "concurrent_lock_timeout")
        if seconds(self.lock_deadline, "lock_deadline") <= 0:
            raise ValueError(f"lock_deadline: {self.lock_deadline!r} must be longer than 0 (e.g. 60s): it bounds "
                             "how long a step retries for its lock")
        if self.retries is not None and (isinstance(self.retries, bool) or not isinstance(self.retries, int)
                                         or self.retries < 0):
            raise ValueError(f"lock_retries: {self.retries!r} is not a number of retries (0 or more)")
        if not 0 <= self.backoff <= self.backoff_max:
            raise ValueError(f"backoff: {self.backoff!r} must be between 0 and backoff_max ({self.backoff_max!r})")

    @property
    def deadline_seconds(self) -> float:
        return seconds(self.lock_deadline, "lock_deadline")


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


def _text_array(values: list[str]) -> str:
    return "ARRAY[" + ", ".join(lit(v) for v in values) + "]::text[]"


def blockers_sql(tables: list[str], relations: list[str]) -> str:
    """PL/pgSQL that fills ``blockers`` with the sessions holding or queued for locks on the unit's
    tables, or else those whose transaction is older than the wait. `tables` are table ids
    (``table:public.t``, matched by the server, so a dot inside a name cannot split it wrongly),
    `relations` names as ``to_regclass`` takes them. No query text: it may carry data."""
    who = ("format('pid %s (user %s, application %s, state %s, transaction open for %s s%s)', b.pid, b.who, b.app, "
           "b.state, b.age, b.locks)")
    columns = """a.pid, coalesce(a.usename, a.backend_type) AS who,
                 coalesce(nullif(a.application_name, ''), '(none)') AS app,
                 coalesce(a.state, 'not visible to this role') AS state, a.xact_start AS since,
                 coalesce(round(extract(epoch FROM clock_timestamp() - a.xact_start)::numeric, 1)::text, '?') AS age"""
    # when nobody holds a lock on these tables (a row lock, a lock on a type), the transactions older
    # than the wait. One line: the block is repeated in every unit of the script.
    return " ".join(f"""
        SELECT string_agg({who}, '; ' ORDER BY b.since NULLS LAST, b.pid) INTO blockers
          FROM (SELECT {columns},
                       ', ' || string_agg(DISTINCT CASE WHEN l.granted THEN 'holds ' ELSE 'waits for ' END
                                          || l.mode || ' on ' || l.relation::regclass::text, ', ') AS locks
                  FROM pg_catalog.pg_locks l
                  JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
                  JOIN pg_catalog.pg_class c ON c.oid = l.relation
                  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                 WHERE l.locktype = 'relation' AND l.pid <> pg_backend_pid()
                   AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
                   AND ('table:' || n.nspname || '.' || c.relname = ANY ({_text_array(tables)})
                        OR c.oid = ANY (SELECT to_regclass(x) FROM unnest({_text_array(relations)}) x))
                 GROUP BY a.pid, a.usename, a.backend_type, a.application_name, a.state, a.xact_start
                 ORDER BY a.xact_start NULLS LAST LIMIT 10) b;
        IF blockers IS NOT NULL THEN
          blockers := 'blocked by ' || blockers;
        ELSE
          SELECT string_agg({who}, '; ' ORDER BY b.since, b.pid) INTO blockers
            FROM (SELECT {columns}, '' AS locks
                    FROM pg_catalog.pg_stat_activity a
                   WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND a.xact_start < started
                   ORDER BY a.xact_start LIMIT 10) b;
          blockers := coalesce('sessions with a transaction open since before the wait began: ' || blockers,
                               'no other session holds a lock on its tables now (the holder may just have left)');
        END IF;""".split())


def retry_block(statements: list[tuple[str, str]], lock_timeout: str, settings: ExecSettings,
                extra: str = "", tables: list[str] | None = None, relations: list[str] | None = None) -> str:
    """A transaction unit wrapped so that a lock timeout rolls back and retries.

    `statements` are (label, sql) pairs; the label names the step in any error.
    Each attempt is a subtransaction: when a lock is not granted within
    lock_timeout, everything the attempt did (and every lock it took) is rolled
    back, so nothing queues behind us while we pause. The pauses grow and are
    jittered; once the unit has waited settings.lock_deadline it gives up, naming
    the sessions on `tables` (ids) and `relations` (names) that hold it up.
    """
    body_lines = []
    for label, text in statements:
        body_lines.append(f"      step := {lit(label)};")
        body_lines.append(f"      EXECUTE {lit(text)};")
    if extra:
        body_lines.append(extra)
    statements_sql = "\n".join(body_lines)
    timeout = lit(setting_text(lock_timeout))
    deadline = settings.deadline_seconds
    deadline_text = lit(setting_text(settings.lock_deadline))
    if settings.retries is None:
        give_up = f"waited >= {deadline!r}"
    else:
        give_up = f"waited >= {deadline!r} OR attempt > {int(settings.retries)}"
    body = f"""
DECLARE
  attempt int := 0;
  step text := '';
  started timestamptz := clock_timestamp();
  waited float8;
  blockers text;
  why text;
  advice text;
  err_state text;
  err_message text;
  err_detail text;
  err_hint text;
BEGIN
  LOOP
    attempt := attempt + 1;
    BEGIN
      PERFORM set_config('lock_timeout', {timeout}, true);
{statements_sql}
      EXIT;
    EXCEPTION
      WHEN lock_not_available OR deadlock_detected THEN
        -- the attempt is rolled back: from here on this session holds none of the unit's locks
        waited := extract(epoch FROM clock_timestamp() - started);
        IF {give_up} THEN
{blockers_sql(tables or [], relations or [])}
          IF waited >= {deadline!r} THEN
            why := format('the lock_deadline of %s', {deadline_text});
            advice := 'end those sessions (or let them finish) and run again, or raise lock_deadline '
                      '(--lock-deadline, pgconverge_lock_deadline, lock_deadline=) to wait longer';
          ELSE
            why := format('lock_retries = %s', {lit(str(settings.retries))});
            advice := 'end those sessions (or let them finish) and run again, or raise lock_retries '
                      '(--lock-retries, pgconverge_lock_retries, retries=) to try longer';
          END IF;
          RAISE EXCEPTION 'pgconverge: % : lock not granted within % after % attempt(s) over % s; gave up at %, '
                          'nothing of it was applied; %; %',
            step, {timeout}, attempt, round(waited::numeric, 1), why, blockers, advice
            USING ERRCODE = SQLSTATE, DETAIL = SQLERRM;  -- the advice is in the message, seen everywhere
        END IF;
        RAISE NOTICE 'pgconverge: % : lock not granted within % (attempt %), retrying', step, {timeout}, attempt;
        -- a growing pause, jittered, never past the deadline, holding no lock of the unit
        PERFORM pg_sleep(greatest(0, least({float(settings.deadline_seconds)} - waited,
          least({float(settings.backoff_max)}, {float(settings.backoff)} * 2 ^ least(attempt - 1, 30))
          * (0.5 + random() / 2))));
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


def unit_tables(steps: list[Step]) -> list[str]:
    """The table ids a unit locks: the tables its steps change and those they reference."""
    out: list[str] = []
    for s in steps:
        for t in ([s.table] if s.table else []) + sorted(r for r in s.requires if r.startswith("table:")):
            if t not in out:
                out.append(t)
    return out


def step_label(index: int, total: int, step: Step) -> str:
    return f"step {index}/{total} ({step.kind} {step.object})"


def data_block_unit(block, settings: ExecSettings) -> str:
    """One data block and its ledger row, in one retrying transaction."""
    from pgconverge.exec.datablocks import relations, statements

    label = f"data block {block.name} ({block.file}:{block.line})"
    record = (f"      step := {lit(label + ': ledger row')};\n"
              f"      INSERT INTO {DATA_BLOCKS} (name, sha256, actor) VALUES "
              f"({lit(block.name)}, {lit(block.sha256)}, current_user);")
    return retry_block([(label, text) for text in statements(block)], settings.lock_timeout, settings, record,
                       relations=relations(block))


def render_script(plan: Plan, settings: ExecSettings | None = None, take_lock: bool = True) -> str:
    """The psql script that applies a plan: lock, data blocks "before", the steps, data blocks "after"."""
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
                out.append(f"SET statement_timeout = {lit(setting_text(settings.statement_timeout))};\n")
                out.append(data_block_unit(b, settings))

    run_blocks("before")
    total = len(plan.steps)
    number = {id(s): n for n, s in enumerate(plan.steps, 1)}
    for i, unit in enumerate(units(plan.steps)):
        first = unit.steps[0]
        out.append(f"\\echo {MARKER} {i}\n")
        statement_timeout = setting_text(first.statement_timeout or settings.statement_timeout)
        out.append(f"SET statement_timeout = {lit(statement_timeout)};\n")
        if unit.mode == NONE:
            lock_timeout = setting_text(first.lock_timeout or settings.concurrent_lock_timeout)
            out.append(f"SET lock_timeout = {lit(lock_timeout)};\n")
            out.append(first.sql.rstrip().rstrip(";") + ";\n")
        else:
            pairs = [(step_label(number[id(s)], total, s), s.sql) for s in unit.steps]
            out.append(retry_block(pairs, first.lock_timeout or settings.lock_timeout, settings,
                                   tables=unit_tables(unit.steps)))
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
