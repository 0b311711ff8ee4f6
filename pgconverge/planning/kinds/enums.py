"""Enum types: CREATE TYPE ... AS ENUM, ALTER TYPE ... ADD VALUE, DROP TYPE, and the changes
ADD VALUE cannot make (removing or reordering values), which build a new type and move the
columns that use it over, through text."""

from __future__ import annotations

from dataclasses import replace

from pgconverge.catalog.model import EnumType, column_id, schema_id, type_id
from pgconverge.errors import UnsupportedError
from pgconverge.planning import hazards as hz
from pgconverge.planning.context import Diff
from pgconverge.planning.kinds.usage import still_used
from pgconverge.planning.steps import OWN
from pgconverge.quoting import lit, q


def diff(p: Diff) -> None:
    for key, e in p.desired.enums.items():
        have = p.actual.enums.get(key)
        if have is None:
            labels = ", ".join(lit(v) for v in e.labels)
            p.add(f"CREATE TYPE {q(e.schema, e.name)} AS ENUM ({labels})", "create_type", e.id,
                     provides=frozenset({e.id}), requires=frozenset({schema_id(e.schema)}))
        elif have.labels != e.labels:
            alter_enum(p, have, e)
        if e.comment != (have.comment if have else None):
            p.add(f"COMMENT ON TYPE {q(e.schema, e.name)} IS {lit(e.comment)}", "comment", e.id, requires=frozenset({e.id}))
    for key, e in p.actual.enums.items():
        if key not in p.desired.enums:
            p.add(f"DROP TYPE {q(e.schema, e.name)}", "drop_type", e.id, removes=frozenset({e.id}),
                     hazards=(hz.deletes_data(e.id, f"enum type {e.schema}.{e.name}"),))

def alter_enum(p: Diff, have: EnumType, want: EnumType) -> None:
    removed = [v for v in have.labels if v not in want.labels]
    kept = [v for v in want.labels if v in have.labels]
    if removed or kept != [v for v in have.labels if v in want.labels]:
        # ADD VALUE cannot remove or reorder: a new type takes the old one's place
        recreate_enum(p, have, want)
        return
    current = list(have.labels)
    for i, label in enumerate(want.labels):
        if label in current:
            continue
        # place it next to its neighbour in the desired order
        if i + 1 < len(want.labels) and want.labels[i + 1] in current:
            where = f" BEFORE {lit(want.labels[i + 1])}"
            current.insert(current.index(want.labels[i + 1]), label)
        elif i > 0:
            where = f" AFTER {lit(want.labels[i - 1])}"
            current.insert(current.index(want.labels[i - 1]) + 1, label)
        else:
            where = ""
            current.append(label)
        # a new enum value cannot be used before its transaction commits
        p.add(f"ALTER TYPE {q(want.schema, want.name)} ADD VALUE {lit(label)}{where}", "alter_type",
                 want.id, mode=OWN, provides=frozenset({want.id}))

def is_enum(p: Diff, type_name: str) -> bool:
    """Whether a column type (as format_type prints it) is an enum of either catalog, or an array of one."""
    base = type_name[:-2] if type_name.endswith("[]") else type_name
    enums = (*p.actual.enums.values(), *p.desired.enums.values())
    keys = {f"{q(e.schema)}.{q(e.name)}" for e in enums} | {f"{e.schema}.{e.name}" for e in enums}
    return base in keys


def _type_names(schema: str, name: str) -> set[str]:
    """How format_type may print a type: bare when visible, else qualified (quoted as needed)."""
    return {q(schema, name), f"{schema}.{name}", f"{q(schema)}.{name}", f"{schema}.{q(name)}"}


