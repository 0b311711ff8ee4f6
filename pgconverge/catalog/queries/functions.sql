-- Functions, procedures and window functions (aggregates are unsupported.sql's).
SELECT n.nspname AS schema, p.proname AS name,
       pg_get_function_identity_arguments(p.oid) AS identity_args,
       p.prokind AS kind,
       pg_get_functiondef(p.oid) AS definition,
       pg_get_function_result(p.oid) AS result,
       coalesce(to_json(p.proargnames), '[]') AS arg_names,
       p.pronargdefaults AS n_defaults,
       obj_description(p.oid, 'pg_proc') AS comment
FROM pg_proc p
JOIN ns n ON n.oid = p.pronamespace
WHERE p.prokind IN ('f', 'p', 'w')
  AND (p.oid, 'pg_proc'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
  -- the constructors of a range type (and of its multirange) are part of that type
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                  AND d.refclassid = 'pg_type'::regclass AND d.deptype = 'i')
ORDER BY 1, 2, 3
