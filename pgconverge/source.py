"""Read the desired state: SQL definitions in sql/, and the directives in their comments.

Statements are split and classified by PostgreSQL's own parser (pglast); comments are
found by its scanner, so a ``-- @word`` inside a string or a function body is not a
directive. Offsets are character offsets into the decoded file text (pglast converts
libpg_query's byte offsets for the Python AST and the scanner).

Directives (SQL line comments):

- ``-- @renamed-from <old>``   on the line of a definition, or on the line(s) just above it
                              (``-- @renamed from=<old>`` is the same directive, and either can be
                              a ``/* ... */`` comment on the definition's line); on a table, column,
                              index, constraint or enum value
- ``-- @allow <hazard>[, <hazard>...]``  same placement
- ``-- @drop <kind> <qualified name>``   anywhere
- ``-- @using <expression>``   next to a column definition: the USING expression of the
  ``ALTER COLUMN ... TYPE`` that changes an existing column to the declared type
- ``-- @data <name> before|after`` ... ``-- @end``   a one-time data block (each on its own line)
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import pickle
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from importlib import metadata

__all__ = ["DataBlock", "LEDGER_SCHEMA", "Rename", "Source", "SourceError", "Statement", "load_source"]

# The schema of pgconverge's own ledger in every target: never user schema, so sql/ may not use it.
LEDGER_SCHEMA = "pgconverge"
# PostgreSQL keeps the first NAMEDATALEN - 1 bytes of an identifier and silently drops the rest.
MAX_IDENTIFIER_BYTES = 63


class SourceError(Exception):
    """A problem in sql/: str() is ``file:line: message``."""

    def __init__(self, file: str, line: int | None, message: str):
        self.file = file
        self.line = line
        self.message = message
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")

    def __reduce__(self):  # picklable despite the custom __init__
        return (type(self), (self.file, self.line, self.message))


@dataclass(frozen=True)
class Statement:
    file: str
    line: int
    text: str
    kind: str
    # what the shadow runs instead, when `text` would run code of sql/ (a materialized view's query)
    shadow_text: str | None = None

    @property
    def loaded_text(self) -> str:
        return self.shadow_text if self.shadow_text is not None else self.text


@dataclass(frozen=True)
class Rename:
    kind: str
    schema: str
    table: str | None
    old: str
    new: str
    file: str
    line: int


@dataclass(frozen=True)
class DataBlock:
    name: str
    when: str
    sql: str
    sha256: str
    file: str
    line: int  # line of the first line of `sql` in `file`


@dataclass(frozen=True)
class Source:
    statements: tuple[Statement, ...]
    renames: tuple[Rename, ...]
    data_blocks: tuple[DataBlock, ...]
    drops: tuple[str, ...]
    allowed: tuple[tuple[str, str], ...]
    pinned_extensions: tuple[str, ...]
    sha256: str
    # (column id, expression) from -- @using: how an existing column converts to its new type
    usings: tuple[tuple[str, str], ...] = ()

    @property
    def is_empty(self) -> bool:
        """No statement at all: planning it would drop everything."""
        return not self.statements

    def extensions(self) -> list[tuple[str, str, int]]:
        """(name, file, line) of each CREATE EXTENSION."""
        out = []
        for s in self.statements:
            if s.kind == "CreateExtensionStmt":
                import pglast  # only when there is one: most sql/ trees create no extension

                out.extend((raw.stmt.extname, s.file, s.line) for raw in pglast.parse_sql(s.text))
        return out

    def script(self) -> str:
        """The schema statements as one psql script, each ending with ";\\n"."""
        return "".join(s.loaded_text + ";\n" for s in self.statements)

    @cached_property
    def _starts(self) -> list[int]:
        starts, n = [], 1
        for s in self.statements:
            starts.append(n)
            n += s.text.count("\n") + 1
        return starts

    def statement_at(self, script_line: int) -> Statement:
        """The statement that holds a 1-based line of script()."""
        i = bisect.bisect_right(self._starts, script_line) - 1
        if i < 0 or script_line < 1:
            raise ValueError(f"line {script_line} is not in the script")
        return self.statements[i]

    def locate(self, script_line: int) -> tuple[str, int]:
        """Map a 1-based line of script() back to (file, line)."""
        i = bisect.bisect_right(self._starts, script_line) - 1
        if script_line < 1 or i < 0:
            raise ValueError(f"line {script_line} is not in the script")
        s = self.statements[i]
        offset = script_line - self._starts[i]
        if offset > s.text.count("\n"):
            raise ValueError(f"line {script_line} is not in the script")
        return s.file, s.line + offset


# --------------------------------------------------------------------------- statements

REFUSED_TAIL = ("is not a definition; sql/ holds the desired state (CREATE statements). "
                "Use a '-- @data' block for one-time data changes.")

_ALLOWED = frozenset({
    "CreateSchemaStmt", "CreateExtensionStmt", "CreateEnumStmt", "CompositeTypeStmt", "CreateDomainStmt",
    "DefineStmt", "CreateRangeStmt", "CreateSeqStmt", "AlterSeqStmt", "CreateStmt", "IndexStmt", "ViewStmt",
    "CreateTableAsStmt", "CreateFunctionStmt", "CreateTrigStmt", "CreateEventTrigStmt", "CreatePolicyStmt",
    "CommentStmt", "GrantStmt", "AlterDefaultPrivilegesStmt", "AlterEnumStmt", "CreateForeignTableStmt",
    "CreateForeignServerStmt", "CreateFdwStmt", "CreatePublicationStmt", "CreateCastStmt",
    "CreateConversionStmt", "CreateOpClassStmt", "CreateOpFamilyStmt", "CreateStatsStmt", "RuleStmt",
    "AlterOwnerStmt", "VariableSetStmt", "SelectStmt", "AlterTableStmt", "AlterDomainStmt",
})

# ALTER TABLE/INDEX/SEQUENCE/VIEW subcommands that add to or define an object.
_ALTER_TABLE_OK = frozenset({
    "AT_AddConstraint", "AT_AddColumn", "AT_ColumnDefault", "AT_SetNotNull", "AT_EnableRowSecurity",
    "AT_ForceRowSecurity", "AT_AddIdentity", "AT_SetIdentity", "AT_ReplicaIdentity", "AT_ClusterOn",
    "AT_SetStatistics", "AT_SetStorage", "AT_AttachPartition", "AT_AddInherit", "AT_EnableTrig",
    "AT_EnableAlwaysTrig", "AT_EnableReplicaTrig", "AT_EnableTrigAll", "AT_EnableTrigUser", "AT_DisableTrig",
    "AT_DisableTrigAll", "AT_DisableTrigUser", "AT_DisableRowSecurity", "AT_NoForceRowSecurity",
    "AT_ChangeOwner", "AT_SetRelOptions", "AT_SetLogged",
    "AT_SetUnLogged", "AT_AlterColumnType", "AT_ValidateConstraint",
    # also written by pg_dump, and as definitional as the above
    "AT_SetOptions", "AT_SetCompression", "AT_AddOf", "AT_EnableRule", "AT_EnableAlwaysRule",
    "AT_EnableReplicaRule", "AT_DisableRule",
})

_AT_COLUMN_CMDS = frozenset({
    "AT_AlterColumnType", "AT_ColumnDefault", "AT_SetNotNull", "AT_AddIdentity", "AT_SetIdentity",
    "AT_SetStatistics", "AT_SetStorage", "AT_SetOptions", "AT_SetCompression",
})

_WORDS = {
    "InsertStmt": "INSERT", "UpdateStmt": "UPDATE", "DeleteStmt": "DELETE", "MergeStmt": "MERGE",
    "TruncateStmt": "TRUNCATE", "CopyStmt": "COPY", "DoStmt": "DO", "CallStmt": "CALL",
    "CreatedbStmt": "CREATE DATABASE", "DropdbStmt": "DROP DATABASE", "AlterDatabaseStmt": "ALTER DATABASE",
    "AlterDatabaseSetStmt": "ALTER DATABASE", "AlterRoleStmt": "ALTER ROLE", "AlterRoleSetStmt": "ALTER ROLE",
    "DropRoleStmt": "DROP ROLE", "GrantRoleStmt": "GRANT/REVOKE role membership", "SelectStmt": "SELECT",
    "AlterObjectSchemaStmt": "ALTER ... SET SCHEMA", "ExplainStmt": "EXPLAIN", "LockStmt": "LOCK",
    "ReindexStmt": "REINDEX", "ClusterStmt": "CLUSTER", "RefreshMatViewStmt": "REFRESH MATERIALIZED VIEW",
    "CheckPointStmt": "CHECKPOINT", "NotifyStmt": "NOTIFY", "ListenStmt": "LISTEN", "UnlistenStmt": "UNLISTEN",
    "PrepareStmt": "PREPARE", "ExecuteStmt": "EXECUTE", "DeallocateStmt": "DEALLOCATE", "DiscardStmt": "DISCARD",
    "CreateTableSpaceStmt": "CREATE TABLESPACE", "AlterSystemStmt": "ALTER SYSTEM", "LoadStmt": "LOAD",
    "DropOwnedStmt": "DROP OWNED", "ReassignOwnedStmt": "REASSIGN OWNED", "AlterExtensionStmt": "ALTER EXTENSION",
    "AlterFunctionStmt": "ALTER FUNCTION", "SecLabelStmt": "SECURITY LABEL", "VariableShowStmt": "SHOW",
    "CreateSubscriptionStmt": "CREATE SUBSCRIPTION", "CreateUserMappingStmt": "CREATE USER MAPPING",
    "CreateTableAsStmt": "CREATE TABLE AS", "DeclareCursorStmt": "DECLARE", "FetchStmt": "FETCH",
    "ClosePortalStmt": "CLOSE", "ConstraintsSetStmt": "SET CONSTRAINTS",
}

_CLUSTER_WIDE = {"CreateRoleStmt", "AlterRoleStmt", "AlterRoleSetStmt", "DropRoleStmt", "GrantRoleStmt",
                 "CreateTableSpaceStmt", "CreatedbStmt", "DropdbStmt", "AlterDatabaseStmt", "AlterDatabaseSetStmt"}

_DROP_KINDS = {  # ObjectType of a DROP -> kind of a -- @drop directive
    "OBJECT_TABLE": "table", "OBJECT_INDEX": "index", "OBJECT_VIEW": "view", "OBJECT_MATVIEW": "materialized_view",
    "OBJECT_SEQUENCE": "sequence", "OBJECT_TYPE": "type", "OBJECT_DOMAIN": "type", "OBJECT_SCHEMA": "schema",
    "OBJECT_EXTENSION": "extension", "OBJECT_FUNCTION": "function", "OBJECT_PROCEDURE": "function",
    "OBJECT_TRIGGER": "trigger", "OBJECT_POLICY": "policy", "OBJECT_FOREIGN_TABLE": "table",
    "OBJECT_COLLATION": "collation",
}


def _objtype_words(objtype: Any) -> str:
    name = getattr(objtype, "name", str(objtype))
    return {"OBJECT_MATVIEW": "MATERIALIZED VIEW", "OBJECT_TABCONSTRAINT": "CONSTRAINT",
            "OBJECT_FOREIGN_TABLE": "FOREIGN TABLE"}.get(name, name.removeprefix("OBJECT_").replace("_", " "))


class _Refused(Exception):
    def __init__(self, message: str):
        self.message = message


def _refuse(words: str, kind: str, hint: str = "") -> _Refused:
    what = f"{words} ({kind})" if words != kind else kind
    return _Refused(f"{what} {REFUSED_TAIL}" + (f" {hint}" if hint else ""))


def _names(nodes: Iterable[Any] | None) -> list[str]:
    return [n.sval for n in nodes or () if hasattr(n, "sval")]


def _is_set_config(sel: Any) -> bool:
    """A bare ``SELECT pg_catalog.set_config('name', 'value', bool)``, as pg_dump writes."""
    if getattr(getattr(sel, "op", None), "name", "SETOP_NONE") != "SETOP_NONE":
        return False
    for f in ("distinctClause", "intoClause", "fromClause", "whereClause", "groupClause", "havingClause",
              "windowClause", "valuesLists", "sortClause", "limitOffset", "limitCount", "lockingClause",
              "withClause"):
        if getattr(sel, f, None):
            return False
    tl = sel.targetList or ()
    if len(tl) != 1:
        return False
    call = tl[0].val
    if type(call).__name__ != "FuncCall" or _names(call.funcname) not in (["set_config"], ["pg_catalog", "set_config"]):
        return False
    return all(type(a).__name__ == "A_Const" for a in call.args or ())


# Accepted with load_source(allow_alter_drop=True): a script written as a history (CREATE,
# then ALTER ... DROP) still shapes the shadow, it just is not plain desired state.
_ALTER_DROPS = frozenset({"AT_DropColumn", "AT_DropConstraint"})


def _check(node: Any, kind: str, allow_alter_drop: bool = False) -> None:
    """Raise _Refused unless the statement is a definition."""
    if kind in _CLUSTER_WIDE:
        words = _WORDS.get(kind, kind)
        if kind == "CreateRoleStmt":
            words = "CREATE " + getattr(node.stmt_type, "name", "ROLESTMT_ROLE").removeprefix("ROLESTMT_")
        hint = ("Roles are cluster-wide, not part of a database's schema: manage them outside sql/."
                if "Role" in kind else "This is cluster-wide, not part of a database's schema: manage it outside sql/.")
        raise _refuse(words, kind, hint)
    if kind == "DropStmt":
        objkind = _DROP_KINDS.get(node.removeType.name, node.removeType.name.removeprefix("OBJECT_").lower())
        raise _refuse(f"DROP {_objtype_words(node.removeType)}", kind,
                      f"To drop an object, remove its definition and name it with '-- @drop {objkind} <name>'.")
    if kind == "RenameStmt":
        raise _refuse(f"ALTER {_objtype_words(node.renameType)} ... RENAME", kind,
                      "Declare renames with -- @renamed-from <old name> next to the new definition.")
    if kind == "TransactionStmt":
        raise _refuse(node.kind.name.removeprefix("TRANS_STMT_").replace("_", " "), kind,
                      "The tool runs sql/ in its own transaction.")
    if kind == "VacuumStmt":
        raise _refuse("VACUUM" if node.is_vacuumcmd else "ANALYZE", kind, "The deploy runs ANALYZE itself.")
    if kind not in _ALLOWED:
        raise _refuse(_WORDS.get(kind, kind), kind)
    if kind == "IndexStmt" and node.concurrent:
        raise _Refused("CREATE INDEX CONCURRENTLY is chosen by the planner, write a plain CREATE INDEX")
    if kind == "CreateTableAsStmt" and node.objtype.name != "OBJECT_MATVIEW":
        raise _refuse("CREATE TABLE AS", kind, "Write CREATE TABLE, and fill it from a '-- @data' block.")
    if kind == "SelectStmt" and not _is_set_config(node):
        raise _refuse("SELECT", kind)
    if kind == "CreateStmt" and node.relation.relpersistence == "t":
        raise _Refused("CREATE TEMPORARY TABLE is not a definition: a temporary table is not part of the schema")
    if kind == "AlterEnumStmt" and node.oldVal:
        raise _refuse("ALTER TYPE ... RENAME VALUE", kind)
    if kind == "AlterDomainStmt" and node.subtype not in ("C", "V"):
        what = {"T": "ALTER DOMAIN ... SET/DROP DEFAULT", "N": "ALTER DOMAIN ... DROP NOT NULL",
                "O": "ALTER DOMAIN ... SET NOT NULL", "X": "ALTER DOMAIN ... DROP CONSTRAINT"}
        raise _refuse(what.get(node.subtype, "ALTER DOMAIN"), kind,
                      "Write the domain's definition in its CREATE DOMAIN." if node.subtype != "X" else "")
    if kind == "AlterTableStmt":
        obj = _objtype_words(node.objtype)
        for cmd in node.cmds or ():
            sub = cmd.subtype.name
            if sub in _ALTER_TABLE_OK or (allow_alter_drop and sub in _ALTER_DROPS):
                continue
            words = {"AT_DropColumn": "DROP COLUMN", "AT_DropConstraint": "DROP CONSTRAINT",
                     "AT_DropNotNull": "ALTER COLUMN ... DROP NOT NULL", "AT_DropIdentity": "DROP IDENTITY",
                     "AT_DetachPartition": "DETACH PARTITION", "AT_DropInherit": "NO INHERIT"}.get(sub, sub)
            hint = ""
            if sub == "AT_DropColumn":
                hint = "To drop a column, remove it from its table and name it with '-- @drop column <schema>.<table>.<column>'."
            elif sub == "AT_DropConstraint":
                hint = "To drop a constraint, remove its definition; the planner drops what sql/ no longer defines."
            raise _refuse(f"ALTER {obj} ... {words}", f"{kind} {sub}", hint)


# --------------------------------------------------------------------------- definitions


@dataclass(frozen=True)
class _Obj:
    kind: str  # table, column, constraint, index, type, sequence, view, ...
    schema: str | None
    table: str | None
    name: str | None

    @property
    def id(self) -> str | None:
        if self.name is None:
            return None
        if self.kind in ("schema", "extension"):
            return f"{self.kind}:{self.name}"
        if self.table is not None:
            return f"{self.kind}:{self.schema}.{self.table}.{self.name}"
        return f"{self.kind}:{self.schema}.{self.name}"

    def describe(self) -> str:
        if self.name is None:
            return f"an unnamed {self.kind}" + (f" on {self.schema}.{self.table}" if self.table else "")
        return f"{self.kind} " + (self.id or "").split(":", 1)[1]


@dataclass(frozen=True)
class _Def:
    obj: _Obj
    pos: int  # char offset of the definition in the file
    level: int  # 0 statement, 1 column/table constraint, 2 named column constraint


_AMBIGUOUS = _Obj("ambiguous", None, None, None)


class _Defs:
    """Definition sites of one statement: a primary object (what a directive just above the
    statement names) and inner ones (columns, constraints) with their own locations."""

    def __init__(self) -> None:
        self.primary: _Obj | None = None
        self.inner: list[_Def] = []


def _schema_obj(kind: str, names: list[str], schema: str) -> _Obj:
    """An object named by a possibly qualified name list (catalog.schema.name)."""
    return _Obj(kind, names[-2] if len(names) >= 2 else schema, None, names[-1])


def _table_defs(defs: _Defs, create: Any, schema: str) -> None:
    rel = create.relation
    sch = rel.schemaname or schema
    defs.primary = _Obj("table", sch, None, rel.relname)
    for elt in create.tableElts or ():
        t = type(elt).__name__
        if t == "ColumnDef":
            if elt.location is not None and elt.location >= 0:
                defs.inner.append(_Def(_Obj("column", sch, rel.relname, elt.colname), elt.location, 1))
            for c in elt.constraints or ():
                if c.conname and c.location is not None and c.location >= 0:
                    defs.inner.append(_Def(_Obj("constraint", sch, rel.relname, c.conname), c.location, 2))
        elif t == "Constraint" and elt.location is not None and elt.location >= 0:
            defs.inner.append(_Def(_Obj("constraint", sch, rel.relname, elt.conname or None), elt.location, 1))


def _definitions(node: Any, kind: str, schema: str) -> _Defs:
    d = _Defs()
    if kind == "CreateStmt":
        _table_defs(d, node, schema)
    elif kind == "CreateForeignTableStmt":
        _table_defs(d, node.base, schema)
    elif kind == "IndexStmt":
        d.primary = _Obj("index", node.relation.schemaname or schema, None, node.idxname or None)
    elif kind == "CreateEnumStmt" or kind == "CreateRangeStmt":
        d.primary = _schema_obj("type", _names(node.typeName), schema)
    elif kind == "CreateDomainStmt":
        d.primary = _schema_obj("type", _names(node.domainname), schema)
    elif kind == "CompositeTypeStmt":
        d.primary = _Obj("type", node.typevar.schemaname or schema, None, node.typevar.relname)
    elif kind == "DefineStmt" and node.kind.name == "OBJECT_TYPE":
        d.primary = _schema_obj("type", _names(node.defnames), schema)
    elif kind == "CreateSeqStmt":
        d.primary = _Obj("sequence", node.sequence.schemaname or schema, None, node.sequence.relname)
    elif kind == "ViewStmt":
        d.primary = _Obj("view", node.view.schemaname or schema, None, node.view.relname)
    elif kind == "CreateTableAsStmt":
        rel = node.into.rel
        d.primary = _Obj("materialized_view", rel.schemaname or schema, None, rel.relname)
    elif kind == "CreateFunctionStmt":
        d.primary = _schema_obj("function", _names(node.funcname), schema)
    elif kind == "CreateTrigStmt":
        d.primary = _Obj("trigger", node.relation.schemaname or schema, node.relation.relname, node.trigname)
    elif kind == "CreatePolicyStmt":
        d.primary = _Obj("policy", node.table.schemaname or schema, node.table.relname, node.policy_name)
    elif kind == "CreateExtensionStmt":
        d.primary = _Obj("extension", None, None, node.extname)
    elif kind == "CreateSchemaStmt":
        d.primary = _Obj("schema", None, None, node.schemaname) if node.schemaname else None
    elif kind == "AlterTableStmt" and node.relation is not None:
        rel = node.relation
        sch = rel.schemaname or schema
        relkind = {"OBJECT_INDEX": "index", "OBJECT_SEQUENCE": "sequence", "OBJECT_VIEW": "view",
                   "OBJECT_MATVIEW": "materialized_view"}.get(node.objtype.name, "table")
        objs: list[_Obj] = []
        for cmd in node.cmds or ():
            sub = cmd.subtype.name
            if sub == "AT_AddColumn":
                obj = _Obj("column", sch, rel.relname, cmd.def_.colname)
                if cmd.def_.location is not None and cmd.def_.location >= 0:
                    d.inner.append(_Def(obj, cmd.def_.location, 1))
                for c in cmd.def_.constraints or ():
                    if c.conname and c.location is not None and c.location >= 0:
                        d.inner.append(_Def(_Obj("constraint", sch, rel.relname, c.conname), c.location, 2))
            elif sub == "AT_AddConstraint":
                obj = _Obj("constraint", sch, rel.relname, cmd.def_.conname or None)
                if cmd.def_.location is not None and cmd.def_.location >= 0:
                    d.inner.append(_Def(obj, cmd.def_.location, 1))
            elif sub in _AT_COLUMN_CMDS and cmd.name:
                obj = _Obj("column", sch, rel.relname, cmd.name)
            elif sub == "AT_ValidateConstraint":
                obj = _Obj("constraint", sch, rel.relname, cmd.name)
            else:
                obj = _Obj(relkind, sch, None, rel.relname)
            if obj not in objs:
                objs.append(obj)
        d.primary = objs[0] if len(objs) == 1 else _AMBIGUOUS if objs else None
    return d


def _search_path_schema(values: list[str]) -> str:
    """The schema that unqualified CREATEs go to, for a search_path setting."""
    for v in values:
        if v and v != "$user":
            return v
    return "public"


def _split_search_path(value: str) -> list[str]:
    out = []
    for part in value.split(","):
        part = part.strip()
        if part.startswith('"') and part.endswith('"') and len(part) >= 2:
            out.append(part[1:-1].replace('""', '"'))
        elif part:
            out.append(_fold(part))
    return out


def _fold(ident: str) -> str:
    """PostgreSQL folds unquoted identifiers to lower case (ASCII letters only)."""
    return ident.translate(_LOWER)


_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _next_schema(node: Any, kind: str, schema: str) -> str:
    """Follow search_path changes (SET, RESET, set_config) so unqualified names land right."""
    if kind == "VariableSetStmt" and node.name == "search_path":
        k = node.kind.name
        if k == "VAR_SET_VALUE":
            vals = []
            for a in node.args or ():
                v = getattr(a, "val", None)
                if hasattr(v, "sval"):
                    vals.extend(_split_search_path(v.sval) if "," in v.sval else [v.sval])
            return _search_path_schema(vals)
        if k in ("VAR_SET_DEFAULT", "VAR_RESET"):
            return "public"
    if kind == "VariableSetStmt" and node.kind.name == "VAR_RESET_ALL":
        return "public"
    if kind == "SelectStmt":
        args = node.targetList[0].val.args or ()
        vals = [getattr(a.val, "sval", None) if a.val is not None else None for a in args]
        if len(vals) >= 2 and vals[0] == "search_path" and isinstance(vals[1], str):
            return _search_path_schema(_split_search_path(vals[1]))
    return schema


# --------------------------------------------------------------------------- directives

_DIRECTIVE = re.compile(r"--+[ \t]*@(?=\w)([\w-]+)(.*)\Z", re.S)
_BLOCK_DIRECTIVE = re.compile(r"/\*+[ \t]*@(?=\w)([\w-]+)([^\n]*?)\*+/\Z")
_KNOWN = ("renamed-from", "allow", "drop", "data", "end", "using")
_IDENT_START = r"[A-Za-z_\u0080-\U0010FFFF]"
_IDENT_REST = r"[A-Za-z0-9_$\u0080-\U0010FFFF]"
_PART = re.compile(rf'"((?:[^"]|"")+)"|({_IDENT_START}{_IDENT_REST}*)')
_HAZARD = re.compile(r"[a-z][a-z0-9_]*\Z")
_BLOCK_NAME = re.compile(r"[\w][\w.-]*\Z")

_DROP_PARTS = {  # kind -> (min, max) parts of the qualified name
    "schema": (1, 1), "extension": (1, 1),
    "table": (1, 2), "index": (1, 2), "type": (1, 2), "view": (1, 2), "materialized_view": (1, 2),
    "sequence": (1, 2), "function": (1, 2), "collation": (1, 2),
    "column": (2, 3), "constraint": (2, 3), "trigger": (2, 3), "policy": (2, 3),
}


def _parse_names(text: str) -> list[list[str]]:
    """Whitespace-separated, possibly dotted and quoted identifiers -> real names.

    Raises ValueError on anything else."""
    out: list[list[str]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return out
        parts = []
        while True:
            m = _PART.match(text, i)
            if not m:
                raise ValueError(f"expected a name at {text[i:]!r}")
            parts.append(m.group(1).replace('""', '"') if m.group(1) is not None else _fold(m.group(2)))
            i = m.end()
            if i < n and text[i] == ".":
                i += 1
                continue
            break
        if i < n and not text[i].isspace():
            raise ValueError(f"unexpected {text[i:]!r}")
        out.append(parts)


class _Lines:
    """Char offset <-> 1-based line number for one text."""

    def __init__(self, text: str):
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.text = text

    def line_of(self, pos: int) -> int:
        return bisect.bisect_right(self.starts, max(0, pos))

    def start_of(self, line: int) -> int:
        return self.starts[line - 1]

    def end_of(self, line: int) -> int:
        """Offset just past the line's newline (or the end of the text)."""
        return self.starts[line] if line < len(self.starts) else len(self.text)

    @property
    def count(self) -> int:
        return len(self.starts)


