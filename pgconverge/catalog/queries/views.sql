-- Views and materialized views with their columns (a collation only when not the type's).
SELECT n.nspname AS schema, c.relname AS name, c.relkind AS kind,
       pg_get_viewdef(c.oid) AS definition,
       (SELECT coalesce(json_agg(json_build_object(
            'name', a.attname,
            'type', format_type(a.atttypid, a.atttypmod)
                    || CASE WHEN a.attcollation <> t.typcollation
                            THEN ' COLLATE ' || quote_ident(cn.nspname) || '.' || quote_ident(co.collname) ELSE '' END,
            'comment', col_description(c.oid, a.attnum)) ORDER BY a.attnum), '[]')
          FROM pg_attribute a
          JOIN pg_type t ON t.oid = a.atttypid
          LEFT JOIN pg_collation co ON co.oid = a.attcollation
          LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
         WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
       coalesce(to_json(c.reloptions), '[]') AS options,
       obj_description(c.oid, 'pg_class') AS comment
FROM pg_class c
JOIN ns n ON n.oid = c.relnamespace
WHERE c.relkind IN ('v', 'm')
  AND (c.oid, 'pg_class'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
ORDER BY 1, 2
