"""Columns: ADD, DROP and ALTER COLUMN (type, default, NOT NULL, identity, generation), the
column text of CREATE TABLE, and what each change costs (its hazards)."""

from __future__ import annotations

import re
from dataclasses import replace

from pgconverge.catalog.model import Column, Table, column_id, constraint_id
from pgconverge.planning import hazards as hz
from pgconverge.planning.context import Diff
from pgconverge.planning.ddl import not_null_check_name
from pgconverge.planning.hazards import Hazard
from pgconverge.planning.kinds.enums import is_enum
from pgconverge.planning.kinds.lineage import children_keep
from pgconverge.planning.kinds.sequences import sequence_options
from pgconverge.planning.steps import OWN
from pgconverge.quoting import q

def column_sql(schema: str, c: Column) -> str:
    parts = [q(c.name), c.type]
    if c.collation:
        parts.append(f"COLLATE {c.collation}")
    if c.generated == "s":
        parts.append(f"GENERATED ALWAYS AS ({c.default}) STORED")
    elif c.default is not None:
        parts.append(f"DEFAULT {c.default}")
    if c.not_null:
        parts.append("NOT NULL")
    if c.identity:
        parts.append(f"GENERATED {'ALWAYS' if c.identity == 'a' else 'BY DEFAULT'} AS IDENTITY"
                     + identity_options(c))
    return " ".join(parts)


def identity_options(c: Column) -> str:
    s = c.identity_sequence
    if s is None:
        return ""
    # an identity sequence takes the column's type: AS is refused there
    opts = [f"SEQUENCE NAME {q(s.schema, s.name)}"] + [o for o in sequence_options(s) if not o.startswith("AS ")]
    return f" ({' '.join(opts)})"


def add_column(p: Diff, t: Table, c: Column) -> None:
    cid = column_id(t.schema, t.name, c.name)
    hazards = []
    if c.generated or c.volatile_default or c.identity:
        hazards.append(hz.rewrites_table(cid, f"adding column {t.name}.{c.name} with a computed value "
                                         f"rewrites {t.schema}.{t.name}", how=""))
        hazards.append(hz.blocks_reads_writes(cid, f"{t.schema}.{t.name}",
                                              f"{hz.WAIT_REWRITE} that fills {c.name} (ACCESS EXCLUSIVE)"))
    if c.not_null and c.default is None and not c.identity:
        hazards.append(hz.may_fail(cid, f"NOT NULL column {t.name}.{c.name} without a default",
                                   " fails if the table has rows"))
    p.add(f"ALTER TABLE {q(t.schema, t.name)} ADD COLUMN {column_sql(t.schema, c)}", "add_column", cid,
          hazards=tuple(hazards), provides=frozenset({cid}), requires=frozenset(c.depends_on) | {t.id},
          table=t.id)


def drop_column(p: Diff, t: Table, c: Column) -> None:
    cid = column_id(t.schema, t.name, c.name)
    # ONLY: the children that declare the column themselves keep it (and its values)
    only = "ONLY " if children_keep(p, t, c.name) else ""
    p.add(f"ALTER TABLE {only}{q(t.schema, t.name)} DROP COLUMN {q(c.name)}", "drop_column", cid,
          hazards=(hz.deletes_data(cid, f"column {t.schema}.{t.name}.{c.name}", " is dropped with its values"),), removes=frozenset({cid}), drop_before=frozenset(c.depends_on), table=t.id)


