"""Table and column attributes against the embedded PostgreSQL: storage parameters, column storage,
statistics, compression and options, replica identity, CLUSTER ON, typed tables and type changes
with -- @using. Each change is judged by pg_dump against a fresh load of the same SQL (the oracle),
and a second plan must be empty; refusals must come before anything runs, with their message."""

from __future__ import annotations

import psycopg
import pytest

import pgconverge
from pgconverge.catalog.kinds import catalog_hash
from pgconverge.catalog.model import Casts, Catalog, Column, Table, to_plain
from pgconverge.errors import PlanError
from pgconverge.planning.hazards import HazardRefused
from pgconverge.planning.context import Diff, PlanOptions
from pgconverge.planning.kinds.columns import has_cast
from pgconverge.source import SourceError, load_source
from pgconverge import oracle
from tests.generators import dump, judge, load

ALL = dict(allow_hazards="all", drops=["*"], use_cache=False)


def converge(db: str, sql: str | list[str]):
    plan = pgconverge.plan(db, sql, **ALL)
    pgconverge.apply(db, plan, **ALL)
    assert pgconverge.plan(db, sql, **ALL).is_empty
    return plan


def sqls(plan) -> list[str]:
    return [s.sql for s in plan.steps]


def steps_through(make_db, versions: list[str]) -> list[list[str]]:
    """Converge one database through each version in turn: each plan applied, its second plan
    empty, and pg_dump of the database equal to a fresh load of that version (the oracle, as
    tests.generators.judge uses it). The SQL of each plan."""
    db = make_db()
    out = []
    for sql in versions:
        out.append(sqls(converge(db, sql)))
        fresh = make_db()
        load(fresh, sql)
        differences = oracle.compare(dump(fresh), dump(db))
        assert not differences, f"{sql}\n{oracle.report(differences)}"
    return out


def one(db: str, query: str):
    with psycopg.connect(db, autocommit=True) as c:
        return c.execute(query).fetchone()[0]


# --------------------------------------------------------------------------- storage parameters


def test_storage_parameters_are_set_changed_and_reset(make_db):
    base = "CREATE TABLE t (id int, body text){};"
    plans = steps_through(make_db, [
        base.format(" WITH (fillfactor = 70, autovacuum_enabled = false, toast.autovacuum_enabled = false)"),
        base.format(" WITH (fillfactor = 80, toast.autovacuum_enabled = false, autovacuum_vacuum_scale_factor = 0.05)"),
        base.format(""),
    ])
    assert any("WITH (\"fillfactor\"='70'" in s or "'70'" in s for s in plans[0])
    # SET appends what it names: the list is set again from the first option out of place
    assert plans[1] == ['ALTER TABLE "public"."t" RESET ("autovacuum_enabled")',
                        'ALTER TABLE "public"."t" SET ("fillfactor"=\'80\', "autovacuum_vacuum_scale_factor"=\'0.05\', '
                        '"toast"."autovacuum_enabled"=\'false\')']
    assert plans[2] == ['ALTER TABLE "public"."t" RESET ("fillfactor", "autovacuum_vacuum_scale_factor", '
                        '"toast"."autovacuum_enabled")']


def test_toast_settings_wait_for_the_column_that_brings_the_toast_table(make_db):
    steps_through(make_db, ["CREATE TABLE t (id int);",
                            "CREATE TABLE t (id int, body text) WITH (toast.autovacuum_enabled = false);"])


# --------------------------------------------------------------------------- column attributes


