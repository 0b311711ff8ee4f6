"""Secrets and stray children, against the embedded PostgreSQL with a real role and password over TCP
(scram-sha-256): no password on disk or in a child's environment, a URL variable not inherited,
password files removed once connected and swept after a kill -9, psql stopped when its parent dies,
clear errors for an unknown option and a wrong password.
"""

from __future__ import annotations

from tests.waiting import wait_for  # noqa: E402
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import psycopg
import pytest

from pgconverge.exec.runner import Conn, ConnectionSettingError, LocalRunner, PsqlError, conn_from_spec
from pgconverge.exec.secrets import child_environment, password_file, sweep_stale
from pgconverge.runbook.shell import ShellRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runbook"))
from localshell import LocalShell  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def role_url(cluster):
    """A URL over TCP with a password (it holds ':' and '@', which URLs and password files escape)
    for a fresh role owning a fresh database; yields (url, password, role, dbname)."""
    role, name = f"pgc_role_{secrets.token_hex(4)}", f"pgc_test_{secrets.token_hex(6)}"
    pw = f"pw:{secrets.token_hex(12)}@x"
    with psycopg.connect(cluster.conninfo(), autocommit=True) as c:
        c.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
            psycopg.sql.Identifier(role), psycopg.sql.Literal(pw)))
        c.execute(psycopg.sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0").format(
            psycopg.sql.Identifier(name), psycopg.sql.Identifier(role)))
    quoted = pw.replace(":", "%3A").replace("@", "%40")
    yield f"postgresql://{role}:{quoted}@127.0.0.1:{cluster.port}/{name}", pw, role, name
    with psycopg.connect(cluster.conninfo(), autocommit=True) as c:
        c.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psycopg.sql.Identifier(name)))
        c.execute(psycopg.sql.SQL("DROP ROLE IF EXISTS {}").format(psycopg.sql.Identifier(role)))


# the virtualenv and git objects; a cluster's data dir holds only the role's SCRAM verifier
SKIP_DIRS = {".venv", ".git", "data", "__pycache__"}


def files_holding(secret: str, *roots: Path) -> list[str]:
    """Regular files under `roots` whose bytes contain `secret`."""
    found = []
    needle = secret.encode()
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


def environ_holding(secret: str) -> list[str]:
    """Processes whose environment contains `secret` (other than this test process)."""
    hits = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            if secret.encode() in Path(f"/proc/{pid}/environ").read_bytes():
                hits.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return hits


def child_pids() -> list[str]:
    out = []
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and f"PPid:\t{os.getpid()}\n" in Path(f"/proc/{pid}/status").read_text():
                out.append(pid)
        except OSError:
            continue
    return out


def backend_running(admin: str, dbname: str, like: str) -> bool:
    with psycopg.connect(admin, autocommit=True) as c:
        return c.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND state = 'active' "
                         "AND query LIKE %s", (dbname, like)).fetchone()[0] > 0


def backends(admin: str, dbname: str) -> int:
    with psycopg.connect(admin, autocommit=True) as c:
        return c.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                         (dbname,)).fetchone()[0]




