"""Privileges: GRANT / REVOKE on schemas, relations, columns, sequences, types and routines, and
ALTER DEFAULT PRIVILEGES. Every change carries authz_change."""

from __future__ import annotations

from dataclasses import replace

from pgconverge.catalog.model import OWNER, Acl, oid_key, table_id, view_id
from pgconverge.planning import hazards as hz
from pgconverge.planning.context import Diff
from pgconverge.quoting import q

_DEFAULT_ACL_WORD = {"r": "TABLES", "S": "SEQUENCES", "f": "FUNCTIONS", "T": "TYPES", "n": "SCHEMAS"}


def diff(p: Diff) -> None:
    diff_privileges(p)
    diff_default_privileges(p)


def _acl_target(a: Acl) -> str:
    if a.kind == "schema":
        return f"SCHEMA {q(a.name)}"
    if a.kind in ("function", "procedure"):
        return f"{a.kind.upper()} {q(a.schema, a.name)}({a.args})"
    word = {"sequence": "SEQUENCE", "type": "TYPE"}.get(a.kind, "TABLE")
    return f"{word} {q(a.schema, a.name)}"




def diff_privileges(p: Diff) -> None:
    """GRANT/REVOKE the difference between ACLs, as sets of (grantee, privilege, grantable).
    An object created by this plan starts from its default ACL as the target's default
    privileges make it; an object that is dropped takes its ACL along."""
    removed = p.removed()
    fresh = {x for s in p.steps if s.kind.startswith("create_") or s.kind == "add_column" for x in s.provides}
    for aid in sorted(set(p.actual.acls) | set(p.desired.acls)):
        have, want = p.actual.acls.get(aid), p.desired.acls.get(aid)
        obj = want or have
        if want is None and (obj.kind != "column" or aid in removed
                             or oid_key("table", obj.schema, obj.name) in removed
                             or table_id(obj.schema, obj.name) not in p.desired.tables
                             and view_id(obj.schema, obj.name) not in p.desired.views):
            continue  # the object is dropped, and its privileges with it
        new = have is None or aid in fresh
        before = _initial_privileges(p, obj) if new else have.entries
        after = want.entries if want else frozenset()
        owner = p.actual.current_user if new else have.owner
        grant_revoke(p, _acl_target(obj), before, after, owner or obj.owner, aid, column=obj.column)


def _initial_privileges(p: Diff, obj: Acl) -> frozenset:
    """The ACL a new object gets: the built-in default, or the target's default privileges."""
    objtype = {"table": "r", "view": "r", "sequence": "S", "function": "f", "procedure": "f", "type": "T",
               "schema": "n"}.get(obj.kind)
    if objtype is None:
        return frozenset()  # columns start without privileges of their own
    user = p.actual.current_user
    defaults = p.actual.default_acls
    everywhere = defaults.get(oid_key("default_privileges", user, "*", objtype))
    start = everywhere.entries if everywhere else obj.defaults
    here = defaults.get(oid_key("default_privileges", user, obj.schema, objtype)) if objtype != "n" else None
    return start | (here.entries if here else frozenset())


def grant_revoke(p: Diff, target: str, before: frozenset, after: frozenset, owner: str, oid: str,
                 column: str | None = None, prefix: str = "", on_word: str = "ON") -> None:
    """The fewest GRANT/REVOKE statements that turn ACL `before` into `after`."""
    def spell(grantee: str) -> str:
        return "PUBLIC" if grantee == "PUBLIC" else q(owner if grantee == OWNER else grantee)

    def privs(names: list[str]) -> str:
        return ", ".join(f"{n} ({q(column)})" if column else n for n in names)

    for grantee in sorted({g for g, _, _ in before | after}):
        b: dict[str, bool] = {}
        a: dict[str, bool] = {}
        for g, priv, opt in before:
            if g == grantee:
                b[priv] = b.get(priv, False) or opt
        for g, priv, opt in after:
            if g == grantee:
                a[priv] = a.get(priv, False) or opt
        who = spell(grantee)
        statements = [
            ("revoke", "REVOKE", sorted(x for x in b if x not in a), f"FROM {who}", "revoked from"),
            ("revoke", "REVOKE GRANT OPTION FOR", sorted(x for x in b if x in a and b[x] and not a[x]),
             f"FROM {who}", "no longer grantable by"),
            ("grant", "GRANT", sorted(x for x in a if x not in b and not a[x]), f"TO {who}", "granted to"),
            ("grant", "GRANT", sorted(x for x in a if a[x] and not b.get(x, False)),
             f"TO {who} WITH GRANT OPTION", "granted (with grant option) to"),
        ]
        for kind, verb, names, tail, word in statements:
            if names:
                p.add(f"{prefix}{verb} {privs(names)} {on_word} {target} {tail}", kind, oid,
                      requires=frozenset({oid}) if not prefix else frozenset(),
                      hazards=(hz.authz_change(oid, f"{', '.join(names)} on {target} {word} {who}"),))


def diff_default_privileges(p: Diff) -> None:
    removed = p.removed()
    for did in sorted(set(p.actual.default_acls) | set(p.desired.default_acls)):
        have, want = p.actual.default_acls.get(did), p.desired.default_acls.get(did)
        d = want or have
        if d.schema is not None and oid_key("schema", d.schema) in removed:
            continue  # dropped with its schema
        before = have.entries if have else d.defaults
        after = want.entries if want else d.defaults
        prefix = f"ALTER DEFAULT PRIVILEGES FOR ROLE {q(d.role)} " + (f"IN SCHEMA {q(d.schema)} " if d.schema else "")
        n = len(p.steps)
        grant_revoke(p, _DEFAULT_ACL_WORD[d.objtype], before, after, d.role, did, prefix=prefix)
        if d.schema is not None:
            # they need the schema; the objects this plan creates got the target's defaults already
            p.steps[n:] = [replace(s, requires=frozenset({oid_key("schema", d.schema)})) for s in p.steps[n:]]
