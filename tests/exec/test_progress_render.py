"""The progress renderers (a bar on a terminal, lines otherwise) and the lines' rate limit."""

from __future__ import annotations

import io
import threading
import time

from pgconverge.exec.progress import (BarReporter, Count, LineReporter, Progress, StepTime, format_bar, format_line,
                                      progress_of, reporter_for_stream, watching)

BUILD = Progress("step 2/3 (create_index index:public.t_i)", 12.4, "building index: scanning table",
                 (Count("blocks", 450, 1000), Count("tuples", 0)), "index public.t_i on public.t")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_line_names_the_step_the_phase_the_counts_and_the_time() -> None:
    assert format_line(BUILD) == ("progress: step 2/3 (create_index index:public.t_i): building index: scanning "
                                  "table, blocks 450/1000 (45%), tuples 0, index public.t_i on public.t, 12 s")
    backup = Progress("backup of app", 7.0, "pg_dump writing", (Count("bytes", 3 * 1024 * 1024),), "1.5 MB/s")
    assert format_line(backup) == "progress: backup of app: pg_dump writing, 3.0 MB written, 1.5 MB/s, 7 s"


def test_a_bar_shows_the_count_of_the_phase_and_fits_the_width() -> None:
    bar = format_bar(BUILD, width=200)
    assert bar == ("step 2/3 (create_index index:public.t_i) [#########...........]  45% building index: "
                   "scanning table, blocks 450/1000 (45%) 12 s")
    loading = Progress("s", 3, "building index: loading tuples in tree", (Count("blocks", 10, 10),
                                                                          Count("tuples", 25, 100)))
    assert "[#####...............]  25%" in format_bar(loading, 120) and "tuples 25/100" in format_bar(loading, 120)
    assert len(format_bar(BUILD, width=40)) == 40 and format_bar(BUILD, width=40).endswith("…")
    # no total known: no bar, what is known so far
    assert format_bar(Progress("step 1/1 (validate_constraint c)", 9, "waiting for a lock (relation)")) == \
        "step 1/1 (validate_constraint c): waiting for a lock (relation) 9 s"


def test_lines_at_most_every_few_seconds_and_none_for_a_short_step() -> None:
    clock, out = Clock(), []
    lines = LineReporter(out.append, every=4.0, clock=clock)
    for t in range(0, 21, 2):  # samples every 2 s of a step that began at 100
        clock.now = 100.0 + t
        lines.progress(Progress("step 1/1 (x)", float(t), "running"))
    assert [ln.rsplit(", ", 1)[1] for ln in out] == ["4 s", "8 s", "12 s", "16 s", "20 s"]
    # another step: its own clock, from its start
    out.clear()
    clock.now += 2
    lines.progress(Progress("step 2/2 (y)", 2.0, "running"))
    clock.now += 1
    lines.progress(Progress("step 2/2 (y)", 3.0, "running"))
    assert out == []  # 3 s in: too short to report
    lines.times([StepTime("step 1/2 (x)", 20.0), StepTime("step 2/2 (y)", 3.25)])
    assert out == ["time per step:", "     20.00 s  step 1/2 (x)", "      3.25 s  step 2/2 (y)",
                   "     23.25 s  in all"]


def test_late_samples_still_give_a_line_within_five_seconds() -> None:
    clock, out = Clock(), []
    lines = LineReporter(out.append, clock=clock)
    stamps = []
    t = 0.0
    for _ in range(12):  # each sample 2.3 s after the one before (a loaded machine)
        t += 2.3
        clock.now = 100.0 + t
        before = len(out)
        lines.progress(Progress("s", t, "running"))
        if len(out) > before:
            stamps.append(t)
    gaps = [b - a for a, b in zip([0.0] + stamps, stamps)]
    assert stamps and max(gaps) <= 5.0, gaps


def test_the_bar_redraws_one_line_and_ends_it() -> None:
    stream = io.StringIO()
    bar = BarReporter(stream, width=200)
    bar.progress(BUILD)
    bar.progress(Progress(BUILD.what, 14.0, BUILD.phase, (Count("blocks", 900, 1000),)))
    bar.done()
    text = stream.getvalue()
    assert text.count("\r") == 2 and text.endswith(" 14 s\n") and "\n" not in text[:-1]
    assert "90%" in text.split("\r")[-1]
    bar.times([StepTime("step 1/1 (x)", 1.5)])
    assert stream.getvalue().endswith("time per step:\n      1.50 s  step 1/1 (x)\n      1.50 s  in all\n")


def test_a_terminal_gets_a_bar_a_pipe_gets_lines() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(reporter_for_stream(Tty()), BarReporter)
    assert isinstance(reporter_for_stream(io.StringIO()), LineReporter)


def test_a_sample_row_becomes_progress() -> None:
    row = {"state": "active", "wait_type": None, "wait": None, "running": 7.5, "label": "step 1/2 (a ''b'')",
           "index": {"phase": "building index: scanning table", "index": "public.i", "table": "public.t",
                     "blocks_done": 5, "blocks_total": 10, "tuples_done": 0, "tuples_total": 0,
                     "lockers_done": 0, "lockers_total": 0, "partitions_done": 0, "partitions_total": 0}}
    p = progress_of(row, None)
    assert p.what == "step 1/2 (a 'b')" and p.elapsed == 7.5 and p.detail == "index public.i on public.t"
    assert p.counts == (Count("blocks", 5, 10), Count("tuples", 0, None))
    assert progress_of(row, "steps 1-2/2 (one transaction)").what == "steps 1-2/2 (one transaction)"
    waiting = progress_of({"state": "active", "wait_type": "Lock", "wait": "relation", "running": 3}, "v")
    assert waiting.phase == "waiting for a lock (relation)" and waiting.counts == ()
    assert progress_of({"state": "idle", "running": 1}, "v") is None
    assert progress_of({}, "v") is None


def test_watching_samples_while_the_body_runs_and_stops_with_it() -> None:
    got: list[Progress] = []
    done = threading.Event()

    class Sink:
        def progress(self, p: Progress) -> None:
            got.append(p)

        def done(self) -> None:
            done.set()

        def times(self, times) -> None:
            pass

    calls = []

    def sample() -> Progress:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("a failed sample is skipped")
        return Progress("s", 0.0)

    try:
        with watching(sample, Sink(), poll=0.05):
            time.sleep(0.5)
            raise KeyboardInterrupt  # Ctrl-C in the step
    except KeyboardInterrupt:
        pass
    assert done.is_set() and len(got) == len(calls) - 1 >= 3
    n = len(calls)
    time.sleep(0.2)
    assert len(calls) == n  # stopped with the body
    assert not [t for t in threading.enumerate() if t.name == "pgconverge-progress"]
