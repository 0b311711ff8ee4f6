"""Triggers: CREATE TRIGGER, ENABLE / DISABLE, DROP TRIGGER and comments. A trigger changes
only by being dropped and created again; DROP TABLE takes its triggers along."""

from __future__ import annotations

from pgconverge.catalog.model import table_id
from pgconverge.planning.context import Diff
from pgconverge.planning.kinds.dependants import drift, needs, owner_dropped
from pgconverge.quoting import lit, q

_TRIGGER_STATE = {"O": "ENABLE", "D": "DISABLE", "R": "ENABLE REPLICA", "A": "ENABLE ALWAYS"}


def diff(p: Diff) -> None:
    replaced = p.replaced
    for tid, t in p.desired.triggers.items():
        have = p.actual.triggers.get(tid)
        fresh = have is None or tid in replaced
        if fresh:
            p.add(t.definition, "create_trigger", tid, provides=frozenset({tid}),
                  requires=needs(p, t.schema, t.depends_on, tid, have is not None))
        if t.enabled != ("O" if fresh else have.enabled):
            p.add(f"ALTER TABLE {q(t.schema, t.table)} {_TRIGGER_STATE[t.enabled]} TRIGGER {q(t.name)}",
                  "enable_trigger", tid, requires=frozenset({tid}), table=table_id(t.schema, t.table))
        if t.comment != (None if fresh else have.comment):
            p.add(f"COMMENT ON TRIGGER {q(t.name)} ON {q(t.schema, t.table)} IS {lit(t.comment)}", "comment",
                  tid, requires=frozenset({tid}))
    for tid, have in p.actual.triggers.items():
        if tid in replaced and not owner_dropped(p, have.schema, have.table):
            p.add(f"DROP TRIGGER {q(have.name)} ON {q(have.schema, have.table)}", "drop_trigger", tid,
                  hazards=drift(tid in p.desired.triggers, f"trigger {have.name} on {have.schema}.{have.table}",
                                 tid),
                  removes=frozenset({tid}), provides=frozenset({tid + "#gone"}),
                  drop_before=frozenset(have.depends_on))
