"""The planner: a pure function from (actual, desired) catalogs to ordered steps.

No I/O happens here. Each step carries its SQL, its hazards, how it must run (inside a
transaction or not) and what it creates, changes or removes, so a dependency graph can
order the steps: an object is created after what it needs and dropped before what it
needs. The kinds themselves live in ``planning/kinds``, listed in ``planning/registry.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pgconverge.catalog.kinds import copy_catalog
from pgconverge.catalog.model import Catalog
from pgconverge.errors import UnsupportedError
from pgconverge.planning.context import Diff, PlanOptions
from pgconverge.planning import unmanaged
from pgconverge.planning.kinds import partitions
from pgconverge.planning.registry import KINDS
from pgconverge.planning.renames import apply_renames
from pgconverge.planning.steps import Step, order_steps


def run(p: Diff) -> list[Step]:
    for cat, why in ((p.desired, "declared in sql/ but not managed by pgconverge"),
                     (p.actual, "exists in the database but is not managed by pgconverge")):
        if cat.unsupported:
            u = cat.unsupported[0]
            raise UnsupportedError(u.kind, u.identity, why)
    apply_renames(p, p.options.renames)
    p.unmanaged = unmanaged.find(p.actual, p.desired, p.options.drops)
    if p.options.unmanaged == unmanaged.REPORT and p.unmanaged:
        p.desired = copy_catalog(p.desired)  # the caller's desired catalog stays what sql/ declares
        unmanaged.keep(p.actual, p.desired, p.unmanaged)
    p.recreated = partitions.recreated(p)
    for kind in KINDS:
        kind.diff(p)
    if p.options.unmanaged == unmanaged.REPORT and p.unmanaged:
        problems = unmanaged.conflicts(p.unmanaged, p.steps, p.actual, p.removed(), p.retyped, p.replaced)
        if problems:
            raise unmanaged.UnmanagedConflict(problems)
    return order_steps(p.steps)


@dataclass
class Planned:
    """One diff's outcome: the ordered steps, the operator's warnings, the objects sql/ does not
    declare, and (under report) the steps that would drop those objects from the plan's result,
    which the proof runs on its rehearsal only, to compare it with sql/ alone."""

    steps: list[Step]
    warnings: list[str] = field(default_factory=list)
    unmanaged: list[unmanaged.Unmanaged] = field(default_factory=list)
    forget: list[Step] = field(default_factory=list)


def plan_diff(actual: Catalog, desired: Catalog, options: PlanOptions | None = None) -> Planned:
    """The diff with its drift: see Planned."""
    p = Diff(copy_catalog(actual), desired, options or PlanOptions())
    steps = run(p)
    forget: list[Step] = []
    if p.options.unmanaged == unmanaged.REPORT and p.unmanaged:
        # from what the plan leaves (sql/ plus the objects left alone) to sql/ alone: their drops only
        forget = run(Diff(copy_catalog(p.desired), desired, PlanOptions()))
    return Planned(steps, p.warnings, p.unmanaged, forget)


def diff(actual: Catalog, desired: Catalog, options: PlanOptions | None = None) -> list[Step]:
    """The pure diff: ordered steps that turn `actual` into `desired`."""
    return diff_with_warnings(actual, desired, options)[0]


def diff_with_warnings(actual: Catalog, desired: Catalog,
                       options: PlanOptions | None = None) -> tuple[list[Step], list[str]]:
    """The diff, and what the planner wants the operator to know (e.g. a rename it skipped)."""
    # renames rewrite the actual catalog: the caller's copy stays intact
    p = Diff(copy_catalog(actual), desired, options or PlanOptions())
    return run(p), p.warnings
