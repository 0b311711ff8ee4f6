"""Scratch databases (the shadow, the rehearsal) run with rights on nothing but themselves.

sql/ is loaded into the shadow and the plan is rehearsed on a copy of the target, on the target's
own server. Whatever code sql/ holds (a function a view, a default, an index or a CHECK calls) runs
there with the rights of the session's user. So each scratch database gets a role of its own,
``pgconverge_scratch_<token>``: LOGIN with a random password (SCRAM verifier only, never the
password itself, reaches the server), NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS,
member of nothing, the owner of the scratch database, which PUBLIC may not connect to. The load and
the rehearsal log in as that role: a role it cannot leave.

Isolation, strongest first (named in the proof's output and ``--json``):

- ``scratch-role``: the scratch role logs in (its password travels as every password does:
  ``exec.secrets``);
- ``set-role``: the deploy role connects and ``SET ROLE``s to the scratch role (when the server
  refuses the scratch role's login) or to a configured powerless role (``scratch_role``, when the
  deploy role cannot create roles). Code that runs ``RESET ROLE`` gets the deploy role back;
- ``deploy-role``: neither is possible; the deploy role's rights, as before.

Extensions only a superuser may create are created by the deploy role in the scratch database
(their scripts are the server's own, trusted as such), everything else by the scratch role.
The role goes with its database; both are swept at the next start when their run died.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import re
import secrets
import socket
from dataclasses import dataclass, field

from pgconverge.exec.runner import PsqlError, Runner, database_guard
from pgconverge.exec.secrets import pid_alive
from pgconverge.quoting import lit, q

ROLE_PREFIX = "pgconverge_scratch_"
SCRATCH_ROLE, SET_ROLE, DEPLOY_ROLE = "scratch-role", "set-role", "deploy-role"
# the prefixes of every scratch database of ours, swept with their roles
DATABASE_PREFIXES = ("pgconverge_shadow_", "pgconverge_rehearsal_")
# a run lasts less than this; a role's password expires then, and the sweep drops what is older
LIFETIME = dt.timedelta(days=1)

_PROBE = """SELECT json_build_object(
  'user', current_user,
  'superuser', r.rolsuper,
  'createrole', r.rolcreaterole,
  'trusted', (SELECT coalesce(json_agg(DISTINCT name), '[]') FROM pg_available_extension_versions WHERE trusted))
FROM pg_roles r WHERE r.rolname = current_user"""


class ScratchRoleError(ValueError):
    """A configured scratch role that would not isolate anything."""


@dataclass(frozen=True)
class Probe:
    """What the deploy role may do on the scratch server."""

    user: str
    superuser: bool
    createrole: bool
    trusted: frozenset[str] = frozenset()  # extensions a database owner may create without superuser

    def expected(self, configured: str | None) -> str:
        """The isolation a scratch database will most likely get (the cache key's part: the login
        may still be refused, which only costs a rebuild under another key)."""
        if self.superuser or self.createrole:
            return SCRATCH_ROLE
        return SET_ROLE if configured else DEPLOY_ROLE

    def needs_superuser(self, extension: str) -> bool:
        return extension not in self.trusted


def probe(server: Runner) -> Probe:
    doc = server.query_json(_PROBE) or {}
    return Probe(doc.get("user", ""), bool(doc.get("superuser")), bool(doc.get("createrole")),
                 frozenset(doc.get("trusted") or ()))


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores (RFC 5802/7677): the server never sees the
    password itself, so no statement log can hold it."""
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()

    def b64(b: bytes) -> str:
        return base64.b64encode(b).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(hashlib.sha256(client_key).digest())}:{b64(server_key)}"


def dump_ident(name: str) -> str:
    """An identifier as pg_dump prints it: bare when it can be (keywords aside)."""
    return name if re.fullmatch(r"[a-z_][a-z0-9_$]*", name) else q(name)


def ident_pattern(name: str) -> str:
    """A regular expression matching `name` as an identifier, bare or quoted."""
    return f"(?:{re.escape(q(name))}|{re.escape(name)}\\b)"


