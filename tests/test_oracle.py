"""The pg_dump oracle: pure normalization on dump texts, and real dumps of real databases."""

from __future__ import annotations

import subprocess
import textwrap

import psycopg
import pytest

from pgconverge import oracle
from pgconverge.exec.runner import find_tool

HEADER = "--\n-- Name: {name}; Type: {type}; Schema: {schema}; Owner: {owner}\n--\n\n"


def entry(name: str, type_: str, schema: str, body: str, owner: str = "-") -> str:
    return HEADER.format(name=name, type=type_, schema=schema, owner=owner) + textwrap.dedent(body) + "\n\n"


PREAMBLE = "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc\n\nSET statement_timeout = 0;\n" \
           "SELECT pg_catalog.set_config('search_path', '', false);\n\n"


def test_column_order_inside_a_table_is_ignored_but_not_a_type():
    a = PREAMBLE + entry("t", "TABLE", "app", "CREATE TABLE app.t (\n    a integer,\n    b text\n);")
    b = PREAMBLE + entry("t", "TABLE", "app", "CREATE TABLE app.t (\n    b text,\n    a integer\n);")
    assert oracle.compare(oracle.parse_dump(a), oracle.parse_dump(b)) == []
    e1 = entry("mood", "TYPE", "app", "CREATE TYPE app.mood AS ENUM (\n    'a',\n    'b'\n);")
    e2 = entry("mood", "TYPE", "app", "CREATE TYPE app.mood AS ENUM (\n    'b',\n    'a'\n);")
    diff = oracle.compare(oracle.parse_dump(e1), oracle.parse_dump(e2))
    assert [d.object for d in diff] == ["type app.mood"]


def test_noise_owners_and_entry_order_are_ignored():
    a = PREAMBLE + entry("t", "TABLE", "app", "CREATE TABLE app.t (\n    a integer\n);\n"
                                               "ALTER TABLE app.t OWNER TO alice;", owner="alice") \
        + entry("v", "VIEW", "app", "CREATE VIEW app.v AS\n SELECT 1 AS x;")
    b = "\\restrict other\n" + entry("v", "VIEW", "app", "CREATE VIEW app.v AS\n SELECT 1 AS x;") \
        + entry("t", "TABLE", "app", "SET default_table_access_method = heap;\nCREATE TABLE app.t (\n    a integer\n);",
                owner="bob")
    assert oracle.compare(oracle.parse_dump(a), oracle.parse_dump(b)) == []


def test_a_difference_names_the_object_and_the_lines():
    a = entry("t", "TABLE", "app", "CREATE TABLE app.t (\n    a integer\n)\nWITH (fillfactor='70');")
    b = entry("t", "TABLE", "app", "CREATE TABLE app.t (\n    a integer\n);")
    (d,) = oracle.compare(oracle.parse_dump(a), oracle.parse_dump(b))
    assert d.object == "table app.t"
    assert "-WITH (fillfactor='70')" in d.lines()
    assert "table app.t:" in oracle.report([d])


def test_missing_and_extra_objects_are_differences():
    a = entry("i", "INDEX", "app", "CREATE INDEX i ON app.t USING btree (a);")
    b = entry("j", "INDEX", "app", "CREATE INDEX j ON app.t USING btree (a);")
    diff = oracle.compare(oracle.parse_dump(a), oracle.parse_dump(b))
    assert [(d.object, bool(d.expected), bool(d.actual)) for d in diff] == [
        ("index app.i", True, False), ("index app.j", False, True)]


def test_function_bodies_with_semicolons_stay_one_statement():
    body = "CREATE FUNCTION app.f() RETURNS integer\n    LANGUAGE plpgsql\n    AS $$\nBEGIN\n  RETURN 1;\nEND;\n$$;"
    dump = oracle.parse_dump(entry("f()", "FUNCTION", "app", body))
    assert len(dump.entries[0].statements) == 1


def test_scope_keeps_managed_schemas_only():
    text = (entry("app", "SCHEMA", "-", "CREATE SCHEMA app;") + entry("t", "TABLE", "app", "CREATE TABLE app.t (\n);")
            + entry("runs", "TABLE", "pgconverge", "CREATE TABLE pgconverge.runs (\n);")
            + entry("SCHEMA app", "COMMENT", "-", "COMMENT ON SCHEMA app IS 'x';")
            + entry("pgcrypto", "EXTENSION", "-", "CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA other;")
            + entry("other", "SCHEMA", "-", "CREATE SCHEMA other;"))
    dump = oracle.parse_dump(text)
    assert {e.label for e in oracle.scoped(dump).entries} == {
        "schema app", "table app.t", "comment on schema app", "extension other.pgcrypto", "schema other"}
    assert {e.label for e in oracle.scoped(dump, only_schemas=("app",)).entries} == {
        "schema app", "table app.t", "comment on schema app"}
    assert {e.label for e in oracle.scoped(dump, exclude_schemas=("other",)).entries} == {
        "schema app", "table app.t", "comment on schema app"}


# --------------------------------------------------------------------------- real dumps


def pg_dump(conninfo: str) -> str:
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    args = [find_tool("pg_dump"), "--schema-only", "--no-owner", "-h", params["host"], "-p", str(params["port"]),
            "-U", params["user"], params["dbname"]]
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


SCHEMA = """
    CREATE SCHEMA app;
    CREATE TYPE app.mood AS ENUM ('a', 'b');
    CREATE TABLE app.t (id serial PRIMARY KEY, {cols}, at timestamptz DEFAULT now()) WITH (fillfactor = {ff});
    CREATE INDEX ON app.t (name) WHERE name IS NOT NULL;
    CREATE VIEW app.v AS SELECT id, name FROM app.t;
    CREATE FUNCTION app.f(x int) RETURNS int LANGUAGE sql AS $$ SELECT x + 1 $$;
    GRANT SELECT ON app.t TO PUBLIC;
"""


@pytest.mark.parametrize("cols,ff,equal", [
    ("m app.mood, name text", 70, True),  # the same schema, columns in another order
    ("name text, m app.mood", 80, False),  # a storage parameter the planner's model might not read
])
def test_real_dumps(make_db, cols, ff, equal):
    a, b = make_db(), make_db()
    with psycopg.connect(a, autocommit=True) as c:
        c.execute(SCHEMA.format(cols="name text, m app.mood", ff=70))
    with psycopg.connect(b, autocommit=True) as c:
        c.execute(SCHEMA.format(cols=cols, ff=ff))
    diff = oracle.compare(oracle.scoped(oracle.parse_dump(pg_dump(a))), oracle.scoped(oracle.parse_dump(pg_dump(b))))
    assert (diff == []) is equal
    if not equal:
        assert [d.object for d in diff] == ["table app.t"]
        assert "+WITH (fillfactor='80')" in diff[0].lines()
