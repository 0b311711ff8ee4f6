"""Constraint validity, FKs on partitioned tables, index storage parameters and statistics,
partition index adoption and attachment, existing tables attached as partitions online, sequence ownership, inheritance of an existing table and rename
directives that cannot apply: each judged by pg_dump against a fresh load (tests.generators.judge),
with a second plan that is empty; and fast checks of the pure planner helpers."""

from __future__ import annotations

import psycopg
import pytest

import pgconverge
import pgconverge.api
from pgconverge.catalog.kinds import catalog_hash
from pgconverge.catalog.model import Catalog, Index, Table
from pgconverge.errors import PlanError
from pgconverge.planning.steps import OWN
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
    # ON ONLY, then the partition's index (kept, under its declared name) attached
    assert converges(make_db, part + "CREATE INDEX m1_own ON m1 (v);", after) == [
        "CREATE INDEX m_v_idx ON ONLY public.m USING btree (v)",
        'ALTER INDEX "public"."m_v_idx" ATTACH PARTITION "public"."m1_own"']
    assert converges(make_db, part + "CREATE INDEX m1_v_idx ON m1 (v);", part + "CREATE INDEX m_v_idx ON m (v);") == [
        "CREATE INDEX m_v_idx ON ONLY public.m USING btree (v)",
        'ALTER INDEX "public"."m_v_idx" ATTACH PARTITION "public"."m1_v_idx"']


M2 = "CREATE TABLE m2 PARTITION OF m FOR VALUES FROM (10) TO (20);"
ONLY = "CREATE INDEX m_v_idx ON ONLY m (v); CREATE INDEX m1_own ON m1 (v); CREATE INDEX m2_own ON m2 (v);"


def test_a_partition_index_that_exists_unattached_is_attached_not_rebuilt(make_db):
    part = "CREATE TABLE m (id int, v int) PARTITION BY RANGE (id); CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (0) TO (10);"
    # both exist, the parent's ON ONLY (INVALID); m2's index attached already
    before = part + M2 + ONLY + "ALTER INDEX m_v_idx ATTACH PARTITION m2_own;"
    after = before + "ALTER INDEX m_v_idx ATTACH PARTITION m1_own;"
    assert converges(make_db, before, after) == ['ALTER INDEX "public"."m_v_idx" ATTACH PARTITION "public"."m1_own"']
    # sql/ keeps it half attached: nothing to do (a rebuild would attach every partition)
    assert converges(make_db, before, before) == []
    # a partition with no index yet: built CONCURRENTLY under the name the shadow gives it, then attached
    assert converges(make_db, part + "CREATE INDEX m_v_idx ON ONLY m (v);", part + "CREATE INDEX m_v_idx ON m (v);") == [
        "CREATE INDEX CONCURRENTLY m1_v_idx ON public.m1 USING btree (v)",
        'ALTER INDEX "public"."m_v_idx" ATTACH PARTITION "public"."m1_v_idx"']
    # and dropped: the parent's index goes with every index attached to it
    assert converges(make_db, after, part + M2) == ['DROP INDEX "public"."m_v_idx"']


RANGE = "CREATE TABLE m (id int, v text) PARTITION BY RANGE (id);"


def test_an_existing_table_is_attached_online(make_db):
    plain = "CREATE TABLE m1 (id int, v text);"
    declared = "CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (0) TO (10);"
    db = make_db()
    load(db, RANGE + plain + "INSERT INTO m1 VALUES (1, 'a');")
    plan = pgconverge.plan(db, [RANGE + declared], **ALL)
    check = '"pgconverge_partition_bound"'
    assert [s.sql for s in plan.steps] == [
        f'ALTER TABLE "public"."m1" ADD CONSTRAINT {check} CHECK (((id IS NOT NULL) AND (id >= 0) AND (id < 10))) '
        'NOT VALID',
        f'ALTER TABLE "public"."m1" VALIDATE CONSTRAINT {check}',
        'ALTER TABLE "public"."m" ATTACH PARTITION "public"."m1" FOR VALUES FROM (0) TO (10)',
        f'ALTER TABLE "public"."m1" DROP CONSTRAINT {check}']
    assert [h.name for h in plan.steps[1].hazards] == ["may_fail_on_existing_data"]  # the scan, without ACCESS EXCLUSIVE
    assert plan.steps[1].mode == OWN  # VALIDATE in a transaction of its own: the ADD's lock is not held meanwhile
    assert all(h.name != "blocks_reads_writes" for s in plan.steps for h in s.hazards)
    converges(make_db, RANGE + plain, RANGE + declared)
    converges(make_db, RANGE + declared, RANGE + plain)  # and detached again: a plain table


