"""The state one diff shares between the kinds: both catalogs, the options, the steps so far."""

from __future__ import annotations

from dataclasses import dataclass, field

from pgconverge.catalog.model import Catalog
from pgconverge.planning.renames import Renames
from pgconverge.planning.steps import Step

# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class PlanOptions:
    renames: Renames = Renames()
    compare_extension_versions: bool = False
    pinned_extensions: frozenset[str] = frozenset()
    # (column id, expression) declared by -- @using in sql/: ALTER COLUMN ... TYPE ... USING <expression>
    usings: tuple[tuple[str, str], ...] = ()
    # what becomes of objects sql/ does not declare: refuse | report | drop (planning/unmanaged.py)
    unmanaged: str = "refuse"
    # object ids named for deletion (-- @drop, drops): never unmanaged, whatever the policy
    drops: frozenset[str] = frozenset()

    def using(self, column: str) -> str | None:
        return next((e for c, e in self.usings if c == column), None)


# --------------------------------------------------------------------------- the diff


@dataclass
class Diff:
    """Collects the steps of one diff; the kinds add to it, the planner orders them.

    Every set and dict of objects here is keyed by object id (``table:public.users``)."""

    actual: Catalog
    desired: Catalog
    options: PlanOptions
    steps: list[Step] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # tables PostgreSQL cannot change in place (partitioned or not, partition key): id -> why
    recreated: dict[str, str] = field(default_factory=dict)
    new_tables: set[str] = field(default_factory=set)
    dropped_tables: set[str] = field(default_factory=set)
    # per table id: valid unique indexes left by an earlier run, attached instead of rebuilt
    adopted_indexes: dict[str, set[str]] = field(default_factory=dict)
    # per table id: the parent-child links a DETACH / NO INHERIT of this plan removes
    detached: dict[str, set[str]] = field(default_factory=dict)
    # columns retyped in place, and the views, functions, triggers and policies dropped and made again
    retyped: set[str] = field(default_factory=set)
    replaced: set[str] = field(default_factory=set)
    # objects sql/ does not declare (planning/unmanaged.py): left alone under report, dropped otherwise
    unmanaged: list = field(default_factory=list)

    def add(self, sql_text: str, kind: str, obj: str, **kw) -> None:
        self.steps.append(Step(sql_text, kind, obj, **kw))

    def removed(self) -> set[str]:
        """Ids that the steps so far drop."""
        return {r for s in self.steps for r in s.removes}
