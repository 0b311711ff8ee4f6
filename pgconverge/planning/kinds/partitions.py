"""Planning of partitioned tables, partitions and table inheritance.

A partition or an inheritance child shares columns, constraints and indexes with its
parents, and PostgreSQL recurses most ALTER TABLEs from a parent into its children. So a
child is diffed from what it will be once its parents' steps recursed into it and its own
DETACH / NO INHERIT ran (the "effective" state), and the copies its parents carry
(inherited constraints, indexes attached to a partitioned index) are left out of its diff.

In place: ATTACH/DETACH PARTITION (also to change a bound or a parent), INHERIT/NO INHERIT.
Not in place: turning a plain table into a partitioned one or back, and changing a
partition key. Those tables are dropped and created again, which carries ``deletes_data``
naming the table, so the policy refuses it unless the operator allowed and named it.
Their partitions and children are detached first and attached again afterwards, and the
foreign keys and owned sequences that point at them are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from pgconverge.catalog.model import Column, Constraint, Index, Table, column_id, constraint_id, table_id
from pgconverge.errors import PlanError
from pgconverge.planning import hazards as hz
from pgconverge.planning.context import Diff
from pgconverge.planning.ddl import split_qualified, strip_not_valid
from pgconverge.planning.hazards import Hazard
from pgconverge.planning.kinds.columns import alter_column
from pgconverge.planning.kinds import partition_indexes
from pgconverge.planning.kinds.constraints import add_constraint, drop_constraint
from pgconverge.planning.kinds.lineage import (children_keep, kept_parents, local_view, parent_id, parents, rel_id,
                                               renamed)
from pgconverge.planning.steps import OWN, Step
from pgconverge.quoting import q



# --------------------------------------------------------------------------- recreation


def recreated(p: Diff) -> dict[str, str]:
    """Tables that PostgreSQL cannot change in place, with the reason."""
    out = {}
    for key, want in p.desired.tables.items():
        have = p.actual.tables.get(key)
        if have is None:
            continue
        if have.kind != want.kind:
            out[key] = ("cannot become partitioned in place" if want.kind == "p"
                        else "cannot stop being partitioned in place")
        elif have.kind == "p" and have.partition_key != want.partition_key:
            out[key] = (f"changes its partition key from {have.partition_key} to {want.partition_key}, which "
                        "PostgreSQL cannot do in place")
    return out


def keep_across_recreation(p: Diff) -> None:
    """What outlives a recreated table: sequences its columns own and foreign keys of other
    tables that point at it (dropped before, added again after), and its partitions, whose copies
    of its foreign keys to a recreated table go after their DETACH."""
    for key in p.recreated:
        have = p.actual.tables[key]
        name = f"{have.schema}.{have.name}"
        for skey, s in p.actual.sequences.items():
            if not s.owned_by or table_id(s.schema, s.owned_by[0]) != key or skey not in p.desired.sequences:
                continue
            p.add(f"ALTER SEQUENCE {q(s.schema, s.name)} OWNED BY NONE", "owned_by", s.id, drop_before=frozenset({have.id}))
            ws = p.desired.sequences[skey]
            if ws.owned_by == s.owned_by:
                col = column_id(have.schema, have.name, ws.owned_by[1])
                p.add(f"ALTER SEQUENCE {q(s.schema, s.name)} OWNED BY {q(have.schema, have.name, ws.owned_by[1])}", "owned_by", s.id,
                      requires=frozenset({s.id, col}))
        for okey, other in p.actual.tables.items():
            wother = p.desired.tables.get(okey)
            if okey == key or wother is None or okey in p.recreated:
                continue
            for con in other.constraints.values():
                if con.kind != "f" or con.inherited or con.ref_table != have.id:
                    continue
                w = wother.constraints.get(con.name)
                if w is not None and strip_not_valid(w.definition) == strip_not_valid(con.definition):
                    # a partition's own key to its parent: dropped while it is attached, since its
                    # online ATTACH again checks its bound before the DETACH, and waits for the
                    # constraints it loses
                    link = frozenset({rel_id(other, name)}) if other.partition_of == name else frozenset()
                    drop_constraint(p, other, con, drop_before=link)
                    add_constraint(p, wother, w, existing=True)
        # DETACH leaves a partition its copy of the parent's foreign keys, as its own: one that points
        # at a table dropped here would refuse that DROP. It goes after the DETACH; the parent's key,
        # added again, brings the copy back once the partition is attached
        for okey, other in p.actual.tables.items():
            # a partition that stays one of it (one that leaves has its diff drop what it loses)
            if (other.partition_of != name or okey in p.recreated or okey not in p.desired.tables
                    or p.desired.tables[okey].partition_of != name):
                continue
            for con in other.constraints.values():
                if con.kind == "f" and con.inherited and con.ref_table in p.recreated:
                    drop_constraint(p, other, con, after=frozenset({rel_id(other, name)}),
                                    drop_before=frozenset({con.ref_table}))


# --------------------------------------------------------------------------- creation


def create_hazards(p: Diff, t: Table) -> tuple[Hazard, ...]:
    """A new partition of a parent that has a default partition moves nothing, but the
    default partition is scanned for rows that would belong to it."""
    if not t.partition_of or t.partition_bound == "DEFAULT":
        return ()
    parent = parent_id(t.partition_of)
    if parent not in p.actual.tables or parent in p.recreated:
        return ()
    for other in p.actual.tables.values():
        if other.partition_of == t.partition_of and other.partition_bound == "DEFAULT":
            return (hz.may_fail(t.id, f"new partition {t.schema}.{t.name}", f": rows of the default partition "
                                f"{other.schema}.{other.name} that belong to it make the CREATE fail"),
                    hz.blocks_reads_writes(t.id, f"the default partition {other.schema}.{other.name}", hz.SCANNED))
    return ()


def _copy_of(c: Column) -> Column:
    """A parent's column as a child receives it: defaults, NOT NULL and generation come along."""
    return replace(c, inherited=True, comment=None, identity="", identity_sequence=None)


