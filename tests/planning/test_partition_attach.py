"""An existing table attached as a partition under a parent whose indexes stay: the index sql/ declares on
it is made ready before the ATTACH (kept, renamed, or built CONCURRENTLY; on a sub-partitioned table
ON ONLY with its partitions' indexes built and attached), and a PRIMARY KEY or UNIQUE added online, so
that ATTACH adopts them and builds nothing under a generated name. And the other way: a partition
detached to a plain table keeps its index. Each case is applied to real PostgreSQL, planned again
(empty), and judged by pg_dump against a fresh load of the declared sql/ (tests.generators.judge)."""

from __future__ import annotations

import psycopg

import pgconverge
from pgconverge import proof
from tests.generators import judge, load

ALL = dict(allow_hazards="all", drops=["*"], use_cache=False)


def index_names(db: str) -> list[tuple[str, str]]:
    with psycopg.connect(db, autocommit=True) as c:
        return c.execute("SELECT tablename, indexname FROM pg_indexes WHERE schemaname = 'public' "
                         "ORDER BY 1, 2").fetchall()


def attaches(make_db, before: str, after: str) -> list[str]:
    """Plan and apply `after` on a database holding `before`; the proof passed, a second plan is empty,
    the indexes are exactly those of a fresh load of `after` (none under a generated name), and the
    oracle judges the result converged. Returns the plan's SQL."""
    db, fresh = make_db(), make_db()
    load(db, before)
    load(fresh, after)
    plan = pgconverge.plan(db, [after], **ALL)
    result = pgconverge.apply(db, plan, **ALL)
    assert result.plan.proof is not None and result.plan.proof.status == proof.PROVED, result.plan.proof
    again = pgconverge.plan(db, [after], **ALL)
    assert again.is_empty, again.to_sql()
    assert index_names(db) == index_names(fresh)
    verdict = judge(make_db, before, after)
    assert verdict.outcome == "converged", verdict.detail
    return [s.sql for s in plan.steps]


def at(sqls: list[str], fragment: str) -> int:
    found = [i for i, s in enumerate(sqls) if fragment in s]
    assert len(found) == 1, (fragment, sqls)
    return found[0]


ATTACH = 'ALTER TABLE "public"."m" ATTACH PARTITION "public"."m2"'
M = "CREATE TABLE m (id int, v int) PARTITION BY RANGE (id); CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (0) TO (10);"
PLAIN = "CREATE TABLE m2 (id int, v int); INSERT INTO m2 VALUES (11, 1), (12, 2);"
PART = "CREATE TABLE m2 PARTITION OF m FOR VALUES FROM (10) TO (20);"
IDX = "CREATE INDEX m_v_idx ON m (v);"
# pg_dump's order: the partition and its own index first, then the parent's index adopts it
DECLARED = M + PART + "CREATE INDEX m2_own ON m2 (v);" + IDX


def test_a_missing_declared_index_is_built_concurrently_before_the_attach(make_db):
    sqls = attaches(make_db, M + IDX + PLAIN, DECLARED)
    assert at(sqls, "CREATE INDEX CONCURRENTLY m2_own ON public.m2 USING btree (v)") < at(sqls, ATTACH)
    assert not any(s.startswith(("DROP INDEX", "CREATE INDEX m_v_idx")) for s in sqls)


def test_the_declared_index_already_there_is_kept_and_adopted(make_db):
    sqls = attaches(make_db, M + IDX + PLAIN + "CREATE INDEX m2_own ON m2 (v);", DECLARED)
    assert not any("INDEX" in s for s in sqls)  # neither dropped nor built: ATTACH adopts it
    assert at(sqls, ATTACH) >= 0


def test_the_same_index_under_another_name_is_renamed_before_the_attach(make_db):
    sqls = attaches(make_db, M + IDX + PLAIN + "CREATE INDEX other ON m2 (v); COMMENT ON INDEX other IS 'x';",
                    DECLARED + "COMMENT ON INDEX m2_own IS 'kept';")
    assert at(sqls, 'ALTER INDEX "public"."other" RENAME TO "m2_own"') < at(sqls, ATTACH)
    assert not any(s.startswith(("CREATE INDEX", "DROP INDEX")) for s in sqls)
    assert "COMMENT ON INDEX \"public\".\"m2_own\" IS 'kept'" in sqls


