"""The last pass over the plan: what column defaults, constraints and indexes call, and what
the dropped views, triggers and policies read, becomes ordering (requires / drop_before)."""

from __future__ import annotations

from dataclasses import replace

from pgconverge.catalog.model import Catalog, column_id, constraint_id
from pgconverge.planning.context import Diff
from pgconverge.planning.ddl import split_qualified
from pgconverge.planning.kinds.dependants import actual_objects

_OBJECT_KINDS = frozenset({"create_view", "replace_view", "drop_view", "create_function", "replace_function",
                           "drop_function", "create_trigger", "drop_trigger", "enable_trigger", "create_policy",
                           "alter_policy", "drop_policy", "grant", "revoke"})


def diff(p: Diff) -> None:
    """Column defaults, constraints and indexes that call a function are created after it
    and changed or dropped before it goes; a column is retyped only after the views,
    triggers and policies that read it are dropped."""
    replaced, retyped = p.replaced, p.retyped
    blocked: dict[str, set[str]] = {}
    for oid, deps in actual_objects(p).items():
        if oid in replaced:
            for col in retyped.intersection(deps):
                blocked.setdefault(col, set()).add(oid + "#gone")

    def functions(cat: Catalog, oid: str) -> set[str]:
        return {d for d in cat.depends.get(oid, ()) if d.startswith("function:")}

    def table_parts(tid: str) -> list[str]:
        schema, name = split_qualified(tid.split(":", 1)[1])
        t = p.actual.tables.get(tid)
        if t is None:
            return []
        # DROP TABLE takes its defaults, constraints, indexes, triggers and policies along
        return ([column_id(schema, name, c) for c in t.columns] + [constraint_id(schema, name, c) for c in t.constraints]
                + [i.id for i in t.indexes.values()]
                + [x.id for x in (*p.actual.triggers.values(), *p.actual.policies.values())
                   if (x.schema, x.table) == (schema, name)])

    out = []
    for s in p.steps:
        if s.kind not in _OBJECT_KINDS:
            req: set[str] = set()
            before: set[str] = set()
            for x in s.provides:
                req |= functions(p.desired, x) | blocked.get(x, set())
            if not s.kind.startswith("create_"):
                for x in s.provides | s.removes:
                    before |= functions(p.actual, x)
                    if x.startswith("table:") and x in s.removes:
                        for part in table_parts(x):
                            before |= functions(p.actual, part)
            req -= s.provides
            if req or before:
                s = replace(s, requires=s.requires | req, drop_before=s.drop_before | before)
        out.append(s)
    p.steps = out
