"""The rows of the catalog queries, as msgspec decodes them from the JSON document.

A kind whose query prints exactly its record's fields (Schema, Extension, Collation,
Function, Trigger, Unsupported) decodes straight into the frozen model dataclass and has
no row type here. The others print what SQL can (nullable arrays, flat owner columns,
nested rows) and become their record through ``record(parts)``: `parts` carries what one
kind's rows hand to another's (a table's constraints and indexes, a column's identity
sequence, a view's indexes, what everything depends on).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TypeVar

import msgspec

from pgconverge.catalog.model import (Acl, Attribute, Column, CompositeType, Constraint, DefaultAcl, Domain,
                                      DomainConstraint, EnumType, Function, Index, Privilege, RangeType,
                                      RlsPolicy, Sequence, Table, Trigger, View, oid_key, record_of)

# gc=False: rows hold no cycles, and a 1,000-table catalog decodes ~10^5 of them
_ROW = {"gc": False}


@dataclass
class Parts:
    """What the rows of one kind contribute to the records of another, collected first."""

    constraints: dict[tuple[str, str], dict[str, Constraint]] = field(default_factory=dict)
    indexes: dict[tuple[str, str], dict[str, Index]] = field(default_factory=dict)
    identity_sequences: dict[tuple[str, str, str], Sequence] = field(default_factory=dict)
    view_indexes: dict[tuple[str, str], dict[str, Index]] = field(default_factory=dict)
    depends: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _deps(type_deps: list[str] | None, seq_deps: list[str] | None = None, func_deps: list[str] | None = None,
          coll_dep: str | None = None) -> tuple[str, ...]:
    if not (type_deps or seq_deps or func_deps or coll_dep):
        return ()  # most columns: called once per column of every table
    deps = [oid_key("type", d) for d in type_deps or ()]
    deps += [oid_key("sequence", d) for d in seq_deps or ()]
    deps += [oid_key("function", d) for d in func_deps or ()]
    deps += [oid_key("collation", coll_dep)] if coll_dep else []
    return tuple(sorted(set(deps)))


def _privileges(rows: list[Privilege]) -> frozenset[Privilege]:
    return frozenset(rows)


Dependent = TypeVar("Dependent", Function, Trigger)


def with_depends(record: Dependent, parts: Parts) -> Dependent:
    """A record decoded as it is, with what pg_depend says it uses."""
    uses = parts.depends.get(record.id, ())
    return replace(record, depends_on=uses) if uses else record


class AvailableExtensionRow(msgspec.Struct, **_ROW):
    name: str
    version: str | None


class EnumRow(msgspec.Struct, **_ROW):
    schema: str
    name: str
    labels: list[str] | None
    comment: str | None

    def record(self, parts: Parts) -> EnumType:
        return EnumType(self.schema, self.name, tuple(self.labels or ()), self.comment)


class SequenceRow(msgspec.Struct, **_ROW):
    schema: str
    name: str
    data_type: str
    start: int
    increment: int
    min_value: int
    max_value: int
    cache: int
    cycle: bool
    owned_table: str | None
    owned_column: str | None
    owner_deptype: str | None
    comment: str | None

    def sequence(self) -> Sequence:
        owned = (self.owned_table, self.owned_column) if self.owned_table else None
        return Sequence(self.schema, self.name, self.data_type, self.start, self.increment, self.min_value,
                        self.max_value, self.cache, self.cycle, owned, self.comment)

    @property
    def is_identity(self) -> bool:
        # identity sequences belong to their column, not to the schema
        return self.owner_deptype == "i"

    def record(self, parts: Parts) -> Sequence | None:
        return None if self.is_identity else self.sequence()


class ColumnRow(msgspec.Struct, **_ROW):
    name: str
    type: str
    not_null: bool
    default: str | None
    collation: str | None
    coll_dep: str | None
    identity: str
    generated: str
    comment: str | None
    position: int
    local: bool
    type_deps: list[str] | None
    seq_deps: list[str] | None
    func_deps: list[str] | None
    volatile_default: bool = False
    storage: str | None = None
    type_storage: str | None = None
    statistics: int | None = None
    compression: str | None = None
    options: list[str] | None = None


class TableRow(msgspec.Struct, **_ROW):
    schema: str
    name: str
    kind: str
    persistence: str
    comment: str | None
    rls_enabled: bool
    rls_forced: bool
    estimated_rows: int
    partition_key: str | None
    partition_bound: str | None
    partition_of: str | None
    inherits: list[str] | None
    columns: list[ColumnRow]
    options: list[str] | None = None
    replica_identity: str = "d"
    replica_index: str | None = None
    cluster_index: str | None = None
    of_type: str | None = None
    of_type_dep: str | None = None
    partition_constraint: str | None = None

    def record(self, parts: Parts) -> Table:
        key = (self.schema, self.name)
        identity = parts.identity_sequences
        cols = {}
        for c in self.columns:
            cols[c.name] = record_of(
                Column, name=c.name, type=c.type, not_null=c.not_null, default=c.default, collation=c.collation,
                identity=c.identity,
                identity_sequence=identity.get((self.schema, self.name, c.name)),
                generated=c.generated, comment=c.comment, position=c.position,
                depends_on=_deps(c.type_deps, c.seq_deps, c.func_deps, c.coll_dep),
                inherited=not c.local, volatile_default=c.volatile_default,
                storage=c.storage, type_storage=c.type_storage, statistics=c.statistics, compression=c.compression,
                options=tuple(c.options) if c.options else (),  # as stored: pg_dump prints that order
            )
        return record_of(
            Table, schema=self.schema, name=self.name, persistence=self.persistence, kind=self.kind, columns=cols,
            constraints=parts.constraints.get(key, {}), indexes=parts.indexes.get(key, {}), comment=self.comment,
            partition_key=self.partition_key, partition_of=self.partition_of,
            partition_bound=self.partition_bound, inherits=tuple(self.inherits or ()),
            rls_enabled=self.rls_enabled, rls_forced=self.rls_forced, estimated_rows=self.estimated_rows,
            options=tuple(self.options) if self.options else (), replica_identity=self.replica_identity,
            replica_index=self.replica_index, cluster_index=self.cluster_index, of_type=self.of_type,
            of_type_id=oid_key("type", self.of_type_dep) if self.of_type_dep else None,
            partition_constraint=self.partition_constraint,
        )


class ConstraintRow(msgspec.Struct, **_ROW):
    schema: str
    table: str
    name: str
    kind: str
    definition: str
    validated: bool
    columns: list[str] | None
    ref_table: str | None
    index: str | None
    comment: str | None
    local: bool
    inhcount: int = 0
    index_definition: str | None = None

    def constraint(self) -> Constraint:
        return record_of(
            Constraint, name=self.name, kind=self.kind, definition=self.definition,
            columns=tuple(self.columns or ()), validated=self.validated,
            ref_table=oid_key("table", self.ref_table) if self.ref_table else None, index=self.index,
            comment=self.comment, depends_on=(), index_definition=self.index_definition,
            # a copy from a parent (even one the child redeclared): the parent's definition carries it
            inherited=not self.local or bool(self.inhcount), local=self.local,
        )


class IndexRow(msgspec.Struct, **_ROW):
    schema: str
    name: str
    table: str
    definition: str
    unique: bool
    valid: bool
    comment: str | None
    columns: list[str] | None
    partitioned: bool = False
    is_partition_child: bool = False
    options: list[str] | None = None
    statistics: list[tuple[int, int]] | None = None

    def index(self) -> Index:
        definition = self.definition
        if self.partitioned:
            # printed "ON ONLY" (the parent alone); created plainly it recurses to the partitions
            definition = definition.replace(" ON ONLY ", " ON ", 1)
        return record_of(Index, schema=self.schema, name=self.name, table=self.table, definition=definition,
                         unique=self.unique, valid=self.valid, comment=self.comment,
                         columns=tuple(self.columns or ()), inherited=self.is_partition_child,
                         options=tuple(self.options or ()),
                         statistics=tuple((n, v) for n, v in self.statistics or ()))


class DomainConstraintRow(msgspec.Struct, **_ROW):
    name: str
    definition: str
    validated: bool
    func_deps: list[str] | None
    comment: str | None = None


class DomainRow(msgspec.Struct, **_ROW):
    schema: str
    name: str
    base_type: str
    collation: str | None
    coll_dep: str | None
    default: str | None
    not_null: bool
    type_deps: list[str] | None
    constraints: list[DomainConstraintRow]
    comment: str | None

    def record(self, parts: Parts) -> Domain:
        cons = tuple(DomainConstraint(k.name, k.definition, k.validated,
                                      tuple(sorted(oid_key("function", f) for f in k.func_deps or ())), k.comment)
                     for k in self.constraints)
        return Domain(self.schema, self.name, self.base_type, self.collation, self.default, self.not_null, cons,
                      self.comment, _deps(self.type_deps, coll_dep=self.coll_dep))


class AttributeRow(msgspec.Struct, **_ROW):
    name: str
    type: str
    collation: str | None
    coll_dep: str | None
    type_deps: list[str] | None


class CompositeRow(msgspec.Struct, **_ROW):
    schema: str
    name: str
    attributes: list[AttributeRow]
    comment: str | None

    def record(self, parts: Parts) -> CompositeType:
        attrs = tuple(Attribute(a.name, a.type, a.collation, _deps(a.type_deps, coll_dep=a.coll_dep))
                      for a in self.attributes)
        return CompositeType(self.schema, self.name, attrs, self.comment)


class RangeRow(msgspec.Struct, **_ROW):
    schema: str
    name: str
    subtype: str
    subtype_opclass: str | None
    collation: str | None
    coll_dep: str | None
    canonical: str | None
    subtype_diff: str | None
    multirange: str | None
    type_deps: list[str] | None
    comment: str | None

    def record(self, parts: Parts) -> RangeType:
        return RangeType(self.schema, self.name, self.subtype, self.subtype_opclass, self.collation,
                         self.canonical, self.subtype_diff, self.multirange, self.comment,
                         _deps(self.type_deps, coll_dep=self.coll_dep))


class LedgerBlocksRow(msgspec.Struct, **_ROW):
    xml: str


class CastsRow(msgspec.Struct, **_ROW):
    pairs: list[tuple[str, str]] | None
    strings: list[str] | None
    known: list[str] | None


class SessionRow(msgspec.Struct, **_ROW):
    current_user: str


class ViewColumnRow(msgspec.Struct, **_ROW):
    name: str
    type: str
    comment: str | None


class ViewRow(msgspec.Struct, **_ROW):
    schema: str
    name: str
    kind: str
    definition: str
    columns: list[ViewColumnRow]
    options: list[str] | None
    comment: str | None

    def record(self, parts: Parts) -> View:
        v = View(
            self.schema, self.name, self.kind, self.definition,
            columns=tuple((c.name, c.type) for c in self.columns),
            options=tuple(self.options or ()), comment=self.comment,
            column_comments=tuple((c.name, c.comment) for c in self.columns if c.comment is not None),
            indexes=parts.view_indexes.get((self.schema, self.name), {}),
        )
        uses = parts.depends.get(v.id, ())
        return replace(v, depends_on=uses) if uses else v


class ViewIndexRow(msgspec.Struct, **_ROW):
    schema: str
    name: str
    view: str
    definition: str
    unique: bool
    valid: bool
    comment: str | None

    def index(self) -> Index:
        return Index(self.schema, self.name, self.view, self.definition, self.unique, self.valid, self.comment)


class PolicyRow(msgspec.Struct, **_ROW):
    schema: str
    table: str
    name: str
    permissive: bool
    command: str
    roles: list[str] | None
    using: str | None
    with_check: str | None
    comment: str | None

    def record(self, parts: Parts) -> RlsPolicy:
        p = RlsPolicy(self.schema, self.table, self.name, self.permissive, self.command,
                      tuple(self.roles or ("public",)), self.using, self.with_check, self.comment)
        uses = parts.depends.get(p.id, ())
        return replace(p, depends_on=uses) if uses else p


class AclRow(msgspec.Struct, **_ROW):
    kind: str
    schema: str
    name: str
    column: str | None
    args: str | None
    owner: str
    entries: list[Privilege]
    defaults: list[Privilege]

    def record(self, parts: Parts) -> Acl:
        return record_of(Acl, kind=self.kind, schema=self.schema, name=self.name, column=self.column,
                         args=self.args, entries=_privileges(self.entries), defaults=_privileges(self.defaults),
                         owner=self.owner)


class DefaultAclRow(msgspec.Struct, **_ROW):
    role: str
    schema: str | None
    objtype: str
    entries: list[Privilege]
    defaults: list[Privilege]

    def record(self, parts: Parts) -> DefaultAcl | None:
        d = DefaultAcl(self.role, self.schema, self.objtype, _privileges(self.entries), _privileges(self.defaults))
        # an entry that grants just the built-in default changes nothing
        return d if d.entries != d.defaults else None


class DependsRow(msgspec.Struct, **_ROW):
    object: str
    uses: tuple[str, ...]
