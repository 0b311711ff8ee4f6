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
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable


from pgconverge.catalog.introspect import catalog_query
from pgconverge.exec import scratch as scratchdb
from pgconverge.exec.runner import LocalRunner, PsqlError, Runner, database_guard
from pgconverge.source import Source, SourceError, Statement

SHADOW_PREFIX = "pgconverge_shadow_"
CACHE_KEEP = 200  # desired catalogs kept under .pgconverge/cache


def cache_key(source: Source, server: dict[str, Any], isolation: str = "", user: str = "") -> str:
    """The SQL, the server version, the extension versions and who loads it decide the shadow."""
    # the introspection query too: a document cached by an older pgconverge may lack fields
    query = hashlib.sha256(catalog_query().encode()).hexdigest()
    basis = json.dumps({"sql": source.sha256, "server_version": server["server_version"],
                        "extensions": server["available_extensions"], "query": query,
                        # the role that loads sql/ owns what it creates, and its rights decide what loads
                        "isolation": isolation, "user": user}, sort_keys=True)
    return hashlib.sha256(basis.encode()).hexdigest()


def default_cache_dir() -> Path:
    return Path(os.environ.get("PGCONVERGE_HOME", ".pgconverge")) / "cache"


def load_script(source: Source, database: str, statements: tuple[Statement, ...] | None = None,
                prelude: str = "") -> str:
    # A commit per statement, as `psql -f` runs the files: one transaction over thousands of
    # tables runs out of lock slots ("out of shared memory", max_locks_per_transaction), and an
    # enum value added by ALTER TYPE could not be used before the commit. The shadow is scratch:
    # no need for all or nothing, nor for waiting on each commit's WAL flush. Exactly one line
    # precedes the statements (error lines are mapped back to them).
    body = source.script() if statements is None else "".join(s.loaded_text + ";\n" for s in statements)
    return ((database_guard(database) + prelude).replace("\n", " ") + "SET synchronous_commit = off;\n" + body)


def _needs_superuser(stmt: Statement, probe: scratchdb.Probe) -> bool:
    """CREATE EXTENSION of (or COMMENT ON) an extension the scratch role may not create (or own)."""
    import pglast

    if stmt.kind == "CreateExtensionStmt":
        return any(probe.needs_superuser(raw.stmt.extname) for raw in pglast.parse_sql(stmt.text))
    if stmt.kind == "CommentStmt":
        for raw in pglast.parse_sql(stmt.text):
            node = raw.stmt
            if node.objtype == pglast.enums.ObjectType.OBJECT_EXTENSION:
                return probe.needs_superuser(node.object.sval)
    return False


def segments(source: Source, probe: scratchdb.Probe | None) -> list[tuple[bool, int, int]]:
    """(by the deploy role?, first, end) runs of statements: an extension only a superuser may create
    is created by the deploy role, everything else by the scratch database's own role."""
    out: list[tuple[bool, int, int]] = []
    for i, stmt in enumerate(source.statements):
        admin = probe is not None and _needs_superuser(stmt, probe)
        if out and out[-1][0] == admin:
            out[-1] = (admin, out[-1][1], i + 1)
        else:
            out.append((admin, i, i + 1))
    return out


@dataclass(frozen=True)
class Desired:
    """What sql/ declares, as the shadow showed it: the catalog document the planner reads (the JSON
    text psql printed: parse_catalog() decodes it without a detour), and the shadow's
    ``pg_dump --schema-only`` that the proof compares with."""

    doc: str
    dump: str
    isolation: str = ""  # how the shadow was isolated (exec.scratch): scratch-role, set-role, deploy-role
    isolation_reason: str = ""
    key: str = ""  # its cache key, when it is cached: what is derived from it can be cached beside it
    # the loading server's answer to exec.scratch.probe, when it was asked for the key: the proof of
    # the same plan asks the same server the same question
    probe: scratchdb.Probe | None = field(default=None, compare=False)
    # the shadow database itself, when it was asked to be kept (build_shadow's `keep`) and its objects
    # are still its role's: the caller publishes it as a rehearsal base or drops it (never cached)
    kept: scratchdb.Scratch | None = field(default=None, compare=False, repr=False)


def build_shadow(runner: Runner, source: Source, scratch_role: str | None = None, keep: bool = False) -> Desired:
    """Create the shadow, load sql/ into it as its own role, introspect and dump it, drop it.
    With `keep`, a shadow whose objects all stay its own role's (exec.scratch: the hand-back was
    not needed) is left standing in `Desired.kept` for the caller, who must drop it or publish it."""
    name = SHADOW_PREFIX + secrets.token_hex(6)
    kept = False
    try:
        box = scratchdb.create(runner, name, scratch_role)
    except PsqlError as e:
        raise SourceError("<shadow>", 0, f"cannot create the shadow database on {runner.name}: {e.message}. "
                          "The role needs CREATEDB, or configure a separate shadow server.") from e
    try:
        split = box.isolation != scratchdb.DEPLOY_ROLE
        for admin, first, end in segments(source, box.probe if split else None):
            part = source.statements[first:end]
            who, prelude = (box.admin, "") if admin else (box.runner, box.prelude)
            try:
                who.run_script(load_script(source, name, part, prelude))
            except PsqlError as e:
                raise _load_error(e, source, runner, first) from e
        box.hand_back()
        read = database_guard(name) + catalog_query()
        if isinstance(box.admin, LocalRunner):
            # two subprocesses, each mostly the server's time: the dump runs while the catalog is read
            # (pyinfra's connectors are not driven from other threads: there, one after the other)
            with ThreadPoolExecutor(max_workers=1) as pool:
                dumping = pool.submit(box.admin.dump_schema)
                try:
                    text = box.admin.query_text(read)
                finally:
                    wait([dumping])
                dumped = dumping.exception()
                raw_dump = "" if dumped else dumping.result()
        else:
            text = box.admin.query_text(read)
            try:
                raw_dump, dumped = box.admin.dump_schema(), None
            except PsqlError as e:
                dumped = e
        if dumped is not None:
            if not isinstance(dumped, PsqlError):
                raise dumped
            raise SourceError("<shadow>", 0, f"cannot dump the shadow database for the proof: {dumped.message}") \
                from dumped
        desired = Desired(box.as_deploy_json(text), box.as_deploy(raw_dump), box.isolation, box.reason)
        if keep and box.role and not box.handed_back:
            desired, kept = replace(desired, kept=box), True
        return desired
    finally:
        if not kept:
            box.drop()


