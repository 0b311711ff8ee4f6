-- Indexes of tables that no constraint owns (those come with their constraint).
SELECT n.nspname AS schema, ic.relname AS name, c.relname AS table,
       pg_get_indexdef(i.indexrelid) AS definition,
       i.indisunique AS unique, i.indisvalid AS valid,
       (SELECT d.description FROM pg_description d
         WHERE d.objoid = ic.oid AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0) AS comment,
       (SELECT json_agg(a.attname) FROM pg_attribute a
          WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)) AS columns,
       ic.relkind = 'I' AS partitioned,
       EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = ic.oid) AS is_partition_child,
       ic.reloptions AS options,
       -- SET STATISTICS on index columns (expression columns only); -1 (NULL from 17 on) is the default
       (SELECT json_agg(json_build_array(a.attnum, a.attstattarget) ORDER BY a.attnum) FROM pg_attribute a
          WHERE a.attrelid = i.indexrelid AND a.attnum > 0 AND a.attstattarget >= 0) AS statistics
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class c ON c.oid = i.indrelid
JOIN ns n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k
                  WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x'))
ORDER BY 1, 2
