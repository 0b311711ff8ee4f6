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


def marker(text: str) -> str:
    """A line psql echoes between units, with the server's clock (epoch seconds) last: the run's
    output names the unit that runs, and the marks give each unit's time (``exec.progress``)."""
    return f"SELECT extract(epoch FROM clock_timestamp()) AS pgconverge_clock \\gset\n\\echo {text} :pgconverge_clock\n"


def read_marker(line: str) -> tuple[str, str, float | None] | None:
    """(marker, unit index / block name / "done", server clock) of a marker line, else None."""
    parts = line.split()
    if len(parts) < 2 or parts[0] not in (MARKER, DATA_MARKER):
        return None
    try:
        clock = float(parts[2]) if len(parts) > 2 else None
    except ValueError:
        clock = None
    return parts[0], parts[1], clock


def marker_label(plan: Plan, kind: str, key: str) -> str | None:
    """What a marker announces, as a step is named in messages; None for the end of the run."""
    if kind == DATA_MARKER:
        b = next((b for b in plan.data_blocks if b.name == key), None)
        return f"data block {key}" + (f" ({b.file}:{b.line})" if b else "")
    if key == "done":
        return None
    unit = units(plan.steps)[int(key)]
    total = len(plan.steps)
    first = plan.steps.index(unit.steps[0]) + 1
    if len(unit.steps) == 1:
        return step_label(first, total, unit.steps[0])
    return f"steps {first}-{first + len(unit.steps) - 1}/{total} (one transaction)"


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
                out.append(marker(f"{DATA_MARKER} {b.name}"))
                out.append(f"SET statement_timeout = {lit(setting_text(settings.statement_timeout))};\n")
                out.append(data_block_unit(b, settings))

    run_blocks("before")
    total = len(plan.steps)
    number = {id(s): n for n, s in enumerate(plan.steps, 1)}
    for i, unit in enumerate(units(plan.steps)):
        first = unit.steps[0]
        out.append(marker(f"{MARKER} {i}"))
        statement_timeout = setting_text(first.statement_timeout or settings.statement_timeout)
        out.append(f"SET statement_timeout = {lit(statement_timeout)};\n")
        if unit.mode == NONE:
            lock_timeout = setting_text(first.lock_timeout or settings.concurrent_lock_timeout)
            out.append(f"SET lock_timeout = {lit(lock_timeout)};\n")
            # the step's label in a comment the server keeps in pg_stat_activity, where the progress
            # watcher reads it (as it reads ``step := '...'`` in a DO block)
            label = step_label(number[id(first)], total, first).replace("*/", "* /")
            out.append(f"/* pgconverge: step := {lit(label)} */ " + first.sql.rstrip().rstrip(";") + ";\n")
        else:
            pairs = [(step_label(number[id(s)], total, s), text) for s in unit.steps
                     for text in ((s.scratch or (s.sql,)) if scratch else (s.sql,))]
            out.append(retry_block(pairs, first.lock_timeout or settings.lock_timeout, settings,
                                   tables=unit_tables(unit.steps)))
    run_blocks("after")
    out.append("RESET lock_timeout;\nRESET statement_timeout;\n")
    if take_lock:
        out.append(f"SELECT pg_advisory_unlock({ADVISORY_KEY}) \\g /dev/null\n")
    out.append(marker(f"{MARKER} done"))
    return "".join(out)


@dataclass(frozen=True)
class Timing:
    """What one step runs under when the plan is applied: its transaction unit and timeouts."""

    unit: int  # its index in ``units(plan.steps)``
    transaction: bool  # False: CONCURRENTLY and the like, outside any transaction
    lock_timeout: str
    statement_timeout: str


def unit_timeouts(unit: Unit, settings: ExecSettings) -> tuple[str, str]:
    """(lock_timeout, statement_timeout) of a unit, as ``render_script`` sets them: the first
    step's own values, else the settings' (``concurrent_lock_timeout`` outside a transaction)."""
    first = unit.steps[0]
    fallback = settings.concurrent_lock_timeout if unit.mode == NONE else settings.lock_timeout
    return first.lock_timeout or fallback, first.statement_timeout or settings.statement_timeout


def timings(plan: Plan, settings: ExecSettings | None = None) -> list[Timing]:
    """One per step of the plan, in order."""
    settings = settings or ExecSettings()
    out: list[Timing] = []
    for i, unit in enumerate(units(plan.steps)):
        lock, statement = unit_timeouts(unit, settings)
        out += [Timing(i, unit.mode != NONE, lock, statement) for _s in unit.steps]
    return out


def plan_settings(plan: Plan) -> ExecSettings:
    """The execution settings a plan was made with (``api.Options.settings``), else the defaults."""
    settings = getattr(plan.options, "settings", None)
    return settings if isinstance(settings, ExecSettings) else ExecSettings()


def plan_json(plan: Plan, settings: ExecSettings | None = None) -> dict:
    """``Plan.to_json()`` with each step's effective lock_timeout and statement_timeout (the values
    the step runs under, not only those it sets itself) and its transaction unit."""
    settings = settings or plan_settings(plan)
    doc = plan.to_json()
    for step, t in zip(doc["steps"], timings(plan, settings)):
        step.update(lock_timeout=t.lock_timeout, statement_timeout=t.statement_timeout, unit=t.unit)
    doc["execution"] = {"lock_timeout": settings.lock_timeout, "statement_timeout": settings.statement_timeout,
                        "concurrent_lock_timeout": settings.concurrent_lock_timeout,
                        "lock_deadline": settings.lock_deadline, "retries": settings.retries}
    return doc


