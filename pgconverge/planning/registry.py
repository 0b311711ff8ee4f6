"""The object kinds, in the order the planner diffs them.

Each entry is one module of ``planning/kinds`` whose ``diff(p: Diff)`` adds that kind's steps.
The order matters twice: a kind may read what earlier kinds decided (the tables read the
renames and recreation; the dependants read every drop and retype before them), and steps
that the dependency graph leaves unordered keep the order they were added in (after the
coarse RANK of their step kind, in steps.py, where a new kind adds its step kinds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from pgconverge.planning.context import Diff
from pgconverge.planning.kinds import (collations, composites, dependants, domains, enums, extensions, functions,
                                       partitions, policies, privileges, ranges, schemas, sequences, tables,
                                       triggers, views, wiring)


@dataclass(frozen=True)
class Kind:
    name: str
    diff: Callable[[Diff], None]


KINDS: tuple[Kind, ...] = (
    Kind("schemas", schemas.diff),
    Kind("extensions", extensions.diff),
    Kind("collations", collations.diff),
    Kind("enums", enums.diff),
    Kind("domains", domains.diff),
    Kind("composites", composites.diff),
    Kind("ranges", ranges.diff),
    Kind("sequences", sequences.diff),
    Kind("tables", tables.diff),  # with their columns, constraints and indexes
    Kind("partitions", partitions.diff),  # ordering facts of partitions and inheritance, over all table steps
    # last: the objects that hold no data follow the rest
    Kind("dependants", dependants.diff),  # follows renames; decides what is retyped and replaced
    Kind("functions", functions.diff),
    Kind("views", views.diff),
    Kind("triggers", triggers.diff),
    Kind("policies", policies.diff),  # row-level security, then policies
    Kind("privileges", privileges.diff),  # grants, then default privileges
    Kind("wiring", wiring.diff),  # what defaults, constraints and indexes call
)
