"""Indexes of partitioned tables that the plan creates, and the copies PostgreSQL makes of them.

`CREATE INDEX` on a partitioned table builds (or adopts) an index on every partition under a name
PostgreSQL chooses, and a partition created or attached while its parent has an index gets a copy of
that index attached, also under a chosen name. `sql/` (pg_dump's output among it) may name those
indexes otherwise, or leave a partition's index unattached. So a new partitioned index is created
`ON ONLY` the parent (catalog only), each partition's declared index is built under its declared
name (`CONCURRENTLY` on an existing partition) and attached with `ALTER INDEX ... ATTACH PARTITION`;
PostgreSQL marks the parent's index valid once every partition has one attached. The copy a new
partition receives from an index its parent keeps is renamed to the declared name; where that name
cannot be foreseen, or `sql/` leaves the new partition's index unattached (no ALTER takes a copy
back), the parent's index is built again the way above (tables.rebuilt). An existing table attached
under a parent whose index stays has its declared index made ready before the ATTACH
(before_attach), so that ATTACH adopts it rather than build one under a chosen name. A partition that
stays under a parent whose key was made `ON ONLY` gets its declared copy of that key added the online
way and attached (attach_keys)."""

from __future__ import annotations


from collections.abc import Callable
from dataclasses import replace

from pgconverge.catalog.model import Constraint, Index, Table, column_id, constraint_id, index_id
from pgconverge.planning.context import Diff
from pgconverge.planning.ddl import with_index_name
from pgconverge.planning.kinds.constraints import add_constraint_using_index
from pgconverge.planning.kinds.indexes import add_comment, add_drop, alter_index, create_index
from pgconverge.planning.kinds.lineage import kept_parents, parent_id, rel_id
from pgconverge.quoting import lit, q

NAMEDATALEN = 64


def index_shape(definition: str) -> tuple[bool, str]:
    """What of pg_get_indexdef text does not name the index or its table: UNIQUE and what follows
    USING (method, columns, INCLUDE, WITH, WHERE)."""
    head, _, tail = definition.partition(" USING ")
    return head.startswith("CREATE UNIQUE "), tail


def declared_child(want: Table, parent_index: Index) -> Index | None:
    """The index of partition `want` that sql/ attaches to `parent_index` (matched by shape: the
    partition's index prints the same method, columns and clauses)."""
    shape = index_shape(parent_index.definition)
    return next((i for i in want.indexes.values() if i.inherited and index_shape(i.definition) == shape), None)


def constraint_child(want: Table, parent_index: Index) -> Constraint | None:
    """The primary key or unique constraint of partition `want` whose index PostgreSQL attaches to
    `parent_index` (a plain index of the parent) when no plain index of the partition does: it
    takes the matching index it finds, a constraint's too, before it makes one."""
    shape = index_shape(parent_index.definition)
    return next((c for c in want.constraints.values() if c.kind in "pu" and not c.inherited and c.index
                 and c.index_definition and index_shape(c.index_definition) == shape), None)


def partitions_of(p: Diff, parent: Table) -> list[Table]:
    name = f"{parent.schema}.{parent.name}"
    return [w for w in p.desired.tables.values() if w.partition_of == name]


def created_here(p: Diff, w: Table) -> bool:
    """Whether partition `w` is created by this plan (CREATE TABLE ... PARTITION OF)."""
    return w.id not in p.actual.tables or w.id in p.recreated


def _on_only(definition: str) -> str:
    """pg_get_indexdef text with ONLY after its first ON (the one before the table's name)."""
    from pglast.parser import scan

    for t in scan(definition):
        if t.name == "ON":
            return f"{definition[:t.end + 1]} ONLY{definition[t.end + 1:]}"
    raise AssertionError(f"no ON in index definition {definition!r}")


# --------------------------------------------------------------------------- names PostgreSQL chooses


def _column_names(definition: str) -> list[str]:
    """ChooseIndexColumnNames: the key and INCLUDE columns' names, 'expr' for an expression, a
    number appended to a name seen before."""
    from pglast import parse_sql

    stmt = parse_sql(definition)[0].stmt
    out: list[str] = []
    for elem in list(stmt.indexParams or ()) + list(stmt.indexIncludingParams or ()):
        orig = elem.indexcolname or elem.name or "expr"
        cur, i = orig, 1
        while cur in out:
            suffix = str(i)
            cur = orig[:NAMEDATALEN - 1 - len(suffix)] + suffix
            i += 1
        out.append(cur)
    return out


