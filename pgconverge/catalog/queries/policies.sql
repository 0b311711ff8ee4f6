-- Row-level security policies; a role oid 0 stands for PUBLIC.
SELECT n.nspname AS schema, c.relname AS table, p.polname AS name,
       p.polpermissive AS permissive, p.polcmd AS command,
       (SELECT json_agg(x.role ORDER BY x.role)
          FROM (SELECT CASE WHEN r.oid = 0 THEN 'public' ELSE pg_get_userbyid(r.oid) END AS role
                  FROM unnest(p.polroles) r(oid)) x) AS roles,
       pg_get_expr(p.polqual, p.polrelid) AS using,
       pg_get_expr(p.polwithcheck, p.polrelid) AS with_check,
       obj_description(p.oid, 'pg_policy') AS comment
FROM pg_policy p
JOIN pg_class c ON c.oid = p.polrelid
JOIN ns n ON n.oid = c.relnamespace
ORDER BY 1, 2, 3