def test_a_kept_index_of_the_same_shape_gives_its_name_to_the_declared_one(make_db):
    # ATTACH adopts the oldest fitting index: the one the table keeps would be taken over a new build
    # of the declared one, so the kept one is renamed to the declared name and built again as new
    kept = "CREATE INDEX keep_me ON m2 (v); COMMENT ON INDEX keep_me IS 'mine';"
    sqls = attaches(make_db, M + IDX + PLAIN + "CREATE INDEX keep_me ON m2 (v);",
                    DECLARED + "COMMENT ON INDEX m2_own IS 'attached';" + kept)
    rename = at(sqls, 'ALTER INDEX "public"."keep_me" RENAME TO "m2_own"')
    assert rename < at(sqls, "CREATE INDEX CONCURRENTLY keep_me ON public.m2 USING btree (v)")
    assert rename < at(sqls, ATTACH)
    assert not any(s.startswith(("DROP INDEX", "CREATE INDEX CONCURRENTLY m2_own")) for s in sqls)
    # and where the table's own index of that name has another shape, it goes first
    sqls = attaches(make_db, M + IDX + PLAIN + "CREATE INDEX keep_me ON m2 (v); CREATE INDEX m2_own ON m2 (id);",
                    DECLARED + kept)
    assert at(sqls, 'DROP INDEX CONCURRENTLY "public"."m2_own"') < at(sqls, 'RENAME TO "m2_own"') < at(sqls, ATTACH)


def test_a_clustered_rival_of_the_declared_index_is_left_to_the_proof(make_db):
    # CLUSTER ON follows the index, not its name: no rename, and what ATTACH picks is judged
    db = make_db()
    load(db, M + IDX + PLAIN + "CREATE INDEX keep_me ON m2 (v); ALTER TABLE m2 CLUSTER ON keep_me;")
    after = DECLARED + "CREATE INDEX keep_me ON m2 (v); ALTER TABLE m2 CLUSTER ON keep_me;"
    before = index_names(db)
    try:
        plan = pgconverge.plan(db, [after], **ALL)
    except proof.NotProved as e:
        assert "does not produce the declared schema" in str(e)
    else:
        assert not any("RENAME" in s.sql for s in plan.steps), plan.to_sql()
    assert index_names(db) == before


def test_an_index_of_another_shape_is_dropped_and_the_declared_one_built(make_db):
    sqls = attaches(make_db, M + IDX + PLAIN + "CREATE INDEX m2_own ON m2 (id, v);", DECLARED)
    assert at(sqls, 'DROP INDEX CONCURRENTLY "public"."m2_own"') < at(sqls, "CREATE INDEX CONCURRENTLY m2_own") \
        < at(sqls, ATTACH)


def test_a_unique_parent_index_gets_the_unique_index_built_first(make_db):
    unique = "CREATE UNIQUE INDEX m_id_key ON m (id);"
    declared = M + PART + "CREATE UNIQUE INDEX m2_id ON m2 (id);" + unique
    sqls = attaches(make_db, M + unique + PLAIN, declared)
    assert at(sqls, "CREATE UNIQUE INDEX CONCURRENTLY m2_id ON public.m2 USING btree (id)") < at(sqls, ATTACH)


PK = "ALTER TABLE m ADD PRIMARY KEY (id);"


def test_a_primary_key_of_the_parent_is_added_online_before_the_attach(make_db):
    sqls = attaches(make_db, M + PK + PLAIN, M + PART + PK)
    build = at(sqls, "CREATE UNIQUE INDEX CONCURRENTLY m2_pkey ON public.m2 USING btree (id)")
    assert build < at(sqls, 'ADD CONSTRAINT "m2_pkey" PRIMARY KEY USING INDEX "m2_pkey"') < at(sqls, ATTACH)
    # a primary key the table has already is adopted as it is
    sqls = attaches(make_db, M + PK + PLAIN.replace("id int,", "id int PRIMARY KEY,"), M + PART + PK)
    assert not any("INDEX" in s or "PRIMARY KEY" in s for s in sqls)


SUB = ("CREATE TABLE m2 (id int, v int) PARTITION BY RANGE (id);"
       "CREATE TABLE m21 PARTITION OF m2 FOR VALUES FROM (10) TO (15); INSERT INTO m2 VALUES (11, 1);")
SUB_DECLARED = (M + "CREATE TABLE m2 PARTITION OF m FOR VALUES FROM (10) TO (20) PARTITION BY RANGE (id);"
                "CREATE TABLE m21 PARTITION OF m2 FOR VALUES FROM (10) TO (15);"
                "CREATE INDEX m21_own ON m21 (v); CREATE INDEX m2_own ON m2 (v);" + IDX)


