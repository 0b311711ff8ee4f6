"""Columns: ADD, DROP and ALTER COLUMN (type, default, NOT NULL, identity, generation, storage,
statistics, compression, attribute options), the column text of CREATE TABLE, and what each change
costs (its hazards).

SET STORAGE / STATISTICS / COMPRESSION / (options) touch only the catalog: no rewrite (values
already stored keep their form; new values follow the setting). STATISTICS and options take SHARE
UPDATE EXCLUSIVE, STORAGE and COMPRESSION a brief ACCESS EXCLUSIVE; like every transactional
step they wait at most lock_timeout for it. They are written with ONLY: each table, partitions and
inheritance children too, is diffed on its own values, as pg_dump writes them."""

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
from pgconverge.errors import PlanError
from pgconverge.planning.steps import OWN
from pgconverge.quoting import lit, q

STORAGE_WORDS = {"p": "PLAIN", "e": "EXTERNAL", "m": "MAIN", "x": "EXTENDED"}
COMPRESSION_WORDS = {"p": "pglz", "l": "lz4"}

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


def typed_column_sql(c: Column) -> str | None:
    """The column of a typed table (CREATE TABLE ... OF type): its type comes from the type, only
    what the table adds is written (WITH OPTIONS ...); None when it adds nothing."""
    parts = []
    if c.default is not None and not c.generated:
        parts.append(f"DEFAULT {c.default}")
    if c.not_null:
        parts.append("NOT NULL")
    return f"{q(c.name)} WITH OPTIONS {' '.join(parts)}" if parts else None


def options_sql(options: tuple[str, ...]) -> str:
    """name=value pairs as reloptions / attoptions store them, for SET (...): names quoted part by
    part (toast.autovacuum_enabled), values as literals."""
    out = []
    for o in options:
        name, _, value = o.partition("=")
        out.append(f"{q(*name.split('.'))}={lit(value)}")
    return ", ".join(out)


def option_names(options: tuple[str, ...]) -> dict[str, str]:
    return {o.partition("=")[0]: o for o in options}


def options_change(have: tuple[str, ...], want: tuple[str, ...]) -> tuple[list[str], tuple[str, ...]]:
    """(names to RESET, options to SET, in order) that turn the option list `have` into `want`,
    order included: pg_dump prints the list as stored. SET keeps the options it does not name in
    their place and appends the ones it names, so the longest head of `want` that is already in
    place stays and the rest is set again."""
    if have == want:
        return [], ()
    names = [o.partition("=")[0] for o in want]
    gone = [n for n in option_names(have) if n not in names]
    for k in range(len(want), -1, -1):
        later = set(names[k:])
        stays = [o for o in have if o.partition("=")[0] in names and o.partition("=")[0] not in later]
        if stays == list(want[:k]):
            return gone, tuple(want[k:])
    return gone, want  # not reached: k = 0 always fits


