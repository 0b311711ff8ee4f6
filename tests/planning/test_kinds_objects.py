"""Views, functions, triggers, row-level security, policies and privileges: integration
tests against the embedded PostgreSQL (create, change, drop, idempotence, dependency
order), and a few unit tests of the pure diff on in-memory catalogs."""

from __future__ import annotations

import psycopg
import pytest

import pgconverge
from pgconverge.planning import hazards as hz
from pgconverge.planning.hazards import HazardRefused
from pgconverge.catalog.model import OWNER, Acl, Catalog, Column, Function, Schema, Table, View, schema_id
from pgconverge.errors import PlanError, UnsupportedError
from pgconverge.planning.planner import diff
from pgconverge.source import SourceError

ALL = dict(allow_hazards="all", drops=["*"])
ROLE = "schemainspect_test_role"  # created cluster-wide by the session fixture


def sqls(plan) -> list[str]:
    """The statements of the plan that ran."""
    return [s.sql for s in plan.steps]


def rows(conn: psycopg.Connection, query: str, *args) -> list[tuple]:
    return conn.execute(query, args).fetchall()


def position(statements: list[str], fragment: str) -> int:
    hits = [i for i, s in enumerate(statements) if fragment in s]
    assert hits, f"{fragment!r} not in plan:\n" + "\n".join(statements)
    return hits[0]


# --------------------------------------------------------------------------- views


def test_view_create_replace_recreate_drop(converge, db, conn):
    converge(db, ["CREATE TABLE t (a int, b text);", "CREATE VIEW v AS SELECT a FROM t;"])
    oid = rows(conn, "SELECT 'v'::regclass::oid")[0][0]
    # a new column at the end: replaced in place, the view keeps its identity
    ran = sqls(converge(db, ["CREATE TABLE t (a int, b text);", "CREATE VIEW v AS SELECT a, b FROM t;"]))
    assert any(s.startswith('CREATE OR REPLACE VIEW "public"."v"') for s in ran)
    assert rows(conn, "SELECT 'v'::regclass::oid")[0][0] == oid
    # a column removed: dropped and created again
    ran = sqls(converge(db, ["CREATE TABLE t (a int, b text);", "CREATE VIEW v AS SELECT b FROM t;"]))
    assert position(ran, 'DROP VIEW "public"."v"') < position(ran, 'CREATE VIEW "public"."v"')
    assert rows(conn, "SELECT attname FROM pg_attribute WHERE attrelid = 'v'::regclass AND attnum > 0") == [("b",)]
    converge(db, ["CREATE TABLE t (a int, b text);"])
    assert rows(conn, "SELECT to_regclass('v')") == [(None,)]


def test_view_options_and_comments(converge, db, conn):
    base = "CREATE TABLE t (a int);"
    converge(db, [base, "CREATE VIEW v WITH (security_barrier) AS SELECT a FROM t WHERE a > 0;",
                  "COMMENT ON VIEW v IS 'positive'; COMMENT ON COLUMN v.a IS 'the a';"])
    assert rows(conn, "SELECT reloptions, obj_description('v'::regclass, 'pg_class') FROM pg_class "
                      "WHERE oid = 'v'::regclass") == [(["security_barrier=true"], "positive")]
    converge(db, [base, "CREATE VIEW v AS SELECT a FROM t WHERE a > 0 WITH LOCAL CHECK OPTION;"])
    assert rows(conn, "SELECT reloptions, obj_description('v'::regclass, 'pg_class'), col_description('v'::regclass, 1) "
                      "FROM pg_class WHERE oid = 'v'::regclass") == [(["check_option=local"], None, None)]


