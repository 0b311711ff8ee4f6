"""Range types: CREATE TYPE ... AS RANGE and DROP TYPE. A range type cannot be altered: a changed
one is dropped and created again when nothing uses it, and refused when something does."""

from __future__ import annotations

from dataclasses import replace

from pgconverge.catalog.model import RangeType, schema_id
from pgconverge.errors import UnsupportedError
from pgconverge.planning.context import Diff
from pgconverge.planning.kinds.usage import comment, drop_type, still_used
from pgconverge.quoting import q


def range_sql(r: RangeType) -> str:
    opts = [f"SUBTYPE = {r.subtype}"]
    if r.subtype_opclass:
        opts.append(f"SUBTYPE_OPCLASS = {r.subtype_opclass}")
    if r.collation:
        opts.append(f"COLLATION = {r.collation}")
    if r.canonical:
        opts.append(f"CANONICAL = {r.canonical}")
    if r.subtype_diff:
        opts.append(f"SUBTYPE_DIFF = {r.subtype_diff}")
    if r.multirange:
        opts.append(f"MULTIRANGE_TYPE_NAME = {r.multirange}")
    return f"CREATE TYPE {q(r.schema, r.name)} AS RANGE ({', '.join(opts)})"


def diff(p: Diff) -> None:
    for key, r in p.desired.ranges.items():
        have = p.actual.ranges.get(key)
        if have is not None and replace(have, comment=None) != replace(r, comment=None):
            users = still_used(p, r.id)
            if users:
                raise UnsupportedError("range type change", f"{r.schema}.{r.name}",
                                       f"a range type cannot be altered and {users[0]} uses it")
            drop_type(p, have, "TYPE", f"range type {r.schema}.{r.name}")
            have = None
        if have is None:
            p.add(range_sql(r), "create_type", r.id, provides=frozenset({r.id}),
                  requires=frozenset({schema_id(r.schema), *r.depends_on}))
        comment(p, "TYPE", q(r.schema, r.name), r.id, r.comment, have.comment if have else None)
    for key, r in p.actual.ranges.items():
        if key not in p.desired.ranges:
            drop_type(p, r, "TYPE", f"range type {r.schema}.{r.name}")
