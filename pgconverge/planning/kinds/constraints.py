"""Table constraints: ADD (NOT VALID, then VALIDATE on its own; keys through an index built
CONCURRENTLY and attached with USING INDEX), VALIDATE and DROP CONSTRAINT."""

from __future__ import annotations

from pgconverge.catalog.model import Constraint, Table, column_id, constraint_id, index_id
from pgconverge.planning import hazards as hz
from pgconverge.planning.context import Diff
from pgconverge.planning.ddl import CON_WORD, DEFERRAL, SIMPLE_KEY, concurrently, strip_not_valid, with_index_name
from pgconverge.planning.hazards import Hazard
from pgconverge.planning.steps import NONE, OWN
from pgconverge.quoting import q


def add_constraint(p: Diff, t: Table, con: Constraint, existing: bool) -> None:
    cid = constraint_id(t.schema, t.name, con.name)
    requires = {t.id} | {column_id(t.schema, t.name, c) for c in con.columns}
    if con.ref_table:
        requires.add(con.ref_table)
        ref = p.desired.tables.get(con.ref_table)
        if ref is not None:
            requires |= {constraint_id(ref.schema, ref.name, c.name) for c in ref.constraints.values()
                         if c.kind in "pu"}
            requires |= {i.id for i in ref.indexes.values() if i.unique}
            if ref.kind == "p":  # a partitioned index built ON ONLY is valid, and can back a FK, once every
                # partition's index is attached to it
                requires |= {i.id + "#attached" for i in ref.indexes.values() if i.unique}
                requires |= {index_id(ref.schema, c.name) + "#attached" for c in ref.constraints.values()
                             if c.kind in "pu"}
    if existing and con.kind in "pu" and t.kind != "p" and unique_index_sql(t, con) is not None:
        add_constraint_using_index(p, t, con, frozenset(requires))
        return
    kind = "add_fk" if con.kind == "f" else "add_constraint"
    definition = strip_not_valid(con.definition)
    hazards: list[Hazard] = []
    # on an existing table a FK or CHECK goes in NOT VALID, and is validated in a step of its own;
    # PostgreSQL has no NOT VALID foreign key on a partitioned table: there it is checked as it is added
    partitioned_fk = con.kind == "f" and t.kind == "p"
    online = existing and con.kind in "fc" and con.validated and not partitioned_fk
    # one declared NOT VALID in sql/ is added without a scan and never validated: existing rows
    # are not checked, so the add cannot fail on them
    if existing and con.validated:
        word = CON_WORD[con.kind]
        hazards.append(hz.may_fail(cid, f"new {word} {con.name} on {t.schema}.{t.name}"))
        if partitioned_fk:
            hazards.append(hz.blocks_writes(cid, f"{t.schema}.{t.name} and {con.ref_table.split(':', 1)[1]}",
                                            f": writes wait while every partition is scanned to check {con.name} "
                                            "(SHARE ROW EXCLUSIVE; partitioned tables have no NOT VALID foreign key)"))
        if con.kind in "pux":
            # exclusion constraints (and keys of partitioned tables) have no online form
            hazards.append(hz.index_build(cid, f"{word} {con.name} builds its index on {t.schema}.{t.name}", how=""))
            hazards.append(hz.blocks_reads_writes(cid, f"{t.schema}.{t.name}", ": reads and writes wait while the "
                                                      f"index of {con.name} is built (ACCESS EXCLUSIVE)"))
    if online or not con.validated:
        definition += " NOT VALID"
    p.add(f"ALTER TABLE {q(t.schema, t.name)} ADD CONSTRAINT {q(con.name)} {definition}", kind, cid,
          hazards=tuple(hazards), provides=frozenset({cid}), requires=frozenset(requires), table=t.id)
    if online:
        validate_constraint(p, t, con)


def unique_index_sql(t: Table, con: Constraint) -> str | None:
    """CREATE UNIQUE INDEX CONCURRENTLY for the index a PRIMARY KEY or UNIQUE constraint needs,
    named like the constraint (ADD CONSTRAINT ... USING INDEX keeps that name)."""
    if con.index_definition:
        definition = with_index_name(con.index_definition, con.index or con.name, con.name)
        return concurrently(definition)
    m = SIMPLE_KEY.match(con.definition)
    if m is None:
        return None
    return f"CREATE UNIQUE INDEX CONCURRENTLY {q(con.name)} ON {q(t.schema, t.name)} USING btree ({m.group(2)})"


