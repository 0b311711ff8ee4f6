# staging: a clone of production, where every change is converged and smoke-tested first.
pgconverge_env = "staging"

# Connection: the URL is read from this environment variable on the machine running pyinfra
# (never from the repository). Alternatives per database: {"service": "app_staging"} with a
# pg_service.conf, or {"host": ..., "dbname": ..., "user": ..., "passfile": "~/.pgpass"}.
# "name" labels the database in plans/, backups/ and sign-offs (the same in every environment).
pgconverge_databases = [{"name": "app", "url_env": "STAGING_DATABASE_URL"}]

# Preflight
pgconverge_min_server_version = 15
pgconverge_required_extensions = []  # besides those sql/ creates
pgconverge_backup_space_factor = 2.0  # free space at the backup folder >= 2x the database size
# pgconverge_shadow = {"url_env": "STAGING_SHADOW_URL"}  # when the role lacks CREATEDB

# Backups: before every change; custom format (pg_restore) or "sql.gz".
pgconverge_backup_dir = "backups/staging"
pgconverge_backup_format = "custom"
pgconverge_backup_keep = 10
pgconverge_backup_max_age_days = 14

# Staging is the evidence for production: re-run the smoke checks (and record them in the
# ledger) even when there is nothing to change.
pgconverge_verify_unchanged = True
pgconverge_require_signoff = False
