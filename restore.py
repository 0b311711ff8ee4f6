"""Put a backup back (the runbook's rollback: "restore from backup").

    pyinfra inventory/staging.py restore.py -y                                   # the newest backup
    pyinfra inventory/staging.py restore.py -y --data pgconverge_backup=FILE     # a chosen one
    pyinfra inventory/production.py restore.py -y --data pgconverge_confirm=yes  # non-interactive

Hosts with several databases: --data pgconverge_database=NAME picks one. Environments with
pgconverge_confirm_restore ask first (and refuse without a terminal unless pgconverge_confirm=yes).
The restore is one transaction and is recorded in the ledger.
"""

from pyinfra import host

from pgconverge import operations as pgc
from pgconverge.pyinfra.host import host_databases, host_settings
from pgconverge.runbook.settings import label_of

settings = host_settings(host)
specs = host_databases(host)
for spec in specs:
    pgc.restore(name=f"Restore {label_of(spec)} ({settings.env})", database=spec, settings=settings,
                backup=host.data.get("pgconverge_backup"), confirm=host.data.get("pgconverge_confirm"),
                only=host.data.get("pgconverge_database"), several=len(specs) > 1)
