"""The proof: a plan is rehearsed before the target is touched, and judged by pg_dump.

A plan is made by our own model of the catalog, so anything the model does not read would
count as equal. The proof does not trust it:

1. the target's ``pg_dump --schema-only`` is restored into a scratch "rehearsal" database on
   the shadow server;
2. the plan runs there with the real executor (the same psql script apply runs; data blocks
   are left out, a schema-only copy has no rows for them);
3. the rehearsal's pg_dump is compared with the shadow's by the oracle (pgconverge.oracle).

Any difference refuses the plan. After a real apply, the target itself is compared the same way.
The rehearsal database is dropped in every case, failure and Ctrl-C included.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from pgconverge import oracle
from pgconverge.errors import PlanError
from pgconverge.exec.runner import LocalRunner, PsqlError, Runner, database_guard
from pgconverge.exec.script import ExecSettings, render_script
from pgconverge.planning.steps import Plan
from pgconverge.quoting import lit, q
from pgconverge.source import LEDGER_SCHEMA

REHEARSAL_PREFIX = "pgconverge_rehearsal_"

PROVED, FAILED, SKIPPED, OFF = "proved", "failed", "skipped", "off"


@dataclass(frozen=True)
class Scope:
    """The managed schemas, as the options give them."""

    only_schemas: tuple[str, ...] = ()
    exclude_schemas: tuple[str, ...] = ()

    def of(self, dump_text: str) -> oracle.Dump:
        return oracle.scoped(oracle.parse_dump(dump_text), self.only_schemas, self.exclude_schemas,
                             never=(LEDGER_SCHEMA,))


@dataclass(frozen=True)
class Proof:
    """What the proof found: `proved` (the rehearsal equals the shadow), `failed` (it does not,
    or the plan failed on the copy), `skipped` (an empty plan), `off` (switched off by a setting)."""

    status: str
    seconds: float = 0.0
    differences: tuple[oracle.Difference, ...] = ()
    error: str | None = None
    # under pgconverge_unmanaged = report: the rehearsal's result with the objects left alone, which
    # the target must equal after the apply (None: the shadow's dump is what it must equal)
    expected: oracle.Dump | None = field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.status != FAILED

    def to_json(self) -> dict:
        return {"status": self.status, "seconds": round(self.seconds, 3),
                "differences": [{"object": d.object, "lines": d.lines()} for d in self.differences],
                **({"error": self.error} if self.error else {})}

    def summary(self) -> str:
        if self.status == PROVED:
            return f"proved on a copy of the target in {self.seconds:.1f} s: the result equals sql/ by pg_dump"
        if self.status == FAILED:
            return self.error or f"{len(self.differences)} object(s) differ from sql/ by pg_dump"
        return {SKIPPED: "not needed: the plan is empty", OFF: "switched off by the settings"}[self.status]


class NotProved(PlanError):
    """The plan does not produce the declared schema: refused before the target is touched."""

    def __init__(self, proof: Proof):
        self.proof = proof
        if proof.error:
            why = proof.error
        else:
            why = ("the plan does not produce the declared schema (pg_dump of a rehearsal differs from sql/); "
                   "the target was not touched:\n" + oracle.report(list(proof.differences)))
        super().__init__(f"{why}\nThis is a limit of pgconverge's planner: change sql/ by hand in smaller steps, "
                         "or report the case.")


def expected_dump(shadow_dump: str, scope: Scope) -> oracle.Dump:
    return scope.of(shadow_dump)


_CREATE_EXTENSION = re.compile(r'^(CREATE EXTENSION IF NOT EXISTS ("(?:[^"]|"")+"|\S+) WITH SCHEMA \S+);$', re.M)


def pin_extension_versions(dump: str, versions: dict[str, str]) -> str:
    """pg_dump leaves an extension's version out: the copy would get the default version, and a
    plan that updates or keeps the target's version would not apply to it as it does to the target."""

    def pin(m: re.Match) -> str:
        raw = m.group(2)
        name = raw[1:-1].replace('""', '"') if raw.startswith('"') else raw
        version = versions.get(name)
        return f"{m.group(1)} VERSION {lit(version)};" if version else m.group(0)

    return _CREATE_EXTENSION.sub(pin, dump)


# pg_restore sessions for the copy: the catalog work of a schema restore is CPU-bound in each
# backend, so a few sessions restore its indexes, constraints and triggers side by side
RESTORE_JOBS = max(2, min(4, os.cpu_count() or 2))


@dataclass
class Snapshot:
    """The target's schema for the copy, taken by pg_dump: a custom-format archive that pg_restore
    restores with several sessions (local client tools), or the plain text (any transport)."""

    archive: Path | None = None
    text: str | None = None

    def discard(self) -> None:
        if self.archive is not None:
            shutil.rmtree(self.archive.parent, ignore_errors=True)
            self.archive = None


