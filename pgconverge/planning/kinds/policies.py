"""Row-level security: ENABLE / FORCE ROW LEVEL SECURITY on tables, and CREATE, ALTER and DROP
POLICY with comments. Every change carries authz_change."""

from __future__ import annotations

from pgconverge.catalog.model import RlsPolicy
from pgconverge.planning import hazards as hz
from pgconverge.planning.context import Diff
from pgconverge.planning.kinds.dependants import needs, owner_dropped
from pgconverge.quoting import lit, q

_POLICY_COMMAND = {"*": "ALL", "r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE"}


def diff(p: Diff) -> None:
    diff_rls(p)
    diff_policies(p)


def _roles(roles: tuple[str, ...]) -> str:
    return ", ".join("PUBLIC" if r == "public" else q(r) for r in roles)


def _policy_sql(pol: RlsPolicy) -> str:
    text = (f"CREATE POLICY {q(pol.name)} ON {q(pol.schema, pol.table)} AS {'PERMISSIVE' if pol.permissive else 'RESTRICTIVE'}"
            f" FOR {_POLICY_COMMAND[pol.command]} TO {_roles(pol.roles)}")
    if pol.using is not None:
        text += f" USING ({pol.using})"
    if pol.with_check is not None:
        text += f" WITH CHECK ({pol.with_check})"
    return text




def diff_rls(p: Diff) -> None:
    created = {x for s in p.steps if s.kind == "create_table" for x in s.provides}
    for key, t in p.desired.tables.items():
        have = p.actual.tables.get(key) if t.id not in created else None  # a table created again starts off
        changes = [(t.rls_enabled, have.rls_enabled if have else False, "ENABLE", "DISABLE", "enabled"),
                   (t.rls_forced, have.rls_forced if have else False, "FORCE", "NO FORCE", "forced")]
        for want, was, on, off, word in changes:
            if want != was:
                state = word if want else f"no longer {word}"
                p.add(f"ALTER TABLE {q(t.schema, t.name)} {on if want else off} ROW LEVEL SECURITY", "alter_table", t.id,
                      hazards=(hz.authz_change(t.id, f"row-level security on {t.schema}.{t.name} is {state}"),),
                      requires=frozenset({t.id}), table=t.id)


def diff_policies(p: Diff) -> None:
    replaced = p.replaced
    for pid, pol in p.desired.policies.items():
        have = p.actual.policies.get(pid)
        where = f"policy {pol.name} on {pol.schema}.{pol.table}"
        fresh = have is None or pid in replaced
        if fresh:
            p.add(_policy_sql(pol), "create_policy", pid, provides=frozenset({pid}),
                  hazards=(hz.authz_change(pid, where, " is created"),),
                  requires=needs(p, pol.schema, pol.depends_on, pid, have is not None))
        elif (have.roles, have.using, have.with_check) != (pol.roles, pol.using, pol.with_check):
            parts = [f"TO {_roles(pol.roles)}" if have.roles != pol.roles else "",
                     f"USING ({pol.using})" if have.using != pol.using else "",
                     f"WITH CHECK ({pol.with_check})" if have.with_check != pol.with_check else ""]
            p.add(f"ALTER POLICY {q(pol.name)} ON {q(pol.schema, pol.table)} " + " ".join(x for x in parts if x),
                  "alter_policy", pid, provides=frozenset({pid}), requires=frozenset(pol.depends_on),
                  hazards=(hz.authz_change(pid, where, " changes"),))
        if pol.comment != (None if fresh else have.comment):
            p.add(f"COMMENT ON POLICY {q(pol.name)} ON {q(pol.schema, pol.table)} IS {lit(pol.comment)}", "comment",
                  pid, requires=frozenset({pid}))
    for pid, have in p.actual.policies.items():
        if pid in replaced and not owner_dropped(p, have.schema, have.table):
            p.add(f"DROP POLICY {q(have.name)} ON {q(have.schema, have.table)}", "drop_policy", pid,
                  hazards=(hz.authz_change(pid, f"policy {have.name} on {have.schema}.{have.table}", " is dropped"),),
                  removes=frozenset({pid}), provides=frozenset({pid + "#gone"}),
                  drop_before=frozenset(have.depends_on))
