"""Edits of DDL text that PostgreSQL printed: identifiers swapped after a rename, CONCURRENTLY
added to an index definition, derived names that fit NAMEDATALEN.

The edits find what they change with PostgreSQL's own lexer (``pglast.parser.scan``), so
string literals, dollar quotes and comments are never touched, and they change only those
tokens: the rest of the text stays exactly as PostgreSQL printed it, which keeps it
comparable, by string equality, with what the shadow database prints.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace

from pgconverge.catalog.model import Table
from pgconverge.quoting import q


def split_qualified(name: str) -> tuple[str, str]:
    schema, _, rel = name.partition(".")
    return schema, rel


def strip_not_valid(definition: str) -> str:
    return definition[: -len(" NOT VALID")] if definition.endswith(" NOT VALID") else definition



# pg_get_constraintdef prints a key as exactly "PRIMARY KEY (cols) [DEFERRABLE] [INITIALLY DEFERRED]":
# these anchored patterns read that fixed shape; the column list is reused verbatim
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


CON_WORD = {"p": "primary key", "u": "unique constraint", "c": "check constraint", "f": "foreign key",
             "x": "exclusion constraint"}

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


@dataclass(frozen=True)
class _Token:
    start: int  # character offsets into the text, end exclusive
    end: int
    name: str  # the lexer's token name: IDENT, SCONST, ASCII_46 ("."), a keyword such as INDEX ...
    text: str


def _tokens(text: str) -> list[_Token]:
    from pglast.parser import scan  # lazily: a cached plan never lexes

    return [_Token(t.start, t.end + 1, t.name, text[t.start:t.end + 1]) for t in scan(text)
            if t.name not in ("SQL_COMMENT", "C_COMMENT")]


def _splice(text: str, edits: list[tuple[int, int, str]]) -> str:
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def _names(name: str) -> frozenset[str]:
    """How PostgreSQL may print an identifier: bare when it can be, and quoted."""
    return frozenset({q(name), qi(name)})


def swap_ident(text: str, old: str, new: str) -> str:
    """Replace one identifier in SQL that PostgreSQL printed, quoted or bare, wherever it is a
    name of its own (not the second part of a qualified name); literals stay as they are."""
    forms = _names(old)
    toks = _tokens(text)
    edits = [(t.start, t.end, qi(new)) for i, t in enumerate(toks)
             if t.text in forms and t.name != "SCONST" and not (i and toks[i - 1].name == "ASCII_46")]
    return _splice(text, edits)


def _index_name_token(definition: str) -> _Token | None:
    """The name token of CREATE [UNIQUE] INDEX [CONCURRENTLY] name ON ..., checked by the parser."""
    from pglast import parse_sql

    stmt = parse_sql(definition)[0].stmt
    if type(stmt).__name__ != "IndexStmt" or not stmt.idxname:
        return None
    toks = _tokens(definition)
    at = next(i for i, t in enumerate(toks) if t.name == "INDEX") + 1
    while toks[at].name in ("CONCURRENTLY", "IF_P", "NOT", "EXISTS"):
        at += 1
    return toks[at]


def with_index_name(definition: str, old: str, new: str) -> str:
    """CREATE [UNIQUE] INDEX <old> ON ... with the index name replaced."""
    if old == new:
        return definition
    tok = _index_name_token(definition)
    if tok is None or tok.text not in _names(old):
        return definition
    return _splice(definition, [(tok.start, tok.end, qi(new))])


def concurrently(definition: str) -> str:
    """A CREATE INDEX statement that builds CONCURRENTLY (unchanged when it does already)."""
    from pglast import parse_sql

    stmt = parse_sql(definition)[0].stmt
    if type(stmt).__name__ != "IndexStmt" or stmt.concurrent:
        return definition
    index = next(t for t in _tokens(definition) if t.name == "INDEX")
    return _splice(definition, [(index.end, index.end, " CONCURRENTLY")])


def swap_references(definition: str, schema: str, old_table: str, new_table: str,
                     old_col: str | None = None, new_col: str | None = None) -> str:
    """A foreign key definition after its referenced table or column was renamed:
    only the part after REFERENCES changes."""
    toks = _tokens(definition)
    at = next((i for i, t in enumerate(toks) if t.name == "REFERENCES"), None)
    if at is None:
        return definition
    edits = []
    target = toks[at + 1:at + 4]
    if (len(target) == 3 and target[1].name == "ASCII_46" and target[0].text in _names(schema)
            and target[2].text in _names(old_table)):
        edits.append((target[0].start, target[2].end, f"{qi(schema)}.{qi(new_table)}"))
        rest = at + 4
    elif target and target[0].text in _names(old_table) and not (len(target) > 1 and target[1].name == "ASCII_46"):
        edits.append((target[0].start, target[0].end, qi(new_table)))
        rest = at + 2
    else:
        rest = at + (4 if len(target) > 1 and target[1].name == "ASCII_46" else 2)
    if old_col is not None and new_col is not None and rest < len(toks) and toks[rest].name == "ASCII_40":
        for t in toks[rest + 1:]:
            if t.name == "ASCII_41":
                break
            if t.text in _names(old_col):
                edits.append((t.start, t.end, qi(new_col)))
    return _splice(definition, edits)


def swap_regclass(expr: str, schema: str, old: str, new: str) -> str:
    """A default such as nextval('public.t_id_seq'::regclass) after the sequence was renamed.
    The name sits inside a string literal, which no parser splits: the literal is matched whole."""
    out = expr
    for prefix in (f"{qi(schema)}.", ""):
        out = out.replace(f"'{prefix}{qi(old)}'::regclass", f"'{prefix}{qi(new)}'::regclass")
    return out


def _on_table(definition: str, schema: str, old: str, new: str) -> str:
    """CREATE INDEX ... ON [ONLY] schema.old ... with the table renamed."""
    toks = _tokens(definition)
    at = next((i for i, t in enumerate(toks) if t.name == "ON"), None)
    if at is None:
        return definition
    at += 1 if toks[at + 1].name == "ONLY" else 0
    rel = toks[at + 1:at + 4]
    if len(rel) == 3 and rel[0].text == qi(schema) and rel[1].name == "ASCII_46" and rel[2].text == qi(old):
        return _splice(definition, [(rel[2].start, rel[2].end, qi(new))])
    return definition


def rename_table_record(t: Table, new: str) -> Table:
    old = t.name
    idx = {k: replace(i, table=new, definition=_on_table(i.definition, t.schema, old, new))
           for k, i in t.indexes.items()}
    cons = {k: replace(c, index_definition=_on_table(c.index_definition, t.schema, old, new))
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