def after_create(p: Diff, t: Table) -> None:
    """Defaults and NOT NULL a new child sets on columns it receives from its parents."""
    base: dict[str, Column] = {}
    for par in parents(t):
        pt = p.desired.tables.get(parent_id(par))
        for name, c in (pt.columns if pt else {}).items():
            base.setdefault(name, _copy_of(c))
    for name, c in t.columns.items():
        b = base.get(name)
        if not c.inherited or b is None:
            continue
        # storage, statistics, compression and options: tables.create_table sets the child's own
        b = replace(b, comment=c.comment, identity=c.identity, identity_sequence=c.identity_sequence,
                    storage=c.storage, type_storage=c.type_storage, statistics=c.statistics,
                    compression=c.compression, options=c.options)
        if not b.same_definition(c):
            first = len(p.steps)
            alter_column(p, t, b, c)
            for i in range(first, len(p.steps)):  # after the CREATE that makes the column
                p.steps[i] = replace(p.steps[i], requires=p.steps[i].requires | {t.id})


# --------------------------------------------------------------------------- existing tables


def _propagate(c: Column, ph: Column, pw: Column) -> Column:
    """A child's column after its parent's ALTER COLUMN steps recursed into it."""
    changes = {}
    if (ph.type, ph.collation) != (pw.type, pw.collation):
        changes.update(type=pw.type, collation=pw.collation)
    if (ph.default, ph.generated) != (pw.default, pw.generated):
        changes.update(default=pw.default, generated=pw.generated)
    if ph.not_null != pw.not_null:
        changes["not_null"] = pw.not_null
    return replace(c, **changes) if changes else c


