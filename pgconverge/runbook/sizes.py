"""The size and row estimate of the tables a deploy changes, before and after the change.

Measured twice per deploy: after the backup, right before the plan runs, and after VACUUM
ANALYZE (so the estimate after is fresh). Recorded in the ledger's ``sizes`` column and added
to the run's plan page (.md). A rewrite that doubles a table, or an index build that adds a
third, shows here; so does a table the plan created (nothing before) or a row count that
moved while the change ran.

The row estimate is ``pg_class.reltuples`` (-1 before the table was ever analyzed or vacuumed:
"unknown"); the size is ``pg_total_relation_size`` (heap, TOAST and indexes). A partitioned
table counts its partitions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pgconverge.exec.runner import Runner
from pgconverge.quoting import lit


@dataclass(frozen=True)
class TableSize:
    """One table at one moment: total bytes and the planner's row estimate (None: unknown)."""

    bytes: int
    rows: int | None

    def to_json(self) -> dict[str, Any]:
        return {"bytes": self.bytes, "rows": self.rows}

    def describe(self) -> str:
        rows = "rows unknown" if self.rows is None else f"~{self.rows:,} row(s)"
        return f"{human(self.bytes)}, {rows}"


@dataclass(frozen=True)
class SizeChange:
    """A table before and after a run (None: it did not exist then)."""

    table: str
    before: TableSize | None
    after: TableSize | None

    def to_json(self) -> dict[str, Any]:
        return {"before": self.before.to_json() if self.before else None,
                "after": self.after.to_json() if self.after else None}

    def describe(self) -> str:
        before = self.before.describe() if self.before else "not there"
        after = self.after.describe() if self.after else "not there"
        return f"{self.table.removeprefix('table:')}: {before} -> {after}"


def human(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def measure(runner: Runner, tables: list[str]) -> dict[str, TableSize]:
    """The tables among `tables` (ids, ``table:schema.name``) that exist now, by id. One query;
    the ids are matched by the server, so a dot inside a name cannot split it wrongly."""
    if not tables:
        return {}
    # a partitioned table holds nothing itself: its leaves carry the rows and the bytes
    rows = runner.query_json(
        "SELECT coalesce(json_object_agg(t.id, json_build_array(t.bytes, t.tuples)), '{}') FROM ("
        "SELECT 'table:' || n.nspname || '.' || c.relname AS id, "
        "CASE WHEN c.relkind = 'p' THEN (SELECT coalesce(sum(pg_catalog.pg_total_relation_size(p.relid)), 0) "
        "FROM pg_catalog.pg_partition_tree(c.oid) p WHERE p.isleaf) "
        "ELSE pg_catalog.pg_total_relation_size(c.oid) END AS bytes, "
        "CASE WHEN c.relkind = 'p' THEN (SELECT CASE WHEN bool_or(l.reltuples < 0) THEN -1 "
        "ELSE coalesce(sum(l.reltuples), 0) END FROM pg_catalog.pg_partition_tree(c.oid) p "
        "JOIN pg_catalog.pg_class l ON l.oid = p.relid WHERE p.isleaf) ELSE c.reltuples END AS tuples "
        "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p', 'm') AND 'table:' || n.nspname || '.' || c.relname = ANY (ARRAY["
        + ", ".join(lit(i) for i in tables) + "]::text[])) t;") or {}
    return {tid: TableSize(int(b or 0), None if t is None or float(t) < 0 else int(float(t)))
            for tid, (b, t) in rows.items()}


def compare(before: dict[str, TableSize], after: dict[str, TableSize], tables: list[str]) -> list[SizeChange]:
    """Each of `tables`, in their order, before and after (a table in neither is left out)."""
    return [SizeChange(t, before.get(t), after.get(t)) for t in tables if t in before or t in after]


def to_json(changes: list[SizeChange]) -> dict[str, Any]:
    """The ledger's ``sizes`` column: {table id: {"before": {bytes, rows} | null, "after": ...}}."""
    return {c.table: c.to_json() for c in changes}


def markdown(changes: list[SizeChange], run: str) -> str:
    """The section the deploy adds to its plan page once the change ran."""
    lines = ["", f"## Table sizes ({run})", "",
             "| table | size before | rows before (estimate) | size after | rows after (estimate) |",
             "|---|---|---|---|---|"]

    def cells(s: TableSize | None) -> str:
        if s is None:
            return "- | -"
        return f"{human(s.bytes)} | {'unknown' if s.rows is None else f'{s.rows:,}'}"

    for c in changes:
        lines.append(f"| `{c.table}` | {cells(c.before)} | {cells(c.after)} |")
    return "\n".join(lines) + "\n"
