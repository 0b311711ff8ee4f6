"""Helpers for deploy.py: turn an environment's group data into database connections."""

from __future__ import annotations

from typing import Any


def database_specs(data: Any) -> list[dict]:
    """The databases of this host, as connection specs for ``operations.converge``.

    With ``pgconverge_embedded`` the embedded cluster is started (if needed), each database
    is created if missing, and its socket and port are filled in.
    """
    specs = [dict(s) for s in (data.get("pgconverge_databases") or [])]
    if not specs:
        raise ValueError("group data names no databases: set pgconverge_databases")
    if data.get("pgconverge_embedded"):
        from .embedded import default_cluster

        cluster = default_cluster()
        cluster.ensure_started()
        for spec in specs:
            spec.setdefault("host", str(cluster.run_dir))
            spec.setdefault("port", str(cluster.port))
            spec.setdefault("user", "postgres")
            cluster.ensure_database(spec["dbname"])
    return specs


def label_of(spec: str | dict) -> str:
    """A printable name for a database spec (never its URL, which may hold a password)."""
    if isinstance(spec, dict):
        for key in ("name", "dbname", "service"):
            if spec.get(key):
                return str(spec[key])
        if spec.get("url_env"):
            return f"${spec['url_env']}"
        return "database"
    from .runner import Conn

    return Conn.parse(spec).dbname or "database"
