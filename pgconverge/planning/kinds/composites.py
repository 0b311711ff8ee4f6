"""Composite types: CREATE TYPE ... AS (...), ALTER TYPE ... ADD/DROP/ALTER ATTRIBUTE, DROP TYPE."""

from __future__ import annotations

from pgconverge.catalog.model import CompositeType, schema_id
from pgconverge.errors import UnsupportedError
from pgconverge.planning import hazards as hz
from pgconverge.planning.context import Diff
from pgconverge.planning.hazards import Hazard
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
    if not in_order or (retyped and users):
        if users:
            why = (f"attribute {retyped[0]} cannot change type" if in_order else "its attributes are reordered")
            raise UnsupportedError("composite type change", f"{want.schema}.{want.name}", f"{why} while {users[0]} "
                                   "uses it")
        return False
    tq = q(want.schema, want.name)
    for name, a in old.items():
        if name not in new:
            hazards: tuple[Hazard, ...] = ()
            if users:
                hazards = (hz.deletes_data(want.id, f"attribute {name} of {want.schema}.{want.name}",
                                           f" is dropped from the values stored in {', '.join(users)}"),)
            p.add(f"ALTER TYPE {tq} DROP ATTRIBUTE {q(name)}", "alter_type", want.id, hazards=hazards,
                  provides=frozenset({want.id}), drop_before=frozenset(a.depends_on))
    for name in retyped:
        a = new[name]
        collate = f" COLLATE {a.collation}" if a.collation else ""
        p.add(f"ALTER TYPE {tq} ALTER ATTRIBUTE {q(name)} TYPE {a.type}{collate}", "alter_type", want.id,
              provides=frozenset({want.id}), requires=frozenset(a.depends_on),
              drop_before=frozenset(old[name].depends_on))
    for name in added:
        a = new[name]
        collate = f" COLLATE {a.collation}" if a.collation else ""
        p.add(f"ALTER TYPE {tq} ADD ATTRIBUTE {q(name)} {a.type}{collate}", "alter_type", want.id,
              provides=frozenset({want.id}), requires=frozenset(a.depends_on))
    return True
