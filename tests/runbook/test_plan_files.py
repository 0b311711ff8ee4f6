"""The plan files of a run: plans/<env>/<database>/<UTC time>-<plan hash>.{sql,md,json}, never
overwritten, pruned beyond pgconverge_plans_keep; made from a real plan of a real database."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

import pgconverge
from pgconverge.runbook.planfiles import plan_runs, plans_folder, write_plan_files
from pgconverge.runbook.settings import EnvSettings, SettingsError

T0 = datetime(2025, 7, 1, 1, 2, 3, tzinfo=timezone.utc)


@pytest.fixture
def plan(db, tmp_path):
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("CREATE TABLE items (id bigint PRIMARY KEY, name text)")
    f = tmp_path / "schema.sql"
    f.write_text("CREATE TABLE items (id bigint PRIMARY KEY, name text);\nCREATE INDEX items_name_idx ON items (name);\n")
    return pgconverge.plan(db, str(f), allow_hazards="all")


def test_each_run_writes_new_files_named_by_time_and_plan_hash(plan, tmp_path) -> None:
    settings = EnvSettings(env="staging", plans_dir=str(tmp_path / "plans"))
    first = write_plan_files(settings, "@local", "app", plan, [], None, now=T0)
    short = plan.plan_hash[:12]
    assert first.base == tmp_path / "plans" / "staging" / "app" / f"20250701T010203Z-{short}"
    sql, md, js = (p.read_text() for p in first.paths)
    assert "SET lock_timeout = '0';" in sql and "CREATE INDEX CONCURRENTLY items_name_idx" in sql
    assert "\\set ON_ERROR_STOP on" in sql
    assert f"`{first.base.name}.sql`" in md and "| lock_timeout | statement_timeout |" in md
    doc = json.loads(js)
    assert doc["database"] == "app" and doc["host"] == "@local" and doc["environment"] == "staging"
    assert [(s["lock_timeout"], s["statement_timeout"]) for s in doc["steps"]] == [("0", "30min")]

    # the same plan in the same second: a second set of files beside the first, which stays as it was
    again = write_plan_files(settings, "@local", "app", plan, [], "a gate note", now=T0)
    assert again.base.name == f"20250701T010203Z-{short}-2"
    assert [p.read_text() for p in first.paths] == [sql, md, js]
    assert "a gate note" in (again.paths[1]).read_text()
    assert [r.base.name for r in plan_runs(plans_folder(settings, "app"))] == [first.base.name, again.base.name]


def test_runs_beyond_plans_keep_are_pruned_oldest_first(plan, tmp_path) -> None:
    settings = EnvSettings(env="staging", plans_dir=str(tmp_path / "plans"), plans_keep=3)
    folder = plans_folder(settings, "app")
    folder.mkdir(parents=True)
    (folder / "notes.md").write_text("not a plan file")
    made = [write_plan_files(settings, "@local", "app", plan, [], None, now=T0 + timedelta(minutes=n))
            for n in range(5)]
    kept = plan_runs(folder)
    assert [r.base for r in kept] == [m.base for m in made[2:]]
    assert all(p.exists() for r in kept for p in r.paths)
    assert not any(p.exists() for m in made[:2] for p in m.paths)
    assert (folder / "notes.md").read_text() == "not a plan file"

    # 0 keeps every run
    keep_all = EnvSettings(env="staging", plans_dir=str(tmp_path / "plans"), plans_keep=0)
    for n in range(5, 9):
        write_plan_files(keep_all, "@local", "app", plan, [], None, now=T0 + timedelta(minutes=n))
    assert len(plan_runs(folder)) == 7


def test_plans_keep_is_validated() -> None:
    assert EnvSettings.from_data({"pgconverge_plans_keep": "5"}).plans_keep == 5
    assert EnvSettings.from_data({}).plans_keep == 30
    with pytest.raises(SettingsError, match="pgconverge_plans_keep: must be 0"):
        EnvSettings.from_data({"pgconverge_plans_keep": -1})
