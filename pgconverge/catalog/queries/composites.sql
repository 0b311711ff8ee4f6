-- Stand-alone composite types (CREATE TYPE ... AS (...)); a table's row type is its table.
-- An attribute's collation is printed only when it is not its type's.
SELECT n.nspname AS schema, t.typname AS name,
       (SELECT coalesce(json_agg(json_build_object(
            'name', a.attname,
            'type', format_type(a.atttypid, a.atttypmod),
            'collation', CASE WHEN a.attcollation <> at.typcollation
                              THEN quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END,
            'coll_dep', CASE WHEN cn.nspname NOT IN ('pg_catalog', 'information_schema')
                             THEN cn.nspname || '.' || co.collname END,
            'type_deps', CASE WHEN tn.nspname NOT IN ('pg_catalog', 'information_schema')
                              THEN json_build_array(tn.nspname || '.' || coalesce(et.typname, at.typname)) END
          ) ORDER BY a.attnum), '[]')
        FROM pg_attribute a
        JOIN pg_type at ON at.oid = a.atttypid
        LEFT JOIN pg_type et ON et.oid = at.typelem AND at.typcategory = 'A'
        LEFT JOIN pg_namespace tn ON tn.oid = coalesce(et.typnamespace, at.typnamespace)
        LEFT JOIN pg_collation co ON co.oid = a.attcollation
        LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
        WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped) AS attributes,
       obj_description(t.oid, 'pg_type') AS comment
FROM pg_type t
JOIN ns n ON n.oid = t.typnamespace
JOIN pg_class c ON c.oid = t.typrelid
WHERE t.typtype = 'c' AND c.relkind = 'c'
  AND (t.oid, 'pg_type'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
ORDER BY 1, 2
