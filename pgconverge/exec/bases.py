"""Rehearsal bases: a restored copy of a target's schema, kept as a template database.

The proof restores the target's ``pg_dump --schema-only`` statement by statement, which costs about
as much as loading sql/ itself. The same target schema is copied again and again: by ``--dry`` and
then the run, by a plan and then its apply, by every database of a fleet that shares a schema. So
the first restore is kept on the scratch server as a template, ``pgconverge_base_<key>``, and the
next rehearsal of the same schema is a ``CREATE DATABASE ... TEMPLATE`` of it: a copy of its files.

The key is the sha256 of the dump text and of everything else the restore depends on, so a base is
only ever used for the exact schema it was restored from. A copy is judged like a restore: if the
proof fails on a copy, it is run again on a fresh restore before the plan is refused.

Who owns what (the scratch isolation of exec.scratch holds):

- the base database is the deploy role's, and PUBLIC may not connect to it;
- its objects belong to a role of their own, ``pgconverge_base_<token>``, NOLOGIN, which owns no
  database: so nothing that runs in a rehearsal can reach the base and change it;
- a copy is owned by the rehearsal's scratch role, which is made a member of the base's role, so
  that the plan may change the copy's objects where they stand: handing 1,000 tables' owners over
  and back cost a second each way. The copy's database is the scratch role's own and PUBLIC may not
  connect to it, so the membership reaches no other copy and not the base; the base's role is
  named as the deploy role in the copy's dump, as the scratch role is;
- a schema that grants to the deploy role itself gets no base: on a copy such a grant would read
  against the base's role instead of the deploy role's ownership.

A shadow is a base too. Once a target converged to sql/, its next proof (of the next sql/) copies
the target's schema, which is sql/'s: so a plan that builds a shadow, with the caches on, keeps it
as the base of its own dump (``bases.adopt``) instead of dropping it, where its objects are all its
role's (no ACL made the hand-back of exec.scratch necessary) and the dump could get a base. Its key
is the one a dump of the target would get, with the shadow's extensions for the target's: they
meet when the target's dump, once converged, is the shadow's to the byte (a column appended by the
plan where sql/ declares it in the middle makes them differ: that schema is restored, as before).

Only the newest ``KEPT`` bases of a server are kept, none older than exec.scratch.LIFETIME; a base
whose creator died before it was published is swept with the scratch databases.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
from dataclasses import dataclass

from pgconverge.exec.runner import PsqlError, Runner
from pgconverge.exec.scratch import LIFETIME, _marker
from pgconverge.quoting import lit, q

BASE_PREFIX = "pgconverge_base_"
KEPT = 4
# what a base was restored by: a change to the restore makes older bases unusable
FORMAT = 1

_LIKE = lit(BASE_PREFIX.replace("_", chr(92) + "_") + "%")
# every base-like database and role, judged in Python: a comment that is not ours must not fail the read
_LIST = f"""SELECT json_build_object(
  'databases', (SELECT coalesce(json_agg(json_build_array(d.datname, shobj_description(d.oid, 'pg_database'))), '[]')
                  FROM pg_database d WHERE d.datname LIKE {_LIKE}),
  'roles', (SELECT coalesce(json_agg(r.rolname), '[]') FROM pg_roles r WHERE r.rolname LIKE {_LIKE}))"""


@dataclass(frozen=True)
class Base:
    name: str  # the template database
    role: str  # the owner of its objects
    created: str


def key(dump_text: str, *parts: object) -> str:
    """The schema a base holds, and how it was restored (the deploy role, the extensions). pg_dump's
    ``\\restrict`` lines carry a key drawn anew by each dump: not part of the schema."""
    h = hashlib.sha256(re.sub(r"^\\(?:un)?restrict \S+$", "", dump_text, flags=re.M).encode())
    h.update(json.dumps([FORMAT, *parts], sort_keys=True, default=repr).encode())
    return h.hexdigest()


def name_of(k: str) -> str:
    return BASE_PREFIX + k[:40]


def _listed(server: Runner) -> tuple[list[tuple[str, dict]], set[str]]:
    """The published bases (name, marker) and the base roles."""
    doc = server.query_json(_LIST) or {}
    out = []
    for name, comment in doc.get("databases") or []:
        try:
            marker = json.loads(comment or "")
        except ValueError:
            continue
        if isinstance(marker, dict) and marker.get("pgconverge") == "base" and isinstance(marker.get("role"), str):
            out.append((name, marker))
    return out, set(doc.get("roles") or [])


def find(server: Runner, k: str) -> Base | None:
    """The published base for key `k` on `server`, if there is one (and its role)."""
    try:
        listed, roles = _listed(server)
    except PsqlError:
        return None
    for name, marker in listed:
        if name == name_of(k) and marker.get("key") == k and marker["role"] in roles:
            return Base(name, marker["role"], marker.get("created", ""))
    return None


def publish(server: Runner, staged: str, role: str, k: str, made: str = "restore") -> Base | None:
    """Make `staged` (a template copy of a freshly restored rehearsal, owned by the deploy role, its
    objects by `role`) the base for `k`: `role` loses its login and takes the base's name. None when
    it could not be published (another run published the same key first); `staged` and `role` are
    then dropped."""
    token = secrets.token_hex(6)
    base_role = BASE_PREFIX + token
    created = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # `made`: "restore" (a rehearsal's restore of a target's dump) or "shadow" (adopt): for the operator
    marker = json.dumps({"pgconverge": "base", "key": k, "role": base_role, "created": created, "made": made})
    name = name_of(k)
    try:
        server.run_script(
            f"ALTER ROLE {q(role)} NOLOGIN PASSWORD NULL VALID UNTIL 'infinity';\n"
            f"ALTER ROLE {q(role)} RENAME TO {q(base_role)};\n"
            f"COMMENT ON ROLE {q(base_role)} IS {lit(marker)};\n"
            f"ALTER DATABASE {q(staged)} RENAME TO {q(name)};\n"
            f"COMMENT ON DATABASE {q(name)} IS {lit(marker)};\n")
    except PsqlError:
        discard(server, staged, role, base_role)
        return None
    sweep(server, keep=name)
    return Base(name, base_role, created)


def adopt(server: Runner, database: str, role: str, k: str) -> Base | None:
    """Publish a shadow database (exec.scratch: owned by `role`, as are its objects, nobody
    connected) as the base for `k`: the database becomes the deploy role's first, as a staged
    base's is. None when it was not published (then it is dropped with `role`)."""
    try:
        server.run_script(f"ALTER DATABASE {q(database)} OWNER TO CURRENT_USER;\n")
    except PsqlError:
        discard(server, database, role)
        return None
    return publish(server, database, role, k, made="shadow")


