"""The Python API and the engine shared by the CLI and the pyinfra operations.

    plan = pgconverge.plan("postgresql:///app", "sql/")
    print(plan.to_sql())
    pgconverge.apply("postgresql:///app", plan, allow_hazards=["index_build"])
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
import re
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from pgconverge import oracle, proof
from pgconverge.errors import PlanError
from pgconverge.exec import bases, datablocks
from pgconverge.proof import NotProved
from pgconverge.catalog import introspect
from pgconverge.exec.progress import Reporter, StepTime, run_watched
from pgconverge.exec.script import MARKER, ExecSettings, failed_step, render_script, units
from pgconverge.planning.hazards import HazardRefused, Policy, parse_hazard_list
from pgconverge.catalog.model import Catalog
from pgconverge.planning.steps import Plan, Step
from pgconverge.planning.context import PlanOptions
from pgconverge.planning.renames import Rename, Renames
from pgconverge.planning.planner import plan_diff
from pgconverge.planning import unmanaged as drift
from pgconverge.catalog.introspect import catalog_hash
from pgconverge.exec.runner import Conn, LocalRunner, PsqlError, Runner
from pgconverge.catalog.kinds import SERVER_KINDS
from pgconverge.catalog.shadow import (Desired, cached_desired, default_cache_dir, desired_state, prune_cache,
                                       write_atomic)
from pgconverge.source import Source, cached_source, load_source


# Extensions refused in sql/ unless the policy names them, and why.
REACHING_OUT = {
    "dblink": "connects to other databases",
    "postgres_fdw": "connects to other databases",
    "file_fdw": "reads files and runs programs on the server",
    "adminpack": "writes files on the server",
    "plperlu": "is an untrusted language (code with the server's rights)",
    "plpython3u": "is an untrusted language (code with the server's rights)",
    "plpythonu": "is an untrusted language (code with the server's rights)",
    "plpython2u": "is an untrusted language (code with the server's rights)",
    "pltclu": "is an untrusted language (code with the server's rights)",
}


class PlanChanged(Exception):
    """The target changed between the plan that was shown and its execution."""


class StepFailed(PsqlError):
    """A step or data block failed while applying. The message names it; the steps
    before it stay applied (each unit is its own transaction), nothing after it ran."""

    def __init__(self, where: str, error: PsqlError):
        self.where = where
        self.error = error
        message = error.message
        if where and not message.startswith("pgconverge:"):  # messages of our own name their step already
            message = f"pgconverge: {where} failed: {message}"
        super().__init__(message, error.sqlstate, error.line, error.detail)


class NotConverged(Exception):
    """After applying, a new plan is not empty, or pg_dump of the target differs from sql/."""

    def __init__(self, remaining: Plan, differences: Sequence[oracle.Difference] = ()):
        self.remaining = remaining
        self.differences = list(differences)
        if remaining.steps or remaining.data_blocks:
            message = "the database did not converge; still pending:\n" + remaining.to_sql()
        else:
            message = ("the database did not converge: pg_dump of the target differs from sql/:\n"
                       + oracle.report(self.differences))
        super().__init__(message)


@dataclass(frozen=True)
class Options:
    only_schemas: tuple[str, ...] = ()
    exclude_schemas: tuple[str, ...] = ()
    allow_hazards: frozenset[str] = frozenset()
    drops: frozenset[str] = frozenset()
    compare_extension_versions: bool = False
    cache_dir: Path | None = None
    use_cache: bool = True
    # accept ALTER TABLE ... DROP COLUMN/CONSTRAINT in the desired state (scripts written as a history)
    permissive_source: bool = False
    # with only/exclude schemas: still create the extensions sql/ declares in other schemas (never drop them)
    create_extensions_anywhere: bool = False
    # rehearse every non-empty plan on a copy of the target and judge it by pg_dump (see pgconverge.proof)
    prove: bool = True
    # an empty desired state (no file or no statement) would drop everything: refused unless asked for
    allow_empty: bool = False
    # extensions that reach outside the database or run untrusted code, which sql/ may create anyway
    allow_extensions: frozenset[str] = frozenset()
    # objects in the database that sql/ does not declare: refuse | report | drop (planning/unmanaged.py)
    unmanaged: str = drift.REFUSE
    # a powerless role the deploy role may SET ROLE to, for the scratch databases when the deploy role
    # cannot create their own roles (no CREATEROLE); see pgconverge.exec.scratch
    scratch_role: str | None = None
    settings: ExecSettings = field(default_factory=ExecSettings)

    @classmethod
    def build(cls, **kw: Any) -> Options:
        """Options from loose keyword arguments, as the API and CLI receive them."""
        def names(v):
            if v is None:
                return ()
            return tuple(x.strip() for x in (v.split(",") if isinstance(v, str) else v) if x and x.strip())

        # None means "not given": the defaults of ExecSettings apply
        timing = {k: kw.pop(k) for k in ("lock_timeout", "lock_deadline", "statement_timeout", "retries",
                                         "concurrent_lock_timeout") if k in kw}
        settings = kw.pop("settings", None) or ExecSettings(**{k: v for k, v in timing.items() if v is not None})
        unknown = set(kw) - {"only_schemas", "exclude_schemas", "allow_hazards", "drops",
                             "compare_extension_versions", "cache_dir", "use_cache", "permissive_source",
                             "create_extensions_anywhere", "prove", "allow_empty", "allow_extensions",
                             "unmanaged", "scratch_role"}
        if unknown:
            raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
        return cls(
            only_schemas=names(kw.get("only_schemas")),
            exclude_schemas=names(kw.get("exclude_schemas")),
            allow_hazards=parse_hazard_list(kw.get("allow_hazards")),
            drops=frozenset(names(kw.get("drops"))),
            compare_extension_versions=bool(kw.get("compare_extension_versions", False)),
            cache_dir=Path(kw["cache_dir"]) if kw.get("cache_dir") else None,
            use_cache=kw.get("use_cache", True),
            permissive_source=bool(kw.get("permissive_source", False)),
            create_extensions_anywhere=bool(kw.get("create_extensions_anywhere", False)),
            prove=bool(kw.get("prove", True)),
            allow_empty=bool(kw.get("allow_empty", False)),
            allow_extensions=frozenset(names(kw.get("allow_extensions"))),
            unmanaged=drift.check_policy(kw.get("unmanaged"), "unmanaged"),
            scratch_role=kw.get("scratch_role") or None,
            settings=settings,
        )


@dataclass(frozen=True)
class Introspection:
    """One look at both databases: the scoped catalogs, and what they were read from."""

    actual: Catalog
    desired: Catalog
    actual_doc: Any  # the head of the target's catalog document (introspect.slim); it carries the ledger's data blocks
    desired_dump: str  # the shadow's pg_dump --schema-only, which the proof compares with
    # who loaded sql/ into the shadow (exec.scratch) and why
    shadow_isolation: str = ""
    shadow_isolation_reason: str = ""
    # the target's schema for the proof's copy, dumped alongside the catalog read (plan() only)
    snapshot: proof.Snapshot | None = None
    actual_hash: str = ""  # catalog_hash(actual) when it was computed already, "" when not
    desired_key: str = ""  # the desired state's cache key, "" when it is not cached
    probe: Any = None  # exec.scratch.Probe of the shadow's server, when the desired state asked it


@dataclass
class ApplyResult:
    plan: Plan
    seconds: float
    executed: list[Step]
    actual_hash: str = ""  # the target's schema hash once converged (from the check after the change)
    step_times: list[StepTime] = field(default_factory=list)  # each unit's time, by the server's clock


class Engine:
    """Plans and applies one database through one runner."""

    def __init__(self, runner: Runner, source: Source, options: Options | None = None,
                 shadow: Runner | None = None):
        self.runner = runner
        self.source = source
        self.options = options or Options()
        self.shadow = shadow  # where the shadow database is built; None: the target's own server
        # the target's fingerprint and catalog text read while sql/ was parsed (local_engine): the
        # first plan() uses them, nothing after it
        self.prefetched: tuple[Any, str] | None = None
        self._pending_text: str | None = None  # plan() to introspect(): the prefetched catalog text

    # -- catalogs

    def actual_doc(self, text: str | None = None) -> introspect.Document:
        """The target's catalog document in one round trip, decoded from psql's text straight
        into typed rows. `text`: that text, read already."""
        return introspect.decode(text if text is not None else self.runner.query_text(introspect.catalog_query()))

    def scoped(self, cat: Catalog) -> Catalog:
        return introspect.scope(cat, list(self.options.only_schemas), list(self.options.exclude_schemas))

    def introspect(self, snapshot: bool = False, actual_text: str | None = None,
                   actual_doc: introspect.Document | None = None) -> Introspection:
        """Both catalogs, scoped, with what they were read from: the head of the target's document
        (it also carries the ledger's data blocks, read in the same round trip) and the shadow's
        dump. With `snapshot` (and the proof on), the target's schema is dumped for the proof
        meanwhile. `actual_text` / `actual_doc`: the target's catalog text, or its document, read
        already."""
        if actual_doc is None and actual_text is None:
            actual_text, self._pending_text = self._pending_text, None
        shadow = self.shadow or self.runner
        cached: tuple[Desired, Catalog] | None = None
        if (actual_doc is None and actual_text is None and self.options.use_cache
                and isinstance(shadow, LocalRunner) and isinstance(self.runner, LocalRunner)):
            doc, cached = self._read_beside_cached_desired(shadow)
        else:
            doc = actual_doc if actual_doc is not None else self.actual_doc(actual_text)
        del actual_text, actual_doc  # neither the text nor, once parsed, the rows are held while the shadow loads
        early: Catalog | None = None
        early_hash = ""
        want = (shadow, self.source, introspect.document_head(doc), self.options.cache_dir, self.options.use_cache,
                self.options.scratch_role)
        # a shadow built with the caches on stays as a rehearsal base of sql/'s schema (exec.bases)
        keep = self.options.prove and self.options.use_cache
        if cached is not None:
            actual = introspect.parse_catalog(doc)
            doc = introspect.slim(doc)
            state, snap = cached[0], None
        elif isinstance(shadow, LocalRunner):
            # the shadow loads and the target is dumped (server time) while the actual catalog is
            # parsed (CPU time); only for local psql: pyinfra's connectors are not meant to be driven
            # from other threads
            with ThreadPoolExecutor(max_workers=2) as pool:
                dumps: list[Future[proof.Snapshot]] = []

                def dump_meanwhile() -> None:
                    dumps.append(pool.submit(self._snapshot, doc))

                # the proof's dump only overlaps a shadow load: with the desired catalog cached the
                # plan is most often empty (no proof), and a non-empty one has the proof dump then
                dump_now = snapshot and self.options.prove and isinstance(self.runner, LocalRunner)
                wanted = pool.submit(desired_state, *want, on_build=dump_meanwhile if dump_now else None, keep=keep)
                try:
                    actual = introspect.parse_catalog(doc)
                    doc = introspect.slim(doc)
                    if not self.options.create_extensions_anywhere:  # that option edits the scoped catalog below
                        early = self.scoped(actual)
                        early_hash = catalog_hash(early)  # CPU work while the shadow is the server's
                    state = wanted.result()
                    snap = dumps[0].result() if dumps else None
                except BaseException:
                    wait([wanted])  # it may still start the dump: then the dump is discarded here
                    if dumps and dumps[0].exception() is None:
                        dumps[0].result().discard()
                    if wanted.exception() is None and wanted.result().kept is not None:
                        wanted.result().kept.drop()
                    raise
        else:
            actual = introspect.parse_catalog(doc)
            doc = introspect.slim(doc)
            state = desired_state(*want, keep=keep)
            snap = None
        try:
            desired = cached[1] if cached is not None else introspect.parse_catalog(state.doc)
            scoped_actual, scoped_desired = early or self.scoped(actual), self.scoped(desired)
            if self.options.create_extensions_anywhere:
                for eid, e in desired.extensions.items():
                    if eid not in scoped_desired.extensions:
                        scoped_desired.extensions[eid] = e
                        if eid in actual.extensions:
                            scoped_actual.extensions[eid] = actual.extensions[eid]
            if state.kept is not None:
                self._keep_shadow(state, desired, scoped_desired)
        except BaseException:
            if state.kept is not None:
                state.kept.drop()  # nothing when it was published or dropped already
            raise
        return Introspection(scoped_actual, scoped_desired, doc, state.dump, snapshot=snap, actual_hash=early_hash,
                             desired_key=state.key, probe=state.probe,
                             shadow_isolation=state.isolation, shadow_isolation_reason=state.isolation_reason)

    def _keep_shadow(self, state: Desired, desired: Catalog, scoped_desired: Catalog) -> None:
        """Publish the shadow kept by desired_state as the rehearsal base of its own dump, keyed as
        the proof keys a target's dump (proof.base_key; the versions the restore would pin and the
        extensions are the shadow's, which a converged target has); else drop it."""
        box = state.kept
        assert box is not None and box.role is not None
        k, _ = proof.base_key(box.server, state.dump, False,
                              {e.name: e.version for e in scoped_desired.extensions.values()},
                              [(e.name, e.schema, e.version) for e in sorted(desired.extensions.values(),
                                                                              key=lambda e: e.name)],
                              state.probe)
        if k is None:
            box.drop()
            return
        # the database and its role become the base's, or are gone: adopt drops them when the key
        # has a base already (its publication fails) or anything else refuses it
        box.dropped = True
        bases.adopt(box.server, box.name, box.role, k)

    def _read_beside_cached_desired(self, shadow: Runner) -> tuple[introspect.Document, tuple[Desired, Catalog] | None]:
        """The target's catalog document, read while the desired state is looked up in the cache
        and, when it is there, parsed: the read is the server's time, the parse ours. The lookup
        needs only the server's part of the document (kinds.server_query), read beside it."""
        with ThreadPoolExecutor(max_workers=1) as pool:
            reading = pool.submit(self.runner.query_text, introspect.catalog_query())
            try:
                server = introspect.document_head(self.runner.query_text(introspect.server_query()))
                state = cached_desired(shadow, self.source, server, self.options.cache_dir, self.options.scratch_role)
                desired = introspect.parse_catalog(state.doc) if state is not None else None
            finally:
                wait([reading])
            doc = introspect.decode(reading.result())
        head = introspect.document_head(doc)
        if state is None or any(head[k] != server[k] for k in ("server_version", *SERVER_KINDS)):
            return doc, None  # not cached, or the server changed between the two reads: the usual way
        assert desired is not None
        return doc, (state, desired)

    def _snapshot(self, doc: introspect.Document) -> proof.Snapshot:
        installed = {e.name: e.version for e in doc.extensions}
        defaults = {r.name: r.version for r in doc.available_extensions}
        shadow = self.shadow or self.runner
        # the copy's text is edited for its own role when an extension needs a schema made first
        needs_edit = any(e.schema != "public" for e in doc.extensions if e.name != "plpgsql")
        return proof.snapshot(self.runner, proof.can_restore_in_parallel(self.runner, shadow, installed, defaults,
                                                                         needs_edit),
                              use_bases=self.options.use_cache)

    def catalogs(self) -> tuple[Catalog, Catalog]:
        seen = self.introspect()
        return seen.actual, seen.desired

    def scope(self) -> proof.Scope:
        return proof.Scope(self.options.only_schemas, self.options.exclude_schemas)

    # -- planning

    def plan_options(self) -> PlanOptions:
        renames = Renames(tuple(Rename(r.kind, r.schema, r.table, r.old, r.new, f"{r.file}:{r.line}")
                                for r in self.source.renames))
        return PlanOptions(renames=renames, compare_extension_versions=self.options.compare_extension_versions,
                           pinned_extensions=frozenset(self.source.pinned_extensions),
                           usings=self.source.usings, unmanaged=self.options.unmanaged,
                           drops=self.options.drops | frozenset(self.source.drops))

    def plan(self, fingerprint: Any = None) -> Plan:
        """The plan for the target, proved on a copy of it before anything touches the target.
        Raises NotProved when the rehearsal does not end equal to sql/ by pg_dump. `fingerprint`:
        the target's catalog fingerprint, read by the caller just before (``fingerprint_query``
        of the same runner) to save a round trip; None: read here."""
        if self.source.is_empty and not self.options.allow_empty:
            raise PlanError("the desired state is empty (no .sql file, or no statement in them): planning it "
                            "would drop everything the database holds. Pass --allow-empty (allow_empty=True) "
                            "if that is what you want")
        self.check_extensions()
        # read before the parse finished (local_engine): the fingerprint first, then the catalog
        text = None
        if self.prefetched is not None:
            # its own fingerprint, read just before its text: a caller's could be newer than the text
            fingerprint, text = self.prefetched
            self.prefetched = None
        key = self.plan_cache_key(fingerprint)
        if key is not None:
            cached = plan_cache_load(self.cache_dir(), key)
            if cached is not None:
                return replace(cached, source=self.source, options=self.options)
        # handed over, not passed: no frame of ours holds the text while the shadow loads
        self._pending_text, text = text, None
        try:
            seen = self.introspect(snapshot=True)
        finally:
            self._pending_text = None
        pool: ThreadPoolExecutor | None = None
        dumping: Future[proof.Snapshot] | None = None
        try:
            desired_hash = self.desired_hash(seen)
            actual_hash = seen.actual_hash or catalog_hash(seen.actual)
            if (desired_hash != actual_hash and seen.snapshot is None and self.options.prove
                    and isinstance(self.runner, LocalRunner) and isinstance(self.shadow or self.runner, LocalRunner)):
                # the catalogs differ, so the plan is most likely not empty and its proof needs the
                # target's dump: pg_dump works (server time) while the plan is made (CPU time)
                pool = ThreadPoolExecutor(max_workers=1)
                dumping = pool.submit(self._snapshot, seen.actual_doc)
            planned = plan_diff(seen.actual, seen.desired, self.plan_options())
            blocks = datablocks.pending(self.source.data_blocks,
                                        datablocks.ran_blocks(introspect.document_head(seen.actual_doc)))
            result = Plan(steps=planned.steps, desired_hash=desired_hash,
                          actual_hash=actual_hash, source_hash=self.source.sha256,
                          warnings=planned.warnings, data_blocks=blocks, unmanaged=planned.unmanaged,
                          forget=planned.forget, unmanaged_policy=self.options.unmanaged,
                          source=self.source, options=self.options)
            if dumping is not None:
                seen, dumping = replace(seen, snapshot=dumping.result()), None
            result.proof = self.prove(result, seen)
        finally:
            if dumping is not None:  # the plan failed first: the dump is not needed
                wait([dumping])
                if dumping.exception() is None:
                    dumping.result().discard()
            if pool is not None:
                pool.shutdown()
            if seen.snapshot is not None:
                seen.snapshot.discard()  # the archive holds the target's schema: gone with the plan
        if not result.proof.ok:
            raise NotProved(result.proof)
        if key is not None:
            plan_cache_store(self.cache_dir(), key, result)
        return result

    def desired_hash(self, seen: Introspection) -> str:
        """catalog_hash of the scoped desired catalog, kept beside the cached desired state: with
        sql/ and the server unchanged it is the same on every plan, and hashing a big catalog costs
        as much as reading it."""
        if not seen.desired_key:
            return catalog_hash(seen.desired)
        basis = json.dumps([seen.desired_key, self.options.only_schemas, self.options.exclude_schemas,
                            self.options.create_extensions_anywhere, _code_hash()], default=str)
        path = self.cache_dir() / f"{hashlib.sha256(basis.encode()).hexdigest()}.hash"
        try:
            kept = path.read_text().strip()
            if re.fullmatch(r"[0-9a-f]{64}", kept):
                return kept
        except OSError:
            pass
        got = catalog_hash(seen.desired)
        try:
            write_atomic(path, got + "\n")
        except OSError:
            pass  # a cache that cannot be written costs the hash next time, never the plan
        return got

    def check_extensions(self) -> None:
        """The shadow and the rehearsal run sql/ with the deploy role's rights: an extension made to
        reach other databases, files or programs would give sql/ a way out of them during a plan."""
        for name, file, line in self.source.extensions():
            why = REACHING_OUT.get(name)
            if why and name not in self.options.allow_extensions:
                raise PlanError(f"{file}:{line}: extension {name} {why}; a plan would create it in its scratch "
                                f"databases and sql/ could use it there. If you trust it, allow it by name: "
                                f"pgconverge_allow_extensions: [{name}] in group data, or --allow-extension {name}")

    def prove(self, plan: Plan, seen: Introspection) -> proof.Proof:
        shadow = dict(shadow_isolation=seen.shadow_isolation, shadow_isolation_reason=seen.shadow_isolation_reason)
        if not self.options.prove:
            return proof.Proof(proof.OFF, **shadow)
        if not plan.steps:  # nothing to rehearse: not even the shadow's dump needs parsing
            return proof.Proof(proof.SKIPPED, **shadow)
        versions = {e.name: e.version for e in seen.actual.extensions.values()}
        # every extension of the target, the copy's restore needs them (not only the managed schemas')
        extensions = [(e.name, e.schema, e.version) for e in seen.actual_doc.extensions if e.name != "plpgsql"]
        done = proof.rehearse(plan, self.runner, self.shadow or self.runner, self.scope().of(seen.desired_dump),
                              self.scope(), self.options.settings, versions, seen.snapshot, extensions,
                              self.options.scratch_role, forget=plan.forget, use_bases=self.options.use_cache,
                              probe=seen.probe)
        return replace(done, **shadow)

    def cache_dir(self) -> Path:
        return self.options.cache_dir or default_cache_dir()

    @property
    def caches_plans(self) -> bool:
        """Whether plan() looks for a cached plan (and so reads the target's fingerprint)."""
        return bool(self.options.use_cache and not self.source.data_blocks and self.shadow is None)

    def plan_cache_key(self, fingerprint: Any = None) -> str | None:
        """The plan is a pure function of the two catalogs and the options: while the target's
        catalog fingerprint and everything else is unchanged, the last plan still holds. None when
        caching is off, or when data blocks make the plan depend on the ledger's rows too."""
        if not self.caches_plans:
            return None
        # read before the catalog, never after it: a plan stored under a newer fingerprint than
        # the catalog it was made from would be served for a state it never saw
        if fingerprint is None:
            fingerprint = self.runner.query_json(introspect.fingerprint_query())
        basis = json.dumps({
            "target": fingerprint, "source": self.source.sha256, "code": _code_hash(),
            "plan_options": repr(self.plan_options()),
            "options": [self.options.only_schemas, self.options.exclude_schemas,
                        self.options.compare_extension_versions, self.options.create_extensions_anywhere,
                        sorted(self.options.allow_extensions), self.options.scratch_role],
        }, sort_keys=True, default=str)
        return hashlib.sha256(basis.encode()).hexdigest()

    def policy(self, plan: Plan | None = None) -> Policy:
        # under drop, the drops of the objects sql/ does not declare are allowed (their hazards still shown)
        undeclared = frozenset(i for u in (plan.unmanaged if plan is not None else ()) for i in (u.id, *u.parts))
        return Policy(allow=self.options.allow_hazards,
                      drops=self.options.drops | frozenset(self.source.drops),
                      allowed_objects=frozenset(self.source.allowed),
                      undeclared=undeclared if self.options.unmanaged == drift.DROP else frozenset())

    def check(self, plan: Plan) -> None:
        refused = self.policy(plan).refused(plan.hazards)
        if refused:
            raise HazardRefused(refused, drift.remedy(plan, refused))

    # -- execution

    def execute(self, plan: Plan, on_step: Callable[[Step], None] | None = None,
                progress: Reporter | None = None) -> ApplyResult:
        """Run a plan that the policy allows, then verify the database converged. `progress` gets
        samples of the running step while it runs (``exec.progress``) and each step's time at the end."""
        self.check(plan)
        started = time.monotonic()
        executed, times = self.run(plan, on_step, progress)
        actual_hash = self.verify(plan)
        return ApplyResult(plan, time.monotonic() - started, executed, actual_hash, times)

    def run(self, plan: Plan, on_step: Callable[[Step], None] | None = None,
            progress: Reporter | None = None) -> tuple[list[Step], list[StepTime]]:
        """Run a plan's script (or a part of a plan: some of its steps, some of its data blocks), with no
        policy check and no verification; the deploy's operations run its parts one by one. Returns the
        steps that ran and each step's time."""
        executed: list[Step] = []
        times: list[StepTime] = []
        if plan.steps or plan.data_blocks:
            unit_list = units(plan.steps)
            last: list[str] = []

            def on_mark(kind: str, key: str, line: str) -> None:
                if key == "done":
                    return
                last[:] = [line]
                if kind == MARKER:
                    for s in unit_list[int(key)].steps:
                        executed.append(s)
                        if on_step:
                            on_step(s)

            try:
                times = run_watched(self.runner, plan, render_script(plan, self.options.settings), progress,
                                    on_mark)
            except PsqlError as e:
                raise StepFailed(failed_step(plan, last[0] if last else None), e) from e
        return executed, times

    def verify(self, plan: Plan, data_blocks: bool = True) -> str:
        """After `plan` ran: the schema hash of the target, or NotConverged. Judged twice: by our own
        model (a fresh plan is empty) and by pg_dump (the target equals the shadow), which shares
        nothing with that model. `data_blocks` False: data blocks still pending do not count (the
        deploy runs its "after" blocks in an operation of their own)."""
        seen = self.introspect()
        steps = plan_diff(seen.actual, seen.desired, self.plan_options()).steps
        pending = datablocks.pending(self.source.data_blocks, datablocks.ran_blocks(introspect.document_head(seen.actual_doc)))
        if steps or (pending and data_blocks):
            raise NotConverged(Plan(steps=steps, data_blocks=pending if data_blocks else []))
        if self.options.prove and (plan.steps or plan.data_blocks):
            # under report, the rehearsal's result before it forgot the objects left alone: sql/ plus them
            expected = getattr(plan.proof, "expected", None) or self.scope().of(seen.desired_dump)
            differences = proof.verify(self.runner, expected, self.scope())
            if differences:
                raise NotConverged(Plan(steps=[]), differences)
        return seen.actual_hash or catalog_hash(seen.actual)


@functools.lru_cache(maxsize=1)
def _code_hash() -> str:
    """The package's own code: a cached plan made by other code is never reused."""
    h = hashlib.sha256()
    root = Path(__file__).parent
    for path in sorted([*root.rglob("*.py"), *root.rglob("*.sql")]):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def plan_cache_load(cache_dir: Path, key: str) -> Plan | None:
    path = cache_dir / f"plan-{key}.pickle"
    try:
        with path.open("rb") as f:
            return pickle.load(f)  # our own file, written below
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError):
        return None


