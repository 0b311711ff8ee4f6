"""Introspection: the catalog of one database in a single round trip.

Each object kind has one readable catalog query returning a JSON array. They are
glued into one ``SELECT json_build_object(...)`` so a database costs one psql call,
however many objects it holds. The session runs with ``search_path = pg_catalog``
so every name PostgreSQL prints is schema-qualified.
"""

from __future__ import annotations

import json
from typing import Any

from .model import (
    Catalog,
    Column,
    Constraint,
    EnumType,
    Extension,
    Index,
    Schema,
    Sequence,
    Table,
    Unsupported,
    oid_key,
)

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

QUERIES["tables"] = """
SELECT n.nspname AS schema, c.relname AS name, c.relkind AS kind, c.relpersistence AS persistence,
       obj_description(c.oid, 'pg_class') AS comment,
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
       (SELECT coalesce(json_agg(json_build_object(
            'name', a.attname,
            'type', format_type(a.atttypid, a.atttypmod),
            'not_null', a.attnotnull,
            'default', pg_get_expr(ad.adbin, ad.adrelid),
            'collation', CASE WHEN a.attcollation <> t.typcollation
                              THEN quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END,
            'identity', a.attidentity,
            'generated', a.attgenerated,
            'comment', col_description(c.oid, a.attnum),
            'position', a.attnum,
            'local', a.attislocal,
            'type_deps', (SELECT json_agg(DISTINCT tn.nspname || '.' || coalesce(et.typname, ut.typname))
                          FROM pg_type ut
                          LEFT JOIN pg_type et ON et.oid = ut.typelem AND ut.typcategory = 'A'
                          JOIN pg_namespace tn ON tn.oid = coalesce(et.typnamespace, ut.typnamespace)
                          WHERE ut.oid = a.atttypid AND tn.nspname NOT IN ('pg_catalog', 'information_schema')),
            'seq_deps', (SELECT json_agg(sn.nspname || '.' || sc.relname)
                         FROM pg_depend d JOIN pg_class sc ON sc.oid = d.refobjid AND sc.relkind = 'S'
                         JOIN pg_namespace sn ON sn.oid = sc.relnamespace
                         WHERE d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
                           AND d.refclassid = 'pg_class'::regclass),
            'func_deps', (SELECT json_agg(fn.nspname || '.' || p.proname)
                         FROM pg_depend d JOIN pg_proc p ON p.oid = d.refobjid
                         JOIN pg_namespace fn ON fn.oid = p.pronamespace
                         WHERE d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
                           AND d.refclassid = 'pg_proc'::regclass
                           AND fn.nspname NOT IN ('pg_catalog', 'information_schema'))
          ) ORDER BY a.attnum), '[]')
        FROM pg_attribute a
        JOIN pg_type t ON t.oid = a.atttypid
        LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
        LEFT JOIN pg_collation co ON co.oid = a.attcollation
        LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns
FROM pg_class c
JOIN ns n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND (c.oid, 'pg_class'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
ORDER BY 1, 2
"""

QUERIES["constraints"] = """
SELECT n.nspname AS schema, c.relname AS table, k.conname AS name, k.contype AS kind,
       pg_get_constraintdef(k.oid) AS definition,
       k.convalidated AS validated,
       (SELECT json_agg(a.attname ORDER BY x.ord) FROM unnest(k.conkey) WITH ORDINALITY x(num, ord)
          JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = x.num) AS columns,
       CASE WHEN k.contype = 'f' THEN rn.nspname || '.' || rc.relname END AS ref_table,
       CASE WHEN k.contype IN ('p', 'u', 'x') THEN ic.relname END AS index,
       obj_description(k.oid, 'pg_constraint') AS comment,
       k.conislocal AS local
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
       obj_description(ic.oid, 'pg_class') AS comment,
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
SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' ELSE 'composite type' END,
       n.nspname || '.' || c.relname
  FROM pg_class c JOIN ns n ON n.oid = c.relnamespace WHERE c.relkind IN ('v', 'm', 'c')
   AND (c.oid, 'pg_class'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
UNION ALL
SELECT CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END,
       n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
  FROM pg_proc p JOIN ns n ON n.oid = p.pronamespace
 WHERE (p.oid, 'pg_proc'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
UNION ALL
SELECT 'trigger', n.nspname || '.' || c.relname || '.' || t.tgname
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN ns n ON n.oid = c.relnamespace
 WHERE NOT t.tgisinternal
UNION ALL
SELECT 'policy', n.nspname || '.' || c.relname || '.' || p.polname
  FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN ns n ON n.oid = c.relnamespace
UNION ALL
SELECT CASE t.typtype WHEN 'd' THEN 'domain' WHEN 'r' THEN 'range type' ELSE 'type' END,
       n.nspname || '.' || t.typname
  FROM pg_type t JOIN ns n ON n.oid = t.typnamespace
 WHERE t.typtype IN ('d', 'r', 'm', 'b')
   AND (t.oid, 'pg_type'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
   AND t.typelem = 0 AND t.typrelid = 0
UNION ALL
SELECT 'collation', n.nspname || '.' || co.collname
  FROM pg_collation co JOIN ns n ON n.oid = co.collnamespace
 WHERE (co.oid, 'pg_collation'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
UNION ALL
SELECT 'privileges on', n.nspname || '.' || c.relname
  FROM pg_class c JOIN ns n ON n.oid = c.relnamespace
 WHERE c.relacl IS NOT NULL AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
   AND (c.oid, 'pg_class'::regclass) NOT IN (SELECT objid, classid FROM ext_members)
UNION ALL
SELECT 'privileges on schema', n.nspname FROM ns n JOIN pg_namespace x ON x.oid = n.oid
 WHERE x.nspacl IS NOT NULL AND x.nspname <> 'public'
UNION ALL
SELECT 'default privileges', coalesce(n.nspname, '(all schemas)')
  FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
UNION ALL
SELECT 'rule', n.nspname || '.' || c.relname || '.' || r.rulename
  FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN ns n ON n.oid = c.relnamespace
  WHERE r.rulename <> '_RETURN'
"""