def add_constraint_using_index(p: Diff, t: Table, con: Constraint, requires: frozenset[str]) -> None:
    """UNIQUE or PRIMARY KEY on an existing table: build the index CONCURRENTLY (reads and
    writes go on), then attach it with a brief lock. A primary key's columns are made NOT
    NULL first (online, by alter_column), so attaching it scans nothing. A valid index of
    the same definition left by an earlier run is adopted instead of rebuilt."""
    cid = constraint_id(t.schema, t.name, con.name)
    iid = index_id(t.schema, con.name)
    word = CON_WORD[con.kind]
    where = f"{t.schema}.{t.name}"
    create = unique_index_sql(t, con)
    if con.name not in p.adopted_indexes.get(t.id, ()):
        p.add(create, "create_index", iid, mode=NONE, provides=frozenset({iid}), requires=requires,
              table=t.id, hazards=(
                  hz.index_build(iid, f"the unique index of {word} {con.name} is built on {where}"),
                  hz.may_fail(cid, f"new {word} {con.name} on {where}",
                                    hz.DUPLICATES + (" or NULLs" if con.kind == "p" else ""))))
    attach = "PRIMARY KEY" if con.kind == "p" else "UNIQUE"
    deferral = DEFERRAL.search(con.definition).group(0)
    p.add(f"ALTER TABLE {q(t.schema, t.name)} ADD CONSTRAINT {q(con.name)} {attach} USING INDEX "
          f"{q(con.name)}{deferral}", "add_constraint", cid, provides=frozenset({cid}),
          requires=requires | {iid}, table=t.id)


def validate_constraint(p: Diff, t: Table, con: Constraint) -> None:
    cid = constraint_id(t.schema, t.name, con.name)
    # VALIDATE scans the table under SHARE UPDATE EXCLUSIVE; it gets a transaction of its own
    p.add(f"ALTER TABLE {q(t.schema, t.name)} VALIDATE CONSTRAINT {q(con.name)}",
          "validate_fk" if con.kind == "f" else "validate", cid, mode=OWN,
          requires=frozenset({cid}), provides=frozenset({cid + "#valid"}), table=t.id)


def unvalidate_constraint(p: Diff, t: Table, con: Constraint) -> None:
    """A valid CHECK or FK that sql/ declares NOT VALID: dropped and added again NOT VALID in one
    ALTER TABLE (one statement, so no moment without it; NOT VALID, so no scan). PostgreSQL has no
    other way to mark a constraint not valid."""
    cid = constraint_id(t.schema, t.name, con.name)
    requires = {t.id} | ({con.ref_table} if con.ref_table else set())
    p.add(f"ALTER TABLE {q(t.schema, t.name)} DROP CONSTRAINT {q(con.name)}, ADD CONSTRAINT {q(con.name)} "
          f"{strip_not_valid(con.definition)} NOT VALID", "add_fk" if con.kind == "f" else "add_constraint", cid,
          provides=frozenset({cid}), requires=frozenset(requires), table=t.id)


def drop_constraint(p: Diff, t: Table, con: Constraint, after: frozenset[str] = frozenset(),
                    drop_before: frozenset[str] = frozenset()) -> None:
    """ALTER TABLE ... DROP CONSTRAINT; `after` and `drop_before` order it against links and tables
    that other steps remove (see steps.Step)."""
    cid = constraint_id(t.schema, t.name, con.name)
    kind = "drop_fk" if con.kind == "f" else "drop_constraint"
    hazards = (hz.index_dropped(cid, f"{CON_WORD[con.kind]} {con.name} on {t.schema}.{t.name} is dropped "
                                "with its index", how=""),) if con.kind in "pux" else ()
    p.add(f"ALTER TABLE {q(t.schema, t.name)} DROP CONSTRAINT {q(con.name)}", kind, cid,
          removes=frozenset({cid}), table=t.id, hazards=hazards, after=after, drop_before=drop_before)
