"""``pgconverge plan --env ENV`` and ``pgconverge apply --env ENV``: an environment's databases,
by the same runbook as the deploy (``pgconverge.runbook.deploy``), run from this machine.

The environment is read as a deploy reads it: inventory/<env>.py and its group data, loaded by
pyinfra's own loader (``pyinfra.inventory``), ``--data`` playing pyinfra's ``--data``. The
connection, the policy, the sql/ and smoke folders, the backups, the gate and the plan files all
come from there. ``plan --env`` is the deploy's dry run (preflight, plan, gate, plan files; nothing
changes); ``apply --env`` is the deploy (backup, converge, VACUUM ANALYZE, smoke checks, ledger).
The tools run on this machine: an inventory host reached over SSH is left to pyinfra.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field, replace
from typing import Any

from pgconverge.runbook.settings import EnvSettings

EXIT_OK, EXIT_ERROR, EXIT_PENDING, EXIT_REFUSED = 0, 1, 2, 3

# options of the one-database form, and the group-data key that sets them with --env
_SET_BY_GROUP_DATA = {
    "target": "pgconverge_databases", "sql": "pgconverge_sql", "allow_hazards": "pgconverge_allow_hazards",
    "drop": "pgconverge_drops", "only_schemas": "pgconverge_only_schemas",
    "exclude_schemas": "pgconverge_exclude_schemas", "lock_timeout": "pgconverge_lock_timeout",
    "lock_retries": "pgconverge_lock_retries", "lock_deadline": "pgconverge_lock_deadline",
    "statement_timeout": "pgconverge_statement_timeout",
    "allow_extension": "pgconverge_allow_extensions", "no_proof": "pgconverge_prove",
    "unmanaged": "pgconverge_unmanaged",
    "scratch_role": "pgconverge_scratch_role",
}
_NOT_WITH_ENV = ("compare_extension_versions", "allow_empty", "no_cache")


def add_env_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", default=None, metavar="ENV",
                   help="plan or deploy every database of this environment (inventory/ENV.py and its group data: "
                        "connection, policy, sql/), by the deploy's runbook; replaces --target and --sql")
    p.add_argument("--database", default=None, metavar="LABEL",
                   help="with --env: only the database with this label (its name, else its dbname)")
    p.add_argument("--root", default=".", metavar="DIR",
                   help="with --env: the project folder holding inventory/ and group_data/; relative paths in "
                        "group data are taken from it (default: .)")
    p.add_argument("--data", action="append", default=[], metavar="KEY=VALUE",
                   help="with --env: override a group-data key for this run, as pyinfra's --data does, e.g. "
                        "--data pgconverge_allow_hazards=index_build; repeatable")


def check_combination(args: argparse.Namespace) -> str | None:
    """Why the options given do not go together (None: they do)."""
    if args.env is None:
        for name in ("database", "data"):
            if getattr(args, name):
                return f"--{name} goes with --env"
        if not args.target or not args.sql:
            return "give --target and --sql, or --env ENV (see pgconverge " + args.command + " --help)"
        return None
    for name, key in _SET_BY_GROUP_DATA.items():
        value = getattr(args, name)
        if value not in (None, "", [], False):
            return (f"--{name.replace('_', '-')} cannot be used with --env: the environment's group data sets it "
                    f"({key}); to change it for one run, pass --data {key}=...")
    for name in _NOT_WITH_ENV:
        if getattr(args, name):
            return f"--{name.replace('_', '-')} is not available with --env"
    return None


def _rooted(settings: EnvSettings, root: str) -> EnvSettings:
    """The settings' relative paths taken from the project folder."""
    if root in ("", "."):
        return settings

    def at(path: str | None) -> str | None:
        return path if path is None or os.path.isabs(path) else os.path.join(root, path)

    return replace(settings, sql=tuple(at(p) for p in settings.sql), smoke=at(settings.smoke),
                   backup_dir=at(settings.backup_dir), plans_dir=at(settings.plans_dir),
                   signoff_file=at(settings.signoff_file), allowed_signers=at(settings.allowed_signers))


