-- The operator class and collation are always printed (the defaults resolve alike on both
-- sides); the multirange type that CREATE TYPE ... AS RANGE made comes with its range.
SELECT n.nspname AS schema, t.typname AS name,
       format_type(r.rngsubtype, NULL) AS subtype,
       (SELECT quote_ident(on_.nspname) || '.' || quote_ident(oc.opcname)
          FROM pg_opclass oc JOIN pg_namespace on_ ON on_.oid = oc.opcnamespace
         WHERE oc.oid = r.rngsubopc) AS subtype_opclass,
       CASE WHEN r.rngcollation <> 0
            THEN quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END AS collation,
       CASE WHEN cn.nspname NOT IN ('pg_catalog', 'information_schema')
            THEN cn.nspname || '.' || co.collname END AS coll_dep,
       CASE WHEN r.rngcanonical <> 0 THEN r.rngcanonical::regproc::text END AS canonical,
       CASE WHEN r.rngsubdiff <> 0 THEN r.rngsubdiff::regproc::text END AS subtype_diff,
       (SELECT quote_ident(mn.nspname) || '.' || quote_ident(mt.typname)
          FROM pg_type mt JOIN pg_namespace mn ON mn.oid = mt.typnamespace
         WHERE mt.oid = r.rngmultitypid) AS multirange,
       CASE WHEN tn.nspname NOT IN ('pg_catalog', 'information_schema')
            THEN json_build_array(tn.nspname || '.' || coalesce(et.typname, st.typname)) END AS type_deps,
       obj_description(t.oid, 'pg_type') AS comment
FROM pg_range r
JOIN pg_type t ON t.oid = r.rngtypid
JOIN ns n ON n.oid = t.typnamespace
JOIN pg_type st ON st.oid = r.rngsubtype
LEFT JOIN pg_type et ON et.oid = st.typelem AND st.typcategory = 'A'
LEFT JOIN pg_namespace tn ON tn.oid = coalesce(et.typnamespace, st.typnamespace)
LEFT JOIN pg_collation co ON co.oid = r.rngcollation
LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
WHERE (t.oid, 'pg_type'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
ORDER BY 1, 2
