"""Indexes: CREATE INDEX (CONCURRENTLY on an existing plain table or materialized view), DROP
INDEX, ALTER INDEX SET / RESET (storage parameters) and ALTER COLUMN n SET STATISTICS, and
COMMENT ON INDEX. Tables diff theirs here; views use add_create / add_drop / add_comment for the
indexes of materialized views."""

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


def without_options(definition: str) -> str:
    """pg_get_indexdef text without its WITH (storage parameters) clause, found by PostgreSQL's
    lexer at parenthesis depth 0 (the column list, INCLUDE and WHERE hold no such clause)."""
    from pglast.parser import scan  # lazily: a cached plan never lexes

    toks = list(scan(definition))
    depth = 0
    for i, t in enumerate(toks):
        if t.name == "ASCII_40":
            depth += 1
        elif t.name == "ASCII_41":
            depth -= 1
        elif depth == 0 and t.name == "WITH" and i + 1 < len(toks) and toks[i + 1].name == "ASCII_40":
            inner = 0
            for t2 in toks[i + 1:]:
                inner += {"ASCII_40": 1, "ASCII_41": -1}.get(t2.name, 0)
                if inner == 0:
                    return (definition[:t.start].rstrip() + " " + definition[t2.end + 1:].lstrip()).rstrip()
    return definition


def needs_rebuild(old: Index, new: Index, partitioned: bool = False) -> bool:
    """Whether the index must be dropped and built again: it is invalid, or differs in more than
    its storage parameters and column statistics (those change in place, but not on a partitioned
    index: PostgreSQL has no ALTER INDEX SET there)."""
    if not old.valid:
        return True
    if old.definition == new.definition:
        return False
    return partitioned or without_options(old.definition) != without_options(new.definition)


def _option(entry: str) -> tuple[str, str]:
    name, _, value = entry.partition("=")
    return name, value


def alter_index(p: Diff, old: Index | None, new: Index, table: str | None = None) -> None:
    """ALTER INDEX SET (...) / RESET (...) and SET STATISTICS for what differs between `old` (None:
    the index is being created) and `new`. Catalog only: nothing is rebuilt, and the lock is brief
    (pages written before keep their old fill until the next REINDEX)."""
    iq = q(new.schema, new.name)
    before = dict(_option(o) for o in (old.options if old else ()))
    after = dict(_option(o) for o in new.options)
    requires = frozenset({new.id})
    if old is not None and old.options != new.options:
        # SET appends what it names after the parameters it leaves alone, and pg_dump prints
        # them in that order: RESET what goes, then SET every parameter in the declared order
        cmds = []
        resets = [q(k) for k in before if k not in after]
        if resets:
            cmds.append(f"RESET ({', '.join(resets)})")
        if after:
            cmds.append(f"SET ({', '.join(f'{q(k)} = {lit(v)}' for k, v in after.items())})")
        p.add(f"ALTER INDEX {iq} {', '.join(cmds)}", "alter_index", new.id, requires=requires, table=table)
    had = dict(old.statistics) if old else {}
    want = dict(new.statistics)
    for n in sorted(set(had) | set(want)):
        if had.get(n, -1) != want.get(n, -1):
            p.add(f"ALTER INDEX {iq} ALTER COLUMN {int(n)} SET STATISTICS {int(want.get(n, -1))}", "alter_index",
                  new.id, requires=requires, table=table)


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
    if idx.statistics:
        alter_index(p, None, idx, table=t.id)  # CREATE INDEX has no clause for them
    if idx.comment:
        add_comment(p, idx, frozenset({idx.id}))


def drop_index(p: Diff, t: Table, idx: Index) -> None:
    # an INVALID index (left by a failed concurrent build) serves no query: dropping it is no hazard
    hazards = (hz.index_dropped(idx.id, f"index {idx.schema}.{idx.name} on {t.name} is dropped"),) if idx.valid else ()
    add_drop(p, idx, t.kind != "p", hazards, table=t.id)
