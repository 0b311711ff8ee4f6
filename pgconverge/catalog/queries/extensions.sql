-- Installed extensions; plpgsql comes with every database and is never managed. A comment is
-- returned only when it is not the one CREATE EXTENSION sets (the control file's).
SELECT e.extname AS name, n.nspname AS schema, e.extversion AS version,
       own.is AS own_comment,
       CASE WHEN own.is THEN obj_description(e.oid, 'pg_extension') END AS comment,
       CASE WHEN own.is THEN a.comment END AS control_comment
FROM pg_extension e
JOIN pg_namespace n ON n.oid = e.extnamespace
LEFT JOIN pg_available_extensions a ON a.name = e.extname
CROSS JOIN LATERAL (SELECT obj_description(e.oid, 'pg_extension') IS DISTINCT FROM a.comment AS is) own
WHERE e.extname <> 'plpgsql'
ORDER BY 1
