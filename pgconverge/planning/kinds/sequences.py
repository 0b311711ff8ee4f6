"""Sequences: CREATE, ALTER (options, OWNED BY) and DROP SEQUENCE, and the options text that
identity columns share. A sequence owned by a column that goes is dropped with it."""

from __future__ import annotations

from pgconverge.catalog.model import Sequence, column_id, schema_id, table_id
from pgconverge.planning import hazards as hz
from pgconverge.planning.context import Diff
from pgconverge.quoting import lit, q


def sequence_options(s: Sequence, old: Sequence | None = None) -> list[str]:
    opts = []
    if old is None or s.data_type != old.data_type:
        opts.append(f"AS {s.data_type}")
    pairs = [("INCREMENT BY", s.increment, old.increment if old else None),
             ("MINVALUE", s.min_value, old.min_value if old else None),
             ("MAXVALUE", s.max_value, old.max_value if old else None),
             ("START WITH", s.start, old.start if old else None),
             ("CACHE", s.cache, old.cache if old else None)]
    for word, value, before in pairs:
        if old is None or value != before:
            opts.append(f"{word} {int(value)}")
    if old is None or s.cycle != old.cycle:
        opts.append("CYCLE" if s.cycle else "NO CYCLE")
    return opts


def diff(p: Diff) -> None:
    for key, s in p.desired.sequences.items():
        have = p.actual.sequences.get(key)
        if have is None:
            p.add(f"CREATE SEQUENCE {q(s.schema, s.name)} {' '.join(sequence_options(s))}", "create_sequence", s.id,
                  provides=frozenset({s.id}), requires=frozenset({schema_id(s.schema)}))
        else:
            opts = sequence_options(s, have)
            if opts and not s.min_value <= have.start <= s.max_value and have.min_value <= s.start <= have.max_value:
                # a sequence never used stands at its old START, which the new bounds refuse; a fresh
                # load stands at the new START: moved there first (a used one keeps its position)
                sq = q(s.schema, s.name)
                p.add(f"SELECT setval({lit(sq)}, {int(s.start)}, false) FROM {sq} WHERE NOT is_called",
                      "alter_sequence", s.id, provides=frozenset({s.id + "#position"}))
            if opts:
                p.add(f"ALTER SEQUENCE {q(s.schema, s.name)} {' '.join(opts)}", "alter_sequence", s.id,
                      provides=frozenset({s.id}), requires=frozenset({s.id + "#position"}))
        if have is not None and have.owned_by and have.owned_by != s.owned_by:
            old_t, old_c = have.owned_by
            old_owner = frozenset({table_id(s.schema, old_t), column_id(s.schema, old_t, old_c)})
            if not s.owned_by or _column_goes(p, table_id(s.schema, old_t), old_c):
                # the old owner is dropped by this plan (or ownership just ends): released first,
                # or the DROP of the table or column takes the sequence with it
                p.add(f"ALTER SEQUENCE {q(s.schema, s.name)} OWNED BY NONE", "owned_by", s.id,
                      drop_before=old_owner)
                old_owner = frozenset()
        else:
            old_owner = frozenset()
        if s.owned_by and (have is None or have.owned_by != s.owned_by):
            t, c = s.owned_by
            p.add(f"ALTER SEQUENCE {q(s.schema, s.name)} OWNED BY {q(s.schema, t, c)}", "owned_by", s.id,
                  requires=frozenset({s.id, column_id(s.schema, t, c)}), drop_before=old_owner)
        if s.comment != (have.comment if have else None):
            p.add(f"COMMENT ON SEQUENCE {q(s.schema, s.name)} IS {lit(s.comment)}", "comment", s.id, requires=frozenset({s.id}))
    for key, s in p.actual.sequences.items():
        if key in p.desired.sequences:
            continue
        if s.owned_by and _column_goes(p, table_id(s.schema, s.owned_by[0]), s.owned_by[1]):
            continue  # dropped together with the table or column that owns it
        p.add(f"DROP SEQUENCE {q(s.schema, s.name)}", "drop_sequence", s.id, removes=frozenset({s.id}),
              hazards=(hz.deletes_data(s.id, f"sequence {s.schema}.{s.name}", " is dropped with its position"),))


def _column_goes(p: Diff, table: str, column: str) -> bool:
    want = p.desired.tables.get(table)
    return want is None or column not in want.columns
