"""The sign-off: a signed file that names exactly what production may apply.

``pgconverge signoff`` writes ``signoffs/<env>.yml`` only when the staging ledger shows a run
that converged to the current desired schema AND passed the current smoke checks, and staging
still is at that schema. It signs the file with the approver's SSH key (``<file>.sig``, see
``sshsig``). The signed bytes hold:

    format, environment, approved_at          what this is, for which environment, when
    source_hash, desired_hash                 the sql/ it was signed for, and its desired schema
    smoke_hash                                the smoke checks production will run (staging passed them)
    policy: {allow_hazards, drops}            production's policy when signed
    databases: [{database, start_hash, plan_hash, steps, hazards}]
                                              per production database: its schema when signed,
                                              and the exact plan that may run
    staging: {environment, runs: [...]}       the staging ledger rows it rests on, each with the
                                              snapshot staging was refreshed from (if it was)

Who approved is not written in the file: it is the principal that ``signoffs/allowed_signers``
names for the key that signed it. The gate (``runbook.gate``) checks all of it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import yaml

from pgconverge.exec.runner import Runner
from pgconverge.planning.steps import Plan
from pgconverge.runbook import ledger, sshsig

FORMAT = "pgconverge-signoff/2"
HEADER = ("# pgconverge sign-off: the production deploy applies exactly these plans, and refuses when\n"
          "# sql/, the smoke checks, the policy or a database's schema no longer match, or when this file\n"
          "# and its signature (.sig next to it) disagree. Written and signed by `pgconverge signoff`.\n")


class SignoffRefused(Exception):
    """A sign-off cannot be written, or a deploy is not covered by one."""


@dataclass(frozen=True)
class Policy:
    """What the environment's policy allowed when signed: a wider policy later needs a new sign-off."""

    allow_hazards: tuple[str, ...] = ()
    drops: tuple[str, ...] = ()

    @classmethod
    def of(cls, allow_hazards: Iterable[str], drops: Iterable[str]) -> Policy:
        return cls(tuple(sorted(set(allow_hazards))), tuple(sorted(set(drops))))

    def describe(self) -> str:
        return (f"allow_hazards [{', '.join(self.allow_hazards)}], drops [{', '.join(self.drops)}]")


@dataclass(frozen=True)
class DatabaseEntry:
    database: str
    start_hash: str
    plan_hash: str
    steps: int = 0
    hazards: tuple[str, ...] = ()


@dataclass(frozen=True)
class EvidenceRun:
    """One staging ledger row a sign-off rests on, as it was read when signing."""

    database: str
    run_id: int
    outcome: str
    actor: str
    started_at: str | None
    finished_at: str | None
    desired_hash: str | None
    before_hash: str | None
    after_hash: str | None
    smoke_sha256: str | None
    smoke: str  # "4/4 passed", for people
    # the snapshot staging was refreshed from before this run (None: never refreshed; absent from
    # sign-offs written before refreshes existed, which stay valid)
    snapshot: dict | None = None

    @classmethod
    def of(cls, database: str, run: ledger.Run, refresh: ledger.Run | None = None) -> EvidenceRun:
        checks = (run.smoke or {}).get("checks") or []
        return cls(database=database, run_id=run.id, outcome=run.outcome, actor=run.actor,
                   started_at=run.started_at, finished_at=run.finished_at, desired_hash=run.desired_hash,
                   before_hash=run.before_hash, after_hash=run.after_hash,
                   smoke_sha256=(run.smoke or {}).get("sha256"),
                   smoke=f"{sum(1 for c in checks if c.get('passed'))}/{len(checks)} passed",
                   snapshot=snapshot_of(refresh))

    def to_doc(self) -> dict[str, Any]:
        doc = dict(vars(self))
        if doc["snapshot"] is None:
            del doc["snapshot"]  # the same bytes as before for a staging that was never refreshed
        return doc

    def describe_snapshot(self) -> str | None:
        snap = self.snapshot
        if not snap:
            return None
        return (f"{self.database} rehearsed on {snap.get('environment')}'s backup sha256 "
                f"{str(snap.get('sha256'))[:12]} ({snap.get('environment')} schema {str(snap.get('schema_hash'))[:12]}, "
                f"masking {str(snap.get('mask_sha256') or 'none')[:12]}; refresh run #{snap.get('refresh_run_id')})")


def snapshot_of(refresh: ledger.Run | None) -> dict | None:
    """What a sign-off names of the refresh a staging run was rehearsed on."""
    if refresh is None or not refresh.snapshot:
        return None
    snap = refresh.snapshot
    return {"refresh_run_id": refresh.id, "refreshed_at": refresh.finished_at, "environment": snap.get("environment"),
            "database": snap.get("database"), "sha256": snap.get("sha256"), "schema_hash": snap.get("schema_hash"),
            "mask_sha256": snap.get("mask_sha256")}


@dataclass(frozen=True)
class Signoff:
    environment: str
    approved_at: str
    source_hash: str
    desired_hash: str
    smoke_hash: str
    policy: Policy
    databases: tuple[DatabaseEntry, ...]
    staging_environment: str
    staging_runs: tuple[EvidenceRun, ...]

    def entry(self, database: str) -> DatabaseEntry | None:
        return next((d for d in self.databases if d.database == database), None)

    def to_yaml(self) -> str:
        doc = {
            "format": FORMAT, "environment": self.environment, "approved_at": self.approved_at,
            "source_hash": self.source_hash, "desired_hash": self.desired_hash, "smoke_hash": self.smoke_hash,
            "policy": {"allow_hazards": list(self.policy.allow_hazards), "drops": list(self.policy.drops)},
            "databases": [{"database": d.database, "start_hash": d.start_hash, "plan_hash": d.plan_hash,
                           "steps": d.steps, "hazards": list(d.hazards)} for d in self.databases],
            "staging": {"environment": self.staging_environment,
                        "runs": [r.to_doc() for r in self.staging_runs]},
        }
        return HEADER + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)

    def to_json(self) -> dict[str, Any]:
        return yaml.safe_load(self.to_yaml())