def _object_name(name1: str, name2: str, label: str) -> str:
    """makeObjectName: both names shortened, the longer first, until the whole fits NAMEDATALEN."""
    avail = NAMEDATALEN - 1 - (len(label) + 1) - 1
    n1, n2 = len(name1), len(name2)
    while n1 + n2 > avail:
        if n1 > n2:
            n1 -= 1
        else:
            n2 -= 1
    return f"{name1[:n1]}_{name2[:n2]}_{label}"


def _relation_names(cat, schema: str) -> set[str]:
    """Names of pg_class entries of a schema that the catalog knows."""
    names = set()
    for t in cat.tables.values():
        if t.schema == schema:
            names.add(t.name)
            names.update(t.indexes)
            names.update(c.name for c in t.constraints.values() if c.kind in "pux")
    for group in (getattr(cat, "views", {}), getattr(cat, "sequences", {}), getattr(cat, "composites", {})):
        for o in group.values():
            if getattr(o, "schema", None) == schema:
                names.add(o.name)
                names.update(getattr(o, "indexes", {}) or {})
    return names


def clone_name(p: Diff, w: Table, parent_index: Index, declared: str) -> str | None:
    """The name PostgreSQL gives the copy of `parent_index` on new partition `w` (ChooseIndexName for
    an index that backs no constraint), or None where it cannot be foreseen: a name that is not plain
    ASCII, or a first choice that another relation of the schema holds or may hold by then."""
    addition = "_".join(_column_names(parent_index.definition))
    addition = addition[:NAMEDATALEN * 2]
    if not (w.name + addition).isascii():
        return None
    name = _object_name(w.name, addition, "idx")
    if name == declared:
        return name  # no relation holds the declared name before this partition's copy does
    if name in _relation_names(p.actual, w.schema) or name in _relation_names(p.desired, w.schema):
        return None
    return name


# --------------------------------------------------------------------------- planning


def unreachable_by_copy(p: Diff, parent: Table, new: Index) -> bool:
    """Whether a partition this plan creates would receive a copy of `new` (an index its parent keeps)
    that sql/ does not declare as it comes: unattached, or under a name that cannot be foreseen."""
    for w in partitions_of(p, parent):
        if not created_here(p, w):
            continue
        child = declared_child(w, new)
        if child is None and key_of_copy(p, w, new) is not None:
            continue
        if child is None or clone_name(p, w, new, child.name) is None:
            return True
    return False


def key_of_copy(p: Diff, w: Table, parent_index: Index) -> tuple[Constraint, str] | None:
    """The PRIMARY KEY or UNIQUE constraint that new partition `w` declares over the copy of
    `parent_index` (a plain unique index its parent keeps), and the copy's name: PostgreSQL makes
    that copy while it creates the partition, before the partition's own keys, so the key is added
    afterwards USING the copy, which takes the key's name and stays attached. None where the copy's
    name cannot be foreseen, or the key is deferrable (its index would not be the copy's)."""
    con = constraint_child(w, parent_index)
    if con is None or w.kind == "p" or "DEFERRABLE" in con.definition:
        return None
    generated = clone_name(p, w, parent_index, con.index or con.name)
    return (con, generated) if generated is not None else None


def keys_of_copies(p: Diff, w: Table, rebuilt: Callable[[Table, Index, Index], bool]) -> dict[str, str]:
    """Per constraint name of new partition `w`, the copy of a kept index of its parent that the
    constraint is added on (key_of_copy); CREATE TABLE leaves those constraints out."""
    parent = p.actual.tables.get(parent_id(w.partition_of or ""))
    want_parent = p.desired.tables.get(parent_id(w.partition_of or ""))
    if not w.partition_of or parent is None or want_parent is None or parent.id in p.recreated:
        return {}
    out: dict[str, str] = {}
    for name, new in want_parent.indexes.items():
        old = parent.indexes.get(name)
        if old is None or rebuilt(parent, old, new) or declared_child(w, new) is not None:
            continue
        found = key_of_copy(p, w, new)
        if found is not None and found[0].name not in out:
            out[found[0].name] = found[1]
    return out


