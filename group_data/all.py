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

# Lock discipline: each attempt of a step waits at most lock_timeout for its lock (the longest any
# other session queues behind it), then rolls back, pauses (jittered, growing) and tries again; after
# lock_deadline the run fails, naming the step and the sessions holding the lock; nothing of that step
# was applied. pgconverge_lock_retries caps the attempts too (unset: as many as fit the deadline).
pgconverge_lock_timeout = "500ms"
pgconverge_lock_deadline = "60s"
pgconverge_statement_timeout = "30min"

# Schema scoping (empty: every non-system schema).
pgconverge_only_schemas = []
pgconverge_exclude_schemas = []
