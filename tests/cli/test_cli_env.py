"""``pgconverge plan|apply --env``: an environment's inventory and group data, through the deploy's
runbook, against the embedded PostgreSQL. Each test builds a small project in a temporary folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg

PGCONVERGE = str(Path(sys.executable).parent / "pgconverge")
SCHEMA = """CREATE EXTENSION pgcrypto;
CREATE TABLE items (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL
);
CREATE INDEX items_name_idx ON items (name);
"""
SMOKE = "SELECT to_regclass('public.items') IS NOT NULL;\n"
ALLOWED = ["index_build", "may_fail_on_existing_data", "blocks_writes"]  # extension_change left out


def _project(root: Path, **staging: Any) -> None:
    files = {
        "inventory/staging.py": "staging = ['@local']\n",
        "group_data/all.py": "pgconverge_sql = 'sql/schema'\npgconverge_smoke = 'sql/smoke'\n"
                             f"pgconverge_allow_hazards = {ALLOWED!r}\npgconverge_lock_timeout = '5s'\n",
        "group_data/staging.py": "".join(f"{k} = {v!r}\n" for k, v in {
            "pgconverge_env": "staging", "pgconverge_backup_dir": "backups/staging",
            "pgconverge_databases": [{"name": "app", "url_env": "APP_URL"}], **staging}.items()),
        "sql/schema/00_schema.sql": SCHEMA,
        "sql/smoke/10_items.sql": SMOKE,
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def _cli(root: Path, db: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "APP_URL": db, "PGCONVERGE_HOME": str(root / ".home"), "PGCONVERGE_ACTOR": "tester"}
    return subprocess.run([PGCONVERGE, *args], cwd=cwd or root, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True)


def _tables(db: str) -> set[str]:
    with psycopg.connect(db) as c:
        return {r[0] for r in c.execute("SELECT relname FROM pg_class WHERE relkind = 'r' "
                                        "AND relnamespace = 'public'::regnamespace")}


def _runs(db: str) -> list[dict]:
    with psycopg.connect(db) as c:
        if c.execute("SELECT to_regclass('pgconverge.runs')").fetchone()[0] is None:
            return []
        return [r[0] for r in c.execute("SELECT to_jsonb(r) FROM pgconverge.runs r ORDER BY id")]


def test_plan_env_reads_the_policy_and_connection_of_the_environment(db, tmp_path) -> None:
    _project(tmp_path)
    refused = _cli(tmp_path, db, "plan", "--env", "staging")
    assert refused.returncode == 3, refused
    assert "extension_change" in refused.stdout and "REFUSED" in refused.stdout
    assert "preflight" in refused.stdout

    # --data overrides a group-data key for the run, as pyinfra's --data does
    allowed = ",".join([*ALLOWED, "extension_change"])
    pending = _cli(tmp_path, db, "plan", "--env", "staging", "--json", "--data", f"pgconverge_allow_hazards={allowed}")
    assert pending.returncode == 2, pending
    doc = json.loads(pending.stdout)
    [app] = doc["databases"]
    assert doc["environment"] == "staging" and app["database"] == "app" and app["result"] == "pending"
    assert app["plan"]["proof"]["status"] == "proved"
    assert {(s["lock_timeout"], s["statement_timeout"]) for s in app["plan"]["steps"] if s["transactional"]} \
        == {("5s", "30min")}
    sql_file = tmp_path / (app["plan_files"] + ".sql")  # relative to the project folder, as group data says
    assert sql_file.parent == tmp_path / "plans" / "staging" / "app" and sql_file.exists()
    assert "SET lock_timeout = '5s';" in sql_file.read_text()
    # a plan changes nothing
    assert _tables(db) == set() and _runs(db) == []

    # from another folder, with --root
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = elsewhere / "plan.sql"
    rooted = _cli(tmp_path, db, "plan", "--env", "staging", "--root", str(tmp_path), "--script", str(script),
                  "--data", f"pgconverge_allow_hazards={allowed}", cwd=elsewhere)
    assert rooted.returncode == 2, rooted
    assert 'CREATE TABLE "public"."items"' in script.read_text()
    assert not (elsewhere / "plans").exists()


def test_apply_env_runs_the_deploy_runbook_backup_smoke_and_ledger(db, tmp_path) -> None:
    _project(tmp_path, pgconverge_allow_hazards=[*ALLOWED, "extension_change"])
    res = _cli(tmp_path, db, "apply", "--env", "staging")
    assert res.returncode == 0, res
    assert _tables(db) == {"items"}
    [backup] = (tmp_path / "backups" / "staging" / "app").iterdir()
    assert backup.suffix == ".dump" and backup.stat().st_size > 0
    [row] = _runs(db)
    assert row["action"] == "deploy" and row["outcome"] == "converged" and row["environment"] == "staging"
    assert row["target"] == "app" and row["host"] == "@local" and row["actor"] == "tester"
    assert row["backup"]["file"] == str(backup) or row["backup"]["file"].endswith(backup.name)
    assert row["smoke"]["passed"] is True
    assert "smoke: 1/1 check(s) passed" in res.stdout
    assert list((tmp_path / "plans" / "staging" / "app").glob("*.sql"))

    again = _cli(tmp_path, db, "apply", "--env", "staging")
    assert again.returncode == 0, again
    assert "nothing to do" in again.stdout and len(_runs(db)) == 1


def test_env_refuses_options_that_group_data_sets(db, tmp_path) -> None:
    _project(tmp_path)
    res = _cli(tmp_path, db, "apply", "--env", "staging", "--allow-hazards", "all")
    assert res.returncode == 1
    assert "--allow-hazards cannot be used with --env" in res.stderr and "pgconverge_allow_hazards" in res.stderr
    deadline = _cli(tmp_path, db, "plan", "--env", "staging", "--lock-deadline", "5s")
    assert deadline.returncode == 1 and "pgconverge_lock_deadline" in deadline.stderr
    missing = _cli(tmp_path, db, "plan", "--env", "nowhere")
    assert missing.returncode == 1 and "inventory/nowhere.py" in missing.stderr
    unknown = _cli(tmp_path, db, "plan", "--env", "staging", "--database", "other")
    assert unknown.returncode == 1 and "no database 'other'" in unknown.stderr
    assert _tables(db) == set() and _runs(db) == []


def test_apply_env_says_it_does_not_run_smoke_commands(db, tmp_path) -> None:
    _project(tmp_path, pgconverge_allow_hazards=[*ALLOWED, "extension_change"],
             pgconverge_smoke_commands=[{"name": "health", "command": "touch ran", "hosts": "web"}])
    res = _cli(tmp_path, db, "apply", "--env", "staging")
    assert res.returncode == 0, res
    assert "smoke commands (1) not run" in res.stdout + res.stderr and "deploy.py" in res.stdout + res.stderr
    assert not (tmp_path / "ran").exists()
    [row] = _runs(db)
    assert row["outcome"] == "converged" and row["smoke_commands"] is None
