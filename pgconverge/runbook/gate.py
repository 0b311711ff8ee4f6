"""The production gate: is this deploy covered by a signed, current sign-off?

In order, each a refusal that names the file and the reason:
    missing       no sign-off file
    unsigned      no ``<file>.sig``
    tampered      the signature does not match the file's bytes
    unknown key   the key is not in ``allowed_signers`` (or allowed_signers refuses it)
    not a sign-off, another environment, a database it does not cover
    stale         sql/ or the desired schema, the database's starting schema, the plan, the smoke
                  checks or the policy differ from what was signed
    evidence      staging's ledger (when staging is reachable) does not hold the rows signed for

The file is read once: the bytes checked against the signature are the bytes parsed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

from pgconverge.exec.runner import LocalRunner, PsqlError, Runner, conn_from_spec
from pgconverge.planning.steps import Plan
from pgconverge.runbook import ledger, sshsig
from pgconverge.runbook.signoff import EvidenceRun, Policy, Signoff, SignoffRefused, parse


class StagingUnreachable(Exception):
    """Staging's ledger cannot be read from here: the evidence is then taken on the signature alone."""


# The databases of an environment by label, to read their ledgers; raises StagingUnreachable.
StagingReader = Callable[[str], dict[str, Runner]]


@dataclass(frozen=True)
class Current:
    """What the deploy is about to do, to compare with what was signed."""

    environment: str
    database: str
    plan: Plan
    source_hash: str
    smoke_hash: str
    policy: Policy


@dataclass(frozen=True)
class Verdict:
    """The gate's answer: why it refuses (None: it passes), who signed, and notes for people."""

    refusal: str | None = None
    signer: sshsig.Signer | None = None
    signoff: Signoff | None = None
    notes: tuple[str, ...] = ()


def differ(signed: str | None, now: str | None) -> str:
    """Two hashes shown far enough to tell them apart: the common prefix plus a few characters."""
    a, b = signed or "-", now or "-"
    common = 0
    while common < min(len(a), len(b)) and a[common] == b[common]:
        common += 1
    n = max(12, common + 4)
    return f"signed {a[:n]}{'…' if len(a) > n else ''}, now {b[:n]}{'…' if len(b) > n else ''}"


def check(path: str, allowed_signers: str, current: Current, staging: StagingReader | None = None) -> Verdict:
    """The gate for one database. An empty plan needs no sign-off."""
    if current.plan.is_empty:
        return Verdict(notes=("nothing to change, no sign-off needed",))
    how = (f"converge staging with this sql/, then `pgconverge signoff --env {current.environment} "
           "--key ~/.ssh/id_ed25519`")
    p = Path(path)
    if not p.is_file():
        return Verdict(f"no sign-off at {path}: {how}.")
    data = p.read_bytes()
    try:
        signer = sshsig.verify(data, sshsig.signature_path(p), allowed_signers, path)
        signed = parse(data, path)
    except (sshsig.SignatureError, SignoffRefused) as e:
        return Verdict(f"{e}; {how}.")
    stale = _stale(path, signed, current, how)
    if stale:
        return Verdict(stale, signer, signed)
    notes: tuple[str, ...] = ()
    if staging is not None:
        refusal, note = _evidence(path, signed, staging)
        if refusal:
            return Verdict(refusal, signer, signed)
        notes = (note,)
    snapshots = [d for d in (r.describe_snapshot() for r in signed.staging_runs) if d]
    if snapshots:
        notes += ("staging snapshot: " + "; ".join(snapshots),)
    return Verdict(None, signer, signed, notes)


def _stale(path: str, s: Signoff, c: Current, how: str) -> str | None:
    if s.environment != c.environment:
        return f"{path} signs off environment {s.environment}, not {c.environment}."
    if s.source_hash != c.source_hash:
        return f"the sign-off in {path} is stale: sql/ changed since ({differ(s.source_hash, c.source_hash)}); {how}."
    if s.desired_hash != c.plan.desired_hash:
        return (f"the sign-off in {path} is stale: the desired schema differs "
                f"({differ(s.desired_hash, c.plan.desired_hash)}); {how}.")
    if s.smoke_hash != c.smoke_hash:
        return (f"the sign-off in {path} is stale: the smoke checks changed since "
                f"({differ(s.smoke_hash, c.smoke_hash)}); staging must pass the new checks: {how}.")
    if s.policy != c.policy:
        return (f"the sign-off in {path} is stale: the {c.environment} policy changed since (signed: "
                f"{s.policy.describe()}; now: {c.policy.describe()}); {how}.")
    entry = s.entry(c.database)
    if entry is None:
        covered = ", ".join(d.database for d in s.databases) or "none"
        return f"the sign-off in {path} does not cover database {c.database} (it covers: {covered}); {how}."
    if entry.start_hash != c.plan.actual_hash:
        return (f"{c.database} drifted: its schema is not the one the plan was signed for "
                f"({differ(entry.start_hash, c.plan.actual_hash)}). Find out what changed it, review the "
                f"new plan (--dry) and sign off again.")
    if entry.plan_hash != c.plan.plan_hash:
        return (f"the plan for {c.database} differs from the signed plan ({differ(entry.plan_hash, c.plan.plan_hash)}): "
                "review it (--dry) and sign off again.")
    return None