def rename_copies(p: Diff, w: Table, rebuilt: Callable[[Table, Index, Index], bool]) -> None:
    """After CREATE TABLE of partition `w`: the copies of its parent's kept indexes get their declared
    names (and comments). The parent's indexes that this plan builds (`rebuilt(parent, old, new)`)
    are planned by create()."""
    parent = p.actual.tables.get(parent_id(w.partition_of or ""))
    want_parent = p.desired.tables.get(parent_id(w.partition_of or ""))
    if not w.partition_of or parent is None or want_parent is None or parent.id in p.recreated:
        return
    for con_name, copy in keys_of_copies(p, w, rebuilt).items():
        con = w.constraints[con_name]
        cid = constraint_id(w.schema, w.name, con.name)
        word = "PRIMARY KEY" if con.kind == "p" else "UNIQUE"
        p.add(f"ALTER TABLE {q(w.schema, w.name)} ADD CONSTRAINT {q(con.name)} {word} USING INDEX {q(copy)}",
              "add_constraint", cid, provides=frozenset({cid}),
              requires=frozenset({w.id} | {column_id(w.schema, w.name, c) for c in con.columns}), table=w.id)
    for name, new in want_parent.indexes.items():
        old = parent.indexes.get(name)
        if old is None or rebuilt(parent, old, new):
            continue  # built by this plan, after this partition: create() names its index
        child = declared_child(w, new)
        generated = clone_name(p, w, new, child.name) if child is not None else None
        if child is None or generated is None:
            continue  # tables.rebuilt builds the parent's index again instead
        if generated != child.name:
            p.add(f"ALTER INDEX {q(w.schema, generated)} RENAME TO {q(child.name)}", "alter_index", child.id,
                  requires=frozenset({w.id}), provides=frozenset({child.id}), table=w.id)
        if child.comment:
            p.add(f"COMMENT ON INDEX {q(w.schema, child.name)} IS {lit(child.comment)}", "comment", child.id,
                  requires=frozenset({child.id, w.id}))


def create(p: Diff, t: Table, idx: Index, existing: bool) -> bool:
    """CREATE INDEX ON ONLY partitioned table `t`, then each partition's declared index built under
    its name and attached. False (nothing planned) where a partition is partitioned itself or holds
    an index of that name attached elsewhere: the caller then creates the index as PostgreSQL
    would, and the proof judges."""
    parts = partitions_of(p, t)
    if not existing and all(created_here(p, w) and w.kind != "p" for w in parts) and all(
            (c := declared_child(w, idx)) is not None and clone_name(p, w, idx, c.name) == c.name for w in parts):
        return False  # all new, named as PostgreSQL names them: CREATE INDEX on the parent does the same
    plan: list[tuple[Table, Index, bool]] = []  # (partition, its declared index, whether to build it)
    old_parent = p.actual.tables.get(t.id)
    old_idx = old_parent.indexes.get(idx.name) if old_parent is not None else None
    by_constraint: list[tuple[Table, Constraint]] = []  # (partition, the key whose index is attached)
    for w in parts:
        child = declared_child(w, idx)
        if child is None:
            con = constraint_child(w, idx)
            if con is not None and w.kind != "p":
                by_constraint.append((w, con))
            continue
        if w.kind == "p":
            return False
        h = None if created_here(p, w) else p.actual.tables.get(w.id)
        mine = h.indexes.get(child.name) if h is not None else None
        if mine is None:
            plan.append((w, child, True))
        elif mine.inherited and t.id in p.recreated and mine.valid and mine.definition == child.definition:
            plan.append((w, child, False))  # the DETACH before the parent's DROP leaves it the partition's own
        elif mine.inherited:
            # attached to the parent's old index, which goes (with it) before this one is made
            if old_idx is None or index_shape(old_idx.definition) != index_shape(mine.definition):
                return False
            plan.append((w, child, True))
        elif mine.valid and mine.definition == child.definition:
            plan.append((w, child, False))  # kept by the partition's diff (adopted_by_parent_index)
        else:
            plan.append((w, child, True))  # the partition's diff drops it first (same id)
    # after the partitions this plan creates or attaches: a partition made afterwards would get a copy
    requires = {t.id} | {w.id for w in parts} | {rel_id(w, w.partition_of or "") for w in parts
                                                 if w.id in p.actual.tables and w.partition_of
                                                 and w.partition_of not in kept_parents(p, p.actual.tables[w.id], w)}
    p.add(_on_only(idx.definition), "create_index", idx.id, provides=frozenset({idx.id}),
          requires=frozenset(requires | {column_id(t.schema, t.name, c) for c in idx.columns}), table=t.id)
    if idx.comment:
        p.add(f"COMMENT ON INDEX {q(idx.schema, idx.name)} IS {lit(idx.comment)}", "comment", idx.id,
              requires=frozenset({idx.id}))
    for w, child, build in plan:
        if build:
            create_index(p, w, child, existing=w.id in p.actual.tables and not created_here(p, w))
        p.add(f"ALTER INDEX {q(idx.schema, idx.name)} ATTACH PARTITION {q(child.schema, child.name)}", "alter_index",
              child.id, requires=frozenset({idx.id, child.id, w.id}), provides=frozenset({idx.id + "#attached"}),
              table=w.id)
    for w, con in by_constraint:
        p.add(f"ALTER INDEX {q(idx.schema, idx.name)} ATTACH PARTITION {q(w.schema, con.index)}", "alter_index",
              index_id(w.schema, con.index), requires=frozenset({idx.id, w.id, constraint_id(w.schema, w.name, con.name)}),
              provides=frozenset({idx.id + "#attached"}), table=w.id)
    return True