def catalog_query(queries: dict[str, str] | None = None) -> str:
    """The single statement that returns the whole catalog as one JSON document."""
    queries = queries if queries is not None else QUERIES
    parts = ",\n".join(
        f"'{name}', (SELECT coalesce(json_agg(q), '[]') FROM ({sql}) q)" for name, sql in queries.items()
    )
    return (
        "SET search_path = pg_catalog;\n"
        f"WITH ns AS ({MANAGED_NAMESPACES}), ext_members AS ({EXTENSION_MEMBERS})\n"
        "SELECT json_build_object(\n"
        "'server_version', current_setting('server_version_num')::int,\n"
        f"{parts});\n"
    )


def _deps(row: dict[str, Any]) -> tuple[str, ...]:
    deps = [oid_key("type", d) for d in row.get("type_deps") or ()]
    deps += [oid_key("sequence", d) for d in row.get("seq_deps") or ()]
    deps += [oid_key("function", d) for d in row.get("func_deps") or ()]
    return tuple(sorted(set(deps)))


def parse_catalog(doc: dict[str, Any] | str) -> Catalog:
    """Build the data model from the JSON document that catalog_query() returns."""
    if isinstance(doc, str):
        doc = json.loads(doc)
    cat = Catalog(server_version=doc["server_version"])
    for r in doc["schemas"]:
        cat.schemas[r["name"]] = Schema(r["name"], r["comment"])
    for r in doc["extensions"]:
        cat.extensions[r["name"]] = Extension(r["name"], r["schema"], r["version"])
    cat.available_extensions = {r["name"]: r["version"] for r in doc["available_extensions"]}
    for r in doc["enums"]:
        cat.enums[(r["schema"], r["name"])] = EnumType(r["schema"], r["name"], tuple(r["labels"] or ()), r["comment"])

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
            cat.sequences[(r["schema"], r["name"])] = seq

    constraints: dict[tuple[str, str], dict[str, Constraint]] = {}
    for r in doc["constraints"]:
        if not r["local"]:
            continue  # inherited from a parent: the parent's definition carries it
        con = Constraint(
            r["name"], r["kind"], r["definition"], tuple(r["columns"] or ()), r["validated"],
            oid_key("table", r["ref_table"]) if r["ref_table"] else None, r["index"], r["comment"],
        )
        constraints.setdefault((r["schema"], r["table"]), {})[con.name] = con
    indexes: dict[tuple[str, str], dict[str, Index]] = {}
    for r in doc["indexes"]:
        idx = Index(
            r["schema"], r["name"], r["table"], r["definition"], r["unique"], r["valid"], r["comment"],
            tuple(r["columns"] or ()),
        )
        indexes.setdefault((r["schema"], r["table"]), {})[idx.name] = idx

    for r in doc["tables"]:
        key = (r["schema"], r["name"])
        cols = {}
        for c in r["columns"]:
            if not c["local"] and not (r["partition_of"]):
                continue  # inherited columns come from the parent
            cols[c["name"]] = Column(
                name=c["name"], type=c["type"], not_null=c["not_null"], default=c["default"],
                collation=c["collation"], identity=c["identity"],
                identity_sequence=identity_sequences.get((r["schema"], r["name"], c["name"])),
                generated=c["generated"], comment=c["comment"], position=c["position"], depends_on=_deps(c),
            )
        cat.tables[key] = Table(
            schema=r["schema"], name=r["name"], persistence=r["persistence"], kind=r["kind"], columns=cols,
            constraints=constraints.get(key, {}), indexes=indexes.get(key, {}), comment=r["comment"],
            partition_key=r["partition_key"], partition_of=r["partition_of"],
            partition_bound=r["partition_bound"], inherits=tuple(r["inherits"] or ()),
            rls_enabled=r["rls_enabled"], rls_forced=r["rls_forced"], estimated_rows=r["estimated_rows"],
        )
    cat.unsupported = [Unsupported(r["kind"], r["identity"]) for r in doc["unsupported"]]
    return cat


def scope(cat: Catalog, only_schemas: list[str] | None = None, exclude_schemas: list[str] | None = None) -> Catalog:
    """The part of a catalog that is managed under the given schema scoping."""
    if not only_schemas and not exclude_schemas:
        return cat

    def keep(schema: str) -> bool:
        if only_schemas and schema not in only_schemas:
            return False
        return not (exclude_schemas and schema in exclude_schemas)

    out = Catalog(server_version=cat.server_version, available_extensions=cat.available_extensions)
    out.schemas = {k: v for k, v in cat.schemas.items() if keep(k)}
    # extensions are database-wide; with --only-schemas they are managed only if they live there
    out.extensions = {k: v for k, v in cat.extensions.items() if keep(v.schema)}
    out.enums = {k: v for k, v in cat.enums.items() if keep(k[0])}
    out.sequences = {k: v for k, v in cat.sequences.items() if keep(k[0])}
    out.tables = {k: v for k, v in cat.tables.items() if keep(k[0])}
    out.unsupported = [u for u in cat.unsupported if "." not in u.identity or keep(u.identity.split(".")[0])]
    out.extra = cat.extra
    return out