def _marker() -> str:
    """Who made a scratch database: the sweep drops those of dead processes of this machine."""
    return json.dumps({"pgconverge": "scratch", "machine": socket.gethostname(), "pid": os.getpid()})


@dataclass
class Scratch:
    """One scratch database and who works in it.

    ``runner`` loads and rehearses (the scratch role, or the deploy role with ``prelude``);
    ``admin`` is the deploy role in the same database, for the extensions only a superuser creates."""

    name: str
    isolation: str
    reason: str
    server: Runner  # the deploy role where the database was created (and is dropped)
    runner: Runner
    admin: Runner
    owner: str  # the role that owns the database and what the load creates
    deploy_user: str
    probe: Probe
    role: str | None = None  # a role we created, dropped with the database
    dropped: bool = field(default=False)
    # a rehearsal base's role (exec.bases) whose objects a template copy holds: `role` is its member,
    # so the plan may change them without moving 1,000 owners there and back; both names stand for
    # the deploy role in what is compared
    holder: str | None = None
    # whether hand_back moved our role's objects to the deploy role (if not, they are still its own)
    handed_back: bool = field(default=False)

    @property
    def prelude(self) -> str:
        """What the runner's scripts start with, after the database guard."""
        return f"SET ROLE {q(self.owner)};\n" if self.isolation == SET_ROLE else ""

    def script(self, body: str) -> str:
        """A script for `runner`: the guard, the role, then `body`."""
        return database_guard(self.name) + self.prelude + body

    def as_deploy(self, text: str) -> str:
        """`text` (a dump, a catalog document) with our own roles' names (`role`, `holder`) put back
        as the deploy role's, so that what they own compares with what the deploy role owns.
        Only roles we created: their names are random tokens nobody else uses."""
        return self._swap_ours(text, dump_ident(self.deploy_user))

    def as_deploy_json(self, text: str) -> str:
        return self._swap_ours(text, json.dumps(self.deploy_user)[1:-1])

    def _swap_ours(self, text: str, new: str) -> str:
        for role in (self.role, self.holder):
            if role:
                text = self._swap(text, role, new)
        return text

    def for_scratch(self, dump: str) -> str:
        """The target's dump (or a plan step), made runnable by the scratch role: default privileges
        set for the deploy role become the scratch role's."""
        if self.owner == self.deploy_user:
            return dump
        return re.sub(rf"(ALTER DEFAULT PRIVILEGES FOR ROLE ){ident_pattern(self.deploy_user)}",
                      lambda m: m.group(1) + dump_ident(self.owner), dump)

    @staticmethod
    def _swap(text: str, role: str, new: str) -> str:
        if role not in text:  # most often, after hand_back: the regular expression would scan megabytes for nothing
            return text
        return re.sub(rf"\b{re.escape(role)}\b", lambda _: new, text)

    def hand_back(self) -> None:
        """Once sql/ has run: what our role owns in the scratch database becomes the deploy role's, as
        it was before scratch roles, so that ownership-bound entries (a GRANT to the deploy role, an
        owner's ACL) read the same as on the target. Only a role we created: it owns nothing else
        (REASSIGN OWNED also moves the databases a role owns). Default privileges stay (as_deploy).

        An owner shows in a dump only by its OWNER TO lines, which as_deploy puts back, and in an ACL
        (an owner's own entry, the grantor of every entry): where nothing our role owns has an ACL,
        the hand-back would change nothing that is compared, and it is skipped (a second at 1,000
        tables)."""
        if self.role and self.admin.query_json(database_guard(self.name) + _HOLDS_ACLS % lit(self.role)):
            reassign(self.admin, self.name, self.role, None)
            self.handed_back = True

    def precreate_extensions(self, extensions: list[tuple[str, str, str | None]]) -> tuple[list[str], list[str]]:
        """Create, as the deploy role, the extensions (name, schema, version) the scratch role could
        not create, with their schemas (owned by the scratch role); returns the schemas and the
        extensions made here."""
        out, made, names = [], [], []
        for name, schema, version in extensions:
            if not self.probe.needs_superuser(name) or self.isolation == DEPLOY_ROLE:
                continue
            if schema != "public":
                out.append(f"CREATE SCHEMA IF NOT EXISTS {q(schema)} AUTHORIZATION {q(self.owner)};\n")
                made.append(schema)
            out.append(f"CREATE EXTENSION IF NOT EXISTS {q(name)} WITH SCHEMA {q(schema)}"
                       + (f" VERSION {lit(version)}" if version else "") + ";\n")
            names.append(name)
        if out:
            self.admin.run_script(database_guard(self.name) + "".join(out))
        return made, names

    def drop(self) -> None:
        if self.dropped:
            return
        self.dropped = True
        script = f"DROP DATABASE IF EXISTS {q(self.name)} WITH (FORCE);\n"
        if self.role:
            script += f"DROP ROLE IF EXISTS {q(self.role)};\n"
        self.server.run_script(script)


