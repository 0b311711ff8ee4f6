"""Introspection: the catalog of one database in a single round trip.

Each object kind has one readable catalog query returning a JSON array. They are
glued into one ``SELECT json_build_object(...)`` so a database costs one psql call,
however many objects it holds. The session runs with ``search_path = pg_catalog``
so every name PostgreSQL prints is schema-qualified.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any

from pgconverge.catalog.model import Acl, Attribute, Catalog, Collation, Column, CompositeType, Constraint, DefaultAcl, Domain, DomainConstraint, EnumType, Extension, Function, Index, Privilege, RangeType, RlsPolicy, Schema, Sequence, Table, Trigger, Unsupported, View, oid_key, to_plain

LEDGER_SCHEMA = "pgconverge"

# Schemas that are never user schema. The ledger schema is ours and never managed.
MANAGED_NAMESPACES = f"""
    SELECT n.oid, n.nspname
    FROM pg_namespace n
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', '{LEDGER_SCHEMA}')
      AND n.nspname NOT LIKE 'pg\\_toast%'
      AND n.nspname NOT LIKE 'pg\\_temp\\_%'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d
                      WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e')
"""

# Objects created by an extension are the extension's, never user objects.
EXTENSION_MEMBERS = """
    SELECT d.classid, d.objid FROM pg_depend d WHERE d.deptype = 'e'
"""

QUERIES: dict[str, str] = {}

QUERIES["schemas"] = """
SELECT n.nspname AS name,
       obj_description(n.oid, 'pg_namespace') AS comment
FROM ns n
ORDER BY 1
"""

QUERIES["extensions"] = """
SELECT e.extname AS name, n.nspname AS schema, e.extversion AS version
FROM pg_extension e
JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname <> 'plpgsql'
ORDER BY 1
"""

QUERIES["available_extensions"] = """
SELECT name, default_version AS version FROM pg_available_extensions ORDER BY 1
"""

QUERIES["enums"] = """
SELECT n.nspname AS schema, t.typname AS name,
       (SELECT json_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid) AS labels,
       obj_description(t.oid, 'pg_type') AS comment
FROM pg_type t
JOIN ns n ON n.oid = t.typnamespace
WHERE t.typtype = 'e'
  AND (t.oid, 'pg_type'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
ORDER BY 1, 2
"""

QUERIES["sequences"] = """
SELECT n.nspname AS schema, c.relname AS name,
       format_type(s.seqtypid, NULL) AS data_type,
       s.seqstart AS start, s.seqincrement AS increment, s.seqmin AS min_value,
       s.seqmax AS max_value, s.seqcache AS cache, s.seqcycle AS cycle,
       owner_t.relname AS owned_table, owner_a.attname AS owned_column,
       d.deptype AS owner_deptype,
       obj_description(c.oid, 'pg_class') AS comment
FROM pg_sequence s
JOIN pg_class c ON c.oid = s.seqrelid
JOIN ns n ON n.oid = c.relnamespace
LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
     AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
LEFT JOIN pg_class owner_t ON owner_t.oid = d.refobjid
LEFT JOIN pg_attribute owner_a ON owner_a.attrelid = d.refobjid AND owner_a.attnum = d.refobjsubid
WHERE (c.oid, 'pg_class'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
ORDER BY 1, 2
"""

# Columns are gathered for all tables in one pass (hash joins), not per table: a correlated
# subquery per table and per column costs ~1 ms a table. obj_description()/col_description()
# are SQL functions that look their catalog up by name on every call: read pg_description.
QUERIES["tables"] = """
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
            'func_deps', dd.func_deps
          ) ORDER BY a.attnum) AS columns
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'
  LEFT JOIN pg_namespace tn ON tn.oid = coalesce(et.typnamespace, t.typnamespace)
  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
  LEFT JOIN attrdef_deps dd ON dd.objid = ad.oid
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
       (SELECT pn.nspname || '.' || pc.relname FROM pg_inherits i
          JOIN pg_class pc ON pc.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = pc.relnamespace
          WHERE i.inhrelid = c.oid AND c.relispartition) AS partition_of,
       (SELECT coalesce(json_agg(pn.nspname || '.' || pc.relname ORDER BY i.inhseqno), '[]') FROM pg_inherits i
          JOIN pg_class pc ON pc.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = pc.relnamespace
          WHERE i.inhrelid = c.oid AND NOT c.relispartition) AS inherits,
       coalesce(cols.columns, '[]') AS columns