# --------------------------------------------------------------------------- loading


@dataclass
class _Unit:
    file: str  # for messages
    key: str  # for the hash: the file's base name, so that `sql` and `sql/schema` hash alike
    text: str


@dataclass
class _Block:
    start: int  # offset of the '-- @data' line
    end: int  # offset past the '-- @end' line
    block: DataBlock


class _Loader:
    """Reads the units in order; state (search_path, data block names) carries across files,
    as it does in the single psql session the shadow runs."""

    def __init__(self, allow_alter_drop: bool = False) -> None:
        self.allow_alter_drop = allow_alter_drop
        self.schema = "public"
        self.statements: list[Statement] = []
        self.keys: list[str] = []
        self.renames: list[Rename] = []
        self.blocks: list[DataBlock] = []
        self.block_names: dict[str, DataBlock] = {}
        self.drops: list[str] = []
        self.allowed: list[tuple[str, str]] = []
        self.pinned: list[str] = []
        self.renamed: dict[tuple, Rename] = {}
        self.usings: dict[str, tuple[str, str, int]] = {}  # column id -> (expression, file, line)

    # ---- one file
    def load(self, unit: _Unit) -> None:
        # pglast loads here, not at import: a warm run served from _SourceCache never parses
        import pglast
        from pglast.parser import ParseError, scan

        text, file = unit.text, unit.file
        lines = _Lines(text)

        def err(pos_or_line: int, msg: str, *, is_line: bool = False) -> SourceError:
            return SourceError(file, pos_or_line if is_line else lines.line_of(pos_or_line), msg)

        # only directives (and data blocks, which are directives) need the whole file's tokens, and
        # a directive needs an '@': a file without one (most generated or dumped schemas) is scanned
        # one statement at a time below, as the whole file's tokens held at once were most of a cold
        # plan's peak memory after its syntax trees (about 70 MiB on 1,000 tables)
        directives = "@" in text
        try:
            tokens = scan(text) if directives else []
        except ParseError as e:
            raise err(_err_pos(e, text), e.args[0]) from None

        blocks = self._data_blocks(unit, text, lines, tokens, err) if directives else []
        parse_text = text
        if blocks:
            chars = list(text)
            for b in blocks:
                for i in range(b.start, b.end):
                    if chars[i] != "\n":
                        chars[i] = " "
            parse_text = "".join(chars)
            tokens = scan(parse_text)

        try:
            # where each statement is, by the parser, without building their syntax trees: the trees
            # of a whole file held at once were most of a cold plan's memory (140 of 218 MiB on 1,000
            # tables); each is built below, one statement at a time, and dropped after it
            slices = pglast.split(parse_text, with_parser=True, only_slices=True)
        except ParseError as e:
            raise err(_err_pos(e, parse_text), e.args[0]) from None

        def raws() -> Iterator[tuple[int, int, Any]]:
            for piece in slices:
                try:
                    (one,) = pglast.parse_sql(parse_text[piece])
                except ParseError as e:  # the split parsed it already: not expected
                    raise err(piece.start + _err_pos(e, parse_text[piece]), e.args[0]) from None
                yield piece.start, piece.stop, one.stmt

        code_tokens = [t for t in tokens if t.name not in ("SQL_COMMENT", "C_COMMENT")]
        code_starts = [t.start for t in code_tokens]

        def code_in(loc: int, end: int) -> tuple[int, list]:
            """The code tokens of parse_text[loc:end], and the offset in parse_text their places
            count from (0 for the whole file's tokens; `loc` for those of the statement alone)."""
            if directives:
                return 0, code_tokens[bisect.bisect_left(code_starts, loc):bisect.bisect_left(code_starts, end)]
            try:
                found = scan(parse_text[loc:end])
            except ParseError as e:  # the split parsed it already: not expected
                raise err(loc + _err_pos(e, parse_text[loc:end]), e.args[0]) from None
            return loc, [t for t in found if t.name not in ("SQL_COMMENT", "C_COMMENT")]

        has_code = [False] * (lines.count + 2)
        has_comment = [False] * (lines.count + 2)
        first_code: dict[int, int] = {}
        for t in tokens if directives else ():
            l1, l2 = lines.line_of(t.start), lines.line_of(t.end)
            flags = has_comment if t.name in ("SQL_COMMENT", "C_COMMENT") else has_code
            for ln in range(l1, l2 + 1):
                flags[ln] = True
            if flags is has_code and l1 not in first_code:
                first_code[l1] = t.start

        sites: list[tuple[_Def, int]] = []  # (definition, statement index)
        primaries: dict[int, _Obj | None] = {}  # statement start offset -> primary object
        for loc, end, node in raws():
            at, code = code_in(loc, end)
            if not code:
                continue
            a, b = at + code[0].start, at + code[-1].end + 1
            for blk in blocks:
                if blk.start < b and blk.end > a:
                    raise err(blk.start, f"the -- @data block '{blk.block.name}' is inside a statement "
                                         f"that starts on line {lines.line_of(a)}; end the statement with ';' first")
            kind = type(node).__name__
            try:
                _check(node, kind, self.allow_alter_drop)
            except _Refused as r:
                raise err(a, r.message) from None
            shadow_text = None
            if kind == "CreateTableAsStmt" and not node.into.skipData:
                shadow_text = _without_data(text, code, at, a, b)
            self.statements.append(Statement(file, lines.line_of(a), text[a:b], kind, shadow_text))
            self.keys.append(unit.key)
            if kind == "CreateExtensionStmt" and any(o.defname == "new_version" for o in node.options or ()):
                if node.extname not in self.pinned:
                    self.pinned.append(node.extname)
            self._check_identifiers(parse_text, code, at, err)
            d = _definitions(node, kind, self.schema)
            if kind == "CreateSchemaStmt":
                for elt in node.schemaElts or ():
                    inner = _definitions(elt, type(elt).__name__, node.schemaname or self.schema)
                    d.inner.extend(inner.inner)
            for obj in [d.primary, *(s.obj for s in d.inner)]:
                if obj is not None and obj is not _AMBIGUOUS and LEDGER_SCHEMA in (
                        obj.schema, obj.name if obj.kind == "schema" else None):
                    what = "the schema" if obj.kind == "schema" else f"{obj.describe()} is in the schema"
                    raise err(a, f"{what} {LEDGER_SCHEMA} holds pgconverge's own ledger and is never managed: "
                                 "use another schema")
            primaries[a] = d.primary
            for s in d.inner:  # the tree was parsed from the statement alone: its locations start there
                sites.append((_Def(s.obj, s.pos + loc, s.level), len(self.statements) - 1))
            if kind == "CreateEnumStmt" and d.primary is not None:
                # the values have no locations in the tree: the string constants after ENUM are them
                words = [parse_text[at + t.start:at + t.end + 1].upper() for t in code]
                after = words.index("ENUM") if "ENUM" in words else len(code)
                literals = [t for t in code[after:] if t.name == "SCONST"]
                for t, value in zip(literals, node.vals or ()):
                    sites.append((_Def(_Obj("enum_value", d.primary.schema, d.primary.name, value.sval), at + t.start, 1),
                                  len(self.statements) - 1))
            self.schema = _next_schema(node, kind, self.schema)

        # directives outside data blocks (those are blanked in parse_text)
        for t in tokens if directives else ():
            if t.name == "SQL_COMMENT":
                m = _DIRECTIVE.match(parse_text[t.start:t.end + 1].rstrip("\r"))
            elif t.name == "C_COMMENT":  # /* @renamed-from old */ inside a line, as some tools write it
                m = _BLOCK_DIRECTIVE.match(parse_text[t.start:t.end + 1])
                if m and m.group(1) not in (*_KNOWN, "renamed"):
                    continue  # a /* @word */ of other tools' (an author, a tag): not ours to refuse
            else:
                continue
            if not m:
                continue
            word, rest = m.group(1), m.group(2).strip()
            line = lines.line_of(t.start)
            if word in ("data", "end"):  # handled by _data_blocks, their lines are blanked
                if t.name == "C_COMMENT":
                    raise err(t.start, f"-- @{word} is a line comment of its own, not a /* */ comment")
                continue
            if word == "renamed":  # the other spelling some schema tools write: -- @renamed from=<old>
                spelled = re.match(r"from[ \t]*=[ \t]*(\S.*)\Z", rest, re.S)
                if not spelled:
                    raise err(t.start, "expected '-- @renamed from=<old name>' (or '-- @renamed-from <old name>')")
                word, rest = "renamed-from", spelled.group(1).strip()
            if word not in _KNOWN:
                raise err(t.start, f"unknown directive '-- @{word}'; known: " + ", ".join(f"@{k}" for k in _KNOWN))
            if word == "drop":
                self._drop(rest, lambda msg: err(line, msg, is_line=True))
                continue
            target = self._attach(word, line, not has_code[line], lines, has_code, has_comment, first_code,
                                  primaries, sites, lambda msg: err(line, msg, is_line=True), at=t.start)
            if word == "renamed-from":
                self._rename(target, rest, file, line, lambda msg: err(line, msg, is_line=True))
            elif word == "using":
                self._using(target, rest, file, line, lambda msg: err(line, msg, is_line=True))
            else:
                self._allow(target, rest, lambda msg: err(line, msg, is_line=True))

    @staticmethod
    def _check_identifiers(text: str, tokens: list, at: int, err) -> None:
        """A name PostgreSQL would truncate is refused: the object would get another name than
        the one written, and every later plan would look for the written one. The tokens' places
        count from `at` in `text`."""
        for t in tokens:
            if t.name != "IDENT":
                continue
            raw = text[at + t.start:at + t.end + 1]
            name = raw[1:-1].replace('""', '"') if raw.startswith('"') else _fold(raw)
            size = len(name.encode())
            if size > MAX_IDENTIFIER_BYTES:
                kept = name.encode()[:MAX_IDENTIFIER_BYTES].decode(errors="ignore")
                raise err(at + t.start, f"the identifier {raw} is {size} bytes long; PostgreSQL keeps "
                                   f"{MAX_IDENTIFIER_BYTES} bytes and would name it {kept!r}: shorten it")

    # ---- data blocks
    def _data_blocks(self, unit: _Unit, text: str, lines: _Lines, tokens: list, err) -> list[_Block]:
        out: list[_Block] = []
        opened: tuple[int, str, str] | None = None  # (token start, name, when)
        for t in tokens:
            if t.name != "SQL_COMMENT":
                continue
            m = _DIRECTIVE.match(text[t.start:t.end + 1].rstrip("\r"))
            if not m or m.group(1) not in ("data", "end"):
                continue
            word, rest = m.group(1), m.group(2).strip()
            line = lines.line_of(t.start)
            if text[lines.start_of(line):t.start].strip():
                raise err(t.start, f"-- @{word} must be on a line of its own")
            if word == "data":
                if opened is not None:
                    raise err(t.start, f"-- @data inside the data block '{opened[1]}' "
                                       f"(line {lines.line_of(opened[0])}): close it with -- @end first")
                args = rest.split()
                if len(args) != 2 or args[1] not in ("before", "after"):
                    raise err(t.start, "expected '-- @data <name> before|after' (before or after the schema change)")
                name, when = args
                if not _BLOCK_NAME.match(name):
                    raise err(t.start, f"invalid data block name {name!r}: use letters, digits, '_', '.', '-'")
                if name in self.block_names:
                    prev = self.block_names[name]
                    raise err(t.start, f"duplicate data block name '{name}' (also in {prev.file}:{prev.line})")
                opened = (t.start, name, when)
            else:
                if opened is None:
                    raise err(t.start, "-- @end without a -- @data block")
                if rest:
                    raise err(t.start, "-- @end takes no arguments")
                start_line = lines.line_of(opened[0])
                end_line = lines.line_of(t.start)
                body_start, body_end = lines.end_of(start_line), lines.start_of(end_line)
                body = text[body_start:body_end]
                stripped = body.lstrip("\r\n \t")
                # the first kept line: skip leading blank lines only
                lead = body[:len(body) - len(stripped)]
                first_line = start_line + 1 + lead.count("\n")
                kept = body[lead.rfind("\n") + 1:] if "\n" in lead else body
                sql = kept.rstrip()
                if not sql:
                    raise err(opened[0], f"the data block '{opened[1]}' is empty")
                block = DataBlock(opened[1], opened[2], sql, hashlib.sha256(sql.encode()).hexdigest(),
                                  unit.file, first_line)
                self.block_names[block.name] = block
                self.blocks.append(block)
                out.append(_Block(lines.start_of(start_line), lines.end_of(end_line), block))
                opened = None
        if opened is not None:
            raise err(opened[0], f"the data block '{opened[1]}' has no -- @end")
        return out

    # ---- attaching directives to definitions
    def _attach(self, word, line, standalone, lines, has_code, has_comment, first_code, primaries, sites, err,
                at: int = 0):
        if standalone:
            target = line + 1
            while target <= lines.count and has_comment[target] and not has_code[target]:
                target += 1
        else:
            target = line
        where = (f"line {target}" if target <= lines.count else "the end of the file")
        hint = (f"-- @{word} goes at the end of the definition's first line, or on the line(s) just above it")
        if target > lines.count or not has_code[target]:
            raise err(f"-- @{word} attaches to nothing: no definition on {where}. {hint}")

        def on_line(pos: int) -> bool:
            return lines.line_of(pos) == target

        if standalone and target in first_code:
            first = first_code[target]
            if first in primaries:
                obj = primaries[first]
                if obj is _AMBIGUOUS:
                    raise err(f"-- @{word} is ambiguous: the statement on {where} changes several objects; "
                              "put the directive next to one of its subcommands")
                if obj is not None:
                    return obj
            starting = [s.obj for s, _ in sites if s.pos == first
                        and (s.obj.kind != "enum_value" or word == "renamed-from")]
            if len(starting) == 1:
                return starting[0]

        cands: list[_Obj] = []
        for pos, obj in primaries.items():
            if on_line(pos) and obj is not None and obj is not _AMBIGUOUS and obj not in cands:
                cands.append(obj)
        for s, _ in sites:
            # an enum value is only ever named by a rename, and then rather than its type (which
            # no directive renames): a one-line CREATE TYPE ... AS ENUM keeps its other directives
            if s.obj.kind == "enum_value" and word != "renamed-from":
                continue
            if on_line(s.pos) and s.obj not in cands:
                cands.append(s.obj)
        if word == "renamed-from" and any(c.kind == "enum_value" for c in cands):
            # a line of an enum: the rename names what stands just before it, the type or a value
            placed = [(pos, obj) for pos, obj in primaries.items() if obj in cands] + \
                     [(d.pos, d.obj) for d, _ in sites if d.obj in cands]
            before = [(pos, obj) for pos, obj in placed if pos < at]
            if before:
                return max(before, key=lambda x: x[0])[1]
            cands = [c for c in cands if c.kind != "type"]
        if not cands:
            raise err(f"-- @{word} attaches to nothing: no definition starts on {where}. {hint}")
        if len(cands) > 1:
            raise err(f"-- @{word} is ambiguous: {where} holds " + ", ".join(c.describe() for c in cands)
                      + "; put each definition on a line of its own")
        return cands[0]

    def _rename(self, obj: _Obj, rest: str, file: str, line: int, err) -> None:
        if obj.kind == "enum_value":
            self._rename_value(obj, rest, file, line, err)
            return
        if obj.kind not in ("table", "column", "index", "constraint", "type"):
            raise err(f"-- @renamed-from applies to tables, columns, indexes, constraints, enum types and their "
                      f"values, not to {obj.describe()}")
        if obj.name is None:
            raise err(f"-- @renamed-from names {obj.describe()}: give it a name"
                      + (" (CONSTRAINT <name> ...)" if obj.kind == "constraint" else ""))
        try:
            names = _parse_names(rest)
        except ValueError as e:
            raise err(f"-- @renamed-from: {e}") from None
        if len(names) != 1:
            raise err("expected '-- @renamed-from <old name>'")
        parts = names[0]
        if obj.kind in ("table", "index", "type"):
            if len(parts) > 2 or (len(parts) == 2 and parts[0] != obj.schema):
                raise err(f"-- @renamed-from {'.'.join(parts)}: a rename stays in schema {obj.schema}; "
                          "moving an object to another schema is not supported")
        elif len(parts) != 1:
            raise err(f"-- @renamed-from takes the old {obj.kind} name alone, without its table")
        old = parts[-1]
        if old == obj.name:
            raise err(f"-- @renamed-from {old}: that is the current name")
        key = (obj.kind, obj.schema, obj.table, obj.name)
        if key in self.renamed:
            prev = self.renamed[key]
            raise err(f"{obj.describe()} already has -- @renamed-from {prev.old} ({prev.file}:{prev.line})")
        r = Rename(obj.kind, obj.schema or "public", obj.table, old, obj.name, file, line)
        self.renamed[key] = r
        self.renames.append(r)

    def _allow(self, obj: _Obj, rest: str, err) -> None:
        if obj.id is None:
            raise err(f"-- @allow names {obj.describe()}: give it a name so the hazard can be tied to it")
        hazards = [h for h in re.split(r"[\s,]+", rest) if h]
        if not hazards:
            raise err("expected '-- @allow <hazard>[, <hazard>...]'")
        for h in hazards:
            if not _HAZARD.match(h):
                raise err(f"-- @allow: {h!r} is not a hazard name")
            if (obj.id, h) not in self.allowed:
                self.allowed.append((obj.id, h))

    def _rename_value(self, obj: _Obj, rest: str, file: str, line: int, err) -> None:
        """An enum value's old label: a string literal ('pending'), or the label as it is."""
        text = rest.strip()
        if text.startswith("'"):
            m = re.fullmatch(r"'((?:[^']|'')*)'", text)
            if not m:
                raise err(f"-- @renamed-from {text}: expected the old value as a string literal, e.g. 'pending'")
            old = m.group(1).replace("''", "'")
        elif text.startswith('"'):
            m = re.fullmatch(r'"((?:[^"]|"")+)"', text)
            if not m:
                raise err(f"-- @renamed-from {text}: expected the old value, e.g. 'pending'")
            old = m.group(1).replace('""', '"')
        elif text and not re.search(r"\s", text):
            old = text
        else:
            raise err("expected '-- @renamed-from <old value>' next to the enum value")
        if old == obj.name:
            raise err(f"-- @renamed-from {old}: that is the current value")
        key = (obj.kind, obj.schema, obj.table, obj.name)
        if key in self.renamed:
            prev = self.renamed[key]
            raise err(f"{obj.describe()} already has -- @renamed-from {prev.old} ({prev.file}:{prev.line})")
        r = Rename(obj.kind, obj.schema or "public", obj.table, old, obj.name or "", file, line)
        self.renamed[key] = r
        self.renames.append(r)

    def _using(self, obj: _Obj, rest: str, file: str, line: int, err) -> None:
        import pglast
        from pglast.parser import ParseError

        if obj.kind != "column" or obj.id is None:
            raise err(f"-- @using applies to columns (the USING expression of their type change), "
                      f"not to {obj.describe()}")
        if not rest:
            raise err("expected '-- @using <expression>', e.g. '-- @using to_timestamp(created)'")
        try:
            # an expression PostgreSQL parses, and nothing more: it is pasted into ALTER ... USING
            stmts = pglast.parse_sql(f"SELECT {rest}")
        except ParseError as e:
            raise err(f"-- @using {rest}: not an expression ({e.args[0]})") from None
        target = stmts[0].stmt.targetList if len(stmts) == 1 else None
        if (len(stmts) != 1 or type(stmts[0].stmt).__name__ != "SelectStmt" or not target or len(target) != 1
                or stmts[0].stmt.fromClause or stmts[0].stmt.whereClause or target[0].name):
            raise err(f"-- @using {rest}: expected a single expression")
        if obj.id in self.usings:
            _, pfile, pline = self.usings[obj.id]
            raise err(f"{obj.describe()} already has -- @using ({pfile}:{pline})")
        self.usings[obj.id] = (rest, file, line)

    def _drop(self, rest: str, err) -> None:
        usage = "expected '-- @drop <kind> <qualified name>', e.g. '-- @drop column public.users.old_flag'"
        words = rest.split(None, 1)
        if len(words) != 2:
            raise err(usage)
        kind, name = words[0].lower(), words[1]
        if kind == "materialized" and name.lower().startswith("view "):
            kind, name = "materialized_view", name[5:]
        if kind not in _DROP_PARTS:
            raise err(f"-- @drop: unknown kind {words[0]!r}; known: {', '.join(_DROP_PARTS)}")
        try:
            names = _parse_names(name)
        except ValueError as e:
            raise err(f"-- @drop: {e}") from None
        lo, hi = _DROP_PARTS[kind]
        if len(names) != 1 or not lo <= len(names[0]) <= hi:
            raise err(usage)
        parts = names[0]
        if len(parts) < hi:
            parts = ["public"] + parts
        oid = f"{kind}:{'.'.join(parts)}"
        if oid not in self.drops:
            self.drops.append(oid)

    def result(self) -> Source:
        h = hashlib.sha256(json.dumps([[k, s.text] for k, s in zip(self.keys, self.statements)],
                                      ensure_ascii=False).encode()).hexdigest()
        return Source(tuple(self.statements), tuple(self.renames), tuple(self.blocks), tuple(self.drops),
                      tuple(self.allowed), tuple(self.pinned), h,
                      tuple((cid, u[0]) for cid, u in self.usings.items()))


