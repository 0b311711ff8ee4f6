"""Tables: CREATE TABLE (with its columns, constraints and indexes), ALTER TABLE (persistence,
then each column, constraint and index through their kinds), DROP TABLE, and comments.

A table PostgreSQL cannot change in place (``Diff.recreated``) is dropped and created again;
partitions and inheritance children are diffed from their effective state (see partitions).

Table settings (``table_settings``), none of which rewrites the table:
- storage parameters: ``SET (...)`` / ``RESET (...)``, SHARE UPDATE EXCLUSIVE for fillfactor,
  autovacuum_* and toast.* (reads and writes go on; only VACUUM and other schema changes wait);
  fillfactor applies to pages written from then on;
- ``REPLICA IDENTITY`` (brief ACCESS EXCLUSIVE): USING INDEX after that index exists, and reset
  before the index it names is dropped (PostgreSQL would leave the table on a missing index);
- ``CLUSTER ON`` / ``SET WITHOUT CLUSTER`` (brief): only marks the index CLUSTER uses;
- ``OF type`` / ``NOT OF`` (brief): OF only where the table's columns already are the type's,
  in order; otherwise the plan is refused before anything runs."""

from __future__ import annotations

from dataclasses import replace

from pgconverge.catalog.model import Column, Index, Table, column_id, constraint_id, index_id, oid_key, schema_id
from pgconverge.errors import PlanError
from pgconverge.planning import hazards as hz
from pgconverge.planning.context import Diff
from pgconverge.planning.ddl import not_null_check_name, split_qualified, strip_not_valid, with_index_name
from pgconverge.planning.kinds import partition_indexes, partitions
from pgconverge.planning.kinds.columns import (add_column, alter_column, attribute_settings, column_sql, drop_column,
                                               options_change, options_sql, typed_column_sql)
from pgconverge.planning.kinds.constraints import (add_constraint, drop_constraint, unvalidate_constraint,
                                                   validate_constraint)
from pgconverge.planning.kinds.indexes import add_comment, alter_index, create_index, drop_index, needs_rebuild
from pgconverge.planning.kinds.lineage import kept_parents, local_view
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
    if t.of_type_id:
        req.add(t.of_type_id)
    return frozenset(req)


