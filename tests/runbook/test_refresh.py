"""Refreshing staging from production's newest verified backup, masked, through the real pyinfra CLI
against the embedded PostgreSQL; each refusal; the table sizes a deploy records; the drill's check
that every table of the current schema is in the backup."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import threading
from pathlib import Path

import psycopg
import pytest

from pgconverge.exec.runner import LocalRunner
from pgconverge.runbook import ledger
from test_environments import REPO, Project, backups_in, runs, sha256, tables

PEOPLE = """CREATE TABLE people (
    id int PRIMARY KEY,
    email text NOT NULL UNIQUE,
    name text
);
"""
SCHEMA = PEOPLE + "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);\nCREATE TABLE notes (x int);\n" \
                  "CREATE INDEX people_name_idx ON people (name);\n"
MASK = ("-- no real address or name reaches staging\n"
        "UPDATE people SET email = 'person-' || id || '@example.invalid', name = 'Person ' || id;\n")


@pytest.fixture
def project(tmp_path: Path, tmp_path_factory) -> Project:
    p = Project(tmp_path, tmp_path_factory.getbasetemp() / "pgconverge-home-refresh")
    shutil.copy(REPO / "refresh.py", tmp_path / "refresh.py")
    # sql/ as a whole: its mask/ (and smoke/) folders must not be read as desired state
    p.group("all", pgconverge_sql="sql", pgconverge_smoke="sql/smoke", pgconverge_lock_timeout="5s",
            pgconverge_allow_hazards=["index_build", "may_fail_on_existing_data"])
    (tmp_path / "sql" / "schema" / "00_schema.sql").write_text(SCHEMA)
    p.write("sql/smoke/10_items.sql", "SELECT to_regclass('public.items') IS NOT NULL;\n")
    p.write("sql/mask/10_people.sql", MASK)
    return p


def environments(project: Project, **staging: object) -> None:
    project.environment("production", pgconverge_databases=[{"name": "app", "url_env": "PROD_URL"}])
    project.environment("staging", pgconverge_databases=[{"name": "app", "url_env": "STAGING_URL"}], **staging)


def seeded(make_db) -> dict[str, str]:
    """Production with real-looking people, before the change; staging with rows of its own."""
    prod, staging = make_db(), make_db()
    with psycopg.connect(prod, autocommit=True) as c:
        c.execute(PEOPLE)
        c.execute("INSERT INTO people SELECT g, 'someone' || g || '@example.com', 'Real Name ' || g "
                  "FROM generate_series(1, 500) g")
    with psycopg.connect(staging, autocommit=True) as c:
        c.execute("CREATE TABLE notes (x int); INSERT INTO notes VALUES (42)")
    return {"PROD_URL": prod, "STAGING_URL": staging}


def people(db: str) -> list[tuple]:
    with psycopg.connect(db) as c:
        return c.execute("SELECT id, email, name FROM people ORDER BY id").fetchall()


def state(db: str) -> tuple:
    """What a refused refresh must leave alone: tables, their rows, the ledger."""
    with psycopg.connect(db) as c:
        rows = c.execute("SELECT x FROM notes").fetchall() if "notes" in tables(db) else None
    return tables(db), rows, runs(db)


def test_refresh_restores_production_masks_it_and_records_the_snapshot(project: Project, make_db) -> None:
    env = seeded(make_db)
    environments(project)
    # production's deploy: a backup of the 500 people first, then the change, each changed table measured
    res = project.pyinfra("production", extra_env=env)
    assert res.rc == 0, res
    [prod_run] = runs(env["PROD_URL"])
    people_size = prod_run["sizes"]["table:public.people"]
    assert people_size["before"]["bytes"] > 0 and people_size["after"]["bytes"] > people_size["before"]["bytes"]
    assert people_size["after"]["rows"] == 500  # VACUUM ANALYZE ran before the second measure
    items_size = prod_run["sizes"]["table:public.items"]
    assert items_size["before"] is None and items_size["after"]["bytes"] > 0  # created by this run
    assert "sizes: public.people:" in res.out
    [md] = (project.root / "plans" / "production" / "app").glob("*.md")
    page = md.read_text()
    assert f"## Table sizes (ledger run #{prod_run['id']})" in page and "| `table:public.people` |" in page
    [backup] = backups_in(project, "production", "app")
    assert prod_run["backup"]["sha256"] == sha256(backup)

    # staging has a history of its own, which the refresh keeps
    res = project.pyinfra("staging", extra_env=env)
    assert res.rc == 0, res
    before = runs(env["STAGING_URL"])
    dry = project.pyinfra("staging", "refresh.py", "--dry", extra_env=env)
    assert dry.rc == 0, dry
    assert f"refresh: {backup.relative_to(project.root)}" in dry.out and "masked by 1 script(s)" in dry.out
    assert "notes" in tables(env["STAGING_URL"]) and runs(env["STAGING_URL"]) == before

    res = project.pyinfra("staging", "refresh.py", extra_env=env)
    assert res.rc == 0, res
    # production as it was when the backup was taken (people, not items yet), masked
    assert tables(env["STAGING_URL"]) == {"people"}
    masked = people(env["STAGING_URL"])
    assert len(masked) == 500 and masked[0] == (1, "person-1@example.invalid", "Person 1")
    assert not [r for r in masked if r[1].endswith("@example.com") or r[2].startswith("Real")]
    assert people(env["PROD_URL"])[0] == (1, "someone1@example.com", "Real Name 1")  # the source untouched
    rows = runs(env["STAGING_URL"])
    assert rows[:-1] == before  # staging's ledger, not production's
    row = rows[-1]
    assert row["action"] == "refresh" and row["outcome"] == "refreshed" and row["environment"] == "staging"
    snap = row["snapshot"]
    assert snap["environment"] == "production" and snap["database"] == "app" and snap["run_id"] == prod_run["id"]
    assert snap["sha256"] == sha256(backup) == row["backup"]["sha256"]
    assert snap["schema_hash"] == prod_run["before_hash"] == row["after_hash"] == row["desired_hash"]
    mask_hash = hashlib.sha256(b"10_people.sql\0" + MASK.encode() + b"\0").hexdigest()
    assert snap["mask_sha256"] == mask_hash and snap["mask_files"] == ["10_people.sql"]
    assert row["before_hash"] == before[-1]["after_hash"]
    # the copy sent to the host for the restore is gone; production's backups are as they were
    assert [p.name for p in (project.root / "backups" / "staging" / "app").iterdir()
            if p.name.startswith(".refresh-")] == []
    assert backups_in(project, "production", "app") == [backup] and len(runs(env["PROD_URL"])) == 1
    hist = project.cli("history", "--target", "env:STAGING_URL", "--action", "refresh", "--json", extra_env=env)
    assert hist.rc == 0 and json.loads(hist.out)[0]["snapshot"]["sha256"] == snap["sha256"], hist

    # from a folder the host shares with production (group data names it), a chosen file
    with psycopg.connect(env["STAGING_URL"], autocommit=True) as c:
        c.execute("UPDATE people SET name = 'edited on staging'")
    res = project.pyinfra("staging", "refresh.py", "--data",
                          f"pgconverge_refresh_dir={project.root / 'backups' / 'production'}", "--data",
                          f"pgconverge_backup={backup.name}", extra_env=env)
    assert res.rc == 0, res
    assert people(env["STAGING_URL"]) == masked
    assert runs(env["STAGING_URL"])[-1]["snapshot"]["file"] == str(backup)
    # staging's next plan page says what its data is
    dry = project.pyinfra("staging", "deploy.py", "--dry", extra_env=env)
    assert dry.rc == 0, dry
    page = sorted((project.root / "plans" / "staging" / "app").glob("*.md"))[-1].read_text()
    assert (f"- data: refreshed from production app's backup sha256 {snap['sha256'][:12]} (production schema "
            f"{snap['schema_hash'][:12]}, masking {mask_hash[:12]}) by ledger run #{runs(env['STAGING_URL'])[-1]['id']}"
            in page), page

    # the restore drill finds production's tables in the backup, items having come after it
    res = project.pyinfra("production", "drill.py", extra_env=env)
    assert res.rc == 0, res
    drilled = runs(env["PROD_URL"])[-1]
    assert drilled["outcome"] == "passed"
    assert f"public.items, public.notes came with run #{prod_run['id']} after the backup" in drilled["message"]
    # a table made outside pgconverge since has no backup: the drill fails and names it
    with psycopg.connect(env["PROD_URL"], autocommit=True) as c:
        c.execute("CREATE TABLE stray (x int)")
    res = project.pyinfra("production", "drill.py", extra_env=env)
    assert res.rc != 0, res
    assert "lacks table(s) of the current schema: public.stray" in res.out
    assert runs(env["PROD_URL"])[-1]["outcome"] == "failed"


def test_refresh_refuses_changing_nothing(project: Project, make_db) -> None:
    env = seeded(make_db)
    environments(project)
    assert project.pyinfra("production", extra_env=env).rc == 0
    [backup] = backups_in(project, "production", "app")
    good = backup.read_bytes()
    unchanged = state(env["STAGING_URL"])

    def refused(expected: str, *args: str) -> None:
        res = project.pyinfra("staging", "refresh.py", *args, extra_env=env)
        assert res.rc != 0, res
        assert expected in res.out, res
        assert state(env["STAGING_URL"]) == unchanged

    # the backup does not verify: changed since it was taken, so production's ledger does not know it
    backup.write_bytes(good + b"\0")
    refused("the backup does not verify: no run in production app's ledger took")
    backup.write_bytes(good)
    # a file production's ledger never recorded, named on the command line
    stray = backup.with_name("app-20200101T000000Z.dump")
    stray.write_bytes(good[:-200])
    refused("the backup does not verify", "--data", f"pgconverge_backup={stray.name}")
    stray.unlink()
    # masking fails (a column that does not exist): the restore is rolled back with it
    project.write("sql/mask/20_broken.sql", "UPDATE people SET phone = NULL;\n")
    refused("masking failed: 20_broken.sql failed, the whole transaction was rolled back")
    # a script that would commit half way is refused before anything runs
    project.write("sql/mask/20_broken.sql", "COMMIT;\n")
    refused("masking script sql/mask/20_broken.sql, line 1: Transaction cannot be part of the refresh")
    (project.root / "sql" / "mask" / "20_broken.sql").unlink()
    # no masking scripts at all: production's data would reach staging as it is
    (project.root / "sql" / "mask" / "10_people.sql").unlink()
    refused("no masking scripts in sql/mask (pgconverge_mask)")
    project.write("sql/mask/10_people.sql", MASK)

    # staging has a run in progress (another machine's, so nobody here can call it over)
    ledger.ensure(LocalRunner(env["STAGING_URL"]))
    with psycopg.connect(env["STAGING_URL"], autocommit=True) as c:
        c.execute("INSERT INTO pgconverge.runs (environment, actor, outcome, owner) VALUES ('staging', 'ci', "
                  "'running', '{\"machine\": \"ci-elsewhere\", \"pid\": 1}')")
    unchanged = state(env["STAGING_URL"])
    refused("staging app has a run in progress: ledger run #1 (deploy")
    with psycopg.connect(env["STAGING_URL"], autocommit=True) as c:
        c.execute("UPDATE pgconverge.runs SET outcome = 'failed'")
    # an environment behind a sign-off is never overwritten with another one's data
    environments(project, pgconverge_require_signoff=True)
    unchanged = state(env["STAGING_URL"])
    refused("staging requires a sign-off for its changes")

    # with every cause gone, the same refresh goes through
    environments(project)
    res = project.pyinfra("staging", "refresh.py", extra_env=env)
    assert res.rc == 0, res
    assert tables(env["STAGING_URL"]) == {"people"} and runs(env["STAGING_URL"])[-1]["outcome"] == "refreshed"


@pytest.fixture
def password_dbs(cluster):
    """Production and staging reached over TCP by roles with passwords: (urls by variable, passwords)."""
    made: list[tuple[str, str]] = []

    def make() -> tuple[str, str]:
        role, pw, name = f"pgc_role_{secrets.token_hex(4)}", secrets.token_hex(16), f"pgc_test_{secrets.token_hex(6)}"
        with psycopg.connect(cluster.conninfo(), autocommit=True) as c:
            c.execute(f"CREATE ROLE {role} LOGIN CREATEDB PASSWORD '{pw}'")
            c.execute(f"CREATE DATABASE {name} OWNER {role} TEMPLATE template0")
        made.append((role, name))
        return f"postgresql://{role}:{pw}@127.0.0.1:{cluster.port}/{name}", pw

    (prod, prod_pw), (staging, staging_pw) = make(), make()
    yield {"PROD_URL": prod, "STAGING_URL": staging}, (prod_pw, staging_pw)
    with psycopg.connect(cluster.conninfo(), autocommit=True) as c:
        for role, name in made:
            c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            c.execute(f"DROP ROLE IF EXISTS {role}")


def test_refresh_keeps_passwords_out_of_argv_output_and_ledger(project: Project, password_dbs) -> None:
    env, passwords = password_dbs
    with psycopg.connect(env["PROD_URL"], autocommit=True) as c:
        c.execute(PEOPLE)
        c.execute("INSERT INTO people VALUES (1, 'someone@example.com', 'Real Name')")
    environments(project)
    seen: list[str] = []
    stop = threading.Event()

    def sample() -> None:
        me = str(os.getpid())
        while not stop.is_set():
            for pid in os.listdir("/proc"):
                if pid.isdigit() and pid != me:
                    try:
                        seen.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
                    except OSError:
                        pass

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    try:
        deployed = project.pyinfra("production", extra_env=env)
        refreshed = project.pyinfra("staging", "refresh.py", "-vv", extra_env=env)
    finally:
        stop.set()
        watcher.join()
    assert deployed.rc == 0, deployed
    assert refreshed.rc == 0, refreshed.out[-3000:]
    assert people(env["STAGING_URL"]) == [(1, "person-1@example.invalid", "Person 1")]
    assert any("pg_restore" in c for c in seen) and any("psql" in c for c in seen), "the sampler saw the tools"
    for pw in passwords:
        assert not [c for c in seen if pw in c], "a password in a process's argv"
        assert pw not in refreshed.out and pw not in str(runs(env["STAGING_URL"]))
