"""The proof against a real PostgreSQL: a wrong planner is caught before the target changes, a wrong
apply is caught after it, and the rehearsal database never outlives a run."""

from __future__ import annotations

import psycopg
import pytest

import pgconverge
from pgconverge import api, oracle, proof
from pgconverge.api import NotConverged
from pgconverge.proof import NotProved

ALL = dict(allow_hazards="all", drops=["*"], use_cache=False)
SQL = ["CREATE TABLE t (id int PRIMARY KEY, name text);", "CREATE INDEX t_name ON t (name);"]


def rows(conn, query, *args):
    return conn.execute(query, args or None).fetchall()


def rehearsals(conn) -> int:
    return rows(conn, "SELECT count(*) FROM pg_database WHERE datname LIKE %s",
                proof.REHEARSAL_PREFIX.replace("_", r"\_") + "%")[0][0]


@pytest.fixture
def lossy_planner(monkeypatch):
    """A planner with a planted fault: it forgets the last step of every plan it makes."""
    real = api.plan_diff

    def forgetful(actual, desired, options):
        planned = real(actual, desired, options)
        planned.steps = planned.steps[:-1]
        return planned

    monkeypatch.setattr(api, "plan_diff", forgetful)


def test_a_proved_plan_says_so(db, conn):
    plan = pgconverge.plan(db, SQL, **ALL)
    assert plan.proof.status == proof.PROVED and plan.proof.seconds > 0
    got = plan.to_json()["proof"]
    assert {k: got[k] for k in ("status", "seconds", "differences", "isolation", "shadow_isolation")} == {
        "status": "proved", "seconds": round(plan.proof.seconds, 3), "differences": [],
        "isolation": "scratch-role", "shadow_isolation": "scratch-role"}
    pgconverge.apply(db, plan, **ALL)
    assert rows(conn, "SELECT indexname FROM pg_indexes WHERE tablename = 't' ORDER BY 1") == [("t_name",),
                                                                                                 ("t_pkey",)]
    again = pgconverge.plan(db, SQL, **ALL)
    assert again.is_empty and again.proof.status == proof.SKIPPED
    assert rehearsals(conn) == 0


def test_a_wrong_planner_is_refused_before_the_target_changes(db, conn, lossy_planner):
    with pytest.raises(NotProved) as e:
        pgconverge.apply(db, SQL, **ALL)
    message = str(e.value)
    assert "does not produce the declared schema" in message and "the target was not touched" in message
    assert "index public.t_name" in message and "+CREATE INDEX t_name ON public.t USING btree (name)" not in message
    assert "-CREATE INDEX t_name ON public.t USING btree (name)" in message
    assert rows(conn, "SELECT to_regclass('public.t')") == [(None,)]  # nothing ran on the target
    assert rehearsals(conn) == 0


def test_a_plan_that_fails_on_the_copy_never_reaches_the_target(db, conn):
    conn.execute("CREATE TABLE t (id bigint)")
    with pytest.raises(NotProved, match="fails on a schema-only copy of the target"):
        # bigint has no cast to a composite type of sql/: the planner's ALTER ... TYPE fails on the copy
        # (a built-in pair without a cast, bigint to timestamp, the planner refuses itself: see
        # test_tables_attributes)
        pgconverge.plan(db, ["CREATE TYPE pair AS (a int, b int);", "CREATE TABLE t (id pair);"], **ALL)
    assert rows(conn, "SELECT format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = 't'::regclass "
                      "AND attname = 'id'") == [("bigint",)]
    assert rehearsals(conn) == 0


def test_after_the_change_pg_dump_judges_the_target(db, conn, lossy_planner, monkeypatch):
    # the rehearsal is fooled too, so only the check after the real change can see the fault
    monkeypatch.setattr(proof, "rehearse", lambda *a, **k: proof.Proof(proof.PROVED))
    with pytest.raises(NotConverged) as e:
        pgconverge.apply(db, SQL, **ALL)
    assert "pg_dump of the target differs from sql/" in str(e.value)
    assert [d.object for d in e.value.differences] == ["index public.t_name"]


def test_the_rehearsal_is_dropped_on_interruption(db, conn, monkeypatch):
    def interrupted(*_args, **_kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(oracle, "compare", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pgconverge.plan(db, SQL, **ALL)
    assert rehearsals(conn) == 0


def test_the_proof_can_be_switched_off(db, conn, lossy_planner):
    plan = pgconverge.plan(db, SQL, prove=False, **ALL)
    assert plan.proof.status == proof.OFF and len(plan.steps) == 1


def test_an_empty_desired_state_is_refused_unless_allowed(db, conn):
    conn.execute("CREATE TABLE keep (id int)")
    with pytest.raises(pgconverge.api.PlanError, match="desired state is empty"):
        pgconverge.plan(db, [], **ALL)
    with pytest.raises(pgconverge.api.PlanError, match="--allow-empty"):
        pgconverge.plan(db, ["-- nothing but a comment"], **ALL)
    with pytest.raises(pgconverge.api.PlanError, match="desired state is empty"):
        pgconverge.plan(db, ["", "  \n"], **ALL)  # blank texts are texts, not paths
    plan = pgconverge.plan(db, [], allow_empty=True, **ALL)
    assert [s.kind for s in plan.steps] == ["drop_table"]
    assert [s.kind for s in pgconverge.plan(db, [""], allow_empty=True, **ALL).steps] == ["drop_table"]


def test_unmanaged_schemas_are_out_of_the_proof(make_db):
    db = make_db()
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("CREATE SCHEMA other; CREATE TABLE other.x (id int);")
    plan = pgconverge.plan(db, ["CREATE SCHEMA app;", "CREATE TABLE app.t (id int);"], only_schemas=["app"], **ALL)
    assert plan.proof.status == proof.PROVED