def effective(p: Diff, have: Table, want: Table, kept: list[str]) -> Table:
    """The table once its parents' steps recursed into it and its own links that go are undone."""
    have_cols = dict(have.columns)
    for r in p.options.renames.of_kind("column"):
        # a parent's RENAME COLUMN recurses into its children
        old, new = r.old, r.new
        if (f"{r.schema}.{r.table}" in kept and old in have_cols and new not in have_cols
                and new in p.actual.tables[table_id(r.schema, r.table or "")].columns):
            have_cols = {(new if k == old else k): (replace(c, name=new) if k == old else c)
                         for k, c in have_cols.items()}
    cols: dict[str, Column] = {}
    for name, c in have_cols.items():
        src = [par for par in kept if name in p.actual.tables[parent_id(par)].columns]
        if not src:
            # no parent of it stays: what was inherited becomes the table's own
            cols[name] = replace(c, inherited=False) if c.inherited else c
            continue
        ph = p.actual.tables[parent_id(src[0])].columns[name]
        pw = p.desired.tables[parent_id(src[0])].columns.get(name)
        if pw is None:
            parent = p.actual.tables[parent_id(src[0])]
            if c.inherited and not children_keep(p, parent, name):
                continue  # goes with the parent's DROP COLUMN
            cols[name] = replace(c, inherited=False)
            continue
        cols[name] = _propagate(c, ph, pw)
    for par in kept:
        ph_t, pw_t = p.actual.tables[parent_id(par)], p.desired.tables[parent_id(par)]
        for name, pc in pw_t.columns.items():
            if name not in ph_t.columns and name not in cols:
                cols[name] = _copy_of(pc)  # the parent's ADD COLUMN recurses
    same_parent = bool(have.partition_of) and renamed(p, have.partition_of) == want.partition_of
    left = [renamed(p, par) for par in parents(have) if renamed(p, par) not in kept]
    cons = {}
    for name, con in have.constraints.items():
        # a copy from a parent the table leaves becomes its own (other copies, such as the
        # clones of a foreign key to a partitioned table, stay what they are)
        if con.inherited and left:
            if have.partition_of:
                goes = not (kept or same_parent)  # re-attached to the same parent: ATTACH adopts it again
            else:
                goes = (any(name in p.actual.tables[parent_id(par)].constraints for par in left
                            if parent_id(par) in p.actual.tables)
                        and not any(name in p.actual.tables[parent_id(par)].constraints for par in kept))
            if goes:
                con = replace(con, inherited=False)
        cons[name] = con
    idx = {}
    for name, i in have.indexes.items():
        if i.inherited and not (kept or same_parent):
            i = replace(i, inherited=False)  # a detached partition keeps its indexes as its own
        idx[name] = i
    return replace(have, columns=cols, constraints=cons, indexes=idx)


def relationship(p: Diff, have: Table, want: Table,
                 rebuilt: Callable[[Table, Index, Index], bool]) -> tuple[Table, Table]:
    """Detach from / attach to parents as the desired state says, and return the table's
    effective state and desired state, both without what the parents carry."""
    kept = kept_parents(p, have, want)
    for par in parents(have):
        par = renamed(p, par)
        if par not in kept:
            _detach(p, have, par)
    eff = effective(p, have, want, kept)
    joined = [par for par in parents(want) if par not in kept]
    if joined and not want.partition_of:
        refuse_inherit_of_existing(p, have, want, kept, joined)
    # ATTACH and INHERIT want the parents' CHECK constraints on the table already, under the
    # same names; those it has are adopted (they become the parent's copies), the others added
    checks = {}
    for par in joined:
        pw = p.desired.tables.get(parent_id(par))
        for con in (pw.constraints.values() if pw is not None else ()):
            if con.kind == "c" and "NO INHERIT" not in con.definition:
                checks.setdefault(con.name, con)
    cons = dict(eff.constraints)
    for name, con in checks.items():
        mine = cons.get(name)
        if mine is not None and strip_not_valid(mine.definition) == strip_not_valid(con.definition):
            cons[name] = replace(mine, inherited=True)
    missing = [con for name, con in checks.items() if name not in cons or not cons[name].inherited]
    if want.partition_of and want.partition_of in joined:
        missing += _keys_for_attach(p, want, cons)
    eff_local, want_local = local_view(replace(eff, constraints=cons)), local_view(want)
    taken: frozenset[str] = frozenset()
    for i, par in enumerate(joined):
        indexes = frozenset()
        if par == want.partition_of:
            indexes, taken = partition_indexes.before_attach(p, eff, want, par, rebuilt)
        _attach(p, eff_local, want, par, missing if i == 0 else [], indexes)
    if taken:
        # dropped before the ATTACH, or renamed to the name of the index it adopts: the table's
        # diff builds them again
        eff_local = replace(eff_local, indexes={k: v for k, v in eff_local.indexes.items() if k not in taken})
    return eff_local, want_local


