"""Tables: CREATE TABLE (with its columns, constraints and indexes), ALTER TABLE (persistence,
then each column, constraint and index through their kinds), DROP TABLE, and comments.

A table PostgreSQL cannot change in place (``Diff.recreated``) is dropped and created again;
partitions and inheritance children are diffed from their effective state (see partitions)."""

from __future__ import annotations

from pgconverge.catalog.model import Index, Table, column_id, constraint_id, oid_key, schema_id
from pgconverge.planning import hazards as hz
from pgconverge.planning.context import Diff
from pgconverge.planning.ddl import not_null_check_name, split_qualified, strip_not_valid, with_index_name
from pgconverge.planning.kinds import partitions
from pgconverge.planning.kinds.columns import add_column, alter_column, column_sql, drop_column
from pgconverge.planning.kinds.constraints import (add_constraint, drop_constraint, unvalidate_constraint,
                                                   validate_constraint)
from pgconverge.planning.kinds.indexes import add_comment, alter_index, create_index, drop_index, needs_rebuild
from pgconverge.planning.kinds.lineage import local_view
from pgconverge.quoting import lit, q


def diff(p: Diff) -> None:
    for key, t in p.desired.tables.items():
        have = p.actual.tables.get(key)
        if have is None or key in p.recreated:
            p.new_tables.add(key)
            create_table(p, t)
        else:
            alter_table(p, have, t)
    for key, t in p.actual.tables.items():
        if key not in p.desired.tables or key in p.recreated:
            p.dropped_tables.add(key)
            drop_table(p, t)
    partitions.keep_across_recreation(p)


def table_requires(t: Table) -> frozenset[str]:
    req = {schema_id(t.schema)}
    for c in t.columns.values():
        req.update(c.depends_on)
    if t.partition_of:
        req.add(oid_key("table", t.partition_of))
    req.update(oid_key("table", p) for p in t.inherits)
    return frozenset(req)


def create_table(p: Diff, t: Table) -> None:
    full, t = t, local_view(t)  # what parents carry is created by them
    items = [column_sql(t.schema, c) for c in sorted(t.columns.values(), key=lambda c: c.position)
        if not c.inherited]
    for con in t.constraints.values():
        # a NOT VALID CHECK inside CREATE TABLE is made valid: it is added after the table instead
        if con.kind != "f" and con.validated:
            items.append(f"CONSTRAINT {q(con.name)} {con.definition}")
    unlogged = "UNLOGGED " if t.persistence == "u" else ""
    body = "(\n    " + ",\n    ".join(items) + "\n)" if items else "()"
    if t.partition_of:
        schema, name = split_qualified(t.partition_of)
        body = f"PARTITION OF {q(schema, name)} {body + ' ' if items else ''}{t.partition_bound}"
    elif t.inherits:
        body += " INHERITS (" + ", ".join(q(*split_qualified(p)) for p in t.inherits) + ")"
    if t.partition_key:
        body += f" PARTITION BY {t.partition_key}"
    provides = {t.id} | {column_id(t.schema, t.name, c) for c in t.columns}
    provides |= {constraint_id(t.schema, t.name, c.name) for c in t.constraints.values()
                 if c.kind != "f" and c.validated}
    p.add(f"CREATE {unlogged}TABLE {q(t.schema, t.name)} {body}", "create_table", t.id,
          provides=frozenset(provides), requires=table_requires(t), table=t.id,
          hazards=partitions.create_hazards(p, t))
    partitions.after_create(p, full)
    for con in t.constraints.values():
        if con.kind == "f" or not con.validated:
            add_constraint(p, t, con, existing=False)
    for idx in t.indexes.values():
        create_index(p, t, idx, existing=False)
    comments(p, t, None)


def drop_table(p: Diff, t: Table) -> None:
    # foreign keys pointing at this table from tables that stay must go first
    why = p.recreated.get(t.id)
    hazard = (hz.deletes_data(t.id, f"table {t.schema}.{t.name} {why}", ": it is dropped and created again, its "
                              "rows are lost") if why
              else hz.deletes_data(t.id, f"table {t.schema}.{t.name}", " is dropped with its rows"))
    p.add(f"DROP TABLE {q(t.schema, t.name)}", "drop_table", t.id,
          hazards=(hazard,),
          removes=frozenset({t.id}), drop_before=frozenset(
              {oid_key("table", t.partition_of)} if t.partition_of else set()), table=t.id)
    for con in t.constraints.values():
        if con.kind == "f" and con.ref_table != t.id and not con.inherited:
            # drop outgoing FKs separately so that tables dropped together need no CASCADE
            drop_constraint(p, t, con)