def _err_pos(e: Exception, text: str) -> int:
    pos = e.args[1] if len(e.args) > 1 and isinstance(e.args[1], int) else getattr(e, "location", 0) or 0
    return min(max(pos, 0), len(text))


# --------------------------------------------------------------------------- inputs


def _looks_like_sql(s: str) -> bool:
    if ";" in s or "\n" in s or not s.strip():  # a blank text is an empty desired state, not a path
        return True
    return any(c.isspace() for c in s) and not s.rstrip().lower().endswith(".sql")


# Folders directly inside sql/ that hold SQL of other kinds: read by their own steps, never
# loaded as the desired state (smoke checks are queries, masking scripts change rows).
NOT_DESIRED_STATE = ("smoke", "mask")


def _walk(root: str) -> list[tuple[str, str]]:
    """(path for messages, base name) of the .sql files below root, in sorted path order."""
    found: list[tuple[tuple[str, ...], str]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and not (rel_dir == "." and d in NOT_DESIRED_STATE)]
        for f in filenames:
            if f.lower().endswith(".sql") and not f.startswith("."):
                rel = os.path.normpath(os.path.join(rel_dir, f))
                found.append((tuple(rel.split(os.sep)), rel))
    found.sort()
    return [(os.path.join(root, rel), parts[-1]) for parts, rel in found]


