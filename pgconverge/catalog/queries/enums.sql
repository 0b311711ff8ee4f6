-- Enum types with their labels in sort order.
SELECT n.nspname AS schema, t.typname AS name,
       (SELECT json_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid) AS labels,
       obj_description(t.oid, 'pg_type') AS comment
FROM pg_type t
JOIN ns n ON n.oid = t.typnamespace
WHERE t.typtype = 'e'
  AND (t.oid, 'pg_type'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
ORDER BY 1, 2
