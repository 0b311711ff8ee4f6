"""Constraint validity, FKs on partitioned tables, index storage parameters and statistics,
partition index adoption, sequence ownership, inheritance of an existing table and rename
directives that cannot apply: each judged by pg_dump against a fresh load (tests.generators.judge),
with a second plan that is empty; and fast checks of the pure planner helpers."""

from __future__ import annotations

import pytest

import pgconverge
from pgconverge.catalog.kinds import catalog_hash
from pgconverge.catalog.model import Catalog, Index, Table
from pgconverge.errors import PlanError
from pgconverge.planning.kinds.indexes import needs_rebuild, without_options
from tests.generators import judge, load

ALL = dict(allow_hazards="all", drops=["*"], use_cache=False)


def converges(make_db, before: str | None, after: str) -> list[str]:
    """Judge by pg_dump, then check that planning again is empty; returns the first plan's SQL."""
    db = make_db()
    if before:
        load(db, before)
    plan = pgconverge.plan(db, [after], **ALL)
    pgconverge.apply(db, plan, **ALL)
    assert pgconverge.plan(db, [after], **ALL).is_empty
    v = judge(make_db, before, after)
    assert v.outcome == "converged", v.detail
    return [s.sql for s in plan.steps]


T = "CREATE TABLE p (id int PRIMARY KEY); CREATE TABLE c (id int, pid int);"
NV = ("ALTER TABLE c ADD CONSTRAINT fk FOREIGN KEY (pid) REFERENCES p NOT VALID;"
      "ALTER TABLE c ADD CONSTRAINT ck CHECK (id > 0) NOT VALID;")
VALID = "ALTER TABLE c ADD CONSTRAINT fk FOREIGN KEY (pid) REFERENCES p; ALTER TABLE c ADD CONSTRAINT ck CHECK (id > 0);"


def test_not_valid_constraints_stay_not_valid(make_db):
    sqls = converges(make_db, None, T + NV)  # created with the table: added NOT VALID after it
    assert not any("VALIDATE" in s for s in sqls)
    sqls = converges(make_db, T, T + NV)
    assert all(s.endswith("NOT VALID") for s in sqls) and not any("VALIDATE" in s for s in sqls)


def test_valid_constraint_declared_not_valid_is_re_added_without_scan(make_db):
    sqls = converges(make_db, T + VALID, T + NV)
    assert sqls == ['ALTER TABLE "public"."c" DROP CONSTRAINT "ck", ADD CONSTRAINT "ck" CHECK ((id > 0)) NOT VALID',
                    'ALTER TABLE "public"."c" DROP CONSTRAINT "fk", ADD CONSTRAINT "fk" FOREIGN KEY (pid) '
                    'REFERENCES public.p(id) NOT VALID']
    assert converges(make_db, T + NV, T + VALID) == ['ALTER TABLE "public"."c" VALIDATE CONSTRAINT "ck"',
                                                     'ALTER TABLE "public"."c" VALIDATE CONSTRAINT "fk"']


def test_fk_on_a_partitioned_table_is_added_plainly(make_db):
    part = ("CREATE TABLE p (id int PRIMARY KEY); CREATE TABLE m (id int, pid int) PARTITION BY RANGE (id);"
            "CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (0) TO (10);")
    db = make_db()
    load(db, part)
    plan = pgconverge.plan(db, [part + "ALTER TABLE m ADD CONSTRAINT fk FOREIGN KEY (pid) REFERENCES p;"], **ALL)
    assert [s.sql for s in plan.steps] == [
        'ALTER TABLE "public"."m" ADD CONSTRAINT "fk" FOREIGN KEY (pid) REFERENCES public.p(id)']
    assert {h.name for h in plan.steps[0].hazards} == {"blocks_writes", "may_fail_on_existing_data"}
    converges(make_db, part, part + "ALTER TABLE m ADD CONSTRAINT fk FOREIGN KEY (pid) REFERENCES p;")


IT = "CREATE TABLE t (a int, b text);"


@pytest.mark.parametrize("before,after,expected", [
    (IT + "CREATE INDEX i ON t (a);", IT + "CREATE INDEX i ON t (a) WITH (fillfactor = 70);",
     ['ALTER INDEX "public"."i" SET ("fillfactor" = \'70\')']),
    (IT + "CREATE INDEX i ON t (a) WITH (deduplicate_items = off, fillfactor = 70);",
     IT + "CREATE INDEX i ON t (a) WITH (fillfactor = 50);",
     ['ALTER INDEX "public"."i" RESET ("deduplicate_items"), SET ("fillfactor" = \'50\')']),
    (IT + "CREATE INDEX i ON t (a) WITH (fillfactor = 70) WHERE a > 0;", IT + "CREATE INDEX i ON t (a) WHERE a > 0;",
     ['ALTER INDEX "public"."i" RESET ("fillfactor")']),
    (IT + "CREATE INDEX e ON t (a, lower(b)); ALTER INDEX e ALTER COLUMN 2 SET STATISTICS 500;",
     IT + "CREATE INDEX e ON t (a, lower(b)); ALTER INDEX e ALTER COLUMN 2 SET STATISTICS 100;",
     ['ALTER INDEX "public"."e" ALTER COLUMN 2 SET STATISTICS 100']),
    (IT + "CREATE INDEX e ON t (a, lower(b)); ALTER INDEX e ALTER COLUMN 2 SET STATISTICS 500;",
     IT + "CREATE INDEX e ON t (a, lower(b));", ['ALTER INDEX "public"."e" ALTER COLUMN 2 SET STATISTICS -1']),
])
def test_index_storage_parameters_and_statistics_change_in_place(make_db, before, after, expected):
    assert converges(make_db, before, after) == expected


