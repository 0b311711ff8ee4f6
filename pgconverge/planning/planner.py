"""The planner: a pure function from (actual, desired) catalogs to ordered steps.

No I/O happens here. Each step carries its SQL, its hazards, how it must run
(inside a transaction or not) and what it creates, changes or removes, so a
dependency graph can order the steps: an object is created after what it needs
and dropped before what it needs.
"""


from __future__ import annotations

import re
from dataclasses import replace

from pgconverge.catalog.model import Catalog, Column, Constraint, EnumType, Index, Sequence, Table, oid_key, sequence_id, table_id, column_id, constraint_id
from pgconverge.errors import PlanError, UnsupportedError
from pgconverge.planning import hazards as hz
from pgconverge.planning.hazards import Hazard
from pgconverge.planning.steps import GROUP, NONE, OWN, Step, order_steps
from pgconverge.quoting import lit, q
from pgconverge.planning.ddl import (CON_WORD, DEFERRAL, NAMEDATALEN, SIMPLE_KEY, concurrently, not_null_check_name, rename_column_record, rename_table_record, split_qualified, strip_not_valid, swap_ident, swap_references, swap_regclass, type_change_hazards, volatile_default, with_index_name)
from pgconverge.planning.context import Diff, PlanOptions
from pgconverge.planning.kinds import objects, partitions, types

