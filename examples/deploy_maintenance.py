"""An example deploy: pgconverge's steps with operations of your own between them.

    pyinfra inventory/production.py examples/deploy_maintenance.py -y

- the role and the database are declared with pyinfra's own ``postgres.role`` and
  ``postgres.database`` operations (no change once they exist);
- the application host goes into maintenance mode after the backup and before the schema change,
  and comes out of it once the smoke checks passed and the run is recorded, with ``server.shell``.

pyinfra runs each operation on every host before the next one, so on an inventory with database hosts
and application hosts the application's maintenance starts only once every backup is taken. The group
data it reads, besides pgconverge's ``pgconverge_*`` keys:

    app_maintenance_file   on application hosts: the file whose presence puts the app in maintenance
    app_maintenance_log    (optional) a file that gets one "on <time>" / "off <time>" line per switch
    app_role, app_database the role and the database to ensure, on hosts that carry databases
    app_psql_host, app_psql_port, app_psql_user
                           how pyinfra's postgres operations reach the server (psql on the host; give the
                           role a password through ~/.pgpass there, never here)

pyinfra prepares every operation before it executes any, so pgconverge's checks (and ``--dry``) see
the server as it is before this deploy. ``created_here=True`` tells ``preflight`` that the database is
made by ``postgres.database`` above: while it does not exist yet, pgconverge checks and plans it when
the deploy runs. A role that sql/ grants to must exist before the deploy (the plan loads sql/).
"""

from pyinfra import host
from pyinfra.operations import postgres, server

from pgconverge import operations as pgc
from pgconverge.pyinfra.host import host_databases, host_settings
from pgconverge.runbook.settings import label_of

settings = host_settings(host)
specs = host_databases(host) if host.data.get("pgconverge_databases") else []
flag = host.data.get("app_maintenance_file")
log = host.data.get("app_maintenance_log")
psql = dict(psql_host=host.data.get("app_psql_host"), psql_port=host.data.get("app_psql_port"),
            psql_user=host.data.get("app_psql_user"))

if specs and host.data.get("app_role"):
    postgres.role(name="Application role", role=host.data.get("app_role"), login=True, **psql)
if specs and host.data.get("app_database"):
    postgres.database(name="Application database", database=host.data.get("app_database"),
                      owner=host.data.get("app_role"), **psql)

for spec in specs:
    db = dict(database=spec, settings=settings)
    where = f"{label_of(spec)} ({settings.env})"
    # created_here: on a fresh server the database does not exist while pyinfra prepares the deploy
    pgc.preflight(name=f"Preflight {where}", created_here=bool(host.data.get("app_database")), **db)
    pgc.gate_check(name=f"Gate {where}", **db)
    pgc.backup(name=f"Backup {where}", **db)

if flag:
    server.shell(name="Application: maintenance mode on", commands=[
        f"touch {flag}", *([f"echo on $(date +%s.%N) >> {log}"] if log else [])])

for spec in specs:
    db = dict(database=spec, settings=settings)
    where = f"{label_of(spec)} ({settings.env})"
    pgc.extensions(name=f"Extensions {where}", **db)
    pgc.data_blocks(name=f"Data blocks before the schema {where}", when="before", **db)
    pgc.schema(name=f"Schema {where}", **db)
    pgc.data_blocks(name=f"Data blocks after the schema {where}", when="after", **db)
    pgc.analyze(name=f"Analyze {where}", **db)
    pgc.smoke(name=f"Smoke checks {where}", **db)
    pgc.record(name=f"Record {where}", **db)

if flag:
    server.shell(name="Application: maintenance mode off", commands=[
        f"rm -f {flag}", *([f"echo off $(date +%s.%N) >> {log}"] if log else [])])
