"""Planning of the type-like kinds: collations, domains, composite and range types, and the
enum changes that ``ALTER TYPE ... ADD VALUE`` cannot make.

Each function takes the running ``Planner`` and adds its steps; ids are the ones columns
already name in ``depends_on`` (``type:s.n``, ``collation:s.n``), so the dependency graph
orders a type before the tables that use it and after the columns that stop using it.
PostgreSQL cannot alter a collation, a range type or a domain's base type: those are
dropped and created again when nothing uses them, and refused loudly when something does.
"""

from __future__ import annotations

from dataclasses import replace

from pgconverge.planning import hazards as hz
from pgconverge.planning.context import Diff
from pgconverge.planning.hazards import Hazard
from pgconverge.catalog.model import Catalog, Collation, CompositeType, Domain, EnumType, RangeType, oid_key
from pgconverge.planning.steps import OWN
from pgconverge.errors import UnsupportedError
from pgconverge.catalog.model import column_id
from pgconverge.quoting import lit, q



def users_of(cat: Catalog, oid: str) -> list[str]:
    """What in a catalog uses a type or collation id: columns, domains, composite and range
    types, and whatever the dependency map knows (views, functions)."""
    out = []
    for t in cat.tables.values():
        for c in t.columns.values():
            if oid in c.depends_on and not c.inherited:
                out.append(oid_key("column", t.schema, t.name, c.name))
    for kind in (cat.domains, cat.composites, cat.ranges):
        for obj in kind.values():
            if oid in obj.depends_on and obj.id != oid:
                out.append(obj.id)
    # a range type's constructor functions (of the range and of its multirange) come with it
    own = {oid.split(":", 1)[1]}
    rng = next((r for r in cat.ranges.values() if r.id == oid), None)
    if rng is not None and rng.multirange:
        own.add(".".join(part.strip('"') for part in rng.multirange.split(".", 1)))
    for user, uses in getattr(cat, "depends", {}).items():
        if oid in uses and not user.startswith(("column:", "constraint:", "index:")):
            if user.startswith("function:") and user.split(":", 1)[1].split("(", 1)[0] in own:
                continue
            out.append(user)
    return sorted(set(out))


def _still_used(p: Diff, oid: str) -> list[str]:
    """Users in the database that the desired state keeps using the object."""
    wanted = set(users_of(p.desired, oid))
    return [u for u in users_of(p.actual, oid) if u in wanted]


def _drop_hazard(what: str, oid: str) -> tuple[Hazard, ...]:
    # a drop of something sql/ no longer defines is gated like every drop: named and allowed
    return (Hazard(hz.DELETES_DATA, f"{what} is dropped", oid),)


def _comment(p: Diff, kind_word: str, qualified: str, oid: str, want: str | None, have: str | None) -> None:
    if want != have:
        p.add(f"COMMENT ON {kind_word} {qualified} IS {lit(want)}", "comment", oid, requires=frozenset({oid}))


# --------------------------------------------------------------------------- collations


def collation_sql(c: Collation) -> str:
    if c.provider == "i":
        opts = ["provider = icu", f"locale = {lit(c.locale)}"]
    elif c.provider == "c":
        opts = ["provider = libc", f"lc_collate = {lit(c.lc_collate)}", f"lc_ctype = {lit(c.lc_ctype)}"]
    else:
        raise UnsupportedError("collation", f"{c.schema}.{c.name}", f"provider {c.provider!r} cannot be created")
    if not c.deterministic:
        opts.append("deterministic = false")
    return f"CREATE COLLATION {q(c.schema, c.name)} ({', '.join(opts)})"


def diff_collations(p: Diff) -> None:
    for key, c in p.desired.collations.items():
        have = p.actual.collations.get(key)
        if have is not None and replace(have, comment=None) != replace(c, comment=None):
            users = _still_used(p, c.id)
            if users:
                raise UnsupportedError("collation change", f"{c.schema}.{c.name}",
                                       f"a collation cannot be altered and {users[0]} uses it")
            drop_collation(p, have)
            have = None
        if have is None:
            p.add(collation_sql(c), "create_collation", c.id, provides=frozenset({c.id}),
                  requires=frozenset({oid_key("schema", c.schema)}))
        _comment(p, "COLLATION", q(c.schema, c.name), c.id, c.comment, have.comment if have else None)
    for key, c in p.actual.collations.items():
        if key not in p.desired.collations:
            drop_collation(p, c)


