"""The restore drill (the runbook's "test restore procedure").

    pyinfra inventory/production.py drill.py -y

Per database: restore the newest backup into a scratch database, compare its schema hash with the
one the ledger recorded when that backup was taken, drop the scratch database, record the drill.
"""

from pyinfra import host

from pgconverge import operations as pgc
from pgconverge.pyinfra.host import host_databases, host_settings
from pgconverge.runbook.settings import label_of

settings = host_settings(host)
specs = host_databases(host)
for spec in specs:
    pgc.drill(name=f"Restore drill {label_of(spec)} ({settings.env})", database=spec, settings=settings,
              backup=host.data.get("pgconverge_backup"), only=host.data.get("pgconverge_database"),
              several=len(specs) > 1)
