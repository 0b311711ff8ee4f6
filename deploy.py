"""The deployment runbook, for every database of an environment: one pyinfra operation per step.

    pyinfra inventory/staging.py deploy.py --dry     # preflight, the plan with its hazards, the gate
    pyinfra inventory/staging.py deploy.py -y        # preflight, backup, converge, analyze, smoke, ledger
    pyinfra inventory/production.py deploy.py -y     # refused unless a signed signoffs/production.yml covers it

The operations run in the order they are written here, per database. They share what they find (the
plan, the backup taken) through pgconverge, so each step's operation can be moved, left out or have
your own operations put between them (see examples/deploy_maintenance.py). A refusal (preflight,
the proof, the policy, the gate) stops that host before anything changes, --dry included.
"""

from pyinfra import host

from pgconverge import operations as pgc
from pgconverge.pyinfra.host import host_databases, host_settings
from pgconverge.pyinfra.smoke_commands import is_command_host
from pgconverge.runbook.settings import label_of

settings = host_settings(host)
# an application server named by pgconverge_smoke_commands: the database hosts' smoke steps use it
for spec in [] if is_command_host(host) else host_databases(host):
    db = dict(database=spec, settings=settings)
    where = f"{label_of(spec)} ({settings.env})"
    pgc.preflight(name=f"Preflight {where}", **db)  # connection, version, extensions, the plan, room
    pgc.gate_check(name=f"Gate {where}", **db)  # policy, check mode, the sign-off
    pgc.backup(name=f"Backup {where}", **db)  # ledger row opened, pg_dump verified
    pgc.extensions(name=f"Extensions {where}", **db)  # CREATE / ALTER EXTENSION
    pgc.data_blocks(name=f"Data blocks before the schema {where}", when="before", **db)
    pgc.schema(name=f"Schema {where}", **db)  # the plan, then: converged?
    pgc.data_blocks(name=f"Data blocks after the schema {where}", when="after", **db)
    pgc.analyze(name=f"Analyze {where}", **db)  # VACUUM ANALYZE of the changed tables
    pgc.smoke(name=f"Smoke checks {where}", **db)  # sql/smoke/
    pgc.record(name=f"Record {where}", **db)  # the ledger row finished
