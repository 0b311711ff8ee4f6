"""Unit tests of pgconverge.source: reading sql/ (no database needed)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pglast
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgconverge.source import DataBlock, Rename, Source, SourceError, Statement, load_source

REPO = Path(__file__).resolve().parent.parent


def write(root: Path, rel: str, text: str) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p


def error(sql, match: str | None = None) -> SourceError:
    with pytest.raises(SourceError) as ei:
        load_source(sql)
    if match is not None:
        assert match in str(ei.value), str(ei.value)
    return ei.value


# ---------------------------------------------------------------------------- inputs


def test_single_file_path_and_pathlike(tmp_path):
    p = write(tmp_path, "a.sql", "CREATE TABLE a (x int);\n")
    for arg in (str(p), p):
        src = load_source(arg)
        assert src.statements == (Statement(str(p), 1, "CREATE TABLE a (x int)", "CreateStmt"),)


def test_folder_is_read_recursively_in_sorted_path_order_and_skips_smoke_and_mask(tmp_path):
    write(tmp_path, "sql/schema/20_b.sql", "CREATE TABLE b (x int);")
    write(tmp_path, "sql/schema/10_a.sql", "CREATE TABLE a (x int);")
    write(tmp_path, "sql/00_first.sql", "CREATE SCHEMA s;")
    write(tmp_path, "sql/schema/sub/05_c.sql", "CREATE TABLE c (x int);")
    write(tmp_path, "sql/smoke/01_check.sql", "SELECT true;")  # would be refused if read
    write(tmp_path, "sql/schema/smoke/01_kept.sql", "CREATE TABLE kept (x int);")  # only the top smoke/ is skipped
    # masking scripts change rows of a refreshed staging: refused if read as the desired state
    write(tmp_path, "sql/mask/10_emails.sql", "UPDATE a SET x = 0;")
    write(tmp_path, "sql/.hidden/x.sql", "INSERT INTO a VALUES (1);")
    write(tmp_path, "sql/schema/notes.txt", "not sql")
    root = str(tmp_path / "sql")
    src = load_source(root)
    assert [os.path.relpath(s.file, root) for s in src.statements] == [
        "00_first.sql", "schema/10_a.sql", "schema/20_b.sql", "schema/smoke/01_kept.sql", "schema/sub/05_c.sql"]
    assert src.statements[1].file == os.path.join(root, "schema", "10_a.sql")


def test_list_of_sql_strings_are_named_in_order():
    src = load_source(["CREATE TABLE a (x int);", "CREATE TABLE b (x int);\nCREATE TABLE c (y int);"])
    assert [(s.file, s.line) for s in src.statements] == [("<sql 1>", 1), ("<sql 2>", 1), ("<sql 2>", 2)]


def test_single_sql_string_and_mixed_list(tmp_path):
    p = write(tmp_path, "a.sql", "CREATE TABLE a (x int);")
    assert load_source("CREATE TABLE z (x int)").statements[0].file == "<sql 1>"
    src = load_source([str(p), "CREATE TABLE b (x int);"])
    assert [s.file for s in src.statements] == [str(p), "<sql 1>"]


def test_missing_path_is_named(tmp_path):
    missing = str(tmp_path / "nope.sql")
    e = error(missing)
    assert e.file == missing and e.line is None
    assert str(e) == f"{missing}: no such file or folder"
    e = error([str(tmp_path / "sql dir" / "x.sql")], "no such file")  # a path with a space is still a path


def test_the_same_file_twice_is_read_once(tmp_path):
    p = write(tmp_path, "sql/a.sql", "CREATE TABLE a (x int);")
    src = load_source([str(tmp_path / "sql"), str(p)])
    assert len(src.statements) == 1


def test_empty_inputs():
    src = load_source([])
    assert src.statements == () and src.script() == ""
    assert load_source(["-- only a comment\n"]).statements == ()


def test_invalid_utf8_is_reported(tmp_path):
    p = tmp_path / "bad.sql"
    p.write_bytes(b"CREATE TABLE a (x int);\n-- caf\xe9\n")
    e = error(str(p), "not valid UTF-8")
    assert e.line == 2


# ---------------------------------------------------------------------------- statements


def test_statement_text_line_and_kind():
    sql = ("-- header comment\n"
           "/* block\n comment */\n"
           "CREATE TABLE a (\n  x int -- trailing\n)  -- after\n;\n"
           "\n"
           "CREATE INDEX a_x ON a (x); CREATE VIEW v AS SELECT 1 AS one;\n"
           "COMMENT ON TABLE a IS 'semi;colon -- not a comment'\n")
    src = load_source([sql])
    assert [(s.line, s.kind) for s in src.statements] == [
        (4, "CreateStmt"), (9, "IndexStmt"), (9, "ViewStmt"), (10, "CommentStmt")]
    assert src.statements[0].text == "CREATE TABLE a (\n  x int -- trailing\n)"
    assert src.statements[1].text == "CREATE INDEX a_x ON a (x)"
    assert src.statements[2].text == "CREATE VIEW v AS SELECT 1 AS one"
    assert src.statements[3].text == "COMMENT ON TABLE a IS 'semi;colon -- not a comment'"


def test_non_ascii_text_does_not_shift_offsets():
    sql = "-- Ünïcödé ✓✓✓\nCOMMENT ON SCHEMA public IS 'héllo wörld';\n-- ✓\nCREATE TABLE \"tä\" (x int);\n"
    src = load_source([sql])
    assert [s.text for s in src.statements] == ["COMMENT ON SCHEMA public IS 'héllo wörld'",
                                                 'CREATE TABLE "tä" (x int)']
    assert [s.line for s in src.statements] == [2, 4]


def test_crlf_line_endings():
    src = load_source(["-- c\r\nCREATE TABLE a (\r\n x int\r\n);\r\nCREATE TABLE b (y int);\r\n"])
    assert [s.line for s in src.statements] == [2, 5]
    assert src.statements[0].text == "CREATE TABLE a (\r\n x int\r\n)"


def test_syntax_error_reports_file_line_and_parser_message(tmp_path):
    p = write(tmp_path, "s.sql", "-- é\nCREATE TABLE a (x int);\n\nCREATE TABLE b (\n  y int,\n  z intt ttt\n);\n")
    e = error(str(p))
    assert (e.file, e.line) == (str(p), 6)
    assert 'syntax error at or near "ttt"' in e.message
    assert str(e).startswith(f"{p}:6: syntax error")


def test_unterminated_string_is_a_syntax_error():
    e = error(["CREATE TABLE a (x int);\nCOMMENT ON TABLE a IS 'oops;\n"])
    assert e.line == 2 and "unterminated" in e.message


def test_source_error_str_and_attributes():
    e = SourceError("sql/schema/10_users.sql", 12, "boom")
    assert str(e) == "sql/schema/10_users.sql:12: boom"
    assert (e.file, e.line, e.message) == ("sql/schema/10_users.sql", 12, "boom")
    assert str(SourceError("x.sql", None, "gone")) == "x.sql: gone"


ALLOWED = [
    ("CREATE SCHEMA app", "CreateSchemaStmt"),
    ("CREATE EXTENSION IF NOT EXISTS pgcrypto", "CreateExtensionStmt"),
    ("CREATE TYPE mood AS ENUM ('sad', 'ok')", "CreateEnumStmt"),
    ("CREATE TYPE pair AS (a int, b int)", "CompositeTypeStmt"),
    ("CREATE DOMAIN posint AS int CHECK (VALUE > 0)", "CreateDomainStmt"),
    ("CREATE COLLATION c2 (locale = 'C')", "DefineStmt"),
    ("CREATE TYPE floatrange AS RANGE (subtype = float8)", "CreateRangeStmt"),
    ("CREATE SEQUENCE s START 10", "CreateSeqStmt"),
    ("ALTER SEQUENCE s OWNED BY t.id", "AlterSeqStmt"),
    ("CREATE TABLE t (id int PRIMARY KEY)", "CreateStmt"),
    ("CREATE UNIQUE INDEX t_idx ON t (id) WHERE id > 0", "IndexStmt"),
    ("CREATE OR REPLACE VIEW v AS SELECT 1", "ViewStmt"),
    ("CREATE MATERIALIZED VIEW mv AS SELECT 1 WITH NO DATA", "CreateTableAsStmt"),
    ("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$", "CreateFunctionStmt"),
    ("CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()", "CreateTrigStmt"),
    ("CREATE EVENT TRIGGER et ON ddl_command_start EXECUTE FUNCTION f()", "CreateEventTrigStmt"),
    ("CREATE POLICY p ON t USING (true)", "CreatePolicyStmt"),
    ("COMMENT ON TABLE t IS 'x'", "CommentStmt"),
    ("GRANT SELECT ON t TO PUBLIC", "GrantStmt"),
    ("REVOKE ALL ON SCHEMA public FROM PUBLIC", "GrantStmt"),
    ("ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC", "AlterDefaultPrivilegesStmt"),
    ("ALTER TYPE mood ADD VALUE 'happy'", "AlterEnumStmt"),
    ("CREATE FOREIGN TABLE ft (a int) SERVER srv", "CreateForeignTableStmt"),
    ("CREATE SERVER srv FOREIGN DATA WRAPPER w", "CreateForeignServerStmt"),
    ("CREATE FOREIGN DATA WRAPPER w", "CreateFdwStmt"),
    ("CREATE PUBLICATION pub FOR TABLE t", "CreatePublicationStmt"),
    ("CREATE CAST (int AS mood) WITH FUNCTION f(int)", "CreateCastStmt"),
    ("CREATE CONVERSION c FOR 'LATIN1' TO 'UTF8' FROM iso8859_1_to_utf8", "CreateConversionStmt"),
    ("CREATE OPERATOR CLASS oc FOR TYPE int USING btree AS OPERATOR 1 <", "CreateOpClassStmt"),
    ("CREATE STATISTICS st ON a, b FROM t", "CreateStatsStmt"),
    ("CREATE RULE r AS ON INSERT TO t DO INSTEAD NOTHING", "RuleStmt"),
    ("ALTER FUNCTION f() OWNER TO app", "AlterOwnerStmt"),
    ("SET check_function_bodies = false", "VariableSetStmt"),
    ("SELECT pg_catalog.set_config('search_path', '', false)", "SelectStmt"),
    ("ALTER TABLE t ADD COLUMN c int, ADD CONSTRAINT c_pos CHECK (c > 0) NOT VALID", "AlterTableStmt"),
    ("ALTER TABLE ONLY t ALTER COLUMN c SET DEFAULT 0, ALTER COLUMN c SET NOT NULL", "AlterTableStmt"),
    ("ALTER TABLE t ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY", "AlterTableStmt"),
    ("ALTER TABLE t ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY", "AlterTableStmt"),
    ("ALTER TABLE t REPLICA IDENTITY FULL", "AlterTableStmt"),
    ("ALTER TABLE t CLUSTER ON t_idx", "AlterTableStmt"),
    ("ALTER TABLE t ALTER COLUMN c SET STATISTICS 500, ALTER COLUMN c SET STORAGE PLAIN", "AlterTableStmt"),
    ("ALTER TABLE t ATTACH PARTITION t_2025 FOR VALUES FROM (1) TO (2)", "AlterTableStmt"),
    ("ALTER TABLE t INHERIT parent", "AlterTableStmt"),
    ("ALTER TABLE t DISABLE TRIGGER tr, ENABLE ALWAYS TRIGGER tr2", "AlterTableStmt"),
    ("ALTER TABLE t OWNER TO app", "AlterTableStmt"),
    ("ALTER TABLE t SET (fillfactor = 70), SET UNLOGGED", "AlterTableStmt"),
    ("ALTER TABLE t ALTER COLUMN c TYPE bigint", "AlterTableStmt"),
    ("ALTER TABLE t VALIDATE CONSTRAINT c_pos", "AlterTableStmt"),
    ("ALTER INDEX t_idx SET (fillfactor = 50)", "AlterTableStmt"),
    ("ALTER SEQUENCE s OWNER TO app", "AlterTableStmt"),
    ("ALTER DOMAIN posint ADD CONSTRAINT small CHECK (VALUE < 100)", "AlterDomainStmt"),
]


@pytest.mark.parametrize("sql,kind", ALLOWED, ids=[a[0][:40] for a in ALLOWED])
def test_definitions_are_accepted(sql, kind):
    src = load_source([sql + ";"])
    assert [(s.kind, s.text) for s in src.statements] == [(kind, sql)]


REFUSED = [
    ("INSERT INTO t VALUES (1)", "INSERT (InsertStmt)"),
    ("UPDATE t SET a = 1", "UPDATE (UpdateStmt)"),
    ("DELETE FROM t", "DELETE (DeleteStmt)"),
    ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", "MERGE (MergeStmt)"),
    ("TRUNCATE t", "TRUNCATE (TruncateStmt)"),
    ("DROP TABLE t", "DROP TABLE (DropStmt)"),
    ("DROP INDEX CONCURRENTLY t_idx", "DROP INDEX (DropStmt)"),
    ("COPY t FROM STDIN", "COPY (CopyStmt)"),
    ("DO $$ BEGIN END $$", "DO (DoStmt)"),
    ("CALL p()", "CALL (CallStmt)"),
    ("BEGIN", "BEGIN (TransactionStmt)"),
    ("COMMIT", "COMMIT (TransactionStmt)"),
    ("VACUUM ANALYZE t", "VACUUM (VacuumStmt)"),
    ("ANALYZE t", "ANALYZE (VacuumStmt)"),
    ("CREATE DATABASE d", "CREATE DATABASE (CreatedbStmt)"),
    ("CREATE ROLE r", "CREATE ROLE (CreateRoleStmt)"),
    ("CREATE USER u", "CREATE USER (CreateRoleStmt)"),
    ("GRANT r TO u", "(GrantRoleStmt)"),
    ("ALTER TABLE t DROP COLUMN c", "DROP COLUMN (AlterTableStmt AT_DropColumn)"),
    ("ALTER TABLE t ADD COLUMN d int, DROP CONSTRAINT c", "DROP CONSTRAINT (AlterTableStmt AT_DropConstraint)"),
    ("ALTER TABLE t ALTER COLUMN c DROP NOT NULL", "AT_DropNotNull"),
    ("ALTER TABLE t RENAME COLUMN a TO b", "(RenameStmt)"),
    ("ALTER TABLE t RENAME TO u", "(RenameStmt)"),
    ("ALTER TABLE t SET SCHEMA s", "(AlterObjectSchemaStmt)"),
    ("SELECT 1", "SELECT (SelectStmt)"),
    ("SELECT pg_catalog.setval('s', 42, true)", "SELECT (SelectStmt)"),
    ("SELECT set_config('a', 'b', false) FROM t", "SELECT (SelectStmt)"),
    ("SELECT 1 INTO t2", "SELECT (SelectStmt)"),
    ("CREATE TABLE t2 AS SELECT 1", "CREATE TABLE AS (CreateTableAsStmt)"),
    ("REFRESH MATERIALIZED VIEW mv", "(RefreshMatViewStmt)"),
    ("ALTER TYPE mood RENAME VALUE 'a' TO 'b'", "(AlterEnumStmt)"),
    ("ALTER DOMAIN posint DROP CONSTRAINT small", "(AlterDomainStmt)"),
    ("ALTER EXTENSION pgcrypto UPDATE", "(AlterExtensionStmt)"),
    ("LOCK TABLE t", "(LockStmt)"),
    ("CLUSTER t", "(ClusterStmt)"),
]


@pytest.mark.parametrize("sql,words", REFUSED, ids=[r[0][:40] for r in REFUSED])
def test_non_definitions_are_refused_with_file_and_line(tmp_path, sql, words):
    p = write(tmp_path, "x.sql", "CREATE TABLE t (a int);\n\n-- next one is wrong\n  " + sql + ";\n")
    e = error(str(p))
    assert (e.file, e.line) == (str(p), 4)
    assert words in e.message
    assert "is not a definition; sql/ holds the desired state (CREATE statements). " \
           "Use a '-- @data' block for one-time data changes." in e.message
    assert str(e).startswith(f"{p}:4: ")


def test_refusal_hints():
    assert "cluster-wide" in error(["CREATE ROLE app LOGIN;"]).message
    assert "declare renames with -- @renamed-from" in error(["ALTER TABLE a RENAME COLUMN x TO y;"]).message.lower()
    assert "-- @drop table" in error(["DROP TABLE legacy;"]).message
    assert "-- @drop column" in error(["ALTER TABLE a DROP COLUMN x;"]).message


def test_create_index_concurrently_is_refused():
    e = error(["CREATE TABLE t (a int);\nCREATE INDEX CONCURRENTLY t_a ON t (a);"])
    assert e.line == 2
    assert e.message == "CREATE INDEX CONCURRENTLY is chosen by the planner, write a plain CREATE INDEX"


def test_temporary_table_is_refused():
    assert "temporary" in error(["CREATE TEMP TABLE t (a int);"]).message


def test_pinned_extensions():
    src = load_source(["CREATE EXTENSION pgcrypto;\nCREATE EXTENSION hstore VERSION '1.8';\n"
                       "CREATE EXTENSION IF NOT EXISTS citext WITH SCHEMA public VERSION '1.6';"])
    assert src.pinned_extensions == ("hstore", "citext")


# ---------------------------------------------------------------------------- hashes, script, locate


def test_sha256_is_stable_and_ignores_comments_and_data_blocks():
    base = "CREATE TABLE a (x int);\nCREATE TABLE b (y int);\n"
    h = load_source([base]).sha256
    assert h == load_source([base]).sha256
    assert len(h) == 64 and int(h, 16) >= 0
    padded = "-- a comment\n\n" + base.replace("\nCREATE", "\n-- between\n\nCREATE") + "\n-- @drop table public.z\n"
    assert load_source([padded]).sha256 == h
    with_block = base + "-- @data fill after\nUPDATE b SET y = 1;\n-- @end\n"
    assert load_source([with_block]).sha256 == h
    assert load_source([base.replace("y int", "y bigint")]).sha256 != h
    assert load_source([base, "CREATE TABLE c (z int);"]).sha256 != h


def test_sha256_depends_on_file_names_not_on_the_folder_spelling(tmp_path):
    write(tmp_path, "sql/schema/10_a.sql", "CREATE TABLE a (x int);")
    write(tmp_path, "sql/smoke/s.sql", "SELECT true;")
    h = load_source(str(tmp_path / "sql")).sha256
    assert load_source(str(tmp_path / "sql" / "schema")).sha256 == h
    assert load_source(str(tmp_path / "sql" / "schema" / "10_a.sql")).sha256 == h
    (tmp_path / "sql/schema/10_a.sql").rename(tmp_path / "sql/schema/11_a.sql")
    assert load_source(str(tmp_path / "sql")).sha256 != h


def test_script_and_locate_across_files(tmp_path):
    write(tmp_path, "sql/10_a.sql", "-- a\n\nCREATE TABLE a (\n  x int,\n  y int\n);\n")
    write(tmp_path, "sql/20_b.sql", "CREATE TABLE b (z int); CREATE INDEX b_z ON b (z)\n")
    src = load_source(str(tmp_path / "sql"))
    a, b = str(tmp_path / "sql/10_a.sql"), str(tmp_path / "sql/20_b.sql")
    assert src.script() == ("CREATE TABLE a (\n  x int,\n  y int\n);\n"
                            "CREATE TABLE b (z int);\nCREATE INDEX b_z ON b (z);\n")
    assert [src.locate(n) for n in range(1, 7)] == [(a, 3), (a, 4), (a, 5), (a, 6), (b, 1), (b, 1)]
    for bad in (0, 7, -1):
        with pytest.raises(ValueError):
            src.locate(bad)


def test_script_is_safe_when_the_statement_ends_in_a_line_comment():
    src = load_source(["CREATE TABLE a (x int) -- no semicolon after this comment\n"])
    assert src.script() == "CREATE TABLE a (x int);\n"
    assert len(pglast.parse_sql(src.script())) == 1


STATEMENTS = [
    "CREATE TABLE t{i} (\n  a int,\n  b text DEFAULT 'x;y -- z'\n)",
    "CREATE INDEX i{i} ON t (a)",
    "CREATE FUNCTION f{i}() RETURNS int LANGUAGE sql AS $$\n  SELECT 1; -- @nope: not a directive\n$$",
    "COMMENT ON TABLE t IS 'héllo\nwörld ✓'",
    "CREATE TYPE e{i} AS ENUM (\n'a',\n\n'b'\n)",
    "CREATE VIEW v{i} AS SELECT 1 AS \"x;\"",
    "CREATE TABLE \"ü{i}\" (\"col\n\" int /* c\n */, b int)",
]
PADDING = st.lists(st.sampled_from(["", "-- comment", "/* block\n   comment */", "   ", "-- ✓ ünï"]), max_size=3)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(STATEMENTS) - 1), PADDING, st.booleans(),
                          st.sampled_from([";", "\n;", " ; -- after", ";   "]), st.integers(0, 2)),
                min_size=1, max_size=12))
def test_locate_maps_every_script_line_back(plan):
    # Build up to three "files" (SQL strings), remembering where each statement starts.
    files: list[list[str]] = [[], [], []]
    expected: list[tuple[int, int, str]] = []  # (file index, first line, text)
    for i, (which, padding, inline, end, f) in enumerate(plan):
        text = STATEMENTS[which].format(i=i)
        chunks = files[f]
        prefix = "".join(p + "\n" for p in padding) + ("/* inline */ " if inline else "")
        before = "".join(chunks) + prefix
        expected.append((f, before.count("\n") + 1, text))
        chunks.append(prefix + text + end + "\n")
    texts = ["".join(c) for c in files]
    used = [k for k in range(3) if texts[k]]
    src = load_source([texts[k] for k in used])
    names = {k: f"<sql {n + 1}>" for n, k in enumerate(used)}
    # statements come out in file order, then in position order
    expected.sort(key=lambda e: (used.index(e[0]), e[1]))
    assert [(s.file, s.line, s.text) for s in src.statements] == [(names[f], ln, t) for f, ln, t in expected]
    script_lines = src.script().split("\n")
    assert script_lines[-1] == ""
    n = 0
    for f, first, text in expected:
        for k, piece in enumerate(text.split("\n")):
            n += 1
            assert src.locate(n) == (names[f], first + k)
            file_line = texts[f].split("\n")[first + k - 1]
            assert script_lines[n - 1].removesuffix(";") in file_line
    assert n == len(script_lines) - 1
    with pytest.raises(ValueError):
        src.locate(n + 1)


# ---------------------------------------------------------------------------- @renamed-from


def renames(sql: str | list[str]) -> list[tuple]:
    src = load_source([sql] if isinstance(sql, str) else sql)
    return [(r.kind, r.schema, r.table, r.old, r.new, r.line) for r in src.renames]


def test_renamed_from_trailing_on_a_column():
    sql = ('CREATE TABLE users (\n'
           '  id int PRIMARY KEY,\n'
           '  "purchasedCreditPacks" integer NOT NULL DEFAULT 0, -- @renamed-from purchased_credit_packs\n'
           '  name text\n'
           ');\n')
    assert renames(sql) == [("column", "public", "users", "purchased_credit_packs", "purchasedCreditPacks", 3)]


def test_renamed_from_on_the_lines_before_a_column_with_quoted_old_name():
    sql = ('CREATE TABLE app.users (\n'
           '  id int,\n'
           '  -- @renamed-from "purchasedCreditPacks"\n'
           '  -- another comment line\n'
           '  credit_packs int\n'
           ');')
    assert renames(sql) == [("column", "app", "users", "purchasedCreditPacks", "credit_packs", 3)]


def test_renamed_from_before_a_table_names_the_table_even_on_one_line():
    assert renames("-- @renamed-from old_t\nCREATE TABLE new_t (id int);") == [
        ("table", "public", None, "old_t", "new_t", 1)]
    assert renames('CREATE TABLE "New" ( -- @renamed-from "Old"\n id int\n);') == [
        ("table", "public", None, "Old", "New", 1)]
    assert renames("-- @renamed-from app.old_t\nCREATE TABLE app.new_t (\n id int\n);") == [
        ("table", "app", None, "old_t", "new_t", 1)]


def test_renamed_from_has_a_second_spelling():
    """`-- @renamed from=<old>`, as other schema tools write it, is the same directive."""
    assert renames('CREATE TABLE users (\n  id int,\n  username text -- @renamed from="UserName"\n);') == [
        ("column", "public", "users", "UserName", "username", 3)]
    assert renames("-- @renamed from = old_t\nCREATE TABLE new_t (id int);") == [
        ("table", "public", None, "old_t", "new_t", 1)]
    with pytest.raises(SourceError, match=r"expected '-- @renamed from=<old name>'"):
        load_source(["CREATE TABLE t (\n  b int -- @renamed old\n);"])


def test_renamed_from_bare_names_fold_to_lower_case_like_postgresql():
    assert renames("CREATE TABLE t (\n  b int -- @renamed-from OldName\n);")[0][3] == "oldname"


def test_renamed_from_on_constraints_and_indexes():
    sql = ('CREATE TABLE t (\n'
           '  a int,\n'
           '  CONSTRAINT t_a_pos CHECK (a > 0), -- @renamed-from a_positive\n'
           '  b int CONSTRAINT t_b_key UNIQUE -- @renamed-from nope\n'
           ');\n'
           '-- @renamed-from t_a_index\n'
           'CREATE INDEX t_a_idx ON t (a);\n'
           '-- @renamed-from t_fk_old\n'
           'ALTER TABLE t\n'
           '  ADD CONSTRAINT t_fk FOREIGN KEY (a) REFERENCES t (a);\n'
           'ALTER TABLE t ADD CONSTRAINT t_b_pos CHECK (b > 0); -- @renamed-from b_pos\n')
    with pytest.raises(SourceError) as ei:  # line 4 holds a column and its named constraint
        load_source([sql])
    assert ei.value.line == 4 and "ambiguous" in ei.value.message
    sql = sql.replace(" -- @renamed-from nope", "")
    assert renames(sql) == [
        ("constraint", "public", "t", "a_positive", "t_a_pos", 3),
        ("index", "public", None, "t_a_index", "t_a_idx", 6),
        ("constraint", "public", "t", "t_fk_old", "t_fk", 8),
        ("constraint", "public", "t", "b_pos", "t_b_pos", 11),
    ]


def test_renamed_from_index_takes_the_schema_of_its_table():
    assert renames("CREATE INDEX new_i ON app.t (a); -- @renamed-from old_i") == [
        ("index", "app", None, "old_i", "new_i", 1)]


def test_renamed_from_follows_search_path():
    sql = ["SET search_path TO app, public;",
           "CREATE TABLE t ( -- @renamed-from old_t\n a int\n);",
           "SELECT pg_catalog.set_config('search_path', 'other', false);",
           "CREATE TABLE u (\n  b int -- @renamed-from old_b\n);",
           "RESET search_path;\nCREATE TABLE w ( -- @renamed-from old_w\n c int\n);"]
    assert [(k, s, t) for k, s, t, *_ in renames(sql)] == [
        ("table", "app", None), ("column", "other", "u"), ("table", "public", None)]


@pytest.mark.parametrize("sql,line,match", [
    ("-- @renamed-from old\n\nCREATE TABLE t (a int);", 1, "attaches to nothing"),
    ("CREATE TABLE t (a int);\n-- @renamed-from old\n", 2, "attaches to nothing"),
    ("CREATE TABLE t (a int);\nCOMMENT ON TABLE t IS 'x'; -- @renamed-from old", 2, "attaches to nothing"),
    ("CREATE TABLE t (\n  a int\n); -- @renamed-from old", 3, "attaches to nothing"),
    ("CREATE TABLE t (a int, b int); -- @renamed-from old", 1, "ambiguous"),
    ("CREATE TABLE t (\n  a int, b int -- @renamed-from old\n);", 2, "ambiguous"),
    ("CREATE TABLE t (\n  a int,\n  CHECK (a > 0) -- @renamed-from old\n);", 3, "give it a name"),
    ("CREATE INDEX ON t (a); -- @renamed-from old", 1, "give it a name"),
    ("CREATE VIEW v AS SELECT 1; -- @renamed-from old_v", 1, "not to view public.v"),
    ("CREATE TABLE t ( -- @renamed-from other.old\n a int\n);", 1, "another schema"),
    ("CREATE TABLE t (\n  a int -- @renamed-from t.old\n);", 2, "without its table"),
    ("CREATE TABLE t (\n  a int -- @renamed-from\n);", 2, "expected '-- @renamed-from <old name>'"),
    ("CREATE TABLE t (\n  a int -- @renamed-from x y\n);", 2, "expected '-- @renamed-from <old name>'"),
    ("CREATE TABLE t (\n  a int -- @renamed-from a\n);", 2, "current name"),
    ("CREATE TABLE t (\n  a int -- @renamed-from \"unterminated\n);", 2, "expected a name"),
    ("ALTER TABLE t\n  -- @renamed-from x\n  ADD CONSTRAINT c CHECK (a > 0), ADD CONSTRAINT d CHECK (a < 9);", 2, "ambiguous"),
    ("-- @renamed-from x\nALTER TABLE t ADD COLUMN a int, ADD COLUMN b int;", 1, "ambiguous"),
    ("CREATE TABLE t (\n  a int -- @renamed-from x\n);\nCREATE TABLE t2 (\n  a int\n);\n"
     "CREATE TABLE t (\n  a int -- @renamed-from y\n);", 8, "already has -- @renamed-from x"),
])
def test_renamed_from_errors(sql, line, match):
    e = error([sql], match)
    assert (e.file, e.line) == ("<sql 1>", line)


def test_directives_in_strings_and_block_comments_are_not_directives():
    sql = ("CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $$\n"
           "  SELECT '-- @renamed-from nothing'; -- @whatever inside the body\n$$;\n"
           "/* -- @unknown in a block comment */\n"
           "COMMENT ON TABLE t IS '-- @drop table x';\n")
    src = load_source([sql])
    assert src.renames == () and src.drops == () and len(src.statements) == 2


def test_unknown_directive_is_an_error():
    e = error(["CREATE TABLE t (a int);\n-- @rename-from x\nCREATE TABLE u (b int);"])
    assert e.line == 2 and "unknown directive '-- @rename-from'" in e.message
    assert load_source(["-- mail me at x@example.com\n-- @ is just a sign\nCREATE TABLE t (a int);"]).statements


def test_directives_can_be_stacked():
    src = load_source(["CREATE TABLE t (\n"
                       "  -- @renamed-from old_b\n"
                       "  -- @allow rewrites_table\n"
                       "  b bigint\n"
                       ");"])
    assert src.renames == (Rename("column", "public", "t", "old_b", "b", "<sql 1>", 2),)
    assert src.allowed == (("column:public.t.b", "rewrites_table"),)


# ---------------------------------------------------------------------------- @allow and @drop


def test_allow_object_ids():
    src = load_source(["-- @allow blocks_writes\n"
                       "CREATE TABLE app.t (\n"
                       "  a int, -- @allow rewrites_table, may_fail_on_existing_data\n"
                       "  CONSTRAINT t_a CHECK (a > 0) -- @allow may_fail_on_existing_data\n"
                       ");\n"
                       "CREATE INDEX t_i ON app.t (a); -- @allow index_build\n"
                       "CREATE TYPE mood AS ENUM ('a'); -- @allow deletes_data\n"
                       "-- @allow extension_change\n"
                       "CREATE EXTENSION pgcrypto;\n"
                       "ALTER TABLE app.t ALTER COLUMN a TYPE bigint; -- @allow rewrites_table\n"])
    assert src.allowed == (
        ("table:app.t", "blocks_writes"),
        ("column:app.t.a", "rewrites_table"),
        ("column:app.t.a", "may_fail_on_existing_data"),
        ("constraint:app.t.t_a", "may_fail_on_existing_data"),
        ("index:app.t_i", "index_build"),
        ("type:public.mood", "deletes_data"),
        ("extension:pgcrypto", "extension_change"),
    )


def test_allow_errors():
    assert error(["CREATE TABLE t ( -- @allow\n a int\n);"]).message.startswith("expected '-- @allow")
    assert "not a hazard name" in error(["CREATE TABLE t ( -- @allow Rewrites!\n a int\n);"]).message
    assert "attaches to nothing" in error(["GRANT SELECT ON t TO PUBLIC; -- @allow authz_change"]).message


def test_drop_directives():
    src = load_source(["-- @drop table public.legacy\n"
                       "-- @drop table old_stuff\n"
                       "CREATE TABLE users (\n"
                       "  id int -- @drop column public.users.old_flag\n"
                       ");\n"
                       '-- @drop column "Users"."Old Flag"\n'
                       "-- @drop index app.users_old_idx\n"
                       "-- @drop constraint users.users_old_check\n"
                       "-- @drop schema scratch\n"
                       "-- @drop extension hstore\n"
                       "-- @drop materialized view reports.daily\n"
                       "-- @drop table public.legacy\n"])
    assert src.drops == ("table:public.legacy", "table:public.old_stuff", "column:public.users.old_flag",
                         "column:public.Users.Old Flag", "index:app.users_old_idx",
                         "constraint:public.users.users_old_check", "schema:scratch", "extension:hstore",
                         "materialized_view:reports.daily")
    assert len(src.statements) == 1


@pytest.mark.parametrize("line,match", [
    ("-- @drop", "expected '-- @drop <kind> <qualified name>'"),
    ("-- @drop table", "expected '-- @drop <kind> <qualified name>'"),
    ("-- @drop tabel public.x", "unknown kind 'tabel'"),
    ("-- @drop column users", "expected '-- @drop <kind>"),
    ("-- @drop table a.b.c", "expected '-- @drop <kind>"),
    ("-- @drop schema a.b", "expected '-- @drop <kind>"),
    ("-- @drop table x y", "expected '-- @drop <kind>"),
])
def test_drop_errors(line, match):
    e = error(["CREATE TABLE t (a int);\n" + line + "\n"], match)
    assert e.line == 2


# ---------------------------------------------------------------------------- @data blocks


def test_data_blocks_are_extracted_and_excluded_from_statements():
    sql = ("CREATE TABLE t (a int, b int);\n"
           "-- @data backfill_b after\n"
           "\n"
           "UPDATE t SET b = a * 2 WHERE b IS NULL;\n"
           "INSERT INTO t VALUES (1, 2); -- @renamed-from is just text here\n"
           "-- @end\n"
           "CREATE INDEX t_b ON t (b);\n"
           "-- @data seed_before before\n"
           "DELETE FROM t WHERE a < 0;\n"
           "-- @end")
    src = load_source([sql])
    assert [s.kind for s in src.statements] == ["CreateStmt", "IndexStmt"]
    assert [s.line for s in src.statements] == [1, 7]
    body = "UPDATE t SET b = a * 2 WHERE b IS NULL;\nINSERT INTO t VALUES (1, 2); -- @renamed-from is just text here"
    assert src.data_blocks == (
        DataBlock("backfill_b", "after", body, hashlib.sha256(body.encode()).hexdigest(), "<sql 1>", 4),
        DataBlock("seed_before", "before", "DELETE FROM t WHERE a < 0;",
                  hashlib.sha256(b"DELETE FROM t WHERE a < 0;").hexdigest(), "<sql 1>", 9),
    )
    assert src.renames == ()
    assert "UPDATE" not in src.script() and "DELETE" not in src.script()
    assert src.locate(2) == ("<sql 1>", 7)


def test_data_block_end_inside_a_string_does_not_close_it():
    sql = ("-- @data tricky before\n"
           "UPDATE t SET note = $$\n-- @end\n$$;\n"
           "-- @end\n"
           "CREATE TABLE t (note text);\n")
    src = load_source([sql])
    assert src.data_blocks[0].sql == "UPDATE t SET note = $$\n-- @end\n$$;"
    assert [s.line for s in src.statements] == [6]


@pytest.mark.parametrize("sql,line,match", [
    ("CREATE TABLE t (a int);\n-- @data fill before\nUPDATE t SET a = 1;\n", 2, "has no -- @end"),
    ("CREATE TABLE t (a int);\n-- @end\n", 2, "-- @end without a -- @data block"),
    ("-- @data fill sometime\nSELECT 1;\n-- @end\n", 1, "before|after"),
    ("-- @data fill\nSELECT 1;\n-- @end\n", 1, "before|after"),
    ("-- @data x before\nSELECT 1;\n-- @end\n-- @data x after\nSELECT 2;\n-- @end\n", 4, "duplicate data block name 'x'"),
    ("-- @data a before\n-- @data b before\nSELECT 1;\n-- @end\n", 2, "inside the data block 'a'"),
    ("-- @data empty before\n\n   \n-- @end\n", 1, "is empty"),
    ("CREATE TABLE t (a int); -- @data x before\nSELECT 1;\n-- @end\n", 1, "on a line of its own"),
    ("CREATE TABLE t (\n  a int,\n-- @data x before\nUPDATE t SET a = 1;\n-- @end\n  b int\n);", 3, "inside a statement"),
    ("-- @data x before\nSELECT 1;\n-- @end trailing\n", 3, "takes no arguments"),
])
def test_data_block_errors(sql, line, match):
    e = error([sql], match)
    assert e.line == line


def test_data_block_names_are_unique_across_files(tmp_path):
    write(tmp_path, "sql/a.sql", "-- @data fill before\nSELECT 1;\n-- @end\n")
    write(tmp_path, "sql/b.sql", "CREATE TABLE t (a int);\n\n-- @data fill after\nSELECT 2;\n-- @end\n")
    e = error(str(tmp_path / "sql"), "duplicate data block name 'fill'")
    assert (e.file, e.line) == (str(tmp_path / "sql/b.sql"), 3)
    assert "a.sql:2" in e.message


# ---------------------------------------------------------------------------- the example application


def test_example_schema_loads_and_declares_the_credit_packs_rename():
    src = load_source(str(REPO / "sql" / "schema"))
    assert isinstance(src, Source)
    assert [(r.kind, r.schema, r.table, r.old, r.new) for r in src.renames] == [
        ("column", "public", "users", "purchased_credit_packs", "purchasedCreditPacks")]
    assert src.renames[0].file.endswith("10_users.sql")
    kinds = {s.kind for s in src.statements}
    assert {"CreateExtensionStmt", "CreateStmt", "IndexStmt", "AlterTableStmt", "CommentStmt"} <= kinds
    tables = {s.text.split("(")[0].split()[-1] for s in src.statements if s.kind == "CreateStmt"}
    assert tables == {'"bazaar-vid_user"', "users", '"bazaar-vid_project"', "models", '"bazaar-vid_exports"',
                      '"bazaar-vid_export_analytics"', "videos", '"creditTransactions"'}
    assert src.sha256 == load_source(str(REPO / "sql")).sha256  # sql/smoke and sql/mask are not part of the schema
    assert src.data_blocks == () and src.drops == ()


def test_example_smoke_checks_are_single_read_only_selects():
    files = sorted((REPO / "sql" / "smoke").glob("*.sql"))
    assert 3 <= len(files) <= 5
    for f in files:
        stmts = pglast.parse_sql(f.read_text())
        assert len(stmts) == 1, f
        assert type(stmts[0].stmt).__name__ == "SelectStmt", f
        assert stmts[0].stmt.intoClause is None and stmts[0].stmt.lockingClause is None, f


def test_old_schema_is_not_a_desired_state():
    # examples/old_schema.sql holds seed rows: the tool must refuse it as sql/, and name the INSERT's line.
    path = REPO / "examples" / "old_schema.sql"
    text = path.read_text()
    e = error(str(path), "INSERT (InsertStmt)")
    first_insert = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.startswith("INSERT"))
    assert e.line == first_insert
    assert '"purchased_credit_packs" integer' in text and "CREATE EXTENSION" not in text


# --------------------------------------------------------------------------- loud, not lost


@pytest.mark.parametrize("sql,line,words", [
    ("CREATE TABLE pgconverge.t (id int);", 1, "table pgconverge.t is in the schema pgconverge"),
    ("CREATE SCHEMA pgconverge;", 1, "the schema pgconverge holds pgconverge's own ledger"),
    ("SET search_path = pgconverge;\nCREATE TABLE t (id int);", 2, "table pgconverge.t is in the schema"),
    ("CREATE TABLE a (id int);\nCREATE INDEX i ON pgconverge.runs (id);", 2, "in the schema pgconverge"),
])
def test_objects_in_the_ledger_schema_are_refused_with_file_and_line(sql, line, words):
    with pytest.raises(SourceError) as e:
        load_source([sql])
    assert e.value.line == line and words in e.value.message


@pytest.mark.parametrize("ident,size", [("a" * 64, 64), ('"' + "é" * 32 + '"', 64), ('"' + "X" * 70 + '"', 70)])
def test_identifiers_postgresql_would_truncate_are_refused(ident, size):
    with pytest.raises(SourceError) as e:
        load_source([f"CREATE TABLE ok (id int);\nCREATE TABLE t (\n  {ident} int\n);"])
    assert e.value.line == 3
    assert f"is {size} bytes long" in e.value.message and "63 bytes" in e.value.message


def test_identifiers_of_63_bytes_and_long_strings_are_fine():
    src = load_source(["CREATE TABLE t (" + "b" * 63 + " int DEFAULT length('" + "x" * 100 + "'));\n"
                       "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 AS " + "c" * 80 + " $$;"])
    assert len(src.statements) == 2


def test_renamed_from_in_a_block_comment_on_the_definitions_line():
    assert renames("CREATE TABLE t (\n  a int /* @renamed-from b */,\n  c int\n);") == [
        ("column", "public", "t", "b", "a", 2)]
    assert renames("CREATE TABLE t (\n  a int /* @author someone */\n);") == []  # other tools' tags


def test_renamed_from_on_an_enum_value():
    sql = "CREATE TYPE app.status AS ENUM (\n  'active',\n  'waiting', -- @renamed from=pending\n  'done' /* @renamed-from 'old''s' */\n);"
    assert renames(sql) == [("enum_value", "app", "status", "pending", "waiting", 3),
                            ("enum_value", "app", "status", "old's", "done", 4)]
    with pytest.raises(SourceError, match="that is the current value"):
        load_source(["CREATE TYPE s AS ENUM (\n  'a' -- @renamed-from a\n);"])
    # a value on a line of its own, its rename on the line above
    assert renames("CREATE TYPE s AS ENUM (\n  -- @renamed-from old\n  'new'\n);") == [
        ("enum_value", "public", "s", "old", "new", 2)]


def test_row_level_security_switched_off_is_a_definition_too():
    """DISABLE and NO FORCE declare a state as ENABLE and FORCE do (the shadow reads which one won)."""
    src = load_source(["CREATE TABLE t (id int);\nALTER TABLE t ENABLE ROW LEVEL SECURITY;\n"
                       "ALTER TABLE t DISABLE ROW LEVEL SECURITY;\nALTER TABLE t NO FORCE ROW LEVEL SECURITY;"])
    assert [s.kind for s in src.statements] == ["CreateStmt", "AlterTableStmt", "AlterTableStmt", "AlterTableStmt"]


def test_a_rename_on_an_enums_line_names_what_stands_just_before_it():
    assert renames("CREATE TYPE order_status /* @renamed from=order_state */ AS ENUM ('pending', 'shipped');") == [
        ("type", "public", None, "order_state", "order_status", 1)]
    assert renames("CREATE TYPE s AS ENUM ('a', 'b' /* @renamed from=c */, 'd');") == [
        ("enum_value", "public", "s", "c", "b", 1)]
    assert renames("CREATE TYPE s AS ENUM ( -- @renamed from=old_s\n  'a'\n);") == [
        ("type", "public", None, "old_s", "s", 1)]
