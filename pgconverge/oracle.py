"""The pg_dump oracle: is one database's schema the same as another's?

It shares nothing with the catalog code that plans: the judge is PostgreSQL's own
``pg_dump --schema-only``, normalized only where two equal schemas may print differently:

- comments, ``SET`` lines, psql meta-commands (``\\restrict`` carries a random key) and owners;
- the order of pg_dump's entries (object ids differ between two databases);
- the order of the statements inside one entry, and of the columns inside ``CREATE TABLE``
  (a column a plan adds is appended, a column the shadow declares may sit anywhere).

Entries are scoped to the managed schemas by the ``Schema:`` of pg_dump's own entry header.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from dataclasses import dataclass, field

# "-- Name: t t_pkey; Type: CONSTRAINT; Schema: app; Owner: -"
_HEADER = re.compile(r"^-- (?:Data for )?Name: (?P<name>.*); Type: (?P<type>.*?); Schema: (?P<schema>.*?); "
                     r"Owner: (?P<owner>.*)$")
_NOISE = re.compile(r"^(?:--.*|SET \w+ = .*;|SELECT pg_catalog\.set_config\(.*\);|\\\S+.*|\s*)$")
_OWNER = re.compile(r"^ALTER [A-Z ]+ .* OWNER TO .*;?$")
_CREATE_TABLE = re.compile(r"^(CREATE (?:UNLOGGED |FOREIGN )?TABLE \S+ \()\n(.*)\n(\).*)$", re.S)
# entries whose name begins with the kind of the object they are about (COMMENT, ACL, ...)
_ON_SCHEMA = re.compile(r"^SCHEMA (?P<schema>.+)$")
_EXTENSION_SCHEMA = re.compile(r"^CREATE EXTENSION IF NOT EXISTS \S+ WITH SCHEMA (?P<schema>\S+)")


@dataclass(frozen=True)
class Entry:
    """One entry of a dump: the object it is about and its normalized statements."""

    type: str
    schema: str
    name: str
    statements: tuple[str, ...]

    @property
    def label(self) -> str:
        if self.type == "SCHEMA":
            return f"schema {self.name}"
        where = f"{self.schema}." if self.schema != "-" else ""
        on, _, rest = self.name.partition(" ")
        if on == "SCHEMA":
            return f"{self.type.lower()} on schema {rest}"
        if on.isupper() and rest:  # "TABLE t" of a COMMENT or ACL entry; "t t_pkey" of a constraint is not
            return f"{self.type.lower()} on {on.lower()} {where}{rest}"
        return f"{self.type.lower()} {where}{self.name}"


@dataclass
class Dump:
    entries: list[Entry] = field(default_factory=list)

    def keyed(self) -> Counter:
        return Counter((e.type, e.schema, e.name, e.statements) for e in self.entries)


@dataclass(frozen=True)
class Difference:
    """An object whose statements differ: `expected` from the declared schema, `actual` from the other."""

    object: str
    expected: tuple[str, ...]
    actual: tuple[str, ...]

    def lines(self) -> list[str]:
        exp = [line for s in self.expected for line in s.splitlines()]
        act = [line for s in self.actual for line in s.splitlines()]
        diff = difflib.unified_diff(exp, act, "declared", "result", n=1, lineterm="")
        return [line for line in diff if not line.startswith(("---", "+++", "@@"))]

    def describe(self) -> str:
        return f"{self.object}:\n" + "\n".join(f"    {line}" for line in self.lines())


def _split_statements(body: str) -> list[str]:
    """pg_dump ends every statement with ';' at the end of a line; a function body may too, so
    the split is the parser's (with the scanner as a fallback for what it cannot parse)."""
    from pglast import split

    try:
        return list(split(body))
    except Exception:  # noqa: BLE001 - a statement pglast cannot parse still has to be compared
        return list(split(body, with_parser=False))


def _normalize(statement: str) -> str:
    m = _CREATE_TABLE.match(statement)
    if m:
        items = sorted(line.strip().rstrip(",") for line in m.group(2).split("\n") if line.strip())
        return f"{m.group(1)}\n    " + ",\n    ".join(items) + f"\n{m.group(3)}"
    return statement


def _entry_schema(type_: str, schema: str, name: str, statements: list[str]) -> str:
    if schema != "-":
        return schema
    if type_ == "SCHEMA":
        return name
    m = _ON_SCHEMA.match(name)
    if m:
        return m.group("schema")
    if type_ == "EXTENSION":
        for s in statements:
            e = _EXTENSION_SCHEMA.match(s)
            if e:
                return e.group("schema")
    if name.startswith("EXTENSION "):  # the comment on an extension: where the extension lives is unknown here
        return "-"
    return "-"


def parse_dump(text: str) -> Dump:
    """The entries of a ``pg_dump --schema-only`` script (plain format)."""
    dump = Dump()
    header: re.Match | None = None
    body: list[str] = []

    def flush() -> None:
        if header is None:
            return
        kept = [line for line in body if not _NOISE.match(line)]
        statements = [s for s in _split_statements("\n".join(kept)) if not _OWNER.match(s.replace("\n", " "))]
        if not statements:
            return
        type_, name = header.group("type"), header.group("name")
        schema = _entry_schema(type_, header.group("schema"), name, statements)
        dump.entries.append(Entry(type_, schema, name, tuple(sorted(_normalize(s) for s in statements))))

    for line in text.splitlines():
        m = _HEADER.match(line)
        if m:
            flush()
            header, body = m, []
        else:
            body.append(line)
    flush()
    return dump


def scoped(dump: Dump, only_schemas: tuple[str, ...] = (), exclude_schemas: tuple[str, ...] = (),
           never: tuple[str, ...] = ("pgconverge",)) -> Dump:
    """The entries of the managed schemas. Entries of no schema (global default privileges,
    event triggers, ...) are kept unless a schema list restricts the scope."""

    def keep(schema: str) -> bool:
        if schema == "-":
            return not only_schemas
        if schema in never or schema in exclude_schemas:
            return False
        return not only_schemas or schema in only_schemas

    return Dump([e for e in dump.entries if keep(e.schema)])


def compare(expected: Dump, actual: Dump) -> list[Difference]:
    """The objects whose entries differ, by object; empty when the two schemas are equal."""
    exp, act = expected.keyed(), actual.keyed()
    if exp == act:
        return []
    missing, extra = exp - act, act - exp
    by_object: dict[tuple[str, str, str], tuple[list[str], list[str]]] = {}
    for (type_, schema, name, statements), count in missing.items():
        by_object.setdefault((type_, schema, name), ([], []))[0].extend(list(statements) * count)
    for (type_, schema, name, statements), count in extra.items():
        by_object.setdefault((type_, schema, name), ([], []))[1].extend(list(statements) * count)
    return [Difference(Entry(t, s, n, ()).label, tuple(e), tuple(a))
            for (t, s, n), (e, a) in sorted(by_object.items())]


def report(differences: list[Difference], limit: int = 20) -> str:
    shown = "\n".join(d.describe() for d in differences[:limit])
    more = len(differences) - limit
    return shown + (f"\n... and {more} more object(s)" if more > 0 else "")