def alter_column(p: Diff, t: Table, old: Column, new: Column) -> None:
    cid = column_id(t.schema, t.name, new.name)
    tq = q(t.schema, t.name)
    cq = q(new.name)
    prefix = f"ALTER TABLE {tq} ALTER COLUMN {cq}"

    def step(text: str, hazards: tuple[Hazard, ...] = (), **kw) -> None:
        p.add(text, "alter_column", cid, hazards=hazards, provides=frozenset({cid}),
              requires=frozenset(new.depends_on), table=t.id, **kw)

    if new.generated and (old.generated != new.generated or old.default != new.default):
        # PostgreSQL 15 cannot change a generation expression in place: drop and add
        if old.generated:
            p.add(f"ALTER TABLE {tq} DROP COLUMN {cq}", "drop_column", cid, removes=frozenset({cid}),
                  table=t.id, hazards=(hz.rewrites_table(cid, f"generated column {t.name}.{new.name} is dropped and recomputed "
                                          "with its new expression", how=""),))
        else:
            drop_column(p, t, old)
        add_column(p, t, new)
        return
    if old.generated and not new.generated:
        # keeps the computed values as plain data
        step(f"{prefix} DROP EXPRESSION")
        old = replace(old, generated="", default=None)
    if old.identity and not new.identity:
        step(f"{prefix} DROP IDENTITY")
    retyped = old.type != new.type or old.collation != new.collation
    default_changes = old.default != new.default or retyped
    # a default may not cast to the new type: drop it around the type change
    if old.default is not None and default_changes and (new.default is None or retyped):
        step(f"{prefix} DROP DEFAULT")
    if retyped:
        collate = f" COLLATE {new.collation}" if new.collation else ""
        # enums have no cast between each other: go through text
        via_text = "::text" if is_enum(p, old.type) or is_enum(p, new.type) else ""
        using = f" USING {cq}{via_text}::{new.type}" if old.type != new.type else ""
        step(f"{prefix} TYPE {new.type}{collate}{using}", type_change_hazards(t, old, new))
    if new.default is not None and default_changes:
        step(f"{prefix} SET DEFAULT {new.default}")
    if new.not_null and not old.not_null:
        rewritten = retyped and any(h.name == hz.REWRITES_TABLE for h in type_change_hazards(t, old, new))
        set_not_null(p, t, new, rewritten)
    elif old.not_null and not new.not_null:
        step(f"{prefix} DROP NOT NULL")
    if new.identity and not old.identity:
        # an identity needs the column NOT NULL first (set online above, when it was not)
        p.add(f"{prefix} ADD GENERATED {'ALWAYS' if new.identity == 'a' else 'BY DEFAULT'} AS IDENTITY"
              + identity_options(new), "alter_column", cid, provides=frozenset({cid}),
              requires=frozenset(new.depends_on) | {cid + "#not_null"}, table=t.id)
    elif new.identity and old.identity:
        if new.identity != old.identity:
            step(f"{prefix} SET GENERATED {'ALWAYS' if new.identity == 'a' else 'BY DEFAULT'}")
        if new.identity_sequence and old.identity_sequence:
            opts = sequence_options(new.identity_sequence, old.identity_sequence)
            opts = [o for o in opts if not o.startswith("AS ")]
            if opts:
                step(f"{prefix} " + " ".join(f"SET {o}" for o in opts))


