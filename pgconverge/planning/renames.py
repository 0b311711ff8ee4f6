"""Declared renames (``-- @renamed-from``): the records, and the steps that carry them out.

The renames run before every other kind: they rename in the database and rewrite the actual
catalog as if they had run, so the rest of the diff sees the renamed objects (and what refers
to them) under their new names. This module does not import the diff context (which holds
the options, and so these records): it works on anything shaped like a diff (``Renaming``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Callable, Protocol

from pgconverge.catalog.model import Catalog, Table, column_id, constraint_id, index_id, sequence_id, table_id, type_id
from pgconverge.errors import PlanError
from pgconverge.planning import hazards as hz
from pgconverge.planning.ddl import (NAMEDATALEN, _names, qi, rename_column_record, rename_table_record,
                                     strip_not_valid, swap_ident, swap_references, swap_regclass)
from pgconverge.planning.hazards import Hazard
from pgconverge.quoting import lit, q


@dataclass(frozen=True)
class Rename:
    """One declared rename. `table` names the table of a column or constraint (by its new name)."""

    kind: str  # table | column | constraint | index | type (an enum) | enum_value (`table`: the enum's name)
    schema: str
    table: str | None
    old: str
    new: str
    where: str = ""  # "file:line" of the directive


@dataclass(frozen=True)
class Renames:
    items: tuple[Rename, ...] = ()

    def of_kind(self, kind: str) -> list[Rename]:
        return [r for r in self.items if r.kind == kind]


class Renaming(Protocol):
    """What the renames need of a diff."""

    actual: Catalog
    desired: Catalog
    warnings: list[str]

    def add(self, sql_text: str, kind: str, obj: str, **kw) -> None: ...


def apply_renames(p: Renaming, renames: Renames) -> None:
    """Emit the declared renames whose old name exists and new name does not.

    A rename is a no-op once it ran (only the new name exists). On a database where neither
    exists the diff creates the object, with a warning that names the directive. When both exist, it is skipped with a
    warning and the old object is left to the diff, which drops it only when the policy
    allows and names it.
    """
    # tables and types first: the other renames name their table (or enum) by its new name
    for r in sorted(renames.items, key=lambda r: r.kind not in ("table", "type")):
        where = f" (-- @renamed-from at {r.where})" if r.where else ""
        if r.kind == "table":
            rename_table(p, r.schema, r.old, r.new, where)
        elif r.kind == "column":
            rename_column(p, r.schema, r.table, r.old, r.new, where)
        elif r.kind == "constraint":
            rename_constraint(p, r.schema, r.table, r.old, r.new, where)
        elif r.kind == "index":
            rename_index(p, r.schema, r.old, r.new, where)
        elif r.kind == "type":
            rename_type(p, r.schema, r.old, r.new, where)
        elif r.kind == "enum_value":
            rename_enum_value(p, r.schema, r.table or "", r.old, r.new, where)


def _must_rename(p: Renaming, kind: str, old: str, new: str, old_exists: bool, new_exists: bool,
                 old_declared: bool, where: str) -> bool:
    if old_declared:
        raise PlanError(f"{kind} {new} is declared renamed from {old}{where}, but {old} is declared in sql/ too: "
                        "remove the directive or the old definition")
    if old_exists and new_exists:
        p.warnings.append(f"{kind} {old} is declared renamed to {new}{where}, but both exist: the rename is "
                          f"skipped and {old} is left to the diff (dropped only if named for deletion)")
        return False
    if not old_exists and not new_exists:
        _never_applies(p, kind, old, new, where)
    return old_exists


def _never_applies(p: Renaming, kind: str, old: str, new: str, where: str, missing: str = "") -> None:
    """Neither name is in the database: the directive cannot rename anything (a wrong old name,
    or a database that never had it), which the operator should hear about. The new object is
    still created, as the diff declares it."""
    p.warnings.append(f"{kind} {new} is declared renamed from {old}{where}, but {missing or old} does not exist in "
                      f"the database: the rename cannot apply, and {new} is created as new")


def _rewrite_tables(p: Renaming, fn: Callable[[Table], Table]) -> None:
    for key, t in list(p.actual.tables.items()):
        p.actual.tables[key] = fn(t)


def rename_table(p: Renaming, schema: str, old: str, new: str, where: str) -> None:
    new_id, old_id = table_id(schema, new), table_id(schema, old)
    if not _must_rename(p, "table", f"{schema}.{old}", f"{schema}.{new}", old_id in p.actual.tables,
                        new_id in p.actual.tables, old_id in p.desired.tables, where):
        return
    p.add(f"ALTER TABLE {q(schema, old)} RENAME TO {q(new)}", "rename", new_id,
          hazards=(hz.renames(old_id, f"table {schema}.{old}", new),), provides=frozenset({new_id}), table=new_id)
    p.actual.tables[new_id] = rename_table_record(p.actual.tables.pop(old_id), new)

    def refs(t: Table) -> Table:  # foreign keys that point at it now print the new name
        cons = {k: replace(c, ref_table=new_id, definition=swap_references(c.definition, schema, old, new))
                if c.kind == "f" and c.ref_table == old_id else c for k, c in t.constraints.items()}
        return replace(t, constraints=cons)

    _rewrite_tables(p, refs)
    for key, s in list(p.actual.sequences.items()):
        if s.schema == schema and s.owned_by and s.owned_by[0] == old:
            p.actual.sequences[key] = replace(s, owned_by=(new, s.owned_by[1]))
    rename_derived(p, schema, new, old, new)


def rename_column(p: Renaming, schema: str, table: str | None, old: str, new: str, where: str) -> None:
    t = p.actual.tables.get(table_id(schema, table)) if table else None
    if t is None or table is None:
        # the table is new: the diff creates it with the new column
        _never_applies(p, "column", f"{schema}.{table}.{old}", f"{schema}.{table}.{new}", where,
                       f"table {schema}.{table}")
        return
    want = p.desired.tables.get(t.id)
    if not _must_rename(p, "column", f"{schema}.{table}.{old}", f"{schema}.{table}.{new}", old in t.columns,
                        new in t.columns, want is not None and old in want.columns, where):
        return
    p.add(f"ALTER TABLE {q(schema, table)} RENAME COLUMN {q(old)} TO {q(new)}", "rename",
          column_id(schema, table, new),
          hazards=(hz.renames(column_id(schema, table, old), f"column {schema}.{table}.{old}", new),),
          provides=frozenset({column_id(schema, table, new)}), requires=frozenset({t.id}), table=t.id)
    p.actual.tables[t.id] = rename_column_record(t, old, new)

    def refs(other: Table) -> Table:  # foreign keys of other tables that name the column
        cons = {k: replace(c, definition=swap_references(c.definition, schema, table, table, old, new))
                if c.kind == "f" and c.ref_table == t.id and other.id != t.id else c
                for k, c in other.constraints.items()}
        return replace(other, constraints=cons)

    _rewrite_tables(p, refs)
    for key, s in list(p.actual.sequences.items()):
        if s.schema == schema and s.owned_by == (table, old):
            p.actual.sequences[key] = replace(s, owned_by=(table, new))
    rename_derived(p, schema, table, old, new)


def rename_constraint(p: Renaming, schema: str, table: str | None, old: str, new: str, where: str) -> None:
    t = p.actual.tables.get(table_id(schema, table)) if table else None
    if t is None:
        _never_applies(p, "constraint", f"{old} on {schema}.{table}", new, where, f"table {schema}.{table}")
        return
    want = p.desired.tables.get(t.id)
    if not _must_rename(p, "constraint", f"{old} on {schema}.{table}", new, old in t.constraints,
                        new in t.constraints, want is not None and old in want.constraints, where):
        return
    _emit_constraint_rename(p, t, old, new, (hz.renames(constraint_id(schema, t.name, old),
                                                        f"constraint {old} on {schema}.{table}", new, how=""),))


def rename_index(p: Renaming, schema: str, old: str, new: str, where: str) -> None:
    owner = p.actual.index_owner(schema, old)
    if not _must_rename(p, "index", f"{schema}.{old}", f"{schema}.{new}", owner is not None,
                        p.actual.index_owner(schema, new) is not None,
                        p.desired.index_owner(schema, old) is not None, where) or owner is None:
        return
    _emit_index_rename(p, owner, old, new, (hz.renames(index_id(schema, old), f"index {schema}.{old}", new,
                                                       how=""),))


def _retyped(type_text: str, schema: str, old: str, new: str) -> str:
    """A column's type as format_type prints it, with enum `old` of `schema` renamed to `new`."""
    m = re.fullmatch(r"(.*?)((?:\[\])*)", type_text)
    base, arrays = (m.group(1), m.group(2)) if m else (type_text, "")
    bare, qualified = _names(old), {f"{s}.{o}" for s in _names(schema) for o in _names(old)}
    if base in bare:
        return qi(new) + arrays
    if base in qualified:
        return f"{qi(schema)}.{qi(new)}" + arrays
    return type_text


