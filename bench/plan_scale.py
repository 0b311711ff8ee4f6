"""How planning scales with the size of the schema: pgconverge against migra and a bare psql load.

    .venv/bin/python bench/plan_scale.py                      # 100, 1,000 and 5,000 tables
    .venv/bin/python bench/plan_scale.py --sizes 100,1000 --repeat 3 --results bench/RESULTS-plan_scale.md

For each size it generates a schema (tables with columns of many types, defaults, CHECKs, FKs,
unique and partial indexes, enums, sequences; with --with-objects also views, functions and
triggers), loads it into databases of a cluster of its own (.pgconverge/bench-cluster) and measures:

  psql load    psql -f of the schema into a fresh database
  cold no-op   pgconverge.plan() of a database already holding the schema, without the shadow cache
  warm no-op   the same with the desired catalog cached, the target unchanged since the last plan
               (its catalog fingerprint matches: the last plan is reused)
  re-read      a warm no-op whose target catalog is read, parsed and diffed again (plan cache
               dropped before each run: what a plan costs after the target changed)
  warm add     a plan against the schema minus 10 tables and 20 indexes (cache populated); it includes
               the proof: the plan rehearsed on a schema-only copy of the target and judged by pg_dump
  proof        the proof's own part of the warm add (the copy of the target made, the plan run on it,
               the copy's dump and the comparison), against the psql load: the trust issue's target is
               at most 1.0 x the load. The first proof of a schema restores the target's schema dump
               ("proof restored") and keeps the copy as a rehearsal base; the next ones copy the base
               with CREATE DATABASE ... TEMPLATE ("proof"). The warm add runs at least twice for both.
               "proof, shadow kept": the first proof of a schema that an earlier plan declared (its sql/
               planned before, as the last release is): that plan kept its shadow as a base, copied here
  apply        pgconverge.apply() of the add case on a fresh copy of the smaller database (desired
               catalog cached, plan cache dropped), everything a run checks included (plan, proof, hazards, the apply and its verification), against
               the psql load: the target is at most 2.5 x the load
  cold peak    peak resident memory of a cold no-op plan, in a subprocess of its own (ru_maxrss of the
               Python process; psql and the server are not counted)
  migra        `migra --unsafe A B` for the no-op (an identical copy) and for the add case
  pgdeclare    `pgdeclare diff --json` of the schema (as its sql/schemas/) against the database holding it
               (no-op) and against the smaller one (add); it builds the schema in a scratch database each run

Each figure is the best of --repeat runs (default 3, 1 at 5,000 tables and more). The plans are
checked too: the no-op plans must be empty, the add plan must create the 10 tables and 20 indexes.
migra runs from its own venv, .pgconverge/bench-venv, created on first use; pgdeclare, which needs
Python 3.12, from .pgconverge/bench-venv312 (python3.12 on PATH or ~/.pyenv/versions/3.12*; without
one its columns stay empty). Their results are checked the same way.
"""

from __future__ import annotations

import argparse
import json
import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import pgconverge  # noqa: E402
from pgconverge.dev.embedded import Cluster
from pgconverge.exec import bases
from pgconverge.exec.runner import LocalRunner, find_psql

from peers import BENCH_HOME, CLUSTER_DIR, ensure_migra, ensure_pgdeclare  # noqa: E402 (bench/ is on sys.path)
WORK = BENCH_HOME / "bench-work"
DB_PREFIX = "bench_scale_"
ADDED_TABLES = 10
ADDED_INDEXES = 20
TIMEOUT = 3600  # seconds for any one psql load or migra run: a hung run fails instead of blocking
# The targets this bench holds the engine to, on 1,000 tables.
TARGET_SIZE = 1000
WARM_VS_MIGRA = 0.05
REREAD_VS_MIGRA = 0.10  # the no-op after the target changed
COLD_VS_LOAD = 1.5
PROOF_VS_LOAD = 1.0
APPLY_VS_LOAD = 2.5
COLD_PEAK_MIB = 122  # the cold plan's peak memory when the performance issue was filed

SCHEMAS = ("app", "billing", "catalog", "ops")


# --------------------------------------------------------------------------- schema


@dataclass
class Block:
    """The statements of one table and what hangs on it."""

    statements: list[str] = field(default_factory=list)


