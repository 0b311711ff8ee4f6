"""Scratch databases run with no rights outside themselves (issue 10, item 1).

Whatever code sql/ holds runs, during a plan or a dry run, as the scratch database's own role
(exec.scratch): it cannot create a role, write a file, or alter the target database or another
role. The vectors are functions that PostgreSQL itself runs while it creates an object: a fast
default, a partition bound, an IMMUTABLE function folded in a CHECK or an index expression (each
calling a VOLATILE helper, whose statements are not read-only), a materialized view's query.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

import pgconverge
from pgconverge.catalog import shadow as shadowmod
from pgconverge.exec import scratch
from pgconverge.exec.runner import LocalRunner, PsqlError

REPO = Path(__file__).resolve().parent.parent
PYINFRA = str(Path(sys.executable).parent / "pyinfra")


@dataclass(frozen=True)
class Marks:
    """What the hostile helper tries to make: a role, a file, a setting of the target database and
    of the postgres role, a comment on the target database."""

    role: str
    path: Path
    target: str


def _dbname(conninfo: str) -> str:
    return psycopg.conninfo.conninfo_to_dict(conninfo)["dbname"]


@pytest.fixture
def marks(cluster, db):
    token = secrets.token_hex(4)
    m = Marks(f"pwned_{token}", Path(f"/tmp/pgconverge-pwned-{token}"), _dbname(db))
    yield m
    with psycopg.connect(cluster.conninfo(), autocommit=True) as c:
        c.execute(f'DROP ROLE IF EXISTS "{m.role}"')
        c.execute("ALTER ROLE postgres RESET pgconverge.pwned")
    m.path.unlink(missing_ok=True)


def _helper(m: Marks) -> str:
    # VOLATILE: its statements are not read-only even when an IMMUTABLE function calls it. Each try is
    # caught, so the load goes on and every one of them is attempted.
    tries = [f"CREATE ROLE {m.role}", f"COPY (SELECT 1) TO ''{m.path}''",
             f"ALTER DATABASE {m.target} SET work_mem = ''77MB''",
             f"COMMENT ON DATABASE {m.target} IS ''pwned''",
             "ALTER ROLE postgres SET pgconverge.pwned = ''yes''",
             f"SELECT lo_export(lo_from_bytea(0, ''x''), ''{m.path}'')"]
    body = "".join(f"  BEGIN EXECUTE '{t}'; EXCEPTION WHEN OTHERS THEN NULL; END;\n" for t in tries)
    return (f"CREATE FUNCTION app.helper() RETURNS int LANGUAGE plpgsql VOLATILE AS $$\nBEGIN\n{body}"
            "  RETURN 1;\nEND $$;\n"
            "CREATE FUNCTION app.folded() RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN app.helper(); "
            "END $$;\n"
            "CREATE FUNCTION app.stable() RETURNS int LANGUAGE plpgsql STABLE AS $$ BEGIN RETURN app.helper(); "
            "END $$;\n")


VECTORS = {
    "materialized view": "CREATE MATERIALIZED VIEW app.mv AS SELECT app.helper() AS x;\n",
    "column default": "CREATE TABLE app.d (id int);\nALTER TABLE app.d ADD COLUMN c int DEFAULT app.stable();\n",
    "index expression": "CREATE TABLE app.i (id int);\nCREATE INDEX i_expr ON app.i ((id + app.folded()));\n",
    "check": "CREATE TABLE app.c (id int, CONSTRAINT c_folded CHECK (id <> app.folded()));\n",
    "partition bound": ("CREATE TABLE app.p (id int) PARTITION BY LIST (id);\n"
                        "CREATE TABLE app.p1 PARTITION OF app.p FOR VALUES IN (app.stable() + 1);\n"),
}


def _sql(m: Marks, vector: str) -> str:
    return "CREATE SCHEMA app;\nCREATE TABLE app.t (id int PRIMARY KEY);\n" + _helper(m) + VECTORS[vector]


def _changed(cluster, db: str, m: Marks) -> list[str]:
    """What the helper managed to do, by a superuser's look."""
    out = []
    with psycopg.connect(cluster.conninfo(), autocommit=True) as c:
        if c.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (m.role,)).fetchone()[0]:
            out.append("role created")
        settings = c.execute("SELECT coalesce(string_agg(array_to_string(s.setconfig, ','), ';'), '') "
                             "FROM pg_db_role_setting s LEFT JOIN pg_database d ON d.oid = s.setdatabase "
                             "LEFT JOIN pg_roles r ON r.oid = s.setrole "
                             "WHERE d.datname = %s OR r.rolname = 'postgres'", (m.target,)).fetchone()[0]
        if "work_mem" in settings or "pgconverge.pwned" in settings:
            out.append(f"settings changed: {settings}")
        if c.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                     (m.target,)).fetchone()[0]:
            out.append("target database commented")
    with psycopg.connect(db, autocommit=True) as c:
        if c.execute("SELECT count(*) FROM app.t").fetchone()[0] != 2:
            out.append("rows of the target changed")
    if m.path.exists():
        out.append("file written")
    return out