def rename_type(p: Renaming, schema: str, old: str, new: str, where: str) -> None:
    """ALTER TYPE ... RENAME TO, for an enum type: its columns keep their values."""
    new_id, old_id = type_id(schema, new), type_id(schema, old)
    if old_id not in p.actual.enums and _type_exists(p.actual, old_id):
        raise PlanError(f"type {schema}.{new} is declared renamed from {old}{where}, but {schema}.{old} is not an "
                        "enum type: renames of other types are not planned; rename it by hand first")
    if not _must_rename(p, "type", f"{schema}.{old}", f"{schema}.{new}", old_id in p.actual.enums,
                        _type_exists(p.actual, new_id), _type_exists(p.desired, old_id), where):
        return
    p.add(f"ALTER TYPE {q(schema, old)} RENAME TO {q(new)}", "rename", new_id,
          hazards=(hz.renames(old_id, f"type {schema}.{old}", new),), provides=frozenset({new_id}))
    p.actual.enums[new_id] = replace(p.actual.enums.pop(old_id), name=new)
    for key, t in list(p.actual.tables.items()):
        cols = {n: replace(c, type=_retyped(c.type, schema, old, new)) for n, c in t.columns.items()}
        if any(cols[n].type != c.type for n, c in t.columns.items()):
            p.actual.tables[key] = replace(t, columns=cols)


