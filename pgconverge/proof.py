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
import subprocess
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from pgconverge import oracle
from pgconverge.errors import PlanError
from pgconverge.exec import bases
from pgconverge.exec import scratch as scratchdb
from pgconverge.exec.runner import LocalRunner, PsqlError, Runner, database_guard, find_tool
from pgconverge.exec.script import ExecSettings, render_script, units
from pgconverge.planning.steps import Plan
from pgconverge.quoting import lit, q
from pgconverge.source import LEDGER_SCHEMA

REHEARSAL_PREFIX = "pgconverge_rehearsal_"

PROVED, FAILED, SKIPPED, OFF = "proved", "failed", "skipped", "off"
RESTORED, TEMPLATE = "restored", "template"


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
    # who ran sql/ in the rehearsal and in the shadow (exec.scratch: scratch-role, set-role, deploy-role)
    isolation: str = ""
    isolation_reason: str = ""
    shadow_isolation: str = ""
    shadow_isolation_reason: str = ""
    # how the copy was made: "restored" from the target's dump, or "template" (a copy of a base,
    # exec.bases, restored from the same dump by an earlier proof)
    copy: str = ""

    @property
    def ok(self) -> bool:
        return self.status != FAILED

    def to_json(self) -> dict:
        return {"status": self.status, "seconds": round(self.seconds, 3),
                "differences": [{"object": d.object, "lines": d.lines()} for d in self.differences],
                **({"error": self.error} if self.error else {}),
                "isolation": self.isolation or None, "isolation_reason": self.isolation_reason or None,
                "shadow_isolation": self.shadow_isolation or None,
                "shadow_isolation_reason": self.shadow_isolation_reason or None, "copy": self.copy or None}

    def isolation_summary(self) -> str:
        """Who ran sql/ in the scratch databases, one line."""
        parts = [f"{what} {iso}" + (f" ({why})" if why and iso != scratchdb.SCRATCH_ROLE else "")
                 for what, iso, why in (("shadow", self.shadow_isolation, self.shadow_isolation_reason),
                                        ("rehearsal", self.isolation, self.isolation_reason)) if iso]
        return "isolation: " + "; ".join(parts) if parts else ""

    def summary(self) -> str:
        iso = self.isolation_summary()
        tail = f"; {iso}" if iso else ""
        if self.status == PROVED:
            how = " (copied from a base restored earlier)" if self.copy == TEMPLATE else ""
            return (f"proved on a copy of the target{how} in {self.seconds:.1f} s: the result equals sql/ by pg_dump"
                    + tail)
        if self.status == FAILED:
            return (self.error or f"{len(self.differences)} object(s) differ from sql/ by pg_dump") + tail
        return {SKIPPED: "not needed: the plan is empty", OFF: "switched off by the settings"}[self.status] + tail


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
                            default_versions: dict[str, str], needs_edit: bool = False) -> bool:
    """pg_restore can make the copy when both databases are reached by local client tools and no
    extension needs its version pinned (an archive's statements cannot be edited, the plain text can),
    nor anything else edited (`needs_edit`: default privileges of the deploy role, a schema that the
    deploy role creates first for an extension only it may create)."""
    return (isinstance(target, LocalRunner) and isinstance(server, LocalRunner) and not needs_edit
            and all(default_versions.get(name) == v for name, v in extension_versions.items()))


def snapshot(target: Runner, archive: bool, use_bases: bool = False) -> Snapshot:
    """The target's schema, without the ledger (the copy is judged on the managed schemas only).
    Where rehearsal bases are used (`use_bases`), always the text: a base's key is the text's."""
    if not archive or use_bases:
        return Snapshot(text=target.dump_schema(exclude_schemas=(LEDGER_SCHEMA,)))
    where = Path(tempfile.mkdtemp(prefix="pgconverge-proof-"))  # 0700: the schema is nobody else's business
    path = where / "target.dump"
    try:
        target.dump_schema(exclude_schemas=(LEDGER_SCHEMA,), archive=path)
    except BaseException:
        shutil.rmtree(where, ignore_errors=True)
        raise
    return Snapshot(archive=path)