FROM pg_class c
JOIN ns n ON n.oid = c.relnamespace
LEFT JOIN columns cols ON cols.attrelid = c.oid
WHERE c.relkind IN ('r', 'p')
  AND (c.oid, 'pg_class'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
ORDER BY 1, 2
"""

QUERIES["constraints"] = """
SELECT n.nspname AS schema, c.relname AS table, k.conname AS name, k.contype AS kind,
       pg_get_constraintdef(k.oid) AS definition,
       k.convalidated AS validated,
       (SELECT json_agg(a.attname ORDER BY x.ord) FROM unnest(k.conkey) WITH ORDINALITY x(num, ord)
          JOIN LATERAL (SELECT a.attname FROM pg_attribute a
                        WHERE a.attrelid = k.conrelid AND a.attnum = x.num) a ON true) AS columns,
       CASE WHEN k.contype = 'f' THEN rn.nspname || '.' || rc.relname END AS ref_table,
       CASE WHEN k.contype IN ('p', 'u', 'x') THEN ic.relname END AS index,
       CASE WHEN k.contype IN ('p', 'u') THEN pg_get_indexdef(k.conindid) END AS index_definition,
       (SELECT d.description FROM pg_description d
         WHERE d.objoid = k.oid AND d.classoid = 'pg_constraint'::regclass AND d.objsubid = 0) AS comment,
       k.conislocal AS local, k.coninhcount AS inhcount
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN ns n ON n.oid = c.relnamespace
LEFT JOIN pg_class rc ON rc.oid = k.confrelid
LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace
LEFT JOIN pg_class ic ON ic.oid = k.conindid
WHERE c.relkind IN ('r', 'p') AND k.contype IN ('p', 'u', 'c', 'f', 'x')
ORDER BY 1, 2, 3
"""

QUERIES["indexes"] = """
SELECT n.nspname AS schema, ic.relname AS name, c.relname AS table,
       pg_get_indexdef(i.indexrelid) AS definition,
       i.indisunique AS unique, i.indisvalid AS valid,
       (SELECT d.description FROM pg_description d
         WHERE d.objoid = ic.oid AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0) AS comment,
       (SELECT json_agg(a.attname) FROM pg_attribute a
          WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)) AS columns,
       ic.relkind = 'I' AS partitioned,
       EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = ic.oid) AS is_partition_child
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class c ON c.oid = i.indrelid
JOIN ns n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k
                  WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x'))