def test_view_over_retyped_column_is_dropped_first_and_created_after(converge, db, conn):
    converge(db, ["CREATE TABLE t (id int, n int);", "CREATE VIEW v AS SELECT n FROM t;",
                  "CREATE VIEW w AS SELECT n FROM v;", "CREATE VIEW untouched AS SELECT id FROM t;"])
    conn.execute("INSERT INTO t VALUES (1, 7)")
    untouched = rows(conn, "SELECT 'untouched'::regclass::oid")[0][0]
    sql = ["CREATE TABLE t (id int, n bigint);", "CREATE VIEW v AS SELECT n FROM t;",
           "CREATE VIEW w AS SELECT n FROM v;", "CREATE VIEW untouched AS SELECT id FROM t;"]
    ran = sqls(converge(db, sql))
    retype = position(ran, 'ALTER COLUMN "n" TYPE bigint')
    assert position(ran, 'DROP VIEW "public"."w"') < position(ran, 'DROP VIEW "public"."v"') < retype
    assert retype < position(ran, 'CREATE VIEW "public"."v"') < position(ran, 'CREATE VIEW "public"."w"')
    assert not any("untouched" in s for s in ran)
    assert rows(conn, "SELECT untouched.id, w.n FROM untouched, w") == [(1, 7)]
    assert rows(conn, "SELECT format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = 'w'::regclass "
                      "AND attname = 'n'") == [("bigint",)]
    assert rows(conn, "SELECT 'untouched'::regclass::oid")[0][0] == untouched


def test_view_over_dropped_column_goes_first(converge, db, conn):
    converge(db, ["CREATE TABLE t (a int, gone int);", "CREATE VIEW v AS SELECT a, gone FROM t;"])
    ran = sqls(converge(db, ["CREATE TABLE t (a int);", "CREATE VIEW v AS SELECT a FROM t;"]))
    assert position(ran, 'DROP VIEW') < position(ran, 'DROP COLUMN "gone"') < position(ran, 'CREATE VIEW')


def test_materialized_view_with_index_recreated_and_dropped(converge, db, conn):
    base = "CREATE TABLE t (id int PRIMARY KEY, n int);"
    converge(db, [base, "CREATE MATERIALIZED VIEW mv AS SELECT id, n FROM t;",
                  "CREATE UNIQUE INDEX mv_id ON mv (id);"])
    assert rows(conn, "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'mv'::regclass") == [("mv_id",)]
    # a new index on the existing materialized view is built concurrently
    ran = sqls(converge(db, [base, "CREATE MATERIALIZED VIEW mv AS SELECT id, n FROM t;",
                        "CREATE UNIQUE INDEX mv_id ON mv (id);", "CREATE INDEX mv_n ON mv (n);"]))
    assert ran == ["CREATE INDEX CONCURRENTLY mv_n ON public.mv USING btree (n)"]
    # a changed definition recreates the materialized view and its indexes
    ran = sqls(converge(db, [base, "CREATE MATERIALIZED VIEW mv AS SELECT id, n * 2 AS n FROM t;",
                        "CREATE UNIQUE INDEX mv_id ON mv (id);"]))
    assert position(ran, "DROP MATERIALIZED VIEW") < position(ran, "CREATE MATERIALIZED VIEW") \
        < position(ran, "CREATE UNIQUE INDEX mv_id")
    assert rows(conn, "SELECT relkind FROM pg_class WHERE relname IN ('mv_id', 'mv_n') ORDER BY 1") == [("i",)]
    # a view becomes a materialized view
    converge(db, [base, "CREATE VIEW mv AS SELECT id FROM t;"])
    assert rows(conn, "SELECT relkind FROM pg_class WHERE relname = 'mv'") == [("v",)]
    converge(db, [base])
    assert rows(conn, "SELECT to_regclass('mv')") == [(None,)]


def test_view_replacing_a_table_of_the_same_name(converge, db, conn):
    converge(db, ["CREATE TABLE data (id int);", "CREATE VIEW q AS SELECT * FROM data;"])
    converge(db, ["CREATE TABLE t_data (id int);", "CREATE VIEW data AS SELECT * FROM t_data;",
                  "CREATE VIEW q AS SELECT * FROM data;"])
    assert rows(conn, "SELECT relkind FROM pg_class WHERE relname IN ('data', 'q') ORDER BY relname") == \
        [("v",), ("v",)]


# --------------------------------------------------------------------------- functions