def _same_time(a: str | None, b: str | None) -> bool:
    """Ledger times as two sessions print them (their TimeZone may differ)."""
    if a == b:
        return True
    try:
        return datetime.fromisoformat(str(a)) == datetime.fromisoformat(str(b))
    except ValueError:
        return False


def _mismatch(signed: EvidenceRun, run: ledger.Run, refresh: ledger.Run | None) -> list[str]:
    now = EvidenceRun.of(signed.database, run, refresh)
    out = []
    if signed.snapshot is not None and (now.snapshot or {}).get("sha256") != signed.snapshot.get("sha256"):
        # (a sign-off written before refreshes existed names no snapshot: nothing to compare)
        out.append(f"snapshot {differ(signed.snapshot.get('sha256'), (now.snapshot or {}).get('sha256'))}")
    for name in ("outcome", "desired_hash", "before_hash", "after_hash", "smoke_sha256", "actor"):
        a, b = getattr(signed, name), getattr(now, name)
        if a != b:
            out.append(f"{name} {differ(a, b)}" if name.endswith(("hash", "sha256")) else f"{name} {a!r} now {b!r}")
    for name in ("started_at", "finished_at"):
        if not _same_time(getattr(signed, name), getattr(now, name)):
            out.append(f"{name} {getattr(signed, name)!r} now {getattr(now, name)!r}")
    if not run.smoke_passed:
        out.append("its smoke checks did not pass")
    return out


def _evidence(path: str, s: Signoff, staging: StagingReader) -> tuple[str | None, str]:
    """(refusal, note): the signed staging rows against staging's ledger."""
    env = s.staging_environment
    try:
        runners = staging(env)
    except StagingUnreachable as e:
        return None, f"staging evidence not checked against {env}'s ledger ({env} unreachable: {e})"
    try:
        checked = []
        for signed in s.staging_runs:
            runner = runners.get(signed.database)
            if runner is None:
                return None, (f"staging evidence not checked: {env} has no database {signed.database} here "
                              f"(it has: {', '.join(runners) or 'none'})")
            try:
                run = ledger.get(runner, signed.run_id)
            except PsqlError as e:
                return None, (f"staging evidence not checked against {env}'s ledger ({env} {signed.database} "
                              f"unreachable: {e.message})")
            if run is None:
                return (f"the staging evidence in {path} does not match {env}'s ledger: {env} {signed.database} has "
                        f"no run #{signed.run_id}. Deploy {env} again and sign off again."), ""
            wrong = _mismatch(signed, run, ledger.refresh_before(runner, run.id))
            if wrong:
                return (f"the staging evidence in {path} does not match {env}'s ledger: {env} {signed.database} "
                        f"run #{signed.run_id}: {'; '.join(wrong)}. Deploy {env} again and sign off again."), ""
            checked.append(f"{signed.database} run #{signed.run_id}")
        return None, f"staging evidence matches {env}'s ledger ({', '.join(checked) or 'no runs'})"
    finally:
        _close(runners.values())


def _close(runners) -> None:
    for r in runners:
        close = getattr(r, "close", None)  # a runner holding a password file removes it here
        if close:
            close()


def reader_of(specs: Callable[[str], list[str | dict]]) -> StagingReader:
    """A StagingReader over connection specs (as group data gives them), read from this machine."""

    def read(env: str) -> dict[str, Runner]:
        try:
            found = specs(env)
        except (FileNotFoundError, ValueError) as e:
            raise StagingUnreachable(str(e)) from None
        runners: dict[str, Runner] = {}
        for spec in found:
            try:
                runner = LocalRunner(conn_from_spec(spec))
                label = spec.get("name") if isinstance(spec, dict) else None
                label = label or runner.query_json("SELECT to_json(current_database());")
            except (ValueError, PsqlError) as e:
                _close(runners.values())
                raise StagingUnreachable(getattr(e, "message", None) or str(e)) from None
            runners[str(label)] = runner
        return runners

    return read