def _keys_for_attach(p: Diff, want: Table, cons: dict[str, Constraint]) -> list[Constraint]:
    """The PRIMARY KEY and UNIQUE constraints sql/ declares on an existing table for those its new
    partitioned parent keeps: ATTACH adopts a matching one of the table, and otherwise builds it itself
    under ACCESS EXCLUSIVE. One the table has under its declared name is kept (marked in `cons` as the
    parent's copy, so the table's diff leaves it); the others are returned, to be added first the
    online way (unique index built CONCURRENTLY, then ADD CONSTRAINT ... USING INDEX)."""
    key = parent_id(want.partition_of or "")
    ph, pw = p.actual.tables.get(key), p.desired.tables.get(key)
    if ph is None or pw is None or key in p.recreated:
        return []
    out = []
    for pc in pw.constraints.values():
        kept = ph.constraints.get(pc.name)
        if pc.kind not in "pu" or kept is None or kept.definition != pc.definition:
            continue  # one the parent adds recurses into its partitions after the ATTACH
        child = next((c for c in want.constraints.values() if c.inherited and c.kind == pc.kind
                      and c.definition == pc.definition), None)
        if child is None:
            continue
        mine = cons.get(child.name)
        if mine is not None and mine.kind == child.kind and mine.definition == child.definition:
            cons[child.name] = replace(mine, inherited=True)
        else:
            out.append(child)
    return out


def refuse_inherit_of_existing(p: Diff, have: Table, want: Table, kept: list[str], joined: list[str]) -> None:
    """INHERIT keeps an existing table's columns and CHECK constraints its own (attislocal,
    conislocal), where a table created with INHERITS has the parent's ones inherited only; no
    ALTER turns a local column back into a purely inherited one. So sql/ that declares them in the
    parent only cannot be reached in place: refused here, before anything runs, naming what to
    declare in the child (it converges then) or to recreate the table."""
    from_kept = {n for par in kept for n in (p.desired.tables.get(parent_id(par)) or want).columns}
    cols: list[str] = []
    cons: list[str] = []
    for par in joined:
        pw = p.desired.tables.get(parent_id(par))
        if pw is None:
            continue
        for name in sorted(pw.columns, key=lambda n: pw.columns[n].position):
            c = want.columns.get(name)
            if c is not None and c.inherited and name not in from_kept and name not in cols:
                cols.append(name)
        for name, con in pw.constraints.items():
            mine = want.constraints.get(name)
            if (con.kind == "c" and "NO INHERIT" not in con.definition and mine is not None and not mine.local
                    and name not in cons):
                cons.append(name)
    if not cols and not cons:
        return
    what = []
    if cols:
        what.append(f"column(s) {', '.join(cols)}")
    if cons:
        what.append(f"constraint(s) {', '.join(cons)}")
    parents_text = ", ".join(joined)
    raise PlanError(
        f"table {want.schema}.{want.name} exists and is declared INHERITS ({parents_text}): PostgreSQL's INHERIT keeps "
        f"the table's own columns and constraints local, where a table created with INHERITS has them inherited only, "
        f"so the result could not match sql/. Declare {' and '.join(what)} in CREATE TABLE {want.schema}.{want.name} "
        f"as well (they stay local, and the plan converges), or recreate the table (drop it in one run, with "
        f"'-- @drop table {want.schema}.{want.name}', and create it in the next)")


def _detach(p: Diff, child: Table, parent: str) -> None:
    cq, pq = q(child.schema, child.name), q(*split_qualified(parent))
    if child.partition_of:
        sql = f"ALTER TABLE {pq} DETACH PARTITION {cq}"
        hazards: tuple[Hazard, ...] = (hz.blocks_reads_writes(
            child.id, f"DETACH PARTITION {child.schema}.{child.name}",
            f" takes ACCESS EXCLUSIVE on {parent}; its rows leave {parent}"),)
    else:
        sql = f"ALTER TABLE {cq} NO INHERIT {pq}"
        hazards = ()
    p.detached.setdefault(parent_id(parent), set()).add(rel_id(child, parent))
    p.detached.setdefault(child.id, set()).add(rel_id(child, parent))
    p.add(sql, "detach", child.id, hazards=hazards, removes=frozenset({rel_id(child, parent)}),
          drop_before=frozenset({parent_id(parent)}), table=child.id)


