"""Indexes: CREATE INDEX (CONCURRENTLY on an existing plain table or materialized view), DROP
INDEX and COMMENT ON INDEX. Tables diff theirs here; views use add_create / add_drop / add_comment
for the indexes of materialized views."""

from __future__ import annotations

from pgconverge.catalog.model import Index, Table, column_id
from pgconverge.planning import hazards as hz
from pgconverge.planning.context import Diff
from pgconverge.planning.ddl import concurrently
from pgconverge.planning.hazards import Hazard
from pgconverge.planning.steps import GROUP, NONE
from pgconverge.quoting import lit, q


def add_create(p: Diff, idx: Index, online: bool, requires: frozenset[str], hazards: tuple[Hazard, ...] = (),
               table: str | None = None) -> None:
    """CREATE INDEX as PostgreSQL printed it; CONCURRENTLY (outside a transaction) when online."""
    p.add(concurrently(idx.definition) if online else idx.definition, "create_index", idx.id,
          mode=NONE if online else GROUP, provides=frozenset({idx.id}), requires=requires, table=table,
          hazards=hazards)


def add_drop(p: Diff, idx: Index, online: bool, hazards: tuple[Hazard, ...] = (), table: str | None = None) -> None:
    # pg_dump leaves an INVALID index out, so the proof's copy of the target lacks it: IF EXISTS
    # lets the same statement run on the copy and on the target
    if_exists = " IF EXISTS" if not idx.valid else ""
    p.add(f"DROP INDEX{' CONCURRENTLY' if online else ''}{if_exists} {q(idx.schema, idx.name)}", "drop_index", idx.id,
          mode=NONE if online else GROUP, removes=frozenset({idx.id}), table=table, hazards=hazards)


def add_comment(p: Diff, idx: Index, requires: frozenset[str] = frozenset()) -> None:
    p.add(f"COMMENT ON INDEX {q(idx.schema, idx.name)} IS {lit(idx.comment)}", "comment", idx.id, requires=requires)


def create_index(p: Diff, t: Table, idx: Index, existing: bool) -> None:
    requires = frozenset({t.id} | {column_id(t.schema, t.name, c) for c in idx.columns})
    where = f"{t.schema}.{t.name}"
    fails = (hz.may_fail(idx.id, f"unique index {idx.name} on {where}", hz.DUPLICATES),) if idx.unique else ()
    if existing and t.kind != "p":
        add_create(p, idx, True, requires, (hz.index_build(idx.id, f"index {idx.name} is built on {where}"),) + fails,
                   table=t.id)
    elif existing:
        # a partitioned table has no CONCURRENTLY: SHARE lock on every partition during the build
        add_create(p, idx, False, requires, (
            hz.index_build(idx.id, f"index {idx.name} is built on partitioned table {where}", how=""),
            hz.blocks_writes(idx.id, where, f": writes wait while index {idx.name} is built "
                             "(SHARE lock; partitioned tables cannot build CONCURRENTLY)")) + fails, table=t.id)
    else:
        add_create(p, idx, False, requires, table=t.id)
    if idx.comment:
        add_comment(p, idx, frozenset({idx.id}))


def drop_index(p: Diff, t: Table, idx: Index) -> None:
    # an INVALID index (left by a failed concurrent build) serves no query: dropping it is no hazard
    hazards = (hz.index_dropped(idx.id, f"index {idx.schema}.{idx.name} on {t.name} is dropped"),) if idx.valid else ()
    add_drop(p, idx, t.kind != "p", hazards, table=t.id)
