"""The deployment runbook, for every database of an environment.

    pyinfra inventory/staging.py deploy.py --dry     # preflight, the plan with its hazards, the gate
    pyinfra inventory/staging.py deploy.py -y        # preflight, backup, converge, analyze, smoke, ledger
    pyinfra inventory/production.py deploy.py -y     # refused unless a signed signoffs/production.yml covers it

Per database (pgconverge.runbook.deploy): preflight -> gate -> backup -> converge -> VACUUM ANALYZE
-> smoke checks -> ledger row. Any failure stops that host and says what to do.
"""

from pyinfra import host

from pgconverge import operations as pgc
from pgconverge.pyinfra.host import host_databases, host_settings
from pgconverge.runbook.settings import label_of

settings = host_settings(host)
for spec in host_databases(host):
    pgc.deploy(name=f"Deploy {label_of(spec)} ({settings.env})", database=spec, settings=settings)
