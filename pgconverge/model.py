"""The catalog data model: plain, comparable records built by introspection.

Every definition text here is what PostgreSQL itself printed (``format_type``,
``pg_get_expr``, ``pg_get_constraintdef``, ``pg_get_indexdef`` ...) in a session
whose search_path is ``pg_catalog`` only, so names are fully qualified and two
databases can be compared by plain string equality.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any


def oid_key(kind: str, *parts: str) -> str:
    """A stable object id such as ``table:public.users``: used in hazards, graphs and directives."""
    return f"{kind}:{'.'.join(parts)}"


@dataclass(frozen=True)
class Schema:
    name: str
    comment: str | None = None
    owner_is_default: bool = True

    @property
    def id(self) -> str:
        return oid_key("schema", self.name)


@dataclass(frozen=True)
class Extension:
    name: str
    schema: str
    version: str

    @property
    def id(self) -> str:
        return oid_key("extension", self.name)


@dataclass(frozen=True)
class EnumType:
    schema: str
    name: str
    labels: tuple[str, ...]
    comment: str | None = None

    @property
    def id(self) -> str:
        return oid_key("type", self.schema, self.name)


@dataclass(frozen=True)
class Sequence:
    schema: str
    name: str
    data_type: str
    start: int
    increment: int
    min_value: int
    max_value: int
    cache: int
    cycle: bool
    # (table, column) that owns the sequence: serial columns and OWNED BY
    owned_by: tuple[str, str] | None = None
    comment: str | None = None

    @property
    def id(self) -> str:
        return oid_key("sequence", self.schema, self.name)


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    not_null: bool = False
    default: str | None = None
    collation: str | None = None  # only when it differs from the type's default
    identity: str = ""  # "" | "a" (ALWAYS) | "d" (BY DEFAULT)
    identity_sequence: Sequence | None = None
    generated: str = ""  # "" | "s" (STORED); the expression is in default
    comment: str | None = None
    position: int = 0
    # user types, sequences and functions this column's type or default needs
    depends_on: tuple[str, ...] = ()

    def same_definition(self, other: Column) -> bool:
        """Equal but for position and dependencies, which never cause an ALTER."""
        skip = {"position", "depends_on"}
        return all(getattr(self, f.name) == getattr(other, f.name) for f in fields(self) if f.name not in skip)


@dataclass(frozen=True)
class Constraint:
    name: str
    kind: str  # p primary key, u unique, c check, f foreign key, x exclusion
    definition: str  # pg_get_constraintdef
    columns: tuple[str, ...] = ()
    validated: bool = True
    ref_table: str | None = None  # table id of a foreign key's referenced table
    index: str | None = None  # backing index name of p/u/x
    comment: str | None = None
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class Index:
    schema: str
    name: str
    table: str
    definition: str  # pg_get_indexdef: a complete CREATE INDEX statement
    unique: bool = False
    valid: bool = True
    comment: str | None = None
    columns: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return oid_key("index", self.schema, self.name)


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    persistence: str = "p"  # p permanent, u unlogged
    kind: str = "r"  # r plain, p partitioned
    columns: dict[str, Column] = field(default_factory=dict)
    constraints: dict[str, Constraint] = field(default_factory=dict)
    indexes: dict[str, Index] = field(default_factory=dict)
    comment: str | None = None
    # filled by the coverage kinds: partitioning, inheritance, row-level security
    partition_key: str | None = None
    partition_of: str | None = None
    partition_bound: str | None = None
    inherits: tuple[str, ...] = ()
    rls_enabled: bool = False
    rls_forced: bool = False
    estimated_rows: int = 0

    @property
    def id(self) -> str:
        return oid_key("table", self.schema, self.name)


@dataclass(frozen=True)
class Unsupported:
    """An object of a kind the planner does not manage: a plan touching it fails loudly."""

    kind: str
    identity: str


@dataclass
class Catalog:
    server_version: int = 0
    schemas: dict[str, Schema] = field(default_factory=dict)
    extensions: dict[str, Extension] = field(default_factory=dict)
    enums: dict[tuple[str, str], EnumType] = field(default_factory=dict)
    sequences: dict[tuple[str, str], Sequence] = field(default_factory=dict)
    tables: dict[tuple[str, str], Table] = field(default_factory=dict)
    unsupported: list[Unsupported] = field(default_factory=list)
    available_extensions: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def index_owner(self, schema: str, index: str) -> Table | None:
        for table in self.tables.values():
            if table.schema == schema and index in table.indexes:
                return table
        return None


def to_plain(value: Any) -> Any:
    """Dataclasses to JSON-able structures, for hashing and the ledger."""
    if is_dataclass(value):
        return {f.name: to_plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {(k if isinstance(k, str) else ".".join(k)): to_plain(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value