def test_column_storage_statistics_compression_and_options(make_db):
    plans = steps_through(make_db, [
        "CREATE TABLE t (id int, body text, doc jsonb);",
        "CREATE TABLE t (id int, body text COMPRESSION lz4, doc jsonb);"
        "ALTER TABLE t ALTER COLUMN body SET STORAGE MAIN, ALTER COLUMN id SET STATISTICS 500,"
        " ALTER COLUMN id SET (n_distinct = 100), ALTER COLUMN doc SET STORAGE EXTERNAL;",
        "CREATE TABLE t (id int, body text COMPRESSION pglz, doc jsonb);"
        "ALTER TABLE t ALTER COLUMN id SET STATISTICS 50, ALTER COLUMN id SET (n_distinct_inherited = 5);",
        "CREATE TABLE t (id int, body text, doc jsonb);",
    ])
    assert 'ALTER TABLE ONLY "public"."t" ALTER COLUMN "body" SET STORAGE MAIN' in plans[1]
    assert 'ALTER TABLE ONLY "public"."t" ALTER COLUMN "body" SET COMPRESSION lz4' in plans[1]
    assert 'ALTER TABLE ONLY "public"."t" ALTER COLUMN "id" SET ("n_distinct"=\'100\')' in plans[1]
    assert 'ALTER TABLE ONLY "public"."t" ALTER COLUMN "body" SET STORAGE EXTENDED' in plans[2]
    assert 'ALTER TABLE ONLY "public"."t" ALTER COLUMN "id" RESET ("n_distinct")' in plans[2]
    assert 'ALTER TABLE ONLY "public"."t" ALTER COLUMN "body" SET COMPRESSION DEFAULT' in plans[3]
    assert 'ALTER TABLE ONLY "public"."t" ALTER COLUMN "id" SET STATISTICS -1' in plans[3]
    # none of them rewrites or blocks: no hazard
    assert not pgconverge.plan(make_db(), "CREATE TABLE t (id int);", **ALL).hazards


def test_column_settings_on_a_new_table_and_a_new_column(make_db):
    steps_through(make_db, [
        "CREATE TABLE t (id int); ALTER TABLE t ALTER COLUMN id SET STATISTICS 300;",
        "CREATE TABLE t (id int, body text); ALTER TABLE t ALTER COLUMN id SET STATISTICS 300,"
        " ALTER COLUMN body SET STORAGE EXTERNAL, ALTER COLUMN body SET (n_distinct = -0.5);",
    ])


def test_storage_survives_a_type_change(make_db):
    steps_through(make_db, [
        "CREATE TABLE t (v varchar(10)); ALTER TABLE t ALTER COLUMN v SET STORAGE MAIN;",
        "CREATE TABLE t (v text); ALTER TABLE t ALTER COLUMN v SET STORAGE MAIN;",
        "CREATE TABLE t (v varchar(20));",
    ])


def test_partitions_keep_their_own_column_settings(make_db):
    steps_through(make_db, [
        "CREATE TABLE p (id int, body text) PARTITION BY LIST (id);"
        "CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1);",
        "CREATE TABLE p (id int, body text) PARTITION BY LIST (id);"
        "ALTER TABLE p ALTER COLUMN body SET STORAGE MAIN, ALTER COLUMN id SET STATISTICS 200;"
        "CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1);"
        "CREATE TABLE p2 PARTITION OF p FOR VALUES IN (2);",
    ])


# --------------------------------------------------------------------------- replica identity, cluster


def test_replica_identity_modes(make_db):
    table = "CREATE TABLE t (id int NOT NULL, code text NOT NULL);"
    plans = steps_through(make_db, [
        table + "ALTER TABLE t REPLICA IDENTITY FULL;",
        table + "ALTER TABLE t REPLICA IDENTITY NOTHING;",
        table + "CREATE UNIQUE INDEX t_code ON t (code); ALTER TABLE t REPLICA IDENTITY USING INDEX t_code;",
        # the index it uses is built again: the identity lets go of it first, and comes back after
        table + "CREATE UNIQUE INDEX t_code ON t (code, id); ALTER TABLE t REPLICA IDENTITY USING INDEX t_code;",
        table + "CREATE UNIQUE INDEX t_code ON t (code, id);",
        table,
    ])
    assert plans[1] == ['ALTER TABLE "public"."t" REPLICA IDENTITY NOTHING']
    assert plans[2][-1] == 'ALTER TABLE "public"."t" REPLICA IDENTITY USING INDEX "t_code"'
    p3 = plans[3]
    reset = p3.index('ALTER TABLE "public"."t" REPLICA IDENTITY DEFAULT')
    drop = next(i for i, s in enumerate(p3) if s.startswith("DROP INDEX"))
    create = next(i for i, s in enumerate(p3) if s.startswith("CREATE UNIQUE INDEX"))
    again = p3.index('ALTER TABLE "public"."t" REPLICA IDENTITY USING INDEX "t_code"')
    assert reset < drop < create < again
    assert plans[4] == ['ALTER TABLE "public"."t" REPLICA IDENTITY DEFAULT']


