"""Fast unit tests of the pure planner on in-memory catalogs (no server)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgconverge.planning import hazards as hz
from pgconverge.planning.hazards import Policy
from pgconverge.catalog.model import Catalog, Column, Constraint, EnumType, Index, Schema, Sequence, Table, schema_id
from pgconverge.planning.steps import NONE, OWN, order_steps
from pgconverge.errors import PlanError
from pgconverge.planning.context import PlanOptions
from pgconverge.planning.renames import Rename, Renames
from pgconverge.planning.planner import diff


def table(name: str, *cols: Column, schema: str = "public", constraints=(), indexes=()) -> Table:
    return Table(schema, name, columns={c.name: c for c in cols},
                 constraints={c.name: c for c in constraints}, indexes={i.name: i for i in indexes})


def cat(*tables: Table, enums=(), sequences=()) -> Catalog:
    c = Catalog(server_version=150000)
    c.schemas[schema_id("public")] = Schema("public")
    for t in tables:
        c.tables[t.id] = t
        c.schemas.setdefault(schema_id(t.schema), Schema(t.schema))
    for e in enums:
        c.enums[e.id] = e
    for s in sequences:
        c.sequences[s.id] = s
    return c


ID = Column("id", "integer", not_null=True)
PK = Constraint("t_pkey", "p", "PRIMARY KEY (id)", ("id",), index="t_pkey")


def sqls(steps) -> list[str]:
    return [s.sql for s in steps]


def test_identical_catalogs_plan_nothing():
    c = cat(table("t", ID, constraints=[PK]))
    assert diff(c, c) == []


def test_create_table_quotes_names_and_carries_no_hazard():
    want = cat(table("bazaar-vid_exports", Column("userId", "character varying(255)", not_null=True)))
    steps = diff(cat(), want)
    assert len(steps) == 1
    assert steps[0].sql.startswith('CREATE TABLE "public"."bazaar-vid_exports"')
    assert '"userId" character varying(255) NOT NULL' in steps[0].sql
    assert steps[0].hazards == ()


def test_foreign_key_added_after_both_tables():
    parent = table("parent", ID, constraints=[Constraint("parent_pkey", "p", "PRIMARY KEY (id)", ("id",))])
    fk = Constraint("child_pid_fkey", "f", "FOREIGN KEY (pid) REFERENCES public.parent(id)", ("pid",),
                    ref_table="table:public.parent")
    child = table("child", Column("pid", "integer"), constraints=[fk])
    steps = diff(cat(), cat(child, parent))
    order = sqls(steps)
    fk_at = next(i for i, s in enumerate(order) if "ADD CONSTRAINT" in s)
    assert fk_at > max(i for i, s in enumerate(order) if s.startswith("CREATE TABLE"))
    # the FK on a table created in this run needs no NOT VALID dance
    assert "NOT VALID" not in order[fk_at]


def test_drop_table_is_deletes_data_and_refused_unless_named():
    steps = diff(cat(table("old", ID)), cat())
    assert [h.name for s in steps for h in s.hazards] == [hz.DELETES_DATA]
    hazards = [h for s in steps for h in s.hazards]
    assert Policy(allow=frozenset({hz.DELETES_DATA})).refused(hazards)  # allowed but not named
    assert not Policy(allow=frozenset({hz.DELETES_DATA}), drops=frozenset({"table:public.old"})).refused(hazards)


def test_index_on_existing_table_is_concurrent_and_outside_transaction():
    idx = Index("public", "t_x_idx", "t", "CREATE INDEX t_x_idx ON public.t USING btree (x)", columns=("x",))
    have = cat(table("t", ID, Column("x", "integer")))
    want = cat(table("t", ID, Column("x", "integer"), indexes=[idx]))
    (step,) = diff(have, want)
    assert step.sql.startswith("CREATE INDEX CONCURRENTLY t_x_idx")
    assert step.mode == NONE and not step.transactional
    assert [h.name for h in step.hazards] == [hz.INDEX_BUILD]


def test_index_on_new_table_is_plain():
    idx = Index("public", "t_x_idx", "t", "CREATE INDEX t_x_idx ON public.t USING btree (x)", columns=("x",))
    steps = diff(cat(), cat(table("t", ID, Column("x", "integer"), indexes=[idx])))
    assert "CONCURRENTLY" not in steps[-1].sql and steps[-1].transactional


def test_check_on_existing_table_is_not_valid_then_validated():
    chk = Constraint("t_x_check", "c", "CHECK ((x > 0))", ("x",))
    have = cat(table("t", ID, Column("x", "integer")))
    want = cat(table("t", ID, Column("x", "integer"), constraints=[chk]))
    add, validate = diff(have, want)
    assert add.sql.endswith("NOT VALID")
    assert validate.sql.endswith('VALIDATE CONSTRAINT "t_x_check"') and validate.mode == OWN
    assert hz.MAY_FAIL_ON_EXISTING_DATA in [h.name for h in add.hazards]


@pytest.mark.parametrize("old,new,expect", [
    ("character varying(10)", "character varying(20)", set()),
    ("character varying(10)", "text", set()),
    ("character varying(20)", "character varying(10)", {hz.DELETES_DATA}),
    ("integer", "bigint", {hz.REWRITES_TABLE}),
    ("bigint", "integer", {hz.REWRITES_TABLE, hz.DELETES_DATA}),
])
def test_type_change_hazards(old, new, expect):
    steps = diff(cat(table("t", Column("c", old))), cat(table("t", Column("c", new))))
    names = {h.name for s in steps for h in s.hazards}
    assert expect <= names
    if not expect:
        assert names == set()
    assert any(f"TYPE {new}" in s.sql for s in steps)


def test_enum_value_added_in_place_in_its_own_transaction():
    have = cat(enums=[EnumType("public", "mood", ("sad", "happy"))])
    want = cat(enums=[EnumType("public", "mood", ("sad", "ok", "happy"))])
    (step,) = diff(have, want)
    assert step.sql == """ALTER TYPE "public"."mood" ADD VALUE 'ok' BEFORE 'happy'"""
    assert step.mode == OWN


def test_enum_value_removal_replaces_the_type_and_is_deletes_data():
    col = Column("m", "public.mood", default="'sad'::public.mood", depends_on=("type:public.mood",))
    have = cat(table("t", col), enums=[EnumType("public", "mood", ("sad", "happy"))])
    want = cat(table("t", col), enums=[EnumType("public", "mood", ("sad",))])
    got = sqls(diff(have, want))
    assert got == [
        """CREATE TYPE "public"."mood__pgc_new" AS ENUM ('sad')""",
        'ALTER TABLE "public"."t" ALTER COLUMN "m" DROP DEFAULT',
        'ALTER TABLE "public"."t" ALTER COLUMN "m" TYPE "public"."mood__pgc_new" USING "m"::text::"public"."mood__pgc_new"',
        'DROP TYPE "public"."mood"',
        'ALTER TYPE "public"."mood__pgc_new" RENAME TO "mood"',
        """ALTER TABLE "public"."t" ALTER COLUMN "m" SET DEFAULT 'sad'::public.mood""",
    ]
    assert "deletes_data" in {h.name for s in diff(have, want) for h in s.hazards}


def test_declared_column_rename_runs_once():
    have = cat(table("users", ID, Column("purchased_credit_packs", "integer")))
    want = cat(table("users", ID, Column("purchasedCreditPacks", "integer")))
    opts = PlanOptions(renames=Renames((Rename("column", "public", "users", "purchased_credit_packs",
                                               "purchasedCreditPacks"),)))
    (step,) = diff(have, want, opts)
    assert step.sql == ('ALTER TABLE "public"."users" RENAME COLUMN "purchased_credit_packs" '
                        'TO "purchasedCreditPacks"')
    assert [h.name for h in step.hazards] == [hz.RENAMES]
    assert diff(want, want, opts) == []  # after it ran: a no-op


def test_serial_sequence_created_before_table_and_owned_after():
    seq = Sequence("public", "t_id_seq", "integer", 1, 1, 1, 2147483647, 1, False, owned_by=("t", "id"))
    col = Column("id", "integer", not_null=True, default="nextval('public.t_id_seq'::regclass)",
                 depends_on=("sequence:public.t_id_seq",))
    steps = diff(cat(), cat(table("t", col), sequences=[seq]))
    kinds = [s.kind for s in steps]
    assert kinds == ["create_sequence", "create_table", "owned_by"]


def test_cycle_is_reported():
    from pgconverge.planning.steps import Step

    a = Step("A", "create_table", "a", provides=frozenset({"x"}), requires=frozenset({"y"}))
    b = Step("B", "create_table", "b", provides=frozenset({"y"}), requires=frozenset({"x"}))
    with pytest.raises(PlanError, match="dependency cycle"):
        order_steps([a, b])


names = st.text(alphabet="abcdefghij-_XY", min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(st.lists(names, min_size=1, max_size=7, unique=True), st.data())
def test_property_fk_graph_orders_creates(table_names, data):
    """For any acyclic set of foreign keys, each FK step comes after both tables and after the
    referenced primary key, and planning the result again is empty."""
    tables = []
    for i, n in enumerate(table_names):
        refs = data.draw(st.lists(st.sampled_from(table_names[:i]), unique=True, max_size=3)) if i else []
        cons = [Constraint(f"{n}_pkey", "p", "PRIMARY KEY (id)", ("id",))]
        cols = [ID]
        for r in refs:
            cols.append(Column(f"{r}_id", "integer"))
            cons.append(Constraint(f"{n}_{r}_fk", "f", f"FOREIGN KEY ({r}_id) REFERENCES public.{r}(id)",
                                   (f"{r}_id",), ref_table=f"table:public.{r}"))
        tables.append(table(n, *cols, constraints=cons))
    want = cat(*tables)
    steps = diff(cat(), want)
    position = {s.object: i for i, s in enumerate(steps)}
    for s in steps:
        for r in s.requires:
            if r in position:
                assert position[r] < position[s.object] or r == s.object
    assert diff(want, want) == []
