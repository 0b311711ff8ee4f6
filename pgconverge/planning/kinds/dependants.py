"""The objects that hold no data and use others: views, functions, triggers and policies.

These are dropped and created again whenever an in-place change is impossible, and also
whenever something they use is dropped, retyped or itself created again: PostgreSQL refuses
to drop or retype what a view, trigger or policy uses. What each one uses comes from
pg_depend, in both catalogs (``Catalog.depends`` and each object's ``depends_on``), named by
the ids the other steps provide and remove, so the dependency graph orders everything.

``diff`` runs before their kinds: it makes the actual catalog follow the table and column
renames, and decides ``Diff.retyped`` and ``Diff.replaced``, which those kinds read."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Iterable

from pgconverge.catalog.model import Function, RlsPolicy, View, schema_id, table_id
from pgconverge.planning import hazards as hz
from pgconverge.planning.context import Diff
from pgconverge.planning.ddl import swap_ident
from pgconverge.planning.hazards import Hazard
from pgconverge.catalog.model import column_id

_RETYPE = re.compile(r"\bALTER COLUMN .* TYPE\b")


def diff(p: Diff) -> None:
    follow_renames(p)
    p.retyped = retyped_columns(p)
    p.replaced = replaced_objects(p, p.retyped)


def view_in_place(have: View, want: View | None) -> bool:
    """Unchanged, or changeable by CREATE OR REPLACE VIEW: a plain view whose old columns
    are kept, in order, with their types (new ones may follow)."""
    if want is None:
        return False
    if have.same_definition(want):
        return True
    return have.kind == want.kind == "v" and want.columns[: len(have.columns)] == have.columns


def function_in_place(have: Function, want: Function | None) -> bool:
    """CREATE OR REPLACE cannot change the kind, the result type, parameter names, or drop defaults."""
    if want is None:
        return False
    return (have.kind, have.result, have.arg_names) == (want.kind, want.result, want.arg_names) \
        and want.n_defaults >= have.n_defaults


def policy_in_place(have: RlsPolicy, want: RlsPolicy | None) -> bool:
    """ALTER POLICY changes roles and expressions, but cannot remove an expression."""
    if want is None:
        return False
    return (have.permissive, have.command) == (want.permissive, want.command) \
        and not (have.using and not want.using) and not (have.with_check and not want.with_check)


def follow_renames(p: Diff) -> None:
    """Triggers, policies and privileges follow a renamed table or column, as they do in
    PostgreSQL: rewrite the actual catalog (already renamed by the planner) to match."""
    tables: dict[str, str] = {}  # old table id -> new name
    columns: dict[tuple[str, str, str], str] = {}
    for r in p.options.renames.items:
        kind, schema, table, old, new = r.kind, r.schema, r.table, r.old, r.new
        if kind == "table" and table_id(schema, new) in p.actual.tables and table_id(schema, old) not in p.actual.tables:
            tables[table_id(schema, old)] = new
        elif kind == "column" and table:
            t = p.actual.tables.get(table_id(schema, table))
            if t is not None and new in t.columns and old not in t.columns:
                columns[(schema, table, old)] = new
    if not tables and not columns:
        return

    def rel(schema: str, name: str) -> str:
        return tables.get(table_id(schema, name), name)

    triggers = [replace(t, table=rel(t.schema, t.table), definition=swap_ident(t.definition, t.table,
                                                                                rel(t.schema, t.table)))
                if table_id(t.schema, t.table) in tables else t for t in p.actual.triggers.values()]
    p.actual.triggers = {t.id: t for t in triggers}
    policies = [replace(x, table=rel(x.schema, x.table)) for x in p.actual.policies.values()]
    p.actual.policies = {x.id: x for x in policies}
    acls = []
    for a in p.actual.acls.values():
        if a.kind in ("table", "column"):
            name = rel(a.schema, a.name)
            column = columns.get((a.schema, name, a.column), a.column) if a.column else None
            a = replace(a, name=name, column=column)
        acls.append(a)
    p.actual.acls = {a.id: a for a in acls}


def retyped_columns(p: Diff) -> set[str]:
    """Columns whose type or collation changes in place (ALTER COLUMN ... TYPE)."""
    out = set()
    for key, have in p.actual.tables.items():
        want = p.desired.tables.get(key)
        for name, c in have.columns.items():
            new = want.columns.get(name) if want else None
            if new is not None and (c.type, c.collation) != (new.type, new.collation):
                out.add(column_id(have.schema, have.name, name))
    # other kinds (domains, enums) may retype a column whose type name stays the same
    out |= {x for s in p.steps if s.kind == "alter_column" and _RETYPE.search(s.sql) for x in s.provides}
    return out


def actual_objects(p: Diff) -> dict[str, tuple[str, ...]]:
    objs: dict[str, tuple[str, ...]] = {v.id: v.depends_on for v in p.actual.views.values()}
    for group in (p.actual.functions, p.actual.triggers, p.actual.policies):
        objs.update({oid: o.depends_on for oid, o in group.items()})
    return objs


def replaced_objects(p: Diff, retyped: set[str]) -> set[str]:
    """Ids of the actual views, functions, triggers and policies that must be dropped:
    gone from sql/, changed beyond an in-place change, or using something that is
    dropped, retyped or replaced itself (to a fixpoint)."""
    replaced = {v.id for k, v in p.actual.views.items() if not view_in_place(v, p.desired.views.get(k))}
    replaced |= {i for i, f in p.actual.functions.items()
                 if not function_in_place(f, p.desired.functions.get(i))}
    replaced |= {i for i, t in p.actual.triggers.items()
                 if i not in p.desired.triggers or p.desired.triggers[i].definition != t.definition}
    replaced |= {i for i, pol in p.actual.policies.items() if not policy_in_place(pol, p.desired.policies.get(i))}
    gone = {r for s in p.steps for r in s.removes} | retyped
    objs = actual_objects(p)
    while True:
        more = {i for i, deps in objs.items() if i not in replaced and not (gone | replaced).isdisjoint(deps)}
        if not more:
            return replaced
        replaced |= more


def drift(kept: bool, what: str, oid: str) -> tuple[Hazard, ...]:
    """A drop of an object that sql/ no longer declares; one dropped to be created again is routine."""
    return () if kept else (hz.drops_object(oid, what),)


def needs(p: Diff, schema: str, deps: Iterable[str], oid: str, recreated: bool) -> frozenset[str]:
    """What creating an object requires: its schema, what it uses, and its old self gone."""
    return frozenset({schema_id(schema), *deps} | ({oid + "#gone"} if recreated else set()))


def owner_dropped(p: Diff, schema: str, relation: str) -> bool:
    """The table is dropped for good: DROP TABLE takes its triggers and policies along."""
    tid = table_id(schema, relation)
    return tid in p.actual.tables and tid not in p.desired.tables
