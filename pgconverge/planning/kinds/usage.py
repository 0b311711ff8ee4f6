"""What uses a type or a collation, and the steps every type-like kind shares.

Ids are the ones columns already name in ``depends_on`` (``type:s.n``, ``collation:s.n``),
so the dependency graph orders a type before the tables that use it and after the columns
that stop using it. PostgreSQL cannot alter a collation, a range type or a domain's base
type: those are dropped and created again when nothing uses them, and refused loudly when
something does (``still_used``)."""

from __future__ import annotations

from pgconverge.catalog.model import Catalog, column_id
from pgconverge.planning import hazards as hz
from pgconverge.planning.context import Diff
from pgconverge.quoting import lit, q


def users_of(cat: Catalog, oid: str) -> list[str]:
    """What in a catalog uses a type or collation id: columns, domains, composite and range
    types, and whatever the dependency map knows (views, functions)."""
    out = []
    for t in cat.tables.values():
        for c in t.columns.values():
            if oid in c.depends_on and not c.inherited:
                out.append(column_id(t.schema, t.name, c.name))
    for kind in (cat.domains, cat.composites, cat.ranges):
        for obj in kind.values():
            if oid in obj.depends_on and obj.id != oid:
                out.append(obj.id)
    # a range type's constructor functions (of the range and of its multirange) come with it
    own = {oid.split(":", 1)[1]}
    rng = cat.ranges.get(oid)
    if rng is not None and rng.multirange:
        own.add(".".join(part.strip('"') for part in rng.multirange.split(".", 1)))
    for user, uses in cat.depends.items():
        if oid in uses and not user.startswith(("column:", "constraint:", "index:")):
            if user.startswith("function:") and user.split(":", 1)[1].split("(", 1)[0] in own:
                continue
            out.append(user)
    return sorted(set(out))


def still_used(p: Diff, oid: str) -> list[str]:
    """Users in the database that the desired state keeps using the object."""
    wanted = set(users_of(p.desired, oid))
    return [u for u in users_of(p.actual, oid) if u in wanted]


def comment(p: Diff, kind_word: str, qualified: str, oid: str, want: str | None, have: str | None) -> None:
    if want != have:
        p.add(f"COMMENT ON {kind_word} {qualified} IS {lit(want)}", "comment", oid, requires=frozenset({oid}))


def drop_type(p: Diff, obj, word: str, what: str) -> None:
    """DROP DOMAIN / TYPE; what the type uses (a domain's base domain, a collation) goes after it.
    A drop of something sql/ no longer defines is gated like every drop: named and allowed."""
    p.add(f"DROP {word} {q(obj.schema, obj.name)}", "drop_type", obj.id, removes=frozenset({obj.id}),
          hazards=(hz.deletes_data(obj.id, what),), drop_before=frozenset(obj.depends_on))
