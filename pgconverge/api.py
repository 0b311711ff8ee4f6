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
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from pgconverge.exec import datablocks
from pgconverge.catalog import introspect
from pgconverge.exec.script import MARKER, ExecSettings, failed_step, render_script, units
from pgconverge.planning.hazards import HazardRefused, Policy, parse_hazard_list
from pgconverge.catalog.model import Catalog
from pgconverge.planning.steps import Plan, Step
from pgconverge.planning.context import PlanOptions, Renames
from pgconverge.planning.planner import diff_with_warnings
from pgconverge.catalog.introspect import catalog_hash
from pgconverge.exec.runner import LocalRunner, PsqlError, Runner
from pgconverge.catalog.shadow import default_cache_dir, desired_doc, prune_cache
from pgconverge.source import Source, load_source


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
    """After applying, a new plan is not empty."""

    def __init__(self, remaining: Plan):
        self.remaining = remaining
        super().__init__("the database did not converge; still pending:\n" + remaining.to_sql())


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
    settings: ExecSettings = field(default_factory=ExecSettings)

    @classmethod
    def build(cls, **kw: Any) -> Options:
        """Options from loose keyword arguments, as the API and CLI receive them."""
        def names(v):
            if v is None:
                return ()
            return tuple(x.strip() for x in (v.split(",") if isinstance(v, str) else v) if x and x.strip())

        # None means "not given": the defaults of ExecSettings apply
        timing = {k: kw.pop(k) for k in ("lock_timeout", "statement_timeout", "retries", "concurrent_lock_timeout")
                  if k in kw}
        settings = kw.pop("settings", None) or ExecSettings(**{k: v for k, v in timing.items() if v is not None})
        unknown = set(kw) - {"only_schemas", "exclude_schemas", "allow_hazards", "drops",
                             "compare_extension_versions", "cache_dir", "use_cache", "permissive_source",
                             "create_extensions_anywhere"}
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
            settings=settings,
        )


@dataclass
class ApplyResult:
    plan: Plan
    seconds: float
    executed: list[Step]


class Engine:
    """Plans and applies one database through one runner."""

    def __init__(self, runner: Runner, source: Source, options: Options | None = None,
                 shadow: Runner | None = None):
        self.runner = runner
        self.source = source
        self.options = options or Options()
        self.shadow = shadow  # where the shadow database is built; None: the target's own server

    # -- catalogs

    def actual_doc(self) -> introspect.Document:
        """The target's catalog document in one round trip, decoded from psql's text straight
        into typed rows."""
        return introspect.decode(self.runner.query_text(introspect.catalog_query()))

    def scoped(self, cat: Catalog) -> Catalog:
        return introspect.scope(cat, list(self.options.only_schemas), list(self.options.exclude_schemas))

    def catalogs(self) -> tuple[Catalog, Catalog]:
        doc = self.actual_doc()
        self.last_doc = doc  # also carries the ledger's data blocks (read in the same round trip)
        shadow = self.shadow or self.runner
        want = (shadow, self.source, introspect.document_head(doc), self.options.cache_dir, self.options.use_cache)
        if isinstance(shadow, LocalRunner):
            # the shadow loads (server time) while the actual catalog is parsed (CPU time); only
            # for local psql: pyinfra's connectors are not meant to be driven from another thread
            with ThreadPoolExecutor(max_workers=1) as pool:
                wanted = pool.submit(desired_doc, *want)
                actual = introspect.parse_catalog(doc)
                desired = introspect.parse_catalog(wanted.result())
        else:
            actual = introspect.parse_catalog(doc)
            desired = introspect.parse_catalog(desired_doc(*want))
        scoped_actual, scoped_desired = self.scoped(actual), self.scoped(desired)
        if self.options.create_extensions_anywhere:
            for name, e in desired.extensions.items():
                if name not in scoped_desired.extensions:
                    scoped_desired.extensions[name] = e
                    if name in actual.extensions:
                        scoped_actual.extensions[name] = actual.extensions[name]
        return scoped_actual, scoped_desired

    # -- planning

    def plan_options(self) -> PlanOptions:
        renames = Renames(tuple((r.kind, r.schema, r.table, r.old, r.new, f"{r.file}:{r.line}")
                                for r in self.source.renames))
        return PlanOptions(renames=renames, compare_extension_versions=self.options.compare_extension_versions,
                           pinned_extensions=frozenset(self.source.pinned_extensions))

    def plan(self) -> Plan:
        key = self.plan_cache_key()
        if key is not None:
            cached = plan_cache_load(self.cache_dir(), key)
            if cached is not None:
                return cached
        actual, desired = self.catalogs()
        steps, warnings = diff_with_warnings(actual, desired, self.plan_options())
        blocks = datablocks.pending(self.source.data_blocks, datablocks.ran_blocks(introspect.document_head(self.last_doc)))
        result = Plan(steps=steps, desired_hash=catalog_hash(desired), actual_hash=catalog_hash(actual),
                      source_hash=self.source.sha256, warnings=warnings, data_blocks=blocks)
        if key is not None:
            plan_cache_store(self.cache_dir(), key, result)
        return result

    def cache_dir(self) -> Path:
        return self.options.cache_dir or default_cache_dir()

    def plan_cache_key(self) -> str | None:
        """The plan is a pure function of the two catalogs and the options: while the target's
        catalog fingerprint and everything else is unchanged, the last plan still holds. None when
        caching is off, or when data blocks make the plan depend on the ledger's rows too."""
        if not self.options.use_cache or self.source.data_blocks or self.shadow is not None:
            return None
        fingerprint = self.runner.query_json(introspect.fingerprint_query())
        basis = json.dumps({
            "target": fingerprint, "source": self.source.sha256, "code": _code_hash(),
            "plan_options": repr(self.plan_options()),
            "options": [self.options.only_schemas, self.options.exclude_schemas,
                        self.options.compare_extension_versions, self.options.create_extensions_anywhere],
        }, sort_keys=True, default=str)
        return hashlib.sha256(basis.encode()).hexdigest()

    def policy(self) -> Policy:
        return Policy(allow=self.options.allow_hazards,
                      drops=self.options.drops | frozenset(self.source.drops),
                      allowed_objects=frozenset(self.source.allowed))

    def check(self, plan: Plan) -> None:
        refused = self.policy().refused(plan.hazards)
        if refused:
            raise HazardRefused(refused)

    # -- execution

    def execute(self, plan: Plan, on_step: Callable[[Step], None] | None = None) -> ApplyResult:
        """Run a plan that the policy allows, then verify the database converged."""
        self.check(plan)
        started = time.monotonic()
        executed: list[Step] = []
        if plan.steps or plan.data_blocks:
            unit_list = units(plan.steps)
            last: list[str] = []

            def progress(line: str) -> None:
                if line.startswith("pgconverge:") and not line.endswith(" done"):
                    last[:] = [line]
                if line.startswith(MARKER + " ") and not line.endswith(" done"):
                    for s in unit_list[int(line.split()[-1])].steps:
                        executed.append(s)
                        if on_step:
                            on_step(s)

            try:
                self.runner.run_script(render_script(plan, self.options.settings), on_line=progress)
            except PsqlError as e:
                raise StepFailed(failed_step(plan, last[0] if last else None), e) from e
        after = self.plan()
        if not after.is_empty:
            raise NotConverged(after)
        return ApplyResult(plan, time.monotonic() - started, executed)


