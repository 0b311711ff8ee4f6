"""Safety, against a real PostgreSQL: hazards, policy, online-safe forms, lock discipline,
renames and one-time data blocks."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

import pgconverge
from pgconverge.planning import hazards as hz
from pgconverge.api import StepFailed
from pgconverge.cli.main import main as cli_main
from pgconverge.exec.datablocks import DataBlockError
from pgconverge.dev.embedded import find_bindir
from pgconverge.exec.script import ExecSettings, render_script
from pgconverge.planning.hazards import HazardRefused
from pgconverge.errors import PlanError
from pgconverge.exec.runner import Conn, LocalRunner

REPO = Path(__file__).resolve().parents[2]
ALL = dict(allow_hazards="all")
# short lock waits and quick retries, so that contention tests run in seconds
QUICK = ExecSettings(lock_timeout="300ms", retries=40, backoff=0.2, backoff_max=0.4)


# --------------------------------------------------------------------------- helpers


def rows(conn: psycopg.Connection, query: str, *args) -> list[tuple]:
    return conn.execute(query, args or None).fetchall()


def names(plan) -> set[str]:
    return {h.name for h in plan.hazards}


def hazards_by_name(plan) -> dict[str, list[hz.Hazard]]:
    out: dict[str, list[hz.Hazard]] = {}
    for h in plan.hazards:
        out.setdefault(h.name, []).append(h)
    return out


def dump(db: str) -> str:
    conn = Conn.parse(db)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | conn.env
    out = subprocess.run([str(find_bindir() / "pg_dump"), "--schema-only"], env=env, check=True,
                         capture_output=True, text=True).stdout
    # \restrict lines carry a random key per dump
    return "\n".join(ln for ln in out.splitlines() if not ln.startswith(("\\restrict", "\\unrestrict")))


def wait_until(predicate, what: str, tries: int = 600) -> None:
    for _ in range(tries):
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def waiting_for_lock(conn: psycopg.Connection, table: str) -> int | None:
    """pid of a pgconverge session waiting for a lock on `table`, if any."""
    row = conn.execute(
        "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE NOT l.granted AND l.relation = to_regclass(%s) AND a.application_name = 'pgconverge' LIMIT 1",
        (table,)).fetchone()
    return row[0] if row else None


class Background:
    """pgconverge.apply in a thread; keeps its result or its exception."""

    def __init__(self, db: str, sql, **options):
        self.result = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(db, sql, options), daemon=True)
        self.thread.start()

    def _run(self, db, sql, options):
        try:
            self.result = pgconverge.apply(db, sql, **options)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            self.error = e

    def join(self):
        self.thread.join(timeout=300)
        assert not self.thread.is_alive(), "the run never finished"
        return self


# --------------------------------------------------------------------------- hazards


SEED = """
CREATE SCHEMA extra;
CREATE SEQUENCE public.counter;
CREATE TABLE t (id int PRIMARY KEY, code varchar(50), n integer, note text);
CREATE INDEX t_n_idx ON t (n);
CREATE TABLE parent (id int PRIMARY KEY);
CREATE TABLE gone (id int);
INSERT INTO t VALUES (1, 'a', 1, 'x'), (2, 'b', 2, 'y');
INSERT INTO parent VALUES (1), (2);
"""
BASE = ("CREATE SCHEMA extra; CREATE SEQUENCE public.counter; CREATE TABLE parent (id int PRIMARY KEY); "
        "CREATE TABLE gone (id int); CREATE INDEX t_n_idx ON t (n);")


def base(table: str, *, keep_index: bool = True, schema: bool = True, sequence: bool = True,
         gone: bool = True) -> list[str]:
    out = ["CREATE TABLE parent (id int PRIMARY KEY);", table]
    if schema:
        out.append("CREATE SCHEMA extra;")
    if sequence:
        out.append("CREATE SEQUENCE public.counter;")
    if gone:
        out.append("CREATE TABLE gone (id int);")
    if keep_index:
        out.append("CREATE INDEX t_n_idx ON t (n);")
    return out


T = "CREATE TABLE t (id int PRIMARY KEY, code varchar(50), n integer, note text);"

# (case, desired sql, hazards that must appear with the object they name, hazards that must not appear)
HAZARD_CASES = [
    ("nothing changes", base(T), {}, set(hz.ALL_HAZARDS)),
    ("drop table", base(T, gone=False), {hz.DELETES_DATA: "public.gone"}, {hz.REWRITES_TABLE}),
    ("drop column", base("CREATE TABLE t (id int PRIMARY KEY, code varchar(50), n integer);"),
     {hz.DELETES_DATA: "public.t.note"}, {hz.REWRITES_TABLE, hz.BLOCKS_READS_WRITES}),
    ("drop sequence", base(T, sequence=False), {hz.DELETES_DATA: "public.counter"}, {hz.INDEX_DROPPED}),
    ("drop schema", base(T, schema=False), {hz.DELETES_DATA: "extra"}, {hz.REWRITES_TABLE}),
    ("narrowing varchar", base("CREATE TABLE t (id int PRIMARY KEY, code varchar(5), n integer, note text);"),
     {hz.DELETES_DATA: "public.t.code", hz.BLOCKS_READS_WRITES: "public.t.code"}, {hz.REWRITES_TABLE}),
    ("widening varchar", base("CREATE TABLE t (id int PRIMARY KEY, code varchar(80), n integer, note text);"),
     {}, set(hz.ALL_HAZARDS)),
    ("int to bigint rewrites", base("CREATE TABLE t (id int PRIMARY KEY, code varchar(50), n bigint, note text);"),
     {hz.REWRITES_TABLE: "public.t.n", hz.BLOCKS_READS_WRITES: "public.t.n",
      hz.MAY_FAIL_ON_EXISTING_DATA: "public.t.n"}, {hz.DELETES_DATA}),
    ("bigint to int narrows", None, {hz.DELETES_DATA: "public.t.n"}, set()),
    ("volatile default on existing table",
     base("CREATE TABLE t (id int PRIMARY KEY, code varchar(50), n integer, note text, "
          "u uuid DEFAULT gen_random_uuid());"),
     {hz.REWRITES_TABLE: "t.u", hz.BLOCKS_READS_WRITES: "public.t"}, {hz.MAY_FAIL_ON_EXISTING_DATA}),
    ("constant default on existing table",
     base("CREATE TABLE t (id int PRIMARY KEY, code varchar(50), n integer, note text, k int DEFAULT 7);"),
     {}, set(hz.ALL_HAZARDS)),
    ("not null column without default",
     base("CREATE TABLE t (id int PRIMARY KEY, code varchar(50), n integer, note text, k int NOT NULL);"),
     {hz.MAY_FAIL_ON_EXISTING_DATA: "t.k"}, {hz.REWRITES_TABLE, hz.BLOCKS_READS_WRITES}),
    ("set unlogged", base("CREATE UNLOGGED TABLE t (id int PRIMARY KEY, code varchar(50), n integer, note text);"),
     {hz.REWRITES_TABLE: "public.t", hz.BLOCKS_READS_WRITES: "public.t"}, {hz.DELETES_DATA}),
    ("index on existing table", base(T) + ["CREATE INDEX t_code_idx ON t (code);"],
     {hz.INDEX_BUILD: "t_code_idx"}, {hz.BLOCKS_WRITES, hz.BLOCKS_READS_WRITES, hz.MAY_FAIL_ON_EXISTING_DATA}),
    ("unique index on existing table", base(T) + ["CREATE UNIQUE INDEX t_code_key ON t (code);"],
     {hz.INDEX_BUILD: "t_code_key", hz.MAY_FAIL_ON_EXISTING_DATA: "t_code_key"}, {hz.BLOCKS_WRITES}),
    ("index on new table", base(T) + ["CREATE TABLE fresh (a int UNIQUE, b int NOT NULL CHECK (b > 0), "
                                      "p int REFERENCES parent); CREATE INDEX fresh_b_idx ON fresh (b);"],
     {}, set(hz.ALL_HAZARDS)),
    ("index dropped", base(T, keep_index=False), {hz.INDEX_DROPPED: "public.t_n_idx"}, {hz.DELETES_DATA}),
    ("check on existing table",
     base("CREATE TABLE t (id int PRIMARY KEY, code varchar(50), n integer CHECK (n > 0), note text);"),
     {hz.MAY_FAIL_ON_EXISTING_DATA: "public.t"}, {hz.BLOCKS_READS_WRITES, hz.BLOCKS_WRITES, hz.INDEX_BUILD}),
    ("fk on existing table",
     base("CREATE TABLE t (id int PRIMARY KEY, code varchar(50), n integer REFERENCES parent, note text);"),
     {hz.MAY_FAIL_ON_EXISTING_DATA: "public.t"}, {hz.BLOCKS_READS_WRITES, hz.BLOCKS_WRITES}),
    ("not null on existing column",
     base("CREATE TABLE t (id int PRIMARY KEY, code varchar(50), n integer NOT NULL, note text);"),
     {hz.MAY_FAIL_ON_EXISTING_DATA: "public.t.n"}, {hz.BLOCKS_READS_WRITES, hz.BLOCKS_WRITES}),
    ("unique constraint on existing table",
     base("CREATE TABLE t (id int PRIMARY KEY, code varchar(50) UNIQUE, n integer, note text);"),
     {hz.INDEX_BUILD: "t_code_key", hz.MAY_FAIL_ON_EXISTING_DATA: "t_code_key"},
     {hz.BLOCKS_READS_WRITES, hz.BLOCKS_WRITES}),
    ("exclusion constraint has no online form",
     base("CREATE TABLE t (id int PRIMARY KEY, code varchar(50), n integer, note text, "
          "EXCLUDE USING btree (n WITH =));"),
     {hz.BLOCKS_READS_WRITES: "public.t", hz.INDEX_BUILD: "public.t"}, set()),
    ("primary key dropped", base("CREATE TABLE t (id int, code varchar(50), n integer, note text);"),
     {hz.INDEX_DROPPED: "t_pkey"}, {hz.DELETES_DATA}),
    ("rename", base("CREATE TABLE t (id int PRIMARY KEY, code varchar(50), n integer,\n"
                    "  remark text -- @renamed-from note\n);"),
     {hz.RENAMES: "public.t.note"}, {hz.DELETES_DATA}),
    ("extension", base(T) + ["CREATE EXTENSION pgcrypto;"], {hz.EXTENSION_CHANGE: "pgcrypto"}, {hz.DELETES_DATA}),
]


@pytest.mark.parametrize("case,desired,expect,absent", HAZARD_CASES, ids=[c[0] for c in HAZARD_CASES])
def test_each_hazard_appears_where_it_should_and_names_its_object(case, desired, expect, absent, db, conn):
    conn.execute(SEED)
    if desired is None:  # bigint to int: start from bigint
        conn.execute("ALTER TABLE t ALTER COLUMN n TYPE bigint")
        desired = base(T)
    plan = pgconverge.plan(db, desired)
    found = hazards_by_name(plan)
    for name, obj in expect.items():
        assert name in found, f"{case}: {name} missing; plan:\n{plan.to_sql()}"
        assert any(obj in h.reason for h in found[name]), f"{case}: {name} does not name {obj}: {found[name]}"
    for name in absent - set(expect):
        assert name not in found, f"{case}: unexpected {name}: {found.get(name)}"
    # every hazard has a one-line reason and an object id
    for h in plan.hazards:
        assert h.reason and "\n" not in h.reason and h.object, h
    # and it converges when everything is allowed (the plan's SQL is real), unless it must fail
    if case not in ("bigint to int narrows", "not null column without default"):
        pgconverge.apply(db, desired, allow_hazards="all", drops=["*"])
        assert pgconverge.plan(db, desired).is_empty


def test_partitioned_table_index_is_built_online(db, conn):
    conn.execute("CREATE TABLE m (id int, at date) PARTITION BY RANGE (at);"
                 "CREATE TABLE m_2024 PARTITION OF m FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');")
    desired = ["CREATE TABLE m (id int, at date) PARTITION BY RANGE (at);",
               "CREATE TABLE m_2024 PARTITION OF m FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');",
               "CREATE INDEX m_at_idx ON m (at);"]
    plan = pgconverge.plan(db, desired)
    found = hazards_by_name(plan)
    # ON ONLY the parent (catalog only), the partition's index CONCURRENTLY, then attached
    assert [s.sql for s in plan.steps] == [
        "CREATE INDEX m_at_idx ON ONLY public.m USING btree (at)",
        "CREATE INDEX CONCURRENTLY m_2024_at_idx ON public.m_2024 USING btree (at)",
        'ALTER INDEX "public"."m_at_idx" ATTACH PARTITION "public"."m_2024_at_idx"']
    assert hz.BLOCKS_WRITES not in found and "public.m_2024" in found[hz.INDEX_BUILD][0].reason


def test_hazards_show_in_cli_plan_text_and_json(db, conn, tmp_path, capsys):
    conn.execute(SEED)
    f = tmp_path / "s.sql"
    f.write_text("\n".join(base(T, gone=False)) + "\nCREATE INDEX t_code_idx ON t (code);\n")
    code = cli_main(["plan", "--target", db, "--sql", str(f)])
    out, err = capsys.readouterr()
    assert code == 3  # deletes_data is not allowed by default
    assert "-- hazard deletes_data: table public.gone is dropped" in out
    assert "-- hazard index_build: index t_code_idx is built on public.t" in out
    assert "deletes_data: table public.gone" in err
    code = cli_main(["plan", "--target", db, "--sql", str(f), "--json", "--allow-hazards", "index_build"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 3
    by_sql = {s["sql"]: s for s in doc["steps"]}
    drop = by_sql['DROP TABLE "public"."gone"']
    assert drop["hazards"] == [{"name": "deletes_data", "reason": "table public.gone is dropped with its rows",
                                "object": "table:public.gone"}]
    assert [h["name"] for h in doc["refused"]] == ["deletes_data"]
    build = next(s for s in doc["steps"] if s["sql"].startswith("CREATE INDEX CONCURRENTLY"))
    assert build["transactional"] is False and build["hazards"][0]["name"] == "index_build"


# --------------------------------------------------------------------------- policy


def test_refused_plan_changes_nothing_api_and_cli(db, conn, tmp_path, capsys):
    conn.execute(SEED)
    desired = base("CREATE TABLE t (id int PRIMARY KEY, code varchar(5), n bigint);", gone=False) + [
        "CREATE INDEX t_code_idx ON t (code);"]
    before = dump(db)
    with pytest.raises(HazardRefused) as e:
        pgconverge.apply(db, desired, allow_hazards="index_build,may_fail_on_existing_data")
    message = str(e.value)
    # each refused hazard is listed with its object
    for needle in ("deletes_data: table public.gone", "deletes_data: column public.t.note",
                   "rewrites_table: public.t.n", "blocks_reads_writes: public.t.code", "nothing was changed"):
        assert needle in message, message
    assert "index_build" not in message  # allowed
    assert dump(db) == before
    f = tmp_path / "s.sql"
    f.write_text("\n".join(desired) + "\n")
    code = cli_main(["apply", "--target", db, "--sql", str(f), "--allow-hazards", "index_build"])
    err = capsys.readouterr().err
    assert code == 3 and "refused" in err and "public.gone" in err and "public.t.note" in err
    assert dump(db) == before
    # a refused plan is refused as a whole: the allowed index was not built either
    assert not rows(conn, "SELECT 1 FROM pg_class WHERE relname = 't_code_idx'")


def test_deletes_data_needs_the_object_named(db, conn, tmp_path):
    conn.execute("CREATE TABLE keep (id int); CREATE TABLE old (id int); CREATE TABLE other (id int);"
                 "INSERT INTO old VALUES (1)")
    desired = ["CREATE TABLE keep (id int);"]
    before = dump(db)
    with pytest.raises(HazardRefused) as e:
        pgconverge.apply(db, desired, allow_hazards="deletes_data")
    assert "not named for deletion" in str(e.value) and "-- @drop table public.old" in str(e.value)
    assert dump(db) == before
    # one named in group data (drops), the other still not: refused as a whole
    with pytest.raises(HazardRefused) as e:
        pgconverge.apply(db, desired, allow_hazards="deletes_data", drops=["table:public.old"])
    assert "public.other" in str(e.value) and "public.old" not in str(e.value)
    assert dump(db) == before
    # named by a directive in sql/ and in drops: both go
    f = tmp_path / "s.sql"
    f.write_text("CREATE TABLE keep (id int);\n-- @drop table public.other\n")
    pgconverge.apply(db, str(f), allow_hazards="deletes_data", drops=["table:public.old"])
    assert {r[0] for r in rows(conn, "SELECT relname FROM pg_class WHERE relkind = 'r' "
                                     "AND relnamespace = 'public'::regnamespace")} == {"keep"}


def test_allow_directive_next_to_a_definition(db, conn, tmp_path):
    conn.execute("CREATE TABLE t (id int, note text)")
    f = tmp_path / "s.sql"
    f.write_text("CREATE TABLE t ( -- @allow deletes_data\n  id int\n);\n")
    # the directive names the object; the environment must still allow the hazard
    with pytest.raises(HazardRefused):
        pgconverge.apply(db, str(f))
    pgconverge.apply(db, str(f), allow_hazards="deletes_data")
    assert rows(conn, "SELECT attname FROM pg_attribute WHERE attrelid = 't'::regclass AND attnum > 0 "
                      "AND NOT attisdropped") == [("id",)]


def test_pyinfra_refuses_with_each_hazard_and_changes_nothing(db, conn, tmp_path):
    conn.execute(SEED)
    before = dump(db)
    (tmp_path / "sql").mkdir()
    (tmp_path / "sql" / "schema.sql").write_text("\n".join(base(T, gone=False, keep_index=False)) + "\n")
    deploy = tmp_path / "deploy_test.py"
    deploy.write_text(
        "from pgconverge import operations as pgc\n"
        "pgc.converge(name='converge', database={'url_env': 'PGC_TEST_URL'}, sql='sql', "
        "allow_hazards=['renames'], lock_timeout='1s')\n")
    env = {**os.environ, "PGC_TEST_URL": db, "PGCONVERGE_HOME": str(tmp_path / ".pgconverge")}
    pyinfra = str(Path(sys.executable).parent / "pyinfra")
    dry = subprocess.run([pyinfra, "--dry", "@local", str(deploy)], cwd=tmp_path, env=env, capture_output=True,
                         text=True)
    out = dry.stdout + dry.stderr
    assert dry.returncode == 0, out  # --dry always exits 0, and shows the hazards and the refusal
    assert "-- hazard deletes_data: table public.gone is dropped with its rows" in out
    assert "-- REFUSED by policy: index_dropped: index public.t_n_idx" in out
    res = subprocess.run([pyinfra, "-y", "@local", str(deploy)], cwd=tmp_path, env=env, capture_output=True,
                         text=True, input="\n")
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    assert "deletes_data: table public.gone is dropped" in out
    assert "index_dropped: index public.t_n_idx" in out
    assert "refused, nothing was run" in out
    assert dump(db) == before


# --------------------------------------------------------------------------- online-safe forms


ONLINE_BEFORE = """
CREATE TABLE parent (id int PRIMARY KEY);
INSERT INTO parent SELECT g FROM generate_series(1, 50) g;
CREATE TABLE t (id int, pid int, email text, n int);
INSERT INTO t SELECT g, g, 'e' || g, g FROM generate_series(1, 50) g;
"""
ONLINE_AFTER = [
    "CREATE TABLE parent (id int PRIMARY KEY);",
    "CREATE TABLE t (id int PRIMARY KEY, pid int REFERENCES parent, email text UNIQUE, n int NOT NULL CHECK (n > 0));",
    "CREATE INDEX t_n_idx ON t (n);",
]


def test_online_forms_on_existing_tables(db, conn):
    conn.execute(ONLINE_BEFORE)
    plan = pgconverge.plan(db, ONLINE_AFTER)
    sqls = [s.sql for s in plan.steps]
    mode = {s.sql: s.transactional for s in plan.steps}

    def at(prefix: str) -> int:
        return next(i for i, s in enumerate(sqls) if s.startswith(prefix))

    # index: CONCURRENTLY, outside any transaction
    assert mode['CREATE INDEX CONCURRENTLY t_n_idx ON public.t USING btree (n)'] is False
    # FK and CHECK: NOT VALID, then VALIDATE in a step of its own
    fk = 'ALTER TABLE "public"."t" ADD CONSTRAINT "t_pid_fkey" FOREIGN KEY (pid) REFERENCES public.parent(id) NOT VALID'
    check = 'ALTER TABLE "public"."t" ADD CONSTRAINT "t_n_check" CHECK ((n > 0)) NOT VALID'
    assert at(fk) < at('ALTER TABLE "public"."t" VALIDATE CONSTRAINT "t_pid_fkey"')
    assert at(check) < at('ALTER TABLE "public"."t" VALIDATE CONSTRAINT "t_n_check"')
    own = [s for s in plan.steps if "VALIDATE" in s.sql]
    assert own and all(s.mode == "own" for s in own)
    # SET NOT NULL through a validated CHECK, dropped afterwards (for n, and for id before the primary key)
    for col in ("n", "id"):
        seq = [f'ALTER TABLE "public"."t" ADD CONSTRAINT "pgconverge_nn_{col}" CHECK ("{col}" IS NOT NULL) NOT VALID',
               f'ALTER TABLE "public"."t" VALIDATE CONSTRAINT "pgconverge_nn_{col}"',
               f'ALTER TABLE "public"."t" ALTER COLUMN "{col}" SET NOT NULL',
               f'ALTER TABLE "public"."t" DROP CONSTRAINT "pgconverge_nn_{col}"']
        assert [at(s) for s in seq] == sorted(at(s) for s in seq), sqls
    # UNIQUE and PRIMARY KEY: unique index CONCURRENTLY, then ADD CONSTRAINT ... USING INDEX
    for name, word in (("t_email_key", "UNIQUE"), ("t_pkey", "PRIMARY KEY")):
        build = next(s for s in sqls if s.startswith(f"CREATE UNIQUE INDEX CONCURRENTLY {name} ON public.t"))
        attach = f'ALTER TABLE "public"."t" ADD CONSTRAINT "{name}" {word} USING INDEX "{name}"'
        assert mode[build] is False and at(build) < at(attach)
    assert at('ALTER TABLE "public"."t" ALTER COLUMN "id" SET NOT NULL') < at(
        'ALTER TABLE "public"."t" ADD CONSTRAINT "t_pkey" PRIMARY KEY USING INDEX "t_pkey"')
    # nothing takes a long ACCESS EXCLUSIVE or blocks writes
    assert not names(plan) & {hz.BLOCKS_READS_WRITES, hz.BLOCKS_WRITES, hz.REWRITES_TABLE}

    pgconverge.apply(db, ONLINE_AFTER, allow_hazards="index_build,may_fail_on_existing_data")
    cons = {r[0]: (r[1], r[2]) for r in rows(conn, "SELECT conname, contype, convalidated FROM pg_constraint "
                                                   "WHERE conrelid = 't'::regclass")}
    assert cons == {"t_pkey": ("p", True), "t_email_key": ("u", True), "t_n_check": ("c", True),
                    "t_pid_fkey": ("f", True)}
    notnull = dict(rows(conn, "SELECT attname, attnotnull FROM pg_attribute WHERE attrelid = 't'::regclass "
                              "AND attnum > 0"))
    assert notnull == {"id": True, "pid": False, "email": False, "n": True}
    indexes = rows(conn, "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                         "WHERE i.indrelid = 't'::regclass ORDER BY 1")
    assert indexes == [("t_email_key", True), ("t_n_idx", True), ("t_pkey", True)]
    assert pgconverge.plan(db, ONLINE_AFTER).is_empty


def test_new_tables_get_plain_transactional_ddl(db, conn):
    conn.execute("CREATE TABLE parent (id int PRIMARY KEY)")
    plan = pgconverge.plan(db, ONLINE_AFTER)
    text = plan.to_sql()
    assert all(s.transactional for s in plan.steps)
    for word in ("CONCURRENTLY", "NOT VALID", "VALIDATE", "USING INDEX", "pgconverge_nn_"):
        assert word not in text
    assert not plan.hazards
    pgconverge.apply(db, ONLINE_AFTER)
    assert pgconverge.plan(db, ONLINE_AFTER).is_empty


def test_unique_and_primary_key_over_duplicates_fail_then_recover(db, conn):
    conn.execute("CREATE TABLE t (id int, email text); INSERT INTO t VALUES (1, 'a'), (1, 'a'), (2, NULL)")
    desired = ["CREATE TABLE t (id int PRIMARY KEY, email text UNIQUE);"]
    with pytest.raises(StepFailed) as e:
        pgconverge.apply(db, desired, **ALL)
    assert "could not create unique index" in str(e.value) and "CONCURRENTLY" in str(e.value)
    # the failed build left an INVALID index; the next plan drops and rebuilds it
    invalid = rows(conn, "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                         "WHERE i.indrelid = 't'::regclass AND NOT i.indisvalid")
    assert invalid
    plan = pgconverge.plan(db, desired)
    for (name,) in invalid:
        drop = next(s for s in plan.steps if s.sql == f'DROP INDEX CONCURRENTLY IF EXISTS "public"."{name}"')
        assert drop.hazards == ()  # an invalid index serves no query
    conn.execute("DELETE FROM t WHERE ctid = (SELECT max(ctid) FROM t WHERE id = 1)")
    pgconverge.apply(db, desired, **ALL)
    assert rows(conn, "SELECT count(*) FROM pg_index WHERE indrelid = 't'::regclass AND NOT indisvalid") == [(0,)]
    assert {r[0] for r in rows(conn, "SELECT conname FROM pg_constraint WHERE conrelid = 't'::regclass")} == {
        "t_pkey", "t_email_key"}


def test_invalid_plain_index_is_dropped_and_rebuilt(db, conn):
    conn.execute("CREATE TABLE t (id int, email text); INSERT INTO t VALUES (1, 'a'), (2, 'a')")
    desired = ["CREATE TABLE t (id int, email text);", "CREATE UNIQUE INDEX t_email_idx ON t (email);"]
    with pytest.raises(StepFailed) as e:
        pgconverge.apply(db, desired, **ALL)
    assert "create_index index:public.t_email_idx" in str(e.value) and "is duplicated" in str(e.value)
    assert rows(conn, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'public.t_email_idx'::regclass") == [
        (False,)]
    plan = pgconverge.plan(db, desired)
    assert [s.sql for s in plan.steps] == ['DROP INDEX CONCURRENTLY IF EXISTS "public"."t_email_idx"',
                                           "CREATE UNIQUE INDEX CONCURRENTLY t_email_idx ON public.t USING btree "
                                           "(email)"]
    conn.execute("UPDATE t SET email = 'b' WHERE id = 2")
    pgconverge.apply(db, desired, **ALL)
    assert rows(conn, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'public.t_email_idx'::regclass") == [
        (True,)]


def test_left_over_valid_unique_index_is_attached_not_rebuilt(db, conn):
    # a run that built the index CONCURRENTLY but did not attach it (e.g. it gave up on the lock)
    conn.execute("CREATE TABLE t (id int, email text); INSERT INTO t VALUES (1, 'a');"
                 "CREATE UNIQUE INDEX t_email_key ON t (email)")
    desired = ["CREATE TABLE t (id int, email text UNIQUE);"]
    plan = pgconverge.plan(db, desired)
    assert [s.sql for s in plan.steps] == [
        'ALTER TABLE "public"."t" ADD CONSTRAINT "t_email_key" UNIQUE USING INDEX "t_email_key"']
    pgconverge.apply(db, desired)
    assert pgconverge.plan(db, desired).is_empty


def test_set_not_null_failing_on_nulls_reuses_its_check_next_time(db, conn):
    conn.execute("CREATE TABLE t (id int, n int); INSERT INTO t VALUES (1, 1), (2, NULL)")
    desired = ["CREATE TABLE t (id int, n int NOT NULL);"]
    with pytest.raises(StepFailed) as e:
        pgconverge.apply(db, desired, **ALL)
    assert "validate constraint:public.t.pgconverge_nn_n" in str(e.value)
    assert "violated by some row" in str(e.value)
    assert rows(conn, "SELECT convalidated FROM pg_constraint WHERE conname = 'pgconverge_nn_n'") == [(False,)]
    conn.execute("UPDATE t SET n = 0 WHERE n IS NULL")
    plan = pgconverge.plan(db, desired)
    assert [s.sql for s in plan.steps] == [
        'ALTER TABLE "public"."t" VALIDATE CONSTRAINT "pgconverge_nn_n"',
        'ALTER TABLE "public"."t" ALTER COLUMN "n" SET NOT NULL',
        'ALTER TABLE "public"."t" DROP CONSTRAINT "pgconverge_nn_n"']
    pgconverge.apply(db, desired, **ALL)
    assert rows(conn, "SELECT attnotnull FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'n'") == [
        (True,)]
    assert rows(conn, "SELECT count(*) FROM pg_constraint WHERE conrelid = 't'::regclass") == [(0,)]


# --------------------------------------------------------------------------- lock discipline


def test_waiting_for_a_lock_never_blocks_other_sessions(db, conn):
    conn.execute("CREATE TABLE t (id int, n int); INSERT INTO t SELECT g, g FROM generate_series(1, 100) g")
    desired = ["CREATE TABLE t (id int, n int CHECK (n > 0));"]
    holder = psycopg.connect(db)  # an open transaction that read the table: ACCESS SHARE until it ends
    holder.execute("SELECT count(*) FROM t")
    run = Background(db, desired, allow_hazards="may_fail_on_existing_data", settings=QUICK)
    wait_until(lambda: waiting_for_lock(conn, "public.t") is not None, "pgconverge waits for its lock")
    # a third session arrives behind our queued ACCESS EXCLUSIVE request: it gets through when our
    # lock_timeout gives up, while the holder still holds its lock and our run still retries
    waits = []
    with psycopg.connect(db, autocommit=True) as third:
        third.execute("SET statement_timeout = '120s'")  # a regression fails the test instead of hanging it
        for _ in range(5):
            started = time.monotonic()
            assert third.execute("SELECT count(*) FROM t").fetchone() == (100,)
            waits.append(time.monotonic() - started)
            assert run.thread.is_alive(), "our run must still be retrying"
    assert holder.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    print(f"third session's query waited at most {max(waits) * 1000:.0f} ms (lock_timeout 300ms)")
    holder.rollback()
    holder.close()
    run.join()
    assert run.error is None, run.error
    assert rows(conn, "SELECT convalidated FROM pg_constraint WHERE conname = 't_n_check'") == [(True,)]


def test_lock_never_granted_fails_with_a_message_naming_the_step(db, conn):
    conn.execute("CREATE TABLE t (id int, n int)")
    desired = ["CREATE TABLE t (id int, n int CHECK (n > 0));"]
    before = dump(db)
    holder = psycopg.connect(db)
    holder.execute("LOCK TABLE t IN ACCESS SHARE MODE")
    try:
        with pytest.raises(StepFailed) as e:
            pgconverge.apply(db, desired, allow_hazards="all",
                             settings=ExecSettings(lock_timeout="100ms", retries=2, backoff=0.05))
    finally:
        holder.rollback()
        holder.close()
    msg = str(e.value)
    assert "step 1/2 (add_constraint constraint:public.t.t_n_check)" in msg
    assert "lock not granted within 100ms after 3 attempt(s)" in msg
    assert e.value.sqlstate == "55P03"
    assert dump(db) == before


def test_retry_notices_name_the_step_and_enum_values_are_added_in_the_retry_block(db, conn):
    conn.execute("CREATE TYPE mood AS ENUM ('sad'); CREATE TABLE t (id int, m mood)")
    desired = ["CREATE TYPE mood AS ENUM ('sad', 'happy');", "CREATE TABLE t (id int, m mood, n int CHECK (n > 0));"]
    plan = pgconverge.plan(db, desired)
    script = render_script(plan, QUICK)
    assert "ADD VALUE ''happy''" in script  # runs inside the retrying DO block
    holder = psycopg.connect(db)
    holder.execute("SELECT count(*) FROM t")
    runner = LocalRunner(db)
    result = {}
    th = threading.Thread(target=lambda: result.update(out=runner.exec_psql([], script)), daemon=True)
    th.start()
    wait_until(lambda: waiting_for_lock(conn, "public.t") is not None, "the script waits for its lock")
    time.sleep(0.8)  # let it time out and retry a few times
    holder.rollback()
    holder.close()
    th.join(timeout=300)
    code, _, stderr = result["out"]
    assert code == 0, stderr
    # NOTICE lines name the step that waits, and the attempt
    assert re.search(r"NOTICE: .*pgconverge: step \d+/\d+ \(add_column column:public\.t\.n\) : lock not granted "
                     r"within 300ms \(attempt 1\), retrying", stderr), stderr
    assert rows(conn, "SELECT enum_range(NULL::mood)::text") == [("{sad,happy}",)]
    assert pgconverge.plan(db, desired).is_empty


def test_two_concurrent_runs_the_second_fails_at_once_naming_the_first(db, conn):
    conn.execute("CREATE TABLE t (id int, n int)")
    desired = ["CREATE TABLE t (id int, n int CHECK (n > 0));"]
    holder = psycopg.connect(db)
    holder.execute("SELECT count(*) FROM t")  # keeps the first run retrying, holding the run lock
    first = Background(db, desired, allow_hazards="all", settings=QUICK)
    wait_until(lambda: waiting_for_lock(conn, "public.t") is not None, "the first run waits for its lock")
    first_pid = waiting_for_lock(conn, "public.t")
    try:
        with pytest.raises(StepFailed) as e:
            pgconverge.apply(db, desired, allow_hazards="all", settings=QUICK)
        msg = str(e.value)
        assert "another pgconverge run holds the lock on database" in msg
        assert f"pid {first_pid}" in msg and "application pgconverge" in msg and "nothing was changed" in msg
        assert first.thread.is_alive()
    finally:
        holder.rollback()
        holder.close()
    first.join()
    assert first.error is None, first.error
    assert pgconverge.plan(db, desired).is_empty


def test_concurrent_steps_wait_for_older_writers_instead_of_failing(db, conn):
    # CREATE INDEX CONCURRENTLY waits for transactions that write the table; with the
    # steps' short lock_timeout it would fail and leave an INVALID index behind
    conn.execute("CREATE TABLE t (id int, n int); INSERT INTO t VALUES (1, 1)")
    desired = ["CREATE TABLE t (id int, n int);", "CREATE INDEX t_n_idx ON t (n);"]
    writer = psycopg.connect(db)
    writer.execute("UPDATE t SET n = 2 WHERE id = 1")
    run = Background(db, desired, allow_hazards="index_build", settings=QUICK)
    wait_until(lambda: rows(conn, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgconverge' "
                                  "AND wait_event_type = 'Lock'")[0][0] > 0, "the build waits for the writer")
    time.sleep(0.6)  # two lock_timeouts
    assert run.thread.is_alive() and run.error is None
    writer.commit()
    writer.close()
    run.join()
    assert run.error is None, run.error
    assert rows(conn, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'public.t_n_idx'::regclass") == [(True,)]


def test_lock_timeout_from_the_cli(db, conn, tmp_path, capsys):
    conn.execute("CREATE TABLE t (id int, n int)")
    f = tmp_path / "s.sql"
    f.write_text("CREATE TABLE t (id int, n int CHECK (n > 0));\n")
    holder = psycopg.connect(db)
    holder.execute("LOCK TABLE t IN ACCESS SHARE MODE")
    try:
        code = cli_main(["apply", "--target", db, "--sql", str(f), "--allow-hazards", "all", "--lock-timeout",
                         "50ms", "--lock-retries", "1"])
    finally:
        holder.rollback()
        holder.close()
    err = capsys.readouterr().err
    assert code == 1
    assert "lock not granted within 50ms after 2 attempt(s)" in err and "add_constraint" in err


# --------------------------------------------------------------------------- renames


def test_runbook_rename_keeps_data_and_is_a_no_op_afterwards(db, conn):
    LocalRunner(db).run_script((REPO / "examples" / "old_schema.sql").read_text())
    before = rows(conn, "SELECT email, purchased_credit_packs FROM users ORDER BY email")
    sql = str(REPO / "sql" / "schema")
    plan = pgconverge.plan(db, sql)
    renames = [s for s in plan.steps if s.kind == "rename"]
    assert [s.sql for s in renames] == [
        'ALTER TABLE "public"."users" RENAME COLUMN "purchased_credit_packs" TO "purchasedCreditPacks"']
    assert renames[0].hazards[0].name == hz.RENAMES
    assert not names(plan) & {hz.DELETES_DATA, hz.REWRITES_TABLE}
    pgconverge.apply(db, sql, **ALL)
    assert rows(conn, 'SELECT email, "purchasedCreditPacks" FROM users ORDER BY email') == before
    again = pgconverge.plan(db, sql)
    assert again.is_empty and not again.warnings


def test_renamed_column_used_by_index_constraints_and_foreign_keys(db, conn):
    conn.execute("""
        CREATE TABLE a (code text, n int CHECK (n > 0), CONSTRAINT a_code_key UNIQUE (code));
        CREATE INDEX a_n_idx ON a (n) WHERE n > 10;
        CREATE TABLE b (id int, a_code text REFERENCES a (code));
        INSERT INTO a VALUES ('x', 1); INSERT INTO b VALUES (1, 'x');
    """)
    desired = ["CREATE TABLE a (\n  ref text, -- @renamed-from code\n"
               "  n int CHECK (n > 0), CONSTRAINT a_code_key UNIQUE (ref));",
               "CREATE INDEX a_n_idx ON a (n) WHERE n > 10;",
               "CREATE TABLE b (id int, a_code text REFERENCES a (ref));"]
    plan = pgconverge.plan(db, desired)
    assert [s.sql for s in plan.steps] == ['ALTER TABLE "public"."a" RENAME COLUMN "code" TO "ref"'], plan.to_sql()
    pgconverge.apply(db, desired, allow_hazards="renames")
    assert rows(conn, "SELECT b.id, a.ref FROM b JOIN a ON a.ref = b.a_code") == [(1, "x")]
    assert pgconverge.plan(db, desired).is_empty


def test_renamed_column_takes_the_names_derived_from_it_along(db, conn):
    conn.execute("CREATE TABLE u (id int, code text UNIQUE, n int); CREATE INDEX u_code_idx ON u (code, n);"
                 "CREATE INDEX u_n_idx ON u (n)")
    desired = ["CREATE TABLE u (id int,\n  ref text UNIQUE, -- @renamed-from code\n  n int);",
               "CREATE INDEX u_ref_idx ON u (ref, n);", "CREATE INDEX u_n_idx ON u (n);"]
    plan = pgconverge.plan(db, desired)
    assert [s.sql for s in plan.steps] == [
        'ALTER TABLE "public"."u" RENAME COLUMN "code" TO "ref"',
        'ALTER TABLE "public"."u" RENAME CONSTRAINT "u_code_key" TO "u_ref_key"',
        'ALTER INDEX "public"."u_code_idx" RENAME TO "u_ref_idx"'], plan.to_sql()
    pgconverge.apply(db, desired, allow_hazards="renames")
    assert pgconverge.plan(db, desired).is_empty


def test_renamed_table_with_foreign_keys_and_derived_names(db, conn):
    conn.execute("""
        CREATE TABLE purchased_credit_packs (id serial PRIMARY KEY, code text UNIQUE,
                                             k int GENERATED ALWAYS AS IDENTITY, n int CHECK (n > 0));
        CREATE INDEX purchased_credit_packs_n_idx ON purchased_credit_packs (n);
        CREATE TABLE uses (id int, pack int REFERENCES purchased_credit_packs (id));
        INSERT INTO purchased_credit_packs (code, n) VALUES ('a', 1); INSERT INTO uses VALUES (1, 1);
    """)
    desired = ['CREATE TABLE "purchasedCreditPacks" ( -- @renamed-from purchased_credit_packs\n'
               "  id serial PRIMARY KEY, code text UNIQUE, k int GENERATED ALWAYS AS IDENTITY, n int CHECK (n > 0));",
               'CREATE INDEX "purchasedCreditPacks_n_idx" ON "purchasedCreditPacks" (n);',
               'CREATE TABLE uses (id int, pack int REFERENCES "purchasedCreditPacks" (id));']
    plan = pgconverge.plan(db, desired)
    assert all(s.kind == "rename" for s in plan.steps), plan.to_sql()
    assert plan.steps[0].sql == 'ALTER TABLE "public"."purchased_credit_packs" RENAME TO "purchasedCreditPacks"'
    # names PostgreSQL derived from the old table name follow, so nothing is rebuilt
    text = plan.to_sql()
    for old in ("purchased_credit_packs_pkey", "purchased_credit_packs_code_key", "purchased_credit_packs_n_check",
                "purchased_credit_packs_n_idx", "purchased_credit_packs_id_seq", "purchased_credit_packs_k_seq"):
        assert f'"{old}"' in text and f'"{old.replace("purchased_credit_packs", "purchasedCreditPacks")}"' in text
    assert "purchased_credit_packs_n_idx" in text and not names(plan) - {hz.RENAMES}
    pgconverge.apply(db, desired, allow_hazards="renames")
    assert pgconverge.plan(db, desired).is_empty
    conn.execute('INSERT INTO "purchasedCreditPacks" (code, n) VALUES (\'b\', 2)')  # the serial still works
    assert rows(conn, 'SELECT u.id, p.code FROM uses u JOIN "purchasedCreditPacks" p ON p.id = u.pack') == [(1, "a")]


def test_rename_when_both_or_neither_exist(db, conn):
    desired = ["CREATE TABLE t (id int,\n  total int -- @renamed-from amount\n);"]
    # neither exists: the column is simply created
    conn.execute("CREATE TABLE t (id int)")
    plan = pgconverge.plan(db, desired)
    assert [s.sql for s in plan.steps] == ['ALTER TABLE "public"."t" ADD COLUMN "total" integer']
    # both exist: a warning, the old column is left to the diff, whose drop is refused unless named
    conn.execute("ALTER TABLE t ADD COLUMN amount int, ADD COLUMN total int")
    plan = pgconverge.plan(db, desired)
    assert len(plan.warnings) == 1 and "amount" in plan.warnings[0] and "both exist" in plan.warnings[0]
    assert "(-- @renamed-from at " in plan.warnings[0]  # where the directive is
    assert [h.name for h in plan.hazards] == [hz.DELETES_DATA]
    with pytest.raises(HazardRefused):
        pgconverge.apply(db, desired, **ALL)
    # the old name declared too: an error
    with pytest.raises(PlanError) as e:
        pgconverge.plan(db, ["CREATE TABLE t (id int, amount int,\n  total int -- @renamed-from amount\n);"])
    assert "declared in sql/ too" in str(e.value)


def test_index_and_constraint_renames_run_once(db, conn):
    conn.execute("CREATE TABLE t (id int, n int, CONSTRAINT positive CHECK (n > 0)); CREATE INDEX old_idx ON t (n)")
    desired = ["CREATE TABLE t (id int, n int,\n  CONSTRAINT t_n_positive CHECK (n > 0) -- @renamed-from positive\n);",
               "CREATE INDEX t_n_idx ON t (n); -- @renamed-from old_idx"]
    plan = pgconverge.plan(db, desired)
    assert sorted(s.sql for s in plan.steps) == [
        'ALTER INDEX "public"."old_idx" RENAME TO "t_n_idx"',
        'ALTER TABLE "public"."t" RENAME CONSTRAINT "positive" TO "t_n_positive"']
    pgconverge.apply(db, desired, allow_hazards="renames")
    assert pgconverge.plan(db, desired).is_empty


# --------------------------------------------------------------------------- one-time data blocks


BLOCKS = """\
CREATE TABLE t (id int, n int, doubled int);

