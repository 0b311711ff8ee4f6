"""The registry of catalog kinds: one record per kind, and everything derived from it.

A kind is a query file ``queries/<name>.sql`` returning rows, the type msgspec decodes a row
into, the model record the row becomes, the Catalog attribute it fills, how to get a record's
schema for scoping and which system catalogs the query reads (for the fingerprint). The glue
query, the fingerprint, scope(), catalog_hash() and copy_catalog() are derived from KINDS, so
adding a kind means: a query file, a record in model.py, one entry below.

Some kinds fill no Catalog attribute of their own: their rows are parts of another kind's
records (a table's constraints and indexes, a view's indexes, what objects depend on) or
session facts; introspect.parse_catalog() collects them first.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, fields, replace
from importlib import resources
from typing import Any, Callable

import msgspec
from psycopg import sql

from pgconverge.catalog import rows
from pgconverge.catalog.model import (Acl, Catalog, Collation, CompositeType, DefaultAcl, Domain, EnumType, Extension,
                                      Function, RangeType, RlsPolicy, Schema, Sequence, Table, Trigger, Unsupported,
                                      View, to_plain)
from pgconverge.quoting import lit
from pgconverge.source import LEDGER_SCHEMA

STALE_QUERY = "stale_statistics"  # psql lines in front of the catalog query: fresh statistics where stale
SHARED_QUERY = "shared"  # the CTEs ns (managed namespaces) and ext_members, in front of every kind's query
SHARED_READS = ("pg_namespace", "pg_depend")  # what those CTEs read
FINGERPRINT_QUERY = "fingerprint"


def _by_schema_name(r: Any) -> tuple[str, str]:
    return (r.schema, r.name)


def _by_id(r: Any) -> str:
    return r.id


def _by_name(r: Any) -> str:
    return r.name


def _schema(r: Any) -> str | None:
    return r.schema


def _identity_schema(u: Unsupported) -> str | None:
    # "schema.name" for the kinds that live in a schema; casts, languages ... belong to none
    return u.identity.split(".")[0] if "." in u.identity else None


@dataclass(frozen=True)
class Kind:
    name: str  # the key in the catalog document and the stem of its query file
    reads: tuple[str, ...]  # system catalogs its query reads: any change there may change its rows
    row: type | None = None  # what msgspec decodes a row into; None: the record itself
    record: type | None = None  # the model record a row becomes; None: a part of other kinds' records
    attr: str | None = None  # the Catalog attribute it fills (a dict, or a list when key_of is None)
    # a record's name in catalog_hash(), and today its Catalog dict key too: hashes recorded in
    # ledgers and sign-offs stay comparable whatever the dicts are keyed by. None: a list kind.
    key_of: Callable[[Any], Any] | None = None
    build: Callable[[Any, rows.Parts], Any] | None = None  # row -> record (None: skip the row); None: as decoded
    schema_of: Callable[[Any], str | None] | None = None  # for scope(); None: whole-database, never scoped
    # whether a record of no schema stays managed under only_schemas (exclusions never drop one)
    schemaless_kept_under_only: bool = True
    hashed: bool = True  # part of catalog_hash()
    unhashed: frozenset[str] = frozenset()  # record fields catalog_hash() ignores besides NOT_HASHED

    @property
    def query_file(self) -> str:
        return f"{self.name}.sql"

    @property
    def decoded(self) -> type:
        return self.row if self.row is not None else self.record  # type: ignore[return-value]

    def key(self, record: Any) -> Any:
        """The key of a record in its Catalog dict: the one place keys are computed (keying every
        dict by record.id is this line becoming ``return record.id``)."""
        return record.id

    def query(self) -> str:
        return load_query(self.name)


def _catalog_kind(name: str, record: type, reads: tuple[str, ...], *, row: type | None = None,
                  key_of: Callable[[Any], Any] = _by_schema_name, schema_of: Callable[[Any], str | None] = _schema,
                  **kw: Any) -> Kind:
    build = kw.pop("build", None)
    if build is None and row is not None:
        build = row.record
    return Kind(name, reads, row=row, record=record, attr=kw.pop("attr", name), key_of=key_of, build=build,
                schema_of=schema_of, **kw)


# In document order. The reads lists name every catalog a query (or a function it calls:
# obj_description reads pg_description, pg_get_partkeydef pg_partitioned_table) looks at.
KINDS: tuple[Kind, ...] = (
    _catalog_kind("schemas", Schema, ("pg_description",), key_of=_by_name, schema_of=_by_name),
    # extensions are database-wide; with only_schemas they are managed only if they live there
    _catalog_kind("extensions", Extension, ("pg_extension", "pg_description"), key_of=_by_name),
    Kind("available_extensions", (), row=rows.AvailableExtensionRow),
    _catalog_kind("enums", EnumType, ("pg_type", "pg_enum", "pg_description"), row=rows.EnumRow),
    _catalog_kind("sequences", Sequence, ("pg_sequence", "pg_class", "pg_attribute", "pg_description"),
                  row=rows.SequenceRow),
    _catalog_kind("tables", Table, ("pg_class", "pg_attribute", "pg_attrdef", "pg_type", "pg_collation", "pg_proc",
                                    "pg_description", "pg_inherits", "pg_partitioned_table",
                                    "pg_index"),  # replica identity and CLUSTER ON indexes
                  row=rows.TableRow),
    Kind("constraints", ("pg_constraint", "pg_class", "pg_attribute", "pg_index", "pg_description"),
         row=rows.ConstraintRow),
    Kind("indexes", ("pg_index", "pg_class", "pg_attribute", "pg_constraint", "pg_inherits", "pg_description"),
         row=rows.IndexRow),
    _catalog_kind("collations", Collation, ("pg_collation", "pg_description")),
    _catalog_kind("domains", Domain, ("pg_type", "pg_collation", "pg_constraint", "pg_proc", "pg_description"),
                  row=rows.DomainRow),
    _catalog_kind("composites", CompositeType, ("pg_type", "pg_class", "pg_attribute", "pg_collation",
                                                "pg_description"), row=rows.CompositeRow),
    _catalog_kind("ranges", RangeType, ("pg_range", "pg_type", "pg_opclass", "pg_collation", "pg_proc",
                                        "pg_description"), row=rows.RangeRow),
    # the ledger's rows ride along for datablocks.ran_blocks(); the ledger schema is never managed
    Kind("ledger_data_blocks", (), row=rows.LedgerBlocksRow),
    Kind("session", (), row=rows.SessionRow),
    # built-in casts, for the column type changes that have none (pg_cast and pg_type rows of the
    # bootstrap range only: they change with the server version, which the shadow cache keys on)
    Kind("casts", ("pg_cast", "pg_type"), row=rows.CastsRow),
    _catalog_kind("views", View, ("pg_class", "pg_attribute", "pg_type", "pg_collation", "pg_rewrite",
                                  "pg_description"), row=rows.ViewRow),
    Kind("view_indexes", ("pg_index", "pg_class", "pg_description"), row=rows.ViewIndexRow),
    _catalog_kind("functions", Function, ("pg_proc", "pg_type", "pg_language", "pg_description"), key_of=_by_id,
                  build=rows.with_depends),
    _catalog_kind("triggers", Trigger, ("pg_trigger", "pg_class", "pg_description"), key_of=_by_id,
                  build=rows.with_depends),
    _catalog_kind("policies", RlsPolicy, ("pg_policy", "pg_class", "pg_description"), row=rows.PolicyRow,
                  key_of=_by_id),
    # who owns an object is not managed, only what its ACL grants; pg_init_privs holds what an
    # extension's script granted
    _catalog_kind("acls", Acl, ("pg_class", "pg_attribute", "pg_proc", "pg_type", "pg_init_privs"),
                  row=rows.AclRow, key_of=_by_id, unhashed=frozenset({"owner"})),
    # global default privileges belong to no schema: managed only when no schema list restricts
    _catalog_kind("default_acls", DefaultAcl, ("pg_default_acl",), row=rows.DefaultAclRow, key_of=_by_id,
                  schemaless_kept_under_only=False),
    Kind("depends", ("pg_class", "pg_attribute", "pg_proc", "pg_type", "pg_constraint", "pg_collation",
                     "pg_extension", "pg_rewrite", "pg_trigger", "pg_policy", "pg_attrdef"), row=rows.DependsRow),
    _catalog_kind("unsupported", Unsupported, (
        "pg_class", "pg_event_trigger", "pg_publication", "pg_foreign_server", "pg_proc", "pg_type", "pg_rewrite",
        "pg_operator", "pg_opclass", "pg_opfamily", "pg_statistic_ext", "pg_ts_config", "pg_ts_dict",
        "pg_conversion", "pg_cast", "pg_language", "pg_foreign_data_wrapper", "pg_am"),
        attr="unsupported", key_of=None, schema_of=_identity_schema, hashed=False),  # type: ignore[arg-type]
)

BY_NAME: dict[str, Kind] = {k.name: k for k in KINDS}
# The kinds that fill a Catalog attribute, in the order parse_catalog() builds them: a table's
# constraints and indexes, a view's indexes and every object's dependencies are collected first.
CATALOG_KINDS: tuple[Kind, ...] = tuple(k for k in KINDS if k.attr is not None)
# Catalog fields of no kind: whole-database facts that scope() passes through as they are.
WHOLE_DATABASE_FIELDS = frozenset({"server_version", "available_extensions", "depends", "current_user", "extra",
                                   "casts"})
# Fields that never cause a change, at every depth of every record (column order, row estimates,
# dependencies, and volatility, which follows from a default and the functions it calls).
NOT_HASHED = frozenset({"position", "estimated_rows", "depends_on", "volatile_default"})


# --------------------------------------------------------------------------- queries


@functools.cache
def load_query(name: str) -> str:
    """The text of queries/<name>.sql, the ledger schema filled in (the one place it is)."""
    text = (resources.files("pgconverge.catalog") / "queries" / f"{name}.sql").read_text()
    return text.replace(":'ledger_schema'", lit(LEDGER_SCHEMA)).strip()


def kind_queries() -> dict[str, str]:
    """Every kind's query by kind name, in document order."""
    return {k.name: k.query() for k in KINDS}


