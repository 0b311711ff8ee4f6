"""deploy.py as pyinfra operations, one per step, through the real pyinfra CLI against the embedded
PostgreSQL: their order and results, a user's operation between them, and dry runs that fail exactly
when the real run would be refused."""

from __future__ import annotations

import re
import shutil
from datetime import datetime
from pathlib import Path

import psycopg
import pytest

from test_environments import REPO, Project, backups_in, has_ledger, runs, tables
from test_environments import home  # noqa: F401 (the fixture)


@pytest.fixture
def project(tmp_path: Path, home: Path) -> Project:  # noqa: F811 (home: the fixture above)
    return Project(tmp_path, home)


STEPS = ["Preflight", "Gate", "Backup", "Extensions", "Data blocks before the schema", "Schema",
         "Data blocks after the schema", "Analyze", "Smoke checks", "Record"]
DATA_BLOCK = "-- @data seed after\nINSERT INTO items (name) VALUES ('seeded');\n-- @end\n"


def started(out: str) -> list[str]:
    """The operations in the order pyinfra ran them."""
    return re.findall(r"--> Starting operation: (.+?) \(staging\)", out)


def results(out: str) -> dict[str, str]:
    """pyinfra's summary: operation -> success | error | no change, for the one host."""
    table = out.split("--> Results:", 1)[1]
    found = {}
    for line in table.splitlines():
        m = re.match(r"\s+(.+?) \(staging\)\s+1\s+(\S+)\s+(\S+)\s+(\S+)\s*$", line)
        if m:
            found[m.group(1)] = {0: "success", 1: "error", 2: "no change"}[[m.group(2), m.group(3),
                                                                          m.group(4)].index("1")]
    return found


def staging(project: Project, **data) -> None:
    project.environment("staging", pgconverge_databases=[{"name": "app", "url_env": "APP_URL"}], **data)


def test_each_step_is_an_operation_in_deploy_py_order_with_its_own_result(project: Project, db: str) -> None:
    project.write("sql/schema/90_seed.sql", DATA_BLOCK)
    staging(project)
    res = project.pyinfra("staging", extra_env={"APP_URL": db})
    assert res.rc == 0, res
    assert [name.rsplit(" app", 1)[0] for name in started(res.out)] == STEPS
    assert results(res.out) == {
        "Preflight app": "no change", "Gate app": "no change", "Backup app": "success", "Extensions app": "success",
        "Data blocks before the schema app": "no change", "Schema app": "success",
        "Data blocks after the schema app": "success", "Analyze app": "success", "Smoke checks app": "success",
        "Record app": "success"}, res
    with psycopg.connect(db) as c:
        assert c.execute("SELECT name FROM items").fetchall() == [("seeded",)]
        assert c.execute("SELECT count(*) FROM pg_extension WHERE extname = 'pgcrypto'").fetchone()[0] == 1
    [row] = runs(db)
    assert row["outcome"] == "converged" and row["after_hash"] != row["before_hash"]
    assert "extensions: applying 1 step(s)" in res.out and "data blocks after the schema: applying 1 data block(s)" in res.out

    again = project.pyinfra("staging", extra_env={"APP_URL": db})
    assert again.rc == 0, again
    assert set(results(again.out).values()) == {"no change"}, again
    assert "nothing to do: app is converged" in again.out and len(runs(db)) == 1


USER_DEPLOY = '''
from pyinfra import host
from pyinfra.operations import server
from pgconverge import operations as pgc
from pgconverge.pyinfra.host import host_databases, host_settings

settings = host_settings(host)
for spec in host_databases(host):
    db = dict(database=spec, settings=settings)
    pgc.preflight(name="Preflight (staging)", **db)
    pgc.gate_check(name="Gate (staging)", **db)
    pgc.backup(name="Backup (staging)", **db)
    server.shell(name="Look before the schema (staging)", commands=[
        "date +%s.%N > marker",
        "psql -X -At -c \\"SELECT count(*) FROM pg_class WHERE relname = 'items'\\" \\"$APP_URL\\" >> marker"])
    pgc.schema(name="Schema (staging)", **db)
    pgc.smoke(name="Smoke checks (staging)", **db)
    pgc.record(name="Record (staging)", **db)
'''


