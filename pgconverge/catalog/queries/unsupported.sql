-- Kinds that exist in user schemas but that no planner code manages yet. They are
-- reported so that a plan touching them fails loudly instead of skipping them.
SELECT 'foreign table' AS kind, n.nspname || '.' || c.relname AS identity
  FROM pg_class c JOIN ns n ON n.oid = c.relnamespace WHERE c.relkind = 'f'
UNION ALL
SELECT 'event trigger', evtname FROM pg_event_trigger
  WHERE (oid, 'pg_event_trigger'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
UNION ALL
SELECT 'publication', pubname FROM pg_publication
UNION ALL
SELECT 'foreign server', srvname FROM pg_foreign_server
  WHERE (oid, 'pg_foreign_server'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
UNION ALL
SELECT 'aggregate', n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
  FROM pg_proc p JOIN ns n ON n.oid = p.pronamespace
 WHERE p.prokind = 'a' AND (p.oid, 'pg_proc'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
UNION ALL
SELECT 'base type', n.nspname || '.' || t.typname
  FROM pg_type t JOIN ns n ON n.oid = t.typnamespace
 WHERE t.typtype = 'b'
   AND (t.oid, 'pg_type'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
   AND t.typelem = 0 AND t.typrelid = 0
UNION ALL
SELECT 'rule', n.nspname || '.' || c.relname || '.' || r.rulename
  FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN ns n ON n.oid = c.relnamespace
  WHERE r.rulename <> '_RETURN'
UNION ALL
SELECT 'operator', n.nspname || '.' || o.oprname || '(' || format_type(o.oprleft, NULL) || ', '
       || format_type(o.oprright, NULL) || ')'
  FROM pg_operator o JOIN ns n ON n.oid = o.oprnamespace
 WHERE (o.oid, 'pg_operator'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
UNION ALL
SELECT 'operator class', n.nspname || '.' || oc.opcname
  FROM pg_opclass oc JOIN ns n ON n.oid = oc.opcnamespace
 WHERE (oc.oid, 'pg_opclass'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
UNION ALL
SELECT 'operator family', n.nspname || '.' || f.opfname
  FROM pg_opfamily f JOIN ns n ON n.oid = f.opfnamespace
 WHERE (f.oid, 'pg_opfamily'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
UNION ALL
SELECT 'statistics object', n.nspname || '.' || s.stxname
  FROM pg_statistic_ext s JOIN ns n ON n.oid = s.stxnamespace
UNION ALL
SELECT 'text search configuration', n.nspname || '.' || c.cfgname
  FROM pg_ts_config c JOIN ns n ON n.oid = c.cfgnamespace
 WHERE (c.oid, 'pg_ts_config'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
UNION ALL
SELECT 'text search dictionary', n.nspname || '.' || d.dictname
  FROM pg_ts_dict d JOIN ns n ON n.oid = d.dictnamespace
 WHERE (d.oid, 'pg_ts_dict'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
UNION ALL
SELECT 'conversion', n.nspname || '.' || cv.conname
  FROM pg_conversion cv JOIN ns n ON n.oid = cv.connamespace
 WHERE (cv.oid, 'pg_conversion'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
UNION ALL
-- objects without a schema: user-made ones have oids past the bootstrap range
SELECT 'cast', format_type(c.castsource, NULL) || ' AS ' || format_type(c.casttarget, NULL)
  FROM pg_cast c
 WHERE c.oid >= 16384 AND (c.oid, 'pg_cast'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
   -- a range type makes its own cast to its multirange: it comes and goes with the type
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                   WHERE d.classid = 'pg_cast'::regclass AND d.objid = c.oid AND d.deptype = 'i')
UNION ALL
SELECT 'procedural language', l.lanname FROM pg_language l
 WHERE l.oid >= 16384 AND (l.oid, 'pg_language'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
UNION ALL
SELECT 'foreign-data wrapper', w.fdwname FROM pg_foreign_data_wrapper w
 WHERE (w.oid, 'pg_foreign_data_wrapper'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
UNION ALL
SELECT 'access method', a.amname FROM pg_am a
 WHERE a.oid >= 16384 AND (a.oid, 'pg_am'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
