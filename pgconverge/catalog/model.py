"""The catalog data model: plain, comparable records built by introspection.

Every definition text here is what PostgreSQL itself printed (``format_type``,
``pg_get_expr``, ``pg_get_constraintdef``, ``pg_get_indexdef`` ...) in a session
whose search_path is ``pg_catalog`` only, so names are fully qualified and two
databases can be compared by plain string equality.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, ClassVar, TypeVar

R = TypeVar("R")

# Marks a field added after catalog hashes were first recorded (in ledgers and sign-offs): to_plain
# leaves it out while it holds its default, which means PostgreSQL's default, so a catalog that does
# not use it hashes as it did before the field existed.
OMIT_DEFAULT = {"omit_default": True}


def optional(default: Any) -> Any:
    """A field left out of to_plain() (and so of catalog_hash) while it holds `default`."""
    return field(default=default, metadata=OMIT_DEFAULT)


def oid_key(kind: str, *parts: str) -> str:
    """A stable object id such as ``table:public.users``: used in hazards, graphs and directives."""
    return f"{kind}:{'.'.join(parts)}"


def table_id(schema: str, name: str) -> str:
    return oid_key("table", schema, name)


def column_id(schema: str, table: str, col: str) -> str:
    return oid_key("column", schema, table, col)


def constraint_id(schema: str, table: str, name: str) -> str:
    return oid_key("constraint", schema, table, name)


def schema_id(name: str) -> str:
    return oid_key("schema", name)


def extension_id(name: str) -> str:
    return oid_key("extension", name)


def type_id(schema: str, name: str) -> str:
    """Enums, domains, composite and range types share one namespace, as in pg_type."""
    return oid_key("type", schema, name)


def sequence_id(schema: str, name: str) -> str:
    return oid_key("sequence", schema, name)


def view_id(schema: str, name: str) -> str:
    return oid_key("view", schema, name)


def collation_id(schema: str, name: str) -> str:
    return oid_key("collation", schema, name)


def index_id(schema: str, name: str) -> str:
    return oid_key("index", schema, name)



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
    # CREATE EXTENSION sets the control file's comment: only another one is sql/'s own. The three
    # are left out of the hash at their defaults, so catalogs without such a comment keep theirs.
    own_comment: bool = field(default=False, metadata=OMIT_DEFAULT)
    comment: str | None = field(default=None, metadata=OMIT_DEFAULT)  # when own_comment
    control_comment: str | None = field(default=None, metadata=OMIT_DEFAULT)  # when own_comment: to go back to

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
class Collation:
    schema: str
    name: str
    provider: str  # c libc, i icu, d database default
    locale: str | None = None  # icu
    lc_collate: str | None = None  # libc
    lc_ctype: str | None = None  # libc
    deterministic: bool = True
    comment: str | None = None

    @property
    def id(self) -> str:
        return oid_key("collation", self.schema, self.name)


@dataclass(frozen=True)
class DomainConstraint:
    name: str
    definition: str  # pg_get_constraintdef: CHECK ((VALUE > 0))
    validated: bool = True
    depends_on: tuple[str, ...] = ()
    # left out of the hash at None: catalogs hashed before domain constraints had comments keep their hash
    comment: str | None = field(default=None, metadata=OMIT_DEFAULT)


@dataclass(frozen=True)
class Domain:
    schema: str
    name: str
    base_type: str  # format_type of the base type with its typmod
    collation: str | None = None  # only when it differs from the base type's
    default: str | None = None
    not_null: bool = False
    constraints: tuple[DomainConstraint, ...] = ()
    comment: str | None = None
    depends_on: tuple[str, ...] = ()  # user types and collations the base type needs

    @property
    def id(self) -> str:
        return oid_key("type", self.schema, self.name)


@dataclass(frozen=True)
class Attribute:
    """One attribute of a composite type."""

    name: str
    type: str
    collation: str | None = None
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class CompositeType:
    schema: str
    name: str
    attributes: tuple[Attribute, ...] = ()
    comment: str | None = None

    @property
    def id(self) -> str:
        return oid_key("type", self.schema, self.name)

    @property
    def depends_on(self) -> tuple[str, ...]:
        return tuple(sorted({d for a in self.attributes for d in a.depends_on}))


@dataclass(frozen=True)
class RangeType:
    schema: str
    name: str
    subtype: str
    subtype_opclass: str | None = None  # only when not the subtype's default
    collation: str | None = None  # only when not the subtype's default
    canonical: str | None = None
    subtype_diff: str | None = None
    multirange: str | None = None  # qualified name of the multirange type made with it
    comment: str | None = None
    depends_on: tuple[str, ...] = ()

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
    # comes only from a parent table (inheritance or partitioning): not redeclared by this table
    inherited: bool = False
    # the default calls a VOLATILE function (pg_proc.provolatile = 'v', builtins included): adding
    # the column evaluates it per row, which rewrites the table. Read from the catalog, not guessed
    # from the text, so user-defined volatile functions count too.
    volatile_default: bool = False
    # ALTER COLUMN ... SET STORAGE: p plain, e external, m main, x extended; only when it differs
    # from the type's typstorage, so that columns that never set it hash as before
    storage: str | None = optional(None)
    # SET STATISTICS n; None: the default (-1)
    statistics: int | None = optional(None)
    # SET COMPRESSION: p pglz, l lz4; None: default_toast_compression at the time of writing
    compression: str | None = optional(None)
    # SET (n_distinct = ..., n_distinct_inherited = ...): attoptions as PostgreSQL stores them, sorted
    options: tuple[str, ...] = optional(())
    # the type's own storage (typstorage), read only when storage differs from it: what resets it
    type_storage: str | None = optional(None)

    def same_definition(self, other: Column) -> bool:
        """Equal but for position, dependencies and where the column is declared, which never
        cause an ALTER (PostgreSQL cannot turn a redeclared column back into a purely inherited one).
        The default's volatility follows from the default and the functions it calls."""
        if self == other:  # the common case, and far cheaper than going field by field
            return True
        skip = {"position", "depends_on", "inherited", "volatile_default", "type_storage"}
        return all(getattr(self, n) == getattr(other, n) for n in _field_names(type(self)) or () if n not in skip)


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
    # a copy from a parent table (partition or inheritance child): the parent's definition carries it
    inherited: bool = False
    # pg_get_indexdef of the backing index of p/u: lets the planner build it CONCURRENTLY first
    index_definition: str | None = None
    # conislocal: the table declares it itself (false for a copy that only a parent carries). Read
    # to refuse what INHERIT cannot do (it keeps an existing table's constraints local); left out
    # of catalog_hash(), which recorded hashes before the field existed
    local: bool = True

    HASH_IGNORED: ClassVar[tuple[str, ...]] = ("local",)


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
    # attached to an index of the partitioned parent: created and dropped with that index
    inherited: bool = False
    # storage parameters (pg_class.reloptions, "fillfactor=70") in their order, which pg_dump prints too
    options: tuple[str, ...] = ()
    # (column number, statistics target) of index columns given SET STATISTICS (expression columns)
    statistics: tuple[tuple[int, int], ...] = ()

    # fields added after hashes were recorded: left out of catalog_hash() while at their default,
    # so a catalog that does not use them keeps its hash
    HASH_OMITTED_AT_DEFAULT: ClassVar[tuple[str, ...]] = ("options", "statistics")

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
    # storage parameters, sorted "name=value" as reloptions stores them; the TOAST table's
    # prefixed "toast." (WITH (fillfactor = 70, toast.autovacuum_enabled = false))
    options: tuple[str, ...] = optional(())
    # REPLICA IDENTITY: d default, n nothing, f full, i index (replica_index names it)
    replica_identity: str = optional("d")
    replica_index: str | None = optional(None)
    # CLUSTER ON: the index CLUSTER uses by default
    cluster_index: str | None = optional(None)
    # CREATE TABLE ... OF type: the qualified composite type (format_type); its type id in depends
    of_type: str | None = optional(None)
    of_type_id: str | None = optional(None)
    # pg_get_partition_constraintdef of a partition: follows from the bounds, so never hashed
    partition_constraint: str | None = None

    HASH_IGNORED: ClassVar[tuple[str, ...]] = ("partition_constraint",)

    @property
    def id(self) -> str:
        return oid_key("table", self.schema, self.name)