def _override_data(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--data {pair!r}: expected KEY=VALUE, e.g. --data pgconverge_backup=false")
        out[key.strip()] = value
    return out


def _is_local(host_name: str) -> bool:
    return host_name == "@local" or host_name.startswith("@pglocal/")


@dataclass(frozen=True)
class EnvTarget:
    """One database of the environment, with the settings of the host that carries it."""

    host: str
    spec: str | dict
    settings: EnvSettings


def env_targets(args: argparse.Namespace) -> list[EnvTarget]:
    from pgconverge.pyinfra.inventory import inventory_path, load_hosts
    from pgconverge.runbook.settings import database_specs

    hosts = load_hosts(args.env, args.root, _override_data(args.data))
    if not hosts:
        raise ValueError(f"{inventory_path(args.env, args.root)} lists no hosts")
    out = []
    for h in hosts:
        if not _is_local(h.name):
            raise ValueError(f"host {h.name} of {inventory_path(args.env, args.root)} is reached through pyinfra's "
                             f"connector (SSH), where psql and pg_dump run on that host; the CLI runs them on this "
                             f"machine. Deploy it with: pyinfra {inventory_path(args.env, args.root)} deploy.py")
        settings = _rooted(h.settings(), args.root)
        out += [EnvTarget(h.name, spec, settings) for spec in database_specs(h.data, h.origin)]
    return out


class CliConsole:
    """The runbook's ``Console`` for the CLI: lines on stdout (on stderr under --json, which keeps
    stdout for the document), the plan in full unless --json."""

    def __init__(self, as_json: bool, colours: bool):
        self.as_json = as_json
        self.colours = colours

    def say(self, text: str, fg: str | None = None, bold: bool = False) -> None:
        from pgconverge.runbook.style import paint

        print(paint(text, self.colours, fg=fg, bold=bold), file=sys.stderr if self.as_json else sys.stdout,
              flush=True)

    def reporter(self):
        """Progress of long steps where the lines go: a bar on a terminal, lines otherwise."""
        from pgconverge.exec.progress import reporter_for_stream

        return reporter_for_stream(sys.stderr if self.as_json else sys.stdout)

    def ask(self, question: str) -> str | None:
        if not sys.stdin.isatty():
            return None
        return input(question + " ")

    def show_plan(self, database: str, plan: Any, refused: list) -> None:
        from pgconverge.runbook.style import format_plan, paint

        if self.as_json:
            return
        print(paint(f"--> plan for {database}", self.colours, bold=True))
        print(format_plan(plan, self.colours))
        for h in refused:
            print(paint(f"-- REFUSED by policy: {h.name}: {h.reason}", self.colours, fg="red", bold=True))


def restore_command(env: str):
    """How to put a backup of this environment back (the restore runbook is a pyinfra deploy)."""

    def command(host_name: str, label: str, backup: str | None) -> str:
        chosen = f" --data pgconverge_backup={backup}" if backup else ""
        return (f"pyinfra inventory/{env}.py restore.py --limit '{host_name}' "
                f"--data pgconverge_database={label}{chosen}")

    return command


@dataclass
class Outcome:
    """What happened to one database, for the exit code and --json."""

    host: str
    database: str
    code: int
    result: str  # converged | unchanged | pending | refused | failed | error
    plan: Any = None
    refused: list = field(default_factory=list)
    problem: str | None = None
    plan_files: str | None = None

    def to_json(self) -> dict:
        from pgconverge.exec.script import plan_json

        return {"host": self.host, "database": self.database, "result": self.result, "problem": self.problem,
                "plan_files": self.plan_files, "plan": plan_json(self.plan) if self.plan is not None else None,
                "refused": [{"name": h.name, "object": h.object, "reason": h.reason} for h in self.refused]}


def _latest_plan_files(settings: EnvSettings, label: str, plan: Any) -> str | None:
    from pgconverge.runbook.planfiles import plan_runs, plans_folder

    runs = [r for r in plan_runs(plans_folder(settings, label)) if plan.plan_hash[:12] in r.base.name]
    return str(runs[-1]) if runs else None


def _one(args: argparse.Namespace, t: EnvTarget, console: CliConsole, staging: Any) -> Outcome | None:
    from pgconverge.runbook import deploy as runbook
    from pgconverge.runbook.database import Database
    from pgconverge.runbook.shell import LocalShell

    # check mode is plan's exit 2; for apply it is handled below, after the other refusals
    db = Database(LocalShell(t.host), console, t.spec, replace(t.settings, check=False))
    if args.database is not None and db.label != args.database:
        db.close()
        return None
    applying = args.command == "apply"
    try:
        console.say(f"== {t.settings.env}: {db.label} on {t.host}", bold=True)
        checked = runbook.check_deploy(db, applying, {}, staging)
    except BaseException:
        db.close()
        raise
    out = Outcome(t.host, db.label, EXIT_OK, "unchanged", checked.plan)
    if checked.plan is not None:
        out.refused = db.engine.policy(checked.plan).refused(checked.plan.hazards)
        out.plan_files = _latest_plan_files(t.settings, db.label, checked.plan)
    pending = checked.plan is not None and not checked.plan.is_empty
    if checked.problem:
        db.close()
        console.say(f"REFUSED: {checked.problem}", fg="red", bold=True)
        out.code, out.result, out.problem = EXIT_REFUSED, "refused", checked.problem
        return out
    if not applying or (t.settings.check and pending):
        db.close()
        if pending and applying:
            out.problem = f"{db.label}: {len(checked.plan.steps)} change(s) pending (check mode), nothing was run"
            console.say(out.problem, fg="red")
        out.code, out.result = (EXIT_PENDING, "pending") if pending else (EXIT_OK, "unchanged")
        return out
    if not checked.work:
        db.close()
        console.say(f"nothing to do: {db.label} is converged")
        return out
    if t.settings.smoke_commands:
        # they need the inventory's other hosts through pyinfra, which this command does not drive
        console.say(f"smoke commands ({len(t.settings.smoke_commands)}) not run: they run on other hosts "
                    "through pyinfra; deploy with `pyinfra inventory/<env>.py deploy.py` to run them", fg="yellow")
    ok = runbook.apply_deploy(db, checked.plan, checked.backup_due, restore_command(t.settings.env))  # closes db
    out.code, out.result = (EXIT_OK, "converged" if pending else "unchanged") if ok else (EXIT_ERROR, "failed")
    return out


def run(args: argparse.Namespace, colours: bool) -> int:
    """Plan or apply the databases of ``args.env``; the exit code of the worst outcome."""
    from pgconverge.cli.env import load_environment
    from pgconverge.runbook import gate

    targets = env_targets(args)
    if args.script and len(targets) > 1 and args.database is None:
        raise ValueError(f"--script writes one database's plan; {args.env} has {len(targets)}: pick one with "
                         "--database LABEL (every plan is in plans/ as well)")
    console = CliConsole(args.json, colours)
    # the sign-off's evidence: the ledgers of the environment it was taken from, read from here
    staging = gate.reader_of(lambda env: [x.spec for x in load_environment(env, args.root).targets])
    outcomes = [o for o in (_one(args, t, console, staging) for t in targets) if o is not None]
    if not outcomes:
        raise ValueError(f"{args.env} has no database {args.database!r}")
    if args.script and outcomes[0].plan is not None:
        from pgconverge.exec.script import render_plan_script

        write_script(args.script, render_plan_script(outcomes[0].plan))
    if args.json:
        print(json.dumps({"environment": args.env, "databases": [o.to_json() for o in outcomes]}, indent=2))
    codes = {o.code for o in outcomes}
    for code in (EXIT_ERROR, EXIT_REFUSED, EXIT_PENDING):
        if code in codes:
            return code
    return EXIT_OK


def write_script(path: str, text: str) -> None:
    """`--script FILE`: the plan's psql script ("-": on stdout)."""
    if path == "-":
        sys.stdout.write(text)
        return
    with open(path, "w") as f:
        f.write(text)
    print(f"-- plan script written to {path} (run it with: psql -X -d DATABASE -f {path})", file=sys.stderr)