class Planner(Diff):
    """The diff of every kind, in order."""

    # -- entry point

    def run(self) -> list[Step]:
        if self.desired.unsupported:
            u = self.desired.unsupported[0]
            raise UnsupportedError(u.kind, u.identity, "declared in sql/ but not managed by pgconverge")
        if self.actual.unsupported:
            u = self.actual.unsupported[0]
            raise UnsupportedError(u.kind, u.identity, "exists in the database but is not managed by pgconverge")
        self.apply_renames()
        # tables PostgreSQL cannot change in place (partitioned or not, partition key): key -> why
        self.recreated = partitions.recreated(self)
        self.diff_schemas()
        self.diff_extensions()
        types.diff_collations(self)
        self.diff_enums()
        types.diff_domains(self)
        types.diff_composites(self)
        types.diff_ranges(self)
        self.diff_sequences()
        self.diff_tables()
        partitions.link(self)
        objects.diff_objects(self)  # last: views, functions, triggers, policies follow the rest
        return order_steps(self.steps)

    # -- renames

    def apply_renames(self) -> None:
        """Emit the declared renames whose old name exists and new name does not, and
        rewrite the actual catalog as if they had run, so the rest of the diff sees the
        renamed objects (and what refers to them) under their new names.

        A rename is a no-op once it ran (only the new name exists) and on a database
        where neither exists (the diff creates the object). When both exist, it is
        skipped with a warning and the old object is left to the diff, which drops it
        only when the policy allows and names it.
        """
        items = [tuple(r) + ("",) * (6 - len(r)) for r in self.options.renames.items]
        # tables first: the other renames name their table by its new name
        for kind, schema, table, old, new, where in sorted(items, key=lambda r: r[0] != "table"):
            where = f" (-- @renamed-from at {where})" if where else ""
            if kind == "table":
                self.rename_table(schema, old, new, where)
            elif kind == "column":
                self.rename_column(schema, table, old, new, where)
            elif kind == "constraint":
                self.rename_constraint(schema, table, old, new, where)
            elif kind == "index":
                self.rename_index(schema, old, new, where)

    def _must_rename(self, kind: str, old: str, new: str, old_exists: bool, new_exists: bool, old_declared: bool,
                     where: str) -> bool:
        if old_declared:
            raise PlanError(f"{kind} {new} is declared renamed from {old}{where}, but {old} is declared in sql/ too: "
                            "remove the directive or the old definition")
        if old_exists and new_exists:
            self.warnings.append(f"{kind} {old} is declared renamed to {new}{where}, but both exist: the rename is "
                                 f"skipped and {old} is left to the diff (dropped only if named for deletion)")
            return False
        return old_exists

    def _rewrite_tables(self, fn) -> None:
        for key, t in list(self.actual.tables.items()):
            self.actual.tables[key] = fn(t)

    def rename_table(self, schema: str, old: str, new: str, where: str) -> None:
        if not self._must_rename("table", f"{schema}.{old}", f"{schema}.{new}", table_id(schema, old) in self.actual.tables,
                                 table_id(schema, new) in self.actual.tables, table_id(schema, old) in self.desired.tables,
                                 where):
            return
        new_id, old_id = table_id(schema, new), table_id(schema, old)
        self.add(f"ALTER TABLE {q(schema, old)} RENAME TO {q(new)}", "rename", new_id,
                 hazards=(Hazard(hz.RENAMES, f"table {schema}.{old} is renamed to {new}; clients using the old name "
                                 "break", old_id),),
                 provides=frozenset({new_id}), table=new_id)
        self.actual.tables[new_id] = rename_table_record(self.actual.tables.pop(old_id), new)

        def refs(t: Table) -> Table:  # foreign keys that point at it now print the new name
            cons = {k: replace(c, ref_table=new_id, definition=swap_references(c.definition, schema, old, new))
                    if c.kind == "f" and c.ref_table == old_id else c for k, c in t.constraints.items()}
            return replace(t, constraints=cons)

        self._rewrite_tables(refs)
        for key, s in list(self.actual.sequences.items()):
            if s.schema == schema and s.owned_by and s.owned_by[0] == old:
                self.actual.sequences[key] = replace(s, owned_by=(new, s.owned_by[1]))
        self.rename_derived(schema, new, old, new)

    def rename_column(self, schema: str, table: str | None, old: str, new: str, where: str) -> None:
        t = self.actual.tables.get(table_id(schema, table)) if table else None
        if t is None:
            return  # the table is new: the diff creates it with the new column
        want = self.desired.tables.get(table_id(schema, table))
        if not self._must_rename("column", f"{schema}.{table}.{old}", f"{schema}.{table}.{new}", old in t.columns,
                                 new in t.columns, want is not None and old in want.columns, where):
            return
        self.add(f"ALTER TABLE {q(schema, table)} RENAME COLUMN {q(old)} TO {q(new)}", "rename",
                 column_id(schema, table, new),
                 hazards=(Hazard(hz.RENAMES, f"column {schema}.{table}.{old} is renamed to {new}; clients using the "
                                 "old name break", column_id(schema, table, old)),),
                 provides=frozenset({column_id(schema, table, new)}), requires=frozenset({t.id}), table=t.id)
        self.actual.tables[t.id] = rename_column_record(t, old, new)

        def refs(other: Table) -> Table:  # foreign keys of other tables that name the column
            cons = {k: replace(c, definition=swap_references(c.definition, schema, table, table, old, new))
                    if c.kind == "f" and c.ref_table == t.id and other.id != t.id else c
                    for k, c in other.constraints.items()}
            return replace(other, constraints=cons)

        self._rewrite_tables(refs)
        for key, s in list(self.actual.sequences.items()):
            if s.schema == schema and s.owned_by == (table, old):
                self.actual.sequences[key] = replace(s, owned_by=(table, new))
        self.rename_derived(schema, table, old, new)

    def rename_constraint(self, schema: str, table: str | None, old: str, new: str, where: str) -> None:
        t = self.actual.tables.get(table_id(schema, table)) if table else None
        if t is None:
            return
        want = self.desired.tables.get(table_id(schema, table))
        if not self._must_rename("constraint", f"{old} on {schema}.{table}", new, old in t.constraints,
                                 new in t.constraints, want is not None and old in want.constraints, where):
            return
        self._emit_constraint_rename(t, old, new, (Hazard(hz.RENAMES, f"constraint {old} on {schema}.{table} is "
                                                          f"renamed to {new}", constraint_id(schema, table, old)),))

    def rename_index(self, schema: str, old: str, new: str, where: str) -> None:
        owner = self.actual.index_owner(schema, old)
        if not self._must_rename("index", f"{schema}.{old}", f"{schema}.{new}", owner is not None,
                                 self.actual.index_owner(schema, new) is not None,
                                 self.desired.index_owner(schema, old) is not None, where):
            return
        self._emit_index_rename(owner, old, new, (Hazard(hz.RENAMES, f"index {schema}.{old} is renamed to {new}",
                                                         oid_key("index", schema, old)),))

    def _emit_constraint_rename(self, t: Table, old: str, new: str, hazards: tuple[Hazard, ...] = ()) -> None:
        cid = constraint_id(t.schema, t.name, new)
        self.add(f"ALTER TABLE {q(t.schema, t.name)} RENAME CONSTRAINT {q(old)} TO {q(new)}", "rename", cid,
                 hazards=hazards, provides=frozenset({cid}), requires=frozenset({t.id}), table=t.id)
        # a primary key or unique constraint renames its index with it
        cons = {(new if k == old else k): (replace(c, name=new, index=new if c.index == old else c.index)
                                           if k == old else c) for k, c in t.constraints.items()}
        self.actual.tables[t.id] = replace(t, constraints=cons)

    def _emit_index_rename(self, owner: Table, old: str, new: str, hazards: tuple[Hazard, ...] = ()) -> None:
        iid = oid_key("index", owner.schema, new)
        self.add(f"ALTER INDEX {q(owner.schema, old)} RENAME TO {q(new)}", "rename", iid, hazards=hazards,
                 provides=frozenset({iid}), requires=frozenset({owner.id}), table=owner.id)
        idx = {(new if k == old else k): (replace(i, name=new, definition=swap_ident(i.definition, old, new))
                                          if k == old else i) for k, i in owner.indexes.items()}
        self.actual.tables[owner.id] = replace(owner, indexes=idx)

    def rename_derived(self, schema: str, table: str, old: str, new: str) -> None:
        """PostgreSQL keeps the names it derived from a table or column name (t_pkey,
        t_col_key, t_col_idx, t_id_seq) when that name changes, while the shadow derives
        them from the new name. Rename such an object when the desired catalog has the
        derived name with the very same definition, instead of rebuilding it."""
        t = self.actual.tables.get(table_id(schema, table))
        want = self.desired.tables.get(table_id(schema, table))
        if t is None or want is None:
            return

        def derived(name: str) -> str | None:
            # the old name as a whole "_"-separated part of the derived one: t_col_key, t_pkey, t_id_seq
            cand = re.sub(r"(?:^|(?<=_))" + re.escape(old) + r"(?=_|$)", lambda _m: new, name, count=1)
            return cand if cand != name and len(cand.encode()) <= NAMEDATALEN else None

        for name, con in list(t.constraints.items()):
            cand = derived(name)
            other = want.constraints.get(cand) if cand else None
            if (other is not None and name not in want.constraints and cand not in t.constraints
                    and other.kind == con.kind
                    and strip_not_valid(other.definition) == strip_not_valid(con.definition)):
                self._emit_constraint_rename(self.actual.tables[table_id(schema, table)], name, cand)
        for name, idx in list(t.indexes.items()):
            cand = derived(name)
            other = want.indexes.get(cand) if cand else None
            if (other is not None and name not in want.indexes and self.actual.index_owner(schema, cand) is None
                    and other.definition == swap_ident(idx.definition, name, cand)):
                self._emit_index_rename(self.actual.tables[table_id(schema, table)], name, cand)
        for key, s in list(self.actual.sequences.items()):
            cand = derived(s.name) if s.schema == schema and s.owned_by and s.owned_by[0] == table else None
            sid = sequence_id(schema, cand) if cand else ""
            if (cand and sid in self.desired.sequences and s.id not in self.desired.sequences
                    and sid not in self.actual.sequences):
                self.add(f"ALTER SEQUENCE {q(schema, s.name)} RENAME TO {q(cand)}", "rename", sid,
                         provides=frozenset({sid}))
                self.actual.sequences[sid] = replace(self.actual.sequences.pop(key), name=cand)
                # column defaults name the sequence: nextval('schema.seq'::regclass)
                self._rewrite_tables(lambda x: replace(x, columns={
                    k: replace(c, default=swap_regclass(c.default, schema, s.name, cand)) if c.default else c
                    for k, c in x.columns.items()}))
        t = self.actual.tables[table_id(schema, table)]
        for cname, col in t.columns.items():
            seq, goal = col.identity_sequence, want.columns.get(cname)
            goal_seq = goal.identity_sequence if goal is not None else None
            if seq is not None and goal_seq is not None and derived(seq.name) == goal_seq.name:
                sid = oid_key("sequence", schema, goal_seq.name)
                self.add(f"ALTER SEQUENCE {q(schema, seq.name)} RENAME TO {q(goal_seq.name)}", "rename", sid,
                         provides=frozenset({sid}), table=t.id)
                cols = dict(t.columns)
                cols[cname] = replace(col, identity_sequence=replace(seq, name=goal_seq.name))
                t = replace(t, columns=cols)
                self.actual.tables[table_id(schema, table)] = t

    # -- schemas and extensions

    def diff_schemas(self) -> None:
        for sid, s in self.desired.schemas.items():
            have = self.actual.schemas.get(sid)
            if have is None:
                self.add(f"CREATE SCHEMA {q(s.name)}", "create_schema", s.id, provides=frozenset({s.id}))
            if s.comment != (have.comment if have is not None else None):
                self.add(f"COMMENT ON SCHEMA {q(s.name)} IS {lit(s.comment)}", "comment", s.id, requires=frozenset({s.id}))
        for sid, s in self.actual.schemas.items():
            if sid not in self.desired.schemas:
                self.add(f"DROP SCHEMA {q(s.name)}", "drop_schema", s.id, removes=frozenset({s.id}),
                         hazards=(Hazard(hz.DELETES_DATA, f"schema {s.name} is dropped", s.id),))

    def diff_extensions(self) -> None:
        for eid, e in self.desired.extensions.items():
            name = e.name
            compare_version = self.options.compare_extension_versions or name in self.options.pinned_extensions
            have = self.actual.extensions.get(eid)
            haz = (Hazard(hz.EXTENSION_CHANGE, f"extension {name} is installed", e.id),)
            if have is None:
                version = f" VERSION {lit(e.version)}" if compare_version else ""
                self.add(f"CREATE EXTENSION IF NOT EXISTS {q(name)} WITH SCHEMA {q(e.schema)}{version}",
                         "create_extension", e.id, hazards=haz, provides=frozenset({e.id}),
                         requires=frozenset({oid_key("schema", e.schema)}))
                continue
            if have.schema != e.schema:
                self.add(f"ALTER EXTENSION {q(name)} SET SCHEMA {q(e.schema)}", "alter_extension", e.id,
                         hazards=(Hazard(hz.EXTENSION_CHANGE, f"extension {name} moves to schema {e.schema}", e.id),),
                         provides=frozenset({e.id}), requires=frozenset({oid_key("schema", e.schema)}))
            if compare_version and have.version != e.version:
                self.add(f"ALTER EXTENSION {q(name)} UPDATE TO {lit(e.version)}", "alter_extension", e.id,
                         hazards=(Hazard(hz.EXTENSION_CHANGE,
                                         f"extension {name} is updated from {have.version} to {e.version}", e.id),),
                         provides=frozenset({e.id}))
        for eid, e in self.actual.extensions.items():
            name = e.name
            if eid not in self.desired.extensions:
                self.add(f"DROP EXTENSION {q(name)}", "drop_extension", e.id, removes=frozenset({e.id}),
                         hazards=(Hazard(hz.EXTENSION_CHANGE, f"extension {name} is dropped", e.id),
                                  Hazard(hz.DELETES_DATA, f"extension {name} is dropped with its objects", e.id)))

    # -- enum types

    def diff_enums(self) -> None:
        for key, e in self.desired.enums.items():
            have = self.actual.enums.get(key)
            if have is None:
                labels = ", ".join(lit(v) for v in e.labels)
                self.add(f"CREATE TYPE {q(e.schema, e.name)} AS ENUM ({labels})", "create_type", e.id,
                         provides=frozenset({e.id}), requires=frozenset({oid_key("schema", e.schema)}))
            elif have.labels != e.labels:
                self.alter_enum(have, e)
            if e.comment != (have.comment if have else None):
                self.add(f"COMMENT ON TYPE {q(e.schema, e.name)} IS {lit(e.comment)}", "comment", e.id, requires=frozenset({e.id}))
        for key, e in self.actual.enums.items():
            if key not in self.desired.enums:
                self.add(f"DROP TYPE {q(e.schema, e.name)}", "drop_type", e.id, removes=frozenset({e.id}),
                         hazards=(Hazard(hz.DELETES_DATA, f"enum type {e.schema}.{e.name} is dropped", e.id),))

    def alter_enum(self, have: EnumType, want: EnumType) -> None:
        removed = [v for v in have.labels if v not in want.labels]
        kept = [v for v in want.labels if v in have.labels]
        if removed or kept != [v for v in have.labels if v in want.labels]:
            # ADD VALUE cannot remove or reorder: a new type takes the old one's place
            types.recreate_enum(self, have, want)
            return
        current = list(have.labels)
        for i, label in enumerate(want.labels):
            if label in current:
                continue
            # place it next to its neighbour in the desired order
            if i + 1 < len(want.labels) and want.labels[i + 1] in current:
                where = f" BEFORE {lit(want.labels[i + 1])}"
                current.insert(current.index(want.labels[i + 1]), label)
            elif i > 0:
                where = f" AFTER {lit(want.labels[i - 1])}"
                current.insert(current.index(want.labels[i - 1]) + 1, label)
            else:
                where = ""
                current.append(label)
            # a new enum value cannot be used before its transaction commits
            self.add(f"ALTER TYPE {q(want.schema, want.name)} ADD VALUE {lit(label)}{where}", "alter_type",
                     want.id, mode=OWN, provides=frozenset({want.id}))

    # -- sequences

    def sequence_options(self, s: Sequence, old: Sequence | None = None) -> list[str]:
        opts = []
        if old is None or s.data_type != old.data_type:
            opts.append(f"AS {s.data_type}")
        pairs = [("INCREMENT BY", s.increment, old.increment if old else None),
                 ("MINVALUE", s.min_value, old.min_value if old else None),
                 ("MAXVALUE", s.max_value, old.max_value if old else None),
                 ("START WITH", s.start, old.start if old else None),
                 ("CACHE", s.cache, old.cache if old else None)]
        for word, value, before in pairs:
            if old is None or value != before:
                opts.append(f"{word} {int(value)}")
        if old is None or s.cycle != old.cycle:
            opts.append("CYCLE" if s.cycle else "NO CYCLE")
        return opts

    def diff_sequences(self) -> None:
        for key, s in self.desired.sequences.items():
            have = self.actual.sequences.get(key)
            if have is None:
                self.add(f"CREATE SEQUENCE {q(s.schema, s.name)} {' '.join(self.sequence_options(s))}", "create_sequence", s.id,
                         provides=frozenset({s.id}), requires=frozenset({oid_key("schema", s.schema)}))
            else:
                opts = self.sequence_options(s, have)
                if opts:
                    self.add(f"ALTER SEQUENCE {q(s.schema, s.name)} {' '.join(opts)}", "alter_sequence", s.id,
                             provides=frozenset({s.id}))
            if s.owned_by and (have is None or have.owned_by != s.owned_by):
                t, c = s.owned_by
                self.add(f"ALTER SEQUENCE {q(s.schema, s.name)} OWNED BY {q(s.schema, t, c)}", "owned_by", s.id,
                         requires=frozenset({s.id, column_id(s.schema, t, c)}))
            elif have is not None and have.owned_by and not s.owned_by:
                self.add(f"ALTER SEQUENCE {q(s.schema, s.name)} OWNED BY NONE", "owned_by", s.id)
            if s.comment != (have.comment if have else None):
                self.add(f"COMMENT ON SEQUENCE {q(s.schema, s.name)} IS {lit(s.comment)}", "comment", s.id, requires=frozenset({s.id}))
        for key, s in self.actual.sequences.items():
            if key in self.desired.sequences:
                continue
            if s.owned_by and self._column_goes(table_id(s.schema, s.owned_by[0]), s.owned_by[1]):
                continue  # dropped together with the table or column that owns it
            self.add(f"DROP SEQUENCE {q(s.schema, s.name)}", "drop_sequence", s.id, removes=frozenset({s.id}),
                     hazards=(Hazard(hz.DELETES_DATA, f"sequence {s.schema}.{s.name} is dropped with its position",
                                     s.id),))

    def _column_goes(self, table: str, column: str) -> bool:
        want = self.desired.tables.get(table)
        return want is None or column not in want.columns

    # -- tables

    def diff_tables(self) -> None:
        for key, t in self.desired.tables.items():
            have = self.actual.tables.get(key)
            if have is None or key in self.recreated:
                self.new_tables.add(key)
                self.create_table(t)
            else:
                self.alter_table(have, t)
        for key, t in self.actual.tables.items():
            if key not in self.desired.tables or key in self.recreated:
                self.dropped_tables.add(key)
                self.drop_table(t)
        partitions.keep_across_recreation(self)

    def column_sql(self, schema: str, c: Column) -> str:
        parts = [q(c.name), c.type]
        if c.collation:
            parts.append(f"COLLATE {c.collation}")
        if c.generated == "s":
            parts.append(f"GENERATED ALWAYS AS ({c.default}) STORED")
        elif c.default is not None:
            parts.append(f"DEFAULT {c.default}")
        if c.not_null:
            parts.append("NOT NULL")
        if c.identity:
            parts.append(f"GENERATED {'ALWAYS' if c.identity == 'a' else 'BY DEFAULT'} AS IDENTITY"
                         + self.identity_options(c))
        return " ".join(parts)

    def identity_options(self, c: Column) -> str:
        s = c.identity_sequence
        if s is None:
            return ""
        # an identity sequence takes the column's type: AS is refused there
        opts = [f"SEQUENCE NAME {q(s.schema, s.name)}"] + [o for o in self.sequence_options(s) if not o.startswith("AS ")]
        return f" ({' '.join(opts)})"

    def table_requires(self, t: Table) -> frozenset[str]:
        req = {oid_key("schema", t.schema)}
        for c in t.columns.values():
            req.update(c.depends_on)
        if t.partition_of:
            req.add(oid_key("table", t.partition_of))
        req.update(oid_key("table", p) for p in t.inherits)
        return frozenset(req)

    def create_table(self, t: Table) -> None:
        full, t = t, partitions.local_view(t)  # what parents carry is created by them
        items = [self.column_sql(t.schema, c) for c in sorted(t.columns.values(), key=lambda c: c.position)
                 if not c.inherited]
        for con in t.constraints.values():
            if con.kind != "f":
                items.append(f"CONSTRAINT {q(con.name)} {con.definition}")
        unlogged = "UNLOGGED " if t.persistence == "u" else ""
        body = "(\n    " + ",\n    ".join(items) + "\n)" if items else "()"
        if t.partition_of:
            schema, name = split_qualified(t.partition_of)
            body = f"PARTITION OF {q(schema, name)} {body + ' ' if items else ''}{t.partition_bound}"
        elif t.inherits:
            body += " INHERITS (" + ", ".join(q(*split_qualified(p)) for p in t.inherits) + ")"
        if t.partition_key:
            body += f" PARTITION BY {t.partition_key}"
        provides = {t.id} | {column_id(t.schema, t.name, c) for c in t.columns}
        provides |= {constraint_id(t.schema, t.name, c.name) for c in t.constraints.values() if c.kind != "f"}
        self.add(f"CREATE {unlogged}TABLE {q(t.schema, t.name)} {body}", "create_table", t.id,
                 provides=frozenset(provides), requires=self.table_requires(t), table=t.id,
                 hazards=partitions.create_hazards(self, t))
        partitions.after_create(self, full)
        for con in t.constraints.values():
            if con.kind == "f":
                self.add_constraint(t, con, existing=False)
        for idx in t.indexes.values():
            self.create_index(t, idx, existing=False)
        self.comments(t, None)

    def drop_table(self, t: Table) -> None:
        # foreign keys pointing at this table from tables that stay must go first
        why = self.recreated.get(t.id)
        reason = (f"table {t.schema}.{t.name} {why}: it is dropped and created again, its rows are lost" if why
                  else f"table {t.schema}.{t.name} is dropped with its rows")
        self.add(f"DROP TABLE {q(t.schema, t.name)}", "drop_table", t.id,
                 hazards=(Hazard(hz.DELETES_DATA, reason, t.id),),
                 removes=frozenset({t.id}), drop_before=frozenset(
                     {oid_key("table", t.partition_of)} if t.partition_of else set()), table=t.id)
        for con in t.constraints.values():
            if con.kind == "f" and con.ref_table != t.id and not con.inherited:
                # drop outgoing FKs separately so that tables dropped together need no CASCADE
                self.drop_constraint(t, con)

    def alter_table(self, have: Table, want: Table) -> None:
        tid = want.id
        if have.persistence != want.persistence:
            word = "UNLOGGED" if want.persistence == "u" else "LOGGED"
            self.add(f"ALTER TABLE {q(want.schema, want.name)} SET {word}", "alter_table", tid,
                     hazards=(Hazard(hz.REWRITES_TABLE, f"table {want.schema}.{want.name} is rewritten to become "
                                     f"{word.lower()}", tid),
                              Hazard(hz.BLOCKS_READS_WRITES, f"{want.schema}.{want.name}: reads and writes wait for "
                                     "the rewrite (ACCESS EXCLUSIVE)", tid)), table=tid, provides=frozenset({tid}))
        # detach, attach, (NO) INHERIT; then diff what the table will be once its parents'
        # steps recursed into it, without the copies its parents carry
        have, want = partitions.relationship(self, have, want)
        # what an earlier run that failed half-way left behind, and this run finishes:
        # the NOT NULL checks of the online SET NOT NULL, and unique indexes built CONCURRENTLY
        # for a key that was not attached yet
        finishing = {not_null_check_name(n) for n, c in want.columns.items()
                     if c.not_null and n in have.columns and not have.columns[n].not_null}
        adopted = self.adopted_indexes.setdefault(tid, set())
        for name, con in want.constraints.items():
            left = have.indexes.get(name)
            if (con.kind in "pu" and name not in have.constraints and left is not None and left.valid
                    and left.unique and con.index_definition
                    and left.definition == with_index_name(con.index_definition, con.index or name, name)):
                adopted.add(name)
        # constraints that change are dropped before columns change and added after
        for name, con in have.constraints.items():
            new = want.constraints.get(name)
            if new is None and name in finishing:
                continue
            if new is None or strip_not_valid(new.definition) != strip_not_valid(con.definition):
                self.drop_constraint(have, con)
        for name, c in want.columns.items():
            old = have.columns.get(name)
            if old is None:
                self.add_column(want, c)
            elif not old.same_definition(c):
                self.alter_column(want, old, c)
        for name, c in have.columns.items():
            if name not in want.columns:
                self.drop_column(have, c)
        for name, con in want.constraints.items():
            old = have.constraints.get(name)
            if old is None or strip_not_valid(old.definition) != strip_not_valid(con.definition):
                self.add_constraint(want, con, existing=True)
            elif not old.validated and con.validated:
                self.validate_constraint(want, con)
        for name, idx in have.indexes.items():
            new = want.indexes.get(name)
            if name in adopted:
                continue
            if new is None or new.definition != idx.definition or not idx.valid:
                self.drop_index(have, idx)
        for name, idx in want.indexes.items():
            old = have.indexes.get(name)
            if old is None or old.definition != idx.definition or not old.valid:
                self.create_index(want, idx, existing=True)
        self.comments(want, have)

    # -- columns

    def add_column(self, t: Table, c: Column) -> None:
        cid = column_id(t.schema, t.name, c.name)
        hazards = []
        if c.generated or (c.default and volatile_default(c.default)) or c.identity:
            hazards.append(Hazard(hz.REWRITES_TABLE, f"adding column {t.name}.{c.name} with a computed value "
                                  f"rewrites {t.schema}.{t.name}", cid))
            hazards.append(Hazard(hz.BLOCKS_READS_WRITES, f"{t.schema}.{t.name}: reads and writes wait for the "
                                  f"rewrite that fills {c.name} (ACCESS EXCLUSIVE)", cid))
        if c.not_null and c.default is None and not c.identity:
            hazards.append(Hazard(hz.MAY_FAIL_ON_EXISTING_DATA, f"NOT NULL column {t.name}.{c.name} without a default "
                                  "fails if the table has rows", cid))
        self.add(f"ALTER TABLE {q(t.schema, t.name)} ADD COLUMN {self.column_sql(t.schema, c)}", "add_column", cid,
                 hazards=tuple(hazards), provides=frozenset({cid}), requires=frozenset(c.depends_on) | {t.id},
                 table=t.id)

    def drop_column(self, t: Table, c: Column) -> None:
        cid = column_id(t.schema, t.name, c.name)
        # ONLY: the children that declare the column themselves keep it (and its values)
        only = "ONLY " if partitions.children_keep(self, t, c.name) else ""
        self.add(f"ALTER TABLE {only}{q(t.schema, t.name)} DROP COLUMN {q(c.name)}", "drop_column", cid,
                 hazards=(Hazard(hz.DELETES_DATA, f"column {t.schema}.{t.name}.{c.name} is dropped with its values",
                                 cid),), removes=frozenset({cid}), drop_before=frozenset(c.depends_on), table=t.id)

    def alter_column(self, t: Table, old: Column, new: Column) -> None:
        cid = column_id(t.schema, t.name, new.name)
        tq = q(t.schema, t.name)
        cq = q(new.name)
        prefix = f"ALTER TABLE {tq} ALTER COLUMN {cq}"

        def step(text: str, hazards: tuple[Hazard, ...] = (), **kw) -> None:
            self.add(text, "alter_column", cid, hazards=hazards, provides=frozenset({cid}),
                     requires=frozenset(new.depends_on), table=t.id, **kw)

        if new.generated and (old.generated != new.generated or old.default != new.default):
            # PostgreSQL 15 cannot change a generation expression in place: drop and add
            if old.generated:
                self.add(f"ALTER TABLE {tq} DROP COLUMN {cq}", "drop_column", cid, removes=frozenset({cid}),
                         table=t.id, hazards=(Hazard(hz.REWRITES_TABLE, f"generated column {t.name}.{new.name} is "
                                                     "dropped and recomputed with its new expression", cid),))
            else:
                self.drop_column(t, old)
            self.add_column(t, new)
            return
        if old.generated and not new.generated:
            # keeps the computed values as plain data
            step(f"{prefix} DROP EXPRESSION")
            old = replace(old, generated="", default=None)
        if old.identity and not new.identity:
            step(f"{prefix} DROP IDENTITY")
        retyped = old.type != new.type or old.collation != new.collation
        default_changes = old.default != new.default or retyped
        # a default may not cast to the new type: drop it around the type change
        if old.default is not None and default_changes and (new.default is None or retyped):
            step(f"{prefix} DROP DEFAULT")
        if retyped:
            collate = f" COLLATE {new.collation}" if new.collation else ""
            # enums have no cast between each other: go through text
            via_text = "::text" if self._is_enum(old.type) or self._is_enum(new.type) else ""
            using = f" USING {cq}{via_text}::{new.type}" if old.type != new.type else ""
            step(f"{prefix} TYPE {new.type}{collate}{using}", type_change_hazards(t, old, new))
        if new.default is not None and default_changes:
            step(f"{prefix} SET DEFAULT {new.default}")
        if new.not_null and not old.not_null:
            rewritten = retyped and any(h.name == hz.REWRITES_TABLE for h in type_change_hazards(t, old, new))
            self.set_not_null(t, new, rewritten)
        elif old.not_null and not new.not_null:
            step(f"{prefix} DROP NOT NULL")
        if new.identity and not old.identity:
            # an identity needs the column NOT NULL first (set online above, when it was not)
            self.add(f"{prefix} ADD GENERATED {'ALWAYS' if new.identity == 'a' else 'BY DEFAULT'} AS IDENTITY"
                     + self.identity_options(new), "alter_column", cid, provides=frozenset({cid}),
                     requires=frozenset(new.depends_on) | {cid + "#not_null"}, table=t.id)
        elif new.identity and old.identity:
            if new.identity != old.identity:
                step(f"{prefix} SET GENERATED {'ALWAYS' if new.identity == 'a' else 'BY DEFAULT'}")
            if new.identity_sequence and old.identity_sequence:
                opts = self.sequence_options(new.identity_sequence, old.identity_sequence)
                opts = [o for o in opts if not o.startswith("AS ")]
                if opts:
                    step(f"{prefix} " + " ".join(f"SET {o}" for o in opts))

    def set_not_null(self, t: Table, c: Column, rewritten: bool) -> None:
        """SET NOT NULL on an existing column. Online form (PostgreSQL 12+): a CHECK (col IS
        NOT NULL) added NOT VALID (brief lock), VALIDATEd in its own transaction (a scan under
        SHARE UPDATE EXCLUSIVE: reads and writes go on), then SET NOT NULL, which trusts the
        validated check and skips its scan, then the check is dropped. A check left by an
        earlier run that failed half-way is reused."""
        cid = column_id(t.schema, t.name, c.name)
        tq = q(t.schema, t.name)
        where = f"{t.schema}.{t.name}.{c.name}"
        fails = Hazard(hz.MAY_FAIL_ON_EXISTING_DATA, f"SET NOT NULL on {where} fails if a row holds NULL", cid)
        plain = f"ALTER TABLE {tq} ALTER COLUMN {q(c.name)} SET NOT NULL"
        if rewritten:
            # the type change in this run rewrites the table under ACCESS EXCLUSIVE already
            self.add(plain, "alter_column", cid, hazards=(fails,), provides=frozenset({cid, cid + "#not_null"}),
                     requires=frozenset(c.depends_on), table=t.id)
            return
        if t.kind == "p" or 0 < self.actual.server_version < 120000:
            # no NOT VALID check on a partitioned table; before 12, SET NOT NULL always scans
            self.add(plain, "alter_column", cid, provides=frozenset({cid, cid + "#not_null"}),
                     requires=frozenset(c.depends_on), table=t.id, hazards=(fails, Hazard(hz.BLOCKS_READS_WRITES, f"SET NOT NULL on {where} scans "
                                                        f"{t.schema}.{t.name} under ACCESS EXCLUSIVE", cid)))
            return
        name = not_null_check_name(c.name)
        helper = constraint_id(t.schema, t.name, name)
        have = self.actual.tables.get(t.id)
        left = have.constraints.get(name) if have is not None else None
        hazards: tuple[Hazard, ...] = (fails,)
        if left is None:
            self.add(f"ALTER TABLE {tq} ADD CONSTRAINT {q(name)} CHECK ({q(c.name)} IS NOT NULL) NOT VALID",
                     "add_constraint", helper, hazards=hazards, provides=frozenset({helper + "#check"}),
                     requires=frozenset({t.id}), table=t.id)
            hazards = ()
        if left is None or not left.validated:
            self.add(f"ALTER TABLE {tq} VALIDATE CONSTRAINT {q(name)}", "validate", helper, mode=OWN,
                     hazards=hazards, requires=frozenset({helper + "#check"}), provides=frozenset({helper + "#valid"}),
                     table=t.id)
            hazards = ()
        self.add(plain, "alter_column", cid, hazards=hazards, provides=frozenset({cid, cid + "#not_null"}),
                 requires=frozenset(c.depends_on) | {helper + "#valid"}, table=t.id)
        # transient ids ("#check"...): the graph must not see the helper as dropped and made again
        self.add(f"ALTER TABLE {tq} DROP CONSTRAINT {q(name)}", "drop_constraint", helper,
                 requires=frozenset({cid + "#not_null"}), table=t.id)

    def _is_enum(self, type_name: str) -> bool:
        base = type_name[:-2] if type_name.endswith("[]") else type_name
        enums = (*self.actual.enums.values(), *self.desired.enums.values())
        keys = {f"{q(e.schema)}.{q(e.name)}" for e in enums} | {f"{e.schema}.{e.name}" for e in enums}
        return base in keys

    # -- constraints

    def add_constraint(self, t: Table, con: Constraint, existing: bool) -> None:
        cid = constraint_id(t.schema, t.name, con.name)
        requires = {t.id} | {column_id(t.schema, t.name, c) for c in con.columns}
        if con.ref_table:
            requires.add(con.ref_table)
            ref = self.desired.tables.get(con.ref_table)
            if ref is not None:
                requires |= {constraint_id(ref.schema, ref.name, c.name) for c in ref.constraints.values()
                             if c.kind in "pu"}
                requires |= {i.id for i in ref.indexes.values() if i.unique}
        if existing and con.kind in "pu" and t.kind != "p" and self.unique_index_sql(t, con) is not None:
            self.add_constraint_using_index(t, con, frozenset(requires))
            return
        kind = "add_fk" if con.kind == "f" else "add_constraint"
        definition = strip_not_valid(con.definition)
        hazards: list[Hazard] = []
        # on an existing table a FK or CHECK goes in NOT VALID, and is validated in a step of its own
        online = existing and con.kind in "fc" and con.validated
        if existing:
            word = CON_WORD[con.kind]
            hazards.append(Hazard(hz.MAY_FAIL_ON_EXISTING_DATA,
                                  f"new {word} {con.name} on {t.schema}.{t.name} fails if existing rows "
                                  "violate it", cid))
            if con.kind in "pux":
                # exclusion constraints (and keys of partitioned tables) have no online form
                hazards.append(Hazard(hz.INDEX_BUILD, f"{word} {con.name} builds its index on {t.schema}.{t.name}",
                                      cid))
                hazards.append(Hazard(hz.BLOCKS_READS_WRITES, f"{t.schema}.{t.name}: reads and writes wait while "
                                      f"the index of {con.name} is built (ACCESS EXCLUSIVE)", cid))
        if online or not con.validated:
            definition += " NOT VALID"
        self.add(f"ALTER TABLE {q(t.schema, t.name)} ADD CONSTRAINT {q(con.name)} {definition}", kind, cid,
                 hazards=tuple(hazards), provides=frozenset({cid}), requires=frozenset(requires), table=t.id)
        if online:
            self.validate_constraint(t, con)

    def unique_index_sql(self, t: Table, con: Constraint) -> str | None:
        """CREATE UNIQUE INDEX CONCURRENTLY for the index a PRIMARY KEY or UNIQUE constraint needs,
        named like the constraint (ADD CONSTRAINT ... USING INDEX keeps that name)."""
        if con.index_definition:
            definition = with_index_name(con.index_definition, con.index or con.name, con.name)
            return concurrently(definition)
        m = SIMPLE_KEY.match(con.definition)
        if m is None:
            return None
        return f"CREATE UNIQUE INDEX CONCURRENTLY {q(con.name)} ON {q(t.schema, t.name)} USING btree ({m.group(2)})"

    def add_constraint_using_index(self, t: Table, con: Constraint, requires: frozenset[str]) -> None:
        """UNIQUE or PRIMARY KEY on an existing table: build the index CONCURRENTLY (reads and
        writes go on), then attach it with a brief lock. A primary key's columns are made NOT
        NULL first (online, by alter_column), so attaching it scans nothing. A valid index of
        the same definition left by an earlier run is adopted instead of rebuilt."""
        cid = constraint_id(t.schema, t.name, con.name)
        iid = oid_key("index", t.schema, con.name)
        word = CON_WORD[con.kind]
        where = f"{t.schema}.{t.name}"
        create = self.unique_index_sql(t, con)
        if con.name not in self.adopted_indexes.get(t.id, ()):
            self.add(create, "create_index", iid, mode=NONE, provides=frozenset({iid}), requires=requires,
                     table=t.id, hazards=(
                         Hazard(hz.INDEX_BUILD, f"the unique index of {word} {con.name} is built on {where} "
                                "(CONCURRENTLY: reads and writes go on)", iid),
                         Hazard(hz.MAY_FAIL_ON_EXISTING_DATA, f"new {word} {con.name} on {where} fails if existing "
                                "rows hold duplicates" + (" or NULLs" if con.kind == "p" else ""), cid)))
        attach = "PRIMARY KEY" if con.kind == "p" else "UNIQUE"
        deferral = DEFERRAL.search(con.definition).group(0)
        self.add(f"ALTER TABLE {q(t.schema, t.name)} ADD CONSTRAINT {q(con.name)} {attach} USING INDEX "
                 f"{q(con.name)}{deferral}", "add_constraint", cid, provides=frozenset({cid}),
                 requires=requires | {iid}, table=t.id)

    def validate_constraint(self, t: Table, con: Constraint) -> None:
        cid = constraint_id(t.schema, t.name, con.name)
        # VALIDATE scans the table under SHARE UPDATE EXCLUSIVE; it gets a transaction of its own
        self.add(f"ALTER TABLE {q(t.schema, t.name)} VALIDATE CONSTRAINT {q(con.name)}",
                 "validate_fk" if con.kind == "f" else "validate", cid, mode=OWN,
                 requires=frozenset({cid}), provides=frozenset({cid + "#valid"}), table=t.id)

    def drop_constraint(self, t: Table, con: Constraint) -> None:
        cid = constraint_id(t.schema, t.name, con.name)
        kind = "drop_fk" if con.kind == "f" else "drop_constraint"
        hazards = (Hazard(hz.INDEX_DROPPED, f"{CON_WORD[con.kind]} {con.name} on {t.schema}.{t.name} is dropped "
                          "with its index", cid),) if con.kind in "pux" else ()
        self.add(f"ALTER TABLE {q(t.schema, t.name)} DROP CONSTRAINT {q(con.name)}", kind, cid,
                 removes=frozenset({cid}), table=t.id, hazards=hazards)

    # -- indexes

    def create_index(self, t: Table, idx: Index, existing: bool) -> None:
        requires = {t.id} | {column_id(t.schema, t.name, c) for c in idx.columns}
        where = f"{t.schema}.{t.name}"
        fails = (Hazard(hz.MAY_FAIL_ON_EXISTING_DATA, f"unique index {idx.name} on {where} fails if existing rows "
                        "hold duplicates", idx.id),) if idx.unique else ()
        if existing and t.kind != "p":
            text = concurrently(idx.definition)
            self.add(text, "create_index", idx.id, mode=NONE, provides=frozenset({idx.id}),
                     requires=frozenset(requires), table=t.id,
                     hazards=(Hazard(hz.INDEX_BUILD, f"index {idx.name} is built on {where} "
                                     "(CONCURRENTLY: reads and writes go on)", idx.id),) + fails)
        elif existing:
            # a partitioned table has no CONCURRENTLY: SHARE lock on every partition during the build
            self.add(idx.definition, "create_index", idx.id, provides=frozenset({idx.id}),
                     requires=frozenset(requires), table=t.id,
                     hazards=(Hazard(hz.INDEX_BUILD, f"index {idx.name} is built on partitioned table {where}",
                                     idx.id),
                              Hazard(hz.BLOCKS_WRITES, f"{where}: writes wait while index {idx.name} is built "
                                     "(SHARE lock; partitioned tables cannot build CONCURRENTLY)", idx.id)) + fails)
        else:
            self.add(idx.definition, "create_index", idx.id, provides=frozenset({idx.id}),
                     requires=frozenset(requires), table=t.id)
        if idx.comment:
            self.add(f"COMMENT ON INDEX {q(idx.schema, idx.name)} IS {lit(idx.comment)}", "comment", idx.id,
                     requires=frozenset({idx.id}))

    def drop_index(self, t: Table, idx: Index) -> None:
        concurrently = " CONCURRENTLY" if t.kind != "p" else ""
        # an INVALID index (left by a failed concurrent build) serves no query: dropping it is no hazard
        hazards = (Hazard(hz.INDEX_DROPPED, f"index {idx.schema}.{idx.name} on {t.name} is dropped; "
                          "queries using it slow down", idx.id),) if idx.valid else ()
        self.add(f"DROP INDEX{concurrently} {q(idx.schema, idx.name)}", "drop_index", idx.id,
                 mode=NONE if concurrently else GROUP, removes=frozenset({idx.id}), table=t.id, hazards=hazards)

    # -- comments

    def comments(self, want: Table, have: Table | None) -> None:
        tq = q(want.schema, want.name)
        if want.comment != (have.comment if have else None):
            self.add(f"COMMENT ON TABLE {tq} IS {lit(want.comment)}", "comment", want.id,
                     requires=frozenset({want.id}))
        for name, c in want.columns.items():
            before = have.columns[name].comment if have and name in have.columns else None
            if c.comment != before:
                cid = column_id(want.schema, want.name, name)
                self.add(f"COMMENT ON COLUMN {q(want.schema, want.name, name)} IS {lit(c.comment)}", "comment", cid,
                         requires=frozenset({cid}))
        for name, con in want.constraints.items():
            old = have.constraints.get(name) if have else None
            before = old.comment if old and old.definition == con.definition else None
            if con.comment != before:
                cid = constraint_id(want.schema, want.name, name)
                self.add(f"COMMENT ON CONSTRAINT {q(name)} ON {tq} IS {lit(con.comment)}", "comment", cid,
                         requires=frozenset({cid}))
        if have is not None:
            for name, idx in want.indexes.items():
                old = have.indexes.get(name)
                if old is not None and old.definition == idx.definition and old.valid and old.comment != idx.comment:
                    self.add(f"COMMENT ON INDEX {q(idx.schema, idx.name)} IS {lit(idx.comment)}", "comment", idx.id)



def diff(actual: Catalog, desired: Catalog, options: PlanOptions | None = None) -> list[Step]:
    """The pure diff: ordered steps that turn `actual` into `desired`."""
    return Planner(_copy(actual), desired, options or PlanOptions()).run()


def diff_with_warnings(actual: Catalog, desired: Catalog,
                       options: PlanOptions | None = None) -> tuple[list[Step], list[str]]:
    """The diff, and what the planner wants the operator to know (e.g. a rename it skipped)."""
    planner = Planner(_copy(actual), desired, options or PlanOptions())
    steps = planner.run()
    return steps, planner.warnings


def _copy(cat: Catalog) -> Catalog:
    # renames rewrite the actual catalog; keep the caller's copy intact
    return replace(cat, tables=dict(cat.tables), schemas=dict(cat.schemas), extensions=dict(cat.extensions),
                   enums=dict(cat.enums), sequences=dict(cat.sequences), unsupported=list(cat.unsupported),
                   extra=dict(cat.extra))