def test_a_sub_partitioned_table_gets_its_partitioned_index_before_the_attach(make_db):
    sqls = attaches(make_db, M + IDX + SUB, SUB_DECLARED)
    only = at(sqls, "CREATE INDEX m2_own ON ONLY public.m2 USING btree (v)")
    build = at(sqls, "CREATE INDEX CONCURRENTLY m21_own ON public.m21 USING btree (v)")
    inner = at(sqls, 'ALTER INDEX "public"."m2_own" ATTACH PARTITION "public"."m21_own"')
    assert max(only, build) < inner < at(sqls, ATTACH)
    # with its index there already (its partition's attached): nothing is built
    sqls = attaches(make_db, M + IDX + SUB + "CREATE INDEX m21_own ON m21 (v); CREATE INDEX m2_own ON m2 (v);",
                    SUB_DECLARED)
    assert not any("INDEX" in s for s in sqls)


def test_a_partition_detached_to_a_plain_table_keeps_its_index(make_db):
    plain = M + IDX + "CREATE TABLE m2 (id int, v int); CREATE INDEX m2_own ON m2 (v);"
    sqls = attaches(make_db, DECLARED, plain)
    assert sqls == ['ALTER TABLE "public"."m" DETACH PARTITION "public"."m2"']
    # and a primary key: the partition's stays its own
    sqls = attaches(make_db, M + PART + PK, M + PK + "CREATE TABLE m2 (id int PRIMARY KEY, v int);")
    assert sqls == ['ALTER TABLE "public"."m" DETACH PARTITION "public"."m2"']


# --------------------------------------------------------------------------- the generator's case


def test_the_generator_draws_and_renders_an_existing_table_attached_with_its_index(make_db):
    from dataclasses import replace

    from hypothesis import find

    from tests.generators import Partitioned, Spec, attachments, render

    pt = Partitioned(partitions=(0, 1), unattached=(1,), index="plain")
    drawn = find(attachments(pt), lambda x: x.unattached == () and x.own_index == (1,))
    assert drawn == replace(pt, unattached=(), own_index=(1,))
    before, after = render(Spec(partitioned=pt)), render(Spec(partitioned=drawn))
    assert "CREATE INDEX events_1_own ON app.events_1 (v);" in after
    assert after.index("events_1_own") < after.index("CREATE INDEX events_v_idx")
    sqls = attaches(make_db, before, after)
    assert at(sqls, "CREATE INDEX CONCURRENTLY events_1_own") < at(sqls, 'ATTACH PARTITION "app"."events_1"')
    # and back: detached to a plain table that keeps the index
    attaches(make_db, after, render(Spec(partitioned=replace(drawn, unattached=(1,)))))


def test_the_generator_draws_a_spare_index_that_attach_must_not_adopt(make_db):
    from dataclasses import replace

    from hypothesis import find

    from tests.generators import Partitioned, Spec, attachments, render

    pt = Partitioned(partitions=(0, 1), unattached=(1,), index="plain", spare_index=(1,))
    drawn = find(attachments(pt), lambda x: x.unattached == () and x.own_index == () and x.spare_index == (1,))
    before, after = render(Spec(partitioned=pt)), render(Spec(partitioned=drawn))
    assert after.index("CREATE INDEX events_v_idx") < after.index("events_1_spare")
    sqls = attaches(make_db, before, after)
    assert at(sqls, 'RENAME TO "events_1_v_idx"') < at(sqls, 'ATTACH PARTITION "app"."events_1"')
    assert at(sqls, "CREATE INDEX CONCURRENTLY events_1_spare") >= 0
    # and with the declared index there already: the spare, which ATTACH might take first, is dropped
    # before the ATTACH and built again
    with_own = replace(pt, own_index=(1,))
    sqls = attaches(make_db, render(Spec(partitioned=with_own)), render(Spec(partitioned=replace(drawn, own_index=(1,)))))
    drop = at(sqls, 'DROP INDEX CONCURRENTLY "app"."events_1_spare"')
    assert drop < at(sqls, 'ATTACH PARTITION "app"."events_1"')
    assert drop < at(sqls, "CREATE INDEX CONCURRENTLY events_1_spare")
    assert not any("events_1_own" in s for s in sqls)


# --------------------------------------------------------------------------- keys that back a parent's index

