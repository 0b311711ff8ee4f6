# production: changes only what staging converged and smoke-tested, and someone signed off.
pgconverge_env = "production"

pgconverge_databases = [{"name": "app", "url_env": "PRODUCTION_DATABASE_URL"}]

# Objects sql/ does not declare (a hotfix column, an index a DBA added) are left alone and listed
# in every plan; a declared change that would break one is refused (see README "Drift").
pgconverge_unmanaged = "report"

# Preflight
pgconverge_min_server_version = 15
pgconverge_required_extensions = []  # e.g. ["pg_stat_statements"]: needed here only, checked by preflight
pgconverge_backup_space_factor = 2.0
# pgconverge_shadow = {"url_env": "PRODUCTION_SHADOW_URL"}

# Backups: always before a change, kept for 30 days (at most 30 of them).
pgconverge_backup_dir = "backups/production"
pgconverge_backup_format = "custom"
pgconverge_backup_keep = 30
pgconverge_backup_max_age_days = 30

# The gate: a deploy is refused unless this file (written and signed by `pgconverge signoff
# --key ...`) is signed by a key in the allowed signers file and matches the current sql/, smoke
# checks, policy and production's schema; the evidence comes from staging's ledger.
pgconverge_require_signoff = True
pgconverge_signoff_file = "signoffs/production.yml"
pgconverge_signoff_from = "staging"
pgconverge_allowed_signers = "signoffs/allowed_signers"

# A restore asks first (or needs --data pgconverge_confirm=yes when not on a terminal).
pgconverge_confirm_restore = True
