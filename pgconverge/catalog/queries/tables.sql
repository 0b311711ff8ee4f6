-- Tables (plain and partitioned) with their columns. Columns are gathered for all tables in
-- one pass (hash joins), not per table: a correlated subquery per table and per column costs
-- ~1 ms a table. obj_description()/col_description() are SQL functions that look their
-- catalog up by name on every call: read pg_description.
WITH attrdef_deps AS (
  -- sequences and functions that column defaults use, per default: one pass over pg_depend
  SELECT d.objid,
         json_agg(sn.nspname || '.' || sc.relname) FILTER (WHERE sc.oid IS NOT NULL) AS seq_deps,
         json_agg(fn.nspname || '.' || p.proname)
           FILTER (WHERE p.oid IS NOT NULL AND fn.nspname NOT IN ('pg_catalog', 'information_schema')) AS func_deps
  FROM pg_depend d
  LEFT JOIN pg_class sc ON d.refclassid = 'pg_class'::regclass AND sc.oid = d.refobjid AND sc.relkind = 'S'
  LEFT JOIN pg_namespace sn ON sn.oid = sc.relnamespace
  LEFT JOIN pg_proc p ON d.refclassid = 'pg_proc'::regclass AND p.oid = d.refobjid
  LEFT JOIN pg_namespace fn ON fn.oid = p.pronamespace
  WHERE d.classid = 'pg_attrdef'::regclass
  GROUP BY d.objid
),
attrdef_volatile AS (
  -- defaults that call a VOLATILE function (an operator's too). pg_depend does not record the
  -- pinned builtins (random(), nextval() ...), so read the function oids from the stored
  -- expression, whose FuncExpr nodes print a funcid and OpExpr nodes (and their kin) an opfuncid
  SELECT DISTINCT ad.oid
  FROM pg_attrdef ad
  CROSS JOIN LATERAL regexp_matches(ad.adbin::text, ':(?:funcid|opfuncid) (\d+)', 'g') m(oids)
  JOIN pg_proc p ON p.oid = m.oids[1]::oid
  WHERE p.provolatile = 'v'
    AND ad.adbin::text LIKE '%funcid %'  -- constants, most defaults, skip the regexp
),
columns AS (
  SELECT a.attrelid, json_agg(json_build_object(
            'name', a.attname,
            'type', format_type(a.atttypid, a.atttypmod),
            'not_null', a.attnotnull,
            'default', pg_get_expr(ad.adbin, ad.adrelid),
            'collation', CASE WHEN a.attcollation <> t.typcollation
                              THEN quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END,
            'coll_dep', CASE WHEN cn.nspname NOT IN ('pg_catalog', 'information_schema')
                             THEN cn.nspname || '.' || co.collname END,
            'identity', a.attidentity,
            'generated', a.attgenerated,
            'comment', ds.description,
            'position', a.attnum,
            'local', a.attislocal,
            'type_deps', CASE WHEN tn.nspname NOT IN ('pg_catalog', 'information_schema')
                              THEN json_build_array(tn.nspname || '.' || coalesce(et.typname, t.typname)) END,
            'seq_deps', dd.seq_deps,
            'func_deps', dd.func_deps,
            'volatile_default', av.oid IS NOT NULL,
            -- only what differs from the defaults: SET STORAGE against the type's own
            'storage', CASE WHEN a.attstorage <> t.typstorage THEN a.attstorage END,
            'type_storage', CASE WHEN a.attstorage <> t.typstorage THEN t.typstorage END,
            'statistics', nullif(a.attstattarget::int, -1),
            'compression', nullif(a.attcompression::text, ''),
            'options', a.attoptions
          ) ORDER BY a.attnum) AS columns
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'
  LEFT JOIN pg_namespace tn ON tn.oid = coalesce(et.typnamespace, t.typnamespace)
  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
  LEFT JOIN attrdef_deps dd ON dd.objid = ad.oid
  LEFT JOIN attrdef_volatile av ON av.oid = ad.oid
  LEFT JOIN pg_collation co ON co.oid = a.attcollation
  LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
  LEFT JOIN pg_description ds ON ds.objoid = c.oid AND ds.classoid = 'pg_class'::regclass AND ds.objsubid = a.attnum
  WHERE c.relkind IN ('r', 'p') AND c.relnamespace IN (SELECT oid FROM ns)
    AND a.attnum > 0 AND NOT a.attisdropped
  GROUP BY a.attrelid
)
SELECT n.nspname AS schema, c.relname AS name, c.relkind AS kind, c.relpersistence AS persistence,
       (SELECT d.description FROM pg_description d
         WHERE d.objoid = c.oid AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0) AS comment,
       c.relrowsecurity AS rls_enabled, c.relforcerowsecurity AS rls_forced,
       greatest(c.reltuples, 0)::bigint AS estimated_rows,
       CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END AS partition_key,
       CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END AS partition_bound,
       -- what a row must satisfy to belong there (ancestors' bounds included): the CHECK that lets an
       -- existing table be attached without the scan under ACCESS EXCLUSIVE
       CASE WHEN c.relispartition THEN pg_get_partition_constraintdef(c.oid) END AS partition_constraint,
       (SELECT pn.nspname || '.' || pc.relname FROM pg_inherits i
          JOIN pg_class pc ON pc.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = pc.relnamespace
          WHERE i.inhrelid = c.oid AND c.relispartition) AS partition_of,
       (SELECT coalesce(json_agg(pn.nspname || '.' || pc.relname ORDER BY i.inhseqno), '[]') FROM pg_inherits i
          JOIN pg_class pc ON pc.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = pc.relnamespace
          WHERE i.inhrelid = c.oid AND NOT c.relispartition) AS inherits,
       coalesce(cols.columns, '[]') AS columns,
       -- storage parameters in their stored order (pg_dump prints that order), then the TOAST
       -- table's as "toast.name=value" (as WITH (...) writes them)
       CASE WHEN c.reloptions IS NOT NULL OR tc.reloptions IS NOT NULL THEN
         array_to_json(coalesce(c.reloptions, '{}') || coalesce(
           (SELECT array_agg('toast.' || o ORDER BY i) FROM unnest(tc.reloptions) WITH ORDINALITY u(o, i)), '{}'))
       END AS options,
       c.relreplident AS replica_identity,
       (SELECT ic.relname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
          WHERE i.indrelid = c.oid AND i.indisreplident AND c.relreplident = 'i') AS replica_index,
       (SELECT ic.relname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
          WHERE i.indrelid = c.oid AND i.indisclustered) AS cluster_index,
       CASE WHEN c.reloftype <> 0 THEN format_type(c.reloftype, NULL) END AS of_type,
       (SELECT otn.nspname || '.' || ot.typname FROM pg_type ot JOIN pg_namespace otn ON otn.oid = ot.typnamespace
          WHERE ot.oid = c.reloftype) AS of_type_dep
FROM pg_class c
JOIN ns n ON n.oid = c.relnamespace
LEFT JOIN columns cols ON cols.attrelid = c.oid
LEFT JOIN pg_class tc ON tc.oid = c.reltoastrelid
WHERE c.relkind IN ('r', 'p')
  AND (c.oid, 'pg_class'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
ORDER BY 1, 2