def _restore(box: scratchdb.Scratch, snap: Snapshot, extension_versions: dict[str, str],
             extensions: list[tuple[str, str, str | None]]) -> None:
    copy, name = box.runner, box.name
    made, premade = box.precreate_extensions(extensions)
    text = snap.text
    if snap.archive is not None and box.owner != box.deploy_user and (premade or _has_default_privileges(snap.archive)):
        text = archive_text(snap.archive)  # the statements need the edits below: restore the archive's text
    if text is not None:
        text = box.for_scratch(pin_extension_versions(text, extension_versions))
        for schema in made:  # made by the deploy role for an extension: the dump's CREATE SCHEMA must pass
            text = re.sub(rf"^CREATE SCHEMA {scratchdb.ident_pattern(schema)};$", f"CREATE SCHEMA IF NOT EXISTS {q(schema)};",
                          text, flags=re.M)
        for ext in premade:  # its script set its comment; only its owner, the deploy role, may set it again
            text = re.sub(rf"^COMMENT ON EXTENSION {scratchdb.ident_pattern(ext)} IS '(?:[^']|'')*';$", "", text,
                          flags=re.M | re.S)
        copy.run_script(box.script(text))
        return
    assert snap.archive is not None
    # pg_restore runs no guard statement of ours: ask the same connection settings where they lead first
    where = copy.query_text("SELECT current_database()").strip()
    if where != name:
        raise PsqlError(f"the copy's connection reached database {where!r}, not the scratch {name!r}")
    copy.restore_archive(snap.archive, jobs=RESTORE_JOBS,
                         role=box.owner if box.isolation == scratchdb.SET_ROLE else None)