@dataclass(frozen=True)
class View:
    """A view (kind "v") or materialized view (kind "m")."""

    schema: str
    name: str
    kind: str  # v view, m materialized view
    definition: str  # pg_get_viewdef, as PostgreSQL prints it
    columns: tuple[tuple[str, str], ...] = ()  # (name, format_type) in order
    options: tuple[str, ...] = ()  # reloptions: security_barrier, check_option, ...
    comment: str | None = None
    column_comments: tuple[tuple[str, str], ...] = ()
    indexes: dict[str, Index] = field(default_factory=dict)  # materialized views only
    depends_on: tuple[str, ...] = ()  # ids of the tables, columns, views, functions, types it reads

    @property
    def id(self) -> str:
        return oid_key("view", self.schema, self.name)

    def same_definition(self, other: View) -> bool:
        return (self.kind, self.definition, self.columns, self.options) == (
            other.kind, other.definition, other.columns, other.options)


@dataclass(frozen=True)
class Function:
    """A function or procedure; identity is schema.name(identity arguments)."""

    schema: str
    name: str
    identity_args: str  # pg_get_function_identity_arguments
    kind: str  # f function, p procedure, w window
    definition: str  # pg_get_functiondef: a complete CREATE OR REPLACE statement
    result: str | None = None  # pg_get_function_result; None for procedures
    arg_names: tuple[str, ...] = ()  # every parameter name, IN and OUT, in order
    n_defaults: int = 0
    comment: str | None = None
    depends_on: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return oid_key("function", self.schema, f"{self.name}({self.identity_args})")

    @property
    def name_id(self) -> str:
        """The id without arguments, as column defaults record the functions they call."""
        return oid_key("function", self.schema, self.name)