KEYED = ("CREATE TABLE k (id int, v int, w int) PARTITION BY LIST (v);"
         "CREATE TABLE k1 PARTITION OF k (PRIMARY KEY (v, w)) FOR VALUES IN (1);"
         "CREATE TABLE k2 PARTITION OF k (UNIQUE (v, w)) FOR VALUES IN (2);"
         "CREATE TABLE k3 PARTITION OF k FOR VALUES IN (3);")


def test_a_partitions_key_backs_the_parents_new_unique_index(make_db):
    """PostgreSQL attaches a partition's PRIMARY KEY or UNIQUE index to a matching index made on the
    parent: the plan attaches those too, and builds an index only where no key matches."""
    sqls = attaches(make_db, KEYED, KEYED + "CREATE UNIQUE INDEX k_v_w ON k (v, w);")
    assert at(sqls, 'ATTACH PARTITION "public"."k1_pkey"') > at(sqls, "ON ONLY public.k")
    assert at(sqls, 'ATTACH PARTITION "public"."k2_v_w_key"') > at(sqls, "ON ONLY public.k")
    assert not any("k1_v_w_idx" in s or "k2_v_w_idx" in s for s in sqls)  # no second index on k1, k2


def test_a_foreign_key_waits_for_its_partitioned_unique_index_to_be_complete(make_db):
    """A unique index built ON ONLY is invalid, and backs no foreign key, until every partition's index
    is attached: the foreign key is added after the last ATTACH."""
    after = KEYED + ("CREATE UNIQUE INDEX k_v_w ON k (v, w);"
                     "CREATE TABLE r (v int, w int); ALTER TABLE r ADD FOREIGN KEY (v, w) REFERENCES k (v, w);")
    sqls = attaches(make_db, KEYED, after)
    fk = at(sqls, 'ALTER TABLE "public"."r" ADD CONSTRAINT')
    assert all(fk > i for i, s in enumerate(sqls) if "ATTACH PARTITION" in s)
    judged = judge(make_db, None, after)
    assert judged.outcome == "converged", judged.detail


# --------------------------------------------------------------------------- a partition's copy of a key made ON ONLY

ONLY = ("CREATE TABLE f (id int NOT NULL, foo text NOT NULL) PARTITION BY LIST (foo);"
        "CREATE TABLE f1 PARTITION OF f FOR VALUES IN ('a');"
        "CREATE TABLE f2 PARTITION OF f FOR VALUES IN ('b');")
ROWS = "INSERT INTO f VALUES (1, 'a'), (2, 'b');"
ONLY_PK = ONLY + "ALTER TABLE ONLY f ADD CONSTRAINT f_pkey PRIMARY KEY (foo, id);"
ONLY_UNIQUE = ONLY + "ALTER TABLE ONLY f ADD CONSTRAINT f_key UNIQUE (foo, id);"


def hazards(db: str, after: str) -> set[tuple[str, str]]:
    plan = pgconverge.plan(db, [after], **ALL)
    return {(h.name, h.object) for h in plan.hazards}


def test_a_partitions_unique_index_becomes_its_copy_of_the_parents_primary_key(make_db):
    """The parent's key was made ON ONLY (its index INVALID): the partition's unique index under the
    declared name is made its key USING INDEX and attached, neither dropped nor built again."""
    before = ONLY_PK + "CREATE UNIQUE INDEX f1_pkey ON f1 (foo, id); CREATE UNIQUE INDEX f2_pkey ON f2 (foo, id);"
    after = before + ("ALTER TABLE f1 ADD CONSTRAINT f1_pkey PRIMARY KEY USING INDEX f1_pkey;"
                      "ALTER INDEX f_pkey ATTACH PARTITION f1_pkey;")
    sqls = attaches(make_db, before + ROWS, after)
    assert at(sqls, 'ADD CONSTRAINT "f1_pkey" PRIMARY KEY USING INDEX "f1_pkey"') \
        < at(sqls, 'ALTER INDEX "public"."f_pkey" ATTACH PARTITION "public"."f1_pkey"')
    assert not any(s.startswith(("DROP INDEX", "CREATE")) for s in sqls)  # f2's index stays as it is
    db = make_db()
    load(db, before)
    assert hazards(db, after) == set()


