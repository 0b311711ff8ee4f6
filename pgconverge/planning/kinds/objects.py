"""Planning of the objects that hold no data: views and materialized views, functions and
procedures, triggers, row-level security and policies, and privileges (GRANT/REVOKE, ALTER
DEFAULT PRIVILEGES).

Each function takes the running ``Planner`` and adds its steps. These objects are dropped
and created again whenever an in-place change is impossible, and also whenever something
they use is dropped, retyped or itself created again: PostgreSQL refuses to drop or retype
what a view, trigger or policy uses. What each one uses comes from pg_depend, in both
catalogs (``Catalog.depends`` and each object's ``depends_on``), named by the ids the
other steps provide and remove, so the dependency graph orders everything.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Iterable

from pgconverge.planning import hazards as hz
from pgconverge.planning.context import Diff
from pgconverge.planning.hazards import Hazard
from pgconverge.catalog.model import OWNER, Acl, Catalog, Function, RlsPolicy, View, oid_key, table_id, view_id
from pgconverge.planning.steps import NONE
from pgconverge.errors import UnsupportedError
from pgconverge.planning.ddl import concurrently, swap_ident, split_qualified
from pgconverge.catalog.model import column_id, constraint_id
from pgconverge.quoting import lit, q



# --------------------------------------------------------------------------- helpers

_OBJECT_KINDS = frozenset({"create_view", "replace_view", "drop_view", "create_function", "replace_function",
                           "drop_function", "create_trigger", "drop_trigger", "enable_trigger", "create_policy",
                           "alter_policy", "drop_policy", "grant", "revoke"})
_RETYPE = re.compile(r"\bALTER COLUMN .* TYPE\b")
_ROUTINE = {"f": "FUNCTION", "w": "FUNCTION", "p": "PROCEDURE"}
_VIEW_WORD = {"v": "VIEW", "m": "MATERIALIZED VIEW"}
_TRIGGER_STATE = {"O": "ENABLE", "D": "DISABLE", "R": "ENABLE REPLICA", "A": "ENABLE ALWAYS"}
_POLICY_COMMAND = {"*": "ALL", "r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE"}
_DEFAULT_ACL_WORD = {"r": "TABLES", "S": "SEQUENCES", "f": "FUNCTIONS", "T": "TYPES", "n": "SCHEMAS"}


def _view_in_place(have: View, want: View | None) -> bool:
    """Unchanged, or changeable by CREATE OR REPLACE VIEW: a plain view whose old columns
    are kept, in order, with their types (new ones may follow)."""
    if want is None:
        return False
    if have.same_definition(want):
        return True
    return have.kind == want.kind == "v" and want.columns[: len(have.columns)] == have.columns


def _function_in_place(have: Function, want: Function | None) -> bool:
    """CREATE OR REPLACE cannot change the kind, the result type, parameter names, or drop defaults."""
    if want is None:
        return False
    return (have.kind, have.result, have.arg_names) == (want.kind, want.result, want.arg_names) \
        and want.n_defaults >= have.n_defaults


def _policy_in_place(have: RlsPolicy, want: RlsPolicy | None) -> bool:
    """ALTER POLICY changes roles and expressions, but cannot remove an expression."""
    if want is None:
        return False
    return (have.permissive, have.command) == (want.permissive, want.command) \
        and not (have.using and not want.using) and not (have.with_check and not want.with_check)


def _function_sql(f: Function) -> str:
    text = f.definition.rstrip()
    if _SQL_BODY.search(_function_header(text)) and "\nAS " in text:
        # a SQL body in a string is checked at CREATE against what exists then; the shadow
        # checked it already, and what it reads may come later in this plan (a BEGIN ATOMIC
        # body is different: its dependencies are known and ordered)
        return "SET LOCAL check_function_bodies = off;\n" + text
    return text


_SQL_BODY = re.compile(r"^ LANGUAGE sql$", re.M)


def _function_header(definition: str) -> str:
    return re.split(r"\nAS |\nBEGIN ATOMIC|\nRETURN ", definition, maxsplit=1)[0]


def _definer_hazard(f: Function) -> tuple[Hazard, ...]:
    if re.search(r"\bSECURITY DEFINER\b", _function_header(f.definition)):
        return (Hazard(hz.AUTHZ_CHANGE, f"{_ROUTINE[f.kind].lower()} {f.schema}.{f.name}({f.identity_args}) runs "
                       "with its owner's privileges (SECURITY DEFINER)", f.id),)
    return ()


def _view_sql(v: View, verb: str) -> str:
    options = f" WITH ({', '.join(v.options)})" if v.options else ""
    return f"{verb} {q(v.schema, v.name)}{options} AS\n{v.definition.rstrip().rstrip(';')}"


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


def _acl_target(a: Acl) -> str:
    if a.kind == "schema":
        return f"SCHEMA {q(a.name)}"
    if a.kind in ("function", "procedure"):
        return f"{a.kind.upper()} {q(a.schema, a.name)}({a.args})"
    word = {"sequence": "SEQUENCE", "type": "TYPE"}.get(a.kind, "TABLE")
    return f"{word} {q(a.schema, a.name)}"


# --------------------------------------------------------------------------- diffs


def diff_objects(p: Diff) -> None:
    follow_renames(p)
    retyped = retyped_columns(p)
    replaced = replaced_objects(p, retyped)
    diff_functions(p, replaced)
    diff_views(p, replaced)
    diff_triggers(p, replaced)
    diff_rls(p)
    diff_policies(p, replaced)
    diff_privileges(p)
    diff_default_privileges(p)
    wire_dependencies(p, replaced, retyped)


def follow_renames(p: Diff) -> None:
    """Triggers, policies and privileges follow a renamed table or column, as they do in
    PostgreSQL: rewrite the actual catalog (already renamed by the planner) to match."""
    tables: dict[str, str] = {}  # old table id -> new name
    columns: dict[tuple[str, str, str], str] = {}
    for kind, schema, table, old, new, *_ in p.options.renames.items:
        if kind == "table" and table_id(schema, new) in p.actual.tables and table_id(schema, old) not in p.actual.tables:
            tables[table_id(schema, old)] = new
        elif kind == "column" and table:
            t = p.actual.tables.get(table_id(schema, table))
            if t is not None and new in t.columns and old not in t.columns:
                columns[(schema, table, old)] = new
    if not tables and not columns:
        return

    def rel(schema: str, name: str) -> str:
        return tables.get(table_id(schema, name), name)

    triggers = [replace(t, table=rel(t.schema, t.table), definition=swap_ident(t.definition, t.table,
                                                                                rel(t.schema, t.table)))
                if table_id(t.schema, t.table) in tables else t for t in p.actual.triggers.values()]
    p.actual.triggers = {t.id: t for t in triggers}
    policies = [replace(x, table=rel(x.schema, x.table)) for x in p.actual.policies.values()]
    p.actual.policies = {x.id: x for x in policies}
    acls = []
    for a in p.actual.acls.values():
        if a.kind in ("table", "column"):
            name = rel(a.schema, a.name)
            column = columns.get((a.schema, name, a.column), a.column) if a.column else None
            a = replace(a, name=name, column=column)
        acls.append(a)
    p.actual.acls = {a.id: a for a in acls}


def retyped_columns(p: Diff) -> set[str]:
    """Columns whose type or collation changes in place (ALTER COLUMN ... TYPE)."""
    out = set()
    for key, have in p.actual.tables.items():
        want = p.desired.tables.get(key)
        for name, c in have.columns.items():
            new = want.columns.get(name) if want else None
            if new is not None and (c.type, c.collation) != (new.type, new.collation):
                out.add(column_id(have.schema, have.name, name))
    # other kinds (domains, enums) may retype a column whose type name stays the same
    out |= {x for s in p.steps if s.kind == "alter_column" and _RETYPE.search(s.sql) for x in s.provides}
    return out


def _actual_objects(p: Diff) -> dict[str, tuple[str, ...]]:
    objs: dict[str, tuple[str, ...]] = {v.id: v.depends_on for v in p.actual.views.values()}
    for group in (p.actual.functions, p.actual.triggers, p.actual.policies):
        objs.update({oid: o.depends_on for oid, o in group.items()})
    return objs


def replaced_objects(p: Diff, retyped: set[str]) -> set[str]:
    """Ids of the actual views, functions, triggers and policies that must be dropped:
    gone from sql/, changed beyond an in-place change, or using something that is
    dropped, retyped or replaced itself (to a fixpoint)."""
    replaced = {v.id for k, v in p.actual.views.items() if not _view_in_place(v, p.desired.views.get(k))}
    replaced |= {i for i, f in p.actual.functions.items()
                 if not _function_in_place(f, p.desired.functions.get(i))}
    replaced |= {i for i, t in p.actual.triggers.items()
                 if i not in p.desired.triggers or p.desired.triggers[i].definition != t.definition}
    replaced |= {i for i, pol in p.actual.policies.items() if not _policy_in_place(pol, p.desired.policies.get(i))}
    gone = {r for s in p.steps for r in s.removes} | retyped
    objs = _actual_objects(p)
    while True:
        more = {i for i, deps in objs.items() if i not in replaced and not (gone | replaced).isdisjoint(deps)}
        if not more:
            return replaced
        replaced |= more


def _drift(kept: bool, what: str, oid: str) -> tuple[Hazard, ...]:
    """A drop of an object that sql/ no longer declares; one dropped to be created again is routine."""
    if kept:
        return ()
    return (Hazard(hz.DROPS_OBJECT, f"{what} is not in sql/ and is dropped; code that uses it breaks", oid),)


def _needs(p: Diff, schema: str, deps: Iterable[str], oid: str, recreated: bool) -> frozenset[str]:
    """What creating an object requires: its schema, what it uses, and its old self gone."""
    return frozenset({oid_key("schema", schema), *deps} | ({oid + "#gone"} if recreated else set()))


def _owner_dropped(p: Diff, schema: str, relation: str) -> bool:
    """The table is dropped for good: DROP TABLE takes its triggers and policies along."""
    tid = table_id(schema, relation)
    return tid in p.actual.tables and tid not in p.desired.tables


# -- functions and procedures


def diff_functions(p: Diff, replaced: set[str]) -> None:
    for fid, f in p.desired.functions.items():
        have = p.actual.functions.get(fid)
        text = _function_sql(f)
        if have is None or fid in replaced:
            p.add(text, "create_function", fid, hazards=_definer_hazard(f), provides=frozenset({fid, f.name_id}),
                  requires=_needs(p, f.schema, f.depends_on, fid, have is not None))
        elif have.definition != f.definition:
            p.add(text, "replace_function", fid, hazards=_definer_hazard(f),
                  provides=frozenset({fid, f.name_id}), requires=frozenset(f.depends_on))
        before = have.comment if have is not None and fid not in replaced else None
        if f.comment != before:
            p.add(f"COMMENT ON {_ROUTINE[f.kind]} {q(f.schema, f.name)}({f.identity_args}) IS {lit(f.comment)}",
                  "comment", fid, requires=frozenset({fid}))
    removed = {r for s in p.steps for r in s.removes}
    for fid, have in p.actual.functions.items():
        if fid in replaced:
            _check_function_users(p, have, removed)
            p.add(f"DROP {_ROUTINE[have.kind]} {q(have.schema, have.name)}({have.identity_args})",
                  "drop_function", fid, removes=frozenset({fid, have.name_id}),
                  hazards=_drift(fid in p.desired.functions,
                                 f"{_ROUTINE[have.kind].lower()} {have.schema}.{have.name}({have.identity_args})", fid),
                  provides=frozenset({fid + "#gone"}), drop_before=frozenset(have.depends_on))


def _check_function_users(p: Diff, f: Function, removed: set[str]) -> None:
    """A function dropped and created again (new signature or result type) while a column
    default, constraint or index that stays keeps calling it: PostgreSQL refuses the DROP."""
    if f.id not in p.desired.functions:
        return
    for user, uses in sorted(p.actual.depends.items()):
        if (user.split(":", 1)[0] in ("column", "constraint", "index") and f.id in uses
                and user not in removed and f.id in p.desired.depends.get(user, ())):
            raise UnsupportedError(
                "function change", f"{f.schema}.{f.name}({f.identity_args})",
                f"its result type or parameters change, so it must be dropped and created again, but "
                f"{user.replace(':', ' ', 1)} uses it; change it in two deployments")


# -- views and materialized views


def diff_views(p: Diff, replaced: set[str]) -> None:
    for key, v in p.desired.views.items():
        have = p.actual.views.get(key)
        if have is None or have.id in replaced:
            create_view(p, v, recreated=have is not None)
            continue
        if not have.same_definition(v):
            # same leading columns: the view keeps its identity, its grants and its dependants
            p.add(_view_sql(v, "CREATE OR REPLACE VIEW"), "replace_view", v.id, provides=frozenset({v.id}),
                  requires=frozenset(v.depends_on))
        view_extras(p, v, have)
    for have in p.actual.views.values():
        if have.id in replaced:
            p.add(f"DROP {_VIEW_WORD[have.kind]} {q(have.schema, have.name)}", "drop_view", have.id,
                  hazards=_drift(have.id in p.desired.views,
                                 f"{_VIEW_WORD[have.kind].lower()} {have.schema}.{have.name}", have.id),
                  removes=frozenset({have.id} | {i.id for i in have.indexes.values()}),
                  provides=frozenset({have.id + "#gone"}), drop_before=frozenset(have.depends_on))


def create_view(p: Diff, v: View, recreated: bool) -> None:
    verb = "CREATE MATERIALIZED VIEW" if v.kind == "m" else "CREATE VIEW"
    p.add(_view_sql(v, verb), "create_view", v.id, provides=frozenset({v.id}),
          requires=_needs(p, v.schema, v.depends_on, v.id, recreated))
    view_extras(p, v, None)


def view_extras(p: Diff, v: View, have: View | None) -> None:
    """Comments and (materialized views) indexes; `have` is None for a view just created."""
    name = q(v.schema, v.name)
    if v.comment != (have.comment if have else None):
        p.add(f"COMMENT ON {_VIEW_WORD[v.kind]} {name} IS {lit(v.comment)}", "comment", v.id,
              requires=frozenset({v.id}))
    old, new = dict(have.column_comments) if have else {}, dict(v.column_comments)
    for col in sorted(set(old) | set(new)):
        if old.get(col) != new.get(col):
            p.add(f"COMMENT ON COLUMN {q(v.schema, v.name, col)} IS {lit(new.get(col))}", "comment", v.id,
                  requires=frozenset({v.id}))
    old_idx = have.indexes if have else {}
    for iname, idx in old_idx.items():
        if iname not in v.indexes or v.indexes[iname].definition != idx.definition or not idx.valid:
            p.add(f"DROP INDEX CONCURRENTLY {q(idx.schema, idx.name)}", "drop_index", idx.id, mode=NONE,
                  removes=frozenset({idx.id}),
                  hazards=(Hazard(hz.INDEX_DROPPED, f"index {idx.schema}.{idx.name} on materialized view "
                                  f"{v.name} is dropped; queries using it slow down", idx.id),))
    for iname, idx in v.indexes.items():
        was = old_idx.get(iname)
        if was is not None and was.definition == idx.definition and was.valid:
            if was.comment != idx.comment:
                p.add(f"COMMENT ON INDEX {q(idx.schema, idx.name)} IS {lit(idx.comment)}", "comment", idx.id)
            continue
        if have is None:
            p.add(idx.definition, "create_index", idx.id, provides=frozenset({idx.id}),
                  requires=frozenset({v.id}))
        else:
            p.add(concurrently(idx.definition), "create_index", idx.id, mode=NONE,
                  provides=frozenset({idx.id}), requires=frozenset({v.id}),
                  hazards=(Hazard(hz.INDEX_BUILD, f"index {idx.name} is built on materialized view "
                                  f"{v.schema}.{v.name} (CONCURRENTLY: reads go on)", idx.id),))
        if idx.comment:
            p.add(f"COMMENT ON INDEX {q(idx.schema, idx.name)} IS {lit(idx.comment)}", "comment", idx.id,
                  requires=frozenset({idx.id}))


# -- triggers


def diff_triggers(p: Diff, replaced: set[str]) -> None:
    for tid, t in p.desired.triggers.items():
        have = p.actual.triggers.get(tid)
        fresh = have is None or tid in replaced
        if fresh:
            p.add(t.definition, "create_trigger", tid, provides=frozenset({tid}),
                  requires=_needs(p, t.schema, t.depends_on, tid, have is not None))
        if t.enabled != ("O" if fresh else have.enabled):
            p.add(f"ALTER TABLE {q(t.schema, t.table)} {_TRIGGER_STATE[t.enabled]} TRIGGER {q(t.name)}",
                  "enable_trigger", tid, requires=frozenset({tid}), table=oid_key("table", t.schema, t.table))
        if t.comment != (None if fresh else have.comment):
            p.add(f"COMMENT ON TRIGGER {q(t.name)} ON {q(t.schema, t.table)} IS {lit(t.comment)}", "comment",
                  tid, requires=frozenset({tid}))
    for tid, have in p.actual.triggers.items():
        if tid in replaced and not _owner_dropped(p, have.schema, have.table):
            p.add(f"DROP TRIGGER {q(have.name)} ON {q(have.schema, have.table)}", "drop_trigger", tid,
                  hazards=_drift(tid in p.desired.triggers, f"trigger {have.name} on {have.schema}.{have.table}",
                                 tid),
                  removes=frozenset({tid}), provides=frozenset({tid + "#gone"}),
                  drop_before=frozenset(have.depends_on))


# -- row-level security


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
                      hazards=(Hazard(hz.AUTHZ_CHANGE, f"row-level security on {t.schema}.{t.name} is {state}",
                                      t.id),), requires=frozenset({t.id}), table=t.id)


def diff_policies(p: Diff, replaced: set[str]) -> None:
    for pid, pol in p.desired.policies.items():
        have = p.actual.policies.get(pid)
        where = f"policy {pol.name} on {pol.schema}.{pol.table}"
        fresh = have is None or pid in replaced
        if fresh:
            p.add(_policy_sql(pol), "create_policy", pid, provides=frozenset({pid}),
                  hazards=(Hazard(hz.AUTHZ_CHANGE, f"{where} is created", pid),),
                  requires=_needs(p, pol.schema, pol.depends_on, pid, have is not None))
        elif (have.roles, have.using, have.with_check) != (pol.roles, pol.using, pol.with_check):
            parts = [f"TO {_roles(pol.roles)}" if have.roles != pol.roles else "",
                     f"USING ({pol.using})" if have.using != pol.using else "",
                     f"WITH CHECK ({pol.with_check})" if have.with_check != pol.with_check else ""]
            p.add(f"ALTER POLICY {q(pol.name)} ON {q(pol.schema, pol.table)} " + " ".join(x for x in parts if x),
                  "alter_policy", pid, provides=frozenset({pid}), requires=frozenset(pol.depends_on),
                  hazards=(Hazard(hz.AUTHZ_CHANGE, f"{where} changes", pid),))
        if pol.comment != (None if fresh else have.comment):
            p.add(f"COMMENT ON POLICY {q(pol.name)} ON {q(pol.schema, pol.table)} IS {lit(pol.comment)}", "comment",
                  pid, requires=frozenset({pid}))
    for pid, have in p.actual.policies.items():
        if pid in replaced and not _owner_dropped(p, have.schema, have.table):
            p.add(f"DROP POLICY {q(have.name)} ON {q(have.schema, have.table)}", "drop_policy", pid,
                  hazards=(Hazard(hz.AUTHZ_CHANGE, f"policy {have.name} on {have.schema}.{have.table} is "
                                  "dropped", pid),),
                  removes=frozenset({pid}), provides=frozenset({pid + "#gone"}),
                  drop_before=frozenset(have.depends_on))


# -- privileges


def diff_privileges(p: Diff) -> None:
    """GRANT/REVOKE the difference between ACLs, as sets of (grantee, privilege, grantable).
    An object created by this plan starts from its default ACL as the target's default
    privileges make it; an object that is dropped takes its ACL along."""
    removed = {r for s in p.steps for r in s.removes}
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
                      hazards=(Hazard(hz.AUTHZ_CHANGE, f"{', '.join(names)} on {target} {word} "
                                      f"{who}", oid),))


def diff_default_privileges(p: Diff) -> None:
    removed = {r for s in p.steps for r in s.removes}
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


# -- wiring what other steps use


def wire_dependencies(p: Diff, replaced: set[str], retyped: set[str]) -> None:
    """Column defaults, constraints and indexes that call a function are created after it
    and changed or dropped before it goes; a column is retyped only after the views,
    triggers and policies that read it are dropped."""
    blocked: dict[str, set[str]] = {}
    for oid, deps in _actual_objects(p).items():
        if oid in replaced:
            for col in retyped.intersection(deps):
                blocked.setdefault(col, set()).add(oid + "#gone")

    def functions(cat: Catalog, oid: str) -> set[str]:
        return {d for d in cat.depends.get(oid, ()) if d.startswith("function:")}

    def table_parts(tid: str) -> list[str]:
        schema, name = split_qualified(tid.split(":", 1)[1])
        t = p.actual.tables.get(tid)
        if t is None:
            return []
        # DROP TABLE takes its defaults, constraints, indexes, triggers and policies along
        return ([column_id(schema, name, c) for c in t.columns] + [constraint_id(schema, name, c) for c in t.constraints]
                + [i.id for i in t.indexes.values()]
                + [x.id for x in (*p.actual.triggers.values(), *p.actual.policies.values())
                   if (x.schema, x.table) == (schema, name)])

    out = []
    for s in p.steps:
        if s.kind not in _OBJECT_KINDS:
            req: set[str] = set()
            before: set[str] = set()
            for x in s.provides:
                req |= functions(p.desired, x) | blocked.get(x, set())
            if not s.kind.startswith("create_"):
                for x in s.provides | s.removes:
                    before |= functions(p.actual, x)
                    if x.startswith("table:") and x in s.removes:
                        for part in table_parts(x):
                            before |= functions(p.actual, part)
            req -= s.provides
            if req or before:
                s = replace(s, requires=s.requires | req, drop_before=s.drop_before | before)
        out.append(s)
    p.steps = out
