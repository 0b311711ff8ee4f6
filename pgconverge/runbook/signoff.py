"""The production gate: a sign-off file that names exactly what production may apply.

``pgconverge signoff`` writes ``signoffs/<env>.yml`` only when the staging ledger
shows a run that converged to the current desired schema AND passed the current
smoke checks, and staging still is at that schema. The file holds:

    environment, approver, approved_at        who approved what, when
    source_hash, desired_hash, smoke_hash     the sql/ (and checks) it was signed for
    databases: [{database, start_hash, plan_hash, steps, hazards}]
                                              per production database: its schema when
                                              signed, and the exact plan that may run
    staging: {environment, runs: [...]}       the ledger evidence (run ids, times, hashes)

A deploy to an environment with ``pgconverge_require_signoff`` refuses, changing
nothing, when the file is missing, was signed for other sql/, or when a database's
starting schema or plan is not the one signed for.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from pgconverge.runbook import ledger
from pgconverge.planning.steps import Plan
from pgconverge.exec.runner import Runner

HEADER = ("# pgconverge sign-off: the production deploy applies exactly these plans, and refuses\n"
          "# when sql/ or a database's schema no longer matches. Written by `pgconverge signoff`.\n")


class SignoffRefused(Exception):
    """A sign-off cannot be written, or a deploy is not covered by one."""


@dataclass
class DatabaseEntry:
    database: str
    start_hash: str
    plan_hash: str
    steps: int = 0
    hazards: list[str] = field(default_factory=list)


@dataclass
class Signoff:
    environment: str
    approver: str
    approved_at: str
    source_hash: str
    desired_hash: str
    smoke_hash: str | None
    databases: list[DatabaseEntry]
    staging: dict[str, Any]

    def entry(self, database: str) -> DatabaseEntry | None:
        return next((d for d in self.databases if d.database == database), None)

    def to_yaml(self) -> str:
        doc = asdict(self)
        return HEADER + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


def load(path: str | os.PathLike) -> Signoff | None:
    p = Path(path)
    if not p.exists():
        return None
    doc = yaml.safe_load(p.read_text()) or {}
    try:
        dbs = [DatabaseEntry(**d) for d in doc.get("databases") or []]
        return Signoff(environment=doc["environment"], approver=doc["approver"], approved_at=str(doc["approved_at"]),
                       source_hash=doc["source_hash"], desired_hash=doc["desired_hash"],
                       smoke_hash=doc.get("smoke_hash"), databases=dbs, staging=doc.get("staging") or {})
    except (KeyError, TypeError) as e:
        raise SignoffRefused(f"{path} is not a pgconverge sign-off ({e}): write it with `pgconverge signoff`")


def write(path: str | os.PathLike, signoff: Signoff) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(signoff.to_yaml())
    tmp.replace(p)


def gate(path: str | os.PathLike, environment: str, database: str, plan: Plan, source_hash: str) -> str | None:
    """Why the deploy of `plan` to `database` is refused, or None when the sign-off covers it."""
    if plan.is_empty:
        return None  # nothing would change: no sign-off needed
    how = f"converge staging with this sql/, then `pgconverge signoff --env {environment} --approver NAME`"
    try:
        s = load(path)
    except SignoffRefused as e:
        return str(e)
    if s is None:
        return f"no sign-off at {path}: {how}."
    if s.environment != environment:
        return f"{path} signs off environment {s.environment}, not {environment}."
    if s.source_hash != source_hash or s.desired_hash != plan.desired_hash:
        return (f"the sign-off in {path} is stale: it was signed for sql/ {s.source_hash[:12]} "
                f"(desired {s.desired_hash[:12]}), the current sql/ is {source_hash[:12]} "
                f"(desired {plan.desired_hash[:12]}); {how}.")
    entry = s.entry(database)
    if entry is None:
        covered = ", ".join(d.database for d in s.databases) or "none"
        return f"the sign-off in {path} does not cover database {database} (it covers: {covered}); {how}."
    if entry.start_hash != plan.actual_hash:
        return (f"{database} drifted: its schema is not the one the plan was signed for (signed at "
                f"{entry.start_hash[:12]}, now {plan.actual_hash[:12]}). Find out what changed it, review the "
                f"new plan (--dry) and sign off again.")
    if entry.plan_hash != plan.plan_hash:
        return (f"the plan for {database} differs from the signed plan ({entry.plan_hash[:12]}, now "
                f"{plan.plan_hash[:12]}): review it (--dry) and sign off again.")
    return None


@dataclass
class StagingDatabase:
    label: str
    runner: Runner
    plan: Plan


def staging_evidence(staging: list[StagingDatabase], desired_hash: str, smoke_hash: str | None) -> list[dict]:
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
        checks = (run.smoke or {}).get("checks") or []
        runs.append({"database": db.label, "run_id": run.id, "outcome": run.outcome, "actor": run.actor,
                     "started_at": run.started_at, "finished_at": run.finished_at,
                     "desired_hash": run.desired_hash, "before_hash": run.before_hash,
                     "after_hash": run.after_hash,
                     "smoke": f"{sum(1 for c in checks if c.get('passed'))}/{len(checks)} passed"})
    return runs


def make(environment: str, approver: str, source_hash: str, smoke_hash: str | None,
         production: list[tuple[str, Plan]], staging_env: str, staging: list[StagingDatabase]) -> Signoff:
    """A sign-off for production's current plans, if the staging evidence holds."""
    if not approver.strip():
        raise SignoffRefused("an approver is required (--approver NAME)")
    if not production:
        raise SignoffRefused(f"no {environment} database to sign off")
    desired = {p.desired_hash for _, p in production}
    if len(desired) != 1:
        raise SignoffRefused(f"the {environment} databases compute different desired schemas: "
                             "check their server versions and schema scope")
    desired_hash = desired.pop()
    evidence = staging_evidence(staging, desired_hash, smoke_hash)
    return Signoff(
        environment=environment, approver=approver.strip(),
        approved_at=datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        source_hash=source_hash, desired_hash=desired_hash, smoke_hash=smoke_hash,
        databases=[DatabaseEntry(label, p.actual_hash, p.plan_hash, len(p.steps),
                                 sorted({h.name for h in p.hazards})) for label, p in production],
        staging={"environment": staging_env, "runs": evidence})
