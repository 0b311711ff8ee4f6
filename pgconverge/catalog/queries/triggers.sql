-- Triggers cloned onto partitions (tgparentid) come with their parent's.
SELECT n.nspname AS schema, c.relname AS table, t.tgname AS name,
       pg_get_triggerdef(t.oid) AS definition,
       t.tgenabled AS enabled,
       obj_description(t.oid, 'pg_trigger') AS comment
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN ns n ON n.oid = c.relnamespace
WHERE NOT t.tgisinternal AND t.tgparentid = 0
  AND (t.oid, 'pg_trigger'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
ORDER BY 1, 2, 3
