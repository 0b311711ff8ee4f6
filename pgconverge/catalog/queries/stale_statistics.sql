-- Fresh statistics for the catalogs the catalog query reads, when theirs are stale.
-- A database just loaded (the shadow, a restored copy, a target after its first deploy) keeps its
-- template's catalog statistics until autovacuum comes by, up to a minute later. Planned on
-- those, the catalog query of 1,000 new tables ran nested loops over tens of thousands of rows for
-- minutes; after ANALYZE it takes about a second, and the ANALYZE well under one. Stale here means
-- more rows changed since the last ANALYZE than a quarter of the live ones, plus a margin. Only
-- statistics change: no row of the schema, and the catalog fingerprint (row versions) stays.
-- A role that may not analyze a catalog gets a warning and skips it; any other failure (a read-only
-- server, a lock held) leaves the statistics as they were and the query below still runs.
SELECT coalesce(bool_or(s.n_mod_since_analyze > 1000 + s.n_live_tup / 4), false) AS pgconverge_stale_statistics
FROM pg_catalog.pg_stat_sys_tables s
WHERE s.schemaname = 'pg_catalog' AND s.relname = ANY (:'catalogs'::text[])
\gset
\if :pgconverge_stale_statistics
\set ON_ERROR_STOP 0
SET lock_timeout = '1s';
:analyze
RESET lock_timeout;
\set ON_ERROR_STOP 1
\endif