def test_replica_identity_on_a_primary_key_and_a_partition(make_db):
    steps_through(make_db, [
        "CREATE TABLE t (id int PRIMARY KEY); ALTER TABLE t REPLICA IDENTITY USING INDEX t_pkey;"
        "CREATE TABLE p (id int) PARTITION BY LIST (id); CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1);"
        "ALTER TABLE p1 REPLICA IDENTITY FULL;",
        "CREATE TABLE t (id int, CONSTRAINT t_pkey PRIMARY KEY (id));"
        "CREATE TABLE p (id int) PARTITION BY LIST (id); CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1);",
    ])


def test_cluster_on(make_db):
    table = "CREATE TABLE t (id int, code text); CREATE INDEX t_id ON t (id); CREATE INDEX t_code ON t (code);"
    plans = steps_through(make_db, [
        table + "ALTER TABLE t CLUSTER ON t_id;",
        table + "ALTER TABLE t CLUSTER ON t_code;",
        # the index is built again: marked again once it exists
        table.replace("(code)", "(code, id)") + "ALTER TABLE t CLUSTER ON t_code;",
        table.replace("(code)", "(code, id)"),
        "CREATE TABLE t (id int, code text); CREATE INDEX t_id ON t (id); ALTER TABLE t CLUSTER ON t_id;",
    ])
    assert plans[1] == ['ALTER TABLE "public"."t" CLUSTER ON "t_code"']
    assert plans[2][-1] == 'ALTER TABLE "public"."t" CLUSTER ON "t_code"'
    assert plans[3] == ['ALTER TABLE "public"."t" SET WITHOUT CLUSTER']


def test_replica_identity_and_cluster_on_follow_an_index_rename(make_db):
    table = "CREATE TABLE t (id int NOT NULL, code text);\n"
    plans = steps_through(make_db, [
        table + "CREATE UNIQUE INDEX old_i ON t (id); CREATE INDEX c_i ON t (code);\n"
                "ALTER TABLE t REPLICA IDENTITY USING INDEX old_i; ALTER TABLE t CLUSTER ON old_i;",
        table + "CREATE UNIQUE INDEX new_i ON t (id); -- @renamed-from old_i\nCREATE INDEX c_i ON t (code);\n"
                "ALTER TABLE t REPLICA IDENTITY USING INDEX new_i; ALTER TABLE t CLUSTER ON new_i;",
        # a primary key's index renamed with its constraint
        "CREATE TABLE t (id int NOT NULL, code text, CONSTRAINT t_pk PRIMARY KEY (id));\n"
        "ALTER TABLE t REPLICA IDENTITY USING INDEX t_pk; ALTER TABLE t CLUSTER ON t_pk;",
        "CREATE TABLE t (id int NOT NULL, code text,\n  CONSTRAINT t_key PRIMARY KEY (id) -- @renamed-from t_pk\n);\n"
        "ALTER TABLE t REPLICA IDENTITY USING INDEX t_key; ALTER TABLE t CLUSTER ON t_key;",
    ])
    assert plans[1] == ['ALTER INDEX "public"."old_i" RENAME TO "new_i"']  # nothing re-planned for either
    assert plans[3] == ['ALTER TABLE "public"."t" RENAME CONSTRAINT "t_pk" TO "t_key"']


# --------------------------------------------------------------------------- typed tables


