"""Edits of DDL text that PostgreSQL printed: identifiers swapped after a rename, CONCURRENTLY
added to an index definition, derived names that fit NAMEDATALEN."""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace

from pgconverge.catalog.model import Column, Table, column_id
from pgconverge.planning import hazards as hz
from pgconverge.planning.hazards import Hazard
from pgconverge.quoting import q


def split_qualified(name: str) -> tuple[str, str]:
    schema, _, rel = name.partition(".")
    return schema, rel


def strip_not_valid(definition: str) -> str:
    return definition[: -len(" NOT VALID")] if definition.endswith(" NOT VALID") else definition



SIMPLE_KEY = re.compile(r"^(PRIMARY KEY|UNIQUE) \(([^()]*)\)(?: DEFERRABLE)?(?: INITIALLY DEFERRED)?$")
DEFERRAL = re.compile(r"(?: DEFERRABLE)?(?: INITIALLY DEFERRED)?$")
NAMEDATALEN = 63


def not_null_check_name(column: str) -> str:
    """The transient CHECK (col IS NOT NULL) of the online SET NOT NULL; 63 bytes at most."""
    name = f"pgconverge_nn_{column}"
    if len(name.encode()) <= NAMEDATALEN:
        return name
    digest = hashlib.sha256(column.encode()).hexdigest()[:8]
    head = name.encode()[:NAMEDATALEN - 9].decode(errors="ignore")
    return f"{head}_{digest}"


def with_index_name(definition: str, old: str, new: str) -> str:
    """CREATE [UNIQUE] INDEX <old> ON ... with the index name replaced."""
    m = re.match(r"^(CREATE (?:UNIQUE )?INDEX )(\S+|\"(?:[^\"]|\"\")*\")( ON .*)$", definition, re.S)
    if m is None or old == new:
        return definition
    return m.group(1) + qi(new) + m.group(3)


CON_WORD = {"p": "primary key", "u": "unique constraint", "c": "check constraint", "f": "foreign key",
             "x": "exclusion constraint"}

VOLATILE = re.compile(r"\b(random|clock_timestamp|gen_random_uuid|uuid_generate_v\d\w*|nextval|timeofday)\s*\(")


def volatile_default(expr: str) -> bool:
    return bool(VOLATILE.search(expr))


# Type changes PostgreSQL makes without rewriting the table (binary coercible or
# a relaxed typmod).
_VARCHAR = re.compile(r"^character varying(?:\((\d+)\))?$")
_NUMERIC = re.compile(r"^numeric(?:\((\d+),(\d+)\))?$")


def type_change_hazards(t: Table, old: Column, new: Column) -> tuple[Hazard, ...]:
    cid = column_id(t.schema, t.name, new.name)
    where = f"{t.schema}.{t.name}.{new.name}"
    ov, nv = _VARCHAR.match(old.type), _VARCHAR.match(new.type)
    if ov and (nv or new.type == "text"):
        old_len = int(ov.group(1)) if ov.group(1) else None
        new_len = int(nv.group(1)) if nv and nv.group(1) else None
        if new_len is None or (old_len is not None and new_len >= old_len):
            return ()  # widening a varchar is a catalog-only change
        return (Hazard(hz.DELETES_DATA, f"{where} narrows from {old.type} to {new.type}: longer values fail or are "
                       "lost", cid),
                Hazard(hz.BLOCKS_READS_WRITES, f"{where}: the whole table is scanned under ACCESS EXCLUSIVE", cid))
    if old.type == "text" and nv:
        return (Hazard(hz.DELETES_DATA, f"{where} narrows from text to {new.type}", cid),
                Hazard(hz.BLOCKS_READS_WRITES, f"{where}: the whole table is scanned under ACCESS EXCLUSIVE", cid))
    if old.collation != new.collation and old.type == new.type:
        return (Hazard(hz.BLOCKS_READS_WRITES, f"{where}: collation change rebuilds its indexes under ACCESS "
                       "EXCLUSIVE", cid),)
    narrowing = {("bigint", "integer"), ("bigint", "smallint"), ("integer", "smallint"),
                 ("double precision", "real"), ("timestamp with time zone", "date"),
                 ("timestamp without time zone", "date")}
    hazards = [Hazard(hz.REWRITES_TABLE, f"{where} changes type from {old.type} to {new.type}; the table is "
                      "rewritten under ACCESS EXCLUSIVE", cid),
               Hazard(hz.BLOCKS_READS_WRITES, f"{where}: reads and writes wait for the rewrite", cid)]
    if (old.type, new.type) in narrowing or _NUMERIC.match(new.type) and new.type != old.type:
        hazards.append(Hazard(hz.DELETES_DATA, f"{where} narrows from {old.type} to {new.type}", cid))
    hazards.append(Hazard(hz.MAY_FAIL_ON_EXISTING_DATA, f"{where}: existing values may not convert to {new.type}",
                          cid))
    return tuple(hazards)