def discard(server: Runner, database: str, *roles: str) -> None:
    """Drop a base (or a staged one) and its role; best effort: a role that still owns objects in a
    copy being made stays, and is dropped by a later sweep."""
    try:
        server.run_script(f"DROP DATABASE IF EXISTS {q(database)} WITH (FORCE);\n")
    except PsqlError:
        return
    for role in roles:
        try:
            server.run_script(f"DROP ROLE IF EXISTS {q(role)};\n")
        except PsqlError:
            pass


def sweep(server: Runner, keep: str | None = None) -> None:
    """Drop bases beyond the newest KEPT, those older than LIFETIME, and roles whose base is gone."""
    try:
        listed, roles = _listed(server)
    except PsqlError:
        return
    listed.sort(key=lambda x: str(x[1].get("created", "")), reverse=True)
    oldest = (dt.datetime.now(dt.timezone.utc) - LIFETIME).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    kept = set()
    for i, (name, marker) in enumerate(listed):
        if name != keep and (i >= KEPT or str(marker.get("created", "")) < oldest):
            discard(server, name, marker["role"])
        else:
            kept.add(marker["role"])
    for role in sorted(roles - kept):  # a base's role whose base is gone (its drop was refused then)
        try:
            server.run_script(f"DROP ROLE IF EXISTS {q(role)};\n")
        except PsqlError:
            pass


def stage(server: Runner, restored: str) -> str:
    """A template copy of database `restored` (just restored, nobody connected), owned by the deploy
    role, under a scratch name the sweep of exec.scratch knows until it is published."""
    staged = "pgconverge_rehearsal_" + secrets.token_hex(6)
    server.run_script(f"CREATE DATABASE {q(staged)} TEMPLATE {q(restored)};\n"
                      f"REVOKE ALL ON DATABASE {q(staged)} FROM PUBLIC;\n"
                      f"COMMENT ON DATABASE {q(staged)} IS {lit(_marker())};\n")
    return staged


def clear(server: Runner) -> int:
    """Drop every base of `server` and every base role left; returns how many bases there were."""
    listed, roles = _listed(server)
    for name, marker in listed:
        discard(server, name, marker["role"])
    for role in sorted(roles):
        try:
            server.run_script(f"DROP ROLE IF EXISTS {q(role)};\n")
        except PsqlError:
            pass
    return len(listed)
