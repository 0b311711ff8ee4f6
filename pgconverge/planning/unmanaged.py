"""Drift: objects in the database that sql/ does not declare, and the policy that decides their fate.

``refuse`` (the default outside production) plans them as drops, which carry their hazards and
are refused by the hazard policy unless a drop is named. ``drop`` plans the same drops and allows
them. ``report`` (production's default) leaves them alone: before the kinds are diffed, each such
object is copied from the actual catalog into (a copy of) the desired one, so that no kind plans
anything for it, and the plan lists it. A declared change that would drop, retype or recreate
something such an object is, or depends on, is refused: leaving the object alone would break it.

Objects named for deletion (``-- @drop``, ``drops``) are never unmanaged: they are dropped as asked.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from pgconverge.catalog.model import Acl, Catalog, column_id, constraint_id, index_id
from pgconverge.errors import PlanError

REFUSE, REPORT, DROP = "refuse", "report", "drop"
POLICIES = (REFUSE, REPORT, DROP)
KEY = "pgconverge_unmanaged"

# top-level dicts of the catalog whose records are whole objects (ACLs are handled grant by grant)
_OBJECTS = ("schemas", "extensions", "collations", "enums", "domains", "composites", "ranges", "sequences",
            "tables", "views", "functions", "triggers", "policies", "default_acls")


def check_policy(value: Any, where: str = "unmanaged") -> str:
    """The policy's name, or a ValueError naming `where`, the value and the choices."""
    text = str(value).strip().lower() if value is not None else REFUSE
    if text not in POLICIES:
        raise ValueError(f"{where}: must be one of {', '.join(POLICIES)}, not {value!r}")
    return text


@dataclass(frozen=True)
class Unmanaged:
    """One object of the database that sql/ does not declare."""

    kind: str  # table, column, index, constraint, view, function, trigger, policy, sequence, grant, ...
    name: str  # qualified: public.users.hotfix; a grant: "SELECT on table public.users to report"
    id: str  # the object id (the ACL's object id for a grant)
    # ids of its parts (a table's columns, constraints and indexes): left alone or dropped with it
    parts: tuple[str, ...] = ()

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "id": self.id}

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


def _named(oid: str, drops: frozenset[str]) -> bool:
    if "*" in drops or oid in drops:
        return True
    kind, _, rest = oid.partition(":")
    if kind in ("column", "constraint", "trigger", "policy"):  # named by their table
        return "table:" + rest.rsplit(".", 1)[0] in drops
    return False


def _split(oid: str) -> tuple[str, str]:
    kind, _, name = oid.partition(":")
    return kind, name


def find(actual: Catalog, desired: Catalog, drops: frozenset[str]) -> list[Unmanaged]:
    """The objects `actual` holds that `desired` does not declare and no drop names."""
    out: list[Unmanaged] = []
    for attr in _OBJECTS:
        want = getattr(desired, attr)
        for oid, rec in getattr(actual, attr).items():
            if oid in want or _named(oid, drops):
                continue
            kind, name = _split(oid)
            parts: tuple[str, ...] = ()
            if attr == "tables":
                parts = tuple([column_id(rec.schema, rec.name, c) for c in rec.columns]
                              + [constraint_id(rec.schema, rec.name, c) for c in rec.constraints]
                              + [index_id(rec.schema, i) for i in rec.indexes])
            elif attr == "views":
                parts = tuple(index_id(rec.schema, i) for i in rec.indexes)
            out.append(Unmanaged(kind, name, oid, parts))
    for tid, have in actual.tables.items():
        want = desired.tables.get(tid)
        if want is None:
            continue
        s, t = have.schema, have.name
        for c in have.columns:
            cid = column_id(s, t, c)
            if c not in want.columns and not _named(cid, drops):
                out.append(Unmanaged("column", _split(cid)[1], cid))
        for c, con in have.constraints.items():
            cid = constraint_id(s, t, c)
            if c not in want.constraints and not _named(cid, drops) and not con.inherited:
                backing = (index_id(s, con.index),) if con.index and con.index in have.indexes else ()
                out.append(Unmanaged("constraint", _split(cid)[1], cid, backing))
        backed = {con.index for con in have.constraints.values() if con.index}
        for i, idx in have.indexes.items():
            iid = index_id(s, i)
            if i not in want.indexes and i not in backed and not idx.inherited and not _named(iid, drops):
                out.append(Unmanaged("index", _split(iid)[1], iid))
    for vid, have in actual.views.items():
        want = desired.views.get(vid)
        if want is not None:
            for i in have.indexes:
                iid = index_id(have.schema, i)
                if i not in want.indexes and not _named(iid, drops):
                    out.append(Unmanaged("index", _split(iid)[1], iid))
    kept = {u.id for u in out}
    for aid, acl in actual.acls.items():
        if aid in kept or _table_of(aid) in kept:
            continue
        for grantee, privilege, _grantable in sorted(_extra_grants(acl, desired.acls.get(aid))):
            out.append(Unmanaged("grant", f"{privilege} on {acl.kind} {_split(aid)[1]} to {grantee}", aid))
    return out


