"""Composite types: CREATE TYPE ... AS (...), ALTER TYPE ... ADD/DROP/ALTER ATTRIBUTE, DROP TYPE.

A type that typed tables (CREATE TABLE ... OF type) keep: its ALTERs take CASCADE, which
PostgreSQL propagates to those tables' columns (ADD, DROP or ALTER COLUMN TYPE on each), with
their hazards; the tables' diff leaves those columns to it. Reordered attributes cannot be
reached there (a typed table's columns are the type's, in order): refused before anything runs."""

from __future__ import annotations

from dataclasses import replace

from pgconverge.catalog.model import Column, CompositeType, Table, column_id, schema_id
from pgconverge.errors import PlanError, UnsupportedError
from pgconverge.planning import hazards as hz
from pgconverge.planning.context import Diff
from pgconverge.planning.hazards import Hazard
from pgconverge.planning.kinds.columns import type_change_hazards
from pgconverge.planning.kinds.usage import comment, drop_type, still_used
from pgconverge.quoting import q


def composite_sql(c: CompositeType) -> str:
    attrs = ", ".join(f"{q(a.name)} {a.type}" + (f" COLLATE {a.collation}" if a.collation else "")
                      for a in c.attributes)
    return f"CREATE TYPE {q(c.schema, c.name)} AS ({attrs})"


def diff(p: Diff) -> None:
    for key, c in p.desired.composites.items():
        have = p.actual.composites.get(key)
        if have is not None and have.attributes != c.attributes and not alter_composite(p, have, c):
            drop_type(p, have, "TYPE", f"composite type {c.schema}.{c.name}")
            have = None
        if have is None:
            p.add(composite_sql(c), "create_type", c.id, provides=frozenset({c.id}),
                  requires=frozenset({schema_id(c.schema), *c.depends_on}))
        comment(p, "TYPE", q(c.schema, c.name), c.id, c.comment, have.comment if have else None)
    for key, c in p.actual.composites.items():
        if key not in p.desired.composites:
            drop_type(p, c, "TYPE", f"composite type {c.schema}.{c.name}")


def typed_tables(p: Diff, type_id: str) -> tuple[list[Table], frozenset[str]]:
    """Tables OF the type that stay so (their columns follow ALTER TYPE ... CASCADE), and the ids
    whose removal must come first: typed tables that are dropped, or leave it (NOT OF)."""
    kept, leaving = [], set()
    for key, t in p.actual.tables.items():
        if t.of_type_id != type_id:
            continue
        w = p.desired.tables.get(key)
        if w is not None and w.of_type_id == type_id and key not in p.recreated:
            kept.append(t)
        else:
            leaving |= {t.id, f"typed:{t.id}"}
    return kept, frozenset(leaving)


def alter_composite(p: Diff, have: CompositeType, want: CompositeType) -> bool:
    """ALTER TYPE ... ADD/DROP/ALTER ATTRIBUTE when the order allows it (new attributes go at
    the end). False when the type must be created again, which only an unused type may be."""
    old = {a.name: a for a in have.attributes}
    new = {a.name: a for a in want.attributes}
    kept_old = [a.name for a in have.attributes if a.name in new]
    kept_new = [a.name for a in want.attributes if a.name in old]
    added = [a.name for a in want.attributes if a.name not in old]
    in_order = kept_old == kept_new and [a.name for a in want.attributes] == kept_new + added
    retyped = [n for n in kept_new if (old[n].type, old[n].collation) != (new[n].type, new[n].collation)]
    users = still_used(p, want.id)
    typed, leaving = typed_tables(p, want.id)
    if typed and not in_order:
        names = ", ".join(f"{t.schema}.{t.name}" for t in typed)
        raise PlanError(
            f"composite type {want.schema}.{want.name}: its attributes are reordered, but typed table(s) {names} "
            f"(CREATE TABLE ... OF {want.schema}.{want.name}) keep it, and PostgreSQL can neither reorder a type's "
            "attributes nor a typed table's columns. Keep the attributes in their order and add new ones at the "
            "end, or drop the typed tables in one change (-- @drop table ...) and create them in the next. "
            "Nothing was changed")
    if not in_order or (retyped and users):
        if users:
            why = (f"attribute {retyped[0]} cannot change type" if in_order else "its attributes are reordered")
            raise UnsupportedError("composite type change", f"{want.schema}.{want.name}", f"{why} while {users[0]} "
                                   "uses it")
        return False
    tq = q(want.schema, want.name)
    cascade = " CASCADE" if typed else ""

    def cols(name: str) -> frozenset[str]:
        return frozenset(column_id(t.schema, t.name, name) for t in typed)

    for name, a in old.items():
        if name not in new:
            hazards: list[Hazard] = []
            if users:
                hazards.append(hz.deletes_data(want.id, f"attribute {name} of {want.schema}.{want.name}",
                                               f" is dropped from the values stored in {', '.join(users)}"))
            hazards += [hz.deletes_data(column_id(t.schema, t.name, name), f"column {t.schema}.{t.name}.{name}",
                                        f" is dropped with its data (ALTER TYPE ... DROP ATTRIBUTE {name} CASCADE)")
                        for t in typed]
            p.add(f"ALTER TYPE {tq} DROP ATTRIBUTE {q(name)}{cascade}", "alter_type", want.id,
                  hazards=tuple(hazards), provides=frozenset({want.id}), removes=cols(name),
                  drop_before=frozenset(a.depends_on), after=leaving)
    for name in retyped:
        a = new[name]
        collate = f" COLLATE {a.collation}" if a.collation else ""
        hazards = [h for t in typed if name in t.columns
                   for h in type_change_hazards(t, t.columns[name], _retyped(t.columns[name], a.type, a.collation))]
        p.add(f"ALTER TYPE {tq} ALTER ATTRIBUTE {q(name)} TYPE {a.type}{collate}{cascade}", "alter_type", want.id,
              hazards=tuple(hazards), provides=frozenset({want.id}) | cols(name), requires=frozenset(a.depends_on),
              drop_before=frozenset(old[name].depends_on), after=leaving)
    for name in added:
        a = new[name]
        collate = f" COLLATE {a.collation}" if a.collation else ""
        p.add(f"ALTER TYPE {tq} ADD ATTRIBUTE {q(name)} {a.type}{collate}{cascade}", "alter_type", want.id,
              provides=frozenset({want.id}) | cols(name), requires=frozenset(a.depends_on), after=leaving)
    return True


def _retyped(c: Column, type_: str, collation: str | None) -> Column:
    return replace(c, type=type_, collation=collation)
