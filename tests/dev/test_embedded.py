from __future__ import annotations

import os
import pwd
import secrets
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from pgconverge.dev.embedded import Cluster, EmbeddedError, find_bindir

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def private_cluster() -> Iterator[Cluster]:
    """A throwaway cluster, so stopping it does not disturb the session's shared one."""
    c = Cluster(REPO / ".pgconverge" / f"test-private-{secrets.token_hex(4)}")
    try:
        yield c
    finally:
        c.destroy()


def test_server_version_is_15_or_higher(conn: psycopg.Connection) -> None:
    version = conn.execute("SELECT version()").fetchone()[0]
    assert version.startswith("PostgreSQL ")
    assert int(conn.execute("SHOW server_version_num").fetchone()[0]) >= 150000


def test_connects_over_unix_socket(conn: psycopg.Connection) -> None:
    # inet_server_addr() is NULL on a unix-socket connection.
    assert conn.execute("SELECT inet_server_addr()").fetchone()[0] is None


def test_databases_are_independent(make_db: Callable[[], str]) -> None:
    a, b = make_db(), make_db()
    assert a != b
    with psycopg.connect(a, autocommit=True) as ca, psycopg.connect(b, autocommit=True) as cb:
        ca.execute("CREATE TABLE only_in_a (id int)")
        assert ca.execute("SELECT to_regclass('only_in_a')").fetchone()[0] is not None
        assert cb.execute("SELECT to_regclass('only_in_a')").fetchone()[0] is None
        assert ca.execute("SELECT current_database()").fetchone()[0] != cb.execute(
            "SELECT current_database()"
        ).fetchone()[0]


def test_fresh_database_is_empty(conn: psycopg.Connection) -> None:
    count = conn.execute(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
    ).fetchone()[0]
    assert count == 0


def test_test_role_exists(conn: psycopg.Connection) -> None:
    row = conn.execute(
        "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'schemainspect_test_role'"
    ).fetchone()
    assert row == (False,)


def test_server_runs_as_postgres_user(cluster: Cluster) -> None:
    pid = cluster.postmaster_pid()
    assert pid is not None
    status = Path(f"/proc/{pid}/status").read_text()
    uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
    expected = pwd.getpwnam("postgres").pw_uid if os.geteuid() == 0 else os.geteuid()
    assert uid == expected
    assert uid != 0


def test_conninfo_has_no_password(cluster: Cluster) -> None:
    info = cluster.conninfo("some_db")
    assert "password" not in info.lower()
    assert f"host={cluster.run_dir}" in info
    assert f"port={cluster.port}" in info
    assert "dbname=some_db" in info and "user=postgres" in info
    assert "password" not in cluster.url("some_db").lower()


def test_url_connects(cluster: Cluster, db: str) -> None:
    dbname = psycopg.conninfo.conninfo_to_dict(db)["dbname"]
    with psycopg.connect(cluster.url(str(dbname))) as c:
        assert c.execute("SELECT current_database()").fetchone()[0] == dbname


def test_start_stop_idempotent(private_cluster: Cluster) -> None:
    c = private_cluster
    assert not c.is_running()
    c.stop()  # stopping a cluster that never existed is fine
    # Two concurrent starts: the file lock makes one initdb and one start.
    errors: list[BaseException] = []

    def start() -> None:
        try:
            c.ensure_started()
        except BaseException as e:  # noqa: BLE001 - reported by the assert below
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert c.is_running()
    c.ensure_started()
    c.create_database("kept")
    c.stop()
    c.stop()
    assert not c.is_running()
    # The port is stored: a new handle on the same dir finds the same server.
    again = Cluster(c.base_dir)
    again.ensure_started()
    assert again.port == c.port
    with psycopg.connect(again.conninfo("kept")) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    again.drop_database("kept")
    c.destroy()
    assert not c.base_dir.exists()


def test_cli_url_and_status(cluster: Cluster) -> None:
    run = [sys.executable, "-m", "pgconverge.dev.embedded", "--dir", str(cluster.base_dir)]
    out = subprocess.run([*run, "url", "x"], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == cluster.url("x")
    status = subprocess.run([*run, "status"], capture_output=True, text=True, cwd=REPO)
    assert status.returncode == 0 and status.stdout.startswith("running")


def test_find_bindir_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = find_bindir()
    assert (real / "initdb").exists()
    monkeypatch.setenv("PGCONVERGE_PG_BINDIR", str(tmp_path))
    with pytest.raises(EmbeddedError, match="initdb"):
        find_bindir()
    monkeypatch.setenv("PGCONVERGE_PG_BINDIR", str(real))
    assert find_bindir() == real
