"""Refresh staging from production: rebuild each database from production's newest verified backup.

    pyinfra inventory/staging.py refresh.py --dry                              # what would be restored
    pyinfra inventory/staging.py refresh.py -y                                 # the newest verified backup
    pyinfra inventory/staging.py refresh.py -y --data pgconverge_backup=FILE   # a chosen one

Per database: the backup's sha256 is looked up in production's ledger (pgconverge_refresh_from), then,
in one transaction, staging's schemas are replaced by the backup's, the masking scripts in sql/mask/
(pgconverge_mask) run, and staging's ledger is kept; a ``refresh`` row records the backup, its sha256,
production's schema hash and the masking scripts' hash. Refused, changing nothing, when the backup
does not verify, a run is in progress on staging, or masking fails. Backups are read in
pgconverge_refresh_dir on the host when set (a shared folder), else in production's backup folder on
this machine and sent to the host by pyinfra. Hosts with several databases: --data
pgconverge_database=NAME picks one.
"""

from pyinfra import host

from pgconverge import operations as pgc
from pgconverge.pyinfra.host import host_databases, host_settings
from pgconverge.runbook.settings import label_of

settings = host_settings(host)
for spec in host_databases(host):
    pgc.refresh(name=f"Refresh {label_of(spec)} ({settings.env}) from {settings.refresh_from}", database=spec,
                settings=settings, backup=host.data.get("pgconverge_backup"),
                confirm=host.data.get("pgconverge_confirm"), only=host.data.get("pgconverge_database"))
