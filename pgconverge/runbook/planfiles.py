"""The plan files of a run: plans/<env>/<database>/<UTC time>-<plan hash>.{sql,md,json}.

Each run that shows a plan writes three new files (never over an older one): the psql script
(``exec.script.render_plan_script``, what apply runs, with its timeouts and transactions), the
review page a reviewer reads before signing off, and the JSON document (steps with their
effective timeouts, hashes, proof, refusals). The oldest runs of a database beyond
``pgconverge_plans_keep`` are removed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pgconverge.exec.script import plan_json, plan_settings, render_plan_script, timings
from pgconverge.planning.hazards import Hazard
from pgconverge.planning.steps import Plan
from pgconverge.runbook.settings import EnvSettings, safe_name

SUFFIXES = (".sql", ".md", ".json")
# <UTC time>-<plan hash>[-<n>]: the time sorts the runs; -n only when one second saw the same plan twice
_RUN_NAME = re.compile(r"^(\d{8}T\d{6}Z)-([0-9a-f]{12})(?:-(\d+))?$")


@dataclass(frozen=True)
class PlanFiles:
    """The three files of one run, by their common path without the suffix."""

    base: Path

    @property
    def paths(self) -> tuple[Path, ...]:
        return tuple(Path(f"{self.base}{suffix}") for suffix in SUFFIXES)

    def __str__(self) -> str:
        return str(self.base)


def plans_folder(settings: EnvSettings, label: str) -> Path:
    """plans/<env>/<database>: where the runs of one database are kept."""
    return Path(settings.plans_dir) / safe_name(settings.env) / safe_name(label)


def run_name(plan: Plan, now: datetime) -> str:
    return f"{now.astimezone(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}-{plan.plan_hash[:12]}"


def plan_markdown(settings: EnvSettings, host_name: str, label: str, plan: Plan, refused: list[Hazard],
                  gate_note: str | None, now: datetime | None = None, script_name: str | None = None,
                  snapshot: str | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    lines = [f"# Plan for {label} on {host_name} ({settings.env})", "",
             f"- written: {now.replace(microsecond=0).isoformat()}",
             f"- source (sql/) hash: `{plan.source_hash}`", f"- desired schema hash: `{plan.desired_hash}`",
             f"- starting schema hash: `{plan.actual_hash}`", f"- plan hash: `{plan.plan_hash}`",
             f"- steps: {len(plan.steps)} ({sum(1 for x in plan.steps if not x.transactional)} outside a "
             "transaction)", f"- tables created or changed: {', '.join(plan.changed_tables) or 'none'}"]
    if script_name:
        lines.append(f"- psql script (what apply runs, without its lock retries): `{script_name}`")
    if plan.data_blocks:
        lines.append(f"- one-time data blocks: {', '.join(b.name for b in plan.data_blocks)}")
    if plan.proof is not None:
        lines.append(f"- proof ({plan.proof.status}): {plan.proof.summary()}")
    if snapshot:
        lines.append(f"- data: {snapshot}")
    if gate_note:
        lines.append(f"- production gate: {gate_note}")
    if plan.unmanaged:
        lines += ["", f"## Not in sql/ (pgconverge_unmanaged = {plan.unmanaged_policy})", ""]
        lines += [f"- {line.replace('|', '/')}" for line in plan.unmanaged_lines()]
    if plan.hazards:
        refused_keys = {(h.name, h.object) for h in refused}
        lines += ["", "## Hazards", "", "| hazard | object | reason | policy |", "|---|---|---|---|"]
        for h in plan.hazards:
            policy = "REFUSED" if (h.name, h.object) in refused_keys else "allowed"
            lines.append(f"| {h.name} | `{h.object}` | {h.reason.replace('|', '/')} | {policy} |")
    if plan.steps:
        lines += ["", "## Steps", "", "| # | step | unit | lock_timeout | statement_timeout |", "|---|---|---|---|---|"]
        for n, (s, t) in enumerate(zip(plan.steps, timings(plan, plan_settings(plan))), 1):
            where = "in a transaction" if t.transaction else "outside a transaction"
            lines.append(f"| {n} | {s.kind} `{s.object}` | {t.unit + 1} ({where}) | {t.lock_timeout} | "
                         f"{t.statement_timeout} |")
    for w in plan.warnings:
        lines.append(f"- warning: {w}")
    lines += ["", "## SQL", "", "```sql", plan.to_sql().rstrip() or "-- no changes", "```", ""]
    return "\n".join(lines)


def _new_base(folder: Path, name: str) -> Path:
    """A base path whose three files do not exist yet (a second run in the same second with the
    same plan gets -2, -3, ...)."""
    n = 1
    while True:
        base = folder / (name if n == 1 else f"{name}-{n}")
        if not any(Path(f"{base}{suffix}").exists() for suffix in SUFFIXES):
            return base
        n += 1


def _write_new(path: Path, text: str) -> None:
    with path.open("x") as f:  # "x": an existing file is an error, never overwritten
        f.write(text)


def write_plan_files(settings: EnvSettings, host_name: str, label: str, plan: Plan, refused: list[Hazard],
                     gate_note: str | None, now: datetime | None = None, snapshot: str | None = None) -> PlanFiles:
    """Writes this run's .sql, .md and .json files, then prunes the oldest runs beyond
    ``settings.plans_keep``; returns the new files. `snapshot` says where the database's data
    came from (its newest refresh), for the reviewer."""
    now = now or datetime.now(timezone.utc)
    folder = plans_folder(settings, label)
    folder.mkdir(parents=True, exist_ok=True)
    base = _new_base(folder, run_name(plan, now))
    header = (f"pgconverge plan for {label} on {host_name} ({settings.env}), written {now.replace(microsecond=0).isoformat()}",
              f"plan {plan.plan_hash}; from schema {plan.actual_hash}; to {plan.desired_hash}")
    _write_new(Path(f"{base}.sql"), render_plan_script(plan, header=header))
    _write_new(Path(f"{base}.md"), plan_markdown(settings, host_name, label, plan, refused, gate_note, now,
                                                 script_name=f"{base.name}.sql", snapshot=snapshot))
    doc = plan_json(plan)
    doc.update({"environment": settings.env, "host": host_name, "database": label,
                "written_at": now.replace(microsecond=0).isoformat(), "snapshot": snapshot,
                "refused": [{"name": h.name, "object": h.object, "reason": h.reason} for h in refused]})
    _write_new(Path(f"{base}.json"), json.dumps(doc, indent=2) + "\n")
    prune_plan_files(folder, settings.plans_keep)
    return PlanFiles(base)


def plan_runs(folder: Path) -> list[PlanFiles]:
    """The runs kept in a database's folder, oldest first (files of other names are not ours)."""
    names = {p.name[: -len(suffix)] for suffix in SUFFIXES for p in folder.glob(f"*{suffix}")
             if _RUN_NAME.match(p.name[: -len(suffix)])} if folder.is_dir() else set()

    def order(name: str) -> tuple[str, int]:
        m = _RUN_NAME.match(name)
        return m.group(1), int(m.group(3) or 1)

    return [PlanFiles(folder / name) for name in sorted(names, key=order)]


def latest_for(settings: EnvSettings, label: str, plan: Plan) -> PlanFiles | None:
    """The newest run of this database's folder that shows `plan` (matched by its hash), if any."""
    mine = [r for r in plan_runs(plans_folder(settings, label))
            if (m := _RUN_NAME.match(r.base.name)) and m.group(2) == plan.plan_hash[:12]]
    return mine[-1] if mine else None


def add_to_page(files: PlanFiles, text: str) -> None:
    """Append a section to a run's review page (.md) once that run is over: what the change did
    (table sizes after). Appended only; what the reviewer read before stays as it was."""
    with Path(f"{files.base}.md").open("a") as f:
        f.write(text)


def prune_plan_files(folder: Path, keep: int) -> list[PlanFiles]:
    """Removes the oldest runs beyond `keep` (0: keep every run); returns those removed."""
    runs = plan_runs(folder)
    if keep <= 0 or len(runs) <= keep:
        return []
    gone = runs[: len(runs) - keep]
    for run in gone:
        for path in run.paths:
            path.unlink(missing_ok=True)
    return gone