def alter_table(p: Diff, have: Table, want: Table) -> None:
    tid = want.id
    full_want = want
    if have.persistence != want.persistence:
        word = "UNLOGGED" if want.persistence == "u" else "LOGGED"
        p.add(f"ALTER TABLE {q(want.schema, want.name)} SET {word}", "alter_table", tid,
              hazards=(hz.rewrites_table(tid, f"table {want.schema}.{want.name} is rewritten to become {word.lower()}",
                                     how=""),
                   hz.blocks_reads_writes(tid, f"{want.schema}.{want.name}", f"{hz.WAIT_REWRITE} (ACCESS EXCLUSIVE)")),
          table=tid, provides=frozenset({tid}))
    # detach, attach, (NO) INHERIT; then diff what the table will be once its parents'
    # steps recursed into it, without the copies its parents carry
    have, want = partitions.relationship(p, have, want)
    # what an earlier run that failed half-way left behind, and this run finishes:
    # the NOT NULL checks of the online SET NOT NULL, and unique indexes built CONCURRENTLY
    # for a key that was not attached yet
    finishing = {not_null_check_name(n) for n, c in want.columns.items()
                 if c.not_null and n in have.columns and not have.columns[n].not_null}
    adopted = p.adopted_indexes.setdefault(tid, set())
    for name, con in want.constraints.items():
        left = have.indexes.get(name)
        if (con.kind in "pu" and name not in have.constraints and left is not None and left.valid
                and left.unique and con.index_definition
                and left.definition == with_index_name(con.index_definition, con.index or name, name)):
            adopted.add(name)
    # constraints that change are dropped before columns change and added after
    for name, con in have.constraints.items():
        new = want.constraints.get(name)
        if new is None and name in finishing:
            continue
        if new is None or strip_not_valid(new.definition) != strip_not_valid(con.definition):
            drop_constraint(p, have, con)
    for name, c in want.columns.items():
        old = have.columns.get(name)
        if old is None:
            add_column(p, want, c)
        elif not old.same_definition(c):
            alter_column(p, want, old, c)
    for name, c in have.columns.items():
        if name not in want.columns:
            drop_column(p, have, c)
    for name, con in want.constraints.items():
        old = have.constraints.get(name)
        if old is None or strip_not_valid(old.definition) != strip_not_valid(con.definition):
            add_constraint(p, want, con, existing=True)
        elif not old.validated and con.validated:
            validate_constraint(p, want, con)
        elif old.validated and not con.validated:
            unvalidate_constraint(p, want, con)
    for name, idx in have.indexes.items():
        new = want.indexes.get(name)
        if name in adopted:
            continue
        if new is None and adopted_by_parent_index(p, full_want, idx):
            continue
        if new is None or needs_rebuild(idx, new, have.kind == "p"):
            drop_index(p, have, idx)
    for name, idx in want.indexes.items():
        old = have.indexes.get(name)
        if old is None or needs_rebuild(old, idx, want.kind == "p"):
            create_index(p, want, idx, existing=True)
        else:
            alter_index(p, old, idx, table=want.id)  # storage parameters and statistics, in place
    comments(p, want, have)


def _index_shape(definition: str) -> tuple[bool, str]:
    """What of pg_get_indexdef text does not name the index or its table: UNIQUE and what follows
    USING (method, columns, INCLUDE, WITH, WHERE)."""
    head, _, tail = definition.partition(" USING ")
    return head.startswith("CREATE UNIQUE "), tail


def adopted_by_parent_index(p: Diff, want: Table, idx: Index) -> bool:
    """A partition's own index that sql/ declares attached to an index its partitioned parent gets
    in this plan: CREATE INDEX on the parent attaches a matching index of each partition instead of
    building one, so it is kept (under its declared name) rather than dropped and built again
    under a generated one. The partitions' diff orders the parent's CREATE after the drops."""
    declared = want.indexes.get(idx.name)
    if (declared is None or not declared.inherited or not idx.valid or not want.partition_of
            or _index_shape(declared.definition) != _index_shape(idx.definition)):
        return False
    parent_id = oid_key("table", want.partition_of)
    pw, ph = p.desired.tables.get(parent_id), p.actual.tables.get(parent_id)
    if pw is None or ph is None:
        return False
    return any(_index_shape(pi.definition) == _index_shape(idx.definition)
               and (pi.name not in ph.indexes or needs_rebuild(ph.indexes[pi.name], pi, True))
               for pi in pw.indexes.values())


def comments(p: Diff, want: Table, have: Table | None) -> None:
    tq = q(want.schema, want.name)
    if want.comment != (have.comment if have else None):
        p.add(f"COMMENT ON TABLE {tq} IS {lit(want.comment)}", "comment", want.id,
              requires=frozenset({want.id}))
    for name, c in want.columns.items():
        before = have.columns[name].comment if have and name in have.columns else None
        if c.comment != before:
            cid = column_id(want.schema, want.name, name)
            p.add(f"COMMENT ON COLUMN {q(want.schema, want.name, name)} IS {lit(c.comment)}", "comment", cid,
                  requires=frozenset({cid}))
    for name, con in want.constraints.items():
        old = have.constraints.get(name) if have else None
        before = old.comment if old and old.definition == con.definition else None
        if con.comment != before:
            cid = constraint_id(want.schema, want.name, name)
            p.add(f"COMMENT ON CONSTRAINT {q(name)} ON {tq} IS {lit(con.comment)}", "comment", cid,
                  requires=frozenset({cid}))
    if have is not None:
        for name, idx in want.indexes.items():
            old = have.indexes.get(name)
            if old is not None and not needs_rebuild(old, idx, want.kind == "p") and old.comment != idx.comment:
                add_comment(p, idx)