def drop_collation(p: Diff, c: Collation) -> None:
    p.add(f"DROP COLLATION {q(c.schema, c.name)}", "drop_collation", c.id, removes=frozenset({c.id}),
          hazards=_drop_hazard(f"collation {c.schema}.{c.name}", c.id))


# --------------------------------------------------------------------------- domains


def diff_domains(p: Diff) -> None:
    for key, d in p.desired.domains.items():
        have = p.actual.domains.get(key)
        if have is not None and (have.base_type, have.collation) != (d.base_type, d.collation):
            users = _still_used(p, d.id)
            if users:
                raise UnsupportedError("domain change", f"{d.schema}.{d.name}",
                                       f"its base type or collation cannot change while {users[0]} uses it")
            drop_type(p, have, "DOMAIN", f"domain {d.schema}.{d.name}")
            have = None
        if have is None:
            create_domain(p, d)
        else:
            alter_domain(p, have, d)
        _comment(p, "DOMAIN", q(d.schema, d.name), d.id, d.comment, have.comment if have else None)
    for key, d in p.actual.domains.items():
        if key not in p.desired.domains:
            drop_type(p, d, "DOMAIN", f"domain {d.schema}.{d.name}")


def create_domain(p: Diff, d: Domain) -> None:
    parts = [f"CREATE DOMAIN {q(d.schema, d.name)} AS {d.base_type}"]
    if d.collation:
        parts.append(f"COLLATE {d.collation}")
    if d.default is not None:
        parts.append(f"DEFAULT {d.default}")
    if d.not_null:
        parts.append("NOT NULL")
    requires = {oid_key("schema", d.schema), *d.depends_on}
    for con in d.constraints:
        if con.validated:  # CREATE DOMAIN takes no NOT VALID: those are added afterwards
            parts.append(f"CONSTRAINT {q(con.name)} {con.definition}")
            requires |= set(con.depends_on)
    p.add(" ".join(parts), "create_type", d.id, provides=frozenset({d.id}), requires=frozenset(requires))
    for con in d.constraints:
        if not con.validated:
            _add_domain_constraint(p, d, con, existing=False)


def _add_domain_constraint(p: Diff, d, con, existing: bool) -> None:
    cid = oid_key("constraint", d.schema, d.name, con.name)
    hazards = ()
    if existing:
        hazards = (Hazard(hz.MAY_FAIL_ON_EXISTING_DATA, f"new check {con.name} on domain {d.schema}.{d.name} fails if "
                          "a stored value violates it", cid),)
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
        step(f"ALTER DOMAIN {dq} SET NOT NULL", (Hazard(
            hz.MAY_FAIL_ON_EXISTING_DATA, f"SET NOT NULL on domain {want.schema}.{want.name} scans every column of "
            "that type and fails if one holds NULL", want.id),), mode=OWN)
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


def drop_type(p: Diff, obj, word: str, what: str) -> None:
    # what the type uses (a domain's base domain, a collation) goes after it
    p.add(f"DROP {word} {q(obj.schema, obj.name)}", "drop_type", obj.id, removes=frozenset({obj.id}),
          hazards=_drop_hazard(what, obj.id), drop_before=frozenset(obj.depends_on))


# --------------------------------------------------------------------------- composite types


def composite_sql(c: CompositeType) -> str:
    attrs = ", ".join(f"{q(a.name)} {a.type}" + (f" COLLATE {a.collation}" if a.collation else "")
                      for a in c.attributes)
    return f"CREATE TYPE {q(c.schema, c.name)} AS ({attrs})"


def diff_composites(p: Diff) -> None:
    for key, c in p.desired.composites.items():
        have = p.actual.composites.get(key)
        if have is not None and have.attributes != c.attributes and not alter_composite(p, have, c):
            drop_type(p, have, "TYPE", f"composite type {c.schema}.{c.name}")
            have = None
        if have is None:
            p.add(composite_sql(c), "create_type", c.id, provides=frozenset({c.id}),
                  requires=frozenset({oid_key("schema", c.schema), *c.depends_on}))
        _comment(p, "TYPE", q(c.schema, c.name), c.id, c.comment, have.comment if have else None)
    for key, c in p.actual.composites.items():
        if key not in p.desired.composites:
            drop_type(p, c, "TYPE", f"composite type {c.schema}.{c.name}")