def test_a_missing_copy_of_a_unique_key_is_built_online_and_attached(make_db):
    """With no index on the partition, its key is built CONCURRENTLY (index_build, and duplicates make it
    fail), added USING INDEX and attached; once every partition's is, PostgreSQL marks the parent's key
    valid, and a foreign key to it is added after the last ATTACH."""
    after = ONLY_UNIQUE + ("ALTER TABLE f1 ADD CONSTRAINT f1_key UNIQUE (foo, id);"
                           "ALTER INDEX f_key ATTACH PARTITION f1_key;"
                           "ALTER TABLE f2 ADD CONSTRAINT f2_key UNIQUE (foo, id);"
                           "ALTER INDEX f_key ATTACH PARTITION f2_key;"
                           "CREATE TABLE r (id int, foo text, FOREIGN KEY (foo, id) REFERENCES f (foo, id));")
    sqls = attaches(make_db, ONLY_UNIQUE + ROWS, after)
    for part in ("f1", "f2"):
        build = at(sqls, f"CREATE UNIQUE INDEX CONCURRENTLY {part}_key ON public.{part} USING btree (foo, id)")
        using = at(sqls, f'ADD CONSTRAINT "{part}_key" UNIQUE USING INDEX "{part}_key"')
        attach = at(sqls, f'ATTACH PARTITION "public"."{part}_key"')
        assert build < using < attach < at(sqls, 'ALTER TABLE "public"."r" ADD CONSTRAINT')
    db = make_db()
    load(db, ONLY_UNIQUE + ROWS)
    assert hazards(db, after) >= {("index_build", "index:public.f1_key"), ("index_build", "index:public.f2_key"),
                                  ("may_fail_on_existing_data", "constraint:public.f1.f1_key"),
                                  ("may_fail_on_existing_data", "constraint:public.f2.f2_key")}


def test_a_partitions_own_key_is_attached_as_it_is(make_db):
    before = ONLY_PK + "ALTER TABLE f1 ADD CONSTRAINT f1_pkey PRIMARY KEY (foo, id);"
    after = before + "ALTER INDEX f_pkey ATTACH PARTITION f1_pkey;"
    sqls = attaches(make_db, before + ROWS, after)
    assert sqls == ['ALTER INDEX "public"."f_pkey" ATTACH PARTITION "public"."f1_pkey"']


# --------------------------------------------------------------------------- a new partition's key over the copy

LISTED = ("CREATE TABLE g (id int, foo text, bar text) PARTITION BY LIST (foo);"
          "CREATE UNIQUE INDEX g_idx ON g (foo, bar);"
          "CREATE TABLE h (foo text, bar text) PARTITION BY LIST (foo);"
          "CREATE UNIQUE INDEX h_idx ON h (foo, bar);"
          "ALTER TABLE h ADD CONSTRAINT h_fk FOREIGN KEY (foo, bar) REFERENCES g (foo, bar);"
          "ALTER TABLE g ADD CONSTRAINT g_fk FOREIGN KEY (foo, bar) REFERENCES h (foo, bar);")


def test_a_new_partitions_key_is_added_over_the_copy_of_the_parents_unique_index(make_db):
    """CREATE TABLE ... PARTITION OF makes the copy of the parent's unique index before the partition's
    own key, so the key is added USING that copy (which takes its name, and stays attached): the parent's
    index, which foreign keys depend on, is neither dropped nor built again."""
    after = LISTED.replace(
        "CREATE UNIQUE INDEX g_idx", "CREATE TABLE g1 PARTITION OF g (PRIMARY KEY (foo, bar)) FOR VALUES IN ('a');"
        "CREATE UNIQUE INDEX g_idx").replace(
        "CREATE UNIQUE INDEX h_idx", "CREATE TABLE h1 PARTITION OF h (UNIQUE (foo, bar)) FOR VALUES IN ('a');"
        "CREATE UNIQUE INDEX h_idx")
    sqls = attaches(make_db, LISTED, after)
    assert at(sqls, 'CREATE TABLE "public"."g1"') < at(
        sqls, 'ADD CONSTRAINT "g1_pkey" PRIMARY KEY USING INDEX "g1_foo_bar_idx"')
    assert at(sqls, 'CREATE TABLE "public"."h1"') < at(
        sqls, 'ADD CONSTRAINT "h1_foo_bar_key" UNIQUE USING INDEX "h1_foo_bar_idx"')
    assert not any(s.startswith(("DROP", "CREATE INDEX", "CREATE UNIQUE INDEX")) or "_fk" in s for s in sqls)


# --------------------------------------------------------------------------- a parent made again

REMADE_RANGE = ("CREATE TABLE p (id int, k int, PRIMARY KEY (id)) PARTITION BY RANGE (id);"
                "CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10);"
                "CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (10) TO (20);")
