-- The managed schemas (ns, shared.sql).
SELECT n.nspname AS name,
       obj_description(n.oid, 'pg_namespace') AS comment
FROM ns n
ORDER BY 1