def test_function_create_replace_recreate_drop(converge, db, conn):
    converge(db, ["CREATE FUNCTION add1(i int) RETURNS int LANGUAGE sql AS 'SELECT i + 1';"])
    oid = rows(conn, "SELECT 'add1(int)'::regprocedure::oid")[0][0]
    ran = sqls(converge(db, ["CREATE FUNCTION add1(i int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT i + 2';"]))
    assert len(ran) == 1 and "\nCREATE OR REPLACE FUNCTION public.add1(i integer)" in ran[0]
    assert rows(conn, "SELECT add1(1), 'add1(int)'::regprocedure::oid = %s", oid) == [(3, True)]
    # a new result type cannot be replaced in place
    ran = sqls(converge(db, ["CREATE FUNCTION add1(i int) RETURNS bigint LANGUAGE sql AS 'SELECT i + 3';"]))
    assert position(ran, 'DROP FUNCTION "public"."add1"(i integer)') < position(ran, "CREATE OR REPLACE FUNCTION")
    assert rows(conn, "SELECT pg_typeof(add1(1))::text, add1(1)") == [("bigint", 4)]
    converge(db, ["CREATE PROCEDURE p(x int) LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE '%', x; END $$;",
                  "COMMENT ON PROCEDURE p(int) IS 'says x';"])
    assert rows(conn, "SELECT proname, prokind, obj_description(oid, 'pg_proc') FROM pg_proc "
                      "WHERE pronamespace = 'public'::regnamespace") == [("p", "p", "says x")]


def test_function_used_by_default_and_check_created_before_dropped_after(converge, db, conn):
    ran = sqls(converge(db, [
        "CREATE FUNCTION next_id() RETURNS int LANGUAGE sql AS 'SELECT 42';",
        "CREATE FUNCTION is_positive(i int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT i > 0';",
        "CREATE TABLE t (id int DEFAULT next_id(), CONSTRAINT positive CHECK (is_positive(id)));",
        "CREATE INDEX t_expr ON t (is_positive(id));",
    ]))
    table = position(ran, 'CREATE TABLE "public"."t"')
    assert position(ran, "FUNCTION public.next_id()") < table
    assert position(ran, "FUNCTION public.is_positive(i integer)") < table
    conn.execute("INSERT INTO t DEFAULT VALUES")
    assert rows(conn, "SELECT id FROM t") == [(42,)]
    ran = sqls(converge(db, ["CREATE TABLE t (id int);"]))
    drop = position(ran, 'DROP FUNCTION "public"."next_id"()')
    assert position(ran, 'ALTER COLUMN "id" DROP DEFAULT') < drop
    assert position(ran, 'DROP CONSTRAINT "positive"') < position(ran, 'DROP FUNCTION "public"."is_positive"')
    assert position(ran, 't_expr') < position(ran, 'DROP FUNCTION "public"."is_positive"')


def test_sql_function_reading_a_table_created_later_in_the_plan(converge, db, conn):
    ran = sqls(converge(db, ["CREATE TABLE t (id int);",
                        "CREATE FUNCTION n_rows() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM t';"]))
    assert position(ran, "FUNCTION public.n_rows()") < position(ran, 'CREATE TABLE "public"."t"')
    assert rows(conn, "SELECT n_rows()") == [(0,)]


def test_function_signature_change_refused_while_a_kept_default_calls_it(converge, db, conn):
    converge(db, ["CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';",
                  "CREATE TABLE t (id int DEFAULT f());"])
    with pytest.raises(UnsupportedError) as err:
        pgconverge.plan(db, ["CREATE FUNCTION f() RETURNS bigint LANGUAGE sql AS 'SELECT 1';",
                             "CREATE TABLE t (id bigint DEFAULT f());"], **ALL)
    assert "public.f()" in str(err.value) and "column public.t.id" in str(err.value)


# --------------------------------------------------------------------------- triggers

TRIGGER_FN = """CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.changed := now(); RETURN NEW; END $$;"""


