"""Converge every database of an environment to sql/.

    pyinfra inventory/dev.py deploy.py --dry    # show the SQL, with its hazards
    pyinfra inventory/dev.py deploy.py -y       # converge
"""

from pyinfra import host

from pgconverge import operations as pgc
from pgconverge.deploy import database_specs

for spec in database_specs(host.data):
    pgc.converge(
        name=f"Converge {spec.get('dbname', spec.get('service', 'database'))}",
        database=spec,
        sql=host.data.get("pgconverge_sql", "sql/schema"),
        allow_hazards=host.data.get("pgconverge_allow_hazards"),
        drops=host.data.get("pgconverge_drops"),
        only_schemas=host.data.get("pgconverge_only_schemas") or None,
        exclude_schemas=host.data.get("pgconverge_exclude_schemas") or None,
        lock_timeout=host.data.get("pgconverge_lock_timeout"),
        statement_timeout=host.data.get("pgconverge_statement_timeout"),
        check=str(host.data.get("pgconverge_check", "")).lower() in ("1", "true", "yes"),
    )
