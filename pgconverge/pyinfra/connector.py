"""``@pglocal/<name>``: a pyinfra host that runs on this machine, one per managed database.

pyinfra's ``@local`` exists once per inventory, so all the databases reached from this
machine (managed services, reached by URL) would be converged one after another. Each
``@pglocal/<name>`` is its own host, so pyinfra converges them in parallel:

    production = [
        ("@pglocal/orders", {"pgconverge_databases": [{"name": "orders", "url_env": "ORDERS_URL"}]}),
        ("@pglocal/billing", {"pgconverge_databases": [{"name": "billing", "url_env": "BILLING_URL"}]}),
    ]

Commands run exactly as with ``@local`` (a local shell).
"""

from __future__ import annotations

from pyinfra.api.exceptions import InventoryError
from pyinfra.connectors.local import LocalConnector


class NamedLocalConnector(LocalConnector):
    """``@local`` under a name of its own, so that an inventory may hold many."""

    @staticmethod
    def make_names_data(name=None):
        if not name:
            raise InventoryError("@pglocal needs a name: @pglocal/<name>")
        yield f"@pglocal/{name}", {}, ["@pglocal"]
