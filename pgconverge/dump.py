"""`pgconverge dump`: the desired state of a live database, written as sql/.

The dump is the plan that turns a fresh database (template0, read through the shadow) into the
source: the planner's own create statements, in the order of its dependency graph. Nothing here
writes SQL text of its own beyond file headers and a session setting. The steps are then grouped
into files (schemas, extensions, types, sequences, one file per table, functions, views,
privileges), the files numbered so that sql/'s name order is a dependency order. Before the
folder appears it is proved: loaded into a shadow and diffed against the source, which must give
an empty plan. The folder is written into a temporary sibling and renamed at the end, so a refusal
never leaves part of a sql/ behind.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence


from pgconverge.catalog import introspect
from pgconverge.catalog.model import Catalog, table_id
from pgconverge.catalog.shadow import default_cache_dir, desired_state
from pgconverge.errors import PlanError, UnsupportedError
from pgconverge.exec.runner import Conn, LocalRunner, Runner
from pgconverge.planning.context import PlanOptions
from pgconverge.planning.planner import diff
from pgconverge.planning.steps import Step
from pgconverge.source import SourceError, load_source

__all__ = ["DumpFile", "DumpRefused", "DumpResult", "dump", "dump_catalog", "layout"]

# as PostgreSQL's quote_identifier: an unreserved keyword may stand bare, the other kinds may not
@functools.cache
def _keywords() -> frozenset[str]:
    # pglast loads on the first name checked, not when the module is imported
    from pglast.keywords import COL_NAME_KEYWORDS, RESERVED_KEYWORDS, TYPE_FUNC_NAME_KEYWORDS

    return frozenset(k.lower() for k in (*RESERVED_KEYWORDS, *COL_NAME_KEYWORDS, *TYPE_FUNC_NAME_KEYWORDS))


_PLAIN_NAME = re.compile(r"[a-z_][a-z0-9_$]*\Z")
# the planner prefixes a SQL-language function whose body is a string with this, for its own
# transactions; in sql/ (one session, statement by statement) the file sets it once instead
_NO_BODY_CHECK = "SET LOCAL check_function_bodies = off;\n"
_SESSION_NO_BODY_CHECK = "SET check_function_bodies = off;"

# coarse order of the groups: the dependency graph decides, this breaks its ties
_GROUP_RANK = {"schemas": 0, "extensions": 1, "types": 2, "functions": 3, "sequences": 4, "table": 5,
               "views": 6, "privileges": 7}
_FILE_LABEL = {"schemas": "schemas", "extensions": "extensions", "types": "types", "sequences": "sequences",
               "functions": "functions", "views": "views", "privileges": "privileges"}


class DumpRefused(UnsupportedError):
    """The dump cannot write an object as sql/: its kind and identity, and why."""

    def __init__(self, kind: str, identity: str, why: str):
        super().__init__(kind, identity, why)
        self.args = (f"cannot dump {kind} {identity}: {why}; nothing was written",)


@dataclass(frozen=True)
class DumpFile:
    path: str  # relative to the output folder, with "/" as separator
    statements: int
    objects: tuple[str, ...]  # object ids whose statements the file holds, in order


@dataclass(frozen=True)
class DumpResult:
    out: Path
    files: tuple[DumpFile, ...]
    statements: int
    source_hash: str  # catalog_hash of the (scoped) source: what a plan of it against the dump compares
    layout: str  # "grouped" (one file per table and kind) or "sequential" (the graph's order, runs of one group)

    @property
    def objects(self) -> int:
        return len({o for f in self.files for o in f.objects})


# --------------------------------------------------------------------------- names


def needs_quotes(name: str) -> bool:
    """Whether PostgreSQL would read the bare name as something else (case folding, a keyword)."""
    return not _PLAIN_NAME.match(name) or name in _keywords()


def unquote_names(sql: str) -> str:
    """The statement with every double-quoted identifier that does not need its quotes bare.
    Only identifier tokens change (pglast's scanner tells them from strings and bodies)."""
    try:
        from pglast import parser as pg_parser

        tokens = pg_parser.scan(sql)
    except Exception:  # the scanner refuses the text: keep it as PostgreSQL printed it
        return sql
    out, last = [], 0
    raw = sql.encode()
    for t in tokens:
        if t.name != "IDENT":
            continue
        text = raw[t.start:t.end + 1].decode()
        if len(text) < 2 or not (text.startswith('"') and text.endswith('"')):
            continue
        inner = text[1:-1]
        if '"' in inner or needs_quotes(inner):
            continue
        out.append(raw[last:t.start].decode())
        out.append(inner)
        last = t.end + 1
    if not out:
        return sql
    out.append(raw[last:].decode())
    return "".join(out)


# --------------------------------------------------------------------------- groups


@dataclass
class _Groups:
    """Which file each object's statements go to: its table's, else its kind's."""

    owner: dict[str, str] = field(default_factory=dict)  # object id -> group key

    @classmethod
    def of(cls, cat: Catalog) -> _Groups:
        g = cls()
        for tid, t in cat.tables.items():
            g.owner[tid] = tid
            for cname in t.columns:
                g.owner[f"column:{t.schema}.{t.name}.{cname}"] = tid
            for cname in t.constraints:
                g.owner[f"constraint:{t.schema}.{t.name}.{cname}"] = tid
            for iname in t.indexes:
                g.owner[f"index:{t.schema}.{iname}"] = tid
        for trid, tr in cat.triggers.items():
            g.owner[trid] = _table_or(cat, tr.schema, tr.table, "views")
        for pid, p in cat.policies.items():
            g.owner[pid] = _table_or(cat, p.schema, p.table, "views")
        for aid, a in cat.acls.items():
            if a.kind in ("table", "column"):
                g.owner[aid] = _table_or(cat, a.schema, a.name, "views")
            else:
                g.owner[aid] = {"schema": "schemas", "view": "views", "sequence": "sequences",
                                "function": "functions", "procedure": "functions"}.get(a.kind, "types")
        for did in cat.default_acls:
            g.owner[did] = "privileges"
        for v in cat.views.values():
            for i in v.indexes.values():
                g.owner[i.id] = "views"
        return g

    def group(self, step: Step) -> str:
        if step.kind == "owned_by":  # ALTER SEQUENCE ... OWNED BY goes with the owning table
            owners = sorted(self.owner[r] for r in step.requires if self.owner.get(r, "").startswith("table:"))
            if owners:
                return owners[0]
        if step.object in self.owner:
            return self.owner[step.object]
        if step.table and step.table.startswith("table:"):
            return step.table
        kind = step.object.split(":", 1)[0]
        return {"schema": "schemas", "extension": "extensions", "type": "types", "collation": "types",
                "sequence": "sequences", "function": "functions", "view": "views",
                "default_privileges": "privileges"}.get(kind, step.table or "types")


def _table_or(cat: Catalog, schema: str, name: str, other: str) -> str:
    tid = table_id(schema, name)
    return tid if tid in cat.tables else other


def _rank(group: str) -> tuple[int, str]:
    return (_GROUP_RANK["table"], group) if group.startswith("table:") else (_GROUP_RANK.get(group, 8), group)


# --------------------------------------------------------------------------- layout


@dataclass
class _Chunk:
    group: str
    steps: list[Step]


def _chunks_grouped(steps: list[Step], groups: _Groups) -> list[_Chunk]:
    """The steps gathered by group, each group in as few chunks as its dependencies allow: a group
    whose every step is ready goes first (lowest rank, then name), else the lowest ready one."""
    providers: dict[str, list[int]] = {}
    for i, s in enumerate(steps):
        for p in s.provides:
            providers.setdefault(p, []).append(i)
    deps = [{p for r in s.requires for p in providers.get(r, ()) if p < i} for i, s in enumerate(steps)]
    group_of = [groups.group(s) for s in steps]
    pending: dict[str, list[int]] = {}
    for i, g in enumerate(group_of):
        pending.setdefault(g, []).append(i)
    done: set[int] = set()
    out: list[_Chunk] = []

    def ready(i: int) -> bool:
        return deps[i] <= done

    while pending:
        whole = [g for g, idx in pending.items() if _closes(idx, deps, done)]
        some = [g for g, idx in pending.items() if any(ready(i) for i in idx)]
        pick = min(whole or some, key=_rank)
        chunk: list[int] = []
        progressed = True
        while progressed:  # a step may become ready through an earlier step of its own group
            progressed = False
            for i in pending[pick]:
                if i not in done and ready(i):
                    done.add(i)
                    chunk.append(i)
                    progressed = True
        pending[pick] = [i for i in pending[pick] if i not in done]
        if not pending[pick]:
            del pending[pick]
        chunk.sort()  # the graph's order inside the file
        out.append(_Chunk(pick, [steps[i] for i in chunk]))
    return out


def _closes(idx: list[int], deps: list[set[int]], done: set[int]) -> bool:
    """Every step of the group can run now, counting its own earlier steps as done."""
    own = set(idx)
    return all(deps[i] <= done | own for i in idx)


def _chunks_sequential(steps: list[Step], groups: _Groups) -> list[_Chunk]:
    """The graph's own order, one chunk per run of steps of one group."""
    out: list[_Chunk] = []
    for s in steps:
        g = groups.group(s)
        if out and out[-1].group == g:
            out[-1].steps.append(s)
        else:
            out.append(_Chunk(g, [s]))
    return out


def _file_label(group: str) -> str:
    if group.startswith("table:"):
        label = group.split(":", 1)[1]
    else:
        label = _FILE_LABEL.get(group, group)
    # a file name, not SQL: anything outside a plain set becomes "_"
    return re.sub(r"[^A-Za-z0-9_.$-]", "_", label)[:100]


def layout(chunks: list[_Chunk]) -> list[tuple[str, list[Step]]]:
    """(relative path, steps) per file, named so that sorted path order is the chunks' order.
    A run of table chunks in name order shares one numbered folder: ``NN_tables/<schema>.<table>.sql``."""
    runs: list[list[_Chunk]] = []
    for c in chunks:
        prev = runs[-1] if runs else None
        if (prev and c.group.startswith("table:") and prev[-1].group.startswith("table:")
                and _file_label(prev[-1].group) < _file_label(c.group)):
            prev.append(c)
        else:
            runs.append([c])
    width = max(2, len(str(len(runs) - 1)))
    files: list[tuple[str, list[Step]]] = []
    for n, run in enumerate(runs):
        prefix = f"{n:0{width}d}"
        if run[0].group.startswith("table:"):
            for c in run:
                files.append((f"{prefix}_tables/{_file_label(c.group)}.sql", c.steps))
        else:
            files.append((f"{prefix}_{_file_label(run[0].group)}.sql", run[0].steps))
    return files


def render(steps: list[Step]) -> tuple[str, list[int]]:
    """A file's text and the line each statement starts on."""
    body: list[str] = []
    lines: list[int] = []
    line = 1
    head: list[str] = []
    if any(s.sql.startswith(_NO_BODY_CHECK) for s in steps):
        # as pg_dump does: a SQL body may read objects of later files
        head = [_SESSION_NO_BODY_CHECK, ""]
        line += 2
    for s in steps:
        text = s.sql.removeprefix(_NO_BODY_CHECK).rstrip()
        text = unquote_names(text).rstrip().rstrip(";") + ";"
        lines.append(line)
        body.append(text)
        body.append("")
        line += text.count("\n") + 2
    return "\n".join(head + body).rstrip("\n") + "\n", lines


# --------------------------------------------------------------------------- the dump


def _check_steps(steps: list[Step]) -> None:
    for s in steps:
        kind, _, ident = s.object.partition(":")
        if s.kind.startswith("drop_") or s.removes:
            raise DumpRefused(kind, ident, "a fresh database has it and the source does not; sql/ declares only "
                              "what exists, never an absence")


def dump_catalog(runner: Runner, *, only_schemas: Sequence[str] = (), exclude_schemas: Sequence[str] = (),
                 cache_dir: Path | None = None, use_cache: bool = True) -> tuple[Catalog, Catalog, dict]:
    """The source's scoped catalog and a fresh database's, and the source's document head."""
    doc = introspect.decode(runner.query_text(introspect.catalog_query()))
    head = introspect.document_head(doc)
    source = introspect.scope(introspect.parse_catalog(doc), list(only_schemas), list(exclude_schemas))
    fresh_doc = desired_state(runner, load_source([]), head, cache_dir, use_cache).doc
    fresh = introspect.scope(introspect.parse_catalog(fresh_doc), list(only_schemas), list(exclude_schemas))
    return source, fresh, head


def _options(source: Catalog) -> PlanOptions:
    # an extension at another version than the server's default is written with its VERSION
    pinned = frozenset(e.name for e in source.extensions.values()
                       if source.available_extensions.get(e.name) not in (None, e.version))
    return PlanOptions(pinned_extensions=pinned)


def dump(target: str | Conn, out: str | os.PathLike, *, only_schemas: Sequence[str] = (),
         exclude_schemas: Sequence[str] = (), force: bool = False, cache_dir: str | os.PathLike | None = None,
         use_cache: bool = True) -> DumpResult:
    """Write the schema of `target` as sql/ into `out`.

    Raises UnsupportedError (DumpRefused for what sql/ cannot say) naming the kind and the object,
    and PlanError when `out` is not empty (unless `force`) or the dump does not load back into the
    same catalog; in every such case `out` is left as it was."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PlanError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise PlanError(f"{out}: the folder is not empty; pass --force (force=True) to replace its contents")
    runner = target if isinstance(target, Runner) else LocalRunner(target)
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    source, fresh, head = dump_catalog(runner, only_schemas=only_schemas, exclude_schemas=exclude_schemas,
                                       cache_dir=cache, use_cache=use_cache)
    if source.unsupported:
        u = source.unsupported[0]
        raise UnsupportedError(u.kind, u.identity, "exists in the database but is not managed by pgconverge, "
                                                   "so the dump cannot write it; nothing was written")
    options = _options(source)
    steps = diff(fresh, source, options)
    _check_steps(steps)
    if not steps:
        raise PlanError("the source holds nothing to dump in this scope (it equals a fresh database)")
    groups = _Groups.of(source)
    out.parent.mkdir(parents=True, exist_ok=True)
    problem = ""
    for name, chunker in (("grouped", _chunks_grouped), ("sequential", _chunks_sequential)):
        files = layout(chunker(steps, groups))
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            written = _write(tmp, files)
            problem = _verify(runner, tmp, files, written, source, head, options, only_schemas,
                              exclude_schemas, cache, use_cache)
            if not problem:
                _replace(tmp, out)
                return DumpResult(out, tuple(written), len(steps), introspect.catalog_hash(source), name)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    raise PlanError(f"the dump does not load back into the source's schema, so nothing was written: {problem}")


def _write(tmp: Path, files: list[tuple[str, list[Step]]]) -> list[DumpFile]:
    written = []
    for rel, steps in files:
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        text, _ = render(steps)
        path.write_text(text)
        objects = tuple(dict.fromkeys(s.object for s in steps))
        written.append(DumpFile(rel, len(steps), objects))
    return written


def _verify(runner: Runner, tmp: Path, files, written, source: Catalog, head: dict, options: PlanOptions,
            only_schemas, exclude_schemas, cache: Path, use_cache: bool) -> str:
    """'' when the folder loads as sql/ and plans empty against the source, else what went wrong."""
    try:
        loaded = load_source(str(tmp))
    except SourceError as e:
        step = _step_at(tmp, files, e)
        if step is not None:
            kind, _, ident = step.object.partition(":")
            raise DumpRefused(kind, ident, f"its statement is not accepted in sql/: {e.message}") from e
        raise
    try:
        state = desired_state(runner, loaded, head, cache, use_cache)
    except SourceError as e:
        return str(e).replace(str(tmp), "<dump>")
    back = introspect.scope(introspect.parse_catalog(state.doc), list(only_schemas), list(exclude_schemas))
    rest = diff(source, back, PlanOptions(pinned_extensions=options.pinned_extensions))
    if rest:
        return f"{len(rest)} step(s) remain, first: {rest[0].sql.splitlines()[0][:200]}"
    return ""


def _step_at(tmp: Path, files, e: SourceError) -> Step | None:
    for rel, steps in files:
        if os.path.realpath(e.file) == os.path.realpath(tmp / rel):
            _, starts = render(steps)
            found = None
            for start, s in zip(starts, steps):
                if e.line is None or start <= e.line:
                    found = s
            return found
    return None


def _replace(tmp: Path, out: Path) -> None:
    """`tmp` becomes `out`; an existing `out` (with force) is moved aside first and removed after."""
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)