def test_typed_tables(make_db):
    typ = "CREATE TYPE pt AS (a int, b text);"
    plans = steps_through(make_db, [
        typ + "CREATE TABLE typed OF pt (a WITH OPTIONS NOT NULL DEFAULT 1, PRIMARY KEY (a));"
              "CREATE TABLE plain (a int, b text);",
        typ + "CREATE TABLE typed OF pt (a WITH OPTIONS NOT NULL DEFAULT 2, PRIMARY KEY (a));"
              "CREATE TABLE plain OF pt;",
        typ + "CREATE TABLE typed (a int NOT NULL DEFAULT 2 PRIMARY KEY, b text); CREATE TABLE plain OF pt;",
    ])
    assert 'ALTER TABLE "public"."plain" OF public.pt' in plans[1]
    assert plans[2] == ['ALTER TABLE "public"."typed" NOT OF']


def test_a_typed_tables_type_gains_loses_and_retypes_attributes(make_db):
    def version(attrs: str, options: str = "") -> str:
        return (f"CREATE TYPE pt AS ({attrs}); CREATE TABLE typed OF pt{options}; CREATE TABLE other OF pt;"
                "CREATE TABLE plain (x int);")

    db = make_db()
    plans = steps_through(make_db, [
        version("a int, b text"),
        version("a int, b text, c int", " (c WITH OPTIONS NOT NULL DEFAULT 5)"),  # added: both tables get c
        version("a bigint, c int", " (c WITH OPTIONS NOT NULL DEFAULT 5)"),  # b dropped, a retyped
        version("a bigint, c int"),
    ])
    assert plans[1][0] == 'ALTER TYPE "public"."pt" ADD ATTRIBUTE "c" integer CASCADE'
    assert 'ALTER TABLE "public"."typed" ALTER COLUMN "c" SET DEFAULT 5' in plans[1]
    assert set(plans[2]) == {'ALTER TYPE "public"."pt" DROP ATTRIBUTE "b" CASCADE',
                             'ALTER TYPE "public"."pt" ALTER ATTRIBUTE "a" TYPE bigint CASCADE'}
    # the columns of both typed tables go and change with the type: their hazards name them
    load(db, version("a int, b text"))
    plan = pgconverge.plan(db, version("a bigint"), **ALL)
    named = {(h.name, h.object) for s in plan.steps for h in s.hazards}
    assert {("deletes_data", "column:public.typed.b"), ("deletes_data", "column:public.other.b"),
            ("rewrites_table", "column:public.typed.a"), ("rewrites_table", "column:public.other.a")} <= named
    with pytest.raises(HazardRefused):
        pgconverge.apply(db, plan, allow_hazards=["rewrites_table", "blocks_reads_writes", "may_fail_on_existing_data"])


def test_reordered_attributes_of_a_typed_tables_type_are_refused(make_db):
    db = make_db()
    converge(db, "CREATE TYPE pt AS (a int, b text); CREATE TABLE t OF pt;")
    with pytest.raises(PlanError, match=r"composite type public\.pt: its attributes are reordered, but typed "
                                        r"table\(s\) public\.t .*Nothing was changed"):
        pgconverge.plan(db, "CREATE TYPE pt AS (b text, a int); CREATE TABLE t OF pt;", **ALL)
    # a table that leaves the type first (NOT OF) lets the type change without CASCADE
    steps = sqls(converge(db, "CREATE TYPE pt AS (a int, b text, c int); CREATE TABLE t (a int, b text);"))
    assert steps == ['ALTER TABLE "public"."t" NOT OF', 'ALTER TYPE "public"."pt" ADD ATTRIBUTE "c" integer']


def test_a_table_that_cannot_become_typed_is_refused_before_anything_runs(make_db):
    db = make_db()
    converge(db, "CREATE TYPE pt AS (a int, b text); CREATE TABLE t (b text, a int);")
    with pytest.raises(PlanError, match=r"table public\.t cannot become a typed table \(OF public\.pt\) in place.*"
                                        r"\(a, b\).*\(b, a\)"):
        pgconverge.plan(db, "CREATE TYPE pt AS (a int, b text); CREATE TABLE t OF pt;", **ALL)


