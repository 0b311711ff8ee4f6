"""A plan and a dry run are read-only: whatever sql/ holds, nothing reaches outside their scratch
databases. The shadow and the rehearsal create materialized views WITH NO DATA, add columns whose
default is set afterwards (never evaluated), and refuse the extensions made to reach out."""

from __future__ import annotations

import secrets
from pathlib import Path

import psycopg
import pytest

import pgconverge
from pgconverge.errors import PlanError
from pgconverge.source import load_source


@pytest.fixture
def marks(cluster):
    """A role name and a file path that the code in sql/ tries to create, checked afterwards."""
    token = secrets.token_hex(4)
    role, path = f"pwned_{token}", Path(f"/tmp/pgconverge-pwned-{token}")
    yield role, path
    with psycopg.connect(cluster.conninfo(), autocommit=True) as c:
        c.execute(f'DROP ROLE IF EXISTS "{role}"')
    path.unlink(missing_ok=True)


def _role_exists(cluster, role: str) -> bool:
    with psycopg.connect(cluster.conninfo(), autocommit=True) as c:
        return c.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (role,)).fetchone()[0] == 1


def _evil(role: str, path: Path, volatility: str = "VOLATILE") -> str:
    # what a hostile definition would do with the deploy role's rights (a superuser here)
    return f"""
CREATE FUNCTION app.evil() RETURNS int LANGUAGE plpgsql {volatility} AS $$
BEGIN
  EXECUTE 'CREATE ROLE {role}';
  EXECUTE 'COPY (SELECT 1) TO ''{path}''';
  RETURN 1;
END $$;
"""


def test_a_materialized_view_query_does_not_run_during_a_plan(cluster, db, conn, marks, tmp_path):
    role, path = marks
    conn.execute("CREATE SCHEMA app; CREATE TABLE app.t (id int PRIMARY KEY); INSERT INTO app.t VALUES (1), (2)")
    sql = ("CREATE SCHEMA app;\nCREATE TABLE app.t (id int PRIMARY KEY);\n" + _evil(role, path)
           + "CREATE MATERIALIZED VIEW app.mv AS SELECT app.evil() AS x;\n")
    plan = pgconverge.plan(db, [sql], cache_dir=tmp_path)  # shadow built, plan rehearsed
    assert plan.proof.status == "proved"
    assert any("MATERIALIZED VIEW" in s.sql for s in plan.steps)
    assert not _role_exists(cluster, role), "the shadow or the rehearsal ran the view's query"
    assert not path.exists()
    assert conn.execute("SELECT count(*) FROM app.t").fetchone()[0] == 2
    # the real change does populate it (that is the deploy's job, on the target)
    pgconverge.apply(db, [sql], cache_dir=tmp_path)
    assert conn.execute("SELECT x FROM app.mv").fetchone()[0] == 1
    assert _role_exists(cluster, role)


def test_an_added_column_default_is_not_evaluated_during_a_plan(cluster, db, conn, marks, tmp_path):
    role, path = marks
    conn.execute("CREATE SCHEMA app; CREATE TABLE app.t (id int PRIMARY KEY)" + ";" + _evil(role, path, "IMMUTABLE"))
    sql = ("CREATE SCHEMA app;\n" + _evil(role, path, "IMMUTABLE")
           + "CREATE TABLE app.t (id int PRIMARY KEY, c int NOT NULL DEFAULT app.evil());\n")
    plan = pgconverge.plan(db, [sql], cache_dir=tmp_path)
    assert plan.proof.status == "proved"
    add = [s for s in plan.steps if s.kind == "add_column"]
    assert add and "DEFAULT app.evil()" in add[0].sql and "NOT NULL" in add[0].sql
    assert not _role_exists(cluster, role), "a fast default was evaluated in the rehearsal"
    assert not path.exists()


def test_a_materialized_view_with_data_is_loaded_without_it():
    src = load_source(["CREATE MATERIALIZED VIEW mv AS SELECT 1 AS x WITH DATA;\n"
                       "CREATE MATERIALIZED VIEW mv2 AS SELECT 2 AS y;\n"
                       "CREATE MATERIALIZED VIEW mv3 AS SELECT 3 AS z WITH NO DATA;\n"])
    texts = [s.loaded_text for s in src.statements]
    assert texts[0].endswith("AS SELECT 1 AS x WITH NO DATA")
    assert texts[1].endswith("SELECT 2 AS y WITH NO DATA")
    assert texts[2].endswith("WITH NO DATA") and "DATA WITH" not in texts[2]
    # the statements themselves (shown, hashed) are as written
    assert src.statements[0].text.endswith("WITH DATA")


@pytest.mark.parametrize("ext", ["dblink", "postgres_fdw"])
def test_extensions_that_reach_out_are_refused_unless_allowed(cluster, db, conn, marks, tmp_path, ext):
    role, path = marks
    conn.execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
    sql = f"CREATE TABLE t (id int);\n\nCREATE EXTENSION {ext};\n"
    with pytest.raises(PlanError) as e:
        pgconverge.plan(db, [sql], cache_dir=tmp_path)
    message = str(e.value)
    assert f"extension {ext}" in message and ":3:" in message
    assert f"pgconverge_allow_extensions: [{ext}]" in message and f"--allow-extension {ext}" in message
    assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = %s", (ext,)).fetchone()[0] == 0
    plan = pgconverge.plan(db, [sql], cache_dir=tmp_path, allow_extensions=[ext])
    assert any("CREATE EXTENSION" in s.sql for s in plan.steps)


def test_the_cli_names_the_allowed_extension(db, tmp_path, capsys):
    from pgconverge.cli.main import main

    (tmp_path / "schema.sql").write_text("CREATE EXTENSION dblink;\n")
    assert main(["plan", "--target", db, "--sql", str(tmp_path / "schema.sql")]) == 1
    assert "extension dblink connects to other databases" in capsys.readouterr().err
    assert main(["plan", "--target", db, "--sql", str(tmp_path / "schema.sql"), "--allow-extension", "dblink",
                 "--allow-hazards", "extension_change"]) == 2
