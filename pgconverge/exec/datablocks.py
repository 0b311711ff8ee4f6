"""One-time data blocks (backfills): which are pending on a database, and how they run.

A block is declared in sql/ between ``-- @data <name> before|after`` and ``-- @end``.
It runs once per database, before or after the schema change, in a transaction of
its own together with its row in ``pgconverge.data_blocks``: the row exists if and
only if the block's changes were committed. The row keeps the block's sha256, so a
block edited after it ran is refused at plan time instead of being silently skipped
(or run twice). To change what a block does, give the new version a new name.

A "before" block sees the schema as it was; on a new, empty database that may be no
schema at all, so such a block guards itself (``IF to_regclass('t') IS NOT NULL`` in a
DO block) when the database can be new. An "after" block sees the converged schema.
Each block runs with the step lock_timeout and is retried like a step when a lock (a
row lock too) is not granted in time.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any, Iterable


from pgconverge.errors import PlanError
from pgconverge.quoting import q
from pgconverge.source import DataBlock

# Statements that cannot share the block's transaction with its ledger row.
_NOT_IN_TRANSACTION = {"TransactionStmt": "transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT)",
                       "VacuumStmt": "VACUUM or ANALYZE", "ClusterStmt": "CLUSTER",
                       "CreatedbStmt": "CREATE DATABASE", "DropdbStmt": "DROP DATABASE",
                       "CopyStmt": "COPY (psql data streams are not available in a block)"}


class DataBlockError(PlanError):
    """A data block cannot run: edited after it ran, or not runnable in one transaction."""


@dataclass(frozen=True)
class RanBlock:
    name: str
    sha256: str
    ran_at: str


def ran_blocks(doc: dict[str, Any]) -> dict[str, RanBlock]:
    """The blocks recorded in the ledger, from the catalog document (``ledger_data_blocks``)."""
    out: dict[str, RanBlock] = {}
    for row in doc.get("ledger_data_blocks") or ():
        root = ET.fromstring(row["xml"])
        for r in root.iter("row"):
            name, sha = r.findtext("name"), r.findtext("sha256")
            if name is not None and sha is not None:
                out[name] = RanBlock(name, sha, r.findtext("ran_at") or "")
    return out


def pending(blocks: Iterable[DataBlock], ran: dict[str, RanBlock]) -> list[DataBlock]:
    """Blocks that have not run yet; a block that ran with another text is an error."""
    out = []
    for b in blocks:
        done = ran.get(b.name)
        if done is None:
            statements(b)  # refuse what cannot run, at plan time
            out.append(b)
        elif done.sha256 != b.sha256:
            raise DataBlockError(
                f"{b.file}:{b.line}: the data block '{b.name}' was edited after it ran on this database "
                f"(at {done.ran_at or 'an earlier run'}; sha256 {done.sha256[:12]} there, {b.sha256[:12]} now). "
                "A block runs once: restore its text, or give the new version a new name.")
    return out


def statements(block: DataBlock) -> list[str]:
    """The block's SQL statements, each to be EXECUTEd inside the block's transaction."""
    import pglast  # lazily: a run with no pending block never parses one
    from pglast.parser import ParseError

    try:
        raws = pglast.parse_sql(block.sql)
    except ParseError as e:
        raise DataBlockError(f"{block.file}:{block.line}: the data block '{block.name}' does not parse: "
                             f"{e.args[0]}") from None
    out = []
    for raw in raws:
        kind = type(raw.stmt).__name__
        start = raw.stmt_location or 0
        end = start + raw.stmt_len if raw.stmt_len else len(block.sql)
        segment = block.sql[start:end]
        text = segment.strip()
        lead = len(segment) - len(segment.lstrip())
        line = block.line + block.sql[:start + lead].count("\n")
        why = _NOT_IN_TRANSACTION.get(kind)
        if kind == "IndexStmt" and raw.stmt.concurrent:
            why = "CREATE INDEX CONCURRENTLY"
        if why:
            raise DataBlockError(f"{block.file}:{line}: the data block '{block.name}' holds {why}, which cannot "
                                 "run in the block's transaction. A block runs in one transaction with its "
                                 "ledger row; declare indexes in sql/ instead.")
        out.append(text)
    if not out:
        raise DataBlockError(f"{block.file}:{block.line}: the data block '{block.name}' holds no statement")
    return out


def relations(block: DataBlock) -> list[str]:
    """The tables a block's statements name, quoted as ``to_regclass`` takes them (for the report of
    who holds the locks a block waits for); unqualified names resolve on the server's search_path."""
    import pglast
    from pglast.parser import ParseError
    from pglast.visitors import Visitor

    found: list[str] = []

    class Tables(Visitor):
        def visit_RangeVar(self, ancestors, node) -> None:  # noqa: N802 - pglast's naming
            name = q(node.schemaname, node.relname) if node.schemaname else q(node.relname)
            if name not in found:
                found.append(name)

    try:
        Tables()(pglast.parse_sql(block.sql))
    except ParseError:
        return []  # statements() reports it, naming the file and line
    return found
