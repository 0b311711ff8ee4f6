-- Constraints of tables; p/u/x name their backing index, p/u print its definition too.
SELECT n.nspname AS schema, c.relname AS table, k.conname AS name, k.contype AS kind,
       pg_get_constraintdef(k.oid) AS definition,
       k.convalidated AS validated,
       (SELECT json_agg(a.attname ORDER BY x.ord) FROM unnest(k.conkey) WITH ORDINALITY x(num, ord)
          JOIN LATERAL (SELECT a.attname FROM pg_attribute a
                        WHERE a.attrelid = k.conrelid AND a.attnum = x.num) a ON true) AS columns,
       CASE WHEN k.contype = 'f' THEN rn.nspname || '.' || rc.relname END AS ref_table,
       CASE WHEN k.contype IN ('p', 'u', 'x') THEN ic.relname END AS index,
       CASE WHEN k.contype IN ('p', 'u') THEN pg_get_indexdef(k.conindid) END AS index_definition,
       (SELECT d.description FROM pg_description d
         WHERE d.objoid = k.oid AND d.classoid = 'pg_constraint'::regclass AND d.objsubid = 0) AS comment,
       k.conislocal AS local, k.coninhcount AS inhcount
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN ns n ON n.oid = c.relnamespace
LEFT JOIN pg_class rc ON rc.oid = k.confrelid
LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace
LEFT JOIN pg_class ic ON ic.oid = k.conindid
WHERE c.relkind IN ('r', 'p') AND k.contype IN ('p', 'u', 'c', 'f', 'x')
ORDER BY 1, 2, 3
