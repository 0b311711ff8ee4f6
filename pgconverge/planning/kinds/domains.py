"""Domains: CREATE DOMAIN, ALTER DOMAIN (default, NOT NULL, constraints) and DROP DOMAIN.

A domain's base type or collation cannot change in place: the domain is dropped and made
again when nothing uses it, and refused when something does. Its CHECK constraints go in like
a table's: NOT VALID first, then VALIDATE in a transaction of its own."""

from __future__ import annotations

from pgconverge.catalog.model import Domain, DomainConstraint, oid_key, schema_id
from pgconverge.errors import UnsupportedError
from pgconverge.planning import hazards as hz
from pgconverge.planning.context import Diff
from pgconverge.planning.hazards import Hazard
from pgconverge.planning.kinds.usage import comment, drop_type, still_used
from pgconverge.planning.steps import OWN
from pgconverge.quoting import lit, q


def diff(p: Diff) -> None:
    for key, d in p.desired.domains.items():
        have = p.actual.domains.get(key)
        if have is not None and (have.base_type, have.collation) != (d.base_type, d.collation):
            users = still_used(p, d.id)
            if users:
                raise UnsupportedError("domain change", f"{d.schema}.{d.name}",
                                       f"its base type or collation cannot change while {users[0]} uses it")
            drop_type(p, have, "DOMAIN", f"domain {d.schema}.{d.name}")
            have = None
        if have is None:
            create_domain(p, d)
        else:
            alter_domain(p, have, d)
        comment(p, "DOMAIN", q(d.schema, d.name), d.id, d.comment, have.comment if have else None)
        _constraint_comments(p, have, d)
    for key, d in p.actual.domains.items():
        if key not in p.desired.domains:
            drop_type(p, d, "DOMAIN", f"domain {d.schema}.{d.name}")


def _constraint_comments(p: Diff, have: Domain | None, want: Domain) -> None:
    """COMMENT ON CONSTRAINT ... ON DOMAIN; a constraint made again (its definition changed) lost its comment."""
    old = {c.name: c for c in have.constraints} if have is not None else {}
    for con in want.constraints:
        before = old.get(con.name)
        was = before.comment if before is not None and before.definition == con.definition else None
        if con.comment != was:
            cid = oid_key("constraint", want.schema, want.name, con.name)
            p.add(f"COMMENT ON CONSTRAINT {q(con.name)} ON DOMAIN {q(want.schema, want.name)} IS {lit(con.comment)}",
                  "comment", cid, requires=frozenset({want.id, cid}))


def create_domain(p: Diff, d: Domain) -> None:
    parts = [f"CREATE DOMAIN {q(d.schema, d.name)} AS {d.base_type}"]
    if d.collation:
        parts.append(f"COLLATE {d.collation}")
    if d.default is not None:
        parts.append(f"DEFAULT {d.default}")
    if d.not_null:
        parts.append("NOT NULL")
    requires = {schema_id(d.schema), *d.depends_on}
    for con in d.constraints:
        if con.validated:  # CREATE DOMAIN takes no NOT VALID: those are added afterwards
            parts.append(f"CONSTRAINT {q(con.name)} {con.definition}")
            requires |= set(con.depends_on)
    p.add(" ".join(parts), "create_type", d.id, provides=frozenset({d.id}), requires=frozenset(requires))
    for con in d.constraints:
        if not con.validated:
            _add_domain_constraint(p, d, con, existing=False)


def _add_domain_constraint(p: Diff, d: Domain, con: DomainConstraint, existing: bool) -> None:
    cid = oid_key("constraint", d.schema, d.name, con.name)
    hazards: tuple[Hazard, ...] = ()
    if existing:
        hazards = (hz.may_fail(cid, f"new check {con.name} on domain {d.schema}.{d.name}",
                               " fails if a stored value violates it"),)
    # like a table CHECK: added NOT VALID (no scan), then validated on its own
    not_valid = " NOT VALID" if existing or not con.validated else ""
    p.add(f"ALTER DOMAIN {q(d.schema, d.name)} ADD CONSTRAINT {q(con.name)} {con.definition}{not_valid}",
          "alter_type", cid, hazards=hazards, provides=frozenset({cid}),
          requires=frozenset({d.id, *con.depends_on}))
    if existing and con.validated:
        p.add(f"ALTER DOMAIN {q(d.schema, d.name)} VALIDATE CONSTRAINT {q(con.name)}", "validate", cid, mode=OWN,
              requires=frozenset({cid}), provides=frozenset({cid + "#valid"}))


def alter_domain(p: Diff, have: Domain, want: Domain) -> None:
    dq = q(want.schema, want.name)

    def step(text: str, hazards: tuple[Hazard, ...] = (), **kw) -> None:
        p.add(text, "alter_type", want.id, hazards=hazards, provides=frozenset({want.id}),
              requires=frozenset(want.depends_on), **kw)

    if have.default != want.default:
        step(f"ALTER DOMAIN {dq} SET DEFAULT {want.default}" if want.default is not None
             else f"ALTER DOMAIN {dq} DROP DEFAULT")
    if want.not_null and not have.not_null:
        step(f"ALTER DOMAIN {dq} SET NOT NULL", (hz.may_fail(
            want.id, f"SET NOT NULL on domain {want.schema}.{want.name}",
            " scans every column of that type and fails if one holds NULL"),), mode=OWN)
    elif have.not_null and not want.not_null:
        step(f"ALTER DOMAIN {dq} DROP NOT NULL")
    old = {c.name: c for c in have.constraints}
    new = {c.name: c for c in want.constraints}
    for name, con in old.items():
        if name not in new or new[name].definition != con.definition:
            cid = oid_key("constraint", want.schema, want.name, name)
            p.add(f"ALTER DOMAIN {dq} DROP CONSTRAINT {q(name)}", "alter_type", cid, removes=frozenset({cid}))
    for name, con in new.items():
        before = old.get(name)
        if before is None or before.definition != con.definition:
            _add_domain_constraint(p, want, con, existing=True)
        elif con.validated and not before.validated:
            cid = oid_key("constraint", want.schema, want.name, name)
            p.add(f"ALTER DOMAIN {dq} VALIDATE CONSTRAINT {q(name)}", "validate", cid, mode=OWN,
                  requires=frozenset({cid}), provides=frozenset({cid + "#valid"}))