def set_not_null(p: Diff, t: Table, c: Column, rewritten: bool) -> None:
    """SET NOT NULL on an existing column. Online form (PostgreSQL 12+): a CHECK (col IS
    NOT NULL) added NOT VALID (brief lock), VALIDATEd in its own transaction (a scan under
    SHARE UPDATE EXCLUSIVE: reads and writes go on), then SET NOT NULL, which trusts the
    validated check and skips its scan, then the check is dropped. A check left by an
    earlier run that failed half-way is reused."""
    cid = column_id(t.schema, t.name, c.name)
    tq = q(t.schema, t.name)
    where = f"{t.schema}.{t.name}.{c.name}"
    fails = hz.may_fail(cid, f"SET NOT NULL on {where}", " fails if a row holds NULL")
    plain = f"ALTER TABLE {tq} ALTER COLUMN {q(c.name)} SET NOT NULL"
    if rewritten:
        # the type change in this run rewrites the table under ACCESS EXCLUSIVE already
        p.add(plain, "alter_column", cid, hazards=(fails,), provides=frozenset({cid, cid + "#not_null"}),
              requires=frozenset(c.depends_on), table=t.id)
        return
    if t.kind == "p" or 0 < p.actual.server_version < 120000:
        # no NOT VALID check on a partitioned table; before 12, SET NOT NULL always scans
        p.add(plain, "alter_column", cid, provides=frozenset({cid, cid + "#not_null"}),
              requires=frozenset(c.depends_on), table=t.id, hazards=(fails, hz.blocks_reads_writes(cid, f"SET NOT NULL on {where} scans {t.schema}.{t.name}",
                                                          " under ACCESS EXCLUSIVE")))
        return
    name = not_null_check_name(c.name)
    helper = constraint_id(t.schema, t.name, name)
    have = p.actual.tables.get(t.id)
    left = have.constraints.get(name) if have is not None else None
    hazards: tuple[Hazard, ...] = (fails,)
    if left is None:
        p.add(f"ALTER TABLE {tq} ADD CONSTRAINT {q(name)} CHECK ({q(c.name)} IS NOT NULL) NOT VALID",
              "add_constraint", helper, hazards=hazards, provides=frozenset({helper + "#check"}),
              requires=frozenset({t.id}), table=t.id)
        hazards = ()
    if left is None or not left.validated:
        p.add(f"ALTER TABLE {tq} VALIDATE CONSTRAINT {q(name)}", "validate", helper, mode=OWN,
              hazards=hazards, requires=frozenset({helper + "#check"}), provides=frozenset({helper + "#valid"}),
              table=t.id)
        hazards = ()
    p.add(plain, "alter_column", cid, hazards=hazards, provides=frozenset({cid, cid + "#not_null"}),
          requires=frozenset(c.depends_on) | {helper + "#valid"}, table=t.id)
    # transient ids ("#check"...): the graph must not see the helper as dropped and made again
    p.add(f"ALTER TABLE {tq} DROP CONSTRAINT {q(name)}", "drop_constraint", helper,
          requires=frozenset({cid + "#not_null"}), table=t.id)


# Type changes PostgreSQL makes without rewriting the table (binary coercible or
# a relaxed typmod).
_VARCHAR = re.compile(r"^character varying(?:\((\d+)\))?$")
_NUMERIC = re.compile(r"^numeric(?:\((\d+),(\d+)\))?$")


def type_change_hazards(t: Table, old: Column, new: Column) -> tuple[Hazard, ...]:
    """What ALTER COLUMN ... TYPE costs: nothing for a catalog-only change, a scan for a
    narrowing varchar, a rewrite otherwise; and what it may lose or fail on."""
    cid = column_id(t.schema, t.name, new.name)
    where = f"{t.schema}.{t.name}.{new.name}"
    ov, nv = _VARCHAR.match(old.type), _VARCHAR.match(new.type)
    if ov and (nv or new.type == "text"):
        old_len = int(ov.group(1)) if ov.group(1) else None
        new_len = int(nv.group(1)) if nv and nv.group(1) else None
        if new_len is None or (old_len is not None and new_len >= old_len):
            return ()  # widening a varchar is a catalog-only change
        return (hz.deletes_data(cid, where, f" narrows from {old.type} to {new.type}: longer values fail or are lost"),
                hz.blocks_reads_writes(cid, where, hz.WHOLE_SCAN))
    if old.type == "text" and nv:
        return (hz.deletes_data(cid, where, f" narrows from text to {new.type}"),
                hz.blocks_reads_writes(cid, where, hz.WHOLE_SCAN))
    if old.collation != new.collation and old.type == new.type:
        return (hz.blocks_reads_writes(cid, where, ": collation change rebuilds its indexes under ACCESS EXCLUSIVE"),)
    narrowing = {("bigint", "integer"), ("bigint", "smallint"), ("integer", "smallint"),
                 ("double precision", "real"), ("timestamp with time zone", "date"),
                 ("timestamp without time zone", "date")}
    hazards = [hz.rewrites_table(cid, f"{where} changes type from {old.type} to {new.type}"),
               hz.blocks_reads_writes(cid, where)]
    if (old.type, new.type) in narrowing or _NUMERIC.match(new.type) and new.type != old.type:
        hazards.append(hz.deletes_data(cid, where, f" narrows from {old.type} to {new.type}"))
    hazards.append(hz.may_fail(cid, where, f": existing values may not convert to {new.type}"))
    return tuple(hazards)