def concurrently(definition: str) -> str:
    return re.sub(r"^CREATE (UNIQUE )?INDEX ", lambda m: f"CREATE {m.group(1) or ''}INDEX CONCURRENTLY ", definition,
                  count=1)


_BARE = re.compile(r"[a-z_][a-z0-9_]*")
_KEYWORDS: frozenset[str] | None = None


def qi(name: str) -> str:
    """An identifier as PostgreSQL prints it (quote_ident): bare when it can be."""
    global _KEYWORDS
    if _KEYWORDS is None:
        from pglast import keywords

        _KEYWORDS = frozenset(keywords.RESERVED_KEYWORDS | keywords.COL_NAME_KEYWORDS
                              | keywords.TYPE_FUNC_NAME_KEYWORDS)
    return name if _BARE.fullmatch(name) and name not in _KEYWORDS else q(name)


_LITERAL = r"'(?:[^']|'')*'"


def swap_ident(text: str, old: str, new: str) -> str:
    """Replace one identifier token in SQL that PostgreSQL printed, quoted or bare,
    leaving string literals alone."""
    forms = sorted({q(old), qi(old)}, key=len, reverse=True)
    pattern = f"({_LITERAL})|" + r'(?<![\w"$.])(?:' + "|".join(re.escape(f) for f in forms) + r')(?![\w"$])'
    return re.sub(pattern, lambda m: m.group(1) or qi(new), text)


def swap_references(definition: str, schema: str, old_table: str, new_table: str,
                     old_col: str | None = None, new_col: str | None = None) -> str:
    """A foreign key definition after its referenced table or column was renamed:
    only the part after REFERENCES changes."""
    head, sep, tail = definition.partition(" REFERENCES ")
    if not sep:
        return definition
    target, paren, rest = tail.partition("(")
    cols, close, after = rest.partition(")")
    for form in {f"{qi(schema)}.{qi(old_table)}", f"{q(schema)}.{q(old_table)}", qi(old_table)}:
        if target == form:
            target = (f"{qi(schema)}.{qi(new_table)}" if "." in form else qi(new_table))
            break
    if old_col is not None and new_col is not None:
        cols = swap_ident(cols, old_col, new_col)
    return head + sep + target + paren + cols + close + after


def swap_regclass(expr: str, schema: str, old: str, new: str) -> str:
    """A default such as nextval('public.t_id_seq'::regclass) after the sequence was renamed."""
    out = expr
    for prefix in (f"{qi(schema)}.", ""):
        out = out.replace(f"'{prefix}{qi(old)}'::regclass", f"'{prefix}{qi(new)}'::regclass")
    return out


def rename_table_record(t: Table, new: str) -> Table:
    old = t.name
    pattern = re.compile(r"( ON (?:ONLY )?" + re.escape(qi(t.schema)) + r"\.)" + re.escape(qi(old)) + " ")
    idx = {k: replace(i, table=new, definition=pattern.sub(lambda m: m.group(1) + qi(new) + " ", i.definition, 1))
           for k, i in t.indexes.items()}
    cons = {k: replace(c, index_definition=pattern.sub(lambda m: m.group(1) + qi(new) + " ", c.index_definition, 1))
            if c.index_definition else c for k, c in t.constraints.items()}
    # a self-referencing foreign key names the table too
    cons = {k: replace(c, definition=swap_references(c.definition, t.schema, old, new))
            if c.kind == "f" and c.ref_table == t.id else c for k, c in cons.items()}
    cols = {k: replace(c, identity_sequence=replace(c.identity_sequence, owned_by=(new, k)))
            if c.identity_sequence is not None and c.identity_sequence.owned_by else c for k, c in t.columns.items()}
    return replace(t, name=new, indexes=idx, constraints=cons, columns=cols)


def rename_column_record(t: Table, old: str, new: str) -> Table:
    cols = {}
    for k, c in t.columns.items():
        if k == old:
            seq = c.identity_sequence
            c = replace(c, name=new, identity_sequence=replace(seq, owned_by=(t.name, new)) if seq and seq.owned_by
                        else seq)
        cols[new if k == old else k] = c
    cons = {k: replace(c, definition=swap_ident(c.definition, old, new),
                       index_definition=swap_ident(c.index_definition, old, new) if c.index_definition else None,
                       columns=tuple(new if x == old else x for x in c.columns)) for k, c in t.constraints.items()}
    idx = {k: replace(i, definition=swap_ident(i.definition, old, new),
                      columns=tuple(new if x == old else x for x in i.columns)) for k, i in t.indexes.items()}
    return replace(t, columns=cols, constraints=cons, indexes=idx)