def test_a_row_outside_the_bound_fails_the_validate_before_the_attach(make_db):
    db = make_db()
    load(db, RANGE + "CREATE TABLE m1 (id int, v text); INSERT INTO m1 VALUES (50, 'x');")
    with pytest.raises(pgconverge.api.StepFailed, match="pgconverge_partition_bound"):
        pgconverge.apply(db, [RANGE + "CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (0) TO (10);"], **ALL)
    with psycopg.connect(db, autocommit=True) as c:  # nothing attached; the NOT VALID check stays behind
        assert c.execute("SELECT relispartition FROM pg_class WHERE relname = 'm1'").fetchone()[0] is False
        c.execute("DELETE FROM m1")
    # the next run drops the leftover check and attaches
    plan = pgconverge.plan(db, [RANGE + "CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (0) TO (10);"], **ALL)
    pgconverge.apply(db, plan, **ALL)
    assert pgconverge.plan(db, [RANGE + "CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (0) TO (10);"], **ALL).is_empty


def test_default_list_and_sub_partitions_are_attached_online(make_db):
    lst = "CREATE TABLE m (id int, v text) PARTITION BY LIST (v); CREATE TABLE ma PARTITION OF m FOR VALUES IN ('a');"
    sqls = converges(make_db, lst + "CREATE TABLE md (id int, v text); CREATE TABLE mb (id int, v text);",
                     lst + "CREATE TABLE md PARTITION OF m DEFAULT; CREATE TABLE mb PARTITION OF m FOR VALUES IN ('b');")
    # the default one last: its CHECK excludes mb's values, and attaching mb after it would scan it
    attaches = [s for s in sqls if "ATTACH PARTITION" in s]
    assert attaches[-1].endswith('"public"."md" DEFAULT') and len(attaches) == 2
    sub = RANGE + "CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (0) TO (100) PARTITION BY LIST (v);"
    sqls = converges(make_db, sub + "CREATE TABLE m11 (id int, v text);",
                     sub + "CREATE TABLE m11 PARTITION OF m1 FOR VALUES IN ('x');")
    assert "(id >= 0) AND (id < 100)" in sqls[0]  # the ancestors' bounds are part of the constraint


def test_a_hash_partition_is_attached_with_its_scan(make_db):
    h = "CREATE TABLE m (id int) PARTITION BY HASH (id); CREATE TABLE m0 PARTITION OF m FOR VALUES WITH (MODULUS 2, REMAINDER 0);"
    db = make_db()
    load(db, h + "CREATE TABLE m1 (id int);")
    plan = pgconverge.plan(db, [h + "CREATE TABLE m1 PARTITION OF m FOR VALUES WITH (MODULUS 2, REMAINDER 1);"], **ALL)
    # its constraint names the parent by oid (satisfies_hash_partition): no CHECK can be written ahead
    assert [s.kind for s in plan.steps] == ["attach"]
    assert {h.name for h in plan.steps[0].hazards} == {"may_fail_on_existing_data", "blocks_reads_writes"}
    converges(make_db, h + "CREATE TABLE m1 (id int);",
              h + "CREATE TABLE m1 PARTITION OF m FOR VALUES WITH (MODULUS 2, REMAINDER 1);")


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


P1 = "CREATE TABLE m (id int, v int) PARTITION BY RANGE (id); CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (0) TO (10);"
P2 = P1 + M2


