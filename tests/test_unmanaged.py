"""The drift policy (pgconverge_unmanaged): objects in the target that sql/ does not declare."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

import pgconverge
from pgconverge import proof
from pgconverge.exec.script import plan_json
from pgconverge.planning.hazards import HazardRefused
from pgconverge.planning.unmanaged import UnmanagedConflict

DECLARED = ["CREATE TABLE public.users (id int PRIMARY KEY, email text NOT NULL, age int);",
            "CREATE VIEW public.adults AS SELECT id, email FROM public.users WHERE age >= 18;"]
# the same, plus a declared change (a new column), so that the plan is not empty
CHANGED = [DECLARED[0].replace("age int)", "age int, name text)"), DECLARED[1]]

# what a DBA did by hand on the target: a hotfix column, an extra index, an extra table
HOTFIX = ["ALTER TABLE public.users ADD COLUMN hotfix text DEFAULT 'x'",
          "CREATE INDEX users_email_lower ON public.users (lower(email))",
          "CREATE TABLE public.audit_tmp (id int PRIMARY KEY, note text)"]
DRIFT = {("column", "public.users.hotfix"), ("index", "public.users_email_lower"), ("table", "public.audit_tmp")}


def drifted(db, conn):
    pgconverge.apply(db, DECLARED)
    for statement in HOTFIX:
        conn.execute(statement)


def exists(conn) -> dict[str, bool]:
    one = lambda q: conn.execute(q).fetchone()[0]  # noqa: E731
    return {"column": one("SELECT count(*) = 1 FROM pg_attribute WHERE attrelid = 'public.users'::regclass "
                          "AND attname = 'hotfix' AND NOT attisdropped"),
            "index": one("SELECT to_regclass('public.users_email_lower') IS NOT NULL"),
            "table": one("SELECT to_regclass('public.audit_tmp') IS NOT NULL")}


def listed(plan) -> set[tuple[str, str]]:
    return {(u.kind, u.name) for u in plan.unmanaged}


def test_refuse_plans_drops_and_refuses_them_with_a_remedy(db, conn):
    drifted(db, conn)
    plan = pgconverge.plan(db, CHANGED)
    assert DRIFT <= listed(plan)
    assert any(s.sql.startswith("DROP TABLE") and "audit_tmp" in s.sql for s in plan.steps)
    with pytest.raises(HazardRefused) as e:
        pgconverge.apply(db, CHANGED, allow_hazards="all")
    assert "pgconverge_unmanaged" in str(e.value) and "-- @drop" in str(e.value)
    assert "column public.users.hotfix" in str(e.value) or "public.users.hotfix" in str(e.value)
    assert exists(conn) == {"column": True, "index": True, "table": True}


def test_report_leaves_them_lists_them_and_proves(db, conn):
    drifted(db, conn)
    plan = pgconverge.plan(db, CHANGED, unmanaged="report")
    assert listed(plan) == DRIFT
    assert [s.kind for s in plan.steps] == ["add_column"], plan.to_sql()
    assert plan.proof.status == proof.PROVED
    # the rehearsal sets apart exactly the reported objects before it is compared with sql/
    assert {s.object for s in plan.forget} == {"column:public.users.hotfix", "index:public.users_email_lower",
                                               "table:public.audit_tmp"}
    assert all(s.kind.startswith("drop_") for s in plan.forget)
    assert plan.proof.expected is not None
    doc = plan_json(plan)
    assert {(u["kind"], u["name"]) for u in doc["unmanaged"]} == DRIFT and doc["unmanaged_policy"] == "report"
    # no hazard allowed: nothing is dropped, so nothing needs allowing; NotConverged is not raised
    result = pgconverge.apply(db, CHANGED, unmanaged="report")
    assert [s.kind for s in result.executed] == ["add_column"]
    assert exists(conn) == {"column": True, "index": True, "table": True}
    assert conn.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' "
                        "AND column_name = 'name'").fetchone() == (1,)
    again = pgconverge.plan(db, CHANGED, unmanaged="report")
    assert again.is_empty and listed(again) == DRIFT
    assert exists(conn) == {"column": True, "index": True, "table": True}


def test_report_proof_still_catches_a_difference_of_its_own(db, conn):
    """The rehearsal is compared with sql/ after only the reported objects are set apart: an
    unreported difference still fails. A grant made by hand is reported, and only it."""
    drifted(db, conn)
    conn.execute("CREATE ROLE drift_reader")
    try:
        conn.execute("GRANT SELECT ON public.users TO drift_reader")
        plan = pgconverge.plan(db, CHANGED, unmanaged="report")
        assert ("grant", "SELECT on table public.users to drift_reader") in listed(plan)
        assert plan.proof.status == proof.PROVED
        pgconverge.apply(db, CHANGED, unmanaged="report")
        assert conn.execute("SELECT has_table_privilege('drift_reader', 'public.users', 'SELECT')").fetchone() == (True,)
        assert pgconverge.plan(db, CHANGED, unmanaged="report").is_empty
    finally:
        conn.execute("DROP OWNED BY drift_reader")
        conn.execute("DROP ROLE drift_reader")


def test_drop_drops_them_with_their_hazards_shown(db, conn):
    drifted(db, conn)
    plan = pgconverge.plan(db, CHANGED, unmanaged="drop")
    assert DRIFT <= listed(plan)
    names = {h.name for h in plan.hazards}
    assert {"deletes_data", "index_dropped"} <= names
    result = pgconverge.apply(db, CHANGED, unmanaged="drop")
    assert result.plan.steps
    assert exists(conn) == {"column": False, "index": False, "table": False}
    assert pgconverge.plan(db, CHANGED, unmanaged="drop").is_empty


def test_report_refuses_a_retype_under_an_unmanaged_index(db, conn):
    drifted(db, conn)
    retyped = [DECLARED[0].replace("email text", "email varchar(200)"), DECLARED[1]]
    with pytest.raises(UnmanagedConflict) as e:
        pgconverge.plan(db, retyped, unmanaged="report", allow_hazards="all")
    assert "index public.users_email_lower" in str(e.value) and "public.users.email" in str(e.value)
    assert "-- @drop" in str(e.value) and "pgconverge_unmanaged" in str(e.value)


def test_report_refuses_a_declared_drop_under_an_unmanaged_view(db, conn):
    pgconverge.apply(db, ["CREATE TABLE public.legacy (id int);", *DECLARED])
    conn.execute("CREATE VIEW public.legacy_ids AS SELECT id FROM public.legacy")
    with pytest.raises(UnmanagedConflict) as e:
        pgconverge.plan(db, ["-- @drop table public.legacy\n" + DECLARED[0], DECLARED[1]], unmanaged="report",
                        allow_hazards="all")
    assert "view public.legacy_ids depends on table public.legacy" in str(e.value)
    assert conn.execute("SELECT to_regclass('public.legacy_ids') IS NOT NULL").fetchone() == (True,)


def test_report_drops_what_is_named(db, conn):
    """A named drop is no drift: it is planned and allowed as before, the rest stays alone."""
    drifted(db, conn)
    sql = ["-- @drop table public.audit_tmp\n" + CHANGED[0], CHANGED[1]]
    plan = pgconverge.plan(db, sql, unmanaged="report")
    assert ("table", "public.audit_tmp") not in listed(plan)
    pgconverge.apply(db, sql, unmanaged="report", allow_hazards="deletes_data")
    assert exists(conn) == {"column": True, "index": True, "table": False}
    assert pgconverge.plan(db, sql, unmanaged="report").is_empty


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match=r"unmanaged: must be one of refuse, report, drop, not 'keep'"):
        pgconverge.plan("postgresql:///nowhere", ["CREATE TABLE t (id int);"], unmanaged="keep")


def test_cli_unmanaged_option_lists_them(db, conn, capsys):
    from pgconverge.cli.main import main

    drifted(db, conn)
    with tempfile.TemporaryDirectory() as where:
        path = Path(where) / "schema.sql"
        path.write_text("\n".join(CHANGED))
        sql = ["--target", db, "--sql", str(path)]
        assert main(["plan", *sql, "--unmanaged", "report"]) == 2
        out = capsys.readouterr().out
        assert "-- unmanaged: table public.audit_tmp: not in sql/, left alone (pgconverge_unmanaged = report)" in out
        assert "DROP" not in out
        assert main(["plan", *sql, "--unmanaged", "report", "--json"]) == 2
        doc = json.loads(capsys.readouterr().out)
        assert {(u["kind"], u["name"]) for u in doc["unmanaged"]} == DRIFT and doc["refused"] == []
        assert main(["plan", *sql]) == 3
        err = capsys.readouterr().err
        assert "-- @drop <kind> <name>" in err and "pgconverge_unmanaged" in err


def test_report_leaves_every_kind_alone(db, conn):
    """A constraint, a view, a function with its trigger, a policy, a sequence and a materialized
    view made by hand on declared tables: listed, left alone by the apply, the proof passes (it sets
    apart exactly these), a second plan is empty."""
    pgconverge.apply(db, DECLARED)
    for statement in (
            "ALTER TABLE public.users ADD CONSTRAINT users_age_check CHECK (age >= 0)",
            "CREATE VIEW public.user_emails AS SELECT email FROM public.users",
            "CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$",
            "CREATE TRIGGER users_touch BEFORE UPDATE ON public.users FOR EACH ROW EXECUTE FUNCTION public.touch()",
            "ALTER TABLE public.users ENABLE ROW LEVEL SECURITY",
            "CREATE POLICY users_own ON public.users USING (true)",
            "CREATE SEQUENCE public.hotfix_seq",
            "CREATE MATERIALIZED VIEW public.user_count AS SELECT count(*) AS n FROM public.users"):
        conn.execute(statement)
    sql = CHANGED + ["ALTER TABLE public.users ENABLE ROW LEVEL SECURITY;"]
    plan = pgconverge.plan(db, sql, unmanaged="report")
    assert listed(plan) == {("constraint", "public.users.users_age_check"), ("view", "public.user_emails"),
                            ("function", "public.touch()"), ("trigger", "public.users.users_touch"),
                            ("policy", "public.users.users_own"), ("sequence", "public.hotfix_seq"),
                            ("view", "public.user_count")}
    assert [s.kind for s in plan.steps] == ["add_column"], plan.to_sql()
    assert plan.proof.status == proof.PROVED
    pgconverge.apply(db, sql, unmanaged="report")
    one = lambda q: conn.execute(q).fetchone()[0]  # noqa: E731
    assert one("SELECT count(*) FROM pg_constraint WHERE conname = 'users_age_check'") == 1
    assert one("SELECT count(*) FROM pg_trigger WHERE tgname = 'users_touch'") == 1
    assert one("SELECT count(*) FROM pg_policy WHERE polname = 'users_own'") == 1
    assert one("SELECT to_regclass('public.user_emails') IS NOT NULL AND to_regclass('public.hotfix_seq') "
               "IS NOT NULL AND to_regclass('public.user_count') IS NOT NULL")
    assert pgconverge.plan(db, sql, unmanaged="report").is_empty


def test_report_refuses_a_retype_under_an_unmanaged_view(db, conn):
    drifted(db, conn)
    conn.execute("CREATE VIEW public.ages AS SELECT id, age FROM public.users")
    retyped = [DECLARED[0].replace("age int", "age bigint"), DECLARED[1]]
    with pytest.raises(UnmanagedConflict) as e:
        pgconverge.plan(db, retyped, unmanaged="report", allow_hazards="all")
    assert "view public.ages" in str(e.value) and "public.users.age" in str(e.value)


def test_with_env_the_policy_comes_from_group_data(capsys):
    from pgconverge.cli.main import main

    assert main(["plan", "--env", "staging", "--unmanaged", "report"]) == 1
    assert "pgconverge_unmanaged" in capsys.readouterr().err
