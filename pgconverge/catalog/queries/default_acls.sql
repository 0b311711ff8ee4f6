-- ALTER DEFAULT PRIVILEGES entries. A global entry (no schema) replaces the built-in default,
-- whose privileges are sent along; a per-schema entry adds to it. Privileges are
-- [grantee, privilege, grantable] triples, the role itself written <owner>.
SELECT pg_get_userbyid(d.defaclrole) AS role, n.nspname AS schema, d.defaclobjtype AS objtype,
       (SELECT coalesce(json_agg(DISTINCT jsonb_build_array(
                 CASE WHEN x.grantee = 0 THEN 'PUBLIC' WHEN x.grantee = d.defaclrole THEN '<owner>'
                      ELSE pg_get_userbyid(x.grantee) END,
                 x.privilege_type, x.is_grantable)), '[]')
          FROM aclexplode(d.defaclacl) x) AS entries,
       CASE WHEN d.defaclnamespace = 0
            THEN (SELECT coalesce(json_agg(DISTINCT jsonb_build_array(
                           CASE WHEN x.grantee = 0 THEN 'PUBLIC' WHEN x.grantee = d.defaclrole THEN '<owner>'
                                ELSE pg_get_userbyid(x.grantee) END,
                           x.privilege_type, x.is_grantable)), '[]')
                    FROM aclexplode(acldefault(CASE d.defaclobjtype WHEN 'S' THEN 's' ELSE d.defaclobjtype END,
                                               d.defaclrole)) x)
            ELSE '[]' END AS defaults
FROM pg_default_acl d
LEFT JOIN ns n ON n.oid = d.defaclnamespace
WHERE d.defaclnamespace = 0 OR n.oid IS NOT NULL
ORDER BY 1, 2, 3
