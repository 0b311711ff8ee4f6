"""The runbooks as pyinfra operations: ``deploy``, ``restore`` and ``drill``.

``deploy`` is the whole deployment runbook for one database:

    preflight      connectivity, version, extensions, privileges     (read-only)
    plan           shown with its hazards, written to plans/          (read-only)
    gate           the sign-off, where the environment requires one   (read-only)
    backup         pg_dump, verified, recorded, old ones pruned
    converge       the plan, applied by the engine (advisory lock, lock_timeout, retries)
    analyze        VACUUM ANALYZE of the tables created or changed
    smoke          the checks in sql/smoke/
    ledger         one row per run in the database itself

Every read-only step runs both at prepare time (what ``--dry`` shows) and again at
execute time before anything changes. A failure stops that host: the operation
yields a Python callback that prints what went wrong and what to do, and returns
False (pyinfra marks the host failed; other hosts go on).
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
from pyinfra import host
from pyinfra.api import FunctionCommand, StringCommand, operation

from pgconverge.runbook import backup as backups
from pgconverge.planning import hazards as hz
from pgconverge.catalog import introspect
from pgconverge.runbook import ledger, preflight, signoff, smoke
from pgconverge.api import Engine, Options
from pgconverge.pyinfra.host import HostRunner, say, show_plan
from pgconverge.pyinfra.host import executing as _executing
from pgconverge.pyinfra.host import fail_command as _fail
from pgconverge.planning.steps import Plan
from pgconverge.catalog.introspect import catalog_hash
from pgconverge.quoting import lit, q
from pgconverge.runbook.shell import sh
from pgconverge.exec.runner import PsqlError, conn_from_spec
from pgconverge.runbook.settings import EnvSettings, safe_name
from pgconverge.catalog.shadow import default_cache_dir
from pgconverge.source import load_source

# Plans shown at prepare time, by (host, database): execute refuses when the plan moved.
_SHOWN: dict[tuple[str, str], str] = {}


def inventory_hint(settings: EnvSettings) -> str:
    return f"inventory/{settings.env}.py"


class Database:
    """One database of one host during a run: its connection, engine and label."""

    def __init__(self, host_: Any, spec: str | dict, settings: EnvSettings):
        self.host = host_
        self.settings = settings
        self.name = spec.get("name") if isinstance(spec, dict) else None
        self.conn = conn_from_spec(spec)
        psql = settings.tool("psql")
        self.runner = HostRunner(host_, self.conn, psql)
        self.shadow = HostRunner(host_, conn_from_spec(settings.shadow), psql) if settings.shadow else None
        # parsed once per sql/ content (cached): the body runs at plan and execute time, per database
        self.source = load_source(list(settings.sql) if len(settings.sql) > 1 else settings.sql[0],
                                  cache_dir=default_cache_dir())
        self.options = Options.build(**settings.engine_options())
        self.engine = Engine(self.runner, self.source, self.options, shadow=self.shadow)
        self.label = self.name or self.conn.dbname or self.conn.describe()
        self.info: dict[str, Any] | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.host.name, self.label)

    def preflight(self) -> preflight.PreflightReport:
        report = preflight.check(self.host, self.runner, self.settings, self.source, shadow=self.shadow)
        if report.info:
            self.info = report.info
            if not self.name:
                self.label = report.info["database"]
        return report

    def actual_hash(self, engine: Engine | None = None, reuse: bool = False) -> str:
        """The schema hash of what is there now (scoped like the plan's). With `reuse`, from the
        catalog the engine read last (after ``execute``: its own convergence check), saving a round trip."""
        engine = engine or self.engine
        doc = getattr(engine, "last_doc", None) if reuse else None
        return catalog_hash(engine.scoped(introspect.parse_catalog(doc or engine.actual_doc())))

    def close(self) -> None:
        self.runner.close()
        if self.shadow:
            self.shadow.close()


# --------------------------------------------------------------------------- plan files


def plan_paths(settings: EnvSettings, host_name: str, label: str) -> Path:
    return Path(settings.plans_dir) / safe_name(settings.env) / safe_name(host_name) / safe_name(label)


def plan_markdown(db: Database, plan: Plan, refused: list, gate_note: str | None) -> str:
    s = db.settings
    lines = [f"# Plan for {db.label} on {db.host.name} ({s.env})", "",
             f"- written: {datetime.now(timezone.utc).replace(microsecond=0).isoformat()}",
             f"- source (sql/) hash: `{plan.source_hash}`", f"- desired schema hash: `{plan.desired_hash}`",
             f"- starting schema hash: `{plan.actual_hash}`", f"- plan hash: `{plan.plan_hash}`",
             f"- steps: {len(plan.steps)} ({sum(1 for x in plan.steps if not x.transactional)} outside a "
             "transaction)", f"- tables created or changed: {', '.join(plan.changed_tables) or 'none'}"]
    if plan.data_blocks:
        lines.append(f"- one-time data blocks: {', '.join(b.name for b in plan.data_blocks)}")
    if gate_note:
        lines.append(f"- production gate: {gate_note}")
    if plan.hazards:
        refused_keys = {(h.name, h.object) for h in refused}
        lines += ["", "## Hazards", "", "| hazard | object | reason | policy |", "|---|---|---|---|"]
        for h in plan.hazards:
            policy = "REFUSED" if (h.name, h.object) in refused_keys else "allowed"
            lines.append(f"| {h.name} | `{h.object}` | {h.reason.replace('|', '/')} | {policy} |")
    for w in plan.warnings:
        lines.append(f"- warning: {w}")
    lines += ["", "## SQL", "", "```sql", plan.to_sql().rstrip() or "-- no changes", "```", ""]
    return "\n".join(lines)


def write_plan_files(db: Database, plan: Plan, refused: list, gate_note: str | None) -> Path:
    """plans/<env>/<host>/<database>.{sql,md,json}: what a reviewer reads and signs off."""
    base = plan_paths(db.settings, db.host.name, db.label)
    base.parent.mkdir(parents=True, exist_ok=True)
    base.with_suffix(".sql").write_text(plan.to_sql() or "-- no changes\n")
    base.with_suffix(".md").write_text(plan_markdown(db, plan, refused, gate_note))
    doc = plan.to_json()
    doc.update({"environment": db.settings.env, "host": db.host.name, "database": db.label,
                "refused": [{"name": h.name, "object": h.object, "reason": h.reason} for h in refused]})
    base.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    return base


# --------------------------------------------------------------------------- deploy


@dataclass
class Checked:
    """The outcome of the read-only part of a deploy."""

    plan: Plan | None = None
    problem: str | None = None
    backup_due: bool = False
    work: bool = False  # something to do (a change, or a verification run)


def _gate_line(db: Database, plan: Plan) -> tuple[str | None, str | None]:
    """(note for people, refusal) for environments that need a sign-off."""
    s = db.settings
    if not s.require_signoff:
        return None, None
    if plan.is_empty:
        return "nothing to change, no sign-off needed", None
    reason = signoff.gate(s.signoff_file, s.env, db.label, plan, db.source.sha256)
    if reason:
        return f"REFUSED: {reason}", reason
    found = signoff.load(s.signoff_file)
    return f"signed off by {found.approver} at {found.approved_at} ({s.signoff_file})", None


def check_deploy(db: Database, executing: bool) -> Checked:
    """Preflight, plan, policy and gate: everything before the first change. Prints as it goes."""
    s, h = db.settings, db.host
    report = db.preflight()
    for line in report.lines():
        say(h, line, fg=None if report.ok else "red")
    if not report.ok:
        return Checked(problem=f"{db.label}: preflight failed, nothing was changed:\n"
                       + "\n".join(f"  {p}" for p in report.problems), work=True)
    plan = db.engine.plan()
    refused = db.engine.policy().refused(plan.hazards)
    shown = _SHOWN.get(db.key)
    if not executing or shown is None:
        show_plan(h.name, db.label, plan, refused)
    gate_note, gate_refusal = _gate_line(db, plan)
    if not executing:
        _SHOWN[db.key] = plan.plan_hash
    if not executing or shown is None:  # with pyinfra -y the plan is first seen at execute time
        path = write_plan_files(db, plan, refused, gate_note)
        say(h, f"plan files: {path}.sql, {path}.md, {path}.json")
    if gate_note:
        say(h, f"gate: {gate_note}", fg="red" if gate_refusal else "green")
    backup_due = s.backup and (not plan.is_empty or s.backup_when_unchanged)
    work = not plan.is_empty or s.verify_unchanged or (s.backup and s.backup_when_unchanged)
    result = Checked(plan, None, backup_due, work)
    if executing and shown is not None and shown != plan.plan_hash:
        result.problem = (f"{db.label}: the target changed between the plan shown and now; nothing was run. "
                          "Run again to review the new plan.")
    elif refused:
        result.problem = f"{db.label}: refused by policy, nothing was run: " + "; ".join(
            f"{x.name}: {x.reason}" for x in refused)
    elif not s.backup and any(x.name == hz.DELETES_DATA for x in plan.hazards):
        # deleted rows can only come back from a backup taken by this very run
        result.problem = (f"{db.label}: the plan deletes data but backups are off (pgconverge_backup = False); "
                          "nothing was run. Turn backups on for this run.")
    elif s.check and not plan.is_empty:
        result.problem = f"{db.label}: {len(plan.steps)} change(s) pending (check mode), nothing was run"
    elif gate_refusal:
        result.problem = f"{db.label}: the {s.env} gate refused, nothing was changed: {gate_refusal}"
    elif backup_due:
        preflight.check_space(h, s, report)
        say(h, f"  - {report.notes[-1]}" if report.ok else f"  ! {report.problems[-1]}",
            fg=None if report.ok else "red")
        if not report.ok:
            result.problem = f"{db.label}: preflight failed, nothing was changed: {report.problems[-1]}"
    return result


def rollback_hint(db: Database, backup: backups.Backup | None) -> str:
    if backup is None:
        return "no backup was taken in this run; restore the newest one with:\n" \
               f"    pyinfra {inventory_hint(db.settings)} restore.py --limit '{db.host.name}' " \
               f"--data pgconverge_database={db.label}"
    return ("to roll back, put the backup taken before this run back:\n"
            f"    pyinfra {inventory_hint(db.settings)} restore.py --limit '{db.host.name}' "
            f"--data pgconverge_database={db.label} --data pgconverge_backup={backup.path}")


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


def apply_deploy(state, host, db: Database, plan: Plan, backup_due: bool) -> bool:  # noqa: ARG001
    """The changing part of the runbook. Returns False (the host fails) on any problem,
    after recording it in the ledger."""
    s = db.settings
    run_id: int | None = None
    taken: backups.Backup | None = None
    changed = False
    try:
        run_id = ledger.start(db.runner, ensure_first=True, run=ledger.RunStart(
            action="deploy", environment=s.env, actor=s.resolved_actor(), host=host.name, target=db.label,
            source_hash=plan.source_hash, desired_hash=plan.desired_hash, before_hash=plan.actual_hash,
            plan_hash=plan.plan_hash, plan=plan.to_json()))
        say(host, f"ledger: run #{run_id} started ({s.env}, {db.label})")
        if backup_due:
            taken = backups.take(host, db.runner.env(), s, db.label)
            ledger.update(db.runner, run_id, backup=taken.to_json())
            say(host, f"backup: {taken.path} ({preflight.human(taken.size or 0)}, sha256 {taken.sha256}) "
                      "verified")
            pruned = backups.prune(host, s, db.label)
            if pruned:
                say(host, f"backup: pruned {len(pruned)} old backup(s): {', '.join(pruned)}")
        elif s.backup:
            say(host, "backup: skipped, the plan is empty")
        after_hash = plan.actual_hash
        if not plan.is_empty:
            say(host, f"converge: applying {len(plan.steps)} step(s)"
                      + (f" and {len(plan.data_blocks)} data block(s)" if plan.data_blocks else ""))
            changed = True
            result = db.engine.execute(plan)
            after_hash = db.actual_hash(reuse=True)
            say(host, f"converge: done in {result.seconds:.2f}s; {db.label} is at the desired schema")
            say(host, analyze(db, plan))
        checks = smoke.load(s.smoke)
        report = smoke.run(db.runner, checks)
        say(host, f"smoke: {sum(r.passed for r in report.results)}/{len(report.results)} check(s) passed")
        for line in report.lines():
            say(host, line, fg=None if "FAIL" not in line[:8] else "red")
        if not report.passed:
            hint = rollback_hint(db, taken)
            ledger.finish(db.runner, run_id, "smoke_failed", after_hash=after_hash, smoke=report.to_json(),
                          message="smoke checks failed: " + ", ".join(r.name for r in report.results if not r.passed)
                          + "; " + hint.replace("\n", " "))
            say(host, f"FAILED: {db.label}: smoke checks failed; the run is recorded as #{run_id}.", fg="red",
                bold=True)
            say(host, hint, fg="yellow")
            return False
        outcome = "converged" if changed else "unchanged"
        ledger.finish(db.runner, run_id, outcome, after_hash=after_hash, smoke=report.to_json())
        say(host, f"ledger: run #{run_id} {outcome}", fg="green")
        return True
    except Exception as e:  # anything: record it, explain it, fail this host only
        message = f"{type(e).__name__}: {e}" if not isinstance(e, (PsqlError, backups.BackupError)) else str(e)
        if run_id is not None:
            try:
                # where the schema stands now: the steps before a failed one stay applied
                after = db.actual_hash() if changed else None
                ledger.finish(db.runner, run_id, "failed", message=message[:2000], after_hash=after)
            except Exception as e2:  # the database may be gone: say so, keep the first error
                say(host, f"ledger: could not record the failure: {e2}", fg="red")
        say(host, f"FAILED: {db.label}: {message}", fg="red", bold=True)
        if changed:
            say(host, rollback_hint(db, taken), fg="yellow")
        elif run_id is not None:
            say(host, "nothing was changed in the schema.", fg="yellow")
        return False
    finally:
        db.close()


@operation(is_idempotent=True)
def deploy(database: str | dict, settings: EnvSettings | None = None):
    """
    Deploy one database by the runbook: preflight, gate, backup, converge, VACUUM ANALYZE,
    smoke checks, ledger.

    + database: connection, a URL or a dict of libpq keywords (``dbname``, ``service``, ``host``,
      ``port``, ``user``, ``passfile``) plus ``url_env`` and an optional ``name`` (the label used
      in plan files, backups and sign-offs); never a password
    + settings: an ``EnvSettings``; default: read from the host's ``pgconverge_*`` group data

    **Example:**

    .. code:: python

        from pgconverge import operations as pgc

        pgc.deploy(name="Deploy app", database={"url_env": "STAGING_DATABASE_URL"})
    """
    settings = settings or EnvSettings.from_data(host.data)
    executing = _executing(host)
    try:
        db = Database(host, database, settings)
    except Exception as e:  # a bad spec or sql/: report on this host only
        if executing:
            yield _fail(f"cannot start the deploy: {e}")
        else:
            say(host, f"cannot start the deploy: {e}", fg="red")
            yield StringCommand("#", "deploy", "will", "fail")
        return
    try:
        checked = check_deploy(db, executing)
    except Exception as e:
        db.close()
        if executing:
            yield _fail(f"{db.label}: {e}")
        else:
            say(host, f"{db.label}: {e}", fg="red")
            yield StringCommand("#", "deploy", "will", "fail")
        return
    if not checked.work:
        db.close()
        say(host, f"nothing to do: {db.label} is converged")
        host.noop(f"database {db.label} is converged")
        return
    if not executing:
        db.close()
        what = checked.problem.splitlines()[0] if checked.problem else (
            f"{len(checked.plan.steps)} step(s)" if checked.plan and not checked.plan.is_empty else "verify")
        yield StringCommand("#", "pgconverge", "deploy", db.label + ":", what)
        return
    if checked.problem:
        db.close()
        yield _fail(checked.problem)
        return
    yield FunctionCommand(apply_deploy, (db, checked.plan, checked.backup_due), {})


# --------------------------------------------------------------------------- restore


def _belongs(host_: Any, settings: EnvSettings, label: str, wanted: str, several: bool) -> bool:
    """Whether the backup named on the command line is this database's. On a host with one
    database anything goes (a wrong name fails later, loudly); with several, the file must be in
    this database's folder (or the database be named with pgconverge_database)."""
    if not several:
        return True
    if "/" in wanted:
        return wanted.rsplit("/", 1)[0].rstrip("/") == backups.folder(settings, label)
    return sh(host_, f"[ -f {shlex.quote(backups.folder(settings, label) + '/' + wanted)} ]").ok


def _selected(settings: EnvSettings, label: str, only: str | None) -> bool:
    return not only or only in (label, safe_name(label))


def _confirm(host_: Any, db: Database, chosen: backups.Backup, confirm: str | None) -> str | None:
    """None when the restore may go on, else why not."""
    if not db.settings.confirm_restore or str(confirm or "").lower() in ("yes", "y", "true", "1"):
        return None
    if not sys.stdin.isatty():
        return (f"restoring {db.settings.env} needs a confirmation and stdin is not a terminal: "
                "pass --data pgconverge_confirm=yes")
    answer = click.prompt(f"{host_.print_prefix}Restore {chosen.path} into {db.settings.env} database "
                          f"{db.label}? Every change since the backup is lost. Type the database name to confirm",
                          default="", show_default=False, err=True)
    return None if answer.strip() == db.label else "not confirmed; nothing was changed"


def apply_restore(state, host, db: Database, chosen: backups.Backup, expected: str | None,  # noqa: ARG001
                  before_hash: str) -> bool:
    s = db.settings
    try:
        version = int((db.info or {}).get("server_version") or 150000)
        say(host, f"restore: replaying {chosen.path} into {db.label} in one transaction")
        backups.restore(host, db.runner.env(), s, chosen, version)
        after = db.actual_hash()
        if expected and after != expected:
            outcome, msg = "failed", (f"restored {chosen.path}, but the schema hash {after[:12]} differs from the "
                                      f"{expected[:12]} recorded when the backup was taken")
        else:
            outcome = "restored"
            msg = f"restored {chosen.path}" + (", schema hash verified against the ledger" if expected else
                                               " (no ledger record of this backup to verify against)")
        run_id = ledger.record(db.runner, ledger.RunStart(
            action="restore", environment=s.env, actor=s.resolved_actor(), host=host.name, target=db.label,
            desired_hash=expected, before_hash=before_hash, backup=chosen.to_json()),
            outcome, after_hash=after, message=msg)
        say(host, f"restore: {msg} (ledger run #{run_id})", fg="green" if outcome == "restored" else "red")
        return outcome == "restored"
    except Exception as e:
        say(host, f"FAILED: restore of {db.label}: {e}", fg="red", bold=True)
        return False
    finally:
        db.close()


@operation()
def restore(database: str | dict, settings: EnvSettings | None = None, backup: str | None = None,
            confirm: str | None = None, only: str | None = None, several: bool = False):
    """
    Put a backup back: the newest of the database's backups, or ``backup``.

    + database: connection spec, as for ``deploy``
    + settings: an ``EnvSettings``; default: from the host's group data
    + backup: a backup path (or a file name in the database's backup folder); default: the newest
    + confirm: ``"yes"`` to skip the question environments with ``pgconverge_confirm_restore`` ask
    + only: restore only the database with this label (hosts carrying several)
    + several: the host carries several databases: a ``backup`` then applies only to the database
      whose folder holds it

    **Example:**

    .. code:: python

        pgc.restore(name="Restore app", database={"url_env": "PRODUCTION_DATABASE_URL"},
                    backup="backups/production/app/app-20250701T010101Z.dump")
    """
    settings = settings or EnvSettings.from_data(host.data)
    executing = _executing(host)
    db = None
    try:
        db = Database(host, database, settings)
        picked = _pick_backup(host, db, settings, backup, only, several, "restore")
        if picked is None:
            return
        chosen, size, sha, run = picked
        backups.verify(host, settings, chosen)
        expected = run.before_hash if run else None
        took = f"taken by run #{run.id} at {run.started_at}" if run else "not in this database's ledger"
        say(host, f"restore: {chosen.path} ({preflight.human(size)}, sha256 {sha[:16]}..., {took}) "
                  f"-> {settings.env} database {db.label}", bold=True)
        if not executing:
            db.close()
            yield StringCommand("#", "pgconverge", "restore", chosen.path)
            return
        refusal = _confirm(host, db, chosen, confirm)
        if refusal:
            db.close()
            yield _fail(refusal)
            return
        before_hash = db.actual_hash()
    except Exception as e:
        if db:
            db.close()
        if executing:
            yield _fail(f"restore: {e}")
        else:
            say(host, f"restore: {e}", fg="red")
            yield StringCommand("#", "restore", "will", "fail")
        return
    yield FunctionCommand(apply_restore, (db, chosen, expected, before_hash), {})


def _pick_backup(host_, db: Database, settings: EnvSettings, backup: str | None, only: str | None,
                 several: bool, verb: str) -> tuple[backups.Backup, int, str, ledger.Run | None] | None:
    """Preflight, then the backup a restore or drill works on, its size and sha256, and the
    ledger run that took it; None when this database is not the one selected."""
    report = db.preflight()
    if not report.info:
        raise RuntimeError("; ".join(report.problems))
    if not _selected(settings, db.label, only) or (
            backup and not only and not _belongs(host_, settings, db.label, backup, several)):
        db.close()
        host_.noop(f"{verb}: {db.label} not selected")
        return None
    chosen = backups.choose(host_, settings, db.label, backup)
    size, sha = backups.checksum_matches(host_, chosen, None)
    return chosen, size, sha, ledger.run_for_backup(db.runner, sha)


# --------------------------------------------------------------------------- drill


def apply_drill(state, host, db: Database, chosen: backups.Backup, run: ledger.Run) -> bool:  # noqa: ARG001
    """Restore into a scratch database, compare its schema hash with the ledger, drop it, record."""
    import secrets

    s = db.settings
    server = db.shadow or db.runner
    scratch = f"pgconverge_drill_{secrets.token_hex(5)}"
    outcome, msg, got = "failed", "", None
    try:
        server.run_script(f"CREATE DATABASE {q(scratch)} TEMPLATE template0;\n")
        try:
            scratch_runner = server.for_database(scratch)
            say(host, f"drill: restoring {chosen.path} into scratch database {scratch}")
            backups.replay(host, scratch_runner.env(), s, chosen)
            scratch_engine = Engine(scratch_runner, db.source, db.options)
            got = db.actual_hash(scratch_engine)
        finally:
            server.run_script(f"DROP DATABASE IF EXISTS {q(scratch)} WITH (FORCE);\n")
        expected = run.before_hash
        if got == expected:
            outcome, msg = "passed", (f"backup {chosen.path} restores to schema {got[:12]}, as recorded by run "
                                      f"#{run.id} when it was taken")
        else:
            msg = (f"backup {chosen.path} restores to schema {(got or '?')[:12]}, but run #{run.id} recorded "
                   f"{(expected or '?')[:12]} when it was taken")
    except Exception as e:
        msg = f"drill could not restore {chosen.path}: {e}"
    try:
        run_id = ledger.record(db.runner, ledger.RunStart(
            action="drill", environment=s.env, actor=s.resolved_actor(), host=host.name, target=db.label,
            desired_hash=run.before_hash, backup=chosen.to_json()), outcome, after_hash=got, message=msg)
        msg += f" (ledger run #{run_id})"
    except Exception as e:
        msg += f"; the ledger could not record it: {e}"
    finally:
        db.close()
    say(host, f"drill: {outcome.upper()}: {msg}", fg="green" if outcome == "passed" else "red", bold=True)
    return outcome == "passed"


@operation()
def drill(database: str | dict, settings: EnvSettings | None = None, backup: str | None = None,
          only: str | None = None, several: bool = False):
    """
    The restore drill ("test restore procedure"): restore the newest backup (or ``backup``) into
    a scratch database, check its schema hash against the ledger run that took it, drop it.

    + database: connection spec, as for ``deploy``
    + settings: an ``EnvSettings``; default: from the host's group data
    + backup: a backup path or file name; default: the newest
    + only: drill only the database with this label
    + several: as for ``restore``

    **Example:**

    .. code:: python

        pgc.drill(name="Restore drill", database={"url_env": "PRODUCTION_DATABASE_URL"})
    """
    settings = settings or EnvSettings.from_data(host.data)
    executing = _executing(host)
    db = None
    try:
        db = Database(host, database, settings)
        picked = _pick_backup(host, db, settings, backup, only, several, "drill")
        if picked is None:
            return
        chosen, _size, sha, run = picked
        if run is None:
            raise RuntimeError(f"no run in {db.label}'s ledger took {chosen.path} (sha256 {sha[:16]}...): "
                               "the file is not one of this database's recorded backups")
        say(host, f"drill: newest backup {chosen.path}, taken by run #{run.id} at {run.started_at}; expected "
                  f"schema {(run.before_hash or '?')[:12]}", bold=True)
        if not executing:
            db.close()
            yield StringCommand("#", "pgconverge", "drill", chosen.path)
            return
    except Exception as e:
        if db:
            db.close()
        if executing:
            yield _fail(f"drill: {e}")
        else:
            say(host, f"drill: {e}", fg="red")
            yield StringCommand("#", "drill", "will", "fail")
        return
    yield FunctionCommand(apply_drill, (db, chosen, run), {})