def catalog_query(queries: dict[str, str] | None = None) -> str:
    """The single statement that returns the whole catalog as one JSON document."""
    return "SET search_path = pg_catalog;\n" f"{stale_statistics()}\n" + _glued(
        queries if queries is not None else kind_queries())


# what the desired state's cache key needs of the target's server (shadow.cache_key)
SERVER_KINDS = ("available_extensions",)


def server_query() -> str:
    """The document's server version and SERVER_KINDS alone: read beside the catalog query, so that
    the desired state can be looked up while the catalog is read."""
    queries = kind_queries()
    return "SET search_path = pg_catalog;\n" + _glued({name: queries[name] for name in SERVER_KINDS})


def _glued(queries: dict[str, str]) -> str:
    parts = ",\n".join(
        f"{lit(name)}, (SELECT coalesce(json_agg(q), '[]') FROM (\n{text}\n) q)" for name, text in queries.items())
    return (
        # the sorts behind json_agg(... ORDER BY) spill to disk at the default 4MB on big schemas
        "SET work_mem = '64MB';\n"
        # the glued statement's estimated cost passes jit_above_cost on a few hundred tables: the
        # server then compiles ~2,000 expressions (0.8 s at 1,000 tables) for a query run once
        "SET jit = off;\n"
        f"WITH {load_query(SHARED_QUERY)}\n"
        "SELECT json_build_object(\n"
        "'server_version', current_setting('server_version_num')::int,\n"
        f"{parts});\n"
    )