def attribute_settings(p: Diff, t: Table, old: Column | None, new: Column, retyped: bool = False,
                       requires: frozenset[str] = frozenset()) -> None:
    """SET STORAGE / STATISTICS / COMPRESSION / (options) where `new` differs from `old` (None: a
    column just made, with PostgreSQL's defaults). A type change resets the storage to the new
    type's default, so it is set again after one."""
    cid = column_id(t.schema, t.name, new.name)
    prefix = f"ALTER TABLE ONLY {q(t.schema, t.name)} ALTER COLUMN {q(new.name)}"
    texts = []
    had_storage = None if old is None or retyped else old.storage
    if new.storage != had_storage:
        letter = new.storage or (old.type_storage if old is not None else None)
        if letter in STORAGE_WORDS:
            texts.append(f"{prefix} SET STORAGE {STORAGE_WORDS[letter]}")
    if new.statistics != (old.statistics if old else None):
        texts.append(f"{prefix} SET STATISTICS {new.statistics if new.statistics is not None else -1}")
    if new.compression != (old.compression if old else None):
        word = COMPRESSION_WORDS.get(new.compression or "", "DEFAULT")
        texts.append(f"{prefix} SET COMPRESSION {word}")
    gone, changed = options_change(old.options if old else (), new.options)
    if gone:
        texts.append(f"{prefix} RESET ({', '.join(q(*n.split('.')) for n in gone)})")
    if changed:
        texts.append(f"{prefix} SET ({options_sql(changed)})")
    for text in texts:
        p.add(text, "alter_column", cid, provides=frozenset({cid}), requires=frozenset({t.id}) | requires,
              table=t.id)


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
    tq = q(t.schema, t.name)
    scratch: tuple[str, ...] = ()
    if c.default is not None and not c.generated:
        # ADD COLUMN evaluates a default once (PostgreSQL keeps it for the rows already there): in
        # the rehearsal it is set afterwards, which runs nothing
        bare = replace(c, default=None, not_null=False)
        scratch = (f"ALTER TABLE {tq} ADD COLUMN {column_sql(t.schema, bare)}",
                   f"ALTER TABLE {tq} ALTER COLUMN {q(c.name)} SET DEFAULT {c.default}",
                   *([f"ALTER TABLE {tq} ALTER COLUMN {q(c.name)} SET NOT NULL"] if c.not_null else []))
    p.add(f"ALTER TABLE {tq} ADD COLUMN {column_sql(t.schema, c)}", "add_column", cid,
          hazards=tuple(hazards), provides=frozenset({cid, cid + "#added"}), requires=frozenset(c.depends_on) | {t.id},
          table=t.id, scratch=scratch)
    attribute_settings(p, t, None, c, requires=frozenset({cid + "#added"}))


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

    def step(text: str, hazards: tuple[Hazard, ...] = (), after: frozenset[str] = frozenset(), **kw) -> None:
        p.add(text, "alter_column", cid, hazards=hazards, provides=frozenset({cid}),
              requires=frozenset(new.depends_on) | after, table=t.id, **kw)

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
        declared = p.options.using(cid)
        if declared is not None and old.type != new.type:
            using = f" USING {declared}"
        else:
            # enums have no cast between each other: go through text
            via_text = "::text" if is_enum(p, old.type) or is_enum(p, new.type) else ""
            if old.type != new.type and not via_text and has_cast(p, old.type, new.type) is False:
                raise PlanError(no_cast_message(t, old, new))
            using = f" USING {cq}{via_text}::{new.type}" if old.type != new.type else ""
        # "#typed": the settings a type change resets (storage) are made again after it
        p.add(f"{prefix} TYPE {new.type}{collate}{using}", "alter_column", cid,
              hazards=type_change_hazards(t, old, new), provides=frozenset({cid, cid + "#typed"}),
              requires=frozenset(new.depends_on), table=t.id)
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
            ns, os_ = new.identity_sequence, old.identity_sequence
            if opts and not ns.min_value <= os_.start <= ns.max_value and os_.min_value <= ns.start <= os_.max_value:
                # as for a sequence of its own (kinds.sequences): one never used stands at its old
                # START, which the new bounds refuse; moved to the new START first
                sq = q(os_.schema, os_.name)
                p.add(f"SELECT setval({lit(sq)}, {int(ns.start)}, false) FROM {sq} WHERE NOT is_called",
                      "alter_sequence", cid, provides=frozenset({cid + "#position"}), table=t.id)
                step(f"{prefix} " + " ".join(f"SET {o}" for o in opts), after=frozenset({cid + "#position"}))
            elif opts:
                step(f"{prefix} " + " ".join(f"SET {o}" for o in opts))
    retyped_now = retyped and old.type != new.type
    attribute_settings(p, t, old, new, retyped_now,
                       frozenset(new.depends_on) | ({cid + "#typed"} if retyped_now else set()))


# --------------------------------------------------------------------------- casts

_TYPMOD = re.compile(r"\(\d+(?:,\d+)?\)")


def _plain_type(p: Diff, name: str) -> str:
    """A format_type name without typmods, a domain followed to its base type."""
    seen = set()
    while name not in seen:
        seen.add(name)
        base = _TYPMOD.sub("", name)
        dom = next((d for cat in (p.desired, p.actual) for d in cat.domains.values()
                    if q(d.schema, d.name).replace('"', "") == base.replace('"', "")), None)
        if dom is None:
            return base
        name = dom.base_type
    return name


def has_cast(p: Diff, old: str, new: str) -> bool | None:
    """Whether `value::new` converts a value of type `old`, as PostgreSQL decides it: a pg_cast row
    (any context: the planner writes an explicit cast), an I/O conversion to or from a string type,
    arrays element by element, domains through their base type. None when a type is not a built-in
    one the catalog lists (a composite, a range of sql/ ...): the proof's rehearsal judges those."""
    casts = p.desired.casts or p.actual.casts
    if casts is None:
        return None
    a, b = _plain_type(p, old), _plain_type(p, new)
    if a == b:
        return True
    if a.endswith("[]") and b.endswith("[]"):
        return has_cast(p, a[:-2], b[:-2])
    elem_a, elem_b = a.removesuffix("[]"), b.removesuffix("[]")
    if elem_a not in casts.known or elem_b not in casts.known:
        return None
    if a in casts.strings or b in casts.strings:
        return True
    if a != elem_a or b != elem_b:
        return False  # an array and a scalar: no cast but through a string type
    return (a, b) in casts.pairs


def no_cast_message(t: Table, old: Column, new: Column) -> str:
    example = (f"to_timestamp({q(new.name)})" if new.type.startswith("timestamp")
               and _TYPMOD.sub("", old.type) in ("bigint", "integer", "numeric", "double precision", "real")
               else f"<expression of {q(new.name)} that gives {new.type}>")
    return (f"column {t.schema}.{t.name}.{new.name} cannot change type from {old.type} to {new.type}: PostgreSQL "
            f"has no cast between them, so ALTER COLUMN ... TYPE needs a USING expression. Say how to convert "
            f"the values with a directive next to the column in sql/, e.g. '{q(new.name)} {new.type} -- @using "
            f"{example}'. Nothing was changed")


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