@functools.lru_cache(maxsize=1)
def _code_hash() -> str:
    """The package's own code: a cached plan made by other code is never reused."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
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
        pickle.dump(plan, f, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(cache_dir / f"plan-{key}.pickle")
    prune_cache(cache_dir)


def _source(sql: str | os.PathLike | Sequence[str | os.PathLike] | Source, options: dict[str, Any]) -> Source:
    if isinstance(sql, Source):
        return sql
    # the parsed source is cached next to the desired catalog, and bypassed with it (use_cache=False)
    cache_dir = (options.get("cache_dir") or default_cache_dir()) if options.get("use_cache", True) else None
    return load_source(sql, allow_alter_drop=bool(options.get("permissive_source")), cache_dir=cache_dir)


def plan(target: str, sql: str | os.PathLike | Sequence[str | os.PathLike], **options: Any) -> Plan:
    """Plan the changes that bring `target` (a libpq connection string or URL) to the schema in `sql`.

    `sql` is a .sql file, a folder of them (read in name order) or a list of SQL strings.
    Options: only_schemas, exclude_schemas, allow_hazards, drops, compare_extension_versions,
    cache_dir, use_cache, permissive_source (accept ALTER TABLE ... DROP COLUMN/CONSTRAINT in `sql`),
    create_extensions_anywhere (with only/exclude schemas, still create the extensions `sql` declares).
    """
    runner = LocalRunner(target)
    engine = Engine(runner, _source(sql, options), Options.build(**options))
    result = engine.plan()
    result._engine = engine  # remembered so apply() can check the plan is still current
    return result


def apply(target: str, plan_or_sql: Plan | str | os.PathLike | Sequence[str | os.PathLike], *,
          on_step: Callable[[Step], None] | None = None, **options: Any) -> ApplyResult:
    """Apply a plan (or plan and apply `sql`). Raises HazardRefused before running anything
    when a hazard is not allowed, PlanChanged when the target moved since `plan` was made,
    and NotConverged when a fresh plan is not empty afterwards."""
    if isinstance(plan_or_sql, Plan):
        engine: Engine = getattr(plan_or_sql, "_engine", None)
        if engine is None:
            raise ValueError("this Plan was not made by pgconverge.plan(); pass the SQL instead")
        if options:
            engine = Engine(LocalRunner(target), engine.source, Options.build(**options))
        else:
            engine = Engine(LocalRunner(target), engine.source, engine.options)
        current = engine.plan()
        if current.plan_hash != plan_or_sql.plan_hash:
            raise PlanChanged("the target changed since the plan was made; plan again and review")
    else:
        engine = Engine(LocalRunner(target), _source(plan_or_sql, options), Options.build(**options))
        current = engine.plan()
    return engine.execute(current, on_step)