def test_trigger_on_new_function_create_change_disable_drop(converge, db, conn):
    table = "CREATE TABLE t (id int, changed timestamptz);"
    ran = sqls(converge(db, [table, TRIGGER_FN,
                        "CREATE TRIGGER t_stamp BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION stamp();"]))
    create = position(ran, "CREATE TRIGGER t_stamp")
    assert position(ran, "FUNCTION public.stamp()") < create and position(ran, 'CREATE TABLE') < create
    conn.execute("INSERT INTO t (id) VALUES (1)")
    assert rows(conn, "SELECT changed IS NOT NULL FROM t") == [(True,)]
    # changed: dropped and created again
    ran = sqls(converge(db, [table, TRIGGER_FN,
                        "CREATE TRIGGER t_stamp BEFORE INSERT OR UPDATE ON t FOR EACH ROW EXECUTE FUNCTION stamp();"]))
    assert position(ran, "DROP TRIGGER") < position(ran, "CREATE TRIGGER")
    # disabled, in sql/ as pg_dump writes it
    disabled = [table, TRIGGER_FN,
                "CREATE TRIGGER t_stamp BEFORE INSERT OR UPDATE ON t FOR EACH ROW EXECUTE FUNCTION stamp();",
                "ALTER TABLE t DISABLE TRIGGER t_stamp;"]
    assert sqls(converge(db, disabled)) == ['ALTER TABLE "public"."t" DISABLE TRIGGER "t_stamp"']
    assert rows(conn, "SELECT tgenabled FROM pg_trigger WHERE tgname = 't_stamp'") == [("D",)]
    converge(db, [table, TRIGGER_FN])
    assert rows(conn, "SELECT count(*) FROM pg_trigger WHERE tgname = 't_stamp'") == [(0,)]


def test_function_dropped_after_the_table_whose_trigger_calls_it(converge, db, conn):
    converge(db, [TRIGGER_FN, "CREATE TABLE t (id int, changed timestamptz);",
                  "CREATE TRIGGER t_stamp BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION stamp();"])
    ran = sqls(converge(db, ["CREATE TABLE other (id int);"]))
    assert not any(s.startswith("DROP TRIGGER") for s in ran)  # it goes with its table
    assert position(ran, 'DROP TABLE "public"."t"') < position(ran, 'DROP FUNCTION "public"."stamp"()')


def test_constraint_trigger_and_function_dropped_after_trigger(converge, db, conn):
    check = """CREATE FUNCTION no_zero() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN IF NEW.id = 0 THEN RAISE EXCEPTION 'zero'; END IF; RETURN NULL; END $$;"""
    converge(db, ["CREATE TABLE t (id int);", check,
                  "CREATE CONSTRAINT TRIGGER t_no_zero AFTER INSERT ON t DEFERRABLE INITIALLY DEFERRED "
                  "FOR EACH ROW EXECUTE FUNCTION no_zero();"])
    assert rows(conn, "SELECT tgdeferrable, tginitdeferred FROM pg_trigger WHERE tgname = 't_no_zero'") == \
        [(True, True)]
    ran = sqls(converge(db, ["CREATE TABLE t (id int);"]))
    assert position(ran, "DROP TRIGGER") < position(ran, "DROP FUNCTION")


def test_trigger_on_recreated_view_is_recreated(converge, db, conn):
    fn = """CREATE FUNCTION ins() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO t (a) VALUES (NEW.a); RETURN NEW; END $$;"""
    trg = "CREATE TRIGGER v_ins INSTEAD OF INSERT ON v FOR EACH ROW EXECUTE FUNCTION ins();"
    converge(db, ["CREATE TABLE t (a text, c int);", "CREATE VIEW v AS SELECT a, c FROM t;", fn, trg])
    converge(db, ["CREATE TABLE t (a text, b date, c int);", "CREATE VIEW v AS SELECT a, b, c FROM t;", fn, trg])
    conn.execute("INSERT INTO v (a) VALUES ('x')")
    assert rows(conn, "SELECT a FROM t") == [("x",)]


# --------------------------------------------------------------------------- row-level security