@dataclass
class Schema:
    preamble: list[str]
    tables: list[Block]  # in creation order: a table only references earlier ones
    extra_indexes: list[str]  # the indexes the "add" case is missing

    def sql(self, minus: bool = False) -> str:
        tables = self.tables[:-ADDED_TABLES] if minus else self.tables
        parts = [*self.preamble, *(s for b in tables for s in b.statements),
                 *([] if minus else self.extra_indexes)]
        return "\n".join(parts) + "\n"


def _pk_kind(i: int) -> str:
    return "uuid" if i % 5 == 0 else ("serial" if i % 3 == 0 else "identity")


def _name(i: int) -> tuple[str, str]:
    return SCHEMAS[i % len(SCHEMAS)], f"t{i:05d}"


def generate(n: int, with_objects: bool) -> Schema:
    """A deterministic schema of n tables."""
    if n <= ADDED_TABLES + ADDED_INDEXES:
        raise ValueError(f"at least {ADDED_TABLES + ADDED_INDEXES + 1} tables")
    pre = [f"CREATE SCHEMA {s};" for s in SCHEMAS if s != "public"]
    pre += [
        "CREATE TYPE app.status AS ENUM ('new', 'active', 'suspended', 'closed');",
        "CREATE TYPE billing.currency AS ENUM ('EUR', 'USD', 'GBP', 'JPY');",
    ]
    n_seq = max(1, n // 50)
    pre += [f"CREATE SEQUENCE ops.seq_{k:03d} AS bigint START WITH 1000 INCREMENT BY 1 CACHE 1;"
            for k in range(n_seq)]
    if with_objects:
        pre.append(
            "CREATE FUNCTION app.touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            "BEGIN\n  NEW.updated_at := now();\n  RETURN NEW;\nEND;\n$$;")
    blocks = []
    for i in range(n):
        s, t = _name(i)
        kind = _pk_kind(i)
        pk = {"uuid": "id uuid PRIMARY KEY DEFAULT gen_random_uuid()",
              "serial": "id bigserial PRIMARY KEY",
              "identity": "id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"}[kind]
        cols = [
            pk,
            "name text NOT NULL DEFAULT ''",
            "code varchar(32)",
            "amount numeric(12,2) NOT NULL DEFAULT 0 CHECK (amount >= 0)",
            "qty integer DEFAULT 1 CHECK (qty > 0)",
            "ratio double precision",
            "small smallint NOT NULL DEFAULT 0",
            "active boolean NOT NULL DEFAULT true",
            "status app.status NOT NULL DEFAULT 'new'",
            "tags text[] NOT NULL DEFAULT '{}'",
            "meta jsonb NOT NULL DEFAULT '{}'::jsonb",
            "payload bytea",
            "born date",
            "created_at timestamptz NOT NULL DEFAULT now()",
            "updated_at timestamp",
            "ext_ref uuid",
        ]
        if i % 4 == 1:
            cols += ["currency billing.currency NOT NULL DEFAULT 'EUR'", "period interval", "client inet"]
        if i % 7 == 2:
            cols.append(f"seq_no bigint NOT NULL DEFAULT nextval('ops.seq_{i % n_seq:03d}')")
        if i % 6 == 3:
            cols.append("label varchar(200) COLLATE \"C\"")
        fks = []
        if i > 0:
            p = (i * 7919) % i  # an earlier table, spread over the whole schema
            ps, pt = _name(p)
            ptype = "uuid" if _pk_kind(p) == "uuid" else "bigint"
            action = ("ON DELETE CASCADE", "ON DELETE SET NULL", "")[i % 3]
            cols.append(f"parent_id {ptype}")
            fks.append(f"CONSTRAINT {t}_parent_fk FOREIGN KEY (parent_id) REFERENCES {ps}.{pt} (id) {action}".rstrip())
        cons = [f"CONSTRAINT {t}_dates_check CHECK (updated_at IS NULL OR born IS NULL OR updated_at::date >= born)"]
        if i % 2 == 0:
            cons.append(f"CONSTRAINT {t}_code_key UNIQUE (code)")
        if i % 5 == 3:
            cons.append(f"CONSTRAINT {t}_name_born_key UNIQUE (name, born)")
        st = [f"CREATE TABLE {s}.{t} (\n  " + ",\n  ".join(cols + cons + fks) + "\n);"]
        if i > 0:
            st.append(f"CREATE INDEX {t}_parent_idx ON {s}.{t} (parent_id);")
        st.append(f"CREATE INDEX {t}_status_idx ON {s}.{t} (status, created_at DESC) WHERE active;")
        if i % 3 == 0:
            st.append(f"CREATE UNIQUE INDEX {t}_lower_name_idx ON {s}.{t} (lower(name)) WHERE status <> 'closed';")
        if i % 10 == 4:
            st.append(f"CREATE INDEX {t}_tags_idx ON {s}.{t} USING gin (tags);")
        if i % 8 == 0:
            st.append(f"COMMENT ON TABLE {s}.{t} IS 'Generated table {i} of {n}.';")
            st.append(f"COMMENT ON COLUMN {s}.{t}.amount IS 'Amount in the table''s currency.';")
        if with_objects:
            if i % 5 == 0:
                st.append(f"CREATE TRIGGER {t}_touch BEFORE UPDATE ON {s}.{t} "
                          "FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();")
            if i % 10 == 0:
                st.append(f"CREATE VIEW {s}.v_{t} AS SELECT id, name, amount, status FROM {s}.{t} WHERE active;")
            if i % 20 == 0:
                st.append(f"CREATE FUNCTION {s}.{t}_total(p_min numeric) RETURNS numeric LANGUAGE sql STABLE\n"
                          f"  AS $$ SELECT coalesce(sum(amount), 0) FROM {s}.{t} WHERE amount >= p_min $$;")
        blocks.append(Block(st))
    extra = []
    for k in range(ADDED_INDEXES):
        s, t = _name(k)
        extra.append(f"CREATE INDEX {t}_qty_amount_idx ON {s}.{t} (qty, amount) WHERE qty > 1;")
    return Schema(pre, blocks, extra)


# --------------------------------------------------------------------------- running things


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


class Bench:
    def __init__(self, cluster: Cluster, migra: Path | None, pgdeclare: Path | None = None):
        self.cluster = cluster
        self.migra = migra
        self.pgdeclare = pgdeclare
        self.psql = find_psql()

    def url(self, db: str) -> str:
        # SQLAlchemy URL over the unix socket; the cluster trusts local connections.
        query = urllib.parse.urlencode({"host": str(self.cluster.run_dir), "port": self.cluster.port})
        return f"postgresql+psycopg2://postgres@/{db}?{query}"

    def drop_leftovers(self) -> None:
        """Databases of an interrupted run (the cluster is shared with the other benches: only ours)."""
        import psycopg

        with psycopg.connect(self.cluster.conninfo(), autocommit=True) as conn:
            names = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                 (DB_PREFIX.replace("_", r"\_") + "%",)).fetchall()
        for (name,) in names:
            self.cluster.drop_database(name)

    def fresh(self, db: str) -> str:
        self.cluster.drop_database(db)
        return self.cluster.create_database(db)

    def load(self, db: str, path: Path) -> None:
        env = {**os.environ, "PGHOST": str(self.cluster.run_dir), "PGPORT": str(self.cluster.port),
               "PGUSER": "postgres", "PGDATABASE": db}
        subprocess.run([self.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(path)], env=env, check=True,
                       stdout=subprocess.DEVNULL, timeout=TIMEOUT)

    def run_migra(self, a: str, b: str) -> str:
        assert self.migra is not None
        proc = subprocess.run([str(self.migra), "--unsafe", self.url(a), self.url(b)], capture_output=True, text=True,
                              timeout=TIMEOUT)
        # migra exits 2 when there are differences
        if proc.returncode not in (0, 2):
            raise RuntimeError(f"migra failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        return proc.stdout


    def run_pgdeclare(self, db: str, sql_dir: Path) -> list[dict]:
        """pgdeclare's planned changes of db towards sql_dir/schemas/ (its scratch plan database is
        created and dropped by pgdeclare itself, on the same cluster)."""
        assert self.pgdeclare is not None
        query = urllib.parse.urlencode({"host": str(self.cluster.run_dir), "port": self.cluster.port})
        argv = [str(self.pgdeclare), "diff", "--json", "--database-url", f"postgresql://postgres@/{db}?{query}",
                "--sql-dir", str(sql_dir)]
        for s in SCHEMAS:
            argv += ["--schema", s]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT)
        if proc.returncode != 0:
            raise RuntimeError(f"pgdeclare failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        return json.loads(proc.stdout)["changes"]


@dataclass
class Row:
    tables: int
    repeat: int
    load: float = 0.0
    cold: float = 0.0
    warm: float = 0.0
    reread: float = 0.0
    add: float = 0.0
    migra_noop: float | None = None
    migra_add: float | None = None
    pgdeclare_noop: float | None = None
    pgdeclare_add: float | None = None
    add_steps: int = 0
    proof: float = 0.0  # on a template copy of a rehearsal base (the proof's usual case)
    proof_restored: float = 0.0  # on a copy restored from the target's dump (the first proof of a schema)
    # the first proof of a schema that an earlier plan of its own sql/ declared: a copy of that shadow
    proof_shadow: float = 0.0
    apply: float = 0.0
    cold_peak_mib: float = 0.0

    @property
    def proof_vs_load(self) -> float:
        return self.proof / self.load

    @property
    def restored_vs_load(self) -> float:
        return self.proof_restored / self.load

    @property
    def shadow_vs_load(self) -> float:
        return self.proof_shadow / self.load

    @property
    def warm_vs_migra(self) -> float | None:
        return self.warm / self.migra_noop if self.migra_noop else None

    @property
    def warm_vs_pgdeclare(self) -> float | None:
        return self.warm / self.pgdeclare_noop if self.pgdeclare_noop else None

    @property
    def add_vs_pgdeclare(self) -> float | None:
        return self.add / self.pgdeclare_add if self.pgdeclare_add else None

    @property
    def cold_vs_load(self) -> float:
        return self.cold / self.load

    @property
    def apply_vs_load(self) -> float:
        return self.apply / self.load


def measure(bench: Bench, n: int, repeat: int, with_objects: bool) -> Row:
    work = WORK / str(n)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    schema = generate(n, with_objects)
    full, minus = work / "full.sql", work / "minus.sql"
    full.write_text(schema.sql())
    minus.write_text(schema.sql(minus=True))
    dbs = {x: f"{DB_PREFIX}{n}_{x}" for x in ("full", "copy", "minus", "load", "apply")}
    try:
        return _measure(bench, n, repeat, full, minus, dbs, work)
    finally:
        for db in dbs.values():
            bench.cluster.drop_database(db)
        shutil.rmtree(work, ignore_errors=True)


def _measure(bench: Bench, n: int, repeat: int, full: Path, minus: Path, dbs: dict[str, str], work: Path) -> Row:
    row = Row(n, repeat)
    load_times = []
    for _ in range(repeat):
        bench.fresh(dbs["load"])
        started = time.perf_counter()
        bench.load(dbs["load"], full)
        load_times.append(time.perf_counter() - started)
    row.load = min(load_times)
    bench.cluster.drop_database(dbs["load"])
    print(f"  {n}: psql load {row.load:.2f}s", flush=True)

    bench.fresh(dbs["full"])
    bench.load(dbs["full"], full)
    bench.cluster.drop_database(dbs["copy"])
    bench.cluster.create_database(dbs["copy"], template=dbs["full"])
    bench.fresh(dbs["minus"])
    bench.load(dbs["minus"], minus)
    target_full, target_minus = bench.cluster.conninfo(dbs["full"]), bench.cluster.conninfo(dbs["minus"])

    def cold() -> None:
        plan = pgconverge.plan(target_full, str(full), use_cache=False)
        assert plan.is_empty, f"no-op plan at {n} tables is not empty:\n{plan.to_sql()[:2000]}"

    row.cold = best(cold, repeat)
    print(f"  {n}: cold no-op {row.cold:.2f}s", flush=True)

    cache = Path(tempfile.mkdtemp(prefix="cache-", dir=work))
    pgconverge.plan(target_full, str(full), cache_dir=cache)  # populates the cache

    def warm() -> None:
        plan = pgconverge.plan(target_full, str(full), cache_dir=cache)
        assert plan.is_empty

    row.warm = best(warm, repeat)
    print(f"  {n}: warm no-op {row.warm:.2f}s", flush=True)

    def reread() -> None:
        for p in cache.glob("plan-*.pickle"):
            p.unlink()
        plan = pgconverge.plan(target_full, str(full), cache_dir=cache)
        assert plan.is_empty

    row.reread = best(reread, repeat)
    print(f"  {n}: re-read no-op {row.reread:.2f}s", flush=True)

    def add() -> None:
        for p in cache.glob("plan-*.pickle"):  # the plan itself, not the last run's cached one
            p.unlink()
        plan = pgconverge.plan(target_minus, str(full), cache_dir=cache)
        kinds = [s.kind for s in plan.steps]
        assert kinds.count("create_table") == ADDED_TABLES, kinds
        assert kinds.count("create_index") >= ADDED_INDEXES, kinds
        assert plan.proof.status == "proved", plan.proof.summary()
        row.add_steps = len(plan.steps)
        proofs.setdefault(plan.proof.copy, []).append(plan.proof.seconds)

    # the first proof of the smaller schema restores its copy and keeps it as a base; the next ones copy it
    bases.clear(LocalRunner(bench.cluster.conninfo("postgres")))
    proofs: dict[str, list[float]] = {}
    row.add = best(add, max(repeat, 2))
    row.proof_restored = min(proofs.get("restored") or [0.0])
    row.proof = min(proofs.get("template") or proofs.get("restored") or [0.0])
    print(f"  {n}: warm add {row.add:.2f}s ({row.add_steps} steps), of which the proof {row.proof:.2f}s "
          f"(on a copy of its base; {row.proof_restored:.2f}s when restored)", flush=True)

    # the first proof of a schema that its own sql/ declared, planned earlier (the previous release of
    # sql/, to which the target converged): that plan kept its shadow as a base, which this proof copies
    bases.clear(LocalRunner(bench.cluster.conninfo("postgres")))
    earlier = Path(tempfile.mkdtemp(prefix="cache-", dir=work))
    assert pgconverge.plan(target_minus, str(minus), cache_dir=earlier).is_empty
    for p in cache.glob("plan-*.pickle"):
        p.unlink()
    after = pgconverge.plan(target_minus, str(full), cache_dir=cache)
    assert after.proof.status == "proved" and after.proof.copy == "template", after.proof.summary()
    row.proof_shadow = after.proof.seconds
    print(f"  {n}: first proof of a schema whose sql/ was planned before {row.proof_shadow:.2f}s", flush=True)

    applies = []
    for _ in range(repeat):
        bench.cluster.drop_database(dbs["apply"])
        bench.cluster.create_database(dbs["apply"], template=dbs["minus"])
        for p in cache.glob("plan-*.pickle"):  # a copy of "minus" could reuse its plan, proof and all
            p.unlink()
        started = time.perf_counter()
        done = pgconverge.apply(bench.cluster.conninfo(dbs["apply"]), str(full), cache_dir=cache, allow_hazards="all")
        applies.append(time.perf_counter() - started)
        assert done is not None
    row.apply = min(applies)
    bench.cluster.drop_database(dbs["apply"])
    print(f"  {n}: apply of the add case {row.apply:.2f}s", flush=True)

    row.cold_peak_mib = cold_peak(target_full, full)
    print(f"  {n}: cold plan peak memory {row.cold_peak_mib:.0f} MiB", flush=True)

    if bench.migra is not None:
        def migra_noop() -> None:
            out = bench.run_migra(dbs["full"], dbs["copy"])
            assert not out.strip(), f"migra found differences between identical databases:\n{out[:1000]}"

        def migra_add() -> None:
            out = bench.run_migra(dbs["minus"], dbs["full"])
            assert out.lower().count("create table") == ADDED_TABLES, out[:2000]

        row.migra_noop = best(migra_noop, repeat)
        row.migra_add = best(migra_add, repeat)
        print(f"  {n}: migra no-op {row.migra_noop:.2f}s, add {row.migra_add:.2f}s", flush=True)

    if bench.pgdeclare is not None:
        # pgdeclare reads a directory whose schemas/ holds the files. It creates the schemas named by
        # --schema in its plan database itself and refuses a CREATE SCHEMA of them in the files.
        sql_dir = work / "pgdeclare"
        (sql_dir / "schemas").mkdir(parents=True)
        own = {f"CREATE SCHEMA {s};" for s in SCHEMAS}
        lines = [x for x in full.read_text().splitlines(keepends=True) if x.strip() not in own]
        (sql_dir / "schemas" / "schema.sql").write_text("".join(lines))

        def pgdeclare_noop() -> None:
            changes = bench.run_pgdeclare(dbs["full"], sql_dir)
            assert not changes, f"pgdeclare found changes on a database holding the schema:\n{changes[:20]}"

        def pgdeclare_add() -> None:
            changes = bench.run_pgdeclare(dbs["minus"], sql_dir)
            kinds = [c["kind"] for c in changes]
            assert kinds.count("CreateTable") == ADDED_TABLES, kinds

        row.pgdeclare_noop = best(pgdeclare_noop, repeat)
        row.pgdeclare_add = best(pgdeclare_add, repeat)
        print(f"  {n}: pgdeclare no-op {row.pgdeclare_noop:.2f}s, add {row.pgdeclare_add:.2f}s", flush=True)
    return row


def cold_peak(target: str, sql: Path) -> float:
    """MiB of peak resident memory of a cold plan run in a fresh interpreter (the bench's own
    imports and earlier runs would otherwise set the peak)."""
    program = ("import resource, sys; import pgconverge; "
               "plan = pgconverge.plan(sys.argv[1], sys.argv[2], use_cache=False); assert plan.is_empty; "
               "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    done = subprocess.run([sys.executable, "-c", program, target, str(sql)], capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"cold plan failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return int(done.stdout.split()[-1]) / 1024  # ru_maxrss is in KiB on Linux


# --------------------------------------------------------------------------- report


def fmt(x: float | None, unit: str = "s") -> str:
    if x is None:
        return "-"
    return f"{x:.2f}{unit}" if unit == "s" else f"{x:.2f}"


def table(rows: list[Row]) -> str:
    head = ["tables", "runs", "psql load", "cold no-op", "warm no-op", "re-read no-op", "warm add", "proof",
            "proof restored", "proof, shadow kept", "apply", "cold peak", "migra no-op", "migra add", "warm / migra", "re-read / migra", "cold / load",
            "proof / load", "restored / load", "shadow kept / load", "apply / load", "pgdeclare no-op", "pgdeclare add", "warm / pgdeclare",
            "add / pgdeclare add"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        reread_vs = r.reread / r.migra_noop if r.migra_noop else None
        cells = [f"{r.tables:,}", str(r.repeat), fmt(r.load), fmt(r.cold), fmt(r.warm), fmt(r.reread), fmt(r.add),
                 fmt(r.proof), fmt(r.proof_restored), fmt(r.proof_shadow), fmt(r.apply), f"{r.cold_peak_mib:.0f} MiB", fmt(r.migra_noop), fmt(r.migra_add), fmt(r.warm_vs_migra, ""), fmt(reread_vs, ""),
                 fmt(r.cold_vs_load, ""), fmt(r.proof_vs_load, ""), fmt(r.restored_vs_load, ""), fmt(r.shadow_vs_load, ""),
                 fmt(r.apply_vs_load, ""),
                 fmt(r.pgdeclare_noop), fmt(r.pgdeclare_add), fmt(r.warm_vs_pgdeclare, ""),
                 fmt(r.add_vs_pgdeclare, "")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdicts(rows: list[Row]) -> list[str]:
    out = []
    for r in rows:
        if r.tables != TARGET_SIZE:
            continue
        if r.warm_vs_migra is not None:
            ok = r.warm_vs_migra <= WARM_VS_MIGRA
            out.append(f"warm no-op <= {WARM_VS_MIGRA:.2f} x migra at {r.tables:,} tables: "
                       f"{'met' if ok else 'MISSED'} ({r.warm_vs_migra:.3f})")
        if r.migra_noop:
            ok = r.reread / r.migra_noop <= REREAD_VS_MIGRA
            out.append(f"no-op after a change (re-read) <= {REREAD_VS_MIGRA:.2f} x migra at {r.tables:,} tables: "
                       f"{'met' if ok else 'MISSED'} ({r.reread / r.migra_noop:.3f})")
        ok = r.cold_peak_mib <= COLD_PEAK_MIB
        out.append(f"cold plan peak memory <= {COLD_PEAK_MIB} MiB at {r.tables:,} tables: "
                   f"{'met' if ok else 'MISSED'} ({r.cold_peak_mib:.0f} MiB)")
        ok = r.cold_vs_load <= COLD_VS_LOAD
        out.append(f"cold no-op <= {COLD_VS_LOAD} x psql load at {r.tables:,} tables: "
                   f"{'met' if ok else 'MISSED'} ({r.cold_vs_load:.2f})")
        ok = r.proof_vs_load <= PROOF_VS_LOAD
        out.append(f"proof <= {PROOF_VS_LOAD} x psql load at {r.tables:,} tables: "
                   f"{'met' if ok else 'MISSED'} ({r.proof_vs_load:.2f} on a copy of its base; "
                   f"{r.restored_vs_load:.2f} for the first proof of a schema, which restores it; "
                   f"{r.shadow_vs_load:.2f} for the first proof of one that an earlier plan's sql/ declared)")
        ok = r.apply_vs_load <= APPLY_VS_LOAD
        out.append(f"apply <= {APPLY_VS_LOAD} x psql load at {r.tables:,} tables: "
                   f"{'met' if ok else 'MISSED'} ({r.apply_vs_load:.2f})")
    return out


def machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    server = subprocess.run([find_psql(), "--version"], capture_output=True, text=True).stdout.strip()
    return f"{os.cpu_count()} cores{', ' + cpu if cpu else ''}; Python {platform.python_version()}; {server}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100,1000,5000", help="comma-separated table counts (default 100,1000,5000)")
    ap.add_argument("--repeat", type=int, default=None,
                    help="runs per figure, best kept (default 3; 1 at 5,000 tables and more)")
    objs = ap.add_mutually_exclusive_group()
    objs.add_argument("--with-objects", dest="with_objects", action="store_true", default=True,
                      help="add views, functions and triggers (the default)")
    objs.add_argument("--without-objects", dest="with_objects", action="store_false",
                      help="tables, types and sequences only")
    ap.add_argument("--no-migra", action="store_true", help="skip migra")
    ap.add_argument("--no-pgdeclare", action="store_true", help="skip pgdeclare")
    ap.add_argument("--results", type=Path, help="also write the table as markdown to this file")
    args = ap.parse_args(argv)
    sizes = [int(x.replace("_", "")) for x in args.sizes.split(",") if x.strip()]

    migra = None if args.no_migra else ensure_migra()
    pgdeclare = None if args.no_pgdeclare else ensure_pgdeclare()
    cluster = Cluster(CLUSTER_DIR)
    rows: list[Row] = []
    with_objects = args.with_objects
    load_before = os.getloadavg()
    with cluster.session():
        print(f"schema objects: tables{', views, functions, triggers' if with_objects else ''}", flush=True)
        bench = Bench(cluster, migra, pgdeclare)
        bench.drop_leftovers()
        for n in sizes:
            repeat = args.repeat or (1 if n >= 5000 else 3)
            rows.append(measure(bench, n, repeat, with_objects))
    load_after = os.getloadavg()
    report = table(rows)
    notes = verdicts(rows)
    print()
    print(report)
    for line in notes:
        print(line)
    if args.results:
        kinds = ("tables, enums, sequences, CHECKs, FKs, unique and partial indexes"
                 + (", views, functions, triggers" if with_objects else ""))
        args.results.write_text(
            "# plan_scale results\n\n"
            f"Measured {dt.date.today().isoformat()} with `bench/plan_scale.py --sizes {args.sizes}`"
            f"{' --repeat ' + str(args.repeat) if args.repeat else ''}.\n"
            f"Machine: {machine()}; load average {load_before[0]:.1f} at the start, {load_after[0]:.1f} "
            "at the end (other jobs share the machine).\n"
            f"Schema: {kinds}. Seconds are the best of the runs shown.\n\n"
            f"{report}\n\n" + "".join(f"- {line}\n" for line in notes))
        print(f"\nwritten: {args.results}")
    return 0 if all("MISSED" not in v for v in notes) else 1


if __name__ == "__main__":
    sys.exit(main())
