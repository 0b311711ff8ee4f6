"""The desired catalog: sql/ loaded into a scratch "shadow" database, then introspected.

PostgreSQL parses and normalizes our SQL, so defaults, CHECKs and index
definitions print exactly as they will in the target. The shadow lives on the
target's own server (same version, same normalization), is created from
template0 and is always dropped, even on failure. The result is cached by the
hash of the SQL, the server version and the available extension versions, so a
repeated run does not rebuild it.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgconverge.catalog.introspect import catalog_query
from pgconverge.quoting import q
from pgconverge.exec.runner import PsqlError, Runner, database_guard
from pgconverge.source import Source, SourceError

SHADOW_PREFIX = "pgconverge_shadow_"
CACHE_KEEP = 200  # desired catalogs kept under .pgconverge/cache


def cache_key(source: Source, server: dict[str, Any]) -> str:
    """The SQL, the server version and the extension versions decide the shadow."""
    # the introspection query too: a document cached by an older pgconverge may lack fields
    query = hashlib.sha256(catalog_query().encode()).hexdigest()
    basis = json.dumps({"sql": source.sha256, "server_version": server["server_version"],
                        "extensions": server["available_extensions"], "query": query}, sort_keys=True)
    return hashlib.sha256(basis.encode()).hexdigest()


def default_cache_dir() -> Path:
    return Path(os.environ.get("PGCONVERGE_HOME", ".pgconverge")) / "cache"


def load_script(source: Source, database: str) -> str:
    # A commit per statement, as `psql -f` runs the files: one transaction over thousands of
    # tables runs out of lock slots ("out of shared memory", max_locks_per_transaction), and an
    # enum value added by ALTER TYPE could not be used before the commit. The shadow is scratch:
    # no need for all or nothing, nor for waiting on each commit's WAL flush. Exactly one line
    # precedes the statements (error lines are mapped back to them).
    return database_guard(database).replace("\n", " ") + "SET synchronous_commit = off;\n" + source.script()


@dataclass(frozen=True)
class Desired:
    """What sql/ declares, as the shadow showed it: the catalog document the planner reads (the JSON
    text psql printed: parse_catalog() decodes it without a detour), and the shadow's
    ``pg_dump --schema-only`` that the proof compares with."""

    doc: str
    dump: str


def build_shadow(runner: Runner, source: Source) -> Desired:
    """Create the shadow, load sql/ into it, introspect and dump it, drop it."""
    name = SHADOW_PREFIX + secrets.token_hex(6)
    try:
        runner.run_script(f"CREATE DATABASE {q(name)} TEMPLATE template0;\n")
    except PsqlError as e:
        raise SourceError("<shadow>", 0, f"cannot create the shadow database on {runner.name}: {e.message}. "
                          "The role needs CREATEDB, or configure a separate shadow server.") from e
    try:
        shadow = runner.for_database(name)
        try:
            shadow.run_script(load_script(source, name))
        except PsqlError as e:
            if e.line is None:
                raise SourceError("<sql>", 0, e.message) from e
            try:
                stmt = source.statement_at(e.line - 1)  # the script starts with one SET line
            except ValueError:  # past the last statement: no single statement to blame
                raise SourceError("<sql>", 0, e.message + (f" ({e.detail})" if e.detail else "")) from e
            line = stmt.line + (e.position_line - 1 if e.position_line else 0)
            detail = f" ({e.detail})" if e.detail else ""
            if e.sqlstate == "42704" and e.message.startswith("role "):
                # GRANT/policy to a role the server lacks: roles are cluster-wide and never managed here
                detail += (f"; roles are not managed by pgconverge: create the role on {runner.name} first "
                           "(nothing was changed)")
            raise SourceError(stmt.file, line, f"{e.message}{detail}") from e
        doc = shadow.query_text(catalog_query())
        try:
            dump = shadow.dump_schema()
        except PsqlError as e:
            raise SourceError("<shadow>", 0, f"cannot dump the shadow database for the proof: {e.message}") from e
        return Desired(doc, dump)
    finally:
        runner.run_script(f"DROP DATABASE IF EXISTS {q(name)} WITH (FORCE);\n")


def desired_state(runner: Runner, source: Source, server: dict[str, Any], cache_dir: Path | None = None,
                  use_cache: bool = True) -> Desired:
    """The desired catalog document and the shadow's dump, from the cache when the key matches.
    `server` is the actual catalog's introspect.document_head()."""
    cache_dir = cache_dir or default_cache_dir()
    key = cache_key(source, server)
    path, dump_path = cache_dir / f"{key}.json", cache_dir / f"{key}.dump.sql"
    if use_cache and path.exists() and dump_path.exists():
        return Desired(path.read_text(), dump_path.read_text())
    desired = build_shadow(runner, source)
    if use_cache:
        cache_dir.mkdir(parents=True, exist_ok=True)
        # the dump first: the document's presence is what says the entry is complete
        for target, text in ((dump_path, desired.dump), (path, desired.doc)):
            tmp = target.with_suffix(f".{secrets.token_hex(4)}.tmp")
            tmp.write_text(text)
            tmp.replace(target)  # atomic: a concurrent run never reads half a file
        prune_cache(cache_dir)
    return desired


def prune_cache(cache_dir: Path, keep: int = CACHE_KEEP) -> None:
    """Keep the newest entries: each edit of sql/ or of a target adds some, and old ones are
    never read again."""
    entries = []
    for p in cache_dir.iterdir():
        if p.suffix in (".json", ".pickle", ".sql"):
            try:
                entries.append((p.stat().st_mtime, p))
            except FileNotFoundError:  # pruned by a concurrent run
                pass
    for _mtime, old in sorted(entries, reverse=True)[keep:]:
        old.unlink(missing_ok=True)
