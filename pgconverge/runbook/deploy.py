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

import time
from dataclasses import dataclass, field, replace
from typing import Callable

from pgconverge.errors import PlanError
from pgconverge.exec.runner import PsqlError
from pgconverge.planning import hazards as hz
from pgconverge.planning import unmanaged
from pgconverge.planning.hazards import Hazard
from pgconverge.planning.steps import Plan
from pgconverge.quoting import lit, q
from pgconverge.runbook import backup as backups
from pgconverge.runbook import gate, ledger, planfiles, preflight, remedies, signoff, sizes, smoke, smoke_commands
from pgconverge.runbook.database import Database
from pgconverge.runbook.planfiles import write_plan_files
from pgconverge.source import SourceError

# The plan hash shown in the dry run, by (host, database): the real run refuses when the plan moved.
ShownPlans = dict[tuple[str, str], str]


# The command line that restores a database (host, database label, backup path or None for the
# newest): the deploy tool knows how it is invoked, the runbook only prints it.
RestoreCommand = Callable[[str, str, "str | None"], str]


# The stages a refusal belongs to, in the order of the deploy's operations: the first operation of
# that stage (or any later one, when a deploy leaves that one out) reports it and stops the host.
PREFLIGHT, GATE = "preflight", "gate"


@dataclass(frozen=True)
class Refusal:
    """Why a real run would be refused: what refused, why, and what would allow it."""

    stage: str  # PREFLIGHT or GATE
    what: str  # preflight, the proof, sql/, policy, backups, check mode, the <env> gate, the target
    why: str
    remedy: str = ""
    pending: bool = False  # check mode: changes are pending (not a refusal of the plan itself)

    def text(self) -> str:
        lines = [self.why]
        if self.remedy:
            lines.append(f"  remedy: {self.remedy}")
        return "\n".join(lines)


@dataclass
class Checked:
    """The outcome of the read-only part of a deploy."""

    plan: Plan | None = None
    refusal: Refusal | None = None
    backup_due: bool = False
    work: bool = False  # something to do (a change, or a verification run)

    @property
    def problem(self) -> str | None:
        return self.refusal.text() if self.refusal else None

    def summary(self) -> str:
        """One line for the dry run: what the real run would do."""
        if self.refusal:
            return self.refusal.why.splitlines()[0]
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


def _planning_refusal(db: Database, e: Exception) -> Refusal:
    """A plan that cannot be made is refused before anything changes: the proof, sql/, a data block."""
    from pgconverge.proof import NotProved

    if isinstance(e, NotProved):
        return Refusal(PREFLIGHT, "the proof", f"{db.label}: refused by the proof, nothing was changed: {e}",
                       "declare the objects named above in sql/ as PostgreSQL keeps them (the differing lines "
                       "show how), or make the change in two deploys")
    return Refusal(PREFLIGHT, "sql/", f"{db.label}: the plan cannot be made, nothing was changed: {e}",
                   "correct sql/ at the file and line named above")


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
        return Checked(refusal=Refusal(PREFLIGHT, "preflight", f"{db.label}: preflight failed, nothing was changed:\n"
                                       + "\n".join(f"  {p}" for p in report.problems),
                                       "each line above says what to change"), work=True)
    first = db.take_first_look()  # read along with the preflight, for this check only
    look = first.ledger if first else None
    try:
        plan = db.engine.plan(first.fingerprint if first else None)
    except (PlanError, SourceError, PsqlError, ValueError) as e:
        return Checked(refusal=_planning_refusal(db, e), work=True)
    if executing:  # the real run, even one with nothing to do; a dry run writes nothing
        db.note_interrupted(lambda: plan.actual_hash, "a deploy", look)
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
                                snapshot=ledger.snapshot_note(db.runner, look))
        db.say(f"plan files: {path}.sql, {path}.md, {path}.json")
    if verdict.note:
        db.say(f"gate: {verdict.note}", fg="red" if verdict.refusal else "green")
    backup_due = s.backup and (not plan.is_empty or s.backup_when_unchanged)
    work = not plan.is_empty or s.verify_unchanged or (s.backup and s.backup_when_unchanged)
    result = Checked(plan, None, backup_due, work)
    result.refusal = _refusal(db, plan, refused, verdict, shown if executing else None)
    if result.refusal is None and backup_due:
        preflight.check_space(db.shell, s, report)
        db.say(f"  - {report.notes[-1]}" if report.ok else f"  ! {report.problems[-1]}",
               fg=None if report.ok else "red")
        if not report.ok:
            result.refusal = Refusal(PREFLIGHT, "preflight", f"{db.label}: preflight failed, nothing was changed: "
                                     f"{report.problems[-1]}",
                                     "free space in pgconverge_backup_dir, point it at a larger disk, or lower "
                                     "pgconverge_backup_space_factor")
    return result