def _target(conn) -> None:
    conn.execute("CREATE SCHEMA app; CREATE TABLE app.t (id int PRIMARY KEY); INSERT INTO app.t VALUES (1), (2)")


def _ours(cluster) -> list[str]:
    with psycopg.connect(cluster.conninfo(), autocommit=True) as c:
        return [r[0] for r in c.execute(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE 'pgconverge\\_scratch\\_%' UNION ALL "
            "SELECT datname FROM pg_database WHERE datname LIKE 'pgconverge\\_shadow\\_%' "
            "OR datname LIKE 'pgconverge\\_rehearsal\\_%'")]


@pytest.mark.parametrize("vector", sorted(VECTORS))
def test_a_plan_changes_nothing_outside_its_scratch_databases(cluster, db, conn, marks, tmp_path, vector):
    _target(conn)
    plan = pgconverge.plan(db, [_sql(marks, vector)], cache_dir=tmp_path, allow_hazards="all")
    assert plan.steps and plan.proof.status == "proved"
    assert plan.proof.isolation == "scratch-role" and plan.proof.shadow_isolation == "scratch-role"
    assert plan.to_json()["proof"]["isolation"] == "scratch-role"
    assert _changed(cluster, db, marks) == []
    assert _ours(cluster) == []


def test_the_vectors_do_run_code_with_the_deploy_role_rights(cluster, db, conn, marks, tmp_path, monkeypatch):
    """The control: the same sql/ loaded with the deploy role's rights (the last fallback) reaches out,
    so the test above would see it if the scratch role had any right."""
    _target(conn)
    monkeypatch.setattr(scratch, "probe", lambda server: scratch.Probe("postgres", False, False))
    plan = pgconverge.plan(db, [_sql(marks, "column default")], cache_dir=tmp_path, allow_hazards="all")
    assert plan.proof.shadow_isolation == "deploy-role"
    assert "may not create roles" in plan.proof.shadow_isolation_reason
    assert "role created" in _changed(cluster, db, marks)


def test_a_dry_run_changes_nothing(cluster, db, conn, marks, tmp_path):
    """pyinfra --dry through the host's shell (the scratch role's password goes the guarded stdin way)."""
    _target(conn)
    (tmp_path / "sql").mkdir()
    (tmp_path / "sql" / "schema.sql").write_text(_sql(marks, "check") + VECTORS["partition bound"]
                                                 + VECTORS["column default"])
    (tmp_path / "deploy_test.py").write_text(
        "from pgconverge import operations as pgc\n"
        f"pgc.converge(name='converge', database={{'url_env': 'PGC_TEST_URL'}}, sql={str(tmp_path / 'sql')!r}, "
        "allow_hazards=['all'])\n")
    env = {**os.environ, "PGC_TEST_URL": db, "PGCONVERGE_HOME": str(tmp_path / ".pgconverge")}
    res = subprocess.run([PYINFRA, "@local", str(tmp_path / "deploy_test.py"), "--dry"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, input="\n")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "CREATE TABLE" in res.stdout + res.stderr
    assert "isolation: shadow scratch-role; rehearsal scratch-role" in res.stdout + res.stderr
    assert _changed(cluster, db, marks) == []
    assert _ours(cluster) == []


def test_the_scratch_role_has_no_rights_outside_its_database(cluster, db, marks):
    server = LocalRunner(db)
    box = scratch.create(server, "pgconverge_shadow_" + secrets.token_hex(6))
    try:
        assert box.isolation == "scratch-role" and box.role and box.role.startswith("pgconverge_scratch_")
        assert box.runner.query_text("SELECT session_user").strip() == box.role
        with psycopg.connect(cluster.conninfo(), autocommit=True) as c:
            attrs = c.execute("SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolcanlogin, "
                              "rolvaliduntil IS NOT NULL FROM pg_roles WHERE rolname = %s", (box.role,)).fetchone()
            assert attrs == (False, False, False, False, False, True, True)
            owner, public_connect = c.execute(
                "SELECT pg_get_userbyid(datdba), has_database_privilege('public', datname, 'CONNECT') "
                "FROM pg_database WHERE datname = %s", (box.name,)).fetchone()
            assert owner == box.role and public_connect is False
            assert c.execute("SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member "
                             "WHERE r.rolname = %s", (box.role,)).fetchone()[0] == 0
        for statement in [
            f"CREATE ROLE {marks.role}",
            f"COPY (SELECT 1) TO '{marks.path}'",
            f"COPY (SELECT 1) TO PROGRAM 'touch {marks.path}'",
            f"ALTER DATABASE {marks.target} SET work_mem = '77MB'",
            f"COMMENT ON DATABASE {marks.target} IS 'pwned'",
            "ALTER ROLE postgres SET work_mem = '77MB'",
            "CREATE DATABASE pgconverge_pwned",
            "SET ROLE postgres",
            "ALTER SYSTEM SET work_mem = '77MB'",
            f"SELECT pg_read_file('{cluster.data_dir}/PG_VERSION')",
            f"SELECT lo_export(lo_from_bytea(0, 'x'), '{marks.path}')",
        ]:
            with pytest.raises(PsqlError) as e:
                box.runner.run_script(box.script(statement + ";\n"))
            assert e.value.sqlstate == "42501", (statement, e.value.message)  # insufficient_privilege
        assert not marks.path.exists()
        # what it may do: build objects in its own database
        box.runner.run_script(box.script("CREATE TABLE t (id int); CREATE SCHEMA s;\n"))
    finally:
        box.drop()
    assert _gone(cluster, box)


def _gone(cluster, box: scratch.Scratch) -> bool:
    with psycopg.connect(cluster.conninfo(), autocommit=True) as c:
        return (c.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (box.role,)).fetchone()[0] == 0
                and c.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (box.name,)).fetchone()[0] == 0)


