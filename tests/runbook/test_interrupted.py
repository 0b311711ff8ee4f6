"""kill -9 at random points of real runs (the pyinfra deploy and the CLI), with a real role and
password over TCP: afterwards no file on disk and no child's environment held the password, the
children stopped, and the next run marks the row left ``running`` as ``interrupted``.
"""

from __future__ import annotations

from tests.waiting import wait_for  # noqa: E402
import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import pytest

from test_environments import PGCONVERGE, PYINFRA, Project, runs, tables

REPO = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".venv", ".git", "data", "__pycache__"}
# a smoke check that takes a while: the run stays `running` long enough to be killed in it
SLOW_SMOKE = "SELECT pg_sleep(1.5) IS NOT NULL AND to_regclass('public.items') IS NOT NULL;\n"


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pgconverge-home")


@pytest.fixture
def project(tmp_path: Path, home: Path) -> Project:
    return Project(tmp_path, home)


@pytest.fixture
def role_db(cluster):
    """(url over TCP with a password, password, dbname) of a fresh role owning a fresh database."""
    import secrets

    role, name = f"pgc_role_{secrets.token_hex(4)}", f"pgc_test_{secrets.token_hex(6)}"
    pw = secrets.token_hex(16)
    with psycopg.connect(cluster.conninfo(), autocommit=True) as c:
        c.execute(f"CREATE ROLE {role} LOGIN CREATEDB PASSWORD '{pw}'")
        c.execute(f"CREATE DATABASE {name} OWNER {role} TEMPLATE template0")
    yield f"postgresql://{role}:{pw}@127.0.0.1:{cluster.port}/{name}", pw, name
    with psycopg.connect(cluster.conninfo(), autocommit=True) as c:
        for db in c.execute("SELECT datname FROM pg_database WHERE datdba = (SELECT oid FROM pg_roles "
                            "WHERE rolname = %s)", (role,)).fetchall():
            c.execute(f'DROP DATABASE IF EXISTS "{db[0]}" WITH (FORCE)')
        c.execute(f"DROP ROLE IF EXISTS {role}")


class EnvironSampler:
    """Reads every process's /proc/<pid>/environ while runs go on, except this test's own process
    and the runs it started (given the variable on purpose): what children inherited."""

    def __init__(self, secret: str):
        self.secret = secret.encode()
        self.excluded = {os.getpid()}
        self.commands: set[str] = set()  # the command lines of the runs it started
        self._hits: list[tuple[int, str]] = []
        self.seen = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit() or int(pid) in self.excluded:
                    continue
                try:
                    before = Path(f"/proc/{pid}/cmdline").read_bytes()
                    env = Path(f"/proc/{pid}/environ").read_bytes()
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if not cmd or cmd != before:
                    # it exec'd or exited between the reads (a run's fork turning into its tool, or
                    # gone): the environment read belongs to a process the command line no longer names
                    continue
                if b"psql" in cmd or b"pg_dump" in cmd:
                    self.seen += 1
                if self.secret in env:
                    self._hits.append((int(pid), cmd.replace(b"\0", b" ").decode(errors="replace")))

    @property
    def hits(self) -> list[str]:
        # filtered now: a run's pid is excluded only once Popen returned, the sampler may be quicker
        # a process still showing a run's own command line is that run, or a fork of it before its
        # exec (subprocess forks, then execs the tool with the clean environment): not an inheritor
        return [cmd for pid, cmd in self._hits if pid not in self.excluded and not any(cmd.rstrip().endswith(c) for c in self.commands)]

    def __enter__(self) -> EnvironSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def files_holding(secret: str, *roots: Path) -> list[str]:
    found, needle = [], secret.encode()
    for root in roots:
        for dirpath, dirs, names in os.walk(root, onerror=lambda e: None):
            dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
            for n in names:
                p = Path(dirpath, n)
                try:
                    if p.is_file() and not p.is_symlink() and needle in p.read_bytes():
                        found.append(str(p))
                except OSError:
                    continue
    return found


def backends(admin: str, dbname: str) -> int:
    with psycopg.connect(admin, autocommit=True) as c:
        return c.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                         (dbname,)).fetchone()[0]




def start(cmd: list[str], project: Project, url: str, sampler: EnvironSampler) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, cwd=project.root, env={**project.env, "APP_URL": url}, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sampler.excluded.add(proc.pid)
    sampler.commands.add(" ".join([Path(cmd[0]).name, *cmd[1:]]))
    return proc


def running_rows(url: str) -> list[dict]:
    return [r for r in runs(url) if r["outcome"] == "running"]


