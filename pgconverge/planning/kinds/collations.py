"""Collations: CREATE and DROP COLLATION. PostgreSQL cannot alter one: a changed collation is
dropped and created again when nothing uses it, and refused when something does."""

from __future__ import annotations

from dataclasses import replace

from pgconverge.catalog.model import Collation, schema_id
from pgconverge.errors import UnsupportedError
from pgconverge.planning import hazards as hz
from pgconverge.planning.context import Diff
from pgconverge.planning.kinds.usage import comment, still_used
from pgconverge.quoting import lit, q


def collation_sql(c: Collation) -> str:
    if c.provider == "i":
        opts = ["provider = icu", f"locale = {lit(c.locale)}"]
    elif c.provider == "c":
        opts = ["provider = libc", f"lc_collate = {lit(c.lc_collate)}", f"lc_ctype = {lit(c.lc_ctype)}"]
    else:
        raise UnsupportedError("collation", f"{c.schema}.{c.name}", f"provider {c.provider!r} cannot be created")
    if not c.deterministic:
        opts.append("deterministic = false")
    return f"CREATE COLLATION {q(c.schema, c.name)} ({', '.join(opts)})"


def diff(p: Diff) -> None:
    for key, c in p.desired.collations.items():
        have = p.actual.collations.get(key)
        if have is not None and replace(have, comment=None) != replace(c, comment=None):
            users = still_used(p, c.id)
            if users:
                raise UnsupportedError("collation change", f"{c.schema}.{c.name}",
                                       f"a collation cannot be altered and {users[0]} uses it")
            drop_collation(p, have)
            have = None
        if have is None:
            p.add(collation_sql(c), "create_collation", c.id, provides=frozenset({c.id}),
                  requires=frozenset({schema_id(c.schema)}))
        comment(p, "COLLATION", q(c.schema, c.name), c.id, c.comment, have.comment if have else None)
    for key, c in p.actual.collations.items():
        if key not in p.desired.collations:
            drop_collation(p, c)


def drop_collation(p: Diff, c: Collation) -> None:
    p.add(f"DROP COLLATION {q(c.schema, c.name)}", "drop_collation", c.id, removes=frozenset({c.id}),
          hazards=(hz.deletes_data(c.id, f"collation {c.schema}.{c.name}"),))