def _type_exists(cat: Catalog, tid: str) -> bool:
    return any(tid in getattr(cat, kind, {}) for kind in ("enums", "composites", "domains", "ranges"))


def rename_enum_value(p: Renaming, schema: str, type_name: str, old: str, new: str, where: str) -> None:
    """ALTER TYPE ... RENAME VALUE: the rows keep their value under its new label (removing one
    value and adding another would rebuild the type and lose what the rows held)."""
    tid = type_id(schema, type_name)
    have, want = p.actual.enums.get(tid), p.desired.enums.get(tid)
    labels = have.labels if have is not None else ()
    what = f"enum {schema}.{type_name}"
    if not _must_rename(p, "value of", f"{what} {lit(old)}", f"{what} {lit(new)}", old in labels, new in labels,
                        want is not None and old in want.labels, where) or have is None:
        return
    p.add(f"ALTER TYPE {q(schema, type_name)} RENAME VALUE {lit(old)} TO {lit(new)}", "rename", tid,
          hazards=(hz.renames(tid, f"value {lit(old)} of {what}", lit(new)),), provides=frozenset({tid}))
    p.actual.enums[tid] = replace(have, labels=tuple(new if v == old else v for v in labels))


def _emit_constraint_rename(p: Renaming, t: Table, old: str, new: str, hazards: tuple[Hazard, ...] = ()) -> None:
    cid = constraint_id(t.schema, t.name, new)
    p.add(f"ALTER TABLE {q(t.schema, t.name)} RENAME CONSTRAINT {q(old)} TO {q(new)}", "rename", cid,
          hazards=hazards, provides=frozenset({cid}), requires=frozenset({t.id}), table=t.id)
    # a primary key or unique constraint renames its index with it
    cons = {(new if k == old else k): (replace(c, name=new, index=new if c.index == old else c.index)
                                       if k == old else c) for k, c in t.constraints.items()}
    index = t.constraints[old].index if old in t.constraints else None
    p.actual.tables[t.id] = _follow_index(replace(t, constraints=cons), index, new) if index else \
        replace(t, constraints=cons)


def _emit_index_rename(p: Renaming, owner: Table, old: str, new: str, hazards: tuple[Hazard, ...] = ()) -> None:
    iid = index_id(owner.schema, new)
    p.add(f"ALTER INDEX {q(owner.schema, old)} RENAME TO {q(new)}", "rename", iid, hazards=hazards,
          provides=frozenset({iid}), requires=frozenset({owner.id}), table=owner.id)
    idx = {(new if k == old else k): (replace(i, name=new, definition=swap_ident(i.definition, old, new))
                                      if k == old else i) for k, i in owner.indexes.items()}
    p.actual.tables[owner.id] = _follow_index(replace(owner, indexes=idx), old, new)


