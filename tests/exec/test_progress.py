"""Progress of long steps: a slow concurrent index build reports phase, blocks and tuples while it
runs, and every step's time at the end (the CLI's output to a pipe, real PostgreSQL)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import psycopg

PGCONVERGE = str(Path(sys.executable).parent / "pgconverge")

# An IMMUTABLE function that sleeps a little per row: the index build's table scan takes seconds
# on a few thousand rows, without a big table on the shared machine.
SLOW = """CREATE FUNCTION public.slow(v integer) RETURNS integer LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN PERFORM pg_sleep(0.003); RETURN v; END $$;
"""
ROWS = 4000  # about 12 s of scanning at 3 ms a row


def test_slow_concurrent_index_build_reports_progress_lines(db: str, tmp_path: Path) -> None:
    with psycopg.connect(db, autocommit=True) as c:
        c.execute(SLOW + "CREATE TABLE public.t (id integer PRIMARY KEY, v integer NOT NULL);")
        c.execute("INSERT INTO public.t SELECT g, g FROM generate_series(1, %s) g", (ROWS,))
    sql = tmp_path / "schema.sql"
    sql.write_text(SLOW + "CREATE TABLE public.t (id integer PRIMARY KEY, v integer NOT NULL);\n"
                   "CREATE INDEX t_slow_idx ON public.t (public.slow(v));\n")
    done = subprocess.run([PGCONVERGE, "apply", "--target", db, "--sql", str(sql), "--allow-hazards", "all",
                           "--no-cache"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    build = [ln for ln in lines if ln.startswith("progress: step 1/1 (create_index index:public.t_slow_idx)")]
    assert build, done.stderr
    for ln in build:
        # the phase, blocks and tuples of pg_stat_progress_create_index, the index and the time so far
        assert re.search(r": (building index|waiting for|index validation)[^,]*, blocks \d+(/\d+ \(\d+%\))?, "
                         r"tuples \d+(/\d+ \(\d+%\))?, index public\.t_slow_idx on public\.t, \d+ s$", ln), ln
    assert any("building index: scanning table, blocks " in ln for ln in build), build
    # the step's time, from the table at the end (server clock at the markers)
    times = [ln for ln in lines if ln.endswith("step 1/1 (create_index index:public.t_slow_idx)")]
    assert len(times) == 1, done.stderr
    seconds = float(times[0].split()[0])
    assert lines[lines.index(times[0]) - 1] == "time per step:"
    assert seconds > 8, times  # 4000 rows at 3 ms each
    # a line at least every 5 s: as many lines as the step lasted in 5 s periods, less the first
    # (no line before a step has run 4 s) and one for a sample lost to the load of the machine
    assert len(build) >= int(seconds // 5) - 1, (seconds, build)
    # and never more often than every ~4 s
    assert len(build) <= int(seconds // 3.5) + 1, (seconds, build)
    elapsed = [int(ln.rsplit(", ", 1)[1].split()[0]) for ln in build]
    assert elapsed == sorted(elapsed) and elapsed[0] >= 3, elapsed
    # the statements on stdout stay as they were; progress never reaches stdout
    assert "progress:" not in done.stdout and "CREATE INDEX CONCURRENTLY" in done.stdout
