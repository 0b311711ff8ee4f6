"""pgconverge_smoke_commands: commands run through pyinfra on another host of the inventory (a second
``@pglocal`` host standing for an application server) after the SQL smoke checks, their results in the
ledger row, a failure failing the run with the restore command; and bad group data refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgconverge.runbook import smoke_commands as sc
from pgconverge.runbook.settings import EnvSettings, SettingsError, validate
from test_environments import Project, runs, tables
from test_environments import home  # noqa: F401 (the fixture)

APP = "@pglocal/app"
DB = "@pglocal/db"


@pytest.fixture
def project(tmp_path: Path, home: Path) -> Project:  # noqa: F811 (home: the fixture above)
    return Project(tmp_path, home)


def two_hosts(project: Project, commands: list[dict], app: bool = True) -> None:
    hosts = [(DB, {"pgconverge_databases": [{"name": "app", "url_env": "APP_URL"}]})] + ([APP] if app else [])
    project.environment("staging", hosts=hosts, pgconverge_smoke_commands=commands)


def test_passing_commands_are_recorded_next_to_the_sql_checks(project: Project, db: str) -> None:
    two_hosts(project, [{"name": "health", "command": "echo status=ok; echo ran >> health.log",
                         "hosts": APP, "timeout": "20s"}])
    # --limit leaves the app host out of the deploy: the smoke step connects it for its command
    res = project.pyinfra("staging", "deploy.py", "--limit", DB, extra_env={"APP_URL": db})
    assert res.rc == 0, res
    [row] = runs(db)
    assert row["outcome"] == "converged" and row["smoke"]["passed"] is True
    report = row["smoke_commands"]
    assert report["passed"] is True
    [health] = report["commands"]
    assert (health["name"], health["host"], health["exit_code"], health["tail"]) == ("health", APP, 0, "status=ok")
    assert health["seconds"] >= 0
    # once, for the one database
    assert (project.root / "health.log").read_text() == "ran\n"
    out = res.out
    assert out.index("smoke: 1/1 check(s) passed") < out.index("smoke commands: 1/1 passed") < out.index(
        "ledger: run #1 converged"), res


def test_a_failing_command_fails_the_run_records_it_and_prints_the_restore_command(project: Project, db: str) -> None:
    long_output = "; ".join(f"echo line{i}" for i in range(30))
    two_hosts(project, [
        {"name": "health", "command": "echo fine", "hosts": [APP]},
        {"name": "queue", "command": long_output + "; echo 'queue is down' >&2; exit 3", "hosts": APP},
        {"name": "slow", "command": "sleep 30; echo never", "hosts": APP, "timeout": "1s"},
    ])
    res = project.pyinfra("staging", extra_env={"APP_URL": db})
    assert res.rc != 0, res
    assert tables(db) == {"items"}  # the schema change is in: the smoke checks came after it
    [row] = runs(db)
    assert row["outcome"] == "smoke_failed" and row["smoke"]["passed"] is True
    assert "queue on @pglocal/app" in row["message"] and "slow on @pglocal/app" in row["message"]
    assert "health" not in row["message"]
    report = row["smoke_commands"]
    assert report["passed"] is False
    health, queue, slow = report["commands"]
    assert (health["passed"], health["exit_code"], health["tail"]) == (True, 0, "fine")
    assert (queue["passed"], queue["exit_code"], queue["detail"]) == (False, 3, "exit code 3")
    tail = queue["tail"].splitlines()
    assert len(tail) == sc.TAIL_LINES and tail[-1] == "queue is down" and tail[0] == "line11"
    assert slow["exit_code"] in sc.TIMED_OUT and slow["detail"] == "timed out after 1s"
    assert slow["seconds"] < 25 and "never" not in slow["tail"]  # stopped, not waited for
    assert "FAIL queue on @pglocal/app" in res.out and "FAILED: app: smoke checks failed" in res.out
    assert f"pyinfra inventory/staging.py restore.py --limit '{DB}' --data pgconverge_database=app" in res.out, res


def test_a_command_host_missing_from_the_inventory_refuses_before_anything_changes(project: Project, db: str) -> None:
    two_hosts(project, [{"name": "health", "command": "true", "hosts": "@pglocal/web"}], app=False)
    res = project.pyinfra("staging", extra_env={"APP_URL": db})
    assert res.rc != 0, res
    assert "REFUSED by preflight" in res.out
    assert "pgconverge_smoke_commands (health): no host or group '@pglocal/web' in the inventory" in res.out, res
    assert "group_data/staging.py" in res.out
    assert runs(db) == [] and tables(db) == set()


@pytest.mark.parametrize(("entry", "problem"), [
    ({"name": "h", "command": " ", "hosts": "web"}, "pgconverge_smoke_commands[0] (h): the command is empty"),
    ({"name": "h", "command": "curl https://u:s3cret@web/health", "hosts": "web"},
     "pgconverge_smoke_commands[0] (h): the command holds a URL with a password"),
    ({"name": "h", "command": "true", "hosts": []}, "pgconverge_smoke_commands[0] (h): names no hosts"),
    ({"name": "h", "command": "true", "hosts": "web", "timeout": "soon"},
     "pgconverge_smoke_commands[0] (h): timeout: 'soon' is not a duration"),
    ({"name": "h", "command": "true", "hosts": "web", "timeout": "0s"},
     "pgconverge_smoke_commands[0] (h): timeout: must be longer than 0"),
    ({"name": "h", "command": "true"}, "pgconverge_smoke_commands[0]: object missing required field `hosts`"),
    ({"name": "h", "command": "true", "hosts": "web", "on": "x"},
     "pgconverge_smoke_commands[0]: unknown field `on` of a smoke command (known: name, command, hosts, timeout)"),
])
def test_bad_entries_are_refused_naming_key_entry_and_file(entry: dict, problem: str) -> None:
    with pytest.raises(SettingsError) as e:
        validate({"pgconverge_smoke_commands": [entry]}, "group_data/staging.py")
    assert str(e.value).startswith(problem) and str(e.value).endswith("(in group_data/staging.py)"), str(e.value)


def test_names_are_unique() -> None:
    entries = [{"name": "h", "command": "true", "hosts": "web"}, {"name": "h", "command": "false", "hosts": "web"}]
    with pytest.raises(SettingsError, match=r"smoke_commands\[1\] \(h\): the name is used by an earlier entry"):
        validate({"pgconverge_smoke_commands": entries}, "group_data/all.py")


def test_settings_carry_the_commands() -> None:
    s = EnvSettings.from_data({"pgconverge_smoke_commands": [
        {"name": "h", "command": "curl -fsS localhost/health", "hosts": "web, api", "timeout": "5s"},
        {"name": "q", "command": "true", "hosts": ["worker"]}]})
    assert s.smoke_commands == (sc.SmokeCommand("h", "curl -fsS localhost/health", ("web", "api"), 5.0),
                                sc.SmokeCommand("q", "true", ("worker",), sc.DEFAULT_TIMEOUT))


def test_judge_reads_the_exit_code_and_keeps_the_tail() -> None:
    cmd = sc.SmokeCommand("h", "x", ("web",), 2.0)
    r = sc.judge(cmd, "web", True, ["a" * 3000, "pgconverge-smoke-rc=7"], 0.5)
    assert (r.exit_code, r.passed, r.detail, len(r.tail)) == (7, False, "exit code 7", sc.TAIL_CHARS)
    lost = sc.judge(cmd, "web", False, [], 0.1)
    assert lost.exit_code is None and not lost.passed and "connector failed" in lost.detail