def test_the_role_is_gone_after_a_failure(cluster, db, tmp_path):
    with pytest.raises(Exception) as e:
        pgconverge.plan(db, ["CREATE TABLE t (id int);\nCREATE INDEX ON t (nope);\n"], cache_dir=tmp_path)
    assert "nope" in str(e.value) and ":2:" in str(e.value)
    assert _ours(cluster) == []


def test_the_role_is_gone_after_a_failed_rehearsal(cluster, db, conn, tmp_path, monkeypatch):
    from pgconverge import proof

    conn.execute("CREATE TABLE t (id int)")
    real = proof.render_script
    monkeypatch.setattr(proof, "render_script", lambda *a, **k: real(*a, **k) + "SELECT 1/0;\n")
    with pytest.raises(proof.NotProved) as e:
        pgconverge.plan(db, ["CREATE TABLE t (id int, b int);\n"], cache_dir=tmp_path)
    assert "division by zero" in str(e.value)
    assert _ours(cluster) == []


def test_the_role_is_gone_after_ctrl_c(cluster, db, tmp_path, monkeypatch):
    real = shadowmod.load_script

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(shadowmod, "load_script", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pgconverge.plan(db, ["CREATE TABLE t (id int);\n"], cache_dir=tmp_path)
    monkeypatch.setattr(shadowmod, "load_script", real)
    assert _ours(cluster) == []


KILLED = """
import os, sys
from pgconverge.exec import scratch
from pgconverge.exec.runner import LocalRunner
box = scratch.create(LocalRunner(sys.argv[1]), sys.argv[2])
print(box.role, flush=True)
os.kill(os.getpid(), 9)
"""


def test_a_killed_run_leaves_a_role_that_the_next_run_sweeps(cluster, db, tmp_path):
    name = "pgconverge_rehearsal_" + secrets.token_hex(6)
    res = subprocess.run([sys.executable, "-c", KILLED, db, name], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == -9, res.stderr
    role = res.stdout.strip()
    assert sorted(_ours(cluster)) == sorted([role, name])  # left behind by kill -9
    pgconverge.plan(db, ["CREATE TABLE t (id int);\n"], cache_dir=tmp_path)
    assert _ours(cluster) == []


def test_a_live_runs_scratch_database_is_not_swept(cluster, db):
    server = LocalRunner(db)
    box = scratch.create(server, "pgconverge_shadow_" + secrets.token_hex(6))
    try:
        assert scratch.sweep(server) == []
        assert box.role in _ours(cluster) and box.name in _ours(cluster)
    finally:
        box.drop()


@pytest.fixture
def deploy_role(cluster, db):
    """A deploy role with CREATEDB but not CREATEROLE, and a powerless role it may SET ROLE to."""
    token = secrets.token_hex(4)
    deploy, box = f"pgc_deploy_{token}", f"pgc_box_{token}"
    with psycopg.connect(cluster.conninfo(), autocommit=True) as c:
        c.execute(f'CREATE ROLE "{deploy}" LOGIN CREATEDB')
        c.execute(f'CREATE ROLE "{box}" NOLOGIN')
        c.execute(f'GRANT "{box}" TO "{deploy}"')
    yield deploy, box, db.replace("user=postgres", f"user={deploy}")
    with psycopg.connect(cluster.conninfo(), autocommit=True) as c:
        for name in (deploy, box):
            c.execute(f'DROP ROLE IF EXISTS "{name}"')


def test_without_createrole_the_deploy_role_is_used_and_said(cluster, deploy_role, tmp_path, capsys):
    deploy, _box, target = deploy_role
    plan = pgconverge.plan(target, ["CREATE TABLE t (id int);\n"], cache_dir=tmp_path, allow_hazards="all")
    assert plan.proof.status == "proved"
    assert plan.proof.isolation == "deploy-role" and plan.proof.shadow_isolation == "deploy-role"
    assert f"{deploy} may not create roles" in plan.proof.isolation_reason
    assert "isolation: shadow deploy-role" in plan.proof.summary()
    from pgconverge.cli.main import main

    (tmp_path / "s.sql").write_text("CREATE TABLE t (id int);\n")
    assert main(["plan", "--target", target, "--sql", str(tmp_path / "s.sql"), "--json", "--no-cache"]) == 2
    assert '"isolation": "deploy-role"' in capsys.readouterr().out
    assert _ours(cluster) == []


def test_without_createrole_a_configured_role_is_set(cluster, deploy_role, tmp_path):
    deploy, box, target = deploy_role
    sql = ["CREATE SCHEMA app;\nCREATE TABLE app.t (id int);\nGRANT USAGE ON SCHEMA app TO PUBLIC;\n"]
    plan = pgconverge.plan(target, sql, cache_dir=tmp_path, allow_hazards="all", scratch_role=box)
    assert plan.proof.status == "proved", plan.proof
    assert plan.proof.isolation == "set-role" and plan.proof.shadow_isolation == "set-role"
    assert f"SET ROLE {box}" in plan.proof.isolation_reason and "RESET ROLE" in plan.proof.isolation_reason
    # a cached shadow made by another role is not reused: the key names the isolation
    again = pgconverge.plan(target, sql, cache_dir=tmp_path, allow_hazards="all")
    assert again.proof.shadow_isolation == "deploy-role"


def test_a_configured_role_with_rights_is_refused(cluster, deploy_role, tmp_path):
    deploy, box, target = deploy_role
    with psycopg.connect(cluster.conninfo(), autocommit=True) as c:
        c.execute(f'ALTER ROLE "{box}" CREATEDB')
    with pytest.raises(scratch.ScratchRoleError) as e:
        pgconverge.plan(target, ["CREATE TABLE t (id int);\n"], cache_dir=tmp_path, scratch_role=box)
    assert f"role {box} has rights outside a scratch database (CREATEDB)" in str(e.value)
    assert "scratch_role" in str(e.value)
    assert _ours(cluster) == []


def test_superuser_only_extensions_are_created_by_the_deploy_role(cluster, db, conn, tmp_path):
    """pg_stat_statements is not trusted: the deploy role creates it in the shadow and in the copy,
    the rest of sql/ is still loaded by the scratch role."""
    conn.execute("CREATE SCHEMA ext; CREATE EXTENSION pg_stat_statements WITH SCHEMA ext; CREATE TABLE t (id int)")
    sql = ["CREATE SCHEMA ext;\nCREATE EXTENSION pg_stat_statements WITH SCHEMA ext;\n"
           "CREATE TABLE t (id int, b int);\n"]
    plan = pgconverge.plan(db, sql, cache_dir=tmp_path, allow_hazards="all")
    assert plan.proof.status == "proved", plan.proof
    assert plan.proof.isolation == "scratch-role" and plan.proof.shadow_isolation == "scratch-role"
    assert [s.kind for s in plan.steps] == ["add_column"]
    assert _ours(cluster) == []


def test_default_privileges_of_the_deploy_role_compare(cluster, db, conn, tmp_path, converge):
    """ALTER DEFAULT PRIVILEGES without FOR ROLE names the role that loads it: the scratch role's name
    is put back as the deploy role's, in the shadow and in the copy."""
    sql = ["CREATE SCHEMA app;\nALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO PUBLIC;\n"
           "CREATE TABLE app.t (id int);\n"]
    converge(db, sql, cache_dir=tmp_path)
    plan = pgconverge.plan(db, [sql[0] + "CREATE TABLE app.u (id int);\n"], cache_dir=tmp_path, allow_hazards="all")
    assert plan.proof.status == "proved", plan.proof
    assert [s.kind for s in plan.steps] == ["create_table"]