def fingerprint_catalogs() -> tuple[str, ...]:
    """Every system catalog some kind's query reads, each once, in registry order."""
    return tuple(dict.fromkeys((*SHARED_READS, *(c for k in KINDS for c in k.reads))))


def stale_statistics() -> str:
    """psql lines that ANALYZE the catalogs catalog_query() reads when their statistics are stale
    (queries/stale_statistics.sql says why)."""
    catalogs = fingerprint_catalogs()
    analyze = "ANALYZE " + ", ".join(sql.Identifier("pg_catalog", c).as_string(None) for c in catalogs) + ";"
    return (load_query(STALE_QUERY).replace(":'catalogs'", lit("{" + ",".join(catalogs) + "}"))
            .replace("\n:analyze\n", f"\n{analyze}\n"))


def fingerprint_query() -> str:
    """A cheap statement whose result changes whenever the catalog that catalog_query() reads may
    have (queries/fingerprint.sql)."""
    per_catalog = ",\n  ".join(
        sql.SQL("{name}, (SELECT ARRAY[count(*), coalesce(sum(xmin::text::bigint), 0), "
                "coalesce(max(xmin::text::bigint), 0)] FROM {table})")
        .format(name=sql.Literal(c), table=sql.Identifier("pg_catalog", c)).as_string(None)
        for c in fingerprint_catalogs())
    return load_query(FINGERPRINT_QUERY).replace("\n  :catalog_versions);", f"\n  {per_catalog});") + "\n"