def test_rls_and_policy_create_alter_recreate_drop(converge, db, conn):
    table = "CREATE TABLE acc (manager text, company text);"
    ran = sqls(converge(db, [table, "ALTER TABLE acc ENABLE ROW LEVEL SECURITY;",
                        f"CREATE POLICY mgr ON acc TO {ROLE} USING (manager = current_user);"]))
    assert rows(conn, "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = 'acc'") == \
        [(True, False)]
    plan = pgconverge.plan(db, [table, "ALTER TABLE acc ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;",
                                "CREATE POLICY mgr ON acc TO PUBLIC USING (manager = session_user) "
                                "WITH CHECK (company IS NOT NULL);"], **ALL)
    assert [s.sql for s in plan.steps] == [
        'ALTER TABLE "public"."acc" FORCE ROW LEVEL SECURITY',
        'ALTER POLICY "mgr" ON "public"."acc" TO PUBLIC USING ((manager = SESSION_USER)) '
        'WITH CHECK ((company IS NOT NULL))']
    assert all(h.name == hz.AUTHZ_CHANGE for s in plan.steps for h in s.hazards) and plan.hazards
    with pytest.raises(HazardRefused):  # authz changes need the hazard allowed
        pgconverge.apply(db, plan, allow_hazards=["index_build"])
    pgconverge.apply(db, plan, **ALL)
    # permissive -> restrictive cannot be altered: dropped and created again
    ran = sqls(converge(db, [table, "ALTER TABLE acc ENABLE ROW LEVEL SECURITY;",
                        "CREATE POLICY mgr ON acc AS RESTRICTIVE FOR SELECT USING (true);"]))
    assert position(ran, "DROP POLICY") < position(ran, "CREATE POLICY")
    assert rows(conn, "SELECT polpermissive, polcmd FROM pg_policy") == [(False, "r")]
    converge(db, [table])
    assert rows(conn, "SELECT count(*) FROM pg_policy") == [(0,)]
    assert rows(conn, "SELECT relrowsecurity FROM pg_class WHERE relname = 'acc'") == [(False,)]


def test_policy_using_a_new_function(converge, db, conn):
    ran = sqls(converge(db, ["CREATE TABLE docs (owner text);",
                        "CREATE FUNCTION is_mine(o text) RETURNS boolean LANGUAGE sql STABLE "
                        "AS 'SELECT o = current_user';",
                        "CREATE POLICY own ON docs USING (is_mine(owner));",
                        "ALTER TABLE docs ENABLE ROW LEVEL SECURITY;"]))
    assert position(ran, "FUNCTION public.is_mine") < position(ran, "CREATE POLICY")
    # the function's result type changes: the policy goes first and comes back after
    ran = sqls(converge(db, ["CREATE TABLE docs (owner text);",
                        "CREATE FUNCTION is_mine(o text) RETURNS int LANGUAGE sql STABLE "
                        "AS 'SELECT (o = current_user)::int';",
                        "CREATE POLICY own ON docs USING (is_mine(owner) = 1);",
                        "ALTER TABLE docs ENABLE ROW LEVEL SECURITY;"]))
    assert position(ran, "DROP POLICY") < position(ran, "DROP FUNCTION") \
        < position(ran, "CREATE OR REPLACE FUNCTION") < position(ran, "CREATE POLICY")


# --------------------------------------------------------------------------- privileges