def test_a_new_partitioned_index_builds_the_declared_partition_indexes(make_db):
    # pg_dump's form: ON ONLY, each partition's index under its own name, attached
    declared = P2 + ONLY + "ALTER INDEX m_v_idx ATTACH PARTITION m1_own; ALTER INDEX m_v_idx ATTACH PARTITION m2_own;"
    assert converges(make_db, P2, declared) == [
        "CREATE INDEX m_v_idx ON ONLY public.m USING btree (v)",
        "CREATE INDEX CONCURRENTLY m1_own ON public.m1 USING btree (v)",
        'ALTER INDEX "public"."m_v_idx" ATTACH PARTITION "public"."m1_own"',
        "CREATE INDEX CONCURRENTLY m2_own ON public.m2 USING btree (v)",
        'ALTER INDEX "public"."m_v_idx" ATTACH PARTITION "public"."m2_own"']
    # from nothing: the partitions first, so that none receives a copy under a generated name
    sqls = converges(make_db, None, declared)
    assert sqls.index("CREATE INDEX m_v_idx ON ONLY public.m USING btree (v)") > max(
        i for i, s in enumerate(sqls) if s.startswith("CREATE TABLE"))
    # half attached stays half attached; and a change of the index rebuilds it the same way
    half = P2 + ONLY + "ALTER INDEX m_v_idx ATTACH PARTITION m2_own;"
    sqls = converges(make_db, P2, half)
    assert 'ALTER INDEX "public"."m_v_idx" ATTACH PARTITION "public"."m2_own"' in sqls
    assert 'ALTER INDEX "public"."m_v_idx" ATTACH PARTITION "public"."m1_own"' not in sqls
    wider = declared.replace("(v);", "(v, id);")
    assert converges(make_db, declared, wider)[0] == 'DROP INDEX "public"."m_v_idx"'
    assert converges(make_db, wider, P2) == ['DROP INDEX "public"."m_v_idx"']


def test_a_new_partition_under_a_kept_index_gets_its_declared_index(make_db):
    attached = ONLY + "ALTER INDEX m_v_idx ATTACH PARTITION m1_own; ALTER INDEX m_v_idx ATTACH PARTITION m2_own;"
    before = P1 + attached.replace("CREATE INDEX m2_own ON m2 (v);", "").replace(
        "ALTER INDEX m_v_idx ATTACH PARTITION m2_own;", "")
    # the copy PostgreSQL makes for the new partition takes the declared name
    assert converges(make_db, before, P2 + attached) == [
        'CREATE TABLE "public"."m2" PARTITION OF "public"."m" FOR VALUES FROM (10) TO (20)',
        'ALTER INDEX "public"."m2_v_idx" RENAME TO "m2_own"']
    # a copy that sql/ leaves unattached cannot be taken back: the parent's index is built again
    sqls = converges(make_db, P1 + "CREATE INDEX m_v_idx ON ONLY m (v); CREATE INDEX m1_own ON m1 (v);",
                     P2 + "CREATE INDEX m_v_idx ON ONLY m (v); CREATE INDEX m1_own ON m1 (v); CREATE INDEX m2_own ON m2 (v);")
    assert sqls[0] == 'DROP INDEX IF EXISTS "public"."m_v_idx"' and "CREATE INDEX m2_own ON public.m2 USING btree (v)" in sqls
    # a name another relation holds: not foreseen, so built again too
    taken = "CREATE TABLE m2_v_idx (x int);"
    sqls = converges(make_db, taken + before, taken + P2 + attached)
    assert 'DROP INDEX "public"."m_v_idx"' in sqls


def test_new_sequence_bounds_that_refuse_the_old_start(make_db):
    before = "CREATE SEQUENCE s INCREMENT BY 5 MINVALUE -10;"
    after = "CREATE SEQUENCE s INCREMENT BY 5;"
    assert converges(make_db, before, after) == [
        """SELECT setval('"public"."s"', 1, false) FROM "public"."s" WHERE NOT is_called""",
        'ALTER SEQUENCE "public"."s" MINVALUE 1 START WITH 1']
    # a used sequence keeps its position (here one the new bounds allow)
    db = make_db()
    load(db, before + "SELECT nextval('s') FROM generate_series(1, 4);")  # -10, -5, 0, 5
    pgconverge.apply(db, [after], **ALL)
    with psycopg.connect(db) as c:
        assert c.execute("SELECT last_value, is_called FROM s").fetchone() == (5, True)
