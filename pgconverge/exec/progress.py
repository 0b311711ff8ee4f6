"""Progress of long steps: what is running, how far it got, and each step's time at the end.

A step of a plan runs inside one psql session, which cannot talk while it works. So, while a
run lasts, a *watcher* thread looks at it from outside: every ``poll`` seconds (2) it samples
on a separate, short-lived connection (its own psql, through the same runner, hence the same
password handling), reading only statistics views under a 1 s statement_timeout in a read-only
session, never a lock that could queue behind the run or in front of it:

- ``pg_stat_progress_create_index`` for CREATE INDEX [CONCURRENTLY] and REINDEX: phase, blocks,
  tuples, lockers waited for, partitions;
- ``pg_stat_activity`` for every other long statement (VALIDATE CONSTRAINT, a data block, a
  rewrite): how long it has run and what it waits on.

The run's session is the one holding pgconverge's advisory lock in that database. A backup is
watched by the size of the file pg_dump writes (``runbook.backup``).

Samples go to a ``Reporter``. ``LineReporter`` (pipes, CI logs, pyinfra) writes a line at most
every ``every`` seconds (4, so that a long step reports at least every 5 s); ``BarReporter``
(a terminal) redraws one bar line on each sample. A step shorter than ``every`` prints nothing
but its time in the table at the end (``StepTime``), measured by the server's clock at the
markers the script echoes, so it is exact whatever carries psql's output.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

__all__ = ["Count", "Progress", "StepTime", "Reporter", "LineReporter", "BarReporter", "NullReporter",
           "watching", "session_sampler", "format_line", "format_bar", "format_times", "human_bytes",
           "reporter_for_stream", "POLL", "EVERY"]

POLL = 2.0  # seconds between samples
EVERY = 4.0  # seconds between two lines of one step (a sample is late by its own query time, at most)


@dataclass(frozen=True)
class Count:
    """One counter of a step: ``blocks 4500/10000``; `total` None when unknown (bytes written)."""

    name: str
    done: int
    total: int | None = None


@dataclass(frozen=True)
class Progress:
    """One sample of a running step."""

    what: str  # the step, as the run names it: "step 3/5 (create_index index:public.t_i)", "backup of app"
    elapsed: float  # seconds since it began
    phase: str = ""  # "building index: scanning table", "waiting for a lock (relation)", "writing"
    counts: tuple[Count, ...] = ()
    detail: str = ""  # anything else worth a word: "index public.t_i on public.t", "2.1 MB/s"

    def main_count(self) -> Count | None:
        """The counter a bar shows: the one the phase is about, else the first with a total."""
        known = [c for c in self.counts if c.total]
        for c in known:
            if c.name in self.phase:
                return c
        if "scanning" in self.phase:
            known.sort(key=lambda c: c.name != "blocks")
        return known[0] if known else None


@dataclass(frozen=True)
class StepTime:
    """How long one unit of a run took (a step, steps sharing a transaction, a data block)."""

    what: str
    seconds: float


class Reporter(Protocol):
    """Where progress goes."""

    def progress(self, p: Progress) -> None:
        """A sample of the running step (called from the watcher's thread)."""
        ...

    def done(self) -> None:
        """The watched step ended (or another begins): a bar finishes its line."""
        ...

    def times(self, times: list[StepTime]) -> None:
        """Each step's time, once the run is over."""
        ...


class NullReporter:
    def progress(self, p: Progress) -> None:
        pass

    def done(self) -> None:
        pass

    def times(self, times: list[StepTime]) -> None:
        pass


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def _count_text(c: Count) -> str:
    if c.name == "bytes":
        return human_bytes(c.done) + (f" of {human_bytes(c.total)}" if c.total else "") + " written"
    if c.total:
        return f"{c.name} {c.done}/{c.total} ({100 * c.done / c.total:.0f}%)"
    return f"{c.name} {c.done}"


def format_line(p: Progress) -> str:
    """One plain line: ``progress: step 2/3 (...): building index: scanning table, blocks 10/20 (50%),
    tuples 0, 12 s``."""
    parts = [x for x in (p.phase, *(_count_text(c) for c in p.counts), p.detail) if x]
    return f"progress: {p.what}: {', '.join(parts + [f'{p.elapsed:.0f} s'])}"


def format_bar(p: Progress, width: int = 80) -> str:
    """One bar line for a terminal, at most `width` characters: a bar when the total is known,
    else what has been done so far."""
    main = p.main_count()
    tail = f" {p.elapsed:.0f} s"
    if main is not None:
        frac = min(1.0, max(0.0, main.done / main.total)) if main.total else 0.0
        cells = 20
        filled = int(frac * cells)
        bar = f"[{'#' * filled}{'.' * (cells - filled)}] {100 * frac:3.0f}%"
        info = f"{p.phase}, {_count_text(main)}" if p.phase else _count_text(main)
        text = f"{p.what} {bar} {info}{tail}"
    else:
        parts = [x for x in (p.phase, *(_count_text(c) for c in p.counts), p.detail) if x]
        text = f"{p.what}: {', '.join(parts)}{tail}" if parts else f"{p.what}:{tail}"
    return text if len(text) <= width else text[:width - 1] + "…"


def format_times(times: list[StepTime]) -> list[str]:
    """The table of step times: one line each, the time right-aligned, then the total."""
    if not times:
        return []
    total = sum(t.seconds for t in times)
    return (["time per step:"] + [f"  {t.seconds:8.2f} s  {t.what}" for t in times]
            + [f"  {total:8.2f} s  in all"])


class LineReporter:
    """Plain lines through `write` (a console's ``say``, ``print`` to a pipe): at most one line per
    `every` seconds for a step, the first once it has run `every` seconds; so a step shorter than
    that prints no progress. `clock` is for tests."""

    def __init__(self, write: Callable[[str], None], every: float = EVERY,
                 clock: Callable[[], float] = time.monotonic, show_times: bool = True):
        self.write = write
        self.every = every
        self.clock = clock
        self.show_times = show_times
        self._lock = threading.Lock()
        self._what: str | None = None
        self._last = 0.0  # when the last line of this step was written (or the step began)

    def progress(self, p: Progress) -> None:
        with self._lock:
            now = self.clock()
            if p.what != self._what:
                self._what, self._last = p.what, now - p.elapsed
            # a quarter of a poll's slack: samples come every POLL seconds and a little late
            if now - self._last < self.every - 0.5:
                return
            self._last = now
            self.write(format_line(p))

    def done(self) -> None:
        with self._lock:
            self._what = None

    def times(self, times: list[StepTime]) -> None:
        if self.show_times:
            for line in format_times(times):
                self.write(line)


class BarReporter:
    """One line redrawn in place on a terminal (``\\r``), finished by ``done``; the times as lines."""

    def __init__(self, stream: IO[str], width: int | None = None):
        self.stream = stream
        self.width = width
        self._lock = threading.Lock()
        self._drawn = 0  # characters of the bar on screen now

    def _columns(self) -> int:
        if self.width:
            return self.width
        import shutil

        return max(20, shutil.get_terminal_size((80, 24)).columns - 1)

    def progress(self, p: Progress) -> None:
        with self._lock:
            text = format_bar(p, self._columns())
            pad = " " * max(0, self._drawn - len(text))
            self.stream.write("\r" + text + pad)
            self.stream.flush()
            self._drawn = len(text)

    def done(self) -> None:
        with self._lock:
            if self._drawn:
                self.stream.write("\n")
                self.stream.flush()
                self._drawn = 0

    def times(self, times: list[StepTime]) -> None:
        self.done()
        for line in format_times(times):
            self.stream.write(line + "\n")
        self.stream.flush()


def reporter_for_stream(stream: IO[str]) -> LineReporter | BarReporter:
    """A bar on a terminal, lines otherwise (a pipe, a file, a CI log)."""
    isatty = getattr(stream, "isatty", None)
    if isatty and isatty():
        return BarReporter(stream)

    def write(text: str) -> None:
        stream.write(text + "\n")
        stream.flush()

    return LineReporter(write)


@contextmanager
def watching(sample: Callable[[], Progress | None], reporter: Reporter | None, poll: float = POLL) -> Iterator[None]:
    """Run `sample` every `poll` seconds in a thread while the body runs, passing what it returns to
    `reporter`; stopped (and the reporter told) when the body ends, by an exception or Ctrl-C too.
    A sample that fails is skipped: watching never fails the step."""
    if reporter is None:
        yield
        return
    stop = threading.Event()

    def loop() -> None:
        next_at = time.monotonic() + poll
        while not stop.wait(max(0.0, next_at - time.monotonic())):
            next_at += poll
            try:
                p = sample()
            except Exception:  # noqa: BLE001 - a failed look (a connection refused) is no reason to stop
                p = None
            if p is not None and not stop.is_set():
                reporter.progress(p)

    thread = threading.Thread(target=loop, name="pgconverge-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=poll + 5)  # a sample under way ends within its statement_timeout
        reporter.done()


# --------------------------------------------------------------------------- the run's session

# The sample of a run: the session holding pgconverge's run lock in this database (see
# exec.script.lock_block), what it runs and waits on, and its index build if any. Statistics
# views only; the regclass casts read the syscache and take no lock (an empty search_path
# makes them schema-qualified). The query text itself is
# never returned (it may carry data): only the step label the executor put in its DO block.
def sample_sql(advisory_key: int) -> str:
    return f"""SET statement_timeout = '1s';
SET lock_timeout = '200ms';
SET default_transaction_read_only = on;
SET application_name = 'pgconverge progress';
SET search_path = '';
SELECT json_build_object(
  'state', a.state, 'wait_type', a.wait_event_type, 'wait', a.wait_event,
  'running', extract(epoch FROM clock_timestamp() - a.query_start),
  'label', substring(a.query FROM 'step := ''((?:[^'']|'''')*)'''),
  'index', (SELECT json_build_object(
              'phase', p.phase, 'command', p.command,
              'index', CASE WHEN p.index_relid <> 0 THEN p.index_relid::regclass::text END,
              'table', p.relid::regclass::text,
              'blocks_done', p.blocks_done, 'blocks_total', p.blocks_total,
              'tuples_done', p.tuples_done, 'tuples_total', p.tuples_total,
              'lockers_done', p.lockers_done, 'lockers_total', p.lockers_total,
              'partitions_done', p.partitions_done, 'partitions_total', p.partitions_total)
              FROM pg_catalog.pg_stat_progress_create_index p WHERE p.pid = a.pid))
  FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'advisory' AND l.classid = 0 AND l.objid = {int(advisory_key)} AND l.objsubid = 1
   AND l.granted AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
 LIMIT 1;
"""


def _wait_text(wait_type: str | None, wait: str | None) -> str:
    if not wait_type:
        return "running"
    if wait_type == "Lock":
        return f"waiting for a lock ({wait})"
    if wait_type == "Timeout" and wait == "PgSleep":
        return "pausing between lock attempts"
    return f"running, waiting on {wait_type} {wait}"


def progress_of(row: dict[str, Any], label: str | None) -> Progress | None:
    """A sample row (``sample_sql``) as Progress; None when the run's session is idle between
    statements. `label`: the running unit as the executor's output named it, if known."""
    if not row or row.get("state") != "active":
        return None
    what = label or (row.get("label") or "").replace("''", "'") or "a statement"
    elapsed = float(row.get("running") or 0.0)
    ix = row.get("index")
    if ix:
        counts = [Count("blocks", int(ix["blocks_done"] or 0), int(ix["blocks_total"] or 0) or None),
                  Count("tuples", int(ix["tuples_done"] or 0), int(ix["tuples_total"] or 0) or None)]
        if ix.get("lockers_total"):
            counts.append(Count("lockers", int(ix["lockers_done"] or 0), int(ix["lockers_total"])))
        if ix.get("partitions_total"):
            counts.append(Count("partitions", int(ix["partitions_done"] or 0), int(ix["partitions_total"])))
        where = f"index {ix['index']} on {ix['table']}" if ix.get("index") else f"on {ix['table']}"
        return Progress(what, elapsed, ix.get("phase") or "", tuple(counts), where)
    return Progress(what, elapsed, _wait_text(row.get("wait_type"), row.get("wait")))


def session_sampler(query_json: Callable[[str], Any], advisory_key: int,
                    label: Callable[[], str | None] = lambda: None) -> Callable[[], Progress | None]:
    """A sample function for ``watching``: `query_json` runs a script on a new connection of its own
    (``Runner.query_json``) and returns its JSON value."""
    script = sample_sql(advisory_key)

    def sample() -> Progress | None:
        return progress_of(query_json(script) or {}, label())

    return sample


@dataclass
class Clocks:
    """The markers a run's script echoes (``exec.script``), each with the server's clock, turned into
    the time of each unit: a unit lasts from its marker to the next one."""

    marks: list[tuple[str | None, float]] = field(default_factory=list)  # (what, server epoch); None: the end

    def mark(self, what: str | None, at: float) -> None:
        self.marks.append((what, at))

    def times(self) -> list[StepTime]:
        return [StepTime(w, max(0.0, b - a)) for (w, a), (_n, b) in zip(self.marks, self.marks[1:])
                if w is not None]


def run_watched(runner: Any, plan: Any, script: str, reporter: Reporter | None,
                on_mark: Callable[[str, str, str], None] | None = None) -> list[StepTime]:
    """Run a plan's script (``exec.script.render_script``) through `runner`, watched: samples of the
    running step go to `reporter` while it runs, and each unit's time once it is over (failed runs
    too: the units up to the failure). `on_mark(kind, key, line)` sees each marker line the script
    echoes (as the runner delivers them: while it runs for a local psql, at the end through a
    Shell). Returns the units' times; raises what ``runner.run_script`` raises."""
    from pgconverge.exec.script import ADVISORY_KEY, marker_label, read_marker

    clocks = Clocks()
    running: list[str | None] = [None]

    def on_line(line: str) -> None:
        mark = read_marker(line)
        if mark is None:
            return
        kind, key, clock = mark
        if reporter is not None:
            reporter.done()  # the bar of the unit before ends its line
        running[0] = marker_label(plan, kind, key)
        if clock is not None:
            clocks.mark(running[0], clock)
        if on_mark is not None:
            on_mark(kind, key, line)

    sample = session_sampler(runner.query_json, ADVISORY_KEY, lambda: running[0])
    try:
        with watching(sample, reporter):
            runner.run_script(script, on_line=on_line)
    finally:
        if reporter is not None:
            reporter.times(clocks.times())
    return clocks.times()