def create_table(p: Diff, t: Table) -> None:
    full, t = t, local_view(t)  # what parents carry is created by them
    # keys added afterwards over the copies of the parent's indexes (partition_indexes.rename_copies)
    on_copies = partition_indexes.keys_of_copies(p, full, lambda parent, old, new: rebuilt(p, parent, old, new))
    ordered = sorted(t.columns.values(), key=lambda c: c.position)
    if t.of_type:
        # a typed table's columns are the type's: only what the table adds to them is written
        items = [x for x in (typed_column_sql(c) for c in ordered) if x]
    else:
        items = [column_sql(t.schema, c) for c in ordered if not c.inherited]
    for con in t.constraints.values():
        # a NOT VALID CHECK inside CREATE TABLE is made valid: it is added after the table instead
        if con.kind != "f" and con.validated and con.name not in on_copies:
            items.append(f"CONSTRAINT {q(con.name)} {con.definition}")
    unlogged = "UNLOGGED " if t.persistence == "u" else ""
    body = "(\n    " + ",\n    ".join(items) + "\n)" if items else "()"
    if t.of_type:
        body = f"OF {t.of_type}" + (f" {body}" if items else "")
    elif t.partition_of:
        schema, name = split_qualified(t.partition_of)
        body = f"PARTITION OF {q(schema, name)} {body + ' ' if items else ''}{t.partition_bound}"
    elif t.inherits:
        body += " INHERITS (" + ", ".join(q(*split_qualified(p)) for p in t.inherits) + ")"
    if t.partition_key:
        body += f" PARTITION BY {t.partition_key}"
    if t.options:
        body += f" WITH ({options_sql(t.options)})"
    provides = {t.id} | {column_id(t.schema, t.name, c) for c in t.columns}
    provides |= {constraint_id(t.schema, t.name, c.name) for c in t.constraints.values()
                 if c.kind != "f" and c.validated and c.name not in on_copies}
    p.add(f"CREATE {unlogged}TABLE {q(t.schema, t.name)} {body}", "create_table", t.id,
          provides=frozenset(provides), requires=table_requires(t), table=t.id,
          hazards=partitions.create_hazards(p, t))
    partitions.after_create(p, full)
    for con in t.constraints.values():
        if con.kind == "f" or not con.validated:
            add_constraint(p, t, con, existing=False)
    for idx in t.indexes.values():
        if t.kind != "p" or not partition_indexes.create(p, t, idx, existing=False):
            create_index(p, t, idx, existing=False)
    partition_indexes.rename_copies(p, full, lambda parent, old, new: rebuilt(p, parent, old, new))
    for c in t.columns.values():
        attribute_settings(p, t, None, c)
    table_settings(p, None, full)
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
    full_have, full_want = have, want
    if have.persistence != want.persistence:
        word = "UNLOGGED" if want.persistence == "u" else "LOGGED"
        p.add(f"ALTER TABLE {q(want.schema, want.name)} SET {word}", "alter_table", tid,
              hazards=(hz.rewrites_table(tid, f"table {want.schema}.{want.name} is rewritten to become {word.lower()}",
                                     how=""),
                   hz.blocks_reads_writes(tid, f"{want.schema}.{want.name}", f"{hz.WAIT_REWRITE} (ACCESS EXCLUSIVE)")),
          table=tid, provides=frozenset({tid}))
    # detach, attach, (NO) INHERIT; then diff what the table will be once its parents'
    # steps recursed into it, without the copies its parents carry
    have, want = partitions.relationship(p, have, want, lambda parent, old, new: rebuilt(p, parent, old, new))
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
    have = partition_indexes.attach_keys(p, full_have, full_want, have)
    # constraints that change are dropped before columns change and added after
    for name, con in have.constraints.items():
        new = want.constraints.get(name)
        if new is None and name in finishing:
            continue
        if new is None or strip_not_valid(new.definition) != strip_not_valid(con.definition):
            drop_constraint(p, have, con)
    typed = bool(have.of_type) and have.of_type == want.of_type
    for name, c in want.columns.items():
        old = have.columns.get(name)
        if typed:
            # a typed table's columns come, go and change type with its type's attributes (ALTER
            # TYPE ... CASCADE, see composites): what the table adds is diffed from that
            old = (replace(old, type=c.type, collation=c.collation) if old is not None
                   else Column(c.name, c.type, collation=c.collation, position=c.position,
                               depends_on=c.depends_on))
        if old is None:
            add_column(p, want, c)
        elif not old.same_definition(c):
            alter_column(p, want, old, c)
    for name, c in have.columns.items():
        if name not in want.columns and not typed:
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
        if new is None or rebuilt(p, have, idx, new):
            drop_index(p, have, idx)
    for name, idx in want.indexes.items():
        old = have.indexes.get(name)
        if old is None or rebuilt(p, have, old, idx):
            if want.kind != "p" or not partition_indexes.create(p, want, idx, existing=True):
                create_index(p, want, idx, existing=True)
        else:
            alter_index(p, old, idx, table=want.id)  # storage parameters and statistics, in place
    attach_partition_indexes(p, full_have, full_want)
    table_settings(p, have, want)
    comments(p, want, have)


_index_shape = partition_indexes.index_shape


def adopted_by_parent_index(p: Diff, want: Table, idx: Index) -> bool:
    """A partition's own index that sql/ declares attached to an index of its partitioned parent:
    kept (under its declared name) rather than dropped and built again under a generated one.
    Either the parent's index is created in this plan (CREATE INDEX on the parent attaches a
    matching index of each partition instead of building one; the partitions' diff orders that
    CREATE after the drops), or it exists and is completed in place (attach_partition_indexes)."""
    declared = want.indexes.get(idx.name)
    if (declared is None or not declared.inherited or not idx.valid or not want.partition_of
            or _index_shape(declared.definition) != _index_shape(idx.definition)):
        return False
    parent_id = oid_key("table", want.partition_of)
    pw, ph = p.desired.tables.get(parent_id), p.actual.tables.get(parent_id)
    if pw is None or ph is None:
        return False
    return any(_index_shape(pi.definition) == _index_shape(idx.definition)
               and (pi.name not in ph.indexes or rebuilt(p, ph, ph.indexes[pi.name], pi)
                    or completes_in_place(p, ph, ph.indexes[pi.name], pi))
               for pi in pw.indexes.values())