# --------------------------------------------------------------------------- decoding


def _document_type() -> type:
    """The whole document as one msgspec Struct: a list of typed rows per kind."""
    return msgspec.defstruct(
        "Document",
        [("server_version", int),
         *((k.name, list[k.decoded], msgspec.field(default_factory=list)) for k in KINDS)],  # type: ignore[valid-type]
        gc=False,
    )


Document = _document_type()
_decoder = msgspec.json.Decoder(Document)
# the rows read outside the catalog layer once the model is built (document_head, the proof's copy)
_HEAD_ROWS = ("available_extensions", "ledger_data_blocks", "extensions", "session")


def slim(doc: Any) -> Any:
    """`doc` without the rows the model was built from, only what is read after the parse: a big
    catalog's rows would otherwise be held twice (rows and records) until the plan is done."""
    return msgspec.structs.replace(doc, **{k.name: [] for k in KINDS if k.name not in _HEAD_ROWS})


def decode(doc: str | bytes | dict[str, Any] | Any) -> Any:
    """The typed Document from the JSON text psql printed (decoded straight into rows and records),
    from an already parsed dict (e.g. a pyinfra fact), or as it is."""
    if isinstance(doc, (str, bytes)):
        return _decoder.decode(doc)
    if isinstance(doc, dict):
        return msgspec.convert(doc, Document)
    return doc


# --------------------------------------------------------------------------- derived operations


def scope(cat: Catalog, only_schemas: list[str] | None = None, exclude_schemas: list[str] | None = None) -> Catalog:
    """The part of a catalog that is managed under the given schema scoping."""
    if not only_schemas and not exclude_schemas:
        return cat
    only = set(only_schemas or ())
    excluded = set(exclude_schemas or ())

    def keep(kind: Kind, record: Any) -> bool:
        schema = kind.schema_of(record)  # type: ignore[misc]
        if schema is None:
            return kind.schemaless_kept_under_only or not only
        return (not only or schema in only) and schema not in excluded

    changes: dict[str, Any] = {}
    for kind in CATALOG_KINDS:
        if kind.schema_of is None:
            continue
        held = getattr(cat, kind.attr)  # type: ignore[arg-type]
        if kind.key_of is None:
            changes[kind.attr] = [r for r in held if keep(kind, r)]  # type: ignore[index]
        else:
            changes[kind.attr] = {k: r for k, r in held.items() if keep(kind, r)}  # type: ignore[index]
    return replace(cat, **changes)


def _hash_name(key: str | tuple[str, ...]) -> str:
    return key if isinstance(key, str) else ".".join(key)


def catalog_hash(cat: Catalog) -> str:
    """Hash of what is managed, ignoring what never causes a change (column order, row estimates).

    The bytes hashed are those of ``json.dumps({kind: {name: to_plain(record)}, "extra": ...},
    sort_keys=True, default=str)``, fed to the hash a record at a time: the whole plain document
    of a big catalog was the peak of a cold plan's memory."""
    h = hashlib.sha256()
    hashed = {k.attr: k for k in CATALOG_KINDS if k.hashed}
    tops = sorted({*hashed, "extra"})
    h.update(b"{")
    for i, top in enumerate(tops):
        h.update((", " if i else "").encode() + json.dumps(top).encode() + b": ")
        if top == "extra":
            h.update(json.dumps(to_plain(cat.extra, NOT_HASHED), sort_keys=True, default=str).encode())
            continue
        kind = hashed[top]
        skip = NOT_HASHED | kind.unhashed
        # by name, as the dict the bytes describe: a later record of the same name wins
        named = {_hash_name(kind.key_of(r)): r for r in getattr(cat, kind.attr).values()}  # type: ignore[misc, arg-type]
        h.update(b"{")
        for j, name in enumerate(sorted(named)):
            h.update((", " if j else "").encode() + json.dumps(name).encode() + b": "
                     + json.dumps(to_plain(named[name], skip), sort_keys=True, default=str).encode())
        h.update(b"}")
    h.update(b"}")
    return h.hexdigest()


def copy_catalog(cat: Catalog) -> Catalog:
    """A catalog whose dicts and lists are copies: changing which records it holds (renames do)
    leaves the original alone. The records themselves are frozen and shared."""
    changes = {}
    for f in fields(Catalog):
        value = getattr(cat, f.name)
        if isinstance(value, (dict, list)):
            changes[f.name] = type(value)(value)
    return replace(cat, **changes)
