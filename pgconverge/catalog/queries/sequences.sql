-- Sequences with the column that owns them: 'a' for OWNED BY (serial), 'i' for an
-- identity column, whose sequence belongs to the column rather than to the schema.
SELECT n.nspname AS schema, c.relname AS name,
       format_type(s.seqtypid, NULL) AS data_type,
       s.seqstart AS start, s.seqincrement AS increment, s.seqmin AS min_value,
       s.seqmax AS max_value, s.seqcache AS cache, s.seqcycle AS cycle,
       owner_t.relname AS owned_table, owner_a.attname AS owned_column,
       d.deptype AS owner_deptype,
       obj_description(c.oid, 'pg_class') AS comment
FROM pg_sequence s
JOIN pg_class c ON c.oid = s.seqrelid
JOIN ns n ON n.oid = c.relnamespace
LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
     AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
LEFT JOIN pg_class owner_t ON owner_t.oid = d.refobjid
LEFT JOIN pg_attribute owner_a ON owner_a.attrelid = d.refobjid AND owner_a.attnum = d.refobjsubid
WHERE (c.oid, 'pg_class'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
ORDER BY 1, 2
