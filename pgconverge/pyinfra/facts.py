"""pyinfra facts: read a database's state through the host's own psql.

Facts run ``psql`` on the host (so SSH hosts and ``@local`` work alike) with the
query in a here-document, never in an argument that could carry a secret. Pass
the connection as ``conn_env``: the non-secret PG* variables of a
``pgconverge.runner.Conn`` (a password reaches psql only through a password file).
"""

from __future__ import annotations

import json
from typing import Any

from pyinfra.api import FactBase

from pgconverge.catalog.introspect import catalog_query
from pgconverge.exec.runner import shell_command
from pgconverge.runbook.preflight import SERVER_INFO


def _heredoc(command: str, script: str) -> str:
    tag = "PGCONVERGE_SQL"
    assert tag not in script
    # The trailing newline ends the here-document even when pyinfra appends to the command
    # (its "is psql installed?" guard wraps it in `if ...; then ( ... ); fi`).
    return f"{command} <<'{tag}'\n{script}\n{tag}\n"


__all__ = ["PgServerInfo", "PgCatalog"]


class _JsonFact(FactBase):
    abstract = True
    script = ""

    def command(self, conn_env: dict[str, str], psql: str = "psql") -> str:
        return _heredoc(shell_command(conn_env, ["-A", "-t"], psql), self.script)

    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return kwargs.get("psql", "psql")

    def process(self, output: list[str]) -> Any:
        return json.loads("\n".join(output)) if output else None


class PgServerInfo(_JsonFact):
    """Server version, role privileges, database size and available extensions.

    .. code:: python

        info = host.get_fact(PgServerInfo, conn_env={"PGSERVICE": "staging"})
        info["server_version"]  # 150018
    """

    abstract = False
    script = SERVER_INFO


class PgCatalog(_JsonFact):
    """The whole managed catalog of one database, as the JSON document that
    ``pgconverge.introspect.parse_catalog`` turns into the data model. One psql call.

    .. code:: python

        doc = host.get_fact(PgCatalog, conn_env={"PGDATABASE": "app"})
    """

    abstract = False
    script = catalog_query()