# whether a role owns anything with an ACL of its own (NULL: the owner's default rights, which name nobody)
_HOLDS_ACLS = """WITH r AS (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = %s)
SELECT to_json(EXISTS (SELECT FROM pg_catalog.pg_class WHERE relacl IS NOT NULL AND relowner = (TABLE r))
  OR EXISTS (SELECT FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
              WHERE a.attacl IS NOT NULL AND c.relowner = (TABLE r))
  OR EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspacl IS NOT NULL AND nspowner = (TABLE r))
  OR EXISTS (SELECT FROM pg_catalog.pg_proc WHERE proacl IS NOT NULL AND proowner = (TABLE r))
  OR EXISTS (SELECT FROM pg_catalog.pg_type WHERE typacl IS NOT NULL AND typowner = (TABLE r))
  OR EXISTS (SELECT FROM pg_catalog.pg_language WHERE lanacl IS NOT NULL AND lanowner = (TABLE r))
  OR EXISTS (SELECT FROM pg_catalog.pg_largeobject_metadata WHERE lomacl IS NOT NULL AND lomowner = (TABLE r))
  OR EXISTS (SELECT FROM pg_catalog.pg_foreign_data_wrapper WHERE fdwacl IS NOT NULL AND fdwowner = (TABLE r))
  OR EXISTS (SELECT FROM pg_catalog.pg_foreign_server WHERE srvacl IS NOT NULL AND srvowner = (TABLE r)))"""
_OWNED_RELATIONS = """SELECT coalesce(json_agg(json_build_array(n.nspname, c.relname) ORDER BY c.oid), '[]')
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = %s) AND c.relkind IN ('r', 'p', 'v', 'm')"""
# ALTER TABLE ... OWNER TO locks a table with its indexes, sequences and types: a few hundred per
# transaction stay well inside the smallest lock table (max_locks_per_transaction 64 x connections)
RELATIONS_PER_TRANSACTION = 200


def reassign(admin: Runner, database: str, old: str, new: str | None) -> None:
    """REASSIGN OWNED BY `old` TO `new` (None: CURRENT_USER) in `database`, its tables and views first,
    a few hundred per transaction: one REASSIGN takes a lock on every object it moves, and overflows
    the server's lock table ("out of shared memory") at a few thousand tables. What is left (schemas,
    types, functions, sequences of their own) is moved by the REASSIGN."""
    relations = admin.query_json(_OWNED_RELATIONS % lit(old)) or []
    to = q(new) if new else "CURRENT_USER"
    script = [database_guard(database)]
    for i in range(0, len(relations), RELATIONS_PER_TRANSACTION):
        script.append("BEGIN;\n" + "".join(f"ALTER TABLE {q(schema, name)} OWNER TO {to};\n"
                                          for schema, name in relations[i:i + RELATIONS_PER_TRANSACTION])
                      + "COMMIT;\n")
    script.append(f"REASSIGN OWNED BY {q(old)} TO {to};\n")
    admin.run_script("".join(script))


