-- The ACL of every relation, function, schema and type (NULL stands for the built-in
-- default, which is sent along), and the column ACLs that exist. Columns have no default
-- privileges; the default of functions includes PUBLIC's EXECUTE, of types PUBLIC's USAGE.
-- Privileges are [grantee, privilege, grantable] triples; the owner is written <owner> so
-- that databases whose objects have different owners compare.
WITH objects AS (
  SELECT CASE WHEN c.relkind IN ('r', 'p') THEN 'table' WHEN c.relkind = 'S' THEN 'sequence' ELSE 'view' END AS kind,
         n.nspname AS schema, c.relname AS name, NULL AS column, NULL AS args, c.relowner AS owner,
         coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner)) AS acl,
         acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner) AS default_acl
    FROM pg_class c JOIN ns n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S')
     AND (c.oid, 'pg_class'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
  UNION ALL
  SELECT 'column', n.nspname, c.relname, a.attname, NULL, c.relowner, a.attacl, NULL
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN ns n ON n.oid = c.relnamespace
   WHERE a.attacl IS NOT NULL AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm')
     AND (c.oid, 'pg_class'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
  UNION ALL
  SELECT CASE WHEN p.prokind = 'p' THEN 'procedure' ELSE 'function' END, n.nspname, p.proname, NULL,
         pg_get_function_identity_arguments(p.oid), p.proowner,
         coalesce(p.proacl, acldefault('f', p.proowner)), acldefault('f', p.proowner)
    FROM pg_proc p JOIN ns n ON n.oid = p.pronamespace
   WHERE p.prokind IN ('f', 'p', 'w')
     AND (p.oid, 'pg_proc'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
  UNION ALL
  SELECT 'schema', sp.nspname, sp.nspname, NULL, NULL, sp.nspowner,
         coalesce(sp.nspacl, acldefault('n', sp.nspowner)), acldefault('n', sp.nspowner)
    FROM pg_namespace sp JOIN ns n ON n.oid = sp.oid
  UNION ALL
  SELECT 'type', n.nspname, t.typname, NULL, NULL, t.typowner,
         coalesce(t.typacl, acldefault('T', t.typowner)), acldefault('T', t.typowner)
    FROM pg_type t JOIN ns n ON n.oid = t.typnamespace
    LEFT JOIN pg_class tc ON tc.oid = t.typrelid
   WHERE (t.typrelid = 0 OR tc.relkind = 'c') AND t.typcategory <> 'A' AND t.typtype <> 'm'
     AND (t.oid, 'pg_type'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
)
SELECT o.kind, o.schema, o.name, o.column, o.args, pg_get_userbyid(o.owner) AS owner,
       (SELECT coalesce(json_agg(DISTINCT jsonb_build_array(
                 CASE WHEN x.grantee = 0 THEN 'PUBLIC' WHEN x.grantee = o.owner THEN '<owner>'
                      ELSE pg_get_userbyid(x.grantee) END,
                 x.privilege_type, x.is_grantable)), '[]')
          FROM aclexplode(o.acl) x) AS entries,
       (SELECT coalesce(json_agg(DISTINCT jsonb_build_array(
                 CASE WHEN x.grantee = 0 THEN 'PUBLIC' WHEN x.grantee = o.owner THEN '<owner>'
                      ELSE pg_get_userbyid(x.grantee) END,
                 x.privilege_type, x.is_grantable)), '[]')
          FROM aclexplode(o.default_acl) x) AS defaults
FROM objects o
ORDER BY 1, 2, 3, 4, 5
