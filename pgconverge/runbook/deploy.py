"""The deployment runbook for one database:

    preflight      connectivity, version, extensions, privileges     (read-only)
    plan           shown with its hazards, written to plans/          (read-only)
    gate           the sign-off, where the environment requires one   (read-only)
    backup         pg_dump, verified, recorded, old ones pruned
    converge       the plan, applied by the engine (advisory lock, lock_timeout, retries)
    analyze        VACUUM ANALYZE of the tables created or changed
    smoke          the checks in sql/smoke/
    ledger         one row per run in the database itself

``check_deploy`` is the read-only part: it runs both when the plan is shown (a dry run)
and again right before anything changes; ``apply_deploy`` is the rest. Neither knows
what carries its commands (a ``Shell``) or where its lines go (a ``Console``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from pgconverge.exec.runner import PsqlError
from pgconverge.planning import hazards as hz
from pgconverge.planning import unmanaged
from pgconverge.planning.hazards import Hazard
from pgconverge.planning.steps import Plan
from pgconverge.quoting import lit, q
from pgconverge.runbook import backup as backups
from pgconverge.runbook import gate, ledger, planfiles, preflight, signoff, sizes, smoke
from pgconverge.runbook.database import Database
from pgconverge.runbook.planfiles import write_plan_files

# The plan hash shown in the dry run, by (host, database): the real run refuses when the plan moved.
ShownPlans = dict[tuple[str, str], str]


# The command line that restores a database (host, database label, backup path or None for the
# newest): the deploy tool knows how it is invoked, the runbook only prints it.
RestoreCommand = Callable[[str, str, "str | None"], str]


@dataclass
class Checked:
    """The outcome of the read-only part of a deploy."""

    plan: Plan | None = None
    problem: str | None = None
    backup_due: bool = False
    work: bool = False  # something to do (a change, or a verification run)

    def summary(self) -> str:
        """One line for the dry run: what the real run would do."""
        if self.problem:
            return self.problem.splitlines()[0]
        return f"{len(self.plan.steps)} step(s)" if self.plan and not self.plan.is_empty else "verify"


@dataclass(frozen=True)
class GateLine:
    """What the production gate says about a plan: a note for people, and why it refuses (if it does)."""

    note: str | None = None
    refusal: str | None = None


def gate_line(db: Database, plan: Plan, staging: gate.StagingReader | None = None) -> GateLine:
    s = db.settings
    if not s.require_signoff:
        return GateLine()
    current = gate.Current(environment=s.env, database=db.label, plan=plan, source_hash=db.source.sha256,
                           smoke_hash=smoke.checks_hash(smoke.load(s.smoke)),
                           policy=signoff.Policy.of(s.allow_hazards, s.drops))
    verdict = gate.check(s.signoff_file, s.allowed_signers, current, staging)
    if verdict.refusal:
        return GateLine(f"REFUSED: {verdict.refusal}", verdict.refusal)
    if verdict.signer is None:
        return GateLine("; ".join(verdict.notes))
    return GateLine("; ".join((f"signed off by {verdict.signer} at {verdict.signoff.approved_at} "
                               f"({s.signoff_file})", *verdict.notes)))


def check_deploy(db: Database, executing: bool, shown_plans: ShownPlans,
                 staging: gate.StagingReader | None = None) -> Checked:
    """Preflight, plan, policy and gate: everything before the first change. Prints as it goes.

    `shown_plans` remembers the plan of the dry run (``executing`` False) so that the real
    run can refuse a plan that changed since it was shown. `staging` reads the ledgers of the
    environment a sign-off took its evidence from (None: the evidence is not re-checked)."""
    s = db.settings
    report = db.preflight()
    for line in report.lines():
        db.say(line, fg=None if report.ok else "red")
    if not report.ok:
        return Checked(problem=f"{db.label}: preflight failed, nothing was changed:\n"
                       + "\n".join(f"  {p}" for p in report.problems), work=True)
    plan = db.engine.plan()
    if executing:  # the real run, even one with nothing to do; a dry run writes nothing
        db.note_interrupted(lambda: plan.actual_hash, "a deploy")
    refused = db.engine.policy(plan).refused(plan.hazards)
    shown = shown_plans.get(db.key)
    first_sight = not executing or shown is None  # without a dry run (-y) the plan is first seen when it runs
    if first_sight:
        db.console.show_plan(db.label, plan, refused)
    verdict = gate_line(db, plan, staging)
    if not executing:
        shown_plans[db.key] = plan.plan_hash
    if first_sight:
        path = write_plan_files(s, db.host_name, db.label, plan, refused, verdict.note,
                                snapshot=ledger.snapshot_note(db.runner))
        db.say(f"plan files: {path}.sql, {path}.md, {path}.json")
    if verdict.note:
        db.say(f"gate: {verdict.note}", fg="red" if verdict.refusal else "green")
    backup_due = s.backup and (not plan.is_empty or s.backup_when_unchanged)
    work = not plan.is_empty or s.verify_unchanged or (s.backup and s.backup_when_unchanged)
    result = Checked(plan, None, backup_due, work)
    result.problem = _refusal(db, plan, refused, verdict, shown if executing else None)
    if result.problem is None and backup_due:
        preflight.check_space(db.shell, s, report)
        db.say(f"  - {report.notes[-1]}" if report.ok else f"  ! {report.problems[-1]}",
               fg=None if report.ok else "red")
        if not report.ok:
            result.problem = f"{db.label}: preflight failed, nothing was changed: {report.problems[-1]}"
    return result


def _refusal(db: Database, plan: Plan, refused: list[Hazard], verdict: GateLine, shown: str | None) -> str | None:
    """Why the deploy must not go on (the first reason, in order of importance), or None."""
    s = db.settings
    if shown is not None and shown != plan.plan_hash:
        return (f"{db.label}: the target changed between the plan shown and now; nothing was run. "
                "Run again to review the new plan.")
    if refused:
        remedy = unmanaged.remedy(plan, refused)
        return f"{db.label}: refused by policy, nothing was run: " + "; ".join(
            f"{x.name}: {x.reason}" for x in refused) + (f". {remedy}" if remedy else "")
    if not s.backup and any(x.name == hz.DELETES_DATA for x in plan.hazards):
        # deleted rows can only come back from a backup taken by this very run
        return (f"{db.label}: the plan deletes data but backups are off (pgconverge_backup = False); "
                "nothing was run. Turn backups on for this run.")
    if s.check and not plan.is_empty:
        return f"{db.label}: {len(plan.steps)} change(s) pending (check mode), nothing was run"
    if verdict.refusal:
        return f"{db.label}: the {s.env} gate refused, nothing was changed: {verdict.refusal}"
    return None


def rollback_hint(db: Database, backup: backups.Backup | None, restore_command: RestoreCommand) -> str:
    if backup is None:
        return ("no backup was taken in this run; restore the newest one with:\n"
                f"    {restore_command(db.host_name, db.label, None)}")
    return ("to roll back, put the backup taken before this run back:\n"
            f"    {restore_command(db.host_name, db.label, backup.path)}")


def analyze(db: Database, plan: Plan) -> str:
    """VACUUM ANALYZE the tables the plan created or changed; a problem is a warning, not a failure."""
    ids = plan.changed_tables
    if not ids or not db.settings.analyze:
        return "analyze: nothing to do"
    # The ids are matched by the server, so a dot inside a name cannot split it wrongly.
    rows = db.runner.query_json(
        "SELECT coalesce(json_agg(json_build_array(n.nspname, c.relname) ORDER BY n.nspname, c.relname), '[]') "
        "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p', 'm') AND 'table:' || n.nspname || '.' || c.relname = ANY (ARRAY["
        + ", ".join(lit(i) for i in ids) + "]::text[]);") or []
    if not rows:
        return "analyze: nothing to do"
    names = [q(schema, name) for schema, name in rows]
    try:
        # VACUUM cannot run in a transaction block: psql sends each statement on its own
        db.runner.run_script("".join(f"VACUUM (ANALYZE) {name};\n" for name in names))
    except PsqlError as e:
        return f"analyze: warning: {e.message}"
    return f"analyze: VACUUM ANALYZE {len(names)} table(s): {', '.join(names)}"


def measure_before(db: Database, plan: Plan) -> dict[str, sizes.TableSize]:
    """The changed tables' sizes before the change; a failure to measure is a warning, not a refusal."""
    try:
        return sizes.measure(db.runner, plan.changed_tables)
    except PsqlError as e:
        db.say(f"sizes: warning: {e.message}", fg="yellow")
        return {}


