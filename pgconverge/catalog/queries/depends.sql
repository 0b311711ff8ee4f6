-- What views, functions, triggers, policies, constraints, indexes and column defaults use,
-- from pg_depend, named by the ids the planner uses. A column stands for itself and its
-- table, a row type for its relation, an array type for its element, and anything an
-- extension owns for the extension.
WITH refs AS (
  SELECT 'pg_class'::regclass AS classid, c.oid AS objid, NULL::int AS objsubid,
         CASE WHEN c.relkind IN ('r', 'p') THEN 'table:' WHEN c.relkind IN ('v', 'm') THEN 'view:'
              WHEN c.relkind = 'S' THEN 'sequence:' ELSE 'index:' END || n.nspname || '.' || c.relname AS id
    FROM pg_class c JOIN ns n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'i', 'I')
  UNION ALL
  SELECT 'pg_class'::regclass, c.oid, a.attnum, 'column:' || n.nspname || '.' || c.relname || '.' || a.attname
    FROM pg_class c JOIN ns n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
   WHERE c.relkind IN ('r', 'p')
  UNION ALL
  SELECT 'pg_proc'::regclass, p.oid, NULL,
         'function:' || n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
    FROM pg_proc p JOIN ns n ON n.oid = p.pronamespace
  UNION ALL
  SELECT 'pg_type'::regclass, t.oid, NULL,
         CASE WHEN rc.relkind IN ('r', 'p') THEN 'table:' || n.nspname || '.' || rc.relname
              WHEN rc.relkind IN ('v', 'm') THEN 'view:' || n.nspname || '.' || rc.relname
              ELSE 'type:' || n.nspname || '.' || b.typname END
    FROM pg_type t
    JOIN pg_type b ON b.oid = CASE WHEN t.typcategory = 'A' AND t.typelem <> 0 THEN t.typelem ELSE t.oid END
    JOIN ns n ON n.oid = b.typnamespace
    LEFT JOIN pg_class rc ON rc.oid = b.typrelid
  UNION ALL
  SELECT 'pg_constraint'::regclass, k.oid, NULL, 'constraint:' || n.nspname || '.' || c.relname || '.' || k.conname
    FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN ns n ON n.oid = c.relnamespace
  UNION ALL
  SELECT 'pg_collation'::regclass, co.oid, NULL, 'collation:' || n.nspname || '.' || co.collname
    FROM pg_collation co JOIN ns n ON n.oid = co.collnamespace
  UNION ALL
  SELECT d.classid, d.objid, NULL, 'extension:' || e.extname
    FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
   WHERE d.deptype = 'e' AND d.refclassid = 'pg_extension'::regclass AND e.extname <> 'plpgsql'
),
users AS (
  SELECT 'pg_rewrite'::regclass AS classid, r.oid AS objid, 'view:' || n.nspname || '.' || c.relname AS id
    FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN ns n ON n.oid = c.relnamespace
   WHERE r.rulename = '_RETURN' AND c.relkind IN ('v', 'm')
  UNION ALL
  SELECT 'pg_proc'::regclass, p.oid,
         'function:' || n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
    FROM pg_proc p JOIN ns n ON n.oid = p.pronamespace
   WHERE (p.oid, 'pg_proc'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
  UNION ALL
  SELECT 'pg_trigger'::regclass, t.oid, 'trigger:' || n.nspname || '.' || c.relname || '.' || t.tgname
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN ns n ON n.oid = c.relnamespace
   WHERE NOT t.tgisinternal
  UNION ALL
  SELECT 'pg_policy'::regclass, p.oid, 'policy:' || n.nspname || '.' || c.relname || '.' || p.polname
    FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN ns n ON n.oid = c.relnamespace
  UNION ALL
  SELECT 'pg_constraint'::regclass, k.oid, 'constraint:' || n.nspname || '.' || c.relname || '.' || k.conname
    FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN ns n ON n.oid = c.relnamespace
  UNION ALL
  SELECT 'pg_class'::regclass, c.oid,
         CASE WHEN c.relkind IN ('v', 'm') THEN 'view:' ELSE 'index:' END || n.nspname || '.' || c.relname
    FROM pg_class c JOIN ns n ON n.oid = c.relnamespace WHERE c.relkind IN ('i', 'I', 'v', 'm')
  UNION ALL
  SELECT 'pg_attrdef'::regclass, ad.oid, 'column:' || n.nspname || '.' || c.relname || '.' || a.attname
    FROM pg_attrdef ad JOIN pg_class c ON c.oid = ad.adrelid JOIN ns n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
)
SELECT u.id AS object, json_agg(DISTINCT r.id ORDER BY r.id) AS uses
FROM pg_depend d
JOIN users u ON u.classid = d.classid AND u.objid = d.objid
JOIN refs r ON r.classid = d.refclassid AND r.objid = d.refobjid
           AND (r.objsubid IS NULL OR r.objsubid = d.refobjsubid)
WHERE d.deptype IN ('n', 'a') AND r.id <> u.id
GROUP BY u.id
ORDER BY 1
