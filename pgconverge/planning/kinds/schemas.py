"""Schemas: CREATE, COMMENT and DROP SCHEMA. Everything else requires its schema's id."""

from __future__ import annotations

from pgconverge.planning import hazards as hz
from pgconverge.planning.context import Diff
from pgconverge.quoting import lit, q


def diff(p: Diff) -> None:
    for sid, s in p.desired.schemas.items():
        have = p.actual.schemas.get(sid)
        if have is None:
            p.add(f"CREATE SCHEMA {q(s.name)}", "create_schema", s.id, provides=frozenset({s.id}))
        if s.comment != (have.comment if have is not None else None):
            p.add(f"COMMENT ON SCHEMA {q(s.name)} IS {lit(s.comment)}", "comment", s.id, requires=frozenset({s.id}))
    for sid, s in p.actual.schemas.items():
        if sid not in p.desired.schemas:
            p.add(f"DROP SCHEMA {q(s.name)}", "drop_schema", s.id, removes=frozenset({s.id}),
                  hazards=(hz.deletes_data(s.id, f"schema {s.name}"),))