def _attach(p: Diff, eff: Table, want: Table, parent: str, checks: list, indexes: frozenset[str]) -> None:
    pw = p.desired.tables.get(parent_id(parent))
    cq, pq = q(want.schema, want.name), q(*split_qualified(parent))
    requires = {parent_id(parent)} | {column_id(want.schema, want.name, c) for c in want.columns} | indexes
    if pw is not None:
        requires |= {column_id(pw.schema, pw.name, c) for c in pw.columns}
    # the columns, constraints and indexes the table loses must be gone first: ATTACH wants
    # exactly the parent's columns, and would adopt an index that is about to be dropped
    after = {column_id(eff.schema, eff.name, c) for c in eff.columns if c not in want.columns}
    after |= {constraint_id(eff.schema, eff.name, c) for c in eff.constraints}
    after |= {i.id for i in eff.indexes.values()}
    for con in checks:
        add_constraint(p, want, con, existing=True)
        cid = constraint_id(want.schema, want.name, con.name)
        requires |= {cid, cid + "#valid"}
    if want.partition_of:
        # a partition that moves (new bound or parent) is checked against its new bound while it
        # is still attached: its DETACH and ATTACH then follow each other in one transaction
        leaves = frozenset(rel_id(eff, renamed(p, par)) for par in parents(eff))
        # the CHECK needs the table's columns only (the partition key's), not the parent's steps
        check_requires = frozenset({want.id} | {column_id(want.schema, want.name, c) for c in want.columns
                                                if not leaves or c in eff.columns})
        attach_partition(p, want, parent, frozenset(requires), frozenset(after), leaves, check_requires)
        return
    p.add(f"ALTER TABLE {cq} INHERIT {pq}", "attach", want.id, provides=frozenset({rel_id(want, parent)}),
          requires=frozenset(requires), after=frozenset(after), table=want.id)


ATTACH_CHECK = "pgconverge_partition_bound"


def attach_partition(p: Diff, want: Table, parent: str, requires: frozenset[str], after: frozenset[str],
                     leaves: frozenset[str] = frozenset(), check_requires: frozenset[str] = frozenset()) -> None:
    """ATTACH PARTITION of an existing table, online: a CHECK of the partition constraint (as the
    shadow's declared partition prints it, pg_get_partition_constraintdef) is added NOT VALID
    (brief lock) and validated (SHARE UPDATE EXCLUSIVE: reads and writes go on), so ATTACH finds
    the bound implied and skips its scan under ACCESS EXCLUSIVE; the CHECK is dropped afterwards.
    A hash partition's constraint names the shadow's parent by OID, so there the CHECK cannot be
    written: ATTACH scans. A default partition of the parent is scanned by ATTACH either way (for
    rows that belong to the new partition)."""
    cq, pq = q(want.schema, want.name), q(*split_qualified(parent))
    where = f"{want.schema}.{want.name}"
    bound = want.partition_bound or ""
    fails = hz.may_fail(want.id, "ATTACH PARTITION", f" fails if a row of {where} is outside {bound}")
    hazards: list[Hazard] = []
    check = want.partition_constraint
    online = bool(check) and "satisfies_hash_partition(" not in (check or "")
    if online:
        cid = constraint_id(want.schema, want.name, ATTACH_CHECK)
        # `after` holds the table's constraints that go: a leftover CHECK of an interrupted run among them
        p.add(f"ALTER TABLE {cq} ADD CONSTRAINT {q(ATTACH_CHECK)} CHECK ({check}) NOT VALID", "add_constraint", cid,
              provides=frozenset({cid}), requires=check_requires, after=after, table=want.id,
              drop_before=leaves)
        p.add(f"ALTER TABLE {cq} VALIDATE CONSTRAINT {q(ATTACH_CHECK)}", "validate", cid, mode=OWN,
              hazards=(fails,), requires=frozenset({cid}), provides=frozenset({cid + "#valid"}), table=want.id,
              drop_before=leaves)
        requires |= {cid + "#valid"}
    elif check:
        hazards += [fails, hz.blocks_reads_writes(want.id, where, f"{hz.SCANNED} to check its rows fit the bound "
                                                  "(a hash bound has no CHECK to prove it first)")]
    for other in p.actual.tables.values():
        if (other.partition_of and renamed(p, other.partition_of) == parent and other.partition_bound == "DEFAULT"
                and other.id != want.id and other.id in p.desired.tables and other.id not in p.recreated):
            hazards += [hz.may_fail(want.id, f"ATTACH PARTITION {where}", f": rows of the default partition "
                                    f"{other.schema}.{other.name} that belong to it make it fail"),
                        hz.blocks_reads_writes(want.id, f"the default partition {other.schema}.{other.name}",
                                               hz.SCANNED)]
    if bound == "DEFAULT":
        # after the siblings this plan creates or attaches: the CHECK excludes their bounds, and a
        # sibling attached or created later would have the default partition scanned for its rows
        for sib in p.desired.tables.values():
            if sib.partition_of == want.partition_of and sib.id != want.id:
                requires |= {sib.id, rel_id(sib, parent)}
    p.add(f"ALTER TABLE {pq} ATTACH PARTITION {cq} {bound}", "attach", want.id, hazards=tuple(hazards),
          provides=frozenset({rel_id(want, parent)}), requires=requires, after=after, table=want.id)
    if online:
        p.add(f"ALTER TABLE {cq} DROP CONSTRAINT {q(ATTACH_CHECK)}", "alter_table", cid,
              requires=frozenset({rel_id(want, parent)}), table=want.id)  # removes nothing: its add provides cid


