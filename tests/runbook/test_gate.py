"""The production gate: a deploy needs a sign-off signed by an allowed key, covering this sql/, these
smoke checks, this policy, this schema and this plan, resting on rows that are in staging's ledger;
a sign-off needs staging evidence. Real ssh-keygen, real PostgreSQL for the ledgers."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from pgconverge.exec.runner import LocalRunner
from pgconverge.planning.steps import Plan, Step
from pgconverge.runbook import gate, ledger, signoff, sshsig

SOURCE = "s" * 64
SMOKE = "c" * 64
POLICY = signoff.Policy.of(["index_build"], [])


def plan(sql: str = "CREATE TABLE t (id int)", desired: str = "d" * 64, actual: str = "a" * 64) -> Plan:
    return Plan(steps=[Step(sql, "create_table", "table:public.t")], desired_hash=desired, actual_hash=actual,
                source_hash=SOURCE)


def current(p: Plan | None = None, **changes) -> gate.Current:
    return dataclasses.replace(gate.Current("production", "app", p or plan(), SOURCE, SMOKE, POLICY), **changes)


def document(p: Plan | None = None, runs: tuple[signoff.EvidenceRun, ...] = (), **changes) -> signoff.Signoff:
    p = p or plan()
    doc = signoff.Signoff(
        environment="production", approved_at="2025-07-01T00:00:00Z", source_hash=SOURCE,
        desired_hash=p.desired_hash, smoke_hash=SMOKE, policy=POLICY,
        databases=(signoff.DatabaseEntry("app", p.actual_hash, p.plan_hash, len(p.steps)),),
        staging_environment="staging", staging_runs=runs)
    return dataclasses.replace(doc, **changes)


@pytest.fixture
def allowed(tmp_path: Path, signing_keys) -> Path:
    """signoffs/allowed_signers listing alice only."""
    path = tmp_path / "allowed_signers"
    path.write_text("# approvers of production sign-offs\n" + signing_keys["alice"].allowed_line())
    return path


def signed(path: Path, doc: signoff.Signoff, key) -> Path:
    """The sign-off written and signed with `key` (whoever it belongs to)."""
    path.write_text(doc.to_yaml())
    sshsig.sign(key.key, path)
    return path


def refusal(path: Path, allowed: Path, c: gate.Current | None = None, staging=None) -> str:
    verdict = gate.check(str(path), str(allowed), c or current(), staging)
    assert verdict.refusal, verdict
    return verdict.refusal


# --------------------------------------------------------------------------- the signature


def test_an_empty_plan_needs_no_signoff(tmp_path: Path, allowed: Path) -> None:
    verdict = gate.check(str(tmp_path / "none.yml"), str(allowed), current(Plan(steps=[])))
    assert verdict.refusal is None and verdict.signer is None


def test_signed_by_an_allowed_key_passes_and_names_the_principal(tmp_path: Path, allowed: Path, signing_keys) -> None:
    path = signed(tmp_path / "production.yml", document(), signing_keys["alice"])
    verdict = gate.check(str(path), str(allowed), current())
    assert verdict.refusal is None, verdict.refusal
    assert verdict.signer.principal == "alice@example.com"
    assert verdict.signer.fingerprint.startswith("SHA256:")


def test_missing_signoff_refuses(tmp_path: Path, allowed: Path) -> None:
    assert refusal(tmp_path / "production.yml", allowed).startswith(f"no sign-off at {tmp_path / 'production.yml'}")


def test_unsigned_signoff_refuses(tmp_path: Path, allowed: Path) -> None:
    path = tmp_path / "production.yml"
    path.write_text(document().to_yaml())  # the right hashes, copied by hand, and no signature
    reason = refusal(path, allowed)
    assert f"{path} is not signed: there is no signature at {path}.sig" in reason


def test_tampered_content_refuses(tmp_path: Path, allowed: Path, signing_keys) -> None:
    path = signed(tmp_path / "production.yml", document(plan()), signing_keys["alice"])
    # a plan that drops a table, put in place of the signed one: its hash is right, the signature not
    other = plan("DROP TABLE t")
    path.write_text(path.read_text().replace(plan().plan_hash, other.plan_hash))
    reason = refusal(path, allowed, current(other))
    assert f"the signature {path}.sig does not match {path}" in reason and "changed after it was signed" in reason


def test_signature_by_a_key_not_in_allowed_signers_refuses(tmp_path: Path, allowed: Path, signing_keys) -> None:
    path = signed(tmp_path / "production.yml", document(), signing_keys["mallory"])
    reason = refusal(path, allowed)
    assert f"{path} is signed by a key that is not in {allowed}" in reason and "SHA256:" in reason


def test_a_signature_made_for_git_is_no_signoff(tmp_path: Path, allowed: Path, signing_keys) -> None:
    path = tmp_path / "production.yml"
    path.write_text(document().to_yaml())
    subprocess.run(["ssh-keygen", "-Y", "sign", "-q", "-f", str(signing_keys["alice"].key), "-n", "git", str(path)],
                   check=True, stdin=subprocess.DEVNULL)
    assert "is not a pgconverge-signoff signature" in refusal(path, allowed)


def test_a_key_past_its_validity_in_allowed_signers_refuses(tmp_path: Path, signing_keys) -> None:
    allowed = tmp_path / "allowed_signers"
    alice = signing_keys["alice"]
    allowed.write_text(f'{alice.principal} valid-before="20200101" {alice.public}\n')
    path = signed(tmp_path / "production.yml", document(), alice)
    reason = refusal(path, allowed)
    assert f"{path} is signed by a key that is not in {allowed}, or not valid there today" in reason


def test_without_allowed_signers_nothing_is_trusted(tmp_path: Path, signing_keys) -> None:
    path = signed(tmp_path / "production.yml", document(), signing_keys["alice"])
    assert "there is no allowed signers file at" in refusal(path, tmp_path / "nowhere")


def test_an_old_unsigned_format_refuses(tmp_path: Path, allowed: Path, signing_keys) -> None:
    path = tmp_path / "production.yml"
    path.write_text(f"environment: production\napprover: bob\nsource_hash: {SOURCE}\n")
    sshsig.sign(signing_keys["alice"].key, path)
    assert "is not a pgconverge-signoff/2 sign-off" in refusal(path, allowed)


# --------------------------------------------------------------------------- stale sign-offs


@pytest.mark.parametrize("change, expected", [
    (dict(source_hash="s" * 60 + "0000"), "sql/ changed since (signed " + "s" * 60 + "ssss, now " + "s" * 60 + "0000)"),
    (dict(plan=plan(desired="e" * 64)), "the desired schema differs"),
    (dict(plan=plan(actual="b" * 64)), "app drifted: its schema is not the one the plan was signed for"),
    (dict(plan=plan("CREATE TABLE t (id bigint)")), "the plan for app differs from the signed plan"),
    (dict(smoke_hash="f" * 64), "the smoke checks changed since"),
    (dict(policy=signoff.Policy.of(["index_build", "deletes_data"], [])), "the production policy changed since"),
    (dict(policy=signoff.Policy.of(["index_build"], ["table:public.t"])), "drops [table:public.t]"),
    (dict(environment="staging"), "signs off environment production, not staging"),
    (dict(database="orders"), "does not cover database orders (it covers: app)"),
])
def test_stale_signoff_refuses(tmp_path: Path, allowed: Path, signing_keys, change, expected) -> None:
    path = signed(tmp_path / "production.yml", document(), signing_keys["alice"])
    reason = refusal(path, allowed, current(**change))
    assert expected in reason, reason


def test_differing_hashes_are_shown_far_enough_to_differ() -> None:
    a, b = "0123456789abcdef" * 4, "0123456789abcdef0123456789ab" + "ffff" * 9
    shown = gate.differ(a, b)
    assert shown == f"signed {a[:32]}…, now {b[:32]}…"
    assert gate.differ("abc", "abd") == "signed abc, now abd"


# --------------------------------------------------------------------------- staging evidence


def staging_run(runner: LocalRunner) -> ledger.Run:
    run_id = ledger.record(runner, ledger.RunStart(action="deploy", environment="staging", actor="ci",
                                                   desired_hash="d" * 64, before_hash="a" * 64), "converged",
                           after_hash="d" * 64, smoke={"passed": True, "sha256": SMOKE, "checks": []})
    return ledger.get(runner, run_id)


def test_evidence_is_checked_against_stagings_ledger(tmp_path: Path, allowed: Path, signing_keys, db: str) -> None:
    runner = LocalRunner(db)
    run = staging_run(runner)
    path = signed(tmp_path / "production.yml", document(runs=(signoff.EvidenceRun.of("app", run),)),
                  signing_keys["alice"])
    reader = gate.reader_of(lambda env: [{"name": "app", **_keywords(db)}] if env == "staging" else [])
    verdict = gate.check(str(path), str(allowed), current(), reader)
    assert verdict.refusal is None, verdict.refusal
    assert verdict.notes == (f"staging evidence matches staging's ledger (app run #{run.id})",)

    # the row the sign-off rests on is not what staging's ledger holds (any more)
    ledger.update(runner, run.id, after_hash="e" * 64)
    reason = refusal(path, allowed, staging=reader)
    assert f"the staging evidence in {path} does not match staging's ledger: staging app run #{run.id}" in reason
    assert "after_hash signed dddddddddddd…, now eeeeeeeeeeee…" in reason

    # ... or is not there at all (a fabricated run id)
    fake = dataclasses.replace(signoff.EvidenceRun.of("app", run), run_id=run.id + 100)
    path = signed(tmp_path / "production.yml", document(runs=(fake,)), signing_keys["alice"])
    assert f"staging app has no run #{run.id + 100}" in refusal(path, allowed, staging=reader)


def test_evidence_is_not_checked_when_staging_is_unreachable(tmp_path: Path, allowed: Path, signing_keys,
                                                             db: str) -> None:
    run = staging_run(LocalRunner(db))
    path = signed(tmp_path / "production.yml", document(runs=(signoff.EvidenceRun.of("app", run),)),
                  signing_keys["alice"])
    reader = gate.reader_of(lambda env: [{"name": "app", "url_env": "PGC_NOT_SET_ANYWHERE"}])
    verdict = gate.check(str(path), str(allowed), current(), reader)
    assert verdict.refusal is None, verdict.refusal
    [note] = verdict.notes
    assert note.startswith("staging evidence not checked against staging's ledger (staging unreachable:")
    assert "PGC_NOT_SET_ANYWHERE" in note


def _keywords(conninfo: str) -> dict:
    import psycopg

    parts = psycopg.conninfo.conninfo_to_dict(conninfo)
    return {k: str(v) for k, v in parts.items() if k in ("host", "port", "dbname", "user")}


# --------------------------------------------------------------------------- writing a sign-off


def test_write_signed_refuses_a_key_not_in_allowed_signers(tmp_path: Path, allowed: Path, signing_keys) -> None:
    out = tmp_path / "signoffs" / "production.yml"
    with pytest.raises(signoff.SignoffRefused, match="is signed by a key that is not in") as e:
        signoff.write_signed(out, document(), signing_keys["mallory"].key, allowed)
    assert signing_keys["mallory"].public in str(e.value)  # the line to add, in a reviewed change
    assert sorted(p.name for p in out.parent.iterdir()) == []  # nothing left behind
    signer = signoff.write_signed(out, document(), signing_keys["alice"].key, allowed)
    assert signer.principal == "alice@example.com"
    assert sorted(p.name for p in out.parent.iterdir()) == ["production.yml", "production.yml.sig"]
    assert gate.check(str(out), str(allowed), current()).refusal is None


def test_signoff_needs_a_converged_staging(db: str) -> None:
    staging = [signoff.StagingDatabase("app", LocalRunner(db), plan())]
    with pytest.raises(signoff.SignoffRefused, match="staging app is not converged"):
        signoff.make("production", SOURCE, SMOKE, POLICY, [("app", plan())], "staging", staging)


def test_signoff_needs_a_ledger_run_as_evidence(db: str) -> None:
    converged = Plan(steps=[], desired_hash="d" * 64, actual_hash="d" * 64, source_hash=SOURCE)
    runner = LocalRunner(db)
    staging = [signoff.StagingDatabase("app", runner, converged)]
    with pytest.raises(signoff.SignoffRefused, match="ledger has no run that converged"):
        signoff.make("production", SOURCE, SMOKE, POLICY, [("app", plan())], "staging", staging)
    # a run that converged to this schema and passed these smoke checks is the evidence
    run = staging_run(runner)
    made = signoff.make("production", SOURCE, SMOKE, POLICY, [("app", plan())], "staging", staging)
    assert [r.run_id for r in made.staging_runs] == [run.id]
    assert made.databases[0].plan_hash == plan().plan_hash and made.policy == POLICY
    # a run that passed other smoke checks is not
    with pytest.raises(signoff.SignoffRefused, match="ledger has no run"):
        signoff.make("production", SOURCE, "f" * 64, POLICY, [("app", plan())], "staging", staging)


def test_failed_smoke_is_no_evidence(db: str) -> None:
    runner = LocalRunner(db)
    converged = Plan(steps=[], desired_hash="d" * 64, actual_hash="d" * 64, source_hash=SOURCE)
    ledger.record(runner, ledger.RunStart(action="deploy", environment="staging", actor="t", desired_hash="d" * 64),
                  "converged", after_hash="d" * 64, smoke={"passed": False, "sha256": SMOKE, "checks": []})
    with pytest.raises(signoff.SignoffRefused, match="ledger has no run"):
        signoff.make("production", SOURCE, SMOKE, POLICY, [("app", plan())], "staging",
                     [signoff.StagingDatabase("app", runner, converged)])


# --------------------------------------------------------------------------- the snapshot staging rehearsed on


def test_evidence_names_the_snapshot_staging_was_refreshed_from(tmp_path: Path, allowed: Path, signing_keys,
                                                                db: str) -> None:
    runner = LocalRunner(db)
    converged = Plan(steps=[], desired_hash="d" * 64, actual_hash="d" * 64, source_hash=SOURCE)
    staging = [signoff.StagingDatabase("app", runner, converged)]
    # never refreshed: the evidence names no snapshot, and the file reads as before refreshes existed
    staging_run(runner)
    plain = signoff.make("production", SOURCE, SMOKE, POLICY, [("app", plan())], "staging", staging)
    assert plain.staging_runs[0].snapshot is None and "snapshot" not in plain.to_yaml()

    snap = {"environment": "production", "database": "app", "run_id": 7, "file": "backups/production/app/x.dump",
            "sha256": "b" * 64, "schema_hash": "a" * 64, "mask_sha256": "m" * 64, "mask_files": ["10_people.sql"]}
    refresh_id = ledger.record(runner, ledger.RunStart(action="refresh", environment="staging", actor="ci",
                                                       target="app", snapshot=snap), "refreshed", after_hash="a" * 64)
    run = staging_run(runner)
    made = signoff.make("production", SOURCE, SMOKE, POLICY, [("app", plan())], "staging", staging)
    [evidence] = made.staging_runs
    assert evidence.run_id == run.id
    assert evidence.snapshot["refresh_run_id"] == refresh_id
    assert evidence.snapshot["sha256"] == "b" * 64 and evidence.snapshot["schema_hash"] == "a" * 64
    assert evidence.snapshot["mask_sha256"] == "m" * 64
    # it survives the file: written, parsed back
    path = signed(tmp_path / "production.yml", document(runs=made.staging_runs), signing_keys["alice"])
    assert signoff.parse(path.read_bytes(), str(path)).staging_runs == made.staging_runs

    reader = gate.reader_of(lambda env: [{"name": "app", **_keywords(db)}] if env == "staging" else [])
    verdict = gate.check(str(path), str(allowed), current(), reader)
    assert verdict.refusal is None, verdict.refusal
    assert verdict.notes[-1] == (f"staging snapshot: app rehearsed on production's backup sha256 {'b' * 12} "
                                 f"(production schema {'a' * 12}, masking {'m' * 12}; refresh run #{refresh_id})")

    # a snapshot that is not the one staging's ledger shows before that run is refused
    other = dataclasses.replace(evidence, snapshot={**evidence.snapshot, "sha256": "c" * 64})
    path = signed(tmp_path / "production.yml", document(runs=(other,)), signing_keys["alice"])
    reason = refusal(path, allowed, staging=reader)
    assert f"staging app run #{run.id}: snapshot signed {'c' * 12}" in reason
    # a sign-off written before refreshes existed (no snapshot key) still passes against that ledger
    old = dataclasses.replace(evidence, snapshot=None)
    path = signed(tmp_path / "production.yml", document(runs=(old,)), signing_keys["alice"])
    assert gate.check(str(path), str(allowed), current(), reader).refusal is None