def _load_error(e: PsqlError, source: Source, runner: Runner, first: int) -> SourceError:
    """The file and line in sql/ of an error in the part of the load that starts at statement `first`."""
    if e.line is None:
        return SourceError("<sql>", 0, e.message)
    offset = sum(s.text.count("\n") + 1 for s in source.statements[:first])
    try:
        stmt = source.statement_at(e.line - 1 + offset)  # the script starts with one SET line
    except ValueError:  # past the last statement: no single statement to blame
        return SourceError("<sql>", 0, e.message + (f" ({e.detail})" if e.detail else ""))
    line = stmt.line + (e.position_line - 1 if e.position_line else 0)
    detail = f" ({e.detail})" if e.detail else ""
    if e.sqlstate == "42704" and e.message.startswith("role "):
        # GRANT/policy to a role the server lacks: roles are cluster-wide and never managed here
        detail += (f"; roles are not managed by pgconverge: create the role on {runner.name} first "
                   "(nothing was changed)")
    return SourceError(stmt.file, line, f"{e.message}{detail}")


_ISOLATION_LINE = "-- pgconverge shadow isolation: "


def desired_state(runner: Runner, source: Source, server: dict[str, Any], cache_dir: Path | None = None,
                  use_cache: bool = True, scratch_role: str | None = None,
                  on_build: Callable[[], None] | None = None, keep: bool = False) -> Desired:
    """The desired catalog document and the shadow's dump, from the cache when the key matches.
    `server` is the actual catalog's introspect.document_head(). `on_build` is called when the
    shadow must be loaded (a cache miss), before it is. `keep`: as build_shadow's, with the caches
    on only."""
    cache_dir = cache_dir or default_cache_dir()
    if use_cache:
        who = scratchdb.probe(runner)
        key = cache_key(source, server, who.expected(scratch_role), who.user)
        path, dump_path = cache_dir / f"{key}.json", cache_dir / f"{key}.dump.sql"
        hit = _cached(key, cache_dir, who)
        if hit is not None:
            return hit
    if on_build is not None:
        on_build()
    desired = build_shadow(runner, source, scratch_role, keep=keep and use_cache)
    if use_cache:
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            # the isolation on the dump's first line (a comment: the oracle drops comments anyway)
            head = f"{_ISOLATION_LINE}{desired.isolation} {desired.isolation_reason}".replace("\n", " ") + "\n"
            # the dump first: the document's presence is what says the entry is complete
            for target, text in ((dump_path, head + desired.dump), (path, desired.doc)):
                write_atomic(target, text)
            prune_cache(cache_dir)
        except BaseException:
            if desired.kept is not None:
                desired.kept.drop()
            raise
        return replace(desired, key=key, probe=who)
    return desired


def write_atomic(path: Path, text: str) -> None:
    """Write a cache file whole or not at all: a concurrent run never reads half of one."""
    tmp = path.with_suffix(f".{secrets.token_hex(4)}.tmp")
    try:
        tmp.write_text(text)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)  # gone already once replaced


def cached_desired(runner: Runner, source: Source, server: dict[str, Any], cache_dir: Path | None = None,
                   scratch_role: str | None = None) -> Desired | None:
    """The desired state from the cache, or None: desired_state() without the shadow."""
    who = scratchdb.probe(runner)
    return _cached(cache_key(source, server, who.expected(scratch_role), who.user), cache_dir or default_cache_dir(),
                   who)


def _cached(key: str, cache_dir: Path, who: scratchdb.Probe) -> Desired | None:
    path, dump_path = cache_dir / f"{key}.json", cache_dir / f"{key}.dump.sql"
    try:
        first, _, dump = dump_path.read_text().partition("\n")
        doc = path.read_text()
    except FileNotFoundError:  # not cached, or pruned meanwhile by a concurrent run
        return None
    isolation, _, reason = first.removeprefix(_ISOLATION_LINE).partition(" ")
    return Desired(doc, dump, isolation, reason, key, who)


def prune_cache(cache_dir: Path, keep: int = CACHE_KEEP) -> None:
    """Keep the newest entries: each edit of sql/ or of a target adds some, and old ones are
    never read again."""
    entries = []
    for p in cache_dir.iterdir():
        if p.suffix in (".json", ".pickle", ".sql", ".hash"):
            try:
                entries.append((p.stat().st_mtime, p))
            except FileNotFoundError:  # pruned by a concurrent run
                pass
    for _mtime, old in sorted(entries, reverse=True)[keep:]:
        old.unlink(missing_ok=True)
