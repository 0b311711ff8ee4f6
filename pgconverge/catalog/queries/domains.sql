-- A domain's collation is printed only when it is not its base type's; type_deps and
-- coll_dep name the user types and collations it needs (an array's element type).
SELECT n.nspname AS schema, t.typname AS name,
       format_type(t.typbasetype, t.typtypmod) AS base_type,
       CASE WHEN t.typcollation <> bt.typcollation
            THEN quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END AS collation,
       CASE WHEN cn.nspname NOT IN ('pg_catalog', 'information_schema')
            THEN cn.nspname || '.' || co.collname END AS coll_dep,
       pg_get_expr(t.typdefaultbin, 0) AS default,
       t.typnotnull AS not_null,
       CASE WHEN tn.nspname NOT IN ('pg_catalog', 'information_schema')
            THEN json_build_array(tn.nspname || '.' || coalesce(et.typname, bt.typname)) END AS type_deps,
       (SELECT coalesce(json_agg(json_build_object(
            'name', k.conname,
            'definition', pg_get_constraintdef(k.oid),
            'validated', k.convalidated,
            'func_deps', (SELECT json_agg(fn.nspname || '.' || p.proname || '('
                                          || pg_get_function_identity_arguments(p.oid) || ')')
                          FROM pg_depend d JOIN pg_proc p ON p.oid = d.refobjid
                          JOIN pg_namespace fn ON fn.oid = p.pronamespace
                          WHERE d.classid = 'pg_constraint'::regclass AND d.objid = k.oid
                            AND d.refclassid = 'pg_proc'::regclass
                            AND fn.nspname NOT IN ('pg_catalog', 'information_schema')),
            'comment', obj_description(k.oid, 'pg_constraint')
          ) ORDER BY k.conname), '[]')
        FROM pg_constraint k WHERE k.contypid = t.oid AND k.contype = 'c') AS constraints,
       obj_description(t.oid, 'pg_type') AS comment
FROM pg_type t
JOIN ns n ON n.oid = t.typnamespace
JOIN pg_type bt ON bt.oid = t.typbasetype
LEFT JOIN pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A'
LEFT JOIN pg_namespace tn ON tn.oid = coalesce(et.typnamespace, bt.typnamespace)
LEFT JOIN pg_collation co ON co.oid = t.typcollation
LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
WHERE t.typtype = 'd'
  AND (t.oid, 'pg_type'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
ORDER BY 1, 2