def _refusal(db: Database, plan: Plan, refused: list[Hazard], verdict: GateLine, shown: str | None) -> Refusal | None:
    """Why the deploy must not go on (the first reason, in order of importance), or None."""
    s = db.settings
    if shown is not None and shown != plan.plan_hash:
        return Refusal(GATE, "the target", f"{db.label}: the target changed between the plan shown and now; "
                       "nothing was run.", "run again to review the new plan")
    if refused:
        drift = unmanaged.remedy(plan, refused)
        return Refusal(GATE, "policy", f"{db.label}: refused by policy, nothing was run:\n" + "\n".join(
            f"  {line}" for line in remedies.refusal_lines(refused)) + (f"\n  {drift}" if drift else ""))
    if not s.backup and any(x.name == hz.DELETES_DATA for x in plan.hazards):
        # deleted rows can only come back from a backup taken by this very run
        return Refusal(GATE, "backups", f"{db.label}: the plan deletes data but backups are off "
                       "(pgconverge_backup = False); nothing was run.",
                       "turn backups on for this run: --data pgconverge_backup=true")
    if verdict.refusal:
        return Refusal(GATE, f"the {s.env} gate", f"{db.label}: the {s.env} gate refused, nothing was changed: "
                       f"{verdict.refusal}", gate_remedy(s.env, verdict.refusal))
    if s.check and not plan.is_empty:
        return Refusal(GATE, "check mode", f"{db.label}: {len(plan.steps)} change(s) and {len(plan.data_blocks)} "
                       "data block(s) pending (check mode), nothing was run",
                       "deploy them (without pgconverge_check), or bring sql/ in line with the database", pending=True)
    return None


def gate_remedy(env: str, reason: str) -> str:
    """What gets a deploy past the gate: a (new) sign-off, after the evidence it needs."""
    if "drifted" in reason:
        return (f"find out who changed {env} and why; put it back (or declare the change in sql/), then sign "
                f"off again: pgconverge signoff --env {env} --key KEY")
    if "staging" in reason and "ledger" in reason:
        return "deploy staging again, then sign off again: pgconverge signoff --env " + env + " --key KEY"
    return (f"converge and smoke-test staging with this sql/, then sign off: pgconverge signoff --env {env} "
            "--key KEY (signed by a key in the allowed signers), and commit the sign-off")


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


# --------------------------------------------------------------------------- the changing part, in parts

# The parts of a deploy that change something, in the order they run; the pyinfra deploy runs each as
# an operation of its own, the CLI one after the other (``apply_deploy``).
PARTS = ("backup", "extensions", "data_before", "schema", "data_after", "analyze", "smoke", "record")

EXTENSION_KINDS = frozenset({"create_extension", "alter_extension"})


def split_extensions(plan: Plan) -> tuple[list, list]:
    """The plan's CREATE / ALTER EXTENSION steps (with the CREATE SCHEMA steps they need), and the rest.

    They run first, as the runbook's "enable pgcrypto", when nothing before them in the plan is
    needed by them (a step that makes what they require, or drops what they make); otherwise they
    stay where the plan put them, in the schema's part."""
    steps = plan.steps
    wanted = {i for i, st in enumerate(steps) if st.kind in EXTENSION_KINDS}
    needs = set().union(*(steps[i].requires for i in wanted)) if wanted else set()
    wanted |= {i for i, st in enumerate(steps) if st.kind == "create_schema" and st.provides & needs}
    if not wanted:
        return [], list(steps)
    moved = [steps[i] for i in sorted(wanted)]
    made = set().union(*(st.provides | st.after for st in moved))
    wants = set().union(*(st.requires for st in moved))
    for i, st in enumerate(steps[:max(wanted)]):
        if i not in wanted and (st.provides & wants or st.removes & made):
            return [], list(steps)
    return moved, [st for i, st in enumerate(steps) if i not in wanted]