def test_grants_on_table_column_sequence_function_schema_minimal(converge, db, conn):
    base = ["CREATE SCHEMA app;", "CREATE TABLE app.t (id serial, secret text);",
            "CREATE FUNCTION app.f() RETURNS int LANGUAGE sql AS 'SELECT 1';"]
    grants = [f"GRANT USAGE ON SCHEMA app TO {ROLE};",
              f"GRANT SELECT, INSERT ON app.t TO {ROLE};",
              f"GRANT UPDATE (secret) ON app.t TO {ROLE};",
              f"GRANT USAGE ON SEQUENCE app.t_id_seq TO {ROLE} WITH GRANT OPTION;",
              "REVOKE EXECUTE ON FUNCTION app.f() FROM PUBLIC;",
              f"GRANT EXECUTE ON FUNCTION app.f() TO {ROLE};"]
    ran = sqls(converge(db, base + grants))
    assert position(ran, 'CREATE TABLE "app"."t"') < position(ran, 'GRANT INSERT, SELECT ON TABLE "app"."t"')
    assert rows(conn, "SELECT has_table_privilege(%s, 'app.t', 'INSERT'), "
                      "has_column_privilege(%s, 'app.t', 'secret', 'UPDATE'), "
                      "has_function_privilege('public', 'app.f()', 'EXECUTE'), "
                      "has_sequence_privilege(%s, 'app.t_id_seq', 'USAGE WITH GRANT OPTION')", ROLE, ROLE, ROLE) == \
        [(True, True, False, True)]
    # one privilege less, one more: exactly one REVOKE and one GRANT
    plan = pgconverge.plan(db, base + [g.replace("SELECT, INSERT", "SELECT, DELETE") for g in grants], **ALL)
    assert [s.sql for s in plan.steps] == [
        f'REVOKE INSERT ON TABLE "app"."t" FROM "{ROLE}"', f'GRANT DELETE ON TABLE "app"."t" TO "{ROLE}"']
    assert [h.name for h in plan.hazards] == [hz.AUTHZ_CHANGE, hz.AUTHZ_CHANGE]
    pgconverge.apply(db, plan, **ALL)
    # all grants gone from sql/: back to the defaults (PUBLIC may execute again)
    converge(db, base)
    assert rows(conn, "SELECT relacl IS NULL OR relacl::text[] = acldefault('r', relowner)::text[] FROM pg_class "
                      "WHERE oid = 'app.t'::regclass") == [(True,)]
    assert rows(conn, "SELECT has_function_privilege('public', 'app.f()', 'EXECUTE'), "
                      "has_column_privilege(%s, 'app.t', 'secret', 'UPDATE')", ROLE) == [(True, False)]


def test_owner_and_public_default_privileges_make_no_diff(converge, db, conn):
    owner = rows(conn, "SELECT current_user")[0][0]
    sql = ["CREATE TABLE t (id int);", f'GRANT ALL ON t TO "{owner}";',
           "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';",
           "GRANT EXECUTE ON FUNCTION f() TO PUBLIC;"]
    converge(db, sql)
    assert pgconverge.plan(db, ["CREATE TABLE t (id int);",
                                "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';"], **ALL).is_empty


def test_grants_follow_a_recreated_view(converge, db, conn):
    sql = ["CREATE TABLE t (a int, b int);", "CREATE VIEW v AS SELECT a FROM t;", f"GRANT SELECT ON v TO {ROLE};"]
    converge(db, sql)
    ran = sqls(converge(db, ["CREATE TABLE t (a int, b int);", "CREATE VIEW v AS SELECT b FROM t;",
                        f"GRANT SELECT ON v TO {ROLE};"]))
    assert position(ran, "CREATE VIEW") < position(ran, f'GRANT SELECT ON TABLE "public"."v" TO "{ROLE}"')
    assert rows(conn, "SELECT has_table_privilege(%s, 'v', 'SELECT')", ROLE) == [(True,)]


def test_default_privileges(converge, db, conn):
    me = rows(conn, "SELECT current_user")[0][0]
    sql = ["CREATE SCHEMA app;",
           f"ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO {ROLE};",
           "ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;"]
    ran = sqls(converge(db, sql))
    assert all(s.startswith(f'ALTER DEFAULT PRIVILEGES FOR ROLE "{me}"') for s in ran if "DEFAULT" in s)
    assert sorted(rows(conn, "SELECT defaclobjtype, defaclnamespace <> 0 FROM pg_default_acl")) == \
        [("f", False), ("r", True)]
    # a table created later by a plan gets the default grant, which the desired state has too
    ran = sqls(converge(db, sql + ["CREATE TABLE app.t (id int);"]))
    assert ran == ['CREATE TABLE "app"."t" (\n    "id" integer\n)']
    assert rows(conn, "SELECT has_table_privilege(%s, 'app.t', 'SELECT')", ROLE) == [(True,)]
    # declared without them: a new table must not keep what the target's defaults grant
    converge(db, ["CREATE SCHEMA app;", "CREATE TABLE app.t (id int);", "CREATE TABLE app.u (id int);"]
             + sql[1:])
    converge(db, ["CREATE SCHEMA app;", "CREATE TABLE app.t (id int);"])
    assert rows(conn, "SELECT count(*) FROM pg_default_acl") == [(0,)]