def before_attach(p: Diff, eff: Table, want: Table, parent: str,
                  rebuilt: Callable[[Table, Index, Index], bool]) -> tuple[frozenset[str], frozenset[str]]:
    """Before ATTACH PARTITION of existing table `want` (`eff`: its state by then) under `parent`: the
    index sql/ declares on it for each index the parent keeps. ATTACH adopts a matching index of the
    table that is attached to nothing, and builds a missing one itself, under ACCESS EXCLUSIVE and a
    name PostgreSQL chooses. So the declared index is kept where the table has it under its name,
    renamed where the table has it under a name sql/ does not declare, and built otherwise: CONCURRENTLY,
    or on a partitioned table ON ONLY with its partitions' indexes built and attached (create()).
    ATTACH takes the first fitting index in the order of their OIDs, which the model does not hold (and
    a rehearsal restored from a dump need not share), and a new build comes last. So the other indexes
    of that shape that sql/ keeps as the table's own are dropped before the ATTACH and built again as
    new, except that where the declared index is missing, one of them is renamed to its name instead
    of building it (one build either way). Returns the ids the ATTACH waits for, and the names of the
    table's indexes dropped or renamed so (the table's diff builds them as new). A parent's
    index that this plan builds is left to create(), which builds this table's index after the ATTACH."""
    ph, pw = p.actual.tables.get(parent_id(parent)), p.desired.tables.get(parent_id(parent))
    if ph is None or pw is None or ph.id in p.recreated:
        return frozenset(), frozenset()
    adopted = p.adopted_indexes.setdefault(want.id, set())
    needs: set[str] = set()
    taken: set[str] = set()
    used: set[str] = set()  # indexes of the table already matched to one of the parent's
    for pi in pw.indexes.values():
        old = ph.indexes.get(pi.name)
        child = declared_child(want, pi)
        if old is None or rebuilt(ph, old, pi) or child is None or child.name in used:
            continue
        shape = index_shape(child.definition)

        def fits(i: Index) -> bool:
            return i.valid and index_shape(i.definition) == shape and i.name not in used

        mine = eff.indexes.get(child.name)
        spare = next((i for i in eff.indexes.values() if fits(i) and not i.inherited
                      and i.name not in want.indexes), None)
        rivals = _rivals(eff, want, child, fits)
        if rivals is None:
            rivals = []  # one of them is named by CLUSTER ON or REPLICA IDENTITY: the proof judges
        elif (mine is None or not fits(mine)) and spare is None and rivals:
            spare = rivals.pop(0)  # renamed below, and built again under its own name by the table's diff
            taken.add(spare.name)
        for r in rivals:
            # older than the declared index, perhaps: dropped before the ATTACH, and built again by the
            # table's diff; the declared index, of the same shape, serves their queries meanwhile
            add_drop(p, r, True, (), table=want.id)
            used.add(r.name)
            taken.add(r.name)
        if mine is not None and fits(mine):
            adopted.add(mine.name)
            _settle(p, mine, child, want)
        elif spare is not None:
            # the index under another name: renamed rather than built again
            adopted.add(spare.name)
            p.add(f"ALTER INDEX {q(spare.schema, spare.name)} RENAME TO {q(child.name)}", "alter_index", child.id,
                  requires=frozenset({want.id}), provides=frozenset({child.id}), removes=frozenset({spare.id}),
                  table=want.id)
            used.add(spare.name)
            _settle(p, replace(spare, name=child.name), child, want)
        elif want.kind == "p":
            if not create(p, want, child, existing=True):
                continue  # a partition of it is partitioned too: ATTACH builds the index, the proof judges
            needs.add(child.id + "#attached")
        else:
            create_index(p, want, child, existing=True)
        used.add(child.name)
        needs.add(child.id)
    return frozenset(needs), frozenset(taken)


