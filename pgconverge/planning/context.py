"""The state one diff shares between the kinds: both catalogs, the options, the steps so far."""

from __future__ import annotations

from dataclasses import dataclass

from pgconverge.catalog.model import Catalog
from pgconverge.planning.steps import Step

# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Renames:
    """Declared renames, as (kind, schema, table, old, new) or (..., new, where)."""

    items: tuple[tuple, ...] = ()  # (kind, schema, table, old, new[, "file:line" of the directive])


@dataclass(frozen=True)
class PlanOptions:
    renames: Renames = Renames()
    compare_extension_versions: bool = False
    pinned_extensions: frozenset[str] = frozenset()



# --------------------------------------------------------------------------- the planner


class Diff:
    """Collects the steps of one diff; the kinds add to it, the planner orders them."""

    def __init__(self, actual: Catalog, desired: Catalog, options: PlanOptions):
        self.actual = actual
        self.desired = desired
        self.options = options
        self.steps: list[Step] = []
        self.dropped_tables: set[tuple[str, str]] = set()
        self.new_tables: set[tuple[str, str]] = set()
        self.recreated: dict[tuple[str, str], str] = {}
        self.warnings: list[str] = []
        # per table id: valid unique indexes left by an earlier run, attached instead of rebuilt
        self.adopted_indexes: dict[str, set[str]] = {}

    def add(self, sql_text: str, kind: str, obj: str, **kw) -> None:
        self.steps.append(Step(sql_text, kind, obj, **kw))
