-- The CTEs every catalog query may read, in front of the glued statement.
-- Schemas that are never user schema. The ledger schema is ours and never managed.
ns AS (
  SELECT n.oid, n.nspname
  FROM pg_namespace n
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', :'ledger_schema')
    AND n.nspname NOT LIKE 'pg\_toast%'
    AND n.nspname NOT LIKE 'pg\_temp\_%'
    AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e')
),
-- Objects created by an extension are the extension's, never user objects.
ext_members AS (
  SELECT d.classid, d.objid FROM pg_depend d WHERE d.deptype = 'e'
)
