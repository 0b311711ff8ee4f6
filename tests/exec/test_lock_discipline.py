"""The default lock discipline, against a real PostgreSQL: a step waiting for its lock behind a long
transaction holds other sessions up for at most one short lock_timeout at a time, and when the holder
never leaves the run fails at the deadline, naming it, with nothing of the step applied."""

from __future__ import annotations

from tests.waiting import wait_for  # noqa: E402
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

import pgconverge
from pgconverge.api import StepFailed
from pgconverge.cli.main import main as cli_main
from pgconverge.exec.script import ExecSettings
from pgconverge.runbook.settings import SettingsError, validate

PYINFRA = str(Path(sys.executable).parent / "pyinfra")
DESIRED = ["CREATE TABLE t (id int, n int CHECK (n > 0));"]
# what the executor shipped with before: 2 s per attempt, 5 retries with doubling pauses
OLD_DEFAULTS = ExecSettings(lock_timeout="2s", retries=5, backoff=0.5, backoff_max=8.0, lock_deadline="10min")


def waiting(conn: psycopg.Connection) -> bool:
    """A pgconverge session is queued for a lock on t."""
    return conn.execute(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE NOT l.granted AND l.relation = to_regclass('public.t') AND a.application_name = 'pgconverge'"
    ).fetchone()[0] > 0


def wait_until(predicate, what: str) -> None:
    wait_for(predicate, what, seconds=30.0, step=0.025)