def create(server: Runner, name: str, configured: str | None = None, settings: str = "",
           template: str = "template0", p: Probe | None = None, holder: str | None = None) -> Scratch:
    """Create scratch database `name` on `server` (the deploy role), owned by a role of its own where
    the deploy role may create one. `configured`: a role to SET ROLE to when it may not.
    `settings`: statements run on the new database by the deploy role (ALTER DATABASE ... SET).
    `template`: the database to copy (a rehearsal base, exec.bases, with `holder`).
    `p`: the server's probe, when the caller has it. `holder`: the role that owns the template's
    objects (a base's), which our role is made a member of (Scratch.holder); only with a role of ours."""
    sweep(server)
    p = p or probe(server)
    until = (dt.datetime.now(dt.timezone.utc) + LIFETIME).strftime("%Y-%m-%d %H:%M:%S+00")
    marker = _marker()
    db = q(name)
    common = (f"REVOKE ALL ON DATABASE {db} FROM PUBLIC;\n"
              f"COMMENT ON DATABASE {db} IS {lit(marker)};\n" + settings)
    if p.superuser or p.createrole:
        role = ROLE_PREFIX + secrets.token_hex(6)
        password = secrets.token_hex(24)
        created = False
        try:
            server.run_script(
                f"CREATE ROLE {q(role)} LOGIN PASSWORD {lit(scram_verifier(password))} NOSUPERUSER NOCREATEDB "
                f"NOCREATEROLE NOREPLICATION NOBYPASSRLS VALID UNTIL {lit(until)};\n"
                f"COMMENT ON ROLE {q(role)} IS {lit(marker)};\n"
                # CREATE DATABASE ... OWNER needs a non-superuser creator to be a member of the owner
                + ("" if p.superuser else f"GRANT {q(role)} TO CURRENT_USER;\n")
                + (f"GRANT {q(holder)} TO {q(role)};\n" if holder else ""))
            created = True
            server.run_script(f"CREATE DATABASE {db} OWNER {q(role)} TEMPLATE {q(template)};\n" + common)
        except PsqlError:
            server.run_script(f"DROP DATABASE IF EXISTS {db} WITH (FORCE);\n"
                              + (f"DROP ROLE IF EXISTS {q(role)};\n" if created else ""))
            raise
        admin = server.for_database(name)
        scratch = Scratch(name, SCRATCH_ROLE, f"sql/ runs as {role}, a role that owns only {name}",
                          server, admin.with_login(role, password), admin, role, p.user, p, role, holder=holder)
        try:
            who = scratch.runner.query_text(database_guard(name) + "SELECT current_user").strip()
            if who != role:
                raise PsqlError(f"logged in as {who!r}, not {role!r}")
        except PsqlError as e:
            scratch.isolation, scratch.runner = SET_ROLE, admin
            scratch.reason = (f"the server refused the login of {role} ({e.message.splitlines()[0]}): sql/ runs "
                              f"as the deploy role {p.user} after SET ROLE {role}, which RESET ROLE undoes")
        except BaseException:
            scratch.drop()
            raise
        return scratch
    if configured:
        check_configured(server, configured)
        server.run_script(f"CREATE DATABASE {db} OWNER {q(configured)} TEMPLATE {q(template)};\n" + common)
        admin = server.for_database(name)
        return Scratch(name, SET_ROLE, f"{p.user} may not create roles (no CREATEROLE): sql/ runs after SET ROLE "
                       f"{configured} (the scratch_role setting), which RESET ROLE undoes", server, admin, admin,
                       configured, p.user, p)
    server.run_script(f"CREATE DATABASE {db} TEMPLATE {q(template)};\n" + common)
    admin = server.for_database(name)
    return Scratch(name, DEPLOY_ROLE, f"{p.user} may not create roles (no CREATEROLE) and no scratch_role is set: "
                   f"sql/ runs with the rights of {p.user}", server, admin, admin, p.user, p.user, p)


