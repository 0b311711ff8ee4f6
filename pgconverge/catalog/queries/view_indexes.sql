-- Indexes of materialized views.
SELECT n.nspname AS schema, ic.relname AS name, c.relname AS view,
       pg_get_indexdef(i.indexrelid) AS definition,
       i.indisunique AS unique, i.indisvalid AS valid,
       obj_description(ic.oid, 'pg_class') AS comment
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class c ON c.oid = i.indrelid
JOIN ns n ON n.oid = c.relnamespace
WHERE c.relkind = 'm'
ORDER BY 1, 2
