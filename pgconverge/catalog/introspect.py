"""Introspection: the catalog of one database in a single round trip, parsed into the model.

Each object kind has one readable catalog query (queries/<kind>.sql) returning a JSON array.
They are glued into one ``SELECT json_build_object(...)`` (kinds.catalog_query) so a database
costs one psql call, however many objects it holds. The session runs with
``search_path = pg_catalog`` so every name PostgreSQL prints is schema-qualified.
msgspec decodes the document psql printed straight into typed rows (catalog/rows.py) and,
where a query prints exactly a record's fields, into the model's records.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec

from pgconverge.catalog.kinds import (CATALOG_KINDS, LEDGER_SCHEMA, Document, catalog_hash, catalog_query, copy_catalog, slim,
                                      decode, fingerprint_query, scope, server_query)
from pgconverge.catalog.model import Casts, Catalog
from pgconverge.catalog.rows import Parts

# the introspection API, defined with the registry it derives from
__all__ = ["LEDGER_SCHEMA", "Document", "slim", "catalog_hash", "catalog_query", "copy_catalog", "decode",
           "document_head", "fingerprint_query", "parse_catalog", "scope", "server_query"]


def collect_parts(doc: Any) -> Parts:
    """The rows that end up inside other kinds' records, by the record they belong to."""
    parts = Parts()
    for s in doc.sequences:
        if s.is_identity:
            parts.identity_sequences[(s.schema, s.owned_table, s.owned_column)] = s.sequence()
    for c in doc.constraints:
        parts.constraints.setdefault((c.schema, c.table), {})[c.name] = c.constraint()
    for i in doc.indexes:
        parts.indexes.setdefault((i.schema, i.table), {})[i.name] = i.index()
    for v in doc.view_indexes:
        parts.view_indexes.setdefault((v.schema, v.view), {})[v.name] = v.index()
    parts.depends = {d.object: d.uses for d in doc.depends}
    return parts


@contextmanager
def _gc_paused() -> Iterator[None]:
    # A big catalog allocates ~10^5 acyclic records at once, and each allocation burst makes the
    # cycle collector walk all of them again: on 1,000 tables that doubled the parse time.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def parse_catalog(doc: str | bytes | dict[str, Any] | Any) -> Catalog:
    """Build the data model from the JSON document that catalog_query() returns: its text as psql
    printed it (fastest), the parsed dict, or a decoded Document."""
    with _gc_paused():
        return _parse(decode(doc))


def _parse(doc: Any) -> Catalog:
    parts = collect_parts(doc)
    cat = Catalog(server_version=doc.server_version)
    cat.available_extensions = {r.name: r.version for r in doc.available_extensions}
    cat.current_user = doc.session[0].current_user if doc.session else ""
    if doc.casts:
        c = doc.casts[0]
        cat.casts = Casts(frozenset(map(tuple, c.pairs or ())), frozenset(c.strings or ()), frozenset(c.known or ()))
    cat.depends = parts.depends
    for kind in CATALOG_KINDS:
        held = getattr(cat, kind.attr)
        build = kind.build
        for row in getattr(doc, kind.name):
            record = row if build is None else build(row, parts)
            if record is None:
                continue
            if kind.key_of is None:
                held.append(record)
            else:
                held[kind.key(record)] = record
    return cat


def document_head(doc: str | bytes | dict[str, Any] | Any) -> dict[str, Any]:
    """The few parts of a catalog document that are read outside the catalog layer, as plain JSON
    values: the server and extension versions (the shadow cache key) and the ledger's data blocks
    (datablocks.ran_blocks)."""
    doc = decode(doc)
    return {"server_version": doc.server_version,
            "available_extensions": msgspec.to_builtins(doc.available_extensions),
            "ledger_data_blocks": msgspec.to_builtins(doc.ledger_data_blocks)}