def rebuilt(p: Diff, have: Table, old: Index, new: Index) -> bool:
    """Whether an index is dropped and built again (see indexes.needs_rebuild), except an INVALID
    partitioned index that completes_in_place, and a partitioned index whose copy on a partition this
    plan creates would not be what sql/ declares (partition_indexes.unreachable_by_copy)."""
    if have.kind == "p" and partition_indexes.unreachable_by_copy(p, have, new):
        return True
    return needs_rebuild(old, new, have.kind == "p") and not completes_in_place(p, have, old, new)


_declared_child = partition_indexes.declared_child


def completes_in_place(p: Diff, parent: Table, old: Index, new: Index) -> bool:
    """An INVALID partitioned index that sql/ declares as it is (CREATE INDEX ON ONLY, with some
    partitions' indexes not attached yet): it is completed by attaching the partitions' indexes
    (ALTER INDEX ... ATTACH PARTITION, building a missing one CONCURRENTLY first), not dropped and
    built again, which would drop every index already attached to it and build them again under
    generated names. Where a partition cannot be completed so (another index of it is attached,
    its index differs, or it is partitioned itself) the index is rebuilt, and the proof judges."""
    if parent.kind != "p" or old.valid or old.definition != new.definition:
        return False
    pname = f"{parent.schema}.{parent.name}"
    shape = _index_shape(new.definition)
    for key, w in p.desired.tables.items():
        h = p.actual.tables.get(key)
        if w.partition_of != pname or h is None or key in p.recreated or pname not in kept_parents(p, h, w):
            continue  # created or attached by this plan: PostgreSQL attaches or builds its index
        child = _declared_child(w, new)
        if child is None:
            continue  # sql/ leaves this partition's index unattached too
        mine = h.indexes.get(child.name)
        if mine is not None and mine.inherited:
            continue
        if any(i.inherited and _index_shape(i.definition) == shape for i in h.indexes.values()):
            return False
        if mine is not None and (not mine.valid or _index_shape(mine.definition) != shape):
            return False
        if mine is None and h.kind != "r":
            return False
    return True


def attach_partition_indexes(p: Diff, have: Table, want: Table) -> None:
    """The ALTER INDEX parent ATTACH PARTITION of an index of this partition that sql/ declares
    attached to a parent's index that completes_in_place; a missing one is built first,
    CONCURRENTLY, under its declared name. Catalog only, brief lock: no hazard beyond the build.
    Once every partition has its index attached, PostgreSQL marks the parent's index valid."""
    if not want.partition_of or not have.partition_of:
        return
    parent_key = oid_key("table", want.partition_of)
    ph, pw = p.actual.tables.get(parent_key), p.desired.tables.get(parent_key)
    if ph is None or pw is None or want.partition_of not in kept_parents(p, have, want):
        return
    for pi in pw.indexes.values():
        old = ph.indexes.get(pi.name)
        if old is None or not completes_in_place(p, ph, old, pi):
            continue
        child = _declared_child(want, pi)
        mine = have.indexes.get(child.name) if child is not None else None
        if child is None or (mine is not None and mine.inherited):
            continue
        if mine is None:
            create_index(p, want, child, existing=True)
        p.add(f"ALTER INDEX {q(pi.schema, pi.name)} ATTACH PARTITION {q(child.schema, child.name)}", "alter_index",
              child.id, requires=frozenset({pi.id, child.id}), provides=frozenset({pi.id + "#attached"}),
              table=want.id)


def _index_ids(t: Table, name: str) -> frozenset[str]:
    """The ids a step that names index `name` of `t` waits for: the index itself, or the
    constraint that owns it (primary keys and unique constraints bring their index)."""
    return frozenset({index_id(t.schema, name), constraint_id(t.schema, t.name, name)})


def _replica_sql(t: Table) -> str:
    if t.replica_identity == "i" and t.replica_index:
        return f"USING INDEX {q(t.replica_index)}"
    return {"f": "FULL", "n": "NOTHING"}.get(t.replica_identity, "DEFAULT")