# --------------------------------------------------------------------------- type changes and @using


def test_a_type_change_without_a_cast_is_refused_with_the_directive_to_add(make_db):
    db = make_db()
    converge(db, "CREATE TABLE t (id int, created bigint);")
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("INSERT INTO t VALUES (1, 86400)")
    with pytest.raises(PlanError) as e:
        pgconverge.plan(db, "CREATE TABLE t (id int, created timestamp);", **ALL)
    message = str(e.value)
    assert "column public.t.created cannot change type from bigint to timestamp without time zone" in message
    assert "-- @using to_timestamp(\"created\")" in message
    assert one(db, "SELECT format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = 't'::regclass "
                   "AND attname = 'created'") == "bigint"
    # with the directive it converges, converting the values by the expression
    sql = ("CREATE TABLE t (\n  id int,\n  created timestamp -- @using to_timestamp(created) AT TIME ZONE 'UTC'\n);")
    plan = converge(db, sql)
    assert any(s.endswith("USING to_timestamp(created) AT TIME ZONE 'UTC'") for s in sqls(plan))
    assert str(one(db, "SELECT created FROM t")) == "1970-01-02 00:00:00"
    v = judge(make_db, "CREATE TABLE t (id int, created bigint);", sql)
    assert v.outcome == "converged", v.detail


def test_type_changes_that_have_a_cast_need_no_directive(make_db):
    steps_through(make_db, ["CREATE TABLE t (a int, b text, c int, d int[]);",
                            "CREATE TABLE t (a bigint, b int, c boolean, d bigint[]);"])


def test_using_directive_is_checked_where_sql_is_read():
    src = load_source(["CREATE TABLE t (\n  a int, -- @using a * 2\n  b text\n);"])
    assert src.usings == (("column:public.t.a", "a * 2"),)
    with pytest.raises(SourceError, match="-- @using applies to columns"):
        load_source(["-- @using 1\nCREATE TABLE t (a int);"])
    with pytest.raises(SourceError, match="expected a single expression"):
        load_source(["CREATE TABLE t (\n  a int -- @using 1, 2\n);"])
    with pytest.raises(SourceError, match="not an expression"):
        load_source(["CREATE TABLE t (\n  a int -- @using (((\n);"])


# --------------------------------------------------------------------------- pure logic


def test_has_cast_reads_the_catalogs_casts():
    casts = Casts(frozenset({("bigint", "integer"), ("integer", "boolean")}), frozenset({"text"}),
                  frozenset({"bigint", "integer", "boolean", "text", "timestamp without time zone"}))
    p = Diff(Catalog(casts=casts), Catalog(casts=casts), PlanOptions())
    assert has_cast(p, "bigint", "integer") is True
    assert has_cast(p, "integer", "boolean") is True
    assert has_cast(p, "bigint", "timestamp without time zone") is False
    assert has_cast(p, "bigint", "text") is True and has_cast(p, "text", "bigint") is True
    assert has_cast(p, "bigint[]", "integer[]") is True and has_cast(p, "bigint", "integer[]") is False
    assert has_cast(p, "public.pair", "bigint") is None  # not a built-in type: the proof judges it
    assert has_cast(Diff(Catalog(), Catalog(), PlanOptions()), "bigint", "uuid") is None


def test_new_attributes_at_their_defaults_leave_the_hash_as_it_was():
    t = Table("public", "t", columns={"a": Column("a", "integer")})
    plain = to_plain(t)
    assert not {"options", "replica_identity", "replica_index", "cluster_index", "of_type"} & plain.keys()
    assert not {"storage", "statistics", "compression", "options", "type_storage"} & plain["columns"]["a"].keys()
    cat = Catalog(tables={t.id: t})
    from dataclasses import replace
    changed = Catalog(tables={t.id: replace(t, options=("fillfactor=70",))})
    assert catalog_hash(cat) != catalog_hash(changed)