def while_sleeping(run, admin: str, dbname: str, check) -> None:
    """Run `run()` (a call that sleeps on the server) in a thread; call `check()` while it sleeps."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            run()
        except BaseException as e:  # reported below
            errors.append(e)

    t = threading.Thread(target=target)
    t.start()
    try:
        wait_for(lambda: backend_running(admin, dbname, "%pg_sleep%") or not t.is_alive(), "psql connected")
        assert t.is_alive(), errors
        check()
    finally:
        t.join()
    assert not errors, errors


# --------------------------------------------------------------------------- no file, no inherited secret


def test_local_psql_reads_its_password_from_memory_not_from_a_file_or_its_environment(role_url, cluster, tmp_path,
                                                                                       monkeypatch):
    url, pw, role, name = role_url
    monkeypatch.setenv("SOME_OTHER_NAME_FOR_THE_URL", url)  # exported by the caller under any name
    runner = LocalRunner(url)
    assert runner.query_json("SELECT to_json(current_user)") == role, "connected with the password"

    def check() -> None:
        children = child_pids()
        psqls = [p for p in children if b"psql" in Path(f"/proc/{p}/cmdline").read_bytes()]
        assert psqls, f"the psql child is running: {children}"
        env = Path(f"/proc/{psqls[0]}/environ").read_bytes().split(b"\0")
        passfile = [e for e in env if e.startswith(b"PGPASSFILE=")]
        assert passfile and passfile[0].startswith(b"PGPASSFILE=/proc/self/fd/"), passfile
        assert not any(e.startswith(b"SOME_OTHER_NAME_FOR_THE_URL=") for e in env)
        assert environ_holding(pw) == [], "a child inherited the password"
        assert files_holding(pw, Path("/tmp"), tmp_path, REPO) == []

    while_sleeping(lambda: runner.run_script("SELECT pg_sleep(3);"), cluster.conninfo(), name, check)


def test_a_url_variable_is_taken_out_of_the_environment_and_still_serves_later_calls(role_url, monkeypatch):
    url, pw, role, _name = role_url
    monkeypatch.setenv("PGC_SECRET_URL", url)
    conn = conn_from_spec({"url_env": "PGC_SECRET_URL", "name": "app"})
    assert conn.password == pw and "PGC_SECRET_URL" not in os.environ
    again = conn_from_spec({"url_env": "PGC_SECRET_URL"})  # the body of an operation runs twice
    assert again.password == pw
    assert LocalRunner(again).query_json("SELECT to_json(current_user)") == role
    env = child_environment(conn.env, conn.password)
    assert pw not in "".join(env.values()) and env["PGUSER"] == role
    monkeypatch.setenv("PGC_SECRET_URL", url.replace(role, "someone_else", 1))  # set anew: the new value wins
    assert conn_from_spec({"url_env": "PGC_SECRET_URL"}).env["PGUSER"] == "someone_else"
    monkeypatch.setenv("PGC_PLAIN_URL", "postgresql://someone@db.example/app")  # no secret: left for the user
    assert conn_from_spec({"url_env": "PGC_PLAIN_URL"}).env["PGUSER"] == "someone"
    assert os.environ["PGC_PLAIN_URL"] == "postgresql://someone@db.example/app"
    with pytest.raises(ValueError, match="PGC_UNSET_URL .named by url_env. is not set"):
        conn_from_spec({"url_env": "PGC_UNSET_URL"})


def test_host_password_file_is_removed_once_psql_has_connected(role_url, cluster, tmp_path, monkeypatch):
    url, pw, role, name = role_url
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the wrapper's password files go here
    runner = ShellRunner(LocalShell(), Conn.parse(url))
    assert runner.query_json("SELECT to_json(current_user)") == role

    def check() -> None:
        # connected: the file is gone while psql still runs
        wait_for(lambda: not list(tmp_path.glob("pgconverge-*.pgpass")), "the password file removed")
        assert files_holding(pw, Path("/tmp"), tmp_path, REPO) == []
        assert environ_holding(pw) == []

    while_sleeping(lambda: runner.run_script("SELECT pg_sleep(3);"), cluster.conninfo(), name, check)
    rc, out, err = runner.exec_tool("pg_dump", ["--schema-only"])
    assert rc == 0 and "PostgreSQL database dump" in out, err
    assert not list(tmp_path.iterdir()) and files_holding(pw, Path("/tmp"), tmp_path) == []


def test_stale_password_files_of_dead_processes_are_swept_locally_and_on_hosts(role_url, tmp_path, monkeypatch):
    url, _pw, role, _name = role_url
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f"pgconverge-{dead.pid}-abcdef.pgpass"
    live = tmp_path / f"pgconverge-{os.getppid()}-abcdef.pgpass"
    legacy_old = tmp_path / "pgconverge-k3j2h1g0.pgpass"
    legacy_new = tmp_path / "pgconverge-a1b2c3d4.pgpass"
    other = tmp_path / "unrelated-1-x.pgpass"
    for p in (stale, live, legacy_old, legacy_new, other):
        p.write_text("*:*:*:*:old\n")
    os.utime(legacy_old, (0, 0))
    assert sorted(sweep_stale(str(tmp_path))) == sorted([str(stale), str(legacy_old)])
    assert live.exists() and legacy_new.exists() and other.exists()

    stale.write_text("*:*:*:*:old\n")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    runner = ShellRunner(LocalShell(), Conn.parse(url))
    assert runner.query_json("SELECT to_json(current_user)") == role
    assert not stale.exists(), "the host wrapper sweeps files whose creating shell is gone"
    assert live.exists() and other.exists()


def test_without_memfd_the_password_file_is_named_after_its_creator_and_removed(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    handle = password_file("pw:with\\specials", use_memfd=False)
    path = Path(handle.path)
    assert path.parent == tmp_path and path.name.startswith(f"pgconverge-{os.getpid()}-")
    assert path.stat().st_mode & 0o077 == 0 and path.read_text() == "*:*:*:*:pw\\:with\\\\specials\n"
    handle.remove()
    assert not path.exists()


# --------------------------------------------------------------------------- a psql whose parent died

CHILD = """
import sys
sys.path.insert(0, {runbook!r})
from pgconverge.exec.runner import Conn, LocalRunner
from pgconverge.runbook.shell import ShellRunner
from localshell import LocalShell
url, via = sys.argv[1], sys.argv[2]
runner = LocalRunner(url) if via == "local" else ShellRunner(LocalShell(), Conn.parse(url))
# no output before the second insert: a write to the dead parent's pipe does not stop psql here
runner.run_script("CREATE TABLE marks (n int);\\nINSERT INTO marks VALUES (1);\\n"
                  "DO $$ BEGIN PERFORM pg_sleep(4); END $$;\\nINSERT INTO marks VALUES (2);\\n")
