"""Quoting of identifiers and literals, always by psycopg: never by pasting strings."""

from __future__ import annotations

from psycopg import sql


def q(*names: str) -> str:
    """A (qualified) identifier quoted by psycopg."""
    return sql.Identifier(*names).as_string(None)


def lit(value: str | None) -> str:
    return sql.Literal(value).as_string(None) if value is not None else "NULL"