def _table_of(oid: str) -> str:
    kind, rest = _split(oid)
    return "table:" + rest.rsplit(".", 1)[0] if kind == "column" else ""


def _extra_grants(have: Acl, want: Acl | None) -> set:
    """Privileges granted by hand: beyond the object's defaults and beyond what sql/ grants."""
    declared = want.entries if want is not None else have.defaults
    return set(have.entries) - set(have.defaults) - set(declared)


def keep(actual: Catalog, desired: Catalog, objects: list[Unmanaged]) -> None:
    """Copy `objects` from `actual` into `desired` (a copy the caller owns), so nothing is planned for them."""
    ids = {u.id for u in objects if u.kind != "grant"}  # a grant's id is the id of the object it is on
    for attr in _OBJECTS:
        have, want = getattr(actual, attr), getattr(desired, attr)
        for oid in ids & have.keys():
            want[oid] = have[oid]
    for u in objects:
        if u.kind == "grant":
            continue
        if u.kind in ("column", "constraint", "index"):
            _keep_part(actual, desired, u)
        for oid in (u.id, *u.parts):
            if oid in actual.depends:
                desired.depends[oid] = actual.depends[oid]
    for aid, acl in actual.acls.items():
        if aid in ids and aid in actual.tables.keys() | actual.views.keys() | actual.functions.keys() \
                | actual.sequences.keys() | actual.schemas.keys() and aid not in desired.acls:
            desired.acls[aid] = acl  # the ACL of a whole object left alone
        elif _table_of(aid) in ids and aid not in desired.acls:
            desired.acls[aid] = acl
    for u in objects:
        if u.kind == "grant":
            have_acl = actual.acls[u.id]
            want_acl = desired.acls.get(u.id)
            base = want_acl.entries if want_acl is not None else have_acl.defaults
            extra = _extra_grants(have_acl, want_acl)
            desired.acls[u.id] = replace(want_acl or have_acl, entries=frozenset(set(base) | extra))


def _keep_part(actual: Catalog, desired: Catalog, u: Unmanaged) -> None:
    name = u.name.rsplit(".", 1)[-1]
    if u.kind == "index":
        schema = u.name.split(".", 1)[0]
        owner = actual.index_owner(schema, name)
        if owner is not None and owner.id in desired.tables:
            t = desired.tables[owner.id]
            desired.tables[owner.id] = replace(t, indexes={**t.indexes, name: owner.indexes[name]})
            return
        for vid, v in actual.views.items():
            if v.schema == schema and name in v.indexes and vid in desired.views:
                w = desired.views[vid]
                desired.views[vid] = replace(w, indexes={**w.indexes, name: v.indexes[name]})
        return
    tid = "table:" + u.name.rsplit(".", 1)[0]
    have, want = actual.tables[tid], desired.tables[tid]
    if u.kind == "column":
        desired.tables[tid] = replace(want, columns={**want.columns, name: have.columns[name]})
    else:
        con = have.constraints[name]
        indexes = dict(want.indexes)
        if con.index and con.index in have.indexes:
            indexes[con.index] = have.indexes[con.index]
        desired.tables[tid] = replace(want, constraints={**want.constraints, name: con}, indexes=indexes)