def test_grant_to_missing_role_is_a_clear_error_and_changes_nothing(db, conn, tmp_path):
    f = tmp_path / "20_grants.sql"
    f.write_text("CREATE TABLE t (id int);\n\nGRANT SELECT ON t\n  TO no_such_role_pgc;\n")
    with pytest.raises(SourceError) as err:
        pgconverge.apply(db, str(f), **ALL)
    assert err.value.file.endswith("20_grants.sql") and err.value.line in (3, 4)
    assert 'role "no_such_role_pgc" does not exist' in str(err.value)
    assert "roles are not managed" in str(err.value)
    assert rows(conn, "SELECT to_regclass('t')") == [(None,)]


# --------------------------------------------------------------------------- extension members


def test_objects_of_an_extension_are_not_managed(converge, db, conn):
    converge(db, ["CREATE EXTENSION pg_trgm;", "CREATE TABLE t (s text);",
                  "CREATE INDEX t_s_trgm ON t USING gin (s gin_trgm_ops);",
                  "CREATE VIEW sim AS SELECT similarity(s, 'x') AS score FROM t;"])
    assert rows(conn, "SELECT count(*) > 10 FROM pg_proc WHERE proname LIKE %s", "%trgm%") == [(True,)]


# --------------------------------------------------------------------------- pure diff


def _cat(*views: View, functions: tuple[Function, ...] = (), tables: tuple[Table, ...] = (),
         acls: tuple[Acl, ...] = ()) -> Catalog:
    c = Catalog(server_version=150000, current_user="deployer")
    c.schemas = {schema_id("public"): Schema("public")}
    c.tables = {t.id: t for t in tables}
    c.views = {v.id: v for v in views}
    c.functions = {f.id: f for f in functions}
    c.acls = {a.id: a for a in acls}
    return c


def test_unit_view_replaced_in_place_only_when_old_columns_are_kept():
    t = Table("public", "t", columns={"a": Column("a", "integer"), "b": Column("b", "text")})
    dep = ("column:public.t.a", "table:public.t")
    old = View("public", "v", "v", " SELECT t.a FROM public.t;", (("a", "integer"),), depends_on=dep)
    wider = View("public", "v", "v", " SELECT t.a, t.b FROM public.t;", (("a", "integer"), ("b", "text")),
                 depends_on=dep)
    other = View("public", "v", "v", " SELECT t.b FROM public.t;", (("b", "text"),), depends_on=dep)
    steps = diff(_cat(old, tables=(t,)), _cat(wider, tables=(t,)))
    assert [s.kind for s in steps] == ["replace_view"]
    steps = diff(_cat(old, tables=(t,)), _cat(other, tables=(t,)))
    assert [s.kind for s in steps] == ["drop_view", "create_view"]
    assert diff(_cat(old, tables=(t,)), _cat(old, tables=(t,))) == []


def test_unit_view_follows_a_recreated_inner_view_but_not_a_dropped_sibling():
    t = Table("public", "t", columns={"a": Column("a", "integer")})
    inner = View("public", "inner", "v", " SELECT t.a FROM public.t;", (("a", "integer"),),
                 depends_on=("column:public.t.a", "table:public.t"))
    inner2 = View("public", "inner", "v", " SELECT (t.a)::text AS a FROM public.t;", (("a", "text"),),
                  depends_on=("column:public.t.a", "table:public.t"))
    outer = View("public", "outer", "v", ' SELECT "inner".a FROM public."inner";', (("a", "integer"),),
                 depends_on=("view:public.inner",))
    outer2 = View("public", "outer", "v", ' SELECT "inner".a FROM public."inner";', (("a", "text"),),
                  depends_on=("view:public.inner",))
    steps = diff(_cat(inner, outer, tables=(t,)), _cat(inner2, outer2, tables=(t,)))
    assert [(s.kind, s.object) for s in steps] == [
        ("drop_view", "view:public.outer"), ("drop_view", "view:public.inner"),
        ("create_view", "view:public.inner"), ("create_view", "view:public.outer")]


