"""Environments and the runbook, through the real pyinfra CLI against the embedded PostgreSQL:
preflight, backups, smoke checks, the ledger, the production gate, restore and the restore drill,
secrets, several databases and several hosts.

Each test builds a small project (inventory/, group_data/, sql/, the repo's deploy.py, restore.py
and drill.py) in a temporary folder and runs pyinfra there.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from pgconverge.runbook import sshsig

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PYINFRA = str(BIN / "pyinfra")
PGCONVERGE = str(BIN / "pgconverge")

SCHEMA = """CREATE EXTENSION pgcrypto;
CREATE TABLE items (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL
);
CREATE INDEX items_name_idx ON items (name);
"""
SMOKE_OK = "-- the table exists and pgcrypto works\nSELECT to_regclass('public.items') IS NOT NULL\n" \
           "   AND length(digest('x', 'sha256')) = 32;\n"
ALL = {
    "pgconverge_sql": "sql/schema",
    "pgconverge_smoke": "sql/smoke",
    "pgconverge_allow_hazards": ["index_build", "extension_change", "may_fail_on_existing_data", "blocks_writes"],
    "pgconverge_lock_timeout": "5s",
}


@dataclass
class Proc:
    rc: int
    out: str

    def __str__(self) -> str:
        return f"exit {self.rc}\n{self.out[-4000:]}"

    __repr__ = __str__  # pytest shows the end of the output when an assertion fails


class Project:
    """A throwaway project folder that pyinfra runs in."""

    def __init__(self, root: Path, home: Path):
        self.root = root
        self.env = {**os.environ, "PGCONVERGE_HOME": str(home), "PYINFRA_PROGRESS": "off",
                    "PGCONVERGE_ACTOR": "tester"}
        for name in ("deploy.py", "restore.py", "drill.py"):
            shutil.copy(REPO / name, root / name)
        (root / "inventory").mkdir()
        (root / "group_data").mkdir()
        self.write("sql/schema/00_schema.sql", SCHEMA)
        self.write("sql/smoke/10_items.sql", SMOKE_OK)
        self.group("all", **ALL)

    def write(self, rel: str, text: str) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        return p

    def group(self, name: str, **data: Any) -> None:
        self.write(f"group_data/{name}.py", "".join(f"{k} = {v!r}\n" for k, v in data.items()))

    def environment(self, name: str, hosts: Any = None, **data: Any) -> None:
        """inventory/<name>.py (one @local host by default) and group_data/<name>.py."""
        self.write(f"inventory/{name}.py", f"{name} = {hosts or ['@local']!r}\n")
        defaults = {"pgconverge_env": name, "pgconverge_backup_dir": f"backups/{name}"}
        self.group(name, **{**defaults, **data})

    def pyinfra(self, env_name: str, script: str = "deploy.py", *args: str, extra_env: dict | None = None) -> Proc:
        cmd = [PYINFRA, *(["-y"] if "--dry" not in args else []), f"inventory/{env_name}.py", script, *args]
        p = subprocess.run(cmd, cwd=self.root, env={**self.env, **(extra_env or {})}, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
        return Proc(p.returncode, p.stdout)

    def cli(self, *args: str, extra_env: dict | None = None) -> Proc:
        p = subprocess.run([PGCONVERGE, *args], cwd=self.root, env={**self.env, **(extra_env or {})},
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=600)
        return Proc(p.returncode, p.stdout)


@pytest.fixture(scope="session")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pgconverge-home")  # shared shadow cache: faster runs


@pytest.fixture
def project(tmp_path: Path, home: Path) -> Project:
    return Project(tmp_path, home)


def tables(db: str) -> set[str]:
    with psycopg.connect(db) as c:
        return {r[0] for r in c.execute("SELECT relname FROM pg_class WHERE relkind = 'r' "
                                        "AND relnamespace = 'public'::regnamespace")}


def runs(db: str) -> list[dict]:
    """The ledger rows, oldest first ([] when there is no ledger)."""
    with psycopg.connect(db) as c:
        if c.execute("SELECT to_regclass('pgconverge.runs')").fetchone()[0] is None:
            return []
        return [r[0] for r in c.execute("SELECT to_jsonb(r) FROM pgconverge.runs r ORDER BY id")]


def has_ledger(db: str) -> bool:
    with psycopg.connect(db) as c:
        return c.execute("SELECT to_regnamespace('pgconverge') IS NOT NULL").fetchone()[0]


def backups_in(project: Project, env: str, label: str) -> list[Path]:
    d = project.root / "backups" / env / label
    return sorted(d.iterdir()) if d.exists() else []


def dbname(db: str) -> str:
    return psycopg.conninfo.conninfo_to_dict(db)["dbname"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- dry run, converge, ledger


def test_dry_run_prints_plan_writes_plan_files_changes_nothing(project: Project, db: str) -> None:
    project.environment("staging", pgconverge_databases=[{"name": "app", "url_env": "APP_URL"}])
    res = project.pyinfra("staging", "deploy.py", "--dry", extra_env={"APP_URL": db})
    assert res.rc == 0, res
    assert "preflight" in res.out and ": ok" in res.out
    assert 'CREATE TABLE "public"."items"' in res.out
    assert "hazard extension_change" in res.out
    [sql_file] = (project.root / "plans" / "staging" / "app").glob("*Z-*.sql")  # <UTC time>-<plan hash>
    assert 'CREATE TABLE "public"."items"' in sql_file.read_text() and "SET lock_timeout = '5s';" in sql_file.read_text()
    md = sql_file.with_suffix(".md").read_text()
    assert "| extension_change |" in md and "## SQL" in md
    assert (sql_file.with_suffix(".json")).exists()
    assert tables(db) == set() and not has_ledger(db)
    assert backups_in(project, "staging", "app") == []


def test_converge_backs_up_analyzes_smokes_and_records(project: Project, db: str) -> None:
    project.environment("staging", pgconverge_databases=[{"name": "app", "url_env": "APP_URL"}])
    res = project.pyinfra("staging", extra_env={"APP_URL": db})
    assert res.rc == 0, res
    assert tables(db) == {"items"}
    assert 'analyze: VACUUM ANALYZE 1 table(s): "public"."items"' in res.out
    assert "smoke: 1/1 check(s) passed" in res.out
    files = backups_in(project, "staging", "app")
    assert len(files) == 1 and files[0].suffix == ".dump"
    assert subprocess.run(["pg_restore", "--list", str(files[0])], capture_output=True).returncode == 0
    [row] = runs(db)
    assert row["action"] == "deploy" and row["outcome"] == "converged" and row["environment"] == "staging"
    assert row["actor"] == "tester" and row["target"] == "app" and row["finished_at"]
    assert row["backup"]["sha256"] == sha256(files[0])
    assert row["backup"]["size"] == files[0].stat().st_size
    assert row["smoke"]["passed"] is True and row["smoke"]["checks"][0]["name"] == "10_items.sql"
    assert row["before_hash"] != row["after_hash"]
    assert any("CREATE TABLE" in s["sql"] for s in row["plan"]["steps"])

    # a second run has nothing to do: no backup, no ledger row
    again = project.pyinfra("staging", extra_env={"APP_URL": db})
    assert again.rc == 0, again
    assert "is converged" in again.out
    assert len(backups_in(project, "staging", "app")) == 1 and len(runs(db)) == 1

    # history prints the row
    hist = project.cli("history", "--target", "env:APP_URL", extra_env={"APP_URL": db})
    assert hist.rc == 0, hist
    assert "converged" in hist.out and "deploy" in hist.out and "1/1 passed" in hist.out


def test_verify_unchanged_records_a_smoke_run_without_a_backup(project: Project, db: str) -> None:
    project.environment("staging", pgconverge_databases=[{"name": "app", "url_env": "APP_URL"}],
                        pgconverge_verify_unchanged=True)
    assert project.pyinfra("staging", extra_env={"APP_URL": db}).rc == 0
    res = project.pyinfra("staging", extra_env={"APP_URL": db})
    assert res.rc == 0, res
    assert "backup: skipped, the plan is empty" in res.out
    assert [r["outcome"] for r in runs(db)] == ["converged", "unchanged"]
    assert len(backups_in(project, "staging", "app")) == 1


# --------------------------------------------------------------------------- backups


def test_sql_gz_backups_are_verified_and_pruned_by_count_and_age(project: Project, db: str) -> None:
    project.environment("staging", pgconverge_databases=[{"name": "app", "url_env": "APP_URL"}],
                        pgconverge_backup_format="sql.gz", pgconverge_backup_keep=2,
                        pgconverge_backup_max_age_days=36500)
    folder = project.root / "backups" / "staging" / "app"
    folder.mkdir(parents=True)
    old = [f"app-{stamp}.sql.gz" for stamp in ("20200101T000000Z", "20210101T000000Z", "20220101T000000Z")]
    for name in old:
        (folder / name).write_bytes(gzip.compress(b"-- old\n"))
    (folder / "notes.txt").write_text("not a backup: never pruned")
    res = project.pyinfra("staging", extra_env={"APP_URL": db})
    assert res.rc == 0, res
    names = sorted(p.name for p in folder.iterdir())
    new = [n for n in names if n.endswith(".sql.gz") and n not in old]
    assert len(new) == 1, names
    # keep=2: the new backup and the newest old one
    assert names == sorted([new[0], "app-20220101T000000Z.sql.gz", "notes.txt"])
    assert subprocess.run(["gzip", "-t", str(folder / new[0])]).returncode == 0
    dump = gzip.decompress((folder / new[0]).read_bytes())
    assert b"CREATE TABLE public.items" not in dump and b"pgconverge.runs" in dump  # taken before the change
    assert "pruned 2 old backup(s)" in res.out

    # by age: everything older than a day goes, except the newest backup
    project.environment("staging", pgconverge_databases=[{"name": "app", "url_env": "APP_URL"}],
                        pgconverge_backup_format="sql.gz", pgconverge_backup_keep=10,
                        pgconverge_backup_max_age_days=1, pgconverge_backup_when_unchanged=True)
    res = project.pyinfra("staging", extra_env={"APP_URL": db})
    assert res.rc == 0, res
    left = sorted(p.name for p in folder.iterdir())
    assert "app-20220101T000000Z.sql.gz" not in left and "notes.txt" in left
    assert len([n for n in left if n.endswith(".sql.gz")]) == 2  # the two taken today


@pytest.mark.parametrize("fake", [
    "#!/bin/sh\necho 'pg_dump: error: connection to server failed (simulated)' >&2\nexit 1\n",
    # writes something that is not a custom-format archive, and claims success: unverifiable
    "#!/bin/sh\nwhile [ $# -gt 1 ]; do shift; done\necho garbage > \"$1\"\nexit 0\n",
], ids=["pg_dump-fails", "backup-unverifiable"])
def test_failed_backup_stops_the_run_before_any_change(project: Project, db: str, fake: str) -> None:
    bindir = project.root / "fakebin"
    bindir.mkdir()
    for tool in ("psql", "pg_restore"):
        (bindir / tool).symlink_to(shutil.which(tool))
    (bindir / "pg_dump").write_text(fake)
    (bindir / "pg_dump").chmod(0o755)
    project.environment("staging", pgconverge_databases=[{"name": "app", "url_env": "APP_URL"}],
                        pgconverge_bindir=str(bindir))
    res = project.pyinfra("staging", extra_env={"APP_URL": db})
    assert res.rc != 0, res
    assert tables(db) == set(), "the schema must be unchanged"
    assert "nothing was changed in the schema" in res.out
    [row] = runs(db)
    assert row["outcome"] == "failed"
    assert "pg_dump failed" in row["message"] or "does not verify" in row["message"]
    assert backups_in(project, "staging", "app") == []  # no partial file left behind


# --------------------------------------------------------------------------- smoke checks, restore


def test_failed_smoke_check_fails_the_run_and_the_restore_rolls_back(project: Project, db: str) -> None:
    project.write("sql/smoke/20_no_rows_expected.sql", "SELECT 'items is empty' AS problem WHERE true;\n")
    project.write("sql/schema/05_keep.sql", "CREATE TABLE keep_me (x int);\n")  # there before, with rows
    project.environment("staging", pgconverge_databases=[{"name": "app", "url_env": "APP_URL"}])
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("CREATE TABLE keep_me (x int)")
        c.execute("INSERT INTO keep_me VALUES (1), (2)")
    res = project.pyinfra("staging", extra_env={"APP_URL": db})
    assert res.rc != 0, res
    assert "FAIL 20_no_rows_expected.sql: returned problem=items is empty" in res.out
    assert "ok   10_items.sql" in res.out
    [backup] = backups_in(project, "staging", "app")
    assert f"--data pgconverge_backup=backups/staging/app/{backup.name}" in res.out  # how to roll back
    [row] = runs(db)
    assert row["outcome"] == "smoke_failed" and row["smoke"]["passed"] is False
    assert "restore.py" in row["message"]
    assert tables(db) == {"items", "keep_me"}

    # run the rollback command exactly as printed
    [hint] = [ln for ln in res.out.splitlines() if "restore.py --limit" in ln]
    argv = shlex.split(hint.split("] ", 1)[1])
    assert argv[:3] == ["pyinfra", "inventory/staging.py", "restore.py"], argv
    p = subprocess.run([PYINFRA, "-y", *argv[1:]], cwd=project.root, env={**project.env, "APP_URL": db},
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    res = Proc(p.returncode, p.stdout)
    assert res.rc == 0, res
    assert tables(db) == {"keep_me"}
    with psycopg.connect(db) as c:
        assert c.execute("SELECT count(*) FROM keep_me").fetchone()[0] == 2
        assert c.execute("SELECT count(*) FROM pg_extension WHERE extname = 'pgcrypto'").fetchone()[0] == 0
    rows = runs(db)
    # the ledger kept the failed run (it was set aside during the restore) and recorded the restore
    assert [r["outcome"] for r in rows] == ["smoke_failed", "restored"]
    assert rows[1]["action"] == "restore" and rows[1]["backup"]["sha256"] == sha256(backup)
    assert rows[1]["after_hash"] == rows[0]["before_hash"]
    assert "schema hash verified" in rows[1]["message"]


def test_production_restore_asks_first(project: Project, db: str) -> None:
    project.environment("production", pgconverge_databases=[{"name": "app", "url_env": "APP_URL"}],
                        pgconverge_confirm_restore=True)
    project.environment("seed", pgconverge_databases=[{"name": "app", "url_env": "APP_URL"}],
                        pgconverge_backup_dir="backups/production")
    assert project.pyinfra("seed", extra_env={"APP_URL": db}).rc == 0  # a converge that takes a backup
    assert tables(db) == {"items"}
    res = project.pyinfra("production", "restore.py", extra_env={"APP_URL": db})
    assert res.rc != 0, res
    assert "pgconverge_confirm=yes" in res.out
    assert tables(db) == {"items"}
    res = project.pyinfra("production", "restore.py", "--data", "pgconverge_confirm=yes", extra_env={"APP_URL": db})
    assert res.rc == 0, res
    assert tables(db) == set()
    assert runs(db)[-1]["outcome"] == "restored"


# --------------------------------------------------------------------------- restore drill


def test_restore_drill_checks_the_backup_against_the_ledger(project: Project, db: str, cluster) -> None:
    project.environment("staging", pgconverge_databases=[{"name": "app", "url_env": "APP_URL"}])
    project.write("sql/schema/05_legacy.sql", "CREATE TABLE legacy (id int PRIMARY KEY, note text);\n")
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("CREATE TABLE legacy (id int PRIMARY KEY, note text)")
        c.execute("INSERT INTO legacy VALUES (1, 'kept by the backup')")
    assert project.pyinfra("staging", extra_env={"APP_URL": db}).rc == 0
    res = project.pyinfra("staging", "drill.py", extra_env={"APP_URL": db})
    assert res.rc == 0, res
    assert "drill: PASSED" in res.out
    drill_row = runs(db)[-1]
    assert drill_row["action"] == "drill" and drill_row["outcome"] == "passed"
    assert drill_row["after_hash"] == runs(db)[0]["before_hash"]
    with psycopg.connect(cluster.conninfo()) as c:
        assert c.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'pgconverge_drill_%'").fetchone()[0] == 0

    # a ledger that disagrees with the backup fails the drill
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("UPDATE pgconverge.runs SET before_hash = 'not-the-hash' WHERE id = 1")
    res = project.pyinfra("staging", "drill.py", extra_env={"APP_URL": db})
    assert res.rc != 0, res
    assert "drill: FAILED" in res.out and runs(db)[-1]["outcome"] == "failed"


# --------------------------------------------------------------------------- preflight


@pytest.mark.parametrize("case", ["version", "extension", "space", "connect"])
def test_preflight_refusals_stop_before_any_change(project: Project, db: str, case: str) -> None:
    data: dict[str, Any] = {"pgconverge_databases": [{"name": "app", "url_env": "APP_URL"}]}
    url = db
    expect = {
        "version": "requires 99 or later",
        "extension": "extension no_such_extension is not available on the server",
        "space": "not enough room for the backup",
        "connect": "cannot connect to",
    }[case]
    if case == "version":
        data["pgconverge_min_server_version"] = 99
    elif case == "extension":
        data["pgconverge_required_extensions"] = ["no_such_extension"]
    elif case == "space":
        data["pgconverge_backup_space_factor"] = 1e15
    else:
        url = db.replace("dbname=", "dbname=no_such_db_")
    project.environment("staging", **data)
    res = project.pyinfra("staging", extra_env={"APP_URL": url})
    assert res.rc != 0, res
    assert expect in res.out
    assert "preflight failed, nothing was changed" in res.out
    assert tables(db) == set() and not has_ledger(db)


@pytest.fixture
def role_db(cluster):
    """(url over TCP with a password, password, role, dbname) for a fresh role owning a fresh database."""
    made: list[tuple[str, str]] = []

    def make(createdb: bool = True) -> tuple[str, str, str, str]:
        role, pw, name = f"pgc_role_{secrets.token_hex(4)}", secrets.token_hex(16), f"pgc_test_{secrets.token_hex(6)}"
        with psycopg.connect(cluster.conninfo(), autocommit=True) as c:
            c.execute(f"CREATE ROLE {role} LOGIN {'CREATEDB' if createdb else 'NOCREATEDB'} PASSWORD '{pw}'")
            c.execute(f"CREATE DATABASE {name} OWNER {role} TEMPLATE template0")
        made.append((role, name))
        return f"postgresql://{role}:{pw}@127.0.0.1:{cluster.port}/{name}", pw, role, name

    yield make
    with psycopg.connect(cluster.conninfo(), autocommit=True) as c:
        for role, name in made:
            c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            c.execute(f"DROP ROLE IF EXISTS {role}")


def test_preflight_refuses_a_role_without_createdb(project: Project, role_db) -> None:
    url, _pw, role, name = role_db(createdb=False)
    project.environment("staging", pgconverge_databases=[{"name": "app", "url_env": "APP_URL"}])
    res = project.pyinfra("staging", extra_env={"APP_URL": url})
    assert res.rc != 0, res
    assert f"role {role} cannot create the shadow database (no CREATEDB)" in res.out
    assert "pgconverge_shadow" in res.out
    assert tables(url) == set() and not has_ledger(url)


# --------------------------------------------------------------------------- secrets


def test_password_never_in_argv_output_json_or_ledger(project: Project, role_db) -> None:
    url, pw, _role, _name = role_db(createdb=True)
    project.environment("staging", pgconverge_databases=[{"name": "app", "url_env": "APP_URL"}])
    seen: list[str] = []
    stop = threading.Event()

    def sample() -> None:
        me = str(os.getpid())
        while not stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit() or pid == me:
                    continue
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                if cmdline:
                    seen.append(cmdline)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    try:
        dry = project.pyinfra("staging", "deploy.py", "--dry", "-vv", extra_env={"APP_URL": url})
        res = project.pyinfra("staging", "deploy.py", "--json", "-vv", extra_env={"APP_URL": url})
        drill = project.pyinfra("staging", "drill.py", "-vv", extra_env={"APP_URL": url})
        hist = project.cli("history", "--target", "env:APP_URL", "--json", extra_env={"APP_URL": url})
    finally:
        stop.set()
        watcher.join()
    assert dry.rc == 0 and res.rc == 0 and drill.rc == 0 and hist.rc == 0, (dry, res, drill, hist)
    assert tables(url) == {"items"}, "the converge ran over TCP with the password"
    assert any("psql" in c for c in seen) and any("pg_dump" in c for c in seen), "the sampler saw the tools"
    assert not [c for c in seen if pw in c], "a password in a process's argv"
    for p in (dry, res, drill, hist):
        assert pw not in p.out
    assert '"hosts"' in res.out or "{" in res.out  # the --json document is in the output
    ledger_text = str(runs(url))
    assert pw not in ledger_text and "converged" in ledger_text
    for f in (project.root / "plans").rglob("*"):
        if f.is_file():
            assert pw not in f.read_text()


def test_service_file_and_password_file(project: Project, role_db, cluster) -> None:
    url, pw, role, name = role_db(createdb=True)
    service_file = project.write("pg_service.conf", f"[app_svc]\nhost=127.0.0.1\nport={cluster.port}\n"
                                                    f"dbname={name}\nuser={role}\n")
    passfile = project.write("pgpass", f"127.0.0.1:{cluster.port}:*:{role}:{pw}\n")
    passfile.chmod(0o600)
    project.environment("staging", pgconverge_databases=[
        {"name": "app", "service": "app_svc", "passfile": str(passfile)}])
    res = project.pyinfra("staging", extra_env={"PGSERVICEFILE": str(service_file)})
    assert res.rc == 0, res
    assert tables(url) == {"items"} and runs(url)[0]["outcome"] == "converged"
    assert pw not in res.out


# --------------------------------------------------------------------------- the production gate


def gate_project(project: Project, staging: str, production: str, signing_keys=None) -> dict[str, str]:
    project.environment("staging", pgconverge_databases=[{"name": "app", "url_env": "STAGING_URL"}],
                        pgconverge_verify_unchanged=True)
    project.environment("production", pgconverge_databases=[{"name": "app", "url_env": "PROD_URL"}],
                        pgconverge_require_signoff=True, pgconverge_signoff_file="signoffs/production.yml",
                        pgconverge_signoff_from="staging")
    if signing_keys:
        project.write("signoffs/allowed_signers", signing_keys["alice"].allowed_line())
    return {"STAGING_URL": staging, "PROD_URL": production}


def sign_off(project: Project, env: dict[str, str], key, *args: str) -> Proc:
    return project.cli("signoff", "--key", str(key.key), *args, extra_env=env)


def refused_unchanged(project: Project, env: dict[str, str], expected: str) -> None:
    """A production deploy refused by the gate, naming the file and the reason: nothing changed, no
    backup taken, no ledger row."""
    res = project.pyinfra("production", extra_env=env)
    assert res.rc != 0, res
    assert "the production gate refused, nothing was changed" in res.out, res
    assert expected in res.out, res
    assert tables(env["PROD_URL"]) == set() and not has_ledger(env["PROD_URL"])
    assert backups_in(project, "production", "app") == []


def test_gate_refuses_without_signoff_and_signoff_needs_staging_evidence(project: Project, make_db,
                                                                          signing_keys) -> None:
    env = gate_project(project, make_db(), make_db(), signing_keys)
    refused_unchanged(project, env, "no sign-off at signoffs/production.yml")
    # staging has not converged: no sign-off can be written
    so = sign_off(project, env, signing_keys["alice"])
    assert so.rc == 3, so
    assert "staging app is not converged" in so.out
    assert not (project.root / "signoffs" / "production.yml").exists()
    # a typed approver name is no longer a sign-off
    so = project.cli("signoff", "--approver", "alice", extra_env=env)
    assert so.rc == 1 and "--approver is gone" in so.out, so


def test_gate_happy_path_then_stale_and_drifted_signoffs(project: Project, make_db, signing_keys) -> None:
    env = gate_project(project, make_db(), make_db(), signing_keys)
    assert project.pyinfra("staging", extra_env=env).rc == 0
    so = sign_off(project, env, signing_keys["alice"])
    assert so.rc == 0, so
    assert "signed by alice@example.com" in so.out and str(signing_keys["alice"].key) not in so.out
    doc = yaml.safe_load((project.root / "signoffs" / "production.yml").read_text())
    assert (project.root / "signoffs" / "production.yml.sig").read_text().startswith("-----BEGIN SSH SIGNATURE")
    assert doc["format"] == "pgconverge-signoff/2" and doc["environment"] == "production" and doc["approved_at"]
    assert "approver" not in doc  # the approver is the key's principal, not a typed name
    assert doc["policy"]["allow_hazards"] == sorted(ALL["pgconverge_allow_hazards"])
    [entry] = doc["databases"]
    assert entry["database"] == "app" and entry["steps"] > 0 and "extension_change" in entry["hazards"]
    [evidence] = doc["staging"]["runs"]
    assert evidence["outcome"] == "converged" and evidence["smoke"] == "1/1 passed"
    assert evidence["smoke_sha256"] == doc["smoke_hash"]
    assert evidence["after_hash"] and evidence["run_id"] == runs(env["STAGING_URL"])[0]["id"]
    assert project.cli("signoff", "--verify", extra_env=env).rc == 0

    # production drifted after the sign-off: refused, unchanged
    with psycopg.connect(env["PROD_URL"], autocommit=True) as c:
        c.execute("CREATE TABLE hotfix (id int)")
    res = project.pyinfra("production", extra_env=env)
    assert res.rc != 0, res
    assert "app drifted: its schema is not the one the plan was signed for" in res.out
    assert tables(env["PROD_URL"]) == {"hotfix"} and not has_ledger(env["PROD_URL"])
    verify = project.cli("signoff", "--verify", extra_env=env)
    assert verify.rc == 3 and "production app: REFUSED: app drifted" in verify.out, verify
    with psycopg.connect(env["PROD_URL"], autocommit=True) as c:
        c.execute("DROP TABLE hotfix")

    # the happy path: the sign-off matches, and so does staging's ledger
    res = project.pyinfra("production", extra_env=env)
    assert res.rc == 0, res
    assert "gate: signed off by alice@example.com (key SHA256:" in res.out
    assert "staging evidence matches staging's ledger (app run #" in res.out
    assert tables(env["PROD_URL"]) == {"items"}
    assert runs(env["PROD_URL"])[-1]["outcome"] == "converged"

    # sql/ changes after the sign-off: the old sign-off is stale
    project.write("sql/schema/10_more.sql", "CREATE TABLE more_items (id int PRIMARY KEY);\n")
    res = project.pyinfra("production", extra_env=env)
    assert res.rc != 0, res
    assert "is stale: sql/ changed since" in res.out
    assert tables(env["PROD_URL"]) == {"items"}
    # ... and the evidence for a new one is missing until staging converges to it
    so = sign_off(project, env, signing_keys["alice"])
    assert so.rc == 3, so
    assert project.pyinfra("staging", extra_env=env).rc == 0
    assert sign_off(project, env, signing_keys["alice"]).rc == 0
    res = project.pyinfra("production", extra_env=env)
    assert res.rc == 0, res
    assert tables(env["PROD_URL"]) == {"items", "more_items"}


def test_gate_refuses_forged_tampered_and_stale_signoffs(project: Project, make_db, signing_keys) -> None:
    """Every way a sign-off can fail to cover the deploy, through pyinfra: exit non-zero, nothing changed,
    no backup, no ledger row, a message naming the file and the reason."""
    env = gate_project(project, make_db(), make_db(), signing_keys)
    assert project.pyinfra("staging", extra_env=env).rc == 0
    assert sign_off(project, env, signing_keys["alice"]).rc == 0
    path = project.root / "signoffs" / "production.yml"
    sig = project.root / "signoffs" / "production.yml.sig"
    good_text, good_sig = path.read_text(), sig.read_bytes()

    def restore() -> None:
        path.write_text(good_text)
        sig.write_bytes(good_sig)

    # unsigned: the right hashes, written by hand, without a signature
    sig.unlink()
    refused_unchanged(project, env, "signoffs/production.yml is not signed: there is no signature at "
                                    "signoffs/production.yml.sig")
    # tampered: a widened policy edited into the signed file
    restore()
    path.write_text(good_text.replace("  drops: []", "  drops:\n  - '*'"))
    refused_unchanged(project, env, "the signature signoffs/production.yml.sig does not match signoffs/production.yml")
    # a key that is not in allowed_signers
    restore()
    sshsig.sign(signing_keys["mallory"].key, path)
    refused_unchanged(project, env, "signoffs/production.yml is signed by a key that is not in "
                                    "signoffs/allowed_signers")
    # stale: the smoke checks were edited after the sign-off
    restore()
    project.write("sql/smoke/20_more.sql", "SELECT true;\n")
    refused_unchanged(project, env, "is stale: the smoke checks changed since")
    (project.root / "sql" / "smoke" / "20_more.sql").unlink()
    # stale: production's policy was widened after the sign-off
    group = project.root / "group_data" / "production.py"
    policy_text = group.read_text()
    group.write_text(policy_text + "pgconverge_allow_hazards = " + repr(ALL["pgconverge_allow_hazards"] + ["deletes_data"])
                     + "\n")
    refused_unchanged(project, env, "is stale: the production policy changed since")
    group.write_text(policy_text)
    # the staging evidence does not match staging's ledger any more
    [staged] = runs(env["STAGING_URL"])
    with psycopg.connect(env["STAGING_URL"], autocommit=True) as c:
        c.execute("UPDATE pgconverge.runs SET outcome = 'failed' WHERE id = %s", (staged["id"],))
    refused_unchanged(project, env, f"does not match staging's ledger: staging app run #{staged['id']}: "
                                    "outcome 'converged' now 'failed'")
    verify = project.cli("signoff", "--verify", extra_env=env)
    assert verify.rc == 3 and "does not match staging's ledger" in verify.out, verify
    with psycopg.connect(env["STAGING_URL"], autocommit=True) as c:
        c.execute("UPDATE pgconverge.runs SET outcome = 'converged' WHERE id = %s", (staged["id"],))
    # staging unreachable: the signature alone carries the deploy, and the output says so
    res = project.pyinfra("production", extra_env={**env, "STAGING_URL": "postgresql:///nowhere?host=/nonexistent"})
    assert res.rc == 0, res
    assert "staging evidence not checked against staging's ledger (staging app unreachable" in res.out
    assert tables(env["PROD_URL"]) == {"items"}


# --------------------------------------------------------------------------- fleets


def test_two_databases_on_one_host(project: Project, make_db) -> None:
    a, b = make_db(), make_db()
    project.environment("staging", pgconverge_databases=[{"name": "orders", "url_env": "A_URL"},
                                                         {"url_env": "B_URL"}])
    res = project.pyinfra("staging", extra_env={"A_URL": a, "B_URL": b})
    assert res.rc == 0, res
    assert tables(a) == tables(b) == {"items"}
    assert runs(a)[0]["target"] == "orders" and runs(b)[0]["target"] == dbname(b)
    assert len(backups_in(project, "staging", "orders")) == 1
    assert len(backups_in(project, "staging", dbname(b))) == 1
    # a restore picks one database of the host
    res = project.pyinfra("staging", "restore.py", "--data", "pgconverge_database=orders",
                          extra_env={"A_URL": a, "B_URL": b})
    assert res.rc == 0, res
    assert tables(a) == set() and tables(b) == {"items"}
    assert [r["action"] for r in runs(b)] == ["deploy"]


def test_two_hosts_converge_in_one_run(project: Project, make_db) -> None:
    a, b = make_db(), make_db()
    hosts = [("@pglocal/a", {"pgconverge_databases": [{"name": "a", "url_env": "A_URL"}]}),
             ("@pglocal/b", {"pgconverge_databases": [{"name": "b", "url_env": "B_URL"}]})]
    project.environment("staging", hosts=hosts)
    res = project.pyinfra("staging", extra_env={"A_URL": a, "B_URL": b})
    assert res.rc == 0, res
    assert tables(a) == tables(b) == {"items"}
    assert runs(a)[0]["host"] == "@pglocal/a" and runs(b)[0]["host"] == "@pglocal/b"
    # one host failing does not stop the other
    c = make_db()
    project.environment("staging", hosts=[
        ("@pglocal/a", {"pgconverge_databases": [{"name": "a", "url_env": "A_URL"}],
                        "pgconverge_min_server_version": 99}),
        ("@pglocal/c", {"pgconverge_databases": [{"name": "c", "url_env": "C_URL"}]})])
    res = project.pyinfra("staging", extra_env={"A_URL": make_db(), "C_URL": c})
    assert res.rc != 0, res
    assert tables(c) == {"items"}


def test_deleting_data_without_a_backup_is_refused(project: Project, db: str) -> None:
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("CREATE TABLE legacy (id int); INSERT INTO legacy VALUES (1)")
    project.environment("staging", pgconverge_databases=[{"name": "app", "url_env": "APP_URL"}],
                        pgconverge_backup=False, pgconverge_drops=["table:public.legacy"],
                        pgconverge_allow_hazards=ALL["pgconverge_allow_hazards"] + ["deletes_data"])
    res = project.pyinfra("staging", extra_env={"APP_URL": db})
    assert res.rc != 0
    assert "deletes data but backups are off" in res.out
    assert tables(db) == {"legacy"}  # nothing ran: not even the new table


# --------------------------------------------------------------------------- drift policy


def test_production_reports_a_hotfix_by_default(project: Project, db: str) -> None:
    """A hotfix column, an extra index and an extra table added by hand on production do not block
    the deploy: production's default pgconverge_unmanaged = report leaves them alone and lists them
    in the output, the plan files and the ledger row."""
    project.environment("production", pgconverge_databases=[{"name": "app", "url_env": "APP_URL"}])
    assert project.pyinfra("production", extra_env={"APP_URL": db}).rc == 0
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("ALTER TABLE items ADD COLUMN hotfix text")
        c.execute("CREATE INDEX items_hotfix_idx ON items (hotfix)")
        c.execute("CREATE TABLE audit_tmp (id int)")
    project.write("sql/schema/00_schema.sql", SCHEMA + "CREATE TABLE notes (id int PRIMARY KEY);\n")
    res = project.pyinfra("production", extra_env={"APP_URL": db})
    assert res.rc == 0, res
    assert "unmanaged: column public.items.hotfix: not in sql/, left alone" in res.out
    assert tables(db) >= {"items", "notes", "audit_tmp"}
    with psycopg.connect(db) as c:
        assert c.execute("SELECT to_regclass('public.items_hotfix_idx') IS NOT NULL").fetchone() == (True,)
    last = runs(db)[-1]
    assert last["outcome"] == "converged"
    assert {(u["kind"], u["name"]) for u in last["plan"]["unmanaged"]} == {
        ("column", "public.items.hotfix"), ("index", "public.items_hotfix_idx"), ("table", "public.audit_tmp")}
    md = sorted((project.root / "plans" / "production" / "app").glob("*.md"))[-1].read_text()
    assert "## Not in sql/ (pgconverge_unmanaged = report)" in md and "table public.audit_tmp" in md
    # a second deploy has nothing to do, the objects are still there; staging would refuse them
    again = project.pyinfra("production", "deploy.py", "--dry", extra_env={"APP_URL": db})
    assert again.rc == 0 and "-- no changes" in again.out and "unmanaged: table public.audit_tmp" in again.out
    assert "audit_tmp" in tables(db)
    refuse = project.cli("plan", "--env", "production", "--data", "pgconverge_unmanaged=refuse",
                         extra_env={"APP_URL": db})
    assert refuse.rc == 3, refuse
    assert "refused by policy" in refuse.out and "-- @drop <kind> <name>" in refuse.out
    assert "set pgconverge_unmanaged" in refuse.out