def _rivals(eff: Table, want: Table, child: Index, fits: Callable[[Index], bool]) -> list[Index] | None:
    """The indexes of `eff` other than `child` that ATTACH could adopt in its place and that sql/ keeps
    as the table's own (it takes the first fitting one in the order of their OIDs, which the model does
    not hold, and a rehearsal restored from a dump need not share). None where CLUSTER ON or REPLICA
    IDENTITY names one of them (those follow the index, not its name), or the table is partitioned."""
    found = [i for i in eff.indexes.values() if fits(i) and not i.inherited and i.name != child.name
             and i.name in want.indexes and not want.indexes[i.name].inherited]
    if eff.kind == "p" or any(i.name == eff.cluster_index or (eff.replica_identity == "i" and i.name == eff.replica_index)
                              for i in found):
        return None
    return found


def _settle(p: Diff, have: Index, want: Index, table: Table) -> None:
    """Statistics and comment of an index kept for ATTACH (its storage parameters match: same shape)."""
    alter_index(p, have, want, table=table.id)
    if have.comment != want.comment:
        add_comment(p, want, frozenset({want.id}))


def parent_key(parent: Table, con: Constraint) -> Constraint | None:
    """The PRIMARY KEY or UNIQUE constraint of partitioned `parent` that partition key `con` can be
    attached to (its index prints the same method, columns and clauses), one of the same kind first:
    ALTER INDEX ... ATTACH PARTITION compares the indexes only."""
    shape = index_shape(con.index_definition or "")
    fits = [c for c in parent.constraints.values() if c.kind in "pu" and c.index and c.index_definition
            and index_shape(c.index_definition) == shape]
    return next((c for c in fits if c.kind == con.kind), fits[0] if fits else None)


def attach_keys(p: Diff, have_full: Table, want_full: Table, have: Table) -> Table:
    """The PRIMARY KEY and UNIQUE constraints sql/ declares on partition `want_full` as copies of its
    parent's keys, where the partition stays under that parent and has no such copy: the parent's key
    was made ON ONLY, and its index stays INVALID until every partition's is attached. ALTER INDEX ...
    ATTACH PARTITION wants a constraint on the partition (an index alone is refused), so the partition's
    key is kept where it has it as its own, added USING its unique index where it has that under the
    declared name, built the online way otherwise (add_constraint_using_index), and then attached.
    `have` is the partition's local view; returned without the keys kept here, which its diff would
    drop (sql/ declares them as the parent's copies). A partition that is partitioned itself has no
    USING INDEX: left to its diff, and the proof judges."""
    key = parent_id(want_full.partition_of or "")
    ph, pw = p.actual.tables.get(key), p.desired.tables.get(key)
    if (ph is None or pw is None or want_full.kind == "p" or not have_full.partition_of
            or want_full.partition_of not in kept_parents(p, have_full, want_full)):
        return have
    kept = dict(have.constraints)
    adopted = p.adopted_indexes.setdefault(want_full.id, set())
    for con in want_full.constraints.values():
        if not con.inherited or con.kind not in "pu" or not con.index_definition:
            continue
        old = have_full.constraints.get(con.name)
        if old is not None and old.inherited:
            continue  # attached already
        parent = parent_key(pw, con)
        before = ph.constraints.get(parent.name) if parent is not None else None
        if parent is None or before is None or before.definition != parent.definition:
            continue  # a key the parent adds recurses into its partitions
        shape = index_shape(con.index_definition)
        if any(c.inherited and c.kind in "pu" and index_shape(c.index_definition or "") == shape
               for c in have_full.constraints.values()):
            continue  # another key of the partition is attached to it: ATTACH would refuse, the proof judges
        cid = constraint_id(want_full.schema, want_full.name, con.name)
        name = con.index or con.name
        mine = kept.get(con.name)
        if mine is not None and (mine.kind, mine.definition, mine.index) == (con.kind, con.definition, name):
            del kept[con.name]
        else:
            left = have.indexes.get(name)
            if (left is not None and left.valid and left.unique and mine is None
                    and left.definition == with_index_name(con.index_definition, name, con.name)):
                adopted.add(name)  # its diff neither drops it nor builds it again
            add_constraint_using_index(p, want_full, con, frozenset(
                {want_full.id} | {column_id(want_full.schema, want_full.name, c) for c in con.columns}))
        p.add(f"ALTER INDEX {q(pw.schema, parent.index)} ATTACH PARTITION {q(want_full.schema, name)}",
              "alter_index", index_id(want_full.schema, name),
              requires=frozenset({cid, want_full.id, constraint_id(pw.schema, pw.name, parent.name)}),
              provides=frozenset({index_id(pw.schema, parent.index or parent.name) + "#attached"}),
              table=want_full.id)
    return replace(have, constraints=kept) if len(kept) != len(have.constraints) else have
