-- The locale column of ICU collations is colliculocale in 15 and 16, colllocale from 17 on
-- (and collcollate before 15): read through to_jsonb so one query fits them all.
SELECT n.nspname AS schema, co.collname AS name, co.collprovider AS provider,
       CASE WHEN co.collprovider = 'i'
            THEN coalesce(to_jsonb(co) ->> 'colllocale', to_jsonb(co) ->> 'colliculocale', co.collcollate) END
         AS locale,
       CASE WHEN co.collprovider = 'c' THEN co.collcollate END AS lc_collate,
       CASE WHEN co.collprovider = 'c' THEN co.collctype END AS lc_ctype,
       co.collisdeterministic AS deterministic,
       obj_description(co.oid, 'pg_collation') AS comment
FROM pg_collation co
JOIN ns n ON n.oid = co.collnamespace
WHERE (co.oid, 'pg_collation'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
ORDER BY 1, 2
