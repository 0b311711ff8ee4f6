"""The registry lists every kind module once, in the order the planner diffs them."""

from __future__ import annotations

import pkgutil

from pgconverge.planning import kinds
from pgconverge.planning.registry import KINDS


def test_registry_order():
    assert [k.name for k in KINDS] == [
        "schemas", "extensions", "collations", "enums", "domains", "composites", "ranges", "sequences",
        "tables", "partitions", "dependants", "functions", "views", "triggers", "policies", "privileges",
        "wiring"]


def test_every_kind_module_with_an_entry_point_is_registered_once():
    # helper modules (no diff of their own) are the only ones left out
    helpers = {"columns", "constraints", "indexes", "lineage", "partition_indexes", "usage"}
    modules = {m.name for m in pkgutil.iter_modules(kinds.__path__)}
    registered = [k.diff.__module__.rsplit(".", 1)[1] for k in KINDS]
    assert len(registered) == len(set(registered))
    assert set(registered) == modules - helpers