def schema(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute("SELECT conname, convalidated FROM pg_constraint WHERE conrelid = 't'::regclass "
                        "ORDER BY 1").fetchall()


class Reader:
    """A client reading t in a loop, as an application does, keeping each query's latency."""

    def __init__(self, db: str):
        self.latencies: list[float] = []
        self.stop = threading.Event()
        self.conn = psycopg.connect(db, autocommit=True, application_name="reader")
        self.conn.execute("SET statement_timeout = '120s'")  # a regression fails the test, not hangs it
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            self.conn.execute("SELECT count(*) FROM t").fetchone()
            self.latencies.append(time.monotonic() - started)
            time.sleep(0.01)

    def finish(self) -> float:
        self.stop.set()
        self.thread.join(timeout=300)
        self.conn.close()
        return max(self.latencies)


def readers_worst_wait(db: str, conn: psycopg.Connection, settings: ExecSettings | None, hold: float) -> float:
    """A holder keeps ACCESS SHARE on t for `hold` seconds after the run starts waiting, while a reader
    loops; the run must succeed once the holder leaves. Returns the reader's worst latency."""
    conn.execute("DROP TABLE IF EXISTS t; CREATE TABLE t (id int, n int); "
                 "INSERT INTO t SELECT g, g FROM generate_series(1, 1000) g")
    holder = psycopg.connect(db, application_name="long-report")
    holder.execute("SELECT count(*) FROM t")  # ACCESS SHARE until the transaction ends
    reader = Reader(db)
    result: dict = {}
    options = {"settings": settings} if settings else {}

    def run() -> None:
        try:
            result["ok"] = pgconverge.apply(db, DESIRED, allow_hazards="may_fail_on_existing_data", **options)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            result["error"] = e

    th = threading.Thread(target=run, daemon=True)
    th.start()
    wait_until(lambda: waiting(conn), "the ALTER waits for its lock")
    time.sleep(hold)
    assert th.is_alive(), "the run must still be waiting while the holder holds its lock"
    holder.rollback()
    holder.close()
    th.join(timeout=300)
    worst = reader.finish()
    assert "error" not in result, result.get("error")
    assert schema(conn) == [("t_n_check", True)]
    return worst


def test_readers_wait_well_under_a_second_behind_a_waiting_alter_with_the_defaults(db, conn):
    old = readers_worst_wait(db, conn, OLD_DEFAULTS, hold=3.0)
    new = readers_worst_wait(db, conn, None, hold=6.0)
    print(f"reader's worst latency: {new * 1000:.0f} ms with the defaults, {old * 1000:.0f} ms with the old ones")
    assert old > 1.5  # the old default queued readers for a whole 2 s attempt
    assert new < 1.0


def test_a_holder_that_never_leaves_fails_the_run_at_the_deadline_naming_it(db, conn):
    conn.execute("CREATE TABLE t (id int, n int)")
    before = schema(conn)
    holder = psycopg.connect(db, application_name="long-report")
    holder.execute("SELECT count(*) FROM t")
    pid, user = holder.execute("SELECT pg_backend_pid(), current_user").fetchone()
    started = time.monotonic()
    try:
        with pytest.raises(StepFailed) as e:
            # the defaults but a short deadline, so that the test does not wait a minute
            pgconverge.apply(db, DESIRED, allow_hazards="all", lock_deadline="3s")
        elapsed = time.monotonic() - started
        assert holder.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    finally:
        holder.rollback()
        holder.close()
    msg = e.value.message
    assert e.value.sqlstate == "55P03"
    assert "step 1/2 (add_constraint constraint:public.t.t_n_check)" in msg
    assert "lock not granted within 500ms after" in msg and "gave up at the lock_deadline of 3s" in msg
    assert (f"blocked by pid {pid} (user {user}, application long-report, state idle in transaction, "
            "transaction open for ") in msg
    assert "holds AccessShareLock on t" in msg
    assert "raise lock_deadline (--lock-deadline, pgconverge_lock_deadline, lock_deadline=)" in msg
    assert elapsed >= 3.0
    assert schema(conn) == before  # nothing half-applied
    assert not pgconverge.plan(db, DESIRED).is_empty


def test_the_cli_names_the_blocker_and_the_setting(db, conn, tmp_path, capsys):
    conn.execute("CREATE TABLE t (id int, n int)")
    f = tmp_path / "s.sql"
    f.write_text(DESIRED[0] + "\n")
    holder = psycopg.connect(db, application_name="long-report")
    holder.execute("LOCK TABLE t IN ACCESS SHARE MODE")
    pid = holder.info.backend_pid
    try:
        code = cli_main(["apply", "--target", db, "--sql", str(f), "--allow-hazards", "all",
                         "--lock-deadline", "1500ms"])
    finally:
        holder.rollback()
        holder.close()
    err = capsys.readouterr().err
    assert code == 1
    assert "gave up at the lock_deadline of 1500ms" in err
    assert f"blocked by pid {pid} (user " in err and "application long-report" in err
    assert "--lock-deadline" in err
    assert schema(conn) == []


def test_the_retry_cap_names_lock_retries(db, conn):
    conn.execute("CREATE TABLE t (id int, n int)")
    holder = psycopg.connect(db)
    holder.execute("LOCK TABLE t IN ACCESS SHARE MODE")
    try:
        with pytest.raises(StepFailed) as e:
            pgconverge.apply(db, DESIRED, allow_hazards="all", lock_timeout="100ms", retries=2)
    finally:
        holder.rollback()
        holder.close()
    msg = e.value.message
    assert "lock not granted within 100ms after 3 attempt(s)" in msg and "gave up at lock_retries = 2" in msg
    assert "raise lock_retries (--lock-retries" in msg
    assert schema(conn) == []


def test_pyinfra_output_names_the_blocker(db, conn, tmp_path):
    conn.execute("CREATE TABLE t (id int, n int)")
    (tmp_path / "sql").mkdir()
    (tmp_path / "sql" / "schema.sql").write_text(DESIRED[0] + "\n")
    deploy = tmp_path / "deploy_locks.py"
    deploy.write_text(
        "from pgconverge import operations as pgc\n"
        "pgc.converge(name='converge target', database={'url_env': 'PGC_TEST_URL'}, "
        f"sql={str(tmp_path / 'sql')!r}, allow_hazards='all', lock_deadline='1500ms')\n")
    env = {**os.environ, "PGC_TEST_URL": db, "PGCONVERGE_HOME": str(tmp_path / ".pgconverge")}
    holder = psycopg.connect(db, application_name="long-report")
    holder.execute("LOCK TABLE t IN ACCESS SHARE MODE")
    pid = holder.info.backend_pid
    try:
        res = subprocess.run([PYINFRA, "-y", "@local", str(deploy)], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=300)
    finally:
        holder.rollback()
        holder.close()
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert f"blocked by pid {pid} (user " in out and "application long-report" in out, out
    assert "gave up at the lock_deadline of 1500ms" in out and "--lock-deadline" in out
    assert schema(conn) == []


def test_a_data_block_behind_a_row_lock_names_the_holder(db, conn, tmp_path):
    conn.execute("CREATE TABLE t (id int, n int); INSERT INTO t VALUES (1, 1)")
    f = tmp_path / "s.sql"
    f.write_text("CREATE TABLE t (id int, n int);\n-- @data bump after\nUPDATE t SET n = n + 1;\n-- @end\n")
    holder = psycopg.connect(db, application_name="row-locker")
    holder.execute("SELECT * FROM t FOR UPDATE")
    pid = holder.info.backend_pid
    try:
        with pytest.raises(StepFailed) as e:
            pgconverge.apply(db, str(f), lock_deadline="1500ms")
    finally:
        holder.rollback()
        holder.close()
    msg = e.value.message
    assert "data block bump" in msg and "gave up at the lock_deadline of 1500ms" in msg
    assert f"blocked by pid {pid} (user " in msg and "application row-locker" in msg
    assert "holds RowShareLock on t" in msg
    assert conn.execute("SELECT n FROM t").fetchall() == [(1,)]
    assert conn.execute("SELECT to_regclass('pgconverge.data_blocks') IS NULL "
                        "OR NOT EXISTS (SELECT FROM pgconverge.data_blocks)").fetchone() == (True,)


@pytest.mark.parametrize("options, expect", [
    (dict(lock_deadline="soon"), "lock_deadline: 'soon' is not a duration"),
    (dict(lock_deadline="0"), "lock_deadline: '0' must be longer than 0"),
    (dict(lock_timeout="5 seconds"), "lock_timeout: '5 seconds' is not a duration"),
    (dict(retries=-1), "lock_retries: -1 is not a number of retries"),
])
def test_misspelt_settings_are_refused_before_anything_runs(db, conn, options, expect):
    conn.execute("CREATE TABLE t (id int, n int)")
    with pytest.raises(ValueError) as e:
        pgconverge.apply(db, DESIRED, allow_hazards="all", **options)
    assert expect in str(e.value)
    assert schema(conn) == []


def test_group_data_durations_are_validated_naming_the_key():
    assert validate({"pgconverge_lock_deadline": "90s", "pgconverge_lock_timeout": 500}).lock_deadline == "90s"
    with pytest.raises(SettingsError) as e:
        validate({"pgconverge_lock_deadline": "a minute"}, "group_data/all.py")
    assert str(e.value).startswith("pgconverge_lock_deadline: 'a minute' is not a duration")
    assert "(in group_data/all.py)" in str(e.value)