def alter_composite(p: Diff, have: CompositeType, want: CompositeType) -> bool:
    """ALTER TYPE ... ADD/DROP/ALTER ATTRIBUTE when the order allows it (new attributes go at
    the end). False when the type must be created again, which only an unused type may be."""
    old = {a.name: a for a in have.attributes}
    new = {a.name: a for a in want.attributes}
    kept_old = [a.name for a in have.attributes if a.name in new]
    kept_new = [a.name for a in want.attributes if a.name in old]
    added = [a.name for a in want.attributes if a.name not in old]
    in_order = kept_old == kept_new and [a.name for a in want.attributes] == kept_new + added
    retyped = [n for n in kept_new if (old[n].type, old[n].collation) != (new[n].type, new[n].collation)]
    users = _still_used(p, want.id)
    if not in_order or (retyped and users):
        if users:
            why = (f"attribute {retyped[0]} cannot change type" if in_order else "its attributes are reordered")
            raise UnsupportedError("composite type change", f"{want.schema}.{want.name}", f"{why} while {users[0]} "
                                   "uses it")
        return False
    tq = q(want.schema, want.name)
    for name, a in old.items():
        if name not in new:
            hazards = ()
            if users:
                hazards = (Hazard(hz.DELETES_DATA, f"attribute {name} of {want.schema}.{want.name} is dropped from "
                                  f"the values stored in {', '.join(users)}", want.id),)
            p.add(f"ALTER TYPE {tq} DROP ATTRIBUTE {q(name)}", "alter_type", want.id, hazards=hazards,
                  provides=frozenset({want.id}), drop_before=frozenset(a.depends_on))
    for name in retyped:
        a = new[name]
        collate = f" COLLATE {a.collation}" if a.collation else ""
        p.add(f"ALTER TYPE {tq} ALTER ATTRIBUTE {q(name)} TYPE {a.type}{collate}", "alter_type", want.id,
              provides=frozenset({want.id}), requires=frozenset(a.depends_on),
              drop_before=frozenset(old[name].depends_on))
    for name in added:
        a = new[name]
        collate = f" COLLATE {a.collation}" if a.collation else ""
        p.add(f"ALTER TYPE {tq} ADD ATTRIBUTE {q(name)} {a.type}{collate}", "alter_type", want.id,
              provides=frozenset({want.id}), requires=frozenset(a.depends_on))
    return True


# --------------------------------------------------------------------------- range types


def range_sql(r: RangeType) -> str:
    opts = [f"SUBTYPE = {r.subtype}"]
    if r.subtype_opclass:
        opts.append(f"SUBTYPE_OPCLASS = {r.subtype_opclass}")
    if r.collation:
        opts.append(f"COLLATION = {r.collation}")
    if r.canonical:
        opts.append(f"CANONICAL = {r.canonical}")
    if r.subtype_diff:
        opts.append(f"SUBTYPE_DIFF = {r.subtype_diff}")
    if r.multirange:
        opts.append(f"MULTIRANGE_TYPE_NAME = {r.multirange}")
    return f"CREATE TYPE {q(r.schema, r.name)} AS RANGE ({', '.join(opts)})"


def diff_ranges(p: Diff) -> None:
    for key, r in p.desired.ranges.items():
        have = p.actual.ranges.get(key)
        if have is not None and replace(have, comment=None) != replace(r, comment=None):
            users = _still_used(p, r.id)
            if users:
                raise UnsupportedError("range type change", f"{r.schema}.{r.name}",
                                       f"a range type cannot be altered and {users[0]} uses it")
            drop_type(p, have, "TYPE", f"range type {r.schema}.{r.name}")
            have = None
        if have is None:
            p.add(range_sql(r), "create_type", r.id, provides=frozenset({r.id}),
                  requires=frozenset({oid_key("schema", r.schema), *r.depends_on}))
        _comment(p, "TYPE", q(r.schema, r.name), r.id, r.comment, have.comment if have else None)
    for key, r in p.actual.ranges.items():
        if key not in p.desired.ranges:
            drop_type(p, r, "TYPE", f"range type {r.schema}.{r.name}")


# --------------------------------------------------------------------------- enums


def _type_names(schema: str, name: str) -> set[str]:
    """How format_type may print a type: bare when visible, else qualified (quoted as needed)."""
    return {q(schema, name), f"{schema}.{name}", f"{q(schema)}.{name}", f"{schema}.{q(name)}"}


