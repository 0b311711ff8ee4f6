"""Fast unit tests of the rename records and logic, on catalogs built in memory."""

from __future__ import annotations

import pytest

from pgconverge.catalog.model import Catalog, Column, Constraint, Index, Schema, Table
from pgconverge.errors import PlanError
from pgconverge.planning.context import Diff, PlanOptions
from pgconverge.planning.renames import Rename, Renames, apply_renames, derived_name, renamed_table


def cat(*tables: Table) -> Catalog:
    c = Catalog(server_version=150000)
    c.schemas["schema:public"] = Schema("public")
    c.tables = {t.id: t for t in tables}
    return c


def users(name: str = "users", col: str = "id") -> Table:
    return Table("public", name, columns={col: Column(col, "integer", not_null=True)},
                 constraints={f"{name}_pkey": Constraint(f"{name}_pkey", "p", f"PRIMARY KEY ({col})", (col,),
                                                         index=f"{name}_pkey")},
                 indexes={f"{name}_{col}_idx": Index("public", f"{name}_{col}_idx", name,
                                                     f"CREATE INDEX {name}_{col}_idx ON public.{name} USING btree ({col})")})


def test_rename_record_defaults():
    r = Rename("table", "public", None, "a", "b")
    assert r.where == "" and Renames((r,)).of_kind("table") == [r] and Renames((r,)).of_kind("column") == []


def test_derived_name():
    assert derived_name("t_pkey", "t", "u") == "u_pkey"
    assert derived_name("t_col_key", "col", "c2") == "t_c2_key"
    assert derived_name("tt_pkey", "t", "u") is None  # only a whole "_"-separated part
    assert derived_name("t_pkey", "t", "x" * 70) is None  # longer than NAMEDATALEN


def test_table_rename_renames_derived_names_and_rewrites_the_actual_catalog():
    p = Diff(cat(users()), cat(users("people")), PlanOptions())
    apply_renames(p, Renames((Rename("table", "public", None, "users", "people", "a.sql:3"),)))
    assert [s.sql for s in p.steps] == [
        'ALTER TABLE "public"."users" RENAME TO "people"',
        'ALTER TABLE "public"."people" RENAME CONSTRAINT "users_pkey" TO "people_pkey"',
        'ALTER INDEX "public"."users_id_idx" RENAME TO "people_id_idx"',
    ]
    assert p.steps[0].hazards[0].reason == ("table public.users is renamed to people; clients using the old name "
                                            "break")
    assert set(p.actual.tables) == {"table:public.people"}
    assert p.actual.tables["table:public.people"] == users("people")


def test_rename_is_skipped_with_a_warning_when_both_exist():
    p = Diff(cat(users(), users("people")), cat(users("people")), PlanOptions())
    apply_renames(p, Renames((Rename("table", "public", None, "users", "people", "a.sql:3"),)))
    assert p.steps == [] and "both exist" in p.warnings[0] and "a.sql:3" in p.warnings[0]


def test_rename_from_a_name_still_declared_is_an_error():
    p = Diff(cat(users()), cat(users(), users("people")), PlanOptions())
    with pytest.raises(PlanError, match="declared in sql/ too"):
        apply_renames(p, Renames((Rename("table", "public", None, "users", "people"),)))


def test_column_rename_and_renamed_table():
    p = Diff(cat(users()), cat(users(col="uid")), PlanOptions())
    apply_renames(p, Renames((Rename("column", "public", "users", "id", "uid"),)))
    assert p.steps[0].sql == 'ALTER TABLE "public"."users" RENAME COLUMN "id" TO "uid"'
    t = p.actual.tables["table:public.users"]
    assert list(t.columns) == ["uid"] and t.constraints["users_pkey"].definition == "PRIMARY KEY (uid)"
    renames = Renames((Rename("table", "public", None, "old", "users"),))
    assert renamed_table(p, renames, "public.old") == "public.users"
    assert renamed_table(p, renames, "public.other") == "public.other"


# --------------------------------------------------------------------------- enum values


def test_an_enum_value_rename_keeps_the_rows_value_under_its_new_label(make_db):
    """Against PostgreSQL: RENAME VALUE, not a new type; the rows keep their value, a second plan is
    empty, and a rename that already ran (or names a value that never was) plans nothing."""
    import psycopg

    import pgconverge

    db = make_db()
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("CREATE TYPE status AS ENUM ('active', 'pending'); CREATE TABLE t (s status);"
                  "INSERT INTO t VALUES ('pending'), ('active');")
    sql = ["CREATE TYPE status AS ENUM (\n  'active',\n  'waiting' -- @renamed-from pending\n);",
           "CREATE TABLE t (s status);"]
    plan = pgconverge.plan(db, sql, allow_hazards="all", use_cache=False)
    assert [s.sql for s in plan.steps] == ['ALTER TYPE "public"."status" RENAME VALUE \'pending\' TO \'waiting\'']
    assert [h.name for h in plan.steps[0].hazards] == ["renames"]
    pgconverge.apply(db, plan, allow_hazards="all", use_cache=False)
    with psycopg.connect(db, autocommit=True) as c:
        assert c.execute("SELECT s::text FROM t ORDER BY 1").fetchall() == [("active",), ("waiting",)]
    again = pgconverge.plan(db, sql, allow_hazards="all", use_cache=False)
    assert again.is_empty
    gone = ["CREATE TYPE status AS ENUM (\n  'active',\n  'waiting' -- @renamed-from never\n);",
            "CREATE TABLE t (s status);"]
    assert pgconverge.plan(db, gone, allow_hazards="all", use_cache=False).is_empty


def test_an_enum_type_rename_keeps_its_columns(make_db):
    import psycopg

    import pgconverge

    db = make_db()
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("CREATE TYPE order_state AS ENUM ('pending', 'shipped');"
                  "CREATE TABLE orders (id int, s order_state, h order_state[]); INSERT INTO orders VALUES (1, 'shipped', '{pending}');")
    sql = ["CREATE TYPE order_status /* @renamed-from order_state */ AS ENUM ('pending', 'shipped');",
           "CREATE TABLE orders (id int, s order_status, h order_status[]);"]
    plan = pgconverge.plan(db, sql, allow_hazards="all", use_cache=False)
    assert [s.sql for s in plan.steps] == ['ALTER TYPE "public"."order_state" RENAME TO "order_status"']
    pgconverge.apply(db, plan, allow_hazards="all", use_cache=False)
    with psycopg.connect(db, autocommit=True) as c:
        assert c.execute("SELECT s::text, h::text FROM orders").fetchall() == [("shipped", "{pending}")]
    assert pgconverge.plan(db, sql, allow_hazards="all", use_cache=False).is_empty