def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise SourceError(path, None, f"cannot read: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SourceError(path, data[:e.start].count(b"\n") + 1, "not valid UTF-8") from None
    return text[1:] if text.startswith("\ufeff") else text


def _units(sql: str | os.PathLike | Sequence[str | os.PathLike]) -> list[_Unit]:
    items: list[Any] = [sql] if isinstance(sql, (str, os.PathLike)) else list(sql)
    out: list[_Unit] = []
    seen: set[str] = set()
    n_text = 0
    for item in items:
        if isinstance(item, str) and not os.path.exists(item) and _looks_like_sql(item):
            n_text += 1
            out.append(_Unit(f"<sql {n_text}>", f"<sql {n_text}>", item))
            continue
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError(f"expected a path or SQL text, got {type(item).__name__}")
        path = os.fspath(item)
        if not os.path.exists(path):
            raise SourceError(path, None, "no such file or folder")
        files = _walk(path) if os.path.isdir(path) else [(path, os.path.basename(path))]
        for shown, key in files:
            real = os.path.realpath(shown)
            if real in seen:
                continue
            seen.add(real)
            out.append(_Unit(shown, key, _read(shown)))
    return out


def _without_data(text: str, tokens: list, at: int, a: int, b: int) -> str:
    """A materialized view's statement made WITH NO DATA: its query would run when it is created,
    and a plan must not run code of sql/ (the shadow only needs the definition). The text keeps its
    lines, so errors still map to them. The tokens' places count from `at`."""
    words = [text[at + t.start:at + t.end + 1].upper() for t in tokens[-2:]]
    if len(tokens) >= 2 and words == ["WITH", "DATA"]:
        return text[a:at + tokens[-2].start] + "WITH NO DATA"
    return text[a:b] + " WITH NO DATA"


def load_source(sql: str | os.PathLike | Sequence[str | os.PathLike], *,
                allow_alter_drop: bool = False, cache_dir: str | os.PathLike | None = None) -> Source:
    """Read the desired state.

    `sql` is a .sql file, a folder (every *.sql below it in sorted path order, except the
    ``smoke/`` and ``mask/`` folders directly inside it), SQL text, or a list of those.
    `allow_alter_drop` also accepts ``ALTER TABLE ... DROP COLUMN / DROP CONSTRAINT`` (the
    API's ``permissive_source`` option): they only shape the shadow database.
    With `cache_dir`, the result is kept there, keyed by the files' text and this module's
    code: parsing thousands of statements takes seconds, a repeated plan need not pay it."""
    units = _units(sql)
    cached = _SourceCache(cache_dir, units, allow_alter_drop) if cache_dir is not None else None
    if cached is not None and (hit := cached.get()) is not None:
        return hit
    return _parse(units, allow_alter_drop, cached)


def cached_source(sql: str | os.PathLike | Sequence[str | os.PathLike], *, allow_alter_drop: bool = False,
                  cache_dir: str | os.PathLike) -> Source | None:
    """The parsed source from the cache, or None when load_source() would have to parse it."""
    return _SourceCache(cache_dir, _units(sql), allow_alter_drop).get()


def _parse(units: list[_Unit], allow_alter_drop: bool, cached: _SourceCache | None) -> Source:
    loader = _Loader(allow_alter_drop)
    for unit in units:
        loader.load(unit)
    result = loader.result()
    if cached is not None:
        cached.put(result)
    return result


class _SourceCache:
    """A parsed Source on disk. The key covers everything the result depends on: each unit's
    name, hash key and text, the options, pglast's version and this very file, so an edit of
    the loader never serves a stale result. The cache dir is the tool's own (.pgconverge/cache,
    next to the shadow catalogs), so loading a pickle from it trusts nothing outside the project."""

    def __init__(self, cache_dir: str | os.PathLike, units: list[_Unit], allow_alter_drop: bool):
        with open(__file__, "rb") as f:
            code = hashlib.sha256(f.read()).hexdigest()
        basis = json.dumps([code, metadata.version("pglast"), allow_alter_drop,
                            [[u.file, u.key, u.text] for u in units]], ensure_ascii=False)
        self.path = Path(cache_dir) / f"source-{hashlib.sha256(basis.encode()).hexdigest()}.pickle"

    def get(self) -> Source | None:
        try:
            with open(self.path, "rb") as f:
                found = pickle.load(f)
        except FileNotFoundError:
            return None
        except Exception:  # a truncated or foreign file: parse again, and overwrite it
            return None
        return found if isinstance(found, Source) else None

    def put(self, source: Source) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(pickle.dumps(source, protocol=pickle.HIGHEST_PROTOCOL))
            tmp.replace(self.path)  # atomic: a concurrent run never reads half a file
        except OSError:
            pass  # a read-only checkout still plans, only more slowly