def test_unit_function_replace_rules():
    f1 = Function("public", "f", "i integer", "f", "CREATE OR REPLACE FUNCTION public.f(i integer)\n RETURNS integer\n"
                  " LANGUAGE sql\nAS $function$select 1$function$\n", "integer", ("i",))
    body = Function("public", "f", "i integer", "f", f1.definition.replace("select 1", "select 2"), "integer", ("i",))
    renamed_arg = Function("public", "f", "i integer", "f", f1.definition.replace("(i integer)", "(j integer)"),
                           "integer", ("j",))
    assert [s.kind for s in diff(_cat(functions=(f1,)), _cat(functions=(body,)))] == ["replace_function"]
    assert [s.kind for s in diff(_cat(functions=(f1,)), _cat(functions=(renamed_arg,)))] == \
        ["drop_function", "create_function"]
    # a SQL function's body is checked in the shadow: the plan does not check it against the target
    assert diff(_cat(), _cat(functions=(f1,)))[0].sql.startswith("SET LOCAL check_function_bodies = off;\n")


def test_unit_grants_are_the_minimal_difference_and_owner_is_spelled():
    owner = frozenset({(OWNER, p, False) for p in ("SELECT", "INSERT")})
    t = Table("public", "t", columns={"a": Column("a", "integer")})
    have = Acl("table", "public", "t", entries=owner | {("reader", "SELECT", True), ("PUBLIC", "SELECT", False)},
               defaults=owner, owner="app")
    want = Acl("table", "public", "t", entries=frozenset({(OWNER, "SELECT", False), ("reader", "SELECT", False),
                                                         ("writer", "INSERT", False)}), defaults=owner, owner="me")
    steps = diff(_cat(tables=(t,), acls=(have,)), _cat(tables=(t,), acls=(want,)))
    assert sorted(s.sql for s in steps) == sorted([
        'REVOKE INSERT ON TABLE "public"."t" FROM "app"',
        'REVOKE SELECT ON TABLE "public"."t" FROM PUBLIC',
        'REVOKE GRANT OPTION FOR SELECT ON TABLE "public"."t" FROM "reader"',
        'GRANT INSERT ON TABLE "public"."t" TO "writer"'])
    assert all(s.hazards[0].name == hz.AUTHZ_CHANGE for s in steps)


def test_unit_dependency_cycle_is_reported():
    # two views that (impossibly) read each other: the planner says so instead of looping
    a = View("public", "a", "v", " SELECT 1;", (("x", "integer"),), depends_on=("view:public.b",))
    b = View("public", "b", "v", " SELECT 2;", (("x", "integer"),), depends_on=("view:public.a",))
    with pytest.raises(PlanError, match="dependency cycle"):
        diff(_cat(), _cat(a, b))


# --------------------------------------------------------------------------- drift


def test_dropping_undeclared_objects_needs_drops_object(converge, db, conn):
    base = "CREATE TABLE t (a int);"
    converge(db, [base, "CREATE VIEW v AS SELECT a FROM t;",
                  "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';"])
    plan = pgconverge.plan(db, [base])
    hazards = {(h.name, h.object) for s in plan.steps for h in s.hazards}
    assert ("drops_object", "view:public.v") in hazards
    assert any(name == "drops_object" and obj.startswith("function:public.f") for name, obj in hazards)
    with pytest.raises(HazardRefused, match="drops_object"):
        pgconverge.apply(db, [base], allow_hazards=[h for h in hz.ALL_HAZARDS if h != hz.DROPS_OBJECT])
    assert rows(conn, "SELECT to_regclass('v') IS NOT NULL") == [(True,)]
    # recreated (not dropped for good) objects carry no such hazard
    ran = pgconverge.plan(db, [base.replace("a int", "a bigint"), "CREATE VIEW v AS SELECT a FROM t;",
                               "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';"], **ALL)
    assert all(h.name != "drops_object" for s in ran.steps for h in s.hazards)
    converge(db, [base], allow_hazards=[hz.DROPS_OBJECT])
    assert rows(conn, "SELECT to_regclass('v')") == [(None,)]
