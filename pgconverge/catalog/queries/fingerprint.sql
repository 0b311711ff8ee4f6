-- A cheap statement whose result changes whenever the catalog that the catalog query reads
-- may have: the roles (grantees print by name), the session user, the extension versions
-- available on disk, and the version of every system catalog a kind reads. Any DDL inserts,
-- deletes or updates rows in at least one of them, and each row version carries the id of the
-- transaction that wrote it (xmin): (count, sum of xmin, max xmin) per catalog changes with
-- every committed change. ANALYZE and autovacuum touch pg_class too, which only costs a cache
-- miss. The last entry, a placeholder, becomes one such entry per catalog (kinds.fingerprint_query).
SELECT json_build_object(
  'server_version', current_setting('server_version_num'),
  'database', current_database(),
  'user', current_user,
  -- but the scratch and base roles of pgconverge's own proofs (exec.scratch, exec.bases), which
  -- no object of a target names, and which come and go with every plan
  'roles', (SELECT md5(string_agg(oid::text || ':' || rolname, ',' ORDER BY oid)) FROM pg_catalog.pg_roles
            WHERE rolname !~ '^pgconverge_(scratch|base)_'),
  'extensions', (SELECT md5(string_agg(name || ':' || coalesce(default_version, ''), ',' ORDER BY name))
                 FROM pg_catalog.pg_available_extensions),
  :catalog_versions);