def enum_columns(p: Diff, e: EnumType) -> list[tuple[str, str, bool]]:
    """(table id, column, is_array) of the columns of kept tables that hold the enum, in the
    database and in the desired state alike. Inherited columns follow their parent's."""
    names = _type_names(e.schema, e.name)
    out = []
    for key, have in p.actual.tables.items():
        want = p.desired.tables.get(key)
        if want is None or key in p.recreated:
            continue
        for c in have.columns.values():
            if c.inherited:
                continue
            base, is_array = (c.type[:-2], True) if c.type.endswith("[]") else (c.type, False)
            if base not in names:
                continue
            w = want.columns.get(c.name)
            if w is not None and w.type == c.type:
                out.append((key, c.name, is_array))
    return out


def recreate_enum(p: Diff, have: EnumType, want: EnumType) -> None:
    """Remove or reorder values: build the new type under a temporary name, move the columns
    to it through text, drop the old type and give the new one its name."""
    removed = [v for v in have.labels if v not in want.labels]
    blockers = [u for u in still_used(p, want.id) if not u.startswith(("column:", "view:"))]
    if blockers:
        raise UnsupportedError("enum change", f"{want.schema}.{want.name}",
                               f"removing or reordering values while {blockers[0]} uses the type")
    tmp = (want.name[:50] + "__pgc_new")
    tmp_id = type_id(want.schema, tmp)
    p.add(f"CREATE TYPE {q(want.schema, tmp)} AS ENUM ({', '.join(lit(v) for v in want.labels)})", "create_type",
          tmp_id, provides=frozenset({tmp_id}), requires=frozenset({schema_id(want.schema)}))
    moved = []
    for tkey, col, is_array in enum_columns(p, want):
        t_have, t_want = p.actual.tables[tkey], p.desired.tables[tkey]
        c_have, c_want = t_have.columns[col], t_want.columns[col]
        cid = column_id(t_have.schema, t_have.name, col)
        prefix = f"ALTER TABLE {q(t_have.schema, t_have.name)} ALTER COLUMN {q(col)}"
        tid = t_have.id
        if c_have.default is not None:
            p.add(f"{prefix} DROP DEFAULT", "alter_column", cid, provides=frozenset({cid}), table=tid)
        arr = "[]" if is_array else ""
        p.add(f"{prefix} TYPE {q(want.schema, tmp)}{arr} USING {q(col)}::text{arr}::{q(want.schema, tmp)}{arr}",
              "alter_column", cid, provides=frozenset({cid}), requires=frozenset({tmp_id}),
              drop_before=frozenset({want.id}), table=tid,
              hazards=(hz.rewrites_table(cid, f"{t_have.schema}.{t_have.name}.{col} moves to the new {want.name}"),
                       hz.blocks_reads_writes(cid, f"{t_have.schema}.{t_have.name}")))
        if c_want.default is not None:
            # after the rename, so that the default's cast names the new type
            p.add(f"{prefix} SET DEFAULT {c_want.default}", "alter_column", cid, provides=frozenset({cid}),
                  requires=frozenset({want.id}), table=tid)
        # the generic column diff must not touch the default again
        cols = dict(p.actual.tables[tkey].columns)
        cols[col] = replace(c_have, default=c_want.default)
        p.actual.tables[tkey] = replace(p.actual.tables[tkey], columns=cols)
        moved.append(f"{t_have.name}.{col}")
    hazards = []
    if removed:
        hazards.append(hz.deletes_data(want.id, f"enum {want.schema}.{want.name}",
                                       f" loses value(s) {', '.join(repr(v) for v in removed)}: rows holding them "
                                       "fail the cast" + (f" ({', '.join(moved)})" if moved else "")))
    p.add(f"DROP TYPE {q(want.schema, want.name)}", "drop_type", want.id, removes=frozenset({want.id}),
          requires=frozenset({tmp_id}), hazards=tuple(hazards))
    p.add(f"ALTER TYPE {q(want.schema, tmp)} RENAME TO {q(want.name)}", "alter_type", want.id,
          provides=frozenset({want.id}), requires=frozenset({tmp_id}))
    if want.comment is not None and want.comment == have.comment:
        p.add(f"COMMENT ON TYPE {q(want.schema, want.name)} IS {lit(want.comment)}", "comment", want.id,
              requires=frozenset({want.id}))