# squawk's rules about statements that lock or scan a table in use; they do not concern a table
# the same run created (squawk itself spares one created in the same transaction)
NEW_TABLE_RULES = ("require-concurrent-index-creation", "constraint-missing-not-valid",
                   "adding-foreign-key-constraint", "disallowed-unique-constraint")


def _comment(text: str) -> str:
    """`text` as one SQL comment line: a newline inside a quoted identifier must not end it."""
    return "-- " + "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def render_plan_script(plan: Plan, settings: ExecSettings | None = None, header: tuple[str, ...] = ()) -> str:
    """The plan as a psql script to read, review and run by hand: what ``render_script`` runs,
    with the same statements, the same transaction units, the same ``lock_timeout`` and
    ``statement_timeout`` set before each unit, ``CONCURRENTLY`` steps outside transactions,
    the run lock and the data blocks with their ledger rows. Only the retry loop is left out: a
    lock not granted stops the script (``ON_ERROR_STOP``) with that unit rolled back, and it can be
    run again. Plain statements rather than ``DO`` blocks, so that linters (squawk) see them.
    `header`: lines of text put at the top as comments."""
    settings = settings or plan_settings(plan)
    all_units = units(plan.steps)
    out = [_comment(line) + "\n" for line in header]
    out.append(
        "-- The psql script of this plan: the statements `pgconverge apply` runs, in the same transactions,\n"
        "-- each unit after its own SET lock_timeout and statement_timeout. Run it with\n"
        "--     psql -X -d DATABASE -f THIS_FILE\n"
        f"-- apply also retries a unit whose lock is not granted ({settings.retries} times, with backoff); here\n"
        "-- the unit is rolled back and the script stops: run it again when the lock holder is gone.\n"
        "-- It takes pgconverge's run lock, so it does not run alongside a deploy.\n")
    if plan.is_empty:
        out.append("-- no changes: the database is converged\n")
        return "".join(out)
    out += ["\\set ON_ERROR_STOP on\n", f"SET application_name = {lit(settings.application_name)};\n",
            f"SET lock_timeout = {lit(settings.lock_timeout)};\n",
            f"SET statement_timeout = {lit(settings.statement_timeout)};\n",
            "-- the run lock (a session advisory lock): fails at once, naming the holder, if a run holds it\n",
            lock_block(settings)]
    blocks = list(plan.data_blocks)
    if blocks:
        out += ["\n-- the ledger of one-time data blocks (pgconverge.data_blocks), created if missing\n", ENSURE_SQL]

    def run_blocks(when: str) -> None:
        from pgconverge.exec.datablocks import statements

        for n, b in enumerate(blocks, 1):
            if b.when != when:
                continue
            out.append("\n" + _comment(f"data block {b.name} ({b.file}:{b.line}), {when} the steps: "
                                        "runs once, recorded in the same transaction") + "\n")
            out.extend([f"\\echo pgconverge: data block {n}/{len(blocks)}\n",
                    f"SET lock_timeout = {lit(settings.lock_timeout)};\n",
                    f"SET statement_timeout = {lit(settings.statement_timeout)};\n", "BEGIN;\n"])
            out.extend(text.rstrip().rstrip(";") + ";\n" for text in statements(b))
            out.append(f"INSERT INTO {DATA_BLOCKS} (name, sha256, actor) VALUES "
                       f"({lit(b.name)}, {lit(b.sha256)}, current_user);\nCOMMIT;\n")

    run_blocks("before")
    total = len(plan.steps)
    number = {id(s): n for n, s in enumerate(plan.steps, 1)}
    created: dict[str, Step] = {}  # table id -> the step of this plan that creates it
    for i, unit in enumerate(all_units):
        lock, statement = unit_timeouts(unit, settings)
        where = ("outside a transaction" if unit.mode == NONE
                 else "one transaction" if len(unit.steps) > 1 else "its own transaction")
        out.append(f"\n-- unit {i + 1}/{len(all_units)}: {where}\n")
        out.append(f"\\echo pgconverge: unit {i + 1}/{len(all_units)}\n")
        out += [f"SET lock_timeout = {lit(lock)};\n", f"SET statement_timeout = {lit(statement)};\n"]
        if unit.mode != NONE:
            out.append("BEGIN;\n")
        for s in unit.steps:
            out.append(_comment(step_label(number[id(s)], total, s)) + "\n")
            out += [_comment(f"hazard {h.name}: {h.reason}") + "\n" for h in s.hazards]
            made_by = created.get(s.table or "")
            if made_by is not None and made_by not in unit.steps:
                # squawk spares a table created in the same transaction only; this one was created by
                # an earlier unit of this run, so it is empty and unused, and these rules do not apply
                out.append(_comment(f"{s.table} is created by step {number[id(made_by)]} of this plan and holds "
                                    "no rows: nothing waits on it, and checking its rows is instant") + "\n")
                out.append(f"-- squawk-ignore {', '.join(NEW_TABLE_RULES)}\n")
            out.append(s.sql.rstrip().rstrip(";") + ";\n")
            if s.kind == "create_table" and s.table:
                created[s.table] = s
        if unit.mode != NONE:
            out.append("COMMIT;\n")
    run_blocks("after")
    out.append(f"\nRESET lock_timeout;\nRESET statement_timeout;\nSELECT pg_advisory_unlock({ADVISORY_KEY});\n")
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


__all__ = ["marker", "read_marker", "marker_label", "ExecSettings", "Unit", "units", "render_script", "render_plan_script", "Timing", "timings",
           "unit_timeouts", "plan_json", "plan_settings", "failed_step", "ADVISORY_KEY", "MARKER", "DATA_MARKER",
           "GROUP", "OWN", "NONE"]