def remedy(plan, refused: list) -> str:
    """What to do when refused hazards fall on objects sql/ does not declare."""
    ids = {i for u in plan.unmanaged for i in (u.id, *u.parts)}
    if plan.unmanaged_policy != REFUSE or not any(h.object in ids for h in refused):
        return ""
    return (f"These objects are in the database but not in sql/ ({KEY} = refuse plans them as drops). "
            "Declare them in sql/ to keep them, name a drop with '-- @drop <kind> <name>' in sql/ (or "
            f"pgconverge_drops / --drop), or set {KEY} (--unmanaged, unmanaged=) to report, which "
            "leaves them alone and lists them, or to drop, which drops them.")


class UnmanagedConflict(PlanError):
    """A declared change would drop, retype or recreate an object sql/ does not declare, which
    ``report`` leaves alone. Nothing was changed."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"refused: {len(problems)} object(s) not declared in sql/ stand in the way of declared changes; "
            f"{KEY} = report leaves them alone, so the plan would break them; nothing was changed:\n{lines}\n"
            "Declare each in sql/ (the plan then changes it with the rest), or name its drop with "
            "'-- @drop <kind> <name>' in sql/ (or pgconverge_drops / --drop), or plan this run with "
            f"{KEY} = drop (--unmanaged drop).")


def conflicts(objects: list[Unmanaged], steps: list, actual: Catalog, removed: set[str], retyped: set[str],
              replaced: set[str]) -> list[str]:
    """Why the plan cannot leave `objects` alone: a step that touches one, or a dependency it loses."""
    problems: list[str] = []
    for u in objects:
        if u.kind == "grant":
            if u.id in removed:
                problems.append(f"{u}: the plan drops the object it is on")
            continue
        own = {u.id, *u.parts}
        why = _lost_dependency(u, actual, removed, retyped)
        touched = [st for st in steps if st.object in own or st.removes & own]
        if why:
            problems.append(why)
        elif touched:
            problems.append(f"{u}: the plan runs `{touched[0].sql.splitlines()[0]}` on it")
        elif own & replaced:
            problems.append(f"{u}: the plan would drop and recreate it, as something it uses changes")
    return problems


def _lost_dependency(u: Unmanaged, actual: Catalog, removed: set[str], retyped: set[str]) -> str:
    for dep in sorted(_uses(u, actual)):
        if dep in removed:
            return f"{u} depends on {dep.replace(':', ' ', 1)}, which the plan drops"
        if _table_of(dep) in removed:
            return f"{u} depends on {_table_of(dep).replace(':', ' ', 1)}, which the plan drops"
        if dep in retyped:
            return f"{u} depends on {dep.replace(':', ' ', 1)}, whose type the plan changes"
    return ""


def _uses(u: Unmanaged, actual: Catalog) -> set[str]:
    """The ids `u` uses: pg_depend as the catalog read it, and the columns of its table it is on."""
    deps: set[str] = set()
    for oid in (u.id, *u.parts):
        deps.update(actual.depends.get(oid, ()))
        for attr in ("views", "functions", "triggers", "policies", "sequences", "domains"):
            rec = getattr(actual, attr).get(oid)
            if rec is not None:
                deps.update(getattr(rec, "depends_on", ()) or ())
    kind, name = _split(u.id)
    table = None
    if kind == "index":
        table = actual.index_owner(name.split(".", 1)[0], name.rsplit(".", 1)[-1]) if "." in name else None
        part = table.indexes[name.rsplit(".", 1)[-1]] if table is not None else None
    elif kind in ("constraint", "column"):
        table = actual.tables.get("table:" + name.rsplit(".", 1)[0])
        short = name.rsplit(".", 1)[-1]
        part = (table.constraints if kind == "constraint" else table.columns).get(short) if table else None
    if table is not None and part is not None:
        deps.add(table.id)
        deps.update(getattr(part, "depends_on", ()) or ())
        if kind != "column":
            deps.update(column_id(table.schema, table.name, c) for c in part.columns)
        if kind == "constraint" and part.ref_table:
            deps.add(part.ref_table)
    if kind in ("trigger", "policy"):
        deps.add("table:" + name.rsplit(".", 1)[0])
    return deps - {u.id, *u.parts}