def test_a_users_operation_between_backup_and_schema_runs_there(project: Project, db: str) -> None:
    project.write("my_deploy.py", USER_DEPLOY)
    staging(project)
    res = project.pyinfra("staging", "my_deploy.py", extra_env={"APP_URL": db})
    assert res.rc == 0, res
    assert started(res.out) == ["Preflight", "Gate", "Backup", "Look before the schema", "Schema", "Smoke checks",
                                "Record"]
    stamp, count = (project.root / "marker").read_text().split()
    assert count == "0", "the user's operation ran before the schema was changed"
    [backup_file] = backups_in(project, "staging", "app")
    [row] = runs(db)
    assert backup_file.stat().st_mtime <= float(stamp) <= datetime.fromisoformat(row["finished_at"]).timestamp()
    assert datetime.fromisoformat(row["started_at"]).timestamp() <= float(stamp)
    assert tables(db) == {"items"} and row["outcome"] == "converged"


def test_a_dry_run_with_pending_changes_alone_succeeds(project: Project, db: str) -> None:
    staging(project)
    res = project.pyinfra("staging", "deploy.py", "--dry", extra_env={"APP_URL": db})
    assert res.rc == 0, res
    assert "REFUSED" not in res.out and "Traceback" not in res.out
    assert tables(db) == set() and not has_ledger(db)


def dry_refused(project: Project, env: dict[str, str], what: str) -> str:
    """A dry run that fails its host, printing the refusal once, as a refusal and not a crash."""
    res = project.pyinfra("staging", "deploy.py", "--dry", extra_env=env)
    assert res.rc != 0, res
    assert res.out.count(f"REFUSED by {what}:") == 1, res
    for crash in ("No hosts remaining", "executed 0 commands", "Traceback", "Unexpected error"):
        assert crash not in res.out, res
    assert "remedy:" in res.out, res
    assert not has_ledger(env["APP_URL"]) and backups_in(project, "staging", "app") == []
    return res.out


def test_dry_run_fails_when_policy_refuses(project: Project, db: str) -> None:
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("CREATE TABLE legacy (id int)")
    staging(project)
    out = dry_refused(project, {"APP_URL": db}, "policy")
    assert "deletes_data: table public.legacy is dropped" in out
    assert "'-- @drop table public.legacy'" in out and "pgconverge_drops" in out
    assert tables(db) == {"legacy"}


def test_dry_run_fails_when_the_gate_refuses(project: Project, db: str) -> None:
    staging(project, pgconverge_require_signoff=True, pgconverge_signoff_file="signoffs/staging.yml")
    out = dry_refused(project, {"APP_URL": db}, "the staging gate")
    assert "no sign-off at signoffs/staging.yml" in out and "pgconverge signoff --env staging" in out


def test_dry_run_fails_when_preflight_refuses(project: Project, db: str) -> None:
    staging(project, pgconverge_min_server_version=99)
    out = dry_refused(project, {"APP_URL": db}, "preflight")
    assert "requires 99 or later" in out


def test_dry_run_fails_when_the_proof_refuses(project: Project, db: str) -> None:
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("CREATE TABLE t (id bigint)")
    project.write("sql/schema/00_schema.sql", "CREATE TYPE pair AS (a int, b int);\nCREATE TABLE t (id pair);\n")
    shutil.rmtree(project.root / "sql" / "smoke")
    staging(project, pgconverge_allow_hazards=["rewrites_table", "blocks_reads_writes", "may_fail_on_existing_data"])
    out = dry_refused(project, {"APP_URL": db}, "the proof")
    assert "fails on a schema-only copy of the target" in out


def test_check_mode_fails_on_pending_changes_with_its_own_message(project: Project, db: str) -> None:
    staging(project)
    for args in (("deploy.py", "--dry"), ("deploy.py",)):
        res = project.pyinfra("staging", *args, "--data", "pgconverge_check=true", extra_env={"APP_URL": db})
        assert res.rc != 0, res
        assert res.out.count("pending changes (check mode):") == 1, res
        assert "3 change(s) and 0 data block(s) pending (check mode), nothing was run" in res.out
        assert "REFUSED" not in res.out and "No hosts remaining" not in res.out
    assert tables(db) == set() and not has_ledger(db)
    # converged: check mode passes
    assert project.pyinfra("staging", extra_env={"APP_URL": db}).rc == 0
    res = project.pyinfra("staging", "deploy.py", "--data", "pgconverge_check=true", extra_env={"APP_URL": db})
    assert res.rc == 0, res


