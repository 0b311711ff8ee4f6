-- The role that runs the plan: it owns what the plan creates.
SELECT current_user AS current_user