def plan_cache_store(cache_dir: Path, key: str, plan: Plan) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f"plan-{key}.{os.getpid()}.tmp"
    with tmp.open("wb") as f:
        # without what it was made from: the next load puts the current source and options back
        pickle.dump(replace(plan, source=None, options=None), f, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(cache_dir / f"plan-{key}.pickle")
    prune_cache(cache_dir)


def _source(sql: str | os.PathLike | Sequence[str | os.PathLike] | Source, options: dict[str, Any]) -> Source:
    if isinstance(sql, Source):
        return sql
    # the parsed source is cached next to the desired catalog, and bypassed with it (use_cache=False)
    cache_dir = (options.get("cache_dir") or default_cache_dir()) if options.get("use_cache", True) else None
    return load_source(sql, allow_alter_drop=bool(options.get("permissive_source")), cache_dir=cache_dir)


def local_engine(target: str | Conn, sql: str | os.PathLike | Sequence[str | os.PathLike] | Source,
                 options: Options, allow_alter_drop: bool = False) -> Engine:
    """An Engine for a target reached by local psql, with sql/ read. When sql/ must be parsed (it is
    not in the source cache), the target's fingerprint and catalog are read meanwhile: the parse is
    seconds of our CPU on a big schema, the read mostly the server's time."""
    runner = LocalRunner(target)
    if isinstance(sql, Source):
        return Engine(runner, sql, options)
    cache_dir = (options.cache_dir or default_cache_dir()) if options.use_cache else None
    if cache_dir is not None and (hit := cached_source(sql, allow_alter_drop=allow_alter_drop,
                                                       cache_dir=cache_dir)) is not None:
        return Engine(runner, hit, options)
    with ThreadPoolExecutor(max_workers=1) as pool:
        reading = pool.submit(runner.query_text, introspect.fingerprint_query() + introspect.catalog_query())
        try:
            source = load_source(sql, allow_alter_drop=allow_alter_drop, cache_dir=cache_dir)
        finally:
            wait([reading])
    engine = Engine(runner, source, options)
    if reading.exception() is None:  # else the plan reads it again, and reports what failed then
        fingerprint, _, text = reading.result().partition("\n")
        engine.prefetched = (json.loads(fingerprint), text)
    return engine


def plan(target: str, sql: str | os.PathLike | Sequence[str | os.PathLike], **options: Any) -> Plan:
    """Plan the changes that bring `target` (a libpq connection string or URL) to the schema in `sql`.

    `sql` is a .sql file, a folder of them (read in name order) or a list of SQL strings.
    Options: only_schemas, exclude_schemas, allow_hazards, drops, compare_extension_versions,
    cache_dir, use_cache, permissive_source (accept ALTER TABLE ... DROP COLUMN/CONSTRAINT in `sql`),
    create_extensions_anywhere (with only/exclude schemas, still create the extensions `sql` declares),
    unmanaged ("refuse", "report" or "drop": what becomes of objects `sql` does not declare).
    """
    return local_engine(target, sql, Options.build(**options), bool(options.get("permissive_source"))).plan()


def apply(target: str, plan_or_sql: Plan | str | os.PathLike | Sequence[str | os.PathLike], *,
          on_step: Callable[[Step], None] | None = None, progress: Reporter | None = None,
          **options: Any) -> ApplyResult:
    """Apply a plan (or plan and apply `sql`). Raises HazardRefused before running anything
    when a hazard is not allowed, PlanChanged when the target moved since `plan` was made,
    and NotConverged when a fresh plan is not empty afterwards. `progress`: a ``Reporter``
    (``pgconverge.exec.progress``) for the samples of long steps and each step's time."""
    if isinstance(plan_or_sql, Plan):
        if plan_or_sql.source is None:
            raise ValueError("this Plan was not made by pgconverge.plan(); pass the SQL instead")
        engine = Engine(LocalRunner(target), plan_or_sql.source,
                        Options.build(**options) if options else plan_or_sql.options)
        current = engine.plan()
        if current.plan_hash != plan_or_sql.plan_hash:
            raise PlanChanged("the target changed since the plan was made; plan again and review")
    else:
        engine = local_engine(target, plan_or_sql, Options.build(**options), bool(options.get("permissive_source")))
        current = engine.plan()
    return engine.execute(current, on_step, progress)