def _follow_index(t: Table, old: str, new: str) -> Table:
    """REPLICA IDENTITY USING INDEX and CLUSTER ON name the index by its oid: they follow a
    rename, so the table's record names the new name and the diff plans nothing for them."""
    changes = {}
    if t.replica_index == old:
        changes["replica_index"] = new
    if t.cluster_index == old:
        changes["cluster_index"] = new
    return replace(t, **changes) if changes else t


def derived_name(name: str, old: str, new: str) -> str | None:
    """`name` with `old` replaced by `new` where `old` is a whole "_"-separated part of it, as in
    the names PostgreSQL derives (t_col_key, t_pkey, t_id_seq); None when it is no such name or
    the result does not fit NAMEDATALEN."""
    cand = re.sub(r"(?:^|(?<=_))" + re.escape(old) + r"(?=_|$)", lambda _m: new, name, count=1)
    return cand if cand != name and len(cand.encode()) <= NAMEDATALEN else None


def rename_derived(p: Renaming, schema: str, table: str, old: str, new: str) -> None:
    """PostgreSQL keeps the names it derived from a table or column name (t_pkey,
    t_col_key, t_col_idx, t_id_seq) when that name changes, while the shadow derives
    them from the new name. Rename such an object when the desired catalog has the
    derived name with the very same definition, instead of rebuilding it."""
    tid = table_id(schema, table)
    t = p.actual.tables.get(tid)
    want = p.desired.tables.get(tid)
    if t is None or want is None:
        return

    def derived(name: str) -> str | None:
        return derived_name(name, old, new)

    for name, con in list(t.constraints.items()):
        cand = derived(name)
        other = want.constraints.get(cand) if cand else None
        if (cand and other is not None and name not in want.constraints and cand not in t.constraints
                and other.kind == con.kind
                and strip_not_valid(other.definition) == strip_not_valid(con.definition)):
            _emit_constraint_rename(p, p.actual.tables[tid], name, cand)
    for name, idx in list(t.indexes.items()):
        cand = derived(name)
        other = want.indexes.get(cand) if cand else None
        if (cand and other is not None and name not in want.indexes and p.actual.index_owner(schema, cand) is None
                and other.definition == swap_ident(idx.definition, name, cand)):
            _emit_index_rename(p, p.actual.tables[tid], name, cand)
    for key, s in list(p.actual.sequences.items()):
        cand = derived(s.name) if s.schema == schema and s.owned_by and s.owned_by[0] == table else None
        sid = sequence_id(schema, cand) if cand else ""
        if (cand and sid in p.desired.sequences and s.id not in p.desired.sequences
                and sid not in p.actual.sequences):
            p.add(f"ALTER SEQUENCE {q(schema, s.name)} RENAME TO {q(cand)}", "rename", sid,
                  provides=frozenset({sid}))
            p.actual.sequences[sid] = replace(p.actual.sequences.pop(key), name=cand)
            # column defaults name the sequence: nextval('schema.seq'::regclass)
            _rewrite_tables(p, lambda x, old_seq=s.name, new_seq=cand: replace(x, columns={
                k: replace(c, default=swap_regclass(c.default, schema, old_seq, new_seq)) if c.default else c
                for k, c in x.columns.items()}))
    t = p.actual.tables[tid]
    for cname, col in t.columns.items():
        seq, goal = col.identity_sequence, want.columns.get(cname)
        goal_seq = goal.identity_sequence if goal is not None else None
        if seq is not None and goal_seq is not None and derived(seq.name) == goal_seq.name:
            sid = sequence_id(schema, goal_seq.name)
            p.add(f"ALTER SEQUENCE {q(schema, seq.name)} RENAME TO {q(goal_seq.name)}", "rename", sid,
                  provides=frozenset({sid}), table=t.id)
            cols = dict(t.columns)
            cols[cname] = replace(col, identity_sequence=replace(seq, name=goal_seq.name))
            t = replace(t, columns=cols)
            p.actual.tables[tid] = t


def renamed_table(p: Renaming, renames: Renames, qualified: str) -> str:
    """A table's qualified name ("schema.name") after the declared table renames of this plan."""
    schema, _, rel = qualified.partition(".")
    for r in renames.of_kind("table"):
        if r.schema == schema and r.old == rel and table_id(schema, r.new) in p.actual.tables:
            return f"{schema}.{r.new}"
    return qualified