def _pg_restore(*args: str) -> str:
    done = subprocess.run([find_tool("pg_restore"), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise PsqlError(f"pg_restore {' '.join(args[:-1])} failed: {done.stderr.strip() or 'no message'}")
    return done.stdout


def archive_text(archive: Path) -> str:
    """The statements of a custom-format archive, as pg_restore would run them (no connection)."""
    return _pg_restore("--no-owner", "--file=-", str(archive))


def _has_default_privileges(archive: Path) -> bool:
    return any(" DEFAULT ACL " in line for line in _pg_restore("--list", str(archive)).splitlines())


def _by_whom(plan: Plan, probe: scratchdb.Probe | None) -> list[tuple[bool, list]]:
    """The plan's steps in runs of whole transaction units: (by the deploy role?, steps). A unit that
    creates, changes or drops an extension only a superuser may create runs as the deploy role."""
    out: list[tuple[bool, list]] = []
    for unit in units(plan.steps):
        admin = probe is not None and any(
            s.object.startswith("extension:") and probe.needs_superuser(s.object.split(":", 1)[1])
            for s in unit.steps)
        if out and out[-1][0] == admin:
            out[-1][1].extend(unit.steps)
        else:
            out.append((admin, list(unit.steps)))
    return out


def rehearse(plan: Plan, target: Runner, server: Runner, expected: oracle.Dump, scope: Scope,
             settings: ExecSettings | None = None, extension_versions: dict[str, str] | None = None,
             snap: Snapshot | None = None, extensions: list[tuple[str, str, str | None]] | None = None,
             scratch_role: str | None = None, forget: list | None = None, use_bases: bool = False,
             probe: scratchdb.Probe | None = None) -> Proof:
    """Run `plan` on a schema-only copy of `target` made on `server`, and compare it with `expected`.
    `extension_versions` are the target's (pg_dump does not record them); `extensions` its (name,
    schema, version). `snap` is the target's schema when it was dumped already (alongside the
    catalog read); it is discarded here. The copy is restored and the plan run by the rehearsal
    database's own role (exec.scratch); `scratch_role` is the fallback role to SET ROLE to.

    `use_bases`: the copy is a template copy of a base restored from the same dump by an earlier
    proof, where there is one (exec.bases), and this restore is kept as one where there is not. A
    proof that fails on a template copy is run again on a fresh restore before it counts.

    `forget` (under pgconverge_unmanaged = report) drops the objects the plan leaves alone, once the
    plan ran: the rehearsal is then compared with sql/ alone, so it accounts for exactly those objects.
    Its result before they were forgotten is what the target must equal after the apply."""
    extension_versions = extension_versions or {}
    if not plan.steps:
        if snap is not None:
            snap.discard()
        return Proof(SKIPPED)
    started = time.monotonic()
    try:
        key = None
        if use_bases:
            snap = snap or snapshot(target, archive=False, use_bases=True)
            key, probe = _base_key(server, snap, extension_versions, extensions or [], probe)
        base = bases.find(server, key) if key else None
        run = (plan, target, server, expected, scope, settings, extension_versions, extensions or [], scratch_role,
               forget, probe, snap)
        done = _rehearse(*run, base=base, keep_as=None if base else key)
        if base is not None and done.status == FAILED:
            bases.discard(server, base.name, base.role)  # judged on a fresh restore, kept anew if it restores
            done = _rehearse(*run, base=None, keep_as=key)
        return replace(done, seconds=time.monotonic() - started)
    finally:
        if snap is not None:
            snap.discard()


def _base_key(server: Runner, snap: Snapshot, extension_versions: dict[str, str],
              extensions: list[tuple[str, str, str | None]],
              asked: scratchdb.Probe | None = None) -> tuple[str | None, scratchdb.Probe | None]:
    """The base key of this copy, or None where a base cannot stand for a restore (base_key)."""
    text = snap.text if snap.text is not None else archive_text(snap.archive)
    return base_key(server, text, snap.archive is not None, extension_versions, extensions, asked)


def base_key(server: Runner, text: str, archive: bool, extension_versions: dict[str, str],
             extensions: list[tuple[str, str, str | None]],
             asked: scratchdb.Probe | None = None) -> tuple[str | None, scratchdb.Probe | None]:
    """The base key of a copy of the schema `text` (a target's dump, as snapshot() takes it), or None
    where a base cannot stand for a restore: the copy would not be owned by a role of its own, or it
    has default privileges (REASSIGN OWNED leaves them with the base's role), or it grants to roles
    (names_roles). `extension_versions`: the managed extensions' versions, which the restore pins;
    `extensions`: every extension of the database (name, schema, version)."""
    try:
        p = asked or scratchdb.probe(server)
    except PsqlError:
        return None, None
    if not (p.superuser or p.createrole):
        return None, p
    if re.search(r"^ALTER DEFAULT PRIVILEGES ", text, flags=re.M) or names_roles(text, p.user):
        return None, p
    return bases.key(text, archive, p.user, p.superuser, sorted(p.trusted),
                     sorted(extension_versions.items()), extensions), p


_GRANTEES = re.compile(r"^(?:GRANT|REVOKE) (.*?) ON .* (?:TO|FROM) (.+?)(?: WITH GRANT OPTION)?;$", re.M)
_POLICY_ROLES = re.compile(r"^CREATE POLICY .*? TO ((?:\"(?:[^\"]|\"\")+\"|[^ ;]+)(?:, (?:\"(?:[^\"]|\"\")+\"|[^ ;]+))*)", re.M)


def names_roles(dump: str, deploy_user: str) -> bool:
    """Whether `dump` grants to (or names in a policy) a role other than PUBLIC and the deploy role,
    or grants on a whole object to the deploy role. A base holding a grant to another role would
    keep that role from being dropped (DROP ROLE counts the grants in every database); a grant on a
    whole object to the deploy role reads against its owner, which is the base's role on a copy and
    the deploy role on the target. Such a schema gets no base. (A column's grants do not depend on
    who owns the table.)"""
    deploy = scratchdb.dump_ident(deploy_user)
    for m in _GRANTEES.finditer(dump):
        whole = "(" not in m.group(1)
        if any(who.strip() != "PUBLIC" and (who.strip() != deploy or whole) for who in m.group(2).split(",")):
            return True
    for m in _POLICY_ROLES.finditer(dump):
        if any(who.strip() not in ("PUBLIC", deploy) for who in m.group(1).split(",")):
            return True
    return False


def _rehearse(plan: Plan, target: Runner, server: Runner, expected: oracle.Dump, scope: Scope,
              settings: ExecSettings | None, extension_versions: dict[str, str],
              extensions: list[tuple[str, str, str | None]], scratch_role: str | None, forget: list | None,
              probe: scratchdb.Probe | None, snap: Snapshot | None, base: bases.Base | None,
              keep_as: str | None) -> Proof:
    """One rehearsal: the copy made (from `base`, or restored and, with `keep_as`, kept as a base),
    the plan run, the copy judged, the copy dropped."""
    started = time.monotonic()
    name = REHEARSAL_PREFIX + secrets.token_hex(6)
    box: scratchdb.Scratch | None = None
    staged: str | None = None
    how = TEMPLATE if base else RESTORED
    try:
        try:
            # scratch: no need to wait for each commit's WAL flush, in any of the restore's sessions
            box = scratchdb.create(server, name, scratch_role,
                                   settings=f"ALTER DATABASE {q(name)} SET synchronous_commit = off;\n",
                                   template=base.name if base else "template0", p=probe,
                                   holder=base.role if base else None)
        except (PsqlError, scratchdb.ScratchRoleError) as e:
            return Proof(FAILED, time.monotonic() - started, copy=how,
                         error=f"the proof could not create its rehearsal database on {server.name}: "
                               f"{getattr(e, 'message', str(e))}")
        iso = dict(isolation=box.isolation, isolation_reason=box.reason, copy=how)
        try:
            if base is None:
                snap = snap or snapshot(target, archive=False)
                _restore(box, snap, extension_versions, extensions)
        except PsqlError as e:
            return Proof(FAILED, time.monotonic() - started, **iso,
                         error=f"the proof could not copy the schema of {target.name}: {e.message}")
        if keep_as and box.role:
            try:
                staged = bases.stage(server, name)
            except PsqlError:
                staged = None  # no base this time; the proof itself goes on
        split = box.isolation != scratchdb.DEPLOY_ROLE
        try:
            for admin, steps in _by_whom(plan, box.probe if split else None):
                if not admin:  # default privileges the deploy role sets are the scratch role's here
                    steps = [replace(s, sql=box.for_scratch(s.sql), scratch=tuple(box.for_scratch(t) for t in s.scratch))
                             for s in steps]
                script = render_script(replace(plan, steps=steps, data_blocks=[]), settings, take_lock=False,
                                       scratch=True)
                if admin:
                    box.admin.run_script(database_guard(name) + script)
                else:
                    box.runner.run_script(box.script(script))
        except PsqlError as e:
            return Proof(FAILED, time.monotonic() - started, **iso,
                         error=f"the plan fails on a schema-only copy of the target, so it was not run on the "
                               f"target: {e.message}" + (f"\n{e.detail}" if e.detail else ""))
        box.hand_back()
        got = scope.of(box.as_deploy(box.admin.dump_schema(exclude_schemas=(LEDGER_SCHEMA,))))
        kept = None
        if forget:
            kept = got
            try:
                box.admin.run_script(database_guard(name) + render_script(Plan(steps=list(forget)), settings,
                                                                          take_lock=False, scratch=True))
            except PsqlError as e:
                return Proof(FAILED, time.monotonic() - started, **iso,
                             error=f"the proof could not set apart the objects sql/ does not declare on its copy "
                                   f"of the target (pgconverge_unmanaged = report): {e.message}")
            got = scope.of(box.as_deploy(box.admin.dump_schema(exclude_schemas=(LEDGER_SCHEMA,))))
        differences = oracle.compare(expected, got)
        return Proof(FAILED if differences else PROVED, time.monotonic() - started, tuple(differences),
                     expected=kept, **iso)
    finally:
        if box is not None:
            role = box.role
            if staged is not None:
                box.role = None  # it owns the staged base's objects: kept, as the base's role
            try:
                box.drop()
            finally:
                if staged is not None and role is not None:
                    bases.publish(server, staged, role, keep_as)


def verify(target: Runner, expected: oracle.Dump, scope: Scope) -> list[oracle.Difference]:
    """After a real apply: the objects where the target differs from sql/ by pg_dump."""
    return oracle.compare(expected, scope.of(target.dump_schema(exclude_schemas=(LEDGER_SCHEMA,))))
