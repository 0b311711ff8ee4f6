"""Online changes under write load: pgconverge against the plain DDL migra generates.

    .venv/bin/python bench/online.py                       # 1,000,000 rows, 4 writers
    .venv/bin/python bench/online.py --rows 2000000 --seconds 90 --results bench/RESULTS-online.md

A table of --rows rows takes pgbench write load from 4 clients (a custom script: one UPDATE
by primary key and one INSERT per transaction, every transaction logged with its latency).
While they write, one change set is applied to the existing tables: an index, a foreign key,
a CHECK, a SET NOT NULL and a UNIQUE constraint. Each way on a fresh copy of the same database:

  pgconverge                 pgconverge.apply() (API) with its default settings
  plain DDL                  the SQL `migra --unsafe` generates for the same change, run with psql
  pgconverge, long reader    the defaults again, while a reader keeps a transaction open on the
                             table (ACCESS SHARE) for the first --holder seconds of the change
  old defaults, long reader  the same with the settings pgconverge shipped before (lock_timeout 2s,
                             5 retries, pauses doubling from 0.5 s to 8 s)

For each it prints the writers' latency per second around the change, and a summary: how long
the change took, the longest time no writer completed a transaction (stall), p99 and max
latency of the transactions that overlapped the change, the writers' time in waits (the summed
latency of their transactions over 100 ms), and the transactions completed meanwhile. The
target: no writer waits longer than lock_timeout + 100 ms because of pgconverge, long reader or
not, while the plain DDL stalls the writers for the length of its builds and scans. The machine's
load average at the start and the end is part of the results (other work may share it).

Uses the embedded cluster .pgconverge/bench-cluster; migra runs from .pgconverge/bench-venv
(created on first use: pip install migra psycopg2-binary).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import pgconverge  # noqa: E402
from pgconverge.dev.embedded import Cluster
from pgconverge.exec.runner import LocalRunner, find_psql
from pgconverge.exec.durations import seconds
from pgconverge.exec.script import ExecSettings

from peers import CLUSTER_DIR, ensure_migra  # noqa: E402 (bench/ is on sys.path)
BASE_DB = "bench_online_base"
TARGET_DB = "bench_online_target"  # migra's "after" side: the desired schema, empty
CLIENTS = 4
WARMUP = 5.0  # seconds of load before the change starts
SLOW = 0.100  # a writer's transaction slower than this waited (at most ~20 ms without contention)
# what pgconverge shipped with before the lock_deadline: 2 s per attempt, 5 retries
OLD_DEFAULTS = ExecSettings(lock_timeout="2s", retries=5, backoff=0.5, backoff_max=8.0, lock_deadline="10min")

BEFORE_SQL = """
CREATE TABLE parents (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE accounts (
  id bigserial PRIMARY KEY,
  parent_id int,
  email text,
  n int NOT NULL DEFAULT 0,
  code text
);
"""

# The change set: an index, a FK, a CHECK, a SET NOT NULL and a UNIQUE, on existing tables.
AFTER_SQL = """
CREATE TABLE parents (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE accounts (
  id bigserial PRIMARY KEY,
  parent_id int REFERENCES parents (id),
  email text NOT NULL,
  n int NOT NULL DEFAULT 0 CHECK (n >= 0),
  code text UNIQUE
);
CREATE INDEX accounts_n_idx ON accounts (n);
"""

FILL_SQL = """
INSERT INTO parents SELECT g, 'parent ' || g FROM generate_series(1, 1000) g;
INSERT INTO accounts (id, parent_id, email, n, code)
  SELECT g, 1 + g % 1000, 'user' || g || '@example.com', g % 100, md5(g::text) FROM generate_series(1, {rows}) g;
SELECT setval('accounts_id_seq', {rows});
"""

# One transaction per run of the script: an UPDATE by key and an INSERT (always valid under
# the new constraints, so only locking can slow it down).
PGBENCH_SCRIPT = """\\set id random(1, {rows})
\\set p random(1, 1000)
BEGIN;
UPDATE accounts SET n = n + 1 WHERE id = :id;
INSERT INTO accounts (parent_id, email, n, code) VALUES (:p, 'w' || :id || '@example.com', 1, md5(random()::text));
END;
"""


# --------------------------------------------------------------------------- measurements


@dataclass
class Tx:
    start: float
    end: float

    @property
    def latency(self) -> float:
        return self.end - self.start


@dataclass
class Run:
    mode: str
    change_start: float = 0.0
    change_end: float = 0.0
    txs: list[Tx] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def change_seconds(self) -> float:
        return self.change_end - self.change_start

    def overlapping(self) -> list[Tx]:
        return [t for t in self.txs if t.start < self.change_end and t.end > self.change_start]

    def completed_during(self) -> int:
        return sum(1 for t in self.txs if self.change_start <= t.end <= self.change_end)

    def longest_stall(self) -> float:
        """The longest time inside the change window in which no writer completed a transaction."""
        ends = sorted(t.end for t in self.txs if self.change_start <= t.end <= self.change_end)
        marks = [self.change_start, *ends, self.change_end]
        return max(b - a for a, b in zip(marks, marks[1:]))

    def p99(self) -> float:
        lat = sorted(t.latency for t in self.overlapping())
        return lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else 0.0

    def max_latency(self) -> float:
        return max((t.latency for t in self.overlapping()), default=0.0)

    def time_lost(self) -> float:
        """The writers' time in waits: the latencies over SLOW of the transactions overlapping the change,
        summed over all clients (CPU contention slows every transaction a little; a lock queue stops them)."""
        return sum(t.latency for t in self.overlapping() if t.latency > SLOW)

    def baseline_tps(self) -> float:
        before = [t for t in self.txs if t.end < self.change_start]
        if not before:
            return 0.0
        span = self.change_start - min(t.start for t in before)
        return len(before) / span if span > 0 else 0.0

    def per_second(self) -> dict[int, tuple[int, float]]:
        """Second relative to the change start -> (transactions completed, max latency)."""
        out: dict[int, tuple[int, float]] = {}
        for t in self.txs:
            s = int((t.end - self.change_start) // 1)
            n, worst = out.get(s, (0, 0.0))
            out[s] = (n + 1, max(worst, t.latency))
        return out


def read_logs(prefix: Path) -> list[Tx]:
    """pgbench --log lines: client_id transaction_no latency_us script_no epoch_s epoch_us."""
    txs = []
    for f in sorted(prefix.parent.glob(prefix.name + ".*")):
        for line in f.read_text().splitlines():
            parts = line.split()
            if len(parts) < 6:
                continue
            latency = int(parts[2]) / 1e6
            end = int(parts[4]) + int(parts[5]) / 1e6
            txs.append(Tx(end - latency, end))
    return txs


# --------------------------------------------------------------------------- the bench


class Bench:
    def __init__(self, cluster: Cluster, rows: int, seconds: int, settings: ExecSettings, holder: float,
                 work: Path):
        self.cluster = cluster
        self.rows = rows
        self.seconds = seconds
        self.settings = settings
        self.holder = holder
        self.work = work
        self.psql = find_psql()
        self.pgbench = str(cluster.bindir / "pgbench")

    def env(self, db: str) -> dict[str, str]:
        return {**{k: v for k, v in os.environ.items() if not k.startswith("PG")},
                "PGHOST": str(self.cluster.run_dir), "PGPORT": str(self.cluster.port), "PGUSER": "postgres",
                "PGDATABASE": db}

    def url(self, db: str) -> str:
        query = urllib.parse.urlencode({"host": str(self.cluster.run_dir), "port": self.cluster.port})
        return f"postgresql+psycopg2://postgres@/{db}?{query}"

    def prepare(self) -> None:
        started = time.monotonic()
        for db in (BASE_DB, TARGET_DB):
            self.cluster.drop_database(db)
        LocalRunner(self.cluster.create_database(BASE_DB)).run_script(
            BEFORE_SQL + FILL_SQL.format(rows=self.rows) + "VACUUM ANALYZE;\n")
        LocalRunner(self.cluster.create_database(TARGET_DB)).run_script(AFTER_SQL)
        print(f"base database: {self.rows:,} rows in {time.monotonic() - started:.1f}s", flush=True)

    def copy(self, name: str) -> str:
        """A fresh copy of the base database; returns its name."""
        self.cluster.drop_database(name)
        self.cluster.create_database(name, template=BASE_DB)
        return name

    def migra_sql(self) -> tuple[str, str]:
        """The plain DDL: what migra generates, or naive DDL when it generates nothing."""
        exe = ensure_migra()
        res = subprocess.run([str(exe), "--unsafe", self.url(BASE_DB), self.url(TARGET_DB)], capture_output=True,
                             text=True)
        if res.returncode not in (0, 2):
            raise SystemExit(f"migra failed: {res.stderr[-2000:]}")
        sql = res.stdout.strip()
        if not sql:
            return NAIVE_DDL, "naive DDL (migra generated nothing)"
        return sql + "\n", "generated by migra"

    def under_load(self, mode: str, db: str, change) -> Run:
        run = Run(mode)
        script = self.work / "writers.sql"
        script.write_text(PGBENCH_SCRIPT.format(rows=self.rows))
        prefix = self.work / f"log_{db}"
        for old in self.work.glob(prefix.name + ".*"):
            old.unlink()
        cmd = [self.pgbench, "-n", "-c", str(CLIENTS), "-j", "2", "-T", str(self.seconds), "-f", str(script),
               "--log", f"--log-prefix={prefix}", db]
        bench = subprocess.Popen(cmd, env=self.env(db), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 cwd=self.work)
        time.sleep(WARMUP)
        run.change_start = time.time()
        try:
            change(run)
        finally:
            run.change_end = time.time()
        out, _ = bench.communicate()
        if bench.returncode != 0:
            raise SystemExit(f"pgbench failed ({mode}):\n{out[-3000:]}")
        if run.change_end > run.change_start + self.seconds - WARMUP:
            run.note = "the change outlasted the load: raise --seconds"
        run.txs = read_logs(prefix)
        print(f"  {mode}: change took {run.change_seconds:.1f}s, {len(run.txs):,} transactions logged", flush=True)
        return run

    def with_pgconverge(self, mode: str = "pgconverge", settings: ExecSettings | None = None,
                        holder: bool = False) -> Run:
        db = self.copy("bench_online_pgconverge")
        conninfo = self.cluster.conninfo(db)
        plan = pgconverge.plan(conninfo, [AFTER_SQL])

        def change(run: Run) -> None:
            reader = None
            if holder:
                # a report that read the table and keeps its transaction open: ACCESS SHARE until it ends
                import psycopg

                reader = psycopg.connect(conninfo, application_name="long-reader")
                reader.execute("SELECT count(*) FROM parents JOIN accounts ON accounts.parent_id = parents.id")
                timer = threading.Timer(self.holder, reader.rollback)
                timer.start()
            try:
                result = pgconverge.apply(conninfo, [AFTER_SQL],
                                          allow_hazards="index_build,may_fail_on_existing_data",
                                          settings=settings or self.settings)
            finally:
                if reader is not None:
                    timer.join()
                    reader.close()
            run.steps = [s.sql for s in result.executed]

        run = self.under_load(mode, db, change)
        run.steps = run.steps or [s.sql for s in plan.steps]
        assert pgconverge.plan(conninfo, [AFTER_SQL]).is_empty
        return run

    def with_plain_ddl(self) -> Run:
        db = self.copy("bench_online_plain")
        sql, how = self.migra_sql()
        path = self.work / "plain.sql"
        path.write_text(sql)

        def change(run: Run) -> None:
            subprocess.run([self.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(path)], env=self.env(db),
                           check=True)
            run.steps = [s.strip() for s in sql.split(";\n") if s.strip()]

        run = self.under_load(f"plain DDL ({how})", db, change)
        assert pgconverge.plan(self.cluster.conninfo(db), [AFTER_SQL]).is_empty, "the plain DDL did not converge"
        return run

    def cleanup(self) -> None:
        for db in (BASE_DB, TARGET_DB, "bench_online_pgconverge", "bench_online_plain"):
            self.cluster.drop_database(db)


NAIVE_DDL = """
ALTER TABLE accounts ALTER COLUMN email SET NOT NULL;
CREATE INDEX accounts_n_idx ON accounts (n);
ALTER TABLE accounts ADD CONSTRAINT accounts_code_key UNIQUE (code);
ALTER TABLE accounts ADD CONSTRAINT accounts_n_check CHECK (n >= 0);
ALTER TABLE accounts ADD CONSTRAINT accounts_parent_id_fkey FOREIGN KEY (parent_id) REFERENCES parents (id);
"""


# --------------------------------------------------------------------------- report


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def summary(runs: list[Run]) -> str:
    head = ("| how | change took | longest stall | p99 latency | max latency | writers' time in waits > 100 ms "
            "| transactions during the change | tps before |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        lines.append(f"| {r.mode} | {r.change_seconds:.1f} s | {ms(r.longest_stall())} | {ms(r.p99())} | "
                     f"{ms(r.max_latency())} | {r.time_lost():,.1f} s | {r.completed_during():,} "
                     f"| {r.baseline_tps():,.0f} |")
    return "\n".join(lines)


def per_second(runs: list[Run]) -> str:
    """Writers' transactions and worst latency per second, from the change start."""
    tables = [r.per_second() for r in runs]
    last = max(int(r.change_seconds) + 2 for r in runs)
    head = "| second | " + " | ".join(f"{r.mode.split(' (')[0]}: tx / max latency" for r in runs) + " |"
    lines = [head, "|---:|" + "---:|" * len(runs)]
    for s in range(-2, last + 1):
        cells = []
        for t in tables:
            n, worst = t.get(s, (0, 0.0))
            cells.append(f"{n:,} / {ms(worst)}" if n else "0 / -")
        lines.append(f"| {s:+d} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict(runs: list[Run], lock_timeout: str) -> list[str]:
    limit = seconds(lock_timeout, "--lock-timeout") + 0.100
    out = []
    for r in runs:
        worst = r.max_latency()
        if r.mode.startswith("pgconverge"):
            out.append(f"{r.mode}: max writer latency {ms(worst)} against the target lock_timeout + 100 ms = "
                       f"{ms(limit)}: " + ("met" if worst <= limit else "MISSED"))
        else:
            out.append(f"{r.mode}: writers stalled up to {ms(r.longest_stall())} (max latency {ms(worst)}, "
                       f"{r.time_lost():.1f} s in waits over 100 ms between them) during a {r.change_seconds:.1f} s change")
    for r in runs:
        if r.note:
            out.append(f"{r.mode}: {r.note}")
    return out


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, PostgreSQL 15 embedded"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the table under load (default 1,000,000)")
    ap.add_argument("--seconds", type=int, default=60, help="pgbench -T for each way (default 60)")
    ap.add_argument("--lock-timeout", default=ExecSettings().lock_timeout,
                    help=f"pgconverge's lock_timeout (default: its own, {ExecSettings().lock_timeout})")
    ap.add_argument("--holder", type=float, default=15.0,
                    help="seconds the long reader keeps its transaction open from the change start (default 15)")
    ap.add_argument("--results", type=Path, help="also write the tables as markdown to this file")
    args = ap.parse_args(argv)

    cluster = Cluster(CLUSTER_DIR)
    work = Path(tempfile.mkdtemp(prefix="pgconverge-online-"))
    runs: list[Run] = []
    settings = ExecSettings(lock_timeout=args.lock_timeout)
    load_start = os.getloadavg()
    with cluster.session():
        bench = Bench(cluster, args.rows, args.seconds, settings, args.holder, work)
        try:
            bench.prepare()
            runs.append(bench.with_pgconverge())
            runs.append(bench.with_plain_ddl())
            runs.append(bench.with_pgconverge("pgconverge, long reader", holder=True))
            runs.append(bench.with_pgconverge("old defaults, long reader", OLD_DEFAULTS, holder=True))
        finally:
            bench.cleanup()
            shutil.rmtree(work, ignore_errors=True)
    load_end = os.getloadavg()
    notes = verdict(runs[:3], args.lock_timeout) + verdict(runs[3:], OLD_DEFAULTS.lock_timeout)
    load = (f"load average (1, 5, 15 min) {' / '.join(f'{x:.1f}' for x in load_start)} at the start, "
            f"{' / '.join(f'{x:.1f}' for x in load_end)} at the end (other work shares the machine)")
    report = (f"{summary(runs)}\n\nWriters' transactions completed and worst latency per second "
              f"(second 0 = the change starts):\n\n{per_second(runs)}")
    print()
    print(report)
    print()
    for line in notes:
        print(line)
    print(load)
    if args.results:
        steps = "\n".join(f"    {s}" for s in runs[0].steps)
        plain = "\n".join(f"    {s}" for s in runs[1].steps)
        args.results.write_text(
            "# Online changes benchmark\n\n"
            f"Measured {dt.date.today().isoformat()} with `bench/online.py --rows {args.rows} --seconds "
            f"{args.seconds} --lock-timeout {args.lock_timeout} --holder {args.holder:g}`.\n"
            f"Machine: {machine()}; {load}. Load: pgbench, {CLIENTS} clients, one UPDATE by key and one "
            f"INSERT per transaction, on a table of {args.rows:,} rows. pgconverge ran with its defaults "
            f"(lock_timeout {settings.lock_timeout}, lock_deadline {settings.lock_deadline}, pauses from "
            f"{settings.backoff:g} s doubling to {settings.backoff_max:g} s, jittered); the long reader kept "
            f"ACCESS SHARE on the tables for the first {args.holder:g} s of the change; the old defaults were "
            f"lock_timeout {OLD_DEFAULTS.lock_timeout}, {OLD_DEFAULTS.retries} retries, pauses from "
            f"{OLD_DEFAULTS.backoff:g} s doubling to {OLD_DEFAULTS.backoff_max:g} s.\n\n"
            f"{report}\n\n" + "".join(f"- {line}\n" for line in notes)
            + f"\npgconverge ran:\n\n{steps}\n\nThen the {runs[1].mode}:\n\n{plain}\n")
        print(f"\nwritten: {args.results}")
    return 0 if all("MISSED" not in n for n in notes) else 1


if __name__ == "__main__":
    sys.exit(main())