_CONFIGURED = """SELECT json_build_object('exists', r.oid IS NOT NULL,
  'member', r.oid IS NOT NULL AND pg_has_role(current_user, r.oid, 'MEMBER'),
  'powers', CASE WHEN r.oid IS NULL THEN '[]'::json ELSE json_strip_nulls(json_build_array(
      CASE WHEN r.rolsuper THEN 'SUPERUSER' END, CASE WHEN r.rolcreaterole THEN 'CREATEROLE' END,
      CASE WHEN r.rolcreatedb THEN 'CREATEDB' END, CASE WHEN r.rolreplication THEN 'REPLICATION' END,
      CASE WHEN r.rolbypassrls THEN 'BYPASSRLS' END)) END,
  'groups', (SELECT coalesce(json_agg(g.rolname), '[]') FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
             WHERE m.member = r.oid))
FROM (SELECT %s::text AS name) n LEFT JOIN pg_roles r ON r.rolname = n.name"""


def check_configured(server: Runner, role: str) -> None:
    """A configured scratch role must be one the deploy role can SET ROLE to, with no power."""
    doc = server.query_json(_CONFIGURED % lit(role)) or {}
    where = "the scratch_role setting (pgconverge_scratch_role, --scratch-role, scratch_role=)"
    if not doc.get("exists"):
        raise ScratchRoleError(f"{where}: role {role} does not exist on {server.name}")
    if not doc.get("member"):
        raise ScratchRoleError(f"{where}: the deploy role is not a member of {role}, so it cannot SET ROLE to it: "
                               f"GRANT {role} TO <deploy role>")
    powers = [x for x in doc.get("powers") or [] if x]
    if powers or doc.get("groups"):
        what = ", ".join(powers + [f"member of {g}" for g in doc.get("groups") or []])
        raise ScratchRoleError(f"{where}: role {role} has rights outside a scratch database ({what}); give it none")


_STALE = f"""SELECT coalesce(json_agg(json_build_object('kind', kind, 'name', name, 'marker', marker, 'old', old)), '[]')
FROM (SELECT 'database' AS kind, d.datname AS name, shobj_description(d.oid, 'pg_database') AS marker,
             false AS old
        FROM pg_database d
       WHERE {" OR ".join(f"d.datname LIKE {lit(p.replace('_', chr(92) + '_') + '%')}" for p in DATABASE_PREFIXES)}
      UNION ALL
      SELECT 'role', r.rolname, shobj_description(r.oid, 'pg_authid'), coalesce(r.rolvaliduntil < now(), false)
        FROM pg_roles r WHERE r.rolname LIKE {lit(ROLE_PREFIX.replace('_', chr(92) + '_') + '%')}) s"""


def _stale(marker: str | None, machine: str) -> bool:
    try:
        who = json.loads(marker or "")
    except ValueError:
        return False  # not marked by us (an older version's, or someone else's): left alone
    if not isinstance(who, dict) or who.get("machine") != machine or not isinstance(who.get("pid"), int):
        return False
    return who["pid"] != os.getpid() and not pid_alive(who["pid"])


def sweep(server: Runner) -> list[str]:
    """Drop the scratch databases and roles of ours whose process on this machine is gone (a kill -9
    leaves them), and roles past their lifetime; returns what was dropped. Best effort: what the
    deploy role may not drop stays."""
    try:
        rows = server.query_json(_STALE) or []
    except PsqlError:
        return []
    machine = socket.gethostname()
    gone = []
    for kind in ("database", "role"):  # a role goes after the database it owns
        for row in rows:
            if row["kind"] != kind or not (row["old"] or _stale(row["marker"], machine)):
                continue
            verb = "DATABASE" if kind == "database" else "ROLE"
            try:
                server.run_script(f"DROP {verb} IF EXISTS {q(row['name'])}"
                                  + (" WITH (FORCE)" if kind == "database" else "") + ";\n")
                gone.append(f"{kind} {row['name']}")
            except PsqlError:
                continue
    return gone