def test_index_statistics_on_a_new_index_and_partitioned_rebuild(make_db):
    sqls = converges(make_db, IT, IT + "CREATE INDEX e ON t (a, lower(b)); ALTER INDEX e ALTER COLUMN 2 SET STATISTICS 500;")
    assert sqls[-1] == 'ALTER INDEX "public"."e" ALTER COLUMN 2 SET STATISTICS 500'
    part = "CREATE TABLE m (id int, v int) PARTITION BY RANGE (id); CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (0) TO (10);"
    sqls = converges(make_db, part + "CREATE INDEX mi ON m (v);", part + "CREATE INDEX mi ON m (v) WITH (fillfactor = 60);")
    assert sqls[0].startswith('DROP INDEX "public"."mi"')  # no ALTER INDEX SET on a partitioned index


def test_partition_index_declared_attached_is_adopted(make_db):
    part = "CREATE TABLE m (id int, v int) PARTITION BY RANGE (id); CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (0) TO (10);"
    after = part + ("CREATE INDEX m_v_idx ON ONLY m (v); CREATE INDEX m1_own ON m1 (v);"
                    "ALTER INDEX m_v_idx ATTACH PARTITION m1_own;")
    assert converges(make_db, part + "CREATE INDEX m1_own ON m1 (v);", after) == [
        "CREATE INDEX m_v_idx ON public.m USING btree (v)"]
    assert converges(make_db, part + "CREATE INDEX m1_v_idx ON m1 (v);", part + "CREATE INDEX m_v_idx ON m (v);") == [
        "CREATE INDEX m_v_idx ON public.m USING btree (v)"]


A = "CREATE TABLE a (id int); CREATE TABLE b (id int); CREATE SEQUENCE s OWNED BY a.id;"


@pytest.mark.parametrize("after", [
    "CREATE TABLE a (id int); CREATE TABLE b (id int); CREATE SEQUENCE s OWNED BY b.id;",
    "CREATE TABLE a (id int); CREATE TABLE b (id int); CREATE SEQUENCE s;",
    "CREATE TABLE b (id int); CREATE SEQUENCE s OWNED BY b.id;",
    "CREATE TABLE b (id int); CREATE SEQUENCE s;",
    "CREATE TABLE a (x int); CREATE TABLE b (id int); CREATE SEQUENCE s;",
    "CREATE TABLE c (id int); CREATE SEQUENCE s OWNED BY c.id;",
])
def test_sequence_owned_by_moves(make_db, after):
    sqls = converges(make_db, A, after)
    drops = [i for i, s in enumerate(sqls) if "DROP" in s]
    frees = [i for i, s in enumerate(sqls) if "OWNED BY NONE" in s]
    assert not drops or (frees and frees[0] < drops[-1])  # released before its owner goes


def test_inheritance_of_an_existing_table_is_refused_by_the_planner(make_db):
    base = "CREATE TABLE base (id int NOT NULL, note text, CONSTRAINT pos CHECK (id > 0));"
    db = make_db()
    load(db, base + "CREATE TABLE child (id int, x int);")
    with pytest.raises(PlanError, match=r"Declare column\(s\) id, note and constraint\(s\) pos in CREATE TABLE "
                                        r"public\.child as well"):
        pgconverge.plan(db, [base + "CREATE TABLE child (x int) INHERITS (base);"], **ALL)
    converges(make_db, base + "CREATE TABLE child (id int, x int);",
              base + "CREATE TABLE child (id int NOT NULL, note text, x int, CONSTRAINT pos CHECK (id > 0)) "
              "INHERITS (base);")


def test_rename_directive_whose_old_name_exists_nowhere_warns(make_db):
    db = make_db()
    load(db, "CREATE TABLE t (id int);")
    plan = pgconverge.plan(db, ["CREATE TABLE t (id int,\n  total int -- @renamed-from amount\n);"], **ALL)
    assert [s.sql for s in plan.steps] == ['ALTER TABLE "public"."t" ADD COLUMN "total" integer']
    assert len(plan.warnings) == 1 and "<sql 1>:2" in plan.warnings[0]
    assert "public.t.amount does not exist in the database" in plan.warnings[0]


# --------------------------------------------------------------------------- pure helpers


def test_without_options_and_needs_rebuild():
    a = Index("public", "i", "t", "CREATE INDEX i ON public.t USING btree (a) WITH (fillfactor='70') WHERE (a > 0)",
              options=("fillfactor=70",))
    b = Index("public", "i", "t", "CREATE INDEX i ON public.t USING btree (a) WHERE (a > 0)")
    assert without_options(a.definition) == b.definition
    assert not needs_rebuild(a, b) and needs_rebuild(a, b, partitioned=True)
    assert needs_rebuild(b, Index("public", "i", "t", "CREATE INDEX i ON public.t USING btree (b)"))


def test_new_fields_keep_catalog_hash_at_their_default():
    idx = Index("public", "i", "t", "CREATE INDEX i ON public.t USING btree (a)")
    cat = Catalog(tables={"table:public.t": Table("public", "t", indexes={"i": idx})})
    base = catalog_hash(cat)
    from dataclasses import replace
    cat.tables["table:public.t"] = Table("public", "t", indexes={"i": replace(idx, statistics=((1, 5),))})
    assert catalog_hash(cat) != base
