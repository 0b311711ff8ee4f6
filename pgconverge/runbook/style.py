"""How plans and progress look on a terminal: one place decides whether to colour, click paints.

Colour goes only to a terminal: output piped into a file or a CI log stays plain text,
byte for byte what the uncoloured format gives.
"""

from __future__ import annotations

import sys
from typing import IO

import click

from pgconverge.planning.steps import Plan, Step

# The first word of a step's kind decides its colour: what removes things stands out in red.
_STEP_COLOURS = {"drop": "red", "create": "green", "add": "green", "alter": "yellow", "rename": "magenta",
                 "validate": "cyan"}


def use_colour(stream: IO[str] | None = None) -> bool:
    """Whether to colour what goes to `stream` (default: stderr, where progress goes)."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def paint(text: str, enabled: bool, fg: str | None = None, bold: bool = False, dim: bool = False) -> str:
    if not enabled or not (fg or bold or dim):
        return text
    # None, not False: click writes an explicit "bold off" code for False
    return click.style(text, fg=fg, bold=bold or None, dim=dim or None)


def format_step(step: Step, colours: bool = False) -> str:
    """One step as SQL, preceded by its hazards as comments."""
    lines = [paint(f"-- hazard {h.name}: {h.reason}", colours, fg="red", bold=True) for h in step.hazards]
    if not step.transactional:
        lines.append(paint("-- runs outside a transaction", colours, dim=True))
    fg = next((c for prefix, c in _STEP_COLOURS.items() if step.kind.startswith(prefix)), None)
    lines.append(paint(step.sql.rstrip(";") + ";", colours, fg=fg))
    return "\n".join(lines)


def format_plan(plan: Plan, colours: bool = False) -> str:
    warnings = [paint(f"-- warning: {w}", colours, fg="yellow", bold=True) for w in plan.warnings]
    # in every plan, empty or not: what is in the database but not in sql/, and what becomes of it
    warnings += [paint(f"-- unmanaged: {line}", colours, fg="magenta") for line in plan.unmanaged_lines()]
    if plan.is_empty:
        return "\n".join(warnings + ["-- no changes"])

    def blocks(when: str) -> list[str]:
        return [paint(f"-- data block {b.name} ({b.when} the schema change, runs once, in one transaction): "
                      f"{b.file}:{b.line}", colours, fg="cyan") + "\n" + b.sql.rstrip()
                for b in plan.data_blocks if b.when == when]

    out = blocks("before") + [format_step(s, colours) for s in plan.steps] + blocks("after")
    if plan.proof is not None and plan.steps:
        out.append(paint(f"-- proof: {plan.proof.summary()}", colours, fg="green" if plan.proof.ok else "red"))
    return "\n\n".join((["\n".join(warnings)] if warnings else []) + out)
