"""The production gate: a deploy needs a sign-off that covers this sql/, this schema and this plan;
a sign-off needs staging evidence."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgconverge.exec.runner import LocalRunner
from pgconverge.planning.steps import Plan, Step
from pgconverge.runbook import ledger, signoff

SOURCE = "s" * 64


def plan(sql: str = "CREATE TABLE t (id int)", desired: str = "d" * 64, actual: str = "a" * 64) -> Plan:
    return Plan(steps=[Step(sql, "create_table", "table:public.t")], desired_hash=desired, actual_hash=actual,
                source_hash=SOURCE)


def signed(path: Path, p: Plan, environment: str = "production", source_hash: str = SOURCE) -> Path:
    signoff.write(path, signoff.Signoff(
        environment=environment, approver="alice", approved_at="2025-07-01T00:00:00Z", source_hash=source_hash,
        desired_hash=p.desired_hash, smoke_hash=None,
        databases=[signoff.DatabaseEntry("app", p.actual_hash, p.plan_hash, len(p.steps))], staging={}))
    return path


def test_an_empty_plan_needs_no_signoff(tmp_path: Path) -> None:
    assert signoff.gate(tmp_path / "none.yml", "production", "app", Plan(steps=[]), SOURCE) is None


def test_missing_signoff_refuses(tmp_path: Path) -> None:
    reason = signoff.gate(tmp_path / "production.yml", "production", "app", plan(), SOURCE)
    assert reason and reason.startswith(f"no sign-off at {tmp_path / 'production.yml'}")


def test_matching_signoff_passes(tmp_path: Path) -> None:
    p = plan()
    assert signoff.gate(signed(tmp_path / "s.yml", p), "production", "app", p, SOURCE) is None


def test_stale_source_hash_refuses(tmp_path: Path) -> None:
    p = plan()
    path = signed(tmp_path / "s.yml", p, source_hash="o" * 64)
    reason = signoff.gate(path, "production", "app", p, SOURCE)
    assert reason and "is stale" in reason and "oooooooooooo" in reason


def test_other_desired_schema_is_stale_too(tmp_path: Path) -> None:
    path = signed(tmp_path / "s.yml", plan())
    reason = signoff.gate(path, "production", "app", plan(desired="e" * 64), SOURCE)
    assert reason and "is stale" in reason


def test_mismatched_plan_hash_refuses(tmp_path: Path) -> None:
    path = signed(tmp_path / "s.yml", plan())
    reason = signoff.gate(path, "production", "app", plan("CREATE TABLE t (id bigint)"), SOURCE)
    assert reason and "differs from the signed plan" in reason


def test_drifted_schema_refuses(tmp_path: Path) -> None:
    path = signed(tmp_path / "s.yml", plan())
    reason = signoff.gate(path, "production", "app", plan(actual="b" * 64), SOURCE)
    assert reason and "app drifted" in reason


def test_other_environment_or_database_refuses(tmp_path: Path) -> None:
    p = plan()
    path = signed(tmp_path / "s.yml", p, environment="staging")
    assert "signs off environment staging" in signoff.gate(path, "production", "app", p, SOURCE)
    path = signed(tmp_path / "t.yml", p)
    assert "does not cover database orders" in signoff.gate(path, "production", "orders", p, SOURCE)


def test_a_file_that_is_no_signoff_refuses(tmp_path: Path) -> None:
    path = tmp_path / "s.yml"
    path.write_text("approver: bob\n")
    assert "is not a pgconverge sign-off" in signoff.gate(path, "production", "app", plan(), SOURCE)


# --------------------------------------------------------------------------- staging evidence


def test_signoff_needs_a_converged_staging(db: str) -> None:
    staging = [signoff.StagingDatabase("app", LocalRunner(db), plan())]
    with pytest.raises(signoff.SignoffRefused, match="staging app is not converged"):
        signoff.make("production", "alice", SOURCE, None, [("app", plan())], "staging", staging)


def test_signoff_needs_a_ledger_run_as_evidence(db: str) -> None:
    converged = Plan(steps=[], desired_hash="d" * 64, actual_hash="d" * 64, source_hash=SOURCE)
    runner = LocalRunner(db)
    staging = [signoff.StagingDatabase("app", runner, converged)]
    with pytest.raises(signoff.SignoffRefused, match="ledger has no run that converged"):
        signoff.make("production", "alice", SOURCE, None, [("app", plan())], "staging", staging)
    # a run that converged to this schema and passed its smoke checks is the evidence
    run_id = ledger.record(runner, ledger.RunStart(action="deploy", environment="staging", actor="t",
                                                   desired_hash="d" * 64), "converged",
                           after_hash="d" * 64, smoke={"passed": True, "checks": []})
    made = signoff.make("production", "alice", SOURCE, None, [("app", plan())], "staging", staging)
    assert [r["run_id"] for r in made.staging["runs"]] == [run_id]
    assert made.databases[0].plan_hash == plan().plan_hash


def test_failed_smoke_is_no_evidence(db: str) -> None:
    runner = LocalRunner(db)
    converged = Plan(steps=[], desired_hash="d" * 64, actual_hash="d" * 64, source_hash=SOURCE)
    ledger.record(runner, ledger.RunStart(action="deploy", environment="staging", actor="t", desired_hash="d" * 64),
                  "converged", after_hash="d" * 64, smoke={"passed": False, "checks": []})
    with pytest.raises(signoff.SignoffRefused, match="ledger has no run"):
        signoff.make("production", "alice", SOURCE, None, [("app", plan())], "staging",
                     [signoff.StagingDatabase("app", runner, converged)])
