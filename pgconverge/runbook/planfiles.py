"""plans/<env>/<host>/<database>.{sql,md,json}: what a reviewer reads and signs off."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from pgconverge.planning.hazards import Hazard
from pgconverge.planning.steps import Plan
from pgconverge.runbook.settings import EnvSettings, safe_name


def plan_paths(settings: EnvSettings, host_name: str, label: str) -> Path:
    """The three files' common path, without the suffix."""
    return Path(settings.plans_dir) / safe_name(settings.env) / safe_name(host_name) / safe_name(label)


def plan_markdown(settings: EnvSettings, host_name: str, label: str, plan: Plan, refused: list[Hazard],
                  gate_note: str | None, now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    lines = [f"# Plan for {label} on {host_name} ({settings.env})", "",
             f"- written: {now.replace(microsecond=0).isoformat()}",
             f"- source (sql/) hash: `{plan.source_hash}`", f"- desired schema hash: `{plan.desired_hash}`",
             f"- starting schema hash: `{plan.actual_hash}`", f"- plan hash: `{plan.plan_hash}`",
             f"- steps: {len(plan.steps)} ({sum(1 for x in plan.steps if not x.transactional)} outside a "
             "transaction)", f"- tables created or changed: {', '.join(plan.changed_tables) or 'none'}"]
    if plan.data_blocks:
        lines.append(f"- one-time data blocks: {', '.join(b.name for b in plan.data_blocks)}")
    if plan.proof is not None:
        lines.append(f"- proof ({plan.proof.status}): {plan.proof.summary()}")
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


def write_plan_files(settings: EnvSettings, host_name: str, label: str, plan: Plan, refused: list[Hazard],
                     gate_note: str | None) -> Path:
    """Writes the .sql, .md and .json files of a plan; returns their common path."""
    base = plan_paths(settings, host_name, label)
    base.parent.mkdir(parents=True, exist_ok=True)
    base.with_suffix(".sql").write_text(plan.to_sql() or "-- no changes\n")
    base.with_suffix(".md").write_text(plan_markdown(settings, host_name, label, plan, refused, gate_note))
    doc = plan.to_json()
    doc.update({"environment": settings.env, "host": host_name, "database": label,
                "refused": [{"name": h.name, "object": h.object, "reason": h.reason} for h in refused]})
    base.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    return base
