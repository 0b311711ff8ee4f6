-- What `value::type` can convert between, for the built-in types (user-made casts are an
-- unmanaged kind): the planner refuses an ALTER COLUMN ... TYPE that PostgreSQL cannot cast
-- unless sql/ gives a -- @using expression. One row: the cast pairs (every context counts, the
-- planner writes an explicit USING col::type), the string types (I/O conversion casts from and to
-- them) and every built-in non-array type name, so that an unknown name is never taken for "no cast".
SELECT
  (SELECT json_agg(json_build_array(format_type(c.castsource, NULL), format_type(c.casttarget, NULL)))
     FROM pg_cast c WHERE c.castsource < 16384 AND c.casttarget < 16384) AS pairs,
  (SELECT json_agg(format_type(t.oid, NULL)) FROM pg_type t
     WHERE t.oid < 16384 AND t.typcategory = 'S' AND t.typelem = 0) AS strings,
  (SELECT json_agg(format_type(t.oid, NULL)) FROM pg_type t
     WHERE t.oid < 16384 AND t.typcategory <> 'A' AND t.typrelid = 0 AND t.typtype IN ('b', 'd', 'e', 'r', 'm', 'p')) AS known