@dataclass
class DeployRun:
    """One database's real run, shared by the parts of the deploy: what they found and did."""

    db: Database
    checked: Checked
    restore_command: RestoreCommand
    run_id: int | None = None
    taken: backups.Backup | None = None
    changed: bool = False  # a part changed the schema or the data
    after_hash: str | None = None
    smoke: smoke.SmokeReport | None = None
    size_before: dict[str, sizes.TableSize] | None = None  # measured before the first change
    # runs pgconverge_smoke_commands on their hosts (set by the pyinfra layer; None: no commands)
    run_commands: Callable[[], list[smoke_commands.CommandResult]] | None = None
    commands: list[smoke_commands.CommandResult] | None = None
    failed: bool = False
    closed: bool = False
    done: list[str] = field(default_factory=list)

    @property
    def plan(self) -> Plan:
        return self.checked.plan

    def part(self, name: str) -> Plan:
        """The piece of the plan a part runs (an empty plan: nothing to do there)."""
        ext, rest = split_extensions(self.plan)
        if name == "extensions":
            return replace(self.plan, steps=ext, data_blocks=[])
        if name == "schema":
            # what a deploy without the extensions or the "before" data operation left to it, in the
            # plan's own order
            return replace(self.plan, steps=rest if "extensions" in self.done else list(self.plan.steps),
                           data_blocks=[] if "data_before" in self.done else
                           [b for b in self.plan.data_blocks if b.when == "before"])
        if name in ("data_before", "data_after"):
            when = name.split("_")[1]
            return replace(self.plan, steps=[], data_blocks=[b for b in self.plan.data_blocks if b.when == when])
        raise ValueError(name)

    def has_work(self, name: str) -> bool:
        """Whether part `name` would change something."""
        if self.failed or not self.checked.work or self.checked.refusal:
            return False
        if name == "backup":
            return self.run_id is None  # it opens the ledger row, and takes the backup when one is due
        if name in ("extensions", "schema", "data_before", "data_after"):
            return not self.part(name).is_empty
        if name == "analyze":
            return not self.plan.is_empty and bool(self.plan.changed_tables) and self.db.settings.analyze
        if name == "smoke":
            return self.smoke is None
        return name == "record"

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.db.close()


def _say_failure(run: DeployRun, e: BaseException) -> None:
    db = run.db
    message = f"{type(e).__name__}: {e}" if not isinstance(e, (PsqlError, backups.BackupError)) else str(e)
    if run.run_id is not None:
        try:
            # where the schema stands now: the steps before a failed one stay applied
            after = db.actual_hash() if run.changed else None
            ledger.finish(db.runner, run.run_id, "failed", message=message[:2000], after_hash=after)
        except Exception as e2:  # the database may be gone: say so, keep the first error
            db.say(f"ledger: could not record the failure: {e2}", fg="red")
    db.say(f"FAILED: {db.label}: {message}", fg="red", bold=True)
    if run.changed:
        db.say(rollback_hint(db, run.taken, run.restore_command), fg="yellow")
    elif run.run_id is not None:
        db.say("nothing was changed in the schema.", fg="yellow")


def run_part(run: DeployRun, name: str) -> bool:
    """Run one part of the deploy; False (the host fails) on any problem, after recording it in the
    ledger. The last part (``record``), or a failure, closes the database."""
    if run.failed:
        return False
    try:
        ok = _PARTS[name](run)
    except Exception as e:  # anything: record it, explain it, fail this host only
        _say_failure(run, e)
        ok = False
    run.done.append(name)
    if not ok:
        run.failed = True
    if not ok or name == "record":
        run.close()
    return ok


def _start(run: DeployRun) -> None:
    """The run's ledger row (``running``), opened by the first part that changes something."""
    if run.run_id is not None:
        return
    db, s, plan = run.db, run.db.settings, run.plan
    run.after_hash = plan.actual_hash
    run.run_id = ledger.start(db.runner, ensure_first=True, run=ledger.RunStart(
        action="deploy", environment=s.env, actor=s.resolved_actor(), host=db.host_name, target=db.label,
        source_hash=plan.source_hash, desired_hash=plan.desired_hash, before_hash=plan.actual_hash,
        plan_hash=plan.plan_hash, plan=plan.to_json()))
    db.say(f"ledger: run #{run.run_id} started ({s.env}, {db.label})")


def _backup(run: DeployRun) -> bool:
    db, s = run.db, run.db.settings
    _start(run)
    if run.checked.backup_due:
        run.taken = backups.take(db.shell, db.runner, s, db.label, progress=db.reporter())
        ledger.update(db.runner, run.run_id, backup=run.taken.to_json())
        db.say(f"backup: {run.taken.path} ({preflight.human(run.taken.size or 0)}, sha256 {run.taken.sha256}) verified")
        pruned = backups.prune(db.shell, s, db.label)
        if pruned:
            db.say(f"backup: pruned {len(pruned)} old backup(s): {', '.join(pruned)}")
    elif s.backup:
        db.say("backup: skipped, the plan is empty")
    return True


