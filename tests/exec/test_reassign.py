"""Handing a big schema from one role to another (the scratch databases' hand-back, a rehearsal
base's take-over) stays inside the server's lock table, where one REASSIGN OWNED does not."""

from __future__ import annotations

import secrets

import psycopg
import pytest

from pgconverge.exec import scratch
from pgconverge.exec.runner import LocalRunner


def test_a_schema_bigger_than_the_lock_table_is_handed_back(db, conn):
    slots = int(conn.execute("SHOW max_locks_per_transaction").fetchone()[0]) * (
        int(conn.execute("SHOW max_connections").fetchone()[0])
        + int(conn.execute("SHOW max_prepared_transactions").fetchone()[0]))
    # a table and its eight indexes: nine locks each when its owner changes, twice the lock table
    # (which has some room beyond its nominal size)
    tables = slots // 4
    conn.execute("CREATE ROLE pgc_big_owner")
    try:
        conn.execute("GRANT CREATE ON SCHEMA public TO pgc_big_owner")
        for start in range(0, tables, 100):
            conn.execute("SET ROLE pgc_big_owner; " + "".join(
                f"CREATE TABLE big_{i} (a int, b int, c int, d int);"
                + "".join(f"CREATE INDEX ON big_{i} ({cols});" for cols in ("a", "b", "c", "d", "a, b", "c, d", "b, c", "d, a"))
                for i in range(start, min(start + 100, tables)))
                + " RESET ROLE;")
        with pytest.raises(psycopg.errors.OutOfMemory, match="out of shared memory"):
            conn.execute("REASSIGN OWNED BY pgc_big_owner TO CURRENT_USER")  # what a single REASSIGN meets
        scratch.reassign(LocalRunner(db), conn.info.dbname, "pgc_big_owner", None)
        owners = conn.execute("SELECT pg_get_userbyid(relowner), count(*) FROM pg_class "
                              "WHERE relname LIKE 'big\\_%' GROUP BY 1").fetchall()
        assert owners == [(conn.info.user, tables * 9)]
    finally:
        conn.execute("DROP OWNED BY pgc_big_owner")
        conn.execute("DROP ROLE pgc_big_owner")


def test_our_role_names_are_put_back_as_the_deploy_roles_only_where_they_stand_alone():
    from pgconverge.exec.scratch import Scratch

    swap = Scratch._swap
    text = 'GRANT SELECT ON TABLE app.t TO pgconverge_scratch_ab12;\nALTER TABLE app.u OWNER TO "pgconverge_scratch_ab12x";\n'
    assert swap(text, "pgconverge_scratch_ab12", "deploy") == (
        'GRANT SELECT ON TABLE app.t TO deploy;\nALTER TABLE app.u OWNER TO "pgconverge_scratch_ab12x";\n')
    untouched = "CREATE TABLE app.t (id integer);\n" * 1000
    assert swap(untouched, "pgconverge_scratch_ab12", "deploy") == untouched


def _owners(box) -> set[str]:
    return set(box.admin.query_json(
        "SELECT coalesce(json_agg(DISTINCT pg_get_userbyid(relowner)), '[]') FROM pg_class WHERE relname = 't'"))


def test_the_hand_back_is_skipped_where_no_acl_would_show_the_owner(db):
    box = scratch.create(LocalRunner(db), "pgconverge_shadow_" + secrets.token_hex(6))
    try:
        box.runner.run_script(box.script("CREATE SCHEMA s; CREATE TABLE s.t (id int); CREATE FUNCTION s.f() RETURNS int "
                                         "LANGUAGE sql AS 'SELECT 1'; CREATE TYPE s.e AS ENUM ('a');\n"))
        box.hand_back()
        assert _owners(box) == {box.role}  # nothing compared would differ: left as it is
    finally:
        box.drop()


@pytest.mark.parametrize("grant", [
    "GRANT SELECT ON s.t TO PUBLIC",
    "GRANT SELECT (id) ON s.t TO PUBLIC",
    "REVOKE ALL ON s.t FROM CURRENT_USER",  # the owner's own entry only
    "GRANT USAGE ON SCHEMA s TO PUBLIC",
    "REVOKE EXECUTE ON FUNCTION s.f() FROM PUBLIC",
    "REVOKE USAGE ON TYPE s.e FROM PUBLIC",
    "SELECT lo_create(0) IS NULL; GRANT SELECT ON LARGE OBJECT 4242 TO PUBLIC",
])
def test_an_acl_anywhere_hands_everything_back(db, grant):
    box = scratch.create(LocalRunner(db), "pgconverge_shadow_" + secrets.token_hex(6))
    try:
        grant = grant.replace("lo_create(0)", "lo_create(4242)")
        box.runner.run_script(box.script("CREATE SCHEMA s; CREATE TABLE s.t (id int); CREATE FUNCTION s.f() RETURNS int "
                                         f"LANGUAGE sql AS 'SELECT 1'; CREATE TYPE s.e AS ENUM ('a'); {grant};\n"))
        box.hand_back()
        assert _owners(box) == {box.deploy_user}
    finally:
        box.drop()