def test_kill_9_of_deploys_leaves_no_password_and_the_next_run_marks_the_row_interrupted(
        project: Project, role_db, cluster, home) -> None:
    url, pw, name = role_db
    project.environment("staging", pgconverge_databases=[{"name": "app", "url_env": "APP_URL"}])
    project.write("sql/smoke/20_slow.sql", SLOW_SMOKE)
    admin = cluster.conninfo()
    rng = random.Random(20251002)
    cmd = [PYINFRA, "-y", "inventory/staging.py", "deploy.py"]
    killed_in_run = []
    with EnvironSampler(pw) as sampler:
        for trial in range(4):
            if trial:  # the next deploy has something to do again
                with psycopg.connect(url, autocommit=True) as c:
                    c.execute("DROP TABLE IF EXISTS items")
            proc = start(cmd, project, url, sampler)
            if trial < 3:
                time.sleep(rng.uniform(0.3, 6.0))  # anywhere: preflight, plan, backup, converge, smoke
            else:  # certainly inside the run: its ledger row is there
                wait_for(lambda: proc.poll() is not None or bool(running_rows(url)), "a running ledger row")
            alive = proc.poll() is None
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            if alive and running_rows(url):
                killed_in_run.append(proc.pid)
            # the psql and pg_dump it had started stop (they would run their scripts on otherwise)
            wait_for(lambda: backends(admin, name) == 0, "the killed run's backends gone")
            # the host wrapper removes its password file once its tool is gone (it may outlive psql by a moment)
            wait_for(lambda: files_holding(pw, Path("/tmp"), project.root, home, REPO) == [],
                     f"trial {trial}: no file holds the password")
        assert sampler.hits == [], "a child inherited the password"
    assert sampler.seen, "the sampler saw the tools"
    assert killed_in_run, "at least one kill landed inside a run"
    left = running_rows(url)
    assert {r["owner"]["pid"] for r in left} <= set(killed_in_run) and left

    res = project.pyinfra("staging", extra_env={"APP_URL": url})
    assert res.rc == 0, res
    assert tables(url) == {"items"}
    rows = {r["id"]: r for r in runs(url)}
    for r in left:
        row = rows[r["id"]]
        assert row["outcome"] == "interrupted" and row["finished_at"], row
        assert f"interrupted: process {r['owner']['pid']} on " in row["message"]
        assert "found by a deploy from" in row["message"] and "schema " in row["message"]
        assert row["after_hash"], "what the next run found is recorded"
        assert f"ledger: run #{r['id']} interrupted" in res.out
    assert not running_rows(url) and pw not in res.out
    assert files_holding(pw, Path("/tmp"), project.root, home) == []


def test_a_running_row_of_a_live_process_or_another_machine_is_left_alone(project: Project, role_db) -> None:
    url, _pw, _name = role_db
    project.environment("staging", pgconverge_databases=[{"name": "app", "url_env": "APP_URL"}])
    assert project.pyinfra("staging", extra_env={"APP_URL": url}).rc == 0
    sleeper = subprocess.Popen(["sleep", "600"])
    try:
        with psycopg.connect(url, autocommit=True) as c:
            for owner in ('{"machine": "elsewhere.example", "pid": 1234}',
                          '{"machine": "%s", "pid": %d}' % (os.uname().nodename, sleeper.pid)):
                c.execute("INSERT INTO pgconverge.runs (action, environment, actor, outcome, owner) "
                          "VALUES ('deploy', 'staging', 'x', 'running', %s::jsonb)", (owner,))
            c.execute("DROP TABLE items")
        res = project.pyinfra("staging", extra_env={"APP_URL": url})
        assert res.rc == 0, res
        assert [r["owner"]["machine"] for r in running_rows(url)] == ["elsewhere.example", os.uname().nodename]
    finally:
        sleeper.kill()
        sleeper.wait()


def test_kill_9_of_cli_applies_leaves_no_password(project: Project, role_db, cluster, home) -> None:
    url, pw, name = role_db
    admin = cluster.conninfo()
    rng = random.Random(7)
    cmd = [PGCONVERGE, "apply", "--target", "env:APP_URL", "--sql", "sql/schema", "--allow-hazards", "all"]
    with EnvironSampler(pw) as sampler:
        for trial in range(5):
            with psycopg.connect(url, autocommit=True) as c:
                c.execute("DROP TABLE IF EXISTS items")
            proc = start(cmd, project, url, sampler)
            time.sleep(rng.uniform(0.2, 2.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            wait_for(lambda: backends(admin, name) == 0, "the killed run's backends gone")
            # the host wrapper removes its password file once its tool is gone (it may outlive psql by a moment)
            wait_for(lambda: files_holding(pw, Path("/tmp"), project.root, home, REPO) == [],
                     f"trial {trial}: no file holds the password")
        assert sampler.hits == [], "a child inherited the password"
    assert sampler.seen, "the sampler saw psql"
    res = project.cli("apply", "--target", "env:APP_URL", "--sql", "sql/schema", "--allow-hazards", "all",
                      extra_env={"APP_URL": url})
    assert res.rc == 0 and tables(url) == {"items"}, res