"""


@pytest.mark.parametrize("via", ["local", "host"])
def test_psql_stops_its_script_when_its_parent_is_killed(via, role_url, cluster, tmp_path):
    url, pw, _role, name = role_url
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD.format(runbook=str(REPO / "tests" / "runbook"))))
    proc = subprocess.Popen([sys.executable, str(script), url, via], cwd=REPO,
                            env={**os.environ, "TMPDIR": str(tmp_path)})
    admin = cluster.conninfo()
    wait_for(lambda: backend_running(admin, name, "%pg_sleep(4)%") or proc.poll() is not None, "the first sleep")
    assert proc.poll() is None, "the child died before the kill"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # the psql goes away; without the parent-death signal it would sleep on and insert 2
    wait_for(lambda: backends(admin, name) == 0, "psql's backend gone")
    with psycopg.connect(url) as c:
        assert [r[0] for r in c.execute("SELECT n FROM marks ORDER BY n")] == [1]
    assert files_holding(pw, Path("/tmp"), tmp_path) == []


# --------------------------------------------------------------------------- clear errors


@pytest.mark.parametrize("target, expect", [
    ("postgresql://u:hunter2secret@127.0.0.1:5432/app?foo=1", "connection option 'foo' is not supported"),
    ("host=127.0.0.1 bogus=1 password=hunter2secret", "connection option 'bogus' is not supported"),
    ("host=127.0.0.1 keepalives=1 password=hunter2secret", "connection option 'keepalives' is not supported"),
    ("host=127.0.0.1 password='hunter2secret", "is not a valid libpq connection string or URL"),
])
def test_an_unknown_or_malformed_connection_option_is_a_message(target, expect, tmp_path):
    with pytest.raises(ConnectionSettingError, match=expect) as e:
        Conn.parse(target, "--target")
    assert "hunter2secret" not in str(e.value) and str(e.value).startswith("--target")
    sql = tmp_path / "a.sql"
    sql.write_text("CREATE TABLE t (id int);\n")
    res = subprocess.run([str(Path(sys.executable).parent / "pgconverge"), "plan", "--target", target, "--sql", str(sql)],
                         capture_output=True, text=True)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert expect in res.stderr and "hunter2secret" not in res.stderr + res.stdout
    with pytest.raises(ConnectionSettingError, match="unknown connection setting 'hots'"):
        conn_from_spec({"hots": "db.example", "dbname": "app"}, "pgconverge_databases[0]")


@pytest.mark.parametrize("via", ["local", "host"])
def test_a_wrong_password_names_the_host_and_the_user_never_the_password(via, role_url, cluster):
    url, pw, role, name = role_url
    wrong = url.replace(pw.replace(":", "%3A").replace("@", "%40"), "not-the-password-zz9")
    runner = LocalRunner(wrong) if via == "local" else ShellRunner(LocalShell(), Conn.parse(wrong))
    with pytest.raises(PsqlError) as e:
        runner.query_json("SELECT 1")
    msg = str(e.value)
    assert f"cannot connect to database {name} on host 127.0.0.1, port {cluster.port} as user {role}" in msg
    assert "password authentication failed" in msg and "the password was refused" in msg
    assert "not-the-password-zz9" not in msg and pw not in msg
    assert e.value.sqlstate == "28P01"