def enum_columns(p: Diff, e: EnumType) -> list[tuple[str, str, bool]]:
    """(table id, column, is_array) of the columns of kept tables that hold the enum, in the
    database and in the desired state alike. Inherited columns follow their parent's."""
    names = _type_names(e.schema, e.name)
    out = []
    for key, have in p.actual.tables.items():
        want = p.desired.tables.get(key)
        if want is None or key in getattr(p, "recreated", {}):
            continue
        for c in have.columns.values():
            if c.inherited:
                continue
            base, is_array = (c.type[:-2], True) if c.type.endswith("[]") else (c.type, False)
            if base not in names:
                continue
            w = want.columns.get(c.name)
            if w is not None and w.type == c.type:
                out.append((key, c.name, is_array))
    return out


def recreate_enum(p: Diff, have: EnumType, want: EnumType) -> None:
    """Remove or reorder values: build the new type under a temporary name, move the columns
    to it through text, drop the old type and give the new one its name."""
    removed = [v for v in have.labels if v not in want.labels]
    blockers = [u for u in _still_used(p, want.id) if not u.startswith(("column:", "view:"))]
    if blockers:
        raise UnsupportedError("enum change", f"{want.schema}.{want.name}",
                               f"removing or reordering values while {blockers[0]} uses the type")
    tmp = (want.name[:50] + "__pgc_new")
    tmp_id = oid_key("type", want.schema, tmp)
    p.add(f"CREATE TYPE {q(want.schema, tmp)} AS ENUM ({', '.join(lit(v) for v in want.labels)})", "create_type",
          tmp_id, provides=frozenset({tmp_id}), requires=frozenset({oid_key("schema", want.schema)}))
    moved = []
    for tkey, col, is_array in enum_columns(p, want):
        t_have, t_want = p.actual.tables[tkey], p.desired.tables[tkey]
        c_have, c_want = t_have.columns[col], t_want.columns[col]
        cid = column_id(t_have.schema, t_have.name, col)
        prefix = f"ALTER TABLE {q(t_have.schema, t_have.name)} ALTER COLUMN {q(col)}"
        tid = t_have.id
        if c_have.default is not None:
            p.add(f"{prefix} DROP DEFAULT", "alter_column", cid, provides=frozenset({cid}), table=tid)
        arr = "[]" if is_array else ""
        p.add(f"{prefix} TYPE {q(want.schema, tmp)}{arr} USING {q(col)}::text{arr}::{q(want.schema, tmp)}{arr}",
              "alter_column", cid, provides=frozenset({cid}), requires=frozenset({tmp_id}),
              drop_before=frozenset({want.id}), table=tid,
              hazards=(Hazard(hz.REWRITES_TABLE, f"{t_have.schema}.{t_have.name}.{col} moves to the new {want.name}; the table "
                              "is rewritten under ACCESS EXCLUSIVE", cid),
                       Hazard(hz.BLOCKS_READS_WRITES, f"{t_have.schema}.{t_have.name}: reads and writes wait for the rewrite",
                              cid)))
        if c_want.default is not None:
            # after the rename, so that the default's cast names the new type
            p.add(f"{prefix} SET DEFAULT {c_want.default}", "alter_column", cid, provides=frozenset({cid}),
                  requires=frozenset({want.id}), table=tid)
        # the generic column diff must not touch the default again
        cols = dict(p.actual.tables[tkey].columns)
        cols[col] = replace(c_have, default=c_want.default)
        p.actual.tables[tkey] = replace(p.actual.tables[tkey], columns=cols)
        moved.append(f"{t_have.name}.{col}")
    hazards = []
    if removed:
        hazards.append(Hazard(hz.DELETES_DATA, f"enum {want.schema}.{want.name} loses value(s) "
                              f"{', '.join(repr(v) for v in removed)}: rows holding them fail the cast"
                              + (f" ({', '.join(moved)})" if moved else ""), want.id))
    p.add(f"DROP TYPE {q(want.schema, want.name)}", "drop_type", want.id, removes=frozenset({want.id}),
          requires=frozenset({tmp_id}), hazards=tuple(hazards))
    p.add(f"ALTER TYPE {q(want.schema, tmp)} RENAME TO {q(want.name)}", "alter_type", want.id,
          provides=frozenset({want.id}), requires=frozenset({tmp_id}))
    if want.comment is not None and want.comment == have.comment:
        p.add(f"COMMENT ON TYPE {q(want.schema, want.name)} IS {lit(want.comment)}", "comment", want.id,
              requires=frozenset({want.id}))
