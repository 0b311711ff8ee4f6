"""Who inherits from whom: the pure questions about partitions and inheritance children that
the column, table and partition kinds all ask. Nothing here adds a step.

Parents are named by their qualified name ("schema.name", as ``Table.partition_of`` and
``Table.inherits`` hold them); ``parent_id`` turns one into a table id."""

from __future__ import annotations

from dataclasses import replace

from pgconverge.catalog.model import Table, oid_key
from pgconverge.planning.context import Diff
from pgconverge.planning.renames import renamed_table


def parents(t: Table) -> tuple[str, ...]:
    """Qualified names of the tables a table inherits from (its partitioned parent first)."""
    return (t.partition_of,) if t.partition_of else tuple(t.inherits)


def parent_id(name: str) -> str:
    return oid_key("table", name)


def rel_id(child: Table, parent: str) -> str:
    """The id of one parent-child link, removed by DETACH / NO INHERIT and made by ATTACH / INHERIT."""
    return f"inheritance:{child.schema}.{child.name}>{parent}"


def local_view(t: Table) -> Table:
    """The table without the constraints and indexes its parents carry."""
    if not any(c.inherited for c in t.constraints.values()) and not any(i.inherited for i in t.indexes.values()):
        return t
    return replace(t, constraints={k: c for k, c in t.constraints.items() if not c.inherited},
                   indexes={k: i for k, i in t.indexes.items() if not i.inherited})


def renamed(p: Diff, name: str) -> str:
    """A parent's name after the declared table renames of this plan."""
    return renamed_table(p, p.options.renames, name)


def kept_parents(p: Diff, have: Table, want: Table) -> list[str]:
    """Parents (by desired name) that the table has before and after, through steps that
    recurse into it."""
    def usable(name: str) -> bool:
        tid = parent_id(name)
        return tid in p.actual.tables and tid in p.desired.tables and tid not in p.recreated

    if have.partition_of or want.partition_of:
        if (have.partition_of and want.partition_of and renamed(p, have.partition_of) == want.partition_of
                and have.partition_bound == want.partition_bound and usable(want.partition_of)):
            return [want.partition_of]
        return []
    return [renamed(p, par) for par in have.inherits if renamed(p, par) in want.inherits
            and usable(renamed(p, par))]


def children_keep(p: Diff, parent: Table, column: str) -> bool:
    """Whether a child that stays declares a column the parent drops: then the parent drops
    it with ONLY and the child keeps it as its own."""
    pname = f"{parent.schema}.{parent.name}"
    for key, have in p.actual.tables.items():
        want = p.desired.tables.get(key)
        if want is None or pname not in kept_parents(p, have, want):
            continue
        c, w = have.columns.get(column), want.columns.get(column)
        if c is not None and c.inherited and w is not None and not w.inherited:
            return True
    return False