# --------------------------------------------------------------------------- ordering


def _column_of(cat, step: Step) -> Column | None:
    """The column of a catalog that a column step works on."""
    if not step.table or not step.object.startswith("column:"):
        return None
    tname = step.table.split(":", 1)[1]
    obj = step.object.split(":", 1)[1]
    if not obj.startswith(tname + "."):
        return None
    t = cat.tables.get(parent_id(tname))
    return t.columns.get(obj[len(tname) + 1:]) if t else None


def diff(p: Diff) -> None:
    """Ordering facts that only the whole plan shows:

    - a column that changes or goes stops using its old type or collation first, and a
      dropped table goes before the types it used and the parents it inherits from;
    - a dropped foreign key goes before the table it references;
    - a parent's own steps wait for the children that leave it (so a column it gains is not
      given to a table that is being detached), and a child drops a column it inherited
      only once that column is its own;
    - an index built on a partitioned table waits for the partitions' old indexes to go,
      so that it does not adopt one of them.
    """
    detached = p.detached
    dropped_indexes: dict[str, set[str]] = {}
    for s in p.steps:
        if s.kind == "drop_index" and s.table:
            t = p.actual.tables.get(s.table)
            if t is not None and t.partition_of:
                dropped_indexes.setdefault(parent_id(renamed(p, t.partition_of)), set()).update(s.removes)
    out = []
    for s in p.steps:
        drop_before, after = set(s.drop_before), set(s.after)
        if s.kind in ("alter_column", "drop_column"):
            c = _column_of(p.actual, s)
            if c is not None:
                # what the column stops using may only go after this step
                still = _column_of(p.desired, s) if s.kind == "alter_column" else None
                drop_before |= set(c.depends_on) - set(still.depends_on if still else ())
        if s.kind == "drop_table":
            t = p.actual.tables.get(s.object)
            if t is not None:
                for c in t.columns.values():
                    drop_before |= set(c.depends_on)
                drop_before |= {parent_id(par) for par in parents(t)}
        if s.kind == "drop_fk" and s.table:
            t = p.actual.tables.get(s.table)
            name = s.object.rsplit(".", 1)[-1]
            con = t.constraints.get(name) if t else None
            if con is not None and con.ref_table and con.ref_table != s.table:
                drop_before.add(con.ref_table)
        if s.table in detached and s.kind not in ("detach", "drop_table") and not (s.drop_before & detached[s.table]):
            after |= detached[s.table]
        if s.kind == "drop_column" and s.table:
            t = p.actual.tables.get(s.table)
            col = s.object.split(":", 1)[1][len(s.table.split(":", 1)[1]) + 1:]
            for par in parents(t) if t is not None else ():
                pt = p.actual.tables.get(parent_id(renamed(p, par)))
                if pt is not None and col in pt.columns:
                    after.add(column_id(pt.schema, pt.name, col))
        if s.kind == "create_index" and s.table in dropped_indexes:
            after |= dropped_indexes[s.table]
        if drop_before != set(s.drop_before) or after != set(s.after):
            s = replace(s, drop_before=frozenset(drop_before), after=frozenset(after))
        out.append(s)
    p.steps[:] = out