def _apply(run: DeployRun, name: str, what: str, verify: bool = False) -> bool:
    part = run.part(name)
    if part.is_empty:
        return True
    db = run.db
    _start(run)
    db.say(f"{what}: applying " + ", ".join(x for x in (
        f"{len(part.steps)} step(s)" if part.steps else "",
        f"{len(part.data_blocks)} data block(s)" if part.data_blocks else "") if x))
    if run.size_before is None:
        run.size_before = measure_before(db, run.plan)
    run.changed = True
    started = time.monotonic()
    db.engine.run(part, progress=db.reporter())
    if verify:
        run.after_hash = db.engine.verify(run.plan, data_blocks=False)
        db.say(f"{what}: done in {time.monotonic() - started:.2f}s; {db.label} is at the desired schema")
    else:
        db.say(f"{what}: done in {time.monotonic() - started:.2f}s")
    return True


def _analyze(run: DeployRun) -> bool:
    if run.changed:
        run.db.say(analyze(run.db, run.plan))
    return True


def _smoke(run: DeployRun) -> bool:
    db = run.db
    _start(run)
    _sizes_after(run)
    report = run.smoke = smoke.run(db.runner, smoke.load(db.settings.smoke))
    db.say(f"smoke: {sum(r.passed for r in report.results)}/{len(report.results)} check(s) passed")
    for line in report.lines():
        db.say(line, fg=None if "FAIL" not in line[:8] else "red")
    commands = run.commands = run.run_commands() if run.run_commands else None
    if commands is not None:
        db.say(f"smoke commands: {sum(r.passed for r in commands)}/{len(commands)} passed")
        for line in smoke_commands.lines(commands):
            db.say(line, fg="red" if line.startswith("  FAIL") else None)
    failed = [r.name for r in report.results if not r.passed] + [
        f"{r.name} on {r.host}" for r in commands or [] if not r.passed]
    if not failed:
        return True
    hint = rollback_hint(db, run.taken, run.restore_command)
    if run.run_id is not None:
        ledger.finish(db.runner, run.run_id, "smoke_failed", after_hash=run.after_hash, smoke=report.to_json(),
                      smoke_commands=_commands_json(run),
                      message="smoke checks failed: " + ", ".join(failed) + "; " + hint.replace("\n", " "))
    db.say(f"FAILED: {db.label}: smoke checks failed; the run is recorded as #{run.run_id}.", fg="red", bold=True)
    db.say(hint, fg="yellow")
    return False


def _sizes_after(run: DeployRun) -> None:
    """Once, after ANALYZE (fresh row estimates) and before the smoke checks can fail the run."""
    if run.changed and run.size_before is not None:
        before, run.size_before = run.size_before, None
        record_sizes(run.db, run.plan, run.run_id, before)


def _commands_json(run: DeployRun) -> dict | None:
    return smoke_commands.report_json(run.commands) if run.commands is not None else None


def _record(run: DeployRun) -> bool:
    _start(run)
    _sizes_after(run)
    outcome = "converged" if run.changed else "unchanged"
    ledger.finish(run.db.runner, run.run_id, outcome, after_hash=run.after_hash,
                  smoke=run.smoke.to_json() if run.smoke else None, smoke_commands=_commands_json(run))
    run.db.say(f"ledger: run #{run.run_id} {outcome}", fg="green")
    return True


_PARTS: dict[str, Callable[[DeployRun], bool]] = {
    "backup": _backup,
    # the last part with steps checks that the database converged
    "extensions": lambda run: _apply(run, "extensions", "extensions", verify=run.part("schema").is_empty),
    "data_before": lambda run: _apply(run, "data_before", "data blocks before the schema"),
    "schema": lambda run: _apply(run, "schema", "converge", verify=True),
    "data_after": lambda run: _apply(run, "data_after", "data blocks after the schema"),
    "analyze": _analyze,
    "smoke": _smoke,
    "record": _record,
}


def apply_deploy(db: Database, plan: Plan, backup_due: bool, restore_command: RestoreCommand,
                 checked: Checked | None = None) -> bool:
    """The changing part of the runbook, every part in order. Returns False (the host fails) on any
    problem, after recording it in the ledger. Closes `db`."""
    checked = checked or Checked(plan, None, backup_due, True)
    run = DeployRun(db, checked, restore_command)
    try:
        for name in PARTS:
            if run.has_work(name) and not run_part(run, name):
                return False
        return True
    finally:
        run.close()