@dataclass(frozen=True)
class Trigger:
    schema: str
    table: str  # the table or view it is on
    name: str
    definition: str  # pg_get_triggerdef: a complete CREATE [CONSTRAINT] TRIGGER statement
    enabled: str = "O"  # tgenabled: O origin (enabled), D disabled, R replica, A always
    comment: str | None = None
    depends_on: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return oid_key("trigger", self.schema, self.table, self.name)


@dataclass(frozen=True)
class RlsPolicy:
    """A row-level security policy."""

    schema: str
    table: str
    name: str
    permissive: bool = True
    command: str = "*"  # r SELECT, a INSERT, w UPDATE, d DELETE, * ALL
    roles: tuple[str, ...] = ("public",)  # role names; "public" for PUBLIC
    using: str | None = None
    with_check: str | None = None
    comment: str | None = None
    depends_on: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return oid_key("policy", self.schema, self.table, self.name)


# A privilege as aclexplode() shows it: (grantee, privilege, grantable). The owner of the
# object is written OWNER so that two databases whose objects have different owners compare.
Privilege = tuple[str, str, bool]
OWNER = "<owner>"


@dataclass(frozen=True)
class Acl:
    """The privileges on one object (every relation, function, schema and type has one;
    a column only when it has privileges of its own)."""

    kind: str  # schema | table | view | sequence | column | function | procedure
    schema: str
    name: str  # the schema, relation or function name
    column: str | None = None
    args: str | None = None  # identity arguments of a function
    entries: frozenset[Privilege] = frozenset()
    defaults: frozenset[Privilege] = frozenset()  # what the object has with no explicit ACL
    owner: str = ""  # the actual owner's name, to spell OWNER in SQL

    @property
    def id(self) -> str:
        """The id of the object the ACL is on."""
        if self.kind == "schema":
            return oid_key("schema", self.name)
        if self.kind == "column":
            return oid_key("column", self.schema, self.name, self.column or "")
        if self.kind in ("function", "procedure"):
            return oid_key("function", self.schema, f"{self.name}({self.args})")
        return oid_key(self.kind, self.schema, self.name)


@dataclass(frozen=True)
class DefaultAcl:
    """ALTER DEFAULT PRIVILEGES FOR ROLE role [IN SCHEMA schema]: the privileges new objects get."""

    role: str
    schema: str | None  # None: every schema
    objtype: str  # r tables, S sequences, f functions, T types, n schemas
    entries: frozenset[Privilege] = frozenset()
    defaults: frozenset[Privilege] = frozenset()  # what applies with no such entry

    @property
    def id(self) -> str:
        return oid_key("default_privileges", self.role, self.schema or "*", self.objtype)


@dataclass(frozen=True)
class Unsupported:
    """An object of a kind the planner does not manage: a plan touching it fails loudly."""

    kind: str
    identity: str


@dataclass(frozen=True)
class Casts:
    """The built-in conversions of the server (pg_cast), by format_type names without typmods."""

    pairs: frozenset[tuple[str, str]] = frozenset()
    strings: frozenset[str] = frozenset()  # string types: I/O conversion casts to and from them
    known: frozenset[str] = frozenset()  # every built-in non-array type