def test_the_example_deploy_makes_role_and_database_and_puts_the_app_in_maintenance_around_the_change(
        project: Project, cluster) -> None:
    import secrets

    shutil.copy(REPO / "examples" / "deploy_maintenance.py", project.root / "deploy_maintenance.py")
    role, dbname = f"pgc_role_{secrets.token_hex(4)}", f"pgc_test_{secrets.token_hex(6)}"
    db = cluster.conninfo(dbname)  # not there yet: the example's postgres.database makes it
    staging(project, app_maintenance_file="maintenance.flag", app_maintenance_log="maintenance.log",
            app_role=role, app_database=dbname, app_psql_host=str(cluster.run_dir), app_psql_port=cluster.port,
            app_psql_user="postgres")
    try:
        dry = project.pyinfra("staging", "deploy_maintenance.py", "--dry", extra_env={"APP_URL": db})
        assert dry.rc == 0, dry
        assert "does not exist yet: an earlier operation of this deploy creates it" in dry.out
        res = project.pyinfra("staging", "deploy_maintenance.py", extra_env={"APP_URL": db})
        assert res.rc == 0, res
        with psycopg.connect(db) as c:
            assert c.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (role,)).fetchone()[0] == 1
            assert c.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                             (dbname,)).fetchone()[0] == role
        on, off = [float(line.split()[1]) for line in (project.root / "maintenance.log").read_text().splitlines()]
        [row] = runs(db)
        [backup_file] = backups_in(project, "staging", "app")
        assert backup_file.stat().st_mtime <= on <= datetime.fromisoformat(row["finished_at"]).timestamp() <= off
        assert not (project.root / "maintenance.flag").exists() and tables(db) == {"items"}
        # a second run: role and database are there, nothing to do
        again = project.pyinfra("staging", "deploy_maintenance.py", extra_env={"APP_URL": db})
        assert again.rc == 0 and "nothing to do: app is converged" in again.out, again
    finally:
        cluster.drop_database(dbname)
        with psycopg.connect(cluster.conninfo(), autocommit=True) as c:
            c.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_a_refused_host_does_not_stop_the_others_in_a_dry_run(project: Project, make_db) -> None:
    a, b = make_db(), make_db()
    hosts = [("@pglocal/a", {"pgconverge_databases": [{"name": "a", "url_env": "A_URL"}],
                             "pgconverge_min_server_version": 99}),
             ("@pglocal/b", {"pgconverge_databases": [{"name": "b", "url_env": "B_URL"}]})]
    project.environment("staging", hosts=hosts)
    res = project.pyinfra("staging", "deploy.py", "--dry", extra_env={"A_URL": a, "B_URL": b})
    assert res.rc != 0, res
    assert "[@pglocal/a] REFUSED by preflight" in res.out and "REFUSED by" not in res.out.replace(
        "[@pglocal/a] REFUSED by preflight", "")
    assert (project.root / "plans" / "staging" / "b").exists() and not (project.root / "plans" / "staging" / "a").exists()


OLD_DEPLOY = '''
from pyinfra import host
from pgconverge import operations as pgc
from pgconverge.pyinfra.host import host_databases, host_settings

settings = host_settings(host)
for spec in host_databases(host):
    pgc.deploy(name="Deploy (staging)", database=spec, settings=settings)
'''


def test_the_one_operation_deploy_of_older_deploy_files_still_works(project: Project, db: str) -> None:
    project.write("old_deploy.py", OLD_DEPLOY)
    staging(project)
    res = project.pyinfra("staging", "old_deploy.py", extra_env={"APP_URL": db})
    assert res.rc == 0, res
    assert started(res.out) == ["Deploy"]
    assert tables(db) == {"items"} and [r["outcome"] for r in runs(db)] == ["converged"]
