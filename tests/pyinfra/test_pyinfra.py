"""The pyinfra operation, run through the real pyinfra CLI against the embedded PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parents[2]
PYINFRA = str(Path(sys.executable).parent / "pyinfra")

DEPLOY = """
from pyinfra.operations import server
from pgconverge import operations as pgc

{before}
pgc.converge(name="converge target", database={{"url_env": "PGC_TEST_URL"}}, sql={sql!r},
             allow_hazards={allow!r})
"""


def run_pyinfra(tmp_path: Path, db: str, sql: str, *args: str, before: str = "", allow=None):
    (tmp_path / "sql").mkdir(exist_ok=True)
    (tmp_path / "sql" / "schema.sql").write_text(sql)
    deploy = tmp_path / "deploy_test.py"
    deploy.write_text(DEPLOY.format(before=before, sql=str(tmp_path / "sql"), allow=allow))
    env = {**os.environ, "PGC_TEST_URL": db, "PGCONVERGE_HOME": str(tmp_path / ".pgconverge")}
    return subprocess.run([PYINFRA, "@local", str(deploy), *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, input="\n", timeout=300)  # "\n" answers the confirmation


def tables(db: str) -> set[str]:
    with psycopg.connect(db) as c:
        return {r[0] for r in c.execute("SELECT relname FROM pg_class WHERE relkind = 'r' "
                                        "AND relnamespace = 'public'::regnamespace")}


def test_dry_run_prints_sql_and_changes_nothing(db, tmp_path):
    res = run_pyinfra(tmp_path, db, 'CREATE TABLE "bazaar-vid_x" (id int);\n', "--dry")
    assert res.returncode == 0, res.stderr
    out = res.stdout + res.stderr
    assert 'CREATE TABLE "public"."bazaar-vid_x"' in out
    assert "pgconverge plan for" in out
    assert tables(db) == set()


def test_converges_then_reports_no_change(db, tmp_path):
    res = run_pyinfra(tmp_path, db, "CREATE TABLE a (id int PRIMARY KEY);\n", "-y")
    assert res.returncode == 0, res.stdout + res.stderr
    assert tables(db) == {"a"}
    again = run_pyinfra(tmp_path, db, "CREATE TABLE a (id int PRIMARY KEY);\n", "-y")
    assert again.returncode == 0
    assert "No changes" in again.stdout + again.stderr or "No change" in again.stdout + again.stderr


def test_refused_hazard_fails_the_operation_and_changes_nothing(db, tmp_path):
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("CREATE TABLE old (id int)")
    res = run_pyinfra(tmp_path, db, "CREATE TABLE new (id int);\n", allow=[])
    assert res.returncode != 0
    assert "deletes_data" in res.stdout + res.stderr
    assert tables(db) == {"old"}


def test_target_changed_between_plan_and_execute_aborts(db, tmp_path):
    # an operation that runs (at execute time) before the converge changes the target under it
    before = textwrap.dedent("""
        import os
        server.shell(name="someone else changes the database",
                     commands=["psql -X -q -c 'CREATE TABLE sneaky (x int)' \\"$PGC_TEST_URL\\""])
    """)
    res = run_pyinfra(tmp_path, db, "CREATE TABLE a (id int);\n", before=before)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "changed between the plan shown and now" in out
    assert tables(db) == {"sneaky"}


def test_bad_sql_fails_the_operation_with_file_and_line(db, tmp_path):
    res = run_pyinfra(tmp_path, db, "CREATE TABLE a (id int REFERENCES nowhere(id));\n", "-y")
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "schema.sql:1" in out and 'relation "nowhere" does not exist' in out
    assert "Traceback" not in out
    assert tables(db) == set()