-- @data fill_doubled after
UPDATE t SET doubled = n * 2;
-- @end

-- @data clean_negative before
DELETE FROM t WHERE n < 0;
-- @end
"""


def ledger(conn) -> dict[str, str]:
    if rows(conn, "SELECT to_regclass('pgconverge.data_blocks')") == [(None,)]:
        return {}
    return dict(rows(conn, "SELECT name, sha256 FROM pgconverge.data_blocks"))


def test_data_blocks_run_once_before_and_after_the_schema_change(db, conn, tmp_path, capsys):
    conn.execute("CREATE TABLE t (id int, n int); INSERT INTO t VALUES (1, 1), (2, -5), (3, 3)")
    f = tmp_path / "s.sql"
    f.write_text(BLOCKS)
    plan = pgconverge.plan(db, str(f))
    assert [(b.name, b.when) for b in plan.data_blocks] == [("fill_doubled", "after"), ("clean_negative", "before")]
    assert [b["name"] for b in plan.to_json()["data_blocks"]] == ["fill_doubled", "clean_negative"]
    assert cli_main(["plan", "--target", db, "--sql", str(f)]) == 2
    out = capsys.readouterr().out
    assert "-- data block clean_negative (before the schema change" in out and "DELETE FROM t WHERE n < 0" in out
    assert out.index("clean_negative") < out.index("ADD COLUMN") < out.index("fill_doubled")
    pgconverge.apply(db, str(f))
    # "before" ran on the old schema, "after" filled the new column
    assert rows(conn, "SELECT id, n, doubled FROM t ORDER BY id") == [(1, 1, 2), (3, 3, 6)]
    blocks = {b.name: b.sha256 for b in plan.data_blocks}
    assert ledger(conn) == blocks
    # once only
    conn.execute("INSERT INTO t VALUES (4, -1, NULL)")
    again = pgconverge.plan(db, str(f))
    assert again.is_empty and not again.data_blocks
    pgconverge.apply(db, str(f))
    assert rows(conn, "SELECT count(*) FROM t WHERE n < 0") == [(1,)]


def test_data_block_edited_after_it_ran_is_refused_at_plan_time(db, conn, tmp_path, capsys):
    conn.execute("CREATE TABLE t (id int, n int, doubled int)")
    f = tmp_path / "s.sql"
    f.write_text(BLOCKS)
    pgconverge.apply(db, str(f))
    f.write_text(BLOCKS.replace("n * 2", "n * 3"))
    with pytest.raises(DataBlockError) as e:
        pgconverge.plan(db, str(f))
    msg = str(e.value)
    assert f"{f}:4:" in msg and "'fill_doubled' was edited after it ran" in msg
    assert cli_main(["plan", "--target", db, "--sql", str(f)]) == 1
    assert "fill_doubled" in capsys.readouterr().err
    # a new name is a new block
    f.write_text(BLOCKS + "\n-- @data fill_doubled_v2 after\nUPDATE t SET doubled = n * 3;\n-- @end\n")
    assert [b.name for b in pgconverge.plan(db, str(f)).data_blocks] == ["fill_doubled_v2"]


def test_failing_data_block_rolls_back_and_nothing_after_it_runs(db, conn, tmp_path):
    conn.execute("CREATE TABLE t (id int, n int); INSERT INTO t VALUES (1, 1)")
    f = tmp_path / "s.sql"
    f.write_text("CREATE TABLE t (id int, n int, extra int);\n\n"
                 "-- @data broken before\n"
                 "UPDATE t SET n = 100;\n"
                 "SELECT 1 / 0;\n"
                 "-- @end\n\n"
                 "-- @data later after\nUPDATE t SET extra = 1;\n-- @end\n")
    before = dump(db)
    with pytest.raises(StepFailed) as e:
        pgconverge.apply(db, str(f))
    msg = str(e.value)
    assert f"data block broken ({f}:4)" in msg and "division by zero" in msg
    assert rows(conn, "SELECT n FROM t") == [(1,)]  # the block's first statement was rolled back
    assert ledger(conn) == {}
    # the schema change and the later block did not run (the ledger schema is the only addition)
    assert dump(db).replace("\n", "").count("extra") == before.replace("\n", "").count("extra")
    assert rows(conn, "SELECT count(*) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'extra'") == [
        (0,)]


def test_data_block_that_cannot_share_its_transaction_is_refused(db, conn, tmp_path):
    conn.execute("CREATE TABLE t (id int)")
    f = tmp_path / "s.sql"
    f.write_text("CREATE TABLE t (id int);\n-- @data tidy after\nUPDATE t SET id = id;\nVACUUM t;\n-- @end\n")
    with pytest.raises(DataBlockError) as e:
        pgconverge.plan(db, str(f))
    assert f"{f}:4:" in str(e.value) and "VACUUM" in str(e.value)


def test_data_block_waits_for_row_locks_with_lock_timeout_and_retries(db, conn, tmp_path):
    conn.execute("CREATE TABLE t (id int, n int); INSERT INTO t VALUES (1, 1)")
    f = tmp_path / "s.sql"
    f.write_text("CREATE TABLE t (id int, n int);\n-- @data bump after\nUPDATE t SET n = n + 1;\n-- @end\n")
    holder = psycopg.connect(db)
    holder.execute("SELECT * FROM t FOR UPDATE")  # row locks held by an open transaction
    run = Background(db, str(f), settings=QUICK)
    wait_until(lambda: rows(conn, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgconverge' "
                                  "AND wait_event_type = 'Lock'")[0][0] > 0, "the block waits for the row lock")
    time.sleep(0.7)
    assert run.thread.is_alive()
    holder.rollback()
    holder.close()
    run.join()
    assert run.error is None, run.error
    assert rows(conn, "SELECT n FROM t") == [(2,)]