def can_restore_in_parallel(target: Runner, server: Runner, extension_versions: dict[str, str],
                            default_versions: dict[str, str]) -> bool:
    """pg_restore can make the copy when both databases are reached by local client tools and no
    extension needs its version pinned (an archive's statements cannot be edited, the plain text can)."""
    return (isinstance(target, LocalRunner) and isinstance(server, LocalRunner)
            and all(default_versions.get(name) == v for name, v in extension_versions.items()))


def snapshot(target: Runner, archive: bool) -> Snapshot:
    """The target's schema, without the ledger (the copy is judged on the managed schemas only)."""
    if not archive:
        return Snapshot(text=target.dump_schema(exclude_schemas=(LEDGER_SCHEMA,)))
    where = Path(tempfile.mkdtemp(prefix="pgconverge-proof-"))  # 0700: the schema is nobody else's business
    path = where / "target.dump"
    try:
        target.dump_schema(exclude_schemas=(LEDGER_SCHEMA,), archive=path)
    except BaseException:
        shutil.rmtree(where, ignore_errors=True)
        raise
    return Snapshot(archive=path)


def _restore(copy: Runner, name: str, snap: Snapshot, extension_versions: dict[str, str]) -> None:
    if snap.archive is None:
        copy.run_script(database_guard(name) + pin_extension_versions(snap.text or "", extension_versions))
        return
    # pg_restore runs no guard statement of ours: ask the same connection settings where they lead first
    where = copy.query_text("SELECT current_database()").strip()
    if where != name:
        raise PsqlError(f"the copy's connection reached database {where!r}, not the scratch {name!r}")
    copy.restore_archive(snap.archive, jobs=RESTORE_JOBS)


def rehearse(plan: Plan, target: Runner, server: Runner, expected: oracle.Dump, scope: Scope,
             settings: ExecSettings | None = None, extension_versions: dict[str, str] | None = None,
             snap: Snapshot | None = None, forget: list | None = None) -> Proof:
    """Run `plan` on a schema-only copy of `target` made on `server`, and compare it with `expected`.
    `extension_versions` are the target's (pg_dump does not record them). `snap` is the target's
    schema when it was dumped already (alongside the catalog read); it is discarded here.

    `forget` (under pgconverge_unmanaged = report) drops the objects the plan leaves alone, once the
    plan ran: the rehearsal is then compared with sql/ alone, so it accounts for exactly those objects.
    Its result before they were forgotten is what the target must equal after the apply."""
    extension_versions = extension_versions or {}
    if not plan.steps:
        if snap is not None:
            snap.discard()
        return Proof(SKIPPED)
    started = time.monotonic()
    name = REHEARSAL_PREFIX + secrets.token_hex(6)
    try:
        try:
            # scratch: no need to wait for each commit's WAL flush, in any of the restore's sessions
            server.run_script(f"CREATE DATABASE {q(name)} TEMPLATE template0;\n"
                              f"ALTER DATABASE {q(name)} SET synchronous_commit = off;\n")
        except PsqlError as e:
            return Proof(FAILED, time.monotonic() - started,
                         error=f"the proof could not create its rehearsal database on {server.name}: {e.message}")
        copy = server.for_database(name)
        try:
            snap = snap or snapshot(target, archive=False)
            _restore(copy, name, snap, extension_versions)
        except PsqlError as e:
            return Proof(FAILED, time.monotonic() - started,
                         error=f"the proof could not copy the schema of {target.name}: {e.message}")
        try:
            copy.run_script(database_guard(name) + render_script(replace(plan, data_blocks=[]), settings,
                                                                 take_lock=False, scratch=True))
        except PsqlError as e:
            return Proof(FAILED, time.monotonic() - started,
                         error=f"the plan fails on a schema-only copy of the target, so it was not run on the "
                               f"target: {e.message}" + (f"\n{e.detail}" if e.detail else ""))
        got = scope.of(copy.dump_schema(exclude_schemas=(LEDGER_SCHEMA,)))
        kept = None
        if forget:
            kept = got
            try:
                copy.run_script(database_guard(name) + render_script(Plan(steps=list(forget)), settings,
                                                                     take_lock=False, scratch=True))
            except PsqlError as e:
                return Proof(FAILED, time.monotonic() - started,
                             error=f"the proof could not set apart the objects sql/ does not declare on its copy "
                                   f"of the target (pgconverge_unmanaged = report): {e.message}")
            got = scope.of(copy.dump_schema(exclude_schemas=(LEDGER_SCHEMA,)))
        differences = oracle.compare(expected, got)
        return Proof(FAILED if differences else PROVED, time.monotonic() - started, tuple(differences),
                     expected=kept)
    finally:
        if snap is not None:
            snap.discard()
        server.run_script(f"DROP DATABASE IF EXISTS {q(name)} WITH (FORCE);\n")


def verify(target: Runner, expected: oracle.Dump, scope: Scope) -> list[oracle.Difference]:
    """After a real apply: the objects where the target differs from sql/ by pg_dump."""
    return oracle.compare(expected, scope.of(target.dump_schema(exclude_schemas=(LEDGER_SCHEMA,))))
