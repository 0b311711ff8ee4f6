# Settings shared by every environment; each environment's file overrides them.

# The desired state, and the smoke checks run after a converge.
pgconverge_sql = "sql/schema"
pgconverge_smoke = "sql/smoke"

# Hazards a run may carry without refusing (see README, "Hazards"). Destructive ones are
# opt-in per environment; deletes_data also needs the object named (-- @drop, or below).
pgconverge_allow_hazards = [
    "index_build",
    "may_fail_on_existing_data",
    "renames",
    "extension_change",
    "blocks_writes",
]
pgconverge_drops = []

# Lock discipline: every step waits at most lock_timeout for its lock, then retries.
pgconverge_lock_timeout = "2s"
pgconverge_lock_retries = 5  # then the run fails, naming the step; nothing of that step was applied
pgconverge_statement_timeout = "30min"

# Schema scoping (empty: every non-system schema).
pgconverge_only_schemas = []
pgconverge_exclude_schemas = []