@dataclass
class Catalog:
    server_version: int = 0
    # every dict of records is keyed by the record's .id (oid_key: "table:public.users")
    schemas: dict[str, Schema] = field(default_factory=dict)
    extensions: dict[str, Extension] = field(default_factory=dict)
    enums: dict[str, EnumType] = field(default_factory=dict)
    collations: dict[str, Collation] = field(default_factory=dict)
    domains: dict[str, Domain] = field(default_factory=dict)
    composites: dict[str, CompositeType] = field(default_factory=dict)
    ranges: dict[str, RangeType] = field(default_factory=dict)
    sequences: dict[str, Sequence] = field(default_factory=dict)
    tables: dict[str, Table] = field(default_factory=dict)
    unsupported: list[Unsupported] = field(default_factory=list)
    views: dict[str, View] = field(default_factory=dict)
    functions: dict[str, Function] = field(default_factory=dict)  # by Function.id
    triggers: dict[str, Trigger] = field(default_factory=dict)  # by Trigger.id
    policies: dict[str, RlsPolicy] = field(default_factory=dict)  # by RlsPolicy.id
    acls: dict[str, Acl] = field(default_factory=dict)  # by Acl.id; only non-default ACLs
    default_acls: dict[str, DefaultAcl] = field(default_factory=dict)  # by DefaultAcl.id
    # object id -> ids it uses (pg_depend), for constraints, indexes and column defaults
    depends: dict[str, tuple[str, ...]] = field(default_factory=dict)
    current_user: str = ""  # the role that runs the plan: it owns what the plan creates
    available_extensions: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    casts: Casts | None = None  # the server's built-in casts (None: not read)

    def index_owner(self, schema: str, index: str) -> Table | None:
        for table in self.tables.values():
            if table.schema == schema and index in table.indexes:
                return table
        return None


_SCALARS = (str, int, float, bool, type(None))
_FIELD_NAMES: dict[type, tuple[str, ...] | None] = {}
_OMITTED_AT_DEFAULT: dict[type, dict[str, Any]] = {}


_IGNORED = object()  # never equal to a field's value: the field is always left out


def _omitted_at_default(cls: type) -> dict[str, Any]:
    """Field name -> the value at which to_plain() leaves it out: its default for the fields a
    record class names in HASH_OMITTED_AT_DEFAULT, any value for those in HASH_IGNORED."""
    if cls not in _OMITTED_AT_DEFAULT:
        names = getattr(cls, "HASH_OMITTED_AT_DEFAULT", ())
        ignored = getattr(cls, "HASH_IGNORED", ())
        out = {f.name: f.default for f in fields(cls) if f.name in names or f.metadata.get("omit_default")}
        out.update({n: _IGNORED for n in ignored})
        _OMITTED_AT_DEFAULT[cls] = out
    return _OMITTED_AT_DEFAULT[cls]


def _field_names(cls: type) -> tuple[str, ...] | None:
    # fields() is slow and a catalog holds ~10^5 records: look each class up once
    if cls not in _FIELD_NAMES:
        _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls)) if is_dataclass(cls) else None
    return _FIELD_NAMES[cls]


def to_plain(value: Any, skip: frozenset[str] = frozenset()) -> Any:
    """Dataclasses to JSON-able structures, for hashing and the ledger. `skip` names dataclass
    fields to leave out (at every depth)."""
    cls = type(value)
    if cls in _SCALARS:
        return value
    names = _field_names(cls)
    if names is not None:
        out = {}
        at_default = _omitted_at_default(cls)
        for n in names:
            if n not in skip:
                v = getattr(value, n)
                if at_default and n in at_default and (at_default[n] is _IGNORED or v == at_default[n]):
                    continue
                out[n] = v if type(v) in _SCALARS else to_plain(v, skip)  # most fields: no call
        return out
    if isinstance(value, dict):
        return {(k if isinstance(k, str) else ".".join(k)): to_plain(v, skip) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [to_plain(v, skip) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((to_plain(v, skip) for v in value), key=repr)
    return value


_FIELD_SETS: dict[type, frozenset[str]] = {}
_new = object.__new__


def record_of(cls: type[R], **values: Any) -> R:
    """A frozen dataclass record with every field given, made without running its __init__. A
    frozen __init__ sets each field through object.__setattr__ (~4 us a record) and introspection
    makes ~10^5 records on a big schema; the record is the same as cls(**values) would make."""
    names = _FIELD_SETS.get(cls)
    if names is None:
        names = _FIELD_SETS[cls] = frozenset(_field_names(cls) or ())
    if values.keys() != names:
        raise TypeError(f"{cls.__name__} needs exactly its fields; got {sorted(values.keys() ^ names)} wrong")
    record = _new(cls)
    record.__dict__.update(values)
    return record