def table_settings(p: Diff, have: Table | None, want: Table) -> None:
    """Storage parameters, replica identity, CLUSTER ON and OF type (see the module's notes)."""
    tid, tq = want.id, q(want.schema, want.name)
    columns = frozenset(column_id(want.schema, want.name, c) for c in want.columns)
    removed = p.removed() if have is not None else set()

    def step(text: str, **kw) -> None:
        p.add(f"ALTER TABLE {tq} {text}", "alter_table", tid, table=tid,
              requires=kw.pop("requires", frozenset()) | {tid}, **kw)

    if have is not None:
        gone, changed = options_change(have.options, want.options)
        if gone:
            step(f"RESET ({', '.join(q(*n.split('.')) for n in gone)})")
        if changed:
            # after the columns: a new column may bring the TOAST table that toast.* settings go to
            step(f"SET ({options_sql(changed)})", requires=columns)
        of_type(p, have, want)
    # replica identity: an index it names that goes (dropped, or dropped and built again) is
    # let go of first; USING INDEX waits for the index
    had_index = have.replica_index if have is not None and have.replica_identity == "i" else None
    index_goes = bool(had_index) and not _index_ids(want, had_index or "").isdisjoint(removed)
    have_ri = (have.replica_identity, have.replica_index) if have is not None else ("d", None)
    want_ri = (want.replica_identity, want.replica_index)
    if had_index and (index_goes or have_ri != want_ri):
        drops = _index_ids(want, had_index)
        if want.replica_identity == "i":
            step("REPLICA IDENTITY DEFAULT", drop_before=drops)
            have_ri = ("d", None)
        else:
            step(f"REPLICA IDENTITY {_replica_sql(want)}", drop_before=drops)
            have_ri = want_ri
    if have_ri != want_ri:
        req = _index_ids(want, want.replica_index) if want.replica_identity == "i" and want.replica_index else frozenset()
        step(f"REPLICA IDENTITY {_replica_sql(want)}", requires=req)
    # CLUSTER ON: dropping the index forgets it; marked again once it is built again
    had_cluster = have.cluster_index if have is not None else None
    cluster_goes = bool(had_cluster) and not _index_ids(want, had_cluster or "").isdisjoint(removed)
    if want.cluster_index and (want.cluster_index != had_cluster or cluster_goes):
        step(f"CLUSTER ON {q(want.cluster_index)}", requires=_index_ids(want, want.cluster_index))
    elif had_cluster and not want.cluster_index and not cluster_goes:
        step("SET WITHOUT CLUSTER")


def of_type(p: Diff, have: Table, want: Table) -> None:
    """OF type / NOT OF on an existing table. PostgreSQL's OF wants exactly the type's columns,
    same names, types and order, and nothing more."""
    if have.of_type == want.of_type:
        return
    tq = q(want.schema, want.name)
    if have.of_type:
        # removes typed:<table>: an ALTER TYPE of its old type waits for it (composites.typed_tables)
        p.add(f"ALTER TABLE {tq} NOT OF", "alter_table", want.id, table=want.id, provides=frozenset({want.id}),
              removes=frozenset({f"typed:{want.id}"}),
              drop_before=frozenset({have.of_type_id} if have.of_type_id else set()))
    if not want.of_type:
        return
    # the table's columns once this plan's column steps ran: the kept ones in their order, then the new
    def order(c: Column) -> int:
        return c.position
    kept = [n for n in sorted(have.columns.values(), key=order) if n.name in want.columns]
    added = [c for c in sorted(want.columns.values(), key=order) if c.name not in have.columns]
    after = [c.name for c in kept] + [c.name for c in added]
    wanted = [c.name for c in sorted(want.columns.values(), key=order)]
    if after != wanted or have.inherits or have.partition_of or have.kind != "r":
        raise PlanError(
            f"table {want.schema}.{want.name} cannot become a typed table (OF {want.of_type}) in place: "
            f"ALTER TABLE ... OF needs the table's columns to be exactly the type's, in order "
            f"({', '.join(wanted)}), but after this plan they would be ({', '.join(after)})"
            + ("; a partition or inheritance child cannot be typed" if have.inherits or have.partition_of else "")
            + ". Reorder the type's attributes to match, or drop and create the table (-- @drop table "
            f"{want.schema}.{want.name} and create it in a second change). Nothing was changed")
    p.add(f"ALTER TABLE {tq} OF {want.of_type}", "alter_table", want.id, table=want.id,
          requires=frozenset({want.id, *(column_id(want.schema, want.name, c) for c in want.columns)}
                             | ({want.of_type_id} if want.of_type_id else set())))


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