ORDER BY 1, 2
"""

def _type_deps(type_oid: str) -> str:
    """JSON array of the user types (an array's element type) that a type oid names."""
    return f"""(SELECT json_agg(DISTINCT tn.nspname || '.' || coalesce(et.typname, ut.typname))
                FROM pg_type ut
                LEFT JOIN pg_type et ON et.oid = ut.typelem AND ut.typcategory = 'A'
                JOIN pg_namespace tn ON tn.oid = coalesce(et.typnamespace, ut.typnamespace)
                WHERE ut.oid = {type_oid} AND tn.nspname NOT IN ('pg_catalog', 'information_schema'))"""


def _collation(coll_oid: str, default_oid: str) -> str:
    """The qualified name of a collation when it is not the type's default."""
    return f"""(SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname)
                FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace
                WHERE co.oid = {coll_oid} AND {coll_oid} <> {default_oid})"""


def _collation_dep(coll_oid: str) -> str:
    """schema.name of a user collation (none for the built-in ones)."""
    return f"""(SELECT cn.nspname || '.' || co.collname
                FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace
                WHERE co.oid = {coll_oid} AND cn.nspname NOT IN ('pg_catalog', 'information_schema'))"""


# The locale column of ICU collations is colliculocale in 15 and 16, colllocale from 17 on
# (and collcollate before 15): read through to_jsonb so one query fits them all.
QUERIES["collations"] = """
SELECT n.nspname AS schema, co.collname AS name, co.collprovider AS provider,
       CASE WHEN co.collprovider = 'i'
            THEN coalesce(to_jsonb(co) ->> 'colllocale', to_jsonb(co) ->> 'colliculocale', co.collcollate) END
         AS locale,
       CASE WHEN co.collprovider = 'c' THEN co.collcollate END AS lc_collate,
       CASE WHEN co.collprovider = 'c' THEN co.collctype END AS lc_ctype,
       co.collisdeterministic AS deterministic,
       obj_description(co.oid, 'pg_collation') AS comment
FROM pg_collation co
JOIN ns n ON n.oid = co.collnamespace
WHERE (co.oid, 'pg_collation'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
ORDER BY 1, 2
"""

QUERIES["domains"] = f"""
SELECT n.nspname AS schema, t.typname AS name,
       format_type(t.typbasetype, t.typtypmod) AS base_type,
       {_collation("t.typcollation", "bt.typcollation")} AS collation,
       {_collation_dep("t.typcollation")} AS coll_dep,
       pg_get_expr(t.typdefaultbin, 0) AS default,
       t.typnotnull AS not_null,
       {_type_deps("t.typbasetype")} AS type_deps,
       (SELECT coalesce(json_agg(json_build_object(
            'name', k.conname,
            'definition', pg_get_constraintdef(k.oid),
            'validated', k.convalidated,
            'func_deps', (SELECT json_agg(fn.nspname || '.' || p.proname || '('
                                          || pg_get_function_identity_arguments(p.oid) || ')')
                          FROM pg_depend d JOIN pg_proc p ON p.oid = d.refobjid
                          JOIN pg_namespace fn ON fn.oid = p.pronamespace
                          WHERE d.classid = 'pg_constraint'::regclass AND d.objid = k.oid
                            AND d.refclassid = 'pg_proc'::regclass
                            AND fn.nspname NOT IN ('pg_catalog', 'information_schema'))
          ) ORDER BY k.conname), '[]')
        FROM pg_constraint k WHERE k.contypid = t.oid AND k.contype = 'c') AS constraints,
       obj_description(t.oid, 'pg_type') AS comment
FROM pg_type t
JOIN ns n ON n.oid = t.typnamespace
JOIN pg_type bt ON bt.oid = t.typbasetype
WHERE t.typtype = 'd'
  AND (t.oid, 'pg_type'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
ORDER BY 1, 2
"""

# Stand-alone composite types (CREATE TYPE ... AS (...)); a table's row type is its table.
QUERIES["composites"] = f"""
SELECT n.nspname AS schema, t.typname AS name,
       (SELECT coalesce(json_agg(json_build_object(
            'name', a.attname,
            'type', format_type(a.atttypid, a.atttypmod),
            'collation', {_collation("a.attcollation", "at.typcollation")},
            'coll_dep', {_collation_dep("a.attcollation")},
            'type_deps', {_type_deps("a.atttypid")}
          ) ORDER BY a.attnum), '[]')
        FROM pg_attribute a JOIN pg_type at ON at.oid = a.atttypid
        WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped) AS attributes,
       obj_description(t.oid, 'pg_type') AS comment
FROM pg_type t
JOIN ns n ON n.oid = t.typnamespace
JOIN pg_class c ON c.oid = t.typrelid
WHERE t.typtype = 'c' AND c.relkind = 'c'
  AND (t.oid, 'pg_type'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
ORDER BY 1, 2
"""

# The operator class and collation are always printed (the defaults resolve alike on both
# sides); the multirange type that CREATE TYPE ... AS RANGE made comes with its range.
QUERIES["ranges"] = f"""
SELECT n.nspname AS schema, t.typname AS name,
       format_type(r.rngsubtype, NULL) AS subtype,
       (SELECT quote_ident(on_.nspname) || '.' || quote_ident(oc.opcname)
          FROM pg_opclass oc JOIN pg_namespace on_ ON on_.oid = oc.opcnamespace
         WHERE oc.oid = r.rngsubopc) AS subtype_opclass,
       {_collation("r.rngcollation", "0")} AS collation,
       {_collation_dep("r.rngcollation")} AS coll_dep,
       CASE WHEN r.rngcanonical <> 0 THEN r.rngcanonical::regproc::text END AS canonical,
       CASE WHEN r.rngsubdiff <> 0 THEN r.rngsubdiff::regproc::text END AS subtype_diff,
       (SELECT quote_ident(mn.nspname) || '.' || quote_ident(mt.typname)
          FROM pg_type mt JOIN pg_namespace mn ON mn.oid = mt.typnamespace
         WHERE mt.oid = r.rngmultitypid) AS multirange,
       {_type_deps("r.rngsubtype")} AS type_deps,
       obj_description(t.oid, 'pg_type') AS comment
FROM pg_range r
JOIN pg_type t ON t.oid = r.rngtypid
JOIN ns n ON n.oid = t.typnamespace
WHERE (t.oid, 'pg_type'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
ORDER BY 1, 2
"""

# The one-time data blocks that already ran, read from the ledger when it exists. The
# ledger is never managed, and a plain FROM would fail where it does not exist yet, so
# the rows travel as the XML of query_to_xml, called only when to_regclass finds the
# table (ledger.ran_blocks() reads it).
QUERIES["ledger_data_blocks"] = f"""
SELECT query_to_xml('SELECT name, sha256, ran_at FROM {LEDGER_SCHEMA}.data_blocks ORDER BY name',
                    false, false, '')::text AS xml
WHERE to_regclass('{LEDGER_SCHEMA}.data_blocks') IS NOT NULL
"""

QUERIES["session"] = """
SELECT current_user AS current_user
"""

QUERIES["views"] = """
SELECT n.nspname AS schema, c.relname AS name, c.relkind AS kind,
       pg_get_viewdef(c.oid) AS definition,
       (SELECT coalesce(json_agg(json_build_object(
            'name', a.attname,
            'type', format_type(a.atttypid, a.atttypmod)
                    || CASE WHEN a.attcollation <> t.typcollation
                            THEN ' COLLATE ' || quote_ident(cn.nspname) || '.' || quote_ident(co.collname) ELSE '' END,
            'comment', col_description(c.oid, a.attnum)) ORDER BY a.attnum), '[]')
          FROM pg_attribute a
          JOIN pg_type t ON t.oid = a.atttypid
          LEFT JOIN pg_collation co ON co.oid = a.attcollation
          LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
         WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
       coalesce(to_json(c.reloptions), '[]') AS options,
       obj_description(c.oid, 'pg_class') AS comment
FROM pg_class c
JOIN ns n ON n.oid = c.relnamespace
WHERE c.relkind IN ('v', 'm')
  AND (c.oid, 'pg_class'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
ORDER BY 1, 2
"""

QUERIES["view_indexes"] = """
SELECT n.nspname AS schema, ic.relname AS name, c.relname AS view,
       pg_get_indexdef(i.indexrelid) AS definition,
       i.indisunique AS unique, i.indisvalid AS valid,
       obj_description(ic.oid, 'pg_class') AS comment
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class c ON c.oid = i.indrelid
JOIN ns n ON n.oid = c.relnamespace
WHERE c.relkind = 'm'
ORDER BY 1, 2
"""

QUERIES["functions"] = """
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
"""

# Triggers cloned onto partitions (tgparentid) come with their parent's.
QUERIES["triggers"] = """
SELECT n.nspname AS schema, c.relname AS table, t.tgname AS name,
       pg_get_triggerdef(t.oid) AS definition,
       t.tgenabled AS enabled,
       obj_description(t.oid, 'pg_trigger') AS comment
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN ns n ON n.oid = c.relnamespace
WHERE NOT t.tgisinternal AND t.tgparentid = 0
  AND (t.oid, 'pg_trigger'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
ORDER BY 1, 2, 3
"""

QUERIES["policies"] = """
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
"""


def _acl_json(acl: str, owner: str) -> str:
    """An aclitem[] as JSON [grantee, privilege, grantable] triples; the owner is written <owner>."""
    return f"""(SELECT coalesce(json_agg(DISTINCT jsonb_build_array(
                   CASE WHEN x.grantee = 0 THEN 'PUBLIC' WHEN x.grantee = {owner} THEN '<owner>'
                        ELSE pg_get_userbyid(x.grantee) END,
                   x.privilege_type, x.is_grantable)), '[]')
              FROM aclexplode({acl}) x)"""


_REL_DEFAULT_ACL = """acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner)"""

# The ACL of every relation, function, schema and type (NULL stands for the built-in
# default, which is sent along), and the column ACLs that exist. Columns have no default
# privileges; the default of functions includes PUBLIC's EXECUTE, of types PUBLIC's USAGE.
QUERIES["acls"] = f"""
SELECT CASE WHEN c.relkind IN ('r', 'p') THEN 'table' WHEN c.relkind = 'S' THEN 'sequence' ELSE 'view' END AS kind,
       n.nspname AS schema, c.relname AS name, NULL AS column, NULL AS args,
       pg_get_userbyid(c.relowner) AS owner,
       {_acl_json(f"coalesce(c.relacl, {_REL_DEFAULT_ACL})", "c.relowner")} AS entries,
       {_acl_json(_REL_DEFAULT_ACL, "c.relowner")} AS defaults
  FROM pg_class c JOIN ns n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S')
   AND (c.oid, 'pg_class'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
UNION ALL
SELECT 'column', n.nspname, c.relname, a.attname, NULL, pg_get_userbyid(c.relowner),
       {_acl_json("a.attacl", "c.relowner")}, '[]'
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN ns n ON n.oid = c.relnamespace
 WHERE a.attacl IS NOT NULL AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm')
   AND (c.oid, 'pg_class'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
UNION ALL
SELECT CASE WHEN p.prokind = 'p' THEN 'procedure' ELSE 'function' END, n.nspname, p.proname, NULL,
       pg_get_function_identity_arguments(p.oid), pg_get_userbyid(p.proowner),
       {_acl_json("coalesce(p.proacl, acldefault('f', p.proowner))", "p.proowner")},
       {_acl_json("acldefault('f', p.proowner)", "p.proowner")}
  FROM pg_proc p JOIN ns n ON n.oid = p.pronamespace
 WHERE p.prokind IN ('f', 'p', 'w')
   AND (p.oid, 'pg_proc'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
UNION ALL
SELECT 'schema', sp.nspname, sp.nspname, NULL, NULL, pg_get_userbyid(sp.nspowner),
       {_acl_json("coalesce(sp.nspacl, acldefault('n', sp.nspowner))", "sp.nspowner")},
       {_acl_json("acldefault('n', sp.nspowner)", "sp.nspowner")}
  FROM pg_namespace sp JOIN ns n ON n.oid = sp.oid
UNION ALL
SELECT 'type', n.nspname, t.typname, NULL, NULL, pg_get_userbyid(t.typowner),
       {_acl_json("coalesce(t.typacl, acldefault('T', t.typowner))", "t.typowner")},
       {_acl_json("acldefault('T', t.typowner)", "t.typowner")}
  FROM pg_type t JOIN ns n ON n.oid = t.typnamespace
  LEFT JOIN pg_class tc ON tc.oid = t.typrelid
 WHERE (t.typrelid = 0 OR tc.relkind = 'c') AND t.typcategory <> 'A' AND t.typtype <> 'm'
   AND (t.oid, 'pg_type'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
ORDER BY 1, 2, 3, 4, 5
"""

# A global entry (no schema) replaces the built-in default; a per-schema entry adds to it.
QUERIES["default_acls"] = f"""
SELECT pg_get_userbyid(d.defaclrole) AS role, n.nspname AS schema, d.defaclobjtype AS objtype,
       {_acl_json("d.defaclacl", "d.defaclrole")} AS entries,
       CASE WHEN d.defaclnamespace = 0
            THEN {_acl_json('''acldefault(CASE d.defaclobjtype WHEN 'S' THEN 's' ELSE d.defaclobjtype END,
                                          d.defaclrole)''', "d.defaclrole")}
            ELSE '[]' END AS defaults
FROM pg_default_acl d
LEFT JOIN ns n ON n.oid = d.defaclnamespace
WHERE d.defaclnamespace = 0 OR n.oid IS NOT NULL
ORDER BY 1, 2, 3
"""

# What views, functions, triggers, policies, constraints, indexes and column defaults use,
# from pg_depend, named by the ids the planner uses. A column stands for itself and its
# table, a row type for its relation, an array type for its element, and anything an
# extension owns for the extension.
QUERIES["depends"] = """
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
"""

# Kinds that exist in user schemas but that no planner code manages yet. They are
# reported so that a plan touching them fails loudly instead of skipping them.
QUERIES["unsupported"] = """
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
"""


# Every catalog the queries above read. Any DDL inserts, deletes or updates rows in at least
# one of them, and each row version carries the id of the transaction that wrote it (xmin):
# (count, sum of xmin, max xmin) per catalog changes with every committed change. ANALYZE and
# autovacuum touch pg_class too, which only costs a cache miss.
FINGERPRINT_CATALOGS = (
    "pg_namespace", "pg_class", "pg_attribute", "pg_attrdef", "pg_constraint", "pg_index", "pg_type",
    "pg_enum", "pg_range", "pg_collation", "pg_proc", "pg_trigger", "pg_policy", "pg_rewrite", "pg_depend",
    "pg_description", "pg_sequence", "pg_extension", "pg_inherits", "pg_partitioned_table", "pg_default_acl",
    "pg_event_trigger", "pg_publication", "pg_foreign_server", "pg_foreign_data_wrapper", "pg_operator",
    "pg_opclass", "pg_opfamily", "pg_statistic_ext", "pg_ts_config", "pg_ts_dict", "pg_conversion", "pg_cast",
    "pg_language", "pg_am", "pg_init_privs",
)


def fingerprint_query() -> str:
    """A cheap statement whose result changes whenever the catalog that catalog_query() reads may
    have: the version of every catalog above, the roles (grantees print by name), the session user
    and the extension versions available on disk."""
    per_catalog = ",\n  ".join(
        f"'{c}', (SELECT ARRAY[count(*), coalesce(sum(xmin::text::bigint), 0), "
        f"coalesce(max(xmin::text::bigint), 0)] FROM pg_catalog.{c})" for c in FINGERPRINT_CATALOGS)
    return (
        "SELECT json_build_object(\n"
        "  'server_version', current_setting('server_version_num'),\n"
        "  'database', current_database(),\n"
        "  'user', current_user,\n"
        "  'roles', (SELECT md5(string_agg(oid::text || ':' || rolname, ',' ORDER BY oid)) FROM pg_catalog.pg_roles),\n"
        "  'extensions', (SELECT md5(string_agg(name || ':' || coalesce(default_version, ''), ',' ORDER BY name))\n"
        "                 FROM pg_catalog.pg_available_extensions),\n"
        f"  {per_catalog});\n"
    )


def catalog_query(queries: dict[str, str] | None = None) -> str:
    """The single statement that returns the whole catalog as one JSON document."""
    queries = queries if queries is not None else QUERIES
    parts = ",\n".join(
        f"'{name}', (SELECT coalesce(json_agg(q), '[]') FROM ({sql}) q)" for name, sql in queries.items()
    )
    return (
        "SET search_path = pg_catalog;\n"
        # the sorts behind json_agg(... ORDER BY) spill to disk at the default 4MB on big schemas
        "SET work_mem = '64MB';\n"
        f"WITH ns AS ({MANAGED_NAMESPACES}), ext_members AS ({EXTENSION_MEMBERS})\n"
        "SELECT json_build_object(\n"
        "'server_version', current_setting('server_version_num')::int,\n"
        f"{parts});\n"
    )


def _deps(row: dict[str, Any]) -> tuple[str, ...]:
    if not (row.get("type_deps") or row.get("seq_deps") or row.get("func_deps") or row.get("coll_dep")):
        return ()  # most columns: called once per column of every table
    deps = [oid_key("type", d) for d in row.get("type_deps") or ()]
    deps += [oid_key("sequence", d) for d in row.get("seq_deps") or ()]
    deps += [oid_key("function", d) for d in row.get("func_deps") or ()]
    deps += [oid_key("collation", row["coll_dep"])] if row.get("coll_dep") else []
    return tuple(sorted(set(deps)))


def parse_catalog(doc: dict[str, Any] | str) -> Catalog:
    """Build the data model from the JSON document that catalog_query() returns."""
    if isinstance(doc, str):
        doc = json.loads(doc)
    cat = Catalog(server_version=doc["server_version"])
    for r in doc["schemas"]:
        s = Schema(r["name"], r["comment"])
        cat.schemas[s.id] = s
    for r in doc["extensions"]:
        e = Extension(r["name"], r["schema"], r["version"])
        cat.extensions[e.id] = e
    cat.available_extensions = {r["name"]: r["version"] for r in doc["available_extensions"]}
    for r in doc["enums"]:
        en = EnumType(r["schema"], r["name"], tuple(r["labels"] or ()), r["comment"])
        cat.enums[en.id] = en

    identity_sequences: dict[tuple[str, str, str], Sequence] = {}
    for r in doc["sequences"]:
        owned = (r["owned_table"], r["owned_column"]) if r["owned_table"] else None
        seq = Sequence(
            r["schema"], r["name"], r["data_type"], r["start"], r["increment"], r["min_value"],
            r["max_value"], r["cache"], r["cycle"], owned, r["comment"],
        )
        if r["owner_deptype"] == "i":
            # identity sequences belong to their column, not to the schema
            identity_sequences[(r["schema"], r["owned_table"], r["owned_column"])] = seq
        else:
            cat.sequences[seq.id] = seq

    constraints: dict[tuple[str, str], dict[str, Constraint]] = {}
    for r in doc["constraints"]:
        con = Constraint(
            r["name"], r["kind"], r["definition"], tuple(r["columns"] or ()), r["validated"],
            oid_key("table", r["ref_table"]) if r["ref_table"] else None, r["index"], r["comment"],
            index_definition=r.get("index_definition"),
            # a copy from a parent (even one the child redeclared): the parent's definition carries it
            inherited=not r["local"] or bool(r.get("inhcount")),
        )
        constraints.setdefault((r["schema"], r["table"]), {})[con.name] = con
    indexes: dict[tuple[str, str], dict[str, Index]] = {}
    for r in doc["indexes"]:
        definition = r["definition"]
        if r.get("partitioned"):
            # printed "ON ONLY" (the parent alone); created plainly it recurses to the partitions
            definition = definition.replace(" ON ONLY ", " ON ", 1)
        idx = Index(
            r["schema"], r["name"], r["table"], definition, r["unique"], r["valid"], r["comment"],
            tuple(r["columns"] or ()), inherited=bool(r.get("is_partition_child")),
        )
        indexes.setdefault((r["schema"], r["table"]), {})[idx.name] = idx

    for r in doc["tables"]:
        key = (r["schema"], r["name"])
        cols = {}
        for c in r["columns"]:
            cols[c["name"]] = Column(
                name=c["name"], type=c["type"], not_null=c["not_null"], default=c["default"],
                collation=c["collation"], identity=c["identity"],
                identity_sequence=identity_sequences.get((r["schema"], r["name"], c["name"])),
                generated=c["generated"], comment=c["comment"], position=c["position"], depends_on=_deps(c),
                inherited=not c["local"],
            )
        t = Table(
            schema=r["schema"], name=r["name"], persistence=r["persistence"], kind=r["kind"], columns=cols,
            constraints=constraints.get(key, {}), indexes=indexes.get(key, {}), comment=r["comment"],
            partition_key=r["partition_key"], partition_of=r["partition_of"],
            partition_bound=r["partition_bound"], inherits=tuple(r["inherits"] or ()),
            rls_enabled=r["rls_enabled"], rls_forced=r["rls_forced"], estimated_rows=r["estimated_rows"],
        )
        cat.tables[t.id] = t
    _parse_objects(cat, doc)
    _parse_types(cat, doc)
    cat.unsupported = [Unsupported(r["kind"], r["identity"]) for r in doc["unsupported"]]
    return cat


def _parse_types(cat: Catalog, doc: dict[str, Any]) -> None:
    """Collations, domains, composite types and range types."""
    for r in doc.get("collations", ()):
        coll = Collation(
            r["schema"], r["name"], r["provider"], r["locale"], r["lc_collate"], r["lc_ctype"],
            r["deterministic"], r["comment"])
        cat.collations[coll.id] = coll
    for r in doc.get("domains", ()):
        cons = tuple(DomainConstraint(k["name"], k["definition"], k["validated"],
                                      tuple(sorted(oid_key("function", f) for f in k["func_deps"] or ())))
                     for k in r["constraints"])
        d = Domain(
            r["schema"], r["name"], r["base_type"], r["collation"], r["default"], r["not_null"], cons,
            r["comment"], _deps(r))
        cat.domains[d.id] = d
    for r in doc.get("composites", ()):
        attrs = tuple(Attribute(a["name"], a["type"], a["collation"], _deps(a)) for a in r["attributes"])
        c = CompositeType(r["schema"], r["name"], attrs, r["comment"])
        cat.composites[c.id] = c
    for r in doc.get("ranges", ()):
        rng = RangeType(
            r["schema"], r["name"], r["subtype"], r["subtype_opclass"], r["collation"], r["canonical"],
            r["subtype_diff"], r["multirange"], r["comment"], _deps(r))
        cat.ranges[rng.id] = rng


def _privileges(rows: list[list[Any]] | None) -> frozenset[Privilege]:
    return frozenset((g, p, bool(grantable)) for g, p, grantable in rows or ())


def _parse_objects(cat: Catalog, doc: dict[str, Any]) -> None:
    """Views, functions, triggers, policies and privileges."""
    cat.current_user = (doc.get("session") or [{}])[0].get("current_user", "")
    cat.depends = {r["object"]: tuple(r["uses"]) for r in doc.get("depends", ())}
    deps = cat.depends
    view_indexes: dict[tuple[str, str], dict[str, Index]] = {}
    for r in doc.get("view_indexes", ()):
        idx = Index(r["schema"], r["name"], r["view"], r["definition"], r["unique"], r["valid"], r["comment"])
        view_indexes.setdefault((r["schema"], r["view"]), {})[idx.name] = idx
    for r in doc.get("views", ()):
        key = (r["schema"], r["name"])
        v = View(
            r["schema"], r["name"], r["kind"], r["definition"],
            columns=tuple((c["name"], c["type"]) for c in r["columns"]),
            options=tuple(sorted(r["options"] or ())), comment=r["comment"],
            column_comments=tuple((c["name"], c["comment"]) for c in r["columns"] if c["comment"] is not None),
            indexes=view_indexes.get(key, {}),
        )
        cat.views[v.id] = replace(v, depends_on=deps.get(v.id, ()))
    for r in doc.get("functions", ()):
        f = Function(
            r["schema"], r["name"], r["identity_args"], r["kind"], r["definition"], r["result"],
            tuple(r["arg_names"] or ()), r["n_defaults"], r["comment"],
        )
        cat.functions[f.id] = replace(f, depends_on=deps.get(f.id, ()))
    for r in doc.get("triggers", ()):
        t = Trigger(r["schema"], r["table"], r["name"], r["definition"], r["enabled"], r["comment"])
        cat.triggers[t.id] = replace(t, depends_on=deps.get(t.id, ()))
    for r in doc.get("policies", ()):
        p = RlsPolicy(
            r["schema"], r["table"], r["name"], r["permissive"], r["command"], tuple(r["roles"] or ("public",)),
            r["using"], r["with_check"], r["comment"],
        )
        cat.policies[p.id] = replace(p, depends_on=deps.get(p.id, ()))
    for r in doc.get("acls", ()):
        a = Acl(r["kind"], r["schema"], r["name"], r["column"], r["args"], _privileges(r["entries"]),
                _privileges(r["defaults"]), r["owner"])
        cat.acls[a.id] = a
    for r in doc.get("default_acls", ()):
        d = DefaultAcl(r["role"], r["schema"], r["objtype"], _privileges(r["entries"]), _privileges(r["defaults"]))
        if d.entries != d.defaults:
            cat.default_acls[d.id] = d


def scope(cat: Catalog, only_schemas: list[str] | None = None, exclude_schemas: list[str] | None = None) -> Catalog:
    """The part of a catalog that is managed under the given schema scoping."""
    if not only_schemas and not exclude_schemas:
        return cat

    def keep(schema: str) -> bool:
        if only_schemas and schema not in only_schemas:
            return False
        return not (exclude_schemas and schema in exclude_schemas)

    out = Catalog(server_version=cat.server_version, available_extensions=cat.available_extensions)
    out.schemas = {k: v for k, v in cat.schemas.items() if keep(v.name)}
    # extensions are database-wide; with --only-schemas they are managed only if they live there
    out.extensions = {k: v for k, v in cat.extensions.items() if keep(v.schema)}
    out.enums = {k: v for k, v in cat.enums.items() if keep(v.schema)}
    out.collations = {k: v for k, v in cat.collations.items() if keep(v.schema)}
    out.domains = {k: v for k, v in cat.domains.items() if keep(v.schema)}
    out.composites = {k: v for k, v in cat.composites.items() if keep(v.schema)}
    out.ranges = {k: v for k, v in cat.ranges.items() if keep(v.schema)}
    out.sequences = {k: v for k, v in cat.sequences.items() if keep(v.schema)}
    out.tables = {k: v for k, v in cat.tables.items() if keep(v.schema)}
    out.unsupported = [u for u in cat.unsupported if "." not in u.identity or keep(u.identity.split(".")[0])]
    out.views = {k: v for k, v in cat.views.items() if keep(v.schema)}
    out.functions = {k: v for k, v in cat.functions.items() if keep(v.schema)}
    out.triggers = {k: v for k, v in cat.triggers.items() if keep(v.schema)}
    out.policies = {k: v for k, v in cat.policies.items() if keep(v.schema)}
    out.acls = {k: v for k, v in cat.acls.items() if keep(v.schema)}
    # global default privileges belong to no schema: managed only when no schema list restricts
    out.default_acls = {k: v for k, v in cat.default_acls.items()
                        if (keep(v.schema) if v.schema is not None else not only_schemas)}
    out.depends = cat.depends
    out.current_user = cat.current_user
    out.extra = cat.extra
    return out


# volatile_default follows from the default text, which is hashed
_NOT_HASHED = frozenset({"position", "estimated_rows", "depends_on", "volatile_default"})


def catalog_hash(cat: Catalog) -> str:
    """Hash of what is managed, ignoring what never causes a change (column order, row estimates)."""

    def plain(value):
        # fields of records only: a column or table may well be named "position"
        return to_plain(value, _NOT_HASHED)

    def by_name(records):
        # these dicts were keyed by (schema, name) once: hash them under that key, without the
        # kind prefix of the id, so hashes recorded in ledgers and sign-offs stay comparable
        return plain({k.split(":", 1)[1]: v for k, v in records.items()})

    doc = ({
        "schemas": by_name(cat.schemas), "extensions": by_name(cat.extensions), "enums": by_name(cat.enums),
        "sequences": by_name(cat.sequences), "tables": by_name(cat.tables), "extra": plain(cat.extra),
        "collations": by_name(cat.collations), "domains": by_name(cat.domains),
        "composites": by_name(cat.composites), "ranges": by_name(cat.ranges),
        "views": by_name(cat.views), "functions": plain(cat.functions), "triggers": plain(cat.triggers),
        "policies": plain(cat.policies), "default_acls": plain(cat.default_acls),
        # who owns an object is not managed: only what its ACL grants
        "acls": {k: {f: v for f, v in a.items() if f != "owner"} for k, a in plain(cat.acls).items()},
    })
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()