def parse(data: bytes, what: str) -> Signoff:
    """The sign-off in `data` (the bytes of the file `what`); SignoffRefused when it is not one."""
    how = "write it with `pgconverge signoff`"
    try:
        doc = yaml.safe_load(data.decode())
    except (UnicodeDecodeError, yaml.YAMLError) as e:
        raise SignoffRefused(f"{what} is not a pgconverge sign-off (not YAML: {e}): {how}") from None
    if not isinstance(doc, dict):
        raise SignoffRefused(f"{what} is not a pgconverge sign-off: {how}")
    if doc.get("format") != FORMAT:
        raise SignoffRefused(f"{what} is not a {FORMAT} sign-off (format: {doc.get('format')!r}; an older, "
                             f"unsigned sign-off is no longer accepted): {how}")
    try:
        policy = doc["policy"] or {}
        staging = doc["staging"] or {}
        return Signoff(
            environment=str(doc["environment"]), approved_at=str(doc["approved_at"]),
            source_hash=str(doc["source_hash"]), desired_hash=str(doc["desired_hash"]),
            smoke_hash=str(doc["smoke_hash"]),
            policy=Policy.of(policy.get("allow_hazards") or [], policy.get("drops") or []),
            databases=tuple(DatabaseEntry(str(d["database"]), str(d["start_hash"]), str(d["plan_hash"]),
                                          int(d.get("steps") or 0), tuple(d.get("hazards") or ()))
                            for d in doc["databases"] or []),
            staging_environment=str(staging["environment"]),
            staging_runs=tuple(EvidenceRun(**r) for r in staging.get("runs") or []))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise SignoffRefused(f"{what} is not a pgconverge sign-off (missing or malformed {e}): {how}") from None


def write_signed(path: str | os.PathLike, signoff: Signoff, key: str | os.PathLike,
                 allowed_signers: str | os.PathLike) -> sshsig.Signer:
    """Write `signoff` to `path`, signed with `key` as ``<path>.sig``, and check the signature as the
    gate will. Nothing is left at `path` unless the signature verifies against `allowed_signers`."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".signoff-", dir=p.parent))  # same file system: renames are atomic
    try:
        draft = work / p.name
        text = signoff.to_yaml().encode()
        draft.write_bytes(text)
        sig = sshsig.sign(key, draft)
        try:
            signer = sshsig.verify(text, sig, allowed_signers, str(p))
        except sshsig.SignatureError as e:
            line = sshsig.public_line(key)
            add = f"\n  add your key in a reviewed change: `<you@example.com> {line}`" if line and e.kind == "unknown-key" else ""
            raise SignoffRefused(f"the sign-off was not written: {e}{add}") from None
        os.replace(draft, p)
        os.replace(sig, sshsig.signature_path(p))
        return signer
    finally:
        shutil.rmtree(work, ignore_errors=True)


@dataclass(frozen=True)
class StagingDatabase:
    label: str
    runner: Runner
    plan: Plan


def staging_evidence(staging: list[StagingDatabase], desired_hash: str, smoke_hash: str) -> tuple[EvidenceRun, ...]:
    """One ledger run per staging database proving it converged to `desired_hash` and passed
    the smoke checks; raises SignoffRefused naming what is missing."""
    if not staging:
        raise SignoffRefused("no staging database to take evidence from")
    runs = []
    for db in staging:
        if db.plan.desired_hash != desired_hash:
            raise SignoffRefused(
                f"staging {db.label} computes another desired schema ({db.plan.desired_hash[:12]}) than production "
                f"({desired_hash[:12]}): check both use the same sql/, schema scope and major version.")
        if not db.plan.is_empty:
            raise SignoffRefused(f"staging {db.label} is not converged to the current sql/ ({len(db.plan.steps)} "
                                 "change(s) pending): deploy staging first.")
        run = ledger.evidence(db.runner, desired_hash, smoke_hash)
        if run is None:
            raise SignoffRefused(
                f"staging {db.label}'s ledger has no run that converged to the current sql/ and passed the current "
                "smoke checks: deploy staging (set pgconverge_verify_unchanged to re-check an unchanged "
                "database).")
        runs.append(EvidenceRun.of(db.label, run, ledger.refresh_before(db.runner, run.id)))
    return tuple(runs)


def make(environment: str, source_hash: str, smoke_hash: str, policy: Policy,
         production: list[tuple[str, Plan]], staging_env: str, staging: list[StagingDatabase]) -> Signoff:
    """A sign-off for production's current plans, if the staging evidence holds."""
    if not production:
        raise SignoffRefused(f"no {environment} database to sign off")
    desired = {p.desired_hash for _, p in production}
    if len(desired) != 1:
        raise SignoffRefused(f"the {environment} databases compute different desired schemas: "
                             "check their server versions and schema scope")
    desired_hash = desired.pop()
    evidence = staging_evidence(staging, desired_hash, smoke_hash)
    return Signoff(
        environment=environment,
        approved_at=datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        source_hash=source_hash, desired_hash=desired_hash, smoke_hash=smoke_hash, policy=policy,
        databases=tuple(DatabaseEntry(label, p.actual_hash, p.plan_hash, len(p.steps),
                                      tuple(sorted({h.name for h in p.hazards}))) for label, p in production),
        staging_environment=staging_env, staging_runs=evidence)