REMADE_LIST = ("CREATE TABLE p (id int, k int, PRIMARY KEY (id)) PARTITION BY LIST (id);"
               "CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1);"
               "CREATE TABLE p2 PARTITION OF p FOR VALUES IN (2);")


def test_a_parents_key_to_itself_outlives_its_partitions_detach_when_it_is_made_again(make_db):
    # DETACH leaves each partition its copy of the parent's key as its own, which points at the parent
    # and would refuse its DROP: the copy goes after the DETACH and comes back with the parent's key
    fk = "ALTER TABLE p ADD FOREIGN KEY (k) REFERENCES p (id);"
    sqls = attaches(make_db, REMADE_RANGE + fk, REMADE_LIST + fk)
    copy = at(sqls, 'ALTER TABLE "public"."p1" DROP CONSTRAINT "p_k_fkey"')
    assert at(sqls, 'DETACH PARTITION "public"."p1"') < copy < at(sqls, 'DROP TABLE "public"."p"')
    assert at(sqls, 'ATTACH PARTITION "public"."p1"') < at(sqls, 'ALTER TABLE "public"."p" ADD CONSTRAINT "p_k_fkey"')


def test_a_partitions_own_key_to_its_parent_made_again_is_dropped_before_the_detach(make_db):
    # the partition's online ATTACH checks its new bound while it is still attached, and waits for the
    # constraints it loses: its key to the parent goes first (no dependency cycle), and comes back after
    fk = "ALTER TABLE p2 ADD FOREIGN KEY (k) REFERENCES p (id);"
    sqls = attaches(make_db, REMADE_RANGE + fk, REMADE_LIST + fk)
    assert at(sqls, 'ALTER TABLE "public"."p2" DROP CONSTRAINT "p2_k_fkey"') < at(sqls, 'DETACH PARTITION "public"."p2"')
    assert at(sqls, 'ATTACH PARTITION "public"."p2"') < at(sqls, 'ALTER TABLE "public"."p2" ADD CONSTRAINT "p2_k_fkey"')
    # and keys between partitions, or to another parent made again, need nothing of the kind
    between = "ALTER TABLE p2 ADD FOREIGN KEY (k) REFERENCES p1 (id);"
    attaches(make_db, REMADE_RANGE + between, REMADE_LIST + between)
    other = ("CREATE TABLE r (id int, PRIMARY KEY (id)) PARTITION BY {};"
             "CREATE TABLE r1 PARTITION OF r FOR VALUES {};"
             "CREATE TABLE q (id int, k int REFERENCES r (id)) PARTITION BY {};"
             "CREATE TABLE q1 PARTITION OF q FOR VALUES {};")
    attaches(make_db, other.format("RANGE (id)", "FROM (0) TO (10)", "RANGE (id)", "FROM (0) TO (10)"),
             other.format("LIST (id)", "IN (1)", "LIST (id)", "IN (1)"))


def test_a_parent_made_again_leaves_its_partitions_their_indexes_and_attaches_them(make_db):
    # DETACH before the parent's DROP leaves each partition its index as its own: attached again as it is,
    # not built a second time under the same name
    idx = "CREATE INDEX p1_own ON p1 (k); CREATE INDEX p_k ON p (k); CREATE INDEX p1_extra ON p1 (k);"
    sqls = attaches(make_db, REMADE_RANGE + idx, REMADE_LIST + idx)
    assert not any(s.startswith("CREATE INDEX CONCURRENTLY") for s in sqls)
    assert at(sqls, "CREATE INDEX p_k ON ONLY public.p") < at(sqls, 'ATTACH PARTITION "public"."p1_own"')
    default = "CREATE TABLE pd PARTITION OF p DEFAULT; CREATE INDEX p_k ON p (k);"
    sqls = attaches(make_db, REMADE_RANGE + default, REMADE_LIST + default)
    assert not any(s.startswith("CREATE INDEX CONCURRENTLY") for s in sqls)


def test_a_partition_that_leaves_a_parent_made_plain_loses_its_copy_of_the_parents_key_once(make_db):
    fk = "ALTER TABLE p ADD FOREIGN KEY (k) REFERENCES p (id);"
    sqls = attaches(make_db, REMADE_LIST + fk, "CREATE TABLE p (id int PRIMARY KEY, k int REFERENCES p (id));"
                    "CREATE TABLE p1 (id int PRIMARY KEY, k int); CREATE TABLE p2 (id int PRIMARY KEY, k int);")
    assert sum(s == 'ALTER TABLE "public"."p1" DROP CONSTRAINT "p_k_fkey"' for s in sqls) == 1
