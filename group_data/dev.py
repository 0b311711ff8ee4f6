# dev: the embedded cluster under .pgconverge/cluster, started by the deploy if needed.
pgconverge_env = "dev"
pgconverge_embedded = True
pgconverge_databases = [{"dbname": "app_dev"}]
pgconverge_allow_hazards = [
    "index_build",
    "index_dropped",
    "may_fail_on_existing_data",
    "renames",
    "extension_change",
    "blocks_writes",
    "blocks_reads_writes",
    "rewrites_table",
]