def record_sizes(db: Database, plan: Plan, run_id: int, before: dict[str, sizes.TableSize]) -> list[sizes.SizeChange]:
    """Each changed table's size and row estimate before and after: in the ledger row, on the
    console and appended to the plan page the run showed (when there is one). A failure to measure
    is a warning: the change itself is done."""
    try:
        changes = sizes.compare(before, sizes.measure(db.runner, plan.changed_tables), plan.changed_tables)
    except PsqlError as e:
        db.say(f"sizes: warning: {e.message}", fg="yellow")
        return []
    ledger.update(db.runner, run_id, sizes=sizes.to_json(changes))
    for c in changes:
        db.say(f"sizes: {c.describe()}")
    shown = planfiles.latest_for(db.settings, db.label, plan)
    if shown is not None and changes:
        planfiles.add_to_page(shown, sizes.markdown(changes, f"ledger run #{run_id}"))
    return changes


def apply_deploy(db: Database, plan: Plan, backup_due: bool, restore_command: RestoreCommand) -> bool:
    """The changing part of the runbook. Returns False (the host fails) on any problem,
    after recording it in the ledger. Closes `db`."""
    s = db.settings
    run_id: int | None = None
    taken: backups.Backup | None = None
    changed = False
    try:
        run_id = ledger.start(db.runner, ensure_first=True, run=ledger.RunStart(
            action="deploy", environment=s.env, actor=s.resolved_actor(), host=db.host_name, target=db.label,
            source_hash=plan.source_hash, desired_hash=plan.desired_hash, before_hash=plan.actual_hash,
            plan_hash=plan.plan_hash, plan=plan.to_json()))
        db.say(f"ledger: run #{run_id} started ({s.env}, {db.label})")
        if backup_due:
            taken = backups.take(db.shell, db.runner, s, db.label, progress=db.reporter())
            ledger.update(db.runner, run_id, backup=taken.to_json())
            db.say(f"backup: {taken.path} ({preflight.human(taken.size or 0)}, sha256 {taken.sha256}) verified")
            pruned = backups.prune(db.shell, s, db.label)
            if pruned:
                db.say(f"backup: pruned {len(pruned)} old backup(s): {', '.join(pruned)}")
        elif s.backup:
            db.say("backup: skipped, the plan is empty")
        after_hash = plan.actual_hash
        if not plan.is_empty:
            size_before = measure_before(db, plan)
            db.say(f"converge: applying {len(plan.steps)} step(s)"
                   + (f" and {len(plan.data_blocks)} data block(s)" if plan.data_blocks else ""))
            changed = True
            result = db.engine.execute(plan, progress=db.reporter())
            after_hash = result.actual_hash
            db.say(f"converge: done in {result.seconds:.2f}s; {db.label} is at the desired schema")
            db.say(analyze(db, plan))
            record_sizes(db, plan, run_id, size_before)
        report = smoke.run(db.runner, smoke.load(s.smoke))
        db.say(f"smoke: {sum(r.passed for r in report.results)}/{len(report.results)} check(s) passed")
        for line in report.lines():
            db.say(line, fg=None if "FAIL" not in line[:8] else "red")
        if not report.passed:
            hint = rollback_hint(db, taken, restore_command)
            ledger.finish(db.runner, run_id, "smoke_failed", after_hash=after_hash, smoke=report.to_json(),
                          message="smoke checks failed: " + ", ".join(r.name for r in report.results if not r.passed)
                          + "; " + hint.replace("\n", " "))
            db.say(f"FAILED: {db.label}: smoke checks failed; the run is recorded as #{run_id}.", fg="red",
                   bold=True)
            db.say(hint, fg="yellow")
            return False
        outcome = "converged" if changed else "unchanged"
        ledger.finish(db.runner, run_id, outcome, after_hash=after_hash, smoke=report.to_json())
        db.say(f"ledger: run #{run_id} {outcome}", fg="green")
        return True
    except Exception as e:  # anything: record it, explain it, fail this host only
        message = f"{type(e).__name__}: {e}" if not isinstance(e, (PsqlError, backups.BackupError)) else str(e)
        if run_id is not None:
            try:
                # where the schema stands now: the steps before a failed one stay applied
                after = db.actual_hash() if changed else None
                ledger.finish(db.runner, run_id, "failed", message=message[:2000], after_hash=after)
            except Exception as e2:  # the database may be gone: say so, keep the first error
                db.say(f"ledger: could not record the failure: {e2}", fg="red")
        db.say(f"FAILED: {db.label}: {message}", fg="red", bold=True)
        if changed:
            db.say(rollback_hint(db, taken, restore_command), fg="yellow")
        elif run_id is not None:
            db.say("nothing was changed in the schema.", fg="yellow")
        return False
    finally:
        db.close()
