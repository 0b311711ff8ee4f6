"""Rehearsal bases against a real PostgreSQL: the second proof of a schema copies the first one's
restore, a copy proves what a restore proves, a base that no longer holds its schema is judged again
on a fresh restore, and nothing of a rehearsal can reach a base."""

from __future__ import annotations

import json

import psycopg
import pytest

import pgconverge
from pgconverge import proof
from pgconverge.exec import bases
from pgconverge.proof import NotProved
from pgconverge.source import SourceError
from tests.test_proof import lossy_planner  # noqa: F401 (a fixture)

BEFORE = "CREATE TABLE t (id int PRIMARY KEY, name text); CREATE VIEW v AS SELECT id FROM t;"
SQL = ["CREATE TABLE t (id int PRIMARY KEY, name text, born date);", "CREATE INDEX t_name ON t (name);",
       "CREATE VIEW v AS SELECT id FROM t;"]
ALL = dict(allow_hazards="all", drops=["*"])


def rows(conn, query, *args):
    return conn.execute(query, args or None).fetchall()


def listed(conn, made: tuple[str, ...] = ("restore",)) -> list[tuple[str, str | None]]:
    """The rehearsals left and the bases `made` so ("restore", "shadow"): a plan that builds its
    shadow keeps it as a base of sql/'s schema too."""
    got = rows(conn, "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
                     "WHERE datname LIKE 'pgconverge\\_base\\_%' OR datname LIKE 'pgconverge\\_rehearsal\\_%' ORDER BY 1")
    return [(n, m) for n, m in got if not n.startswith(bases.BASE_PREFIX) or json.loads(m)["made"] in made]


EVERY = ("restore", "shadow")


@pytest.fixture
def admin(cluster):
    """A superuser connection to the server's maintenance database, with no base left from elsewhere."""
    with psycopg.connect(cluster.conninfo("postgres"), autocommit=True) as c:
        def clear():
            for (name, _) in listed(c, EVERY):
                c.execute(psycopg.sql.SQL("DROP DATABASE {} WITH (FORCE)").format(psycopg.sql.Identifier(name)))
            for (role,) in rows(c, "SELECT rolname FROM pg_roles WHERE rolname LIKE 'pgconverge\\_base\\_%'"):
                c.execute(psycopg.sql.SQL("DROP ROLE {}").format(psycopg.sql.Identifier(role)))
        clear()
        yield c
        clear()


def plan(db, tmp_path, n: int, **kw):
    """A plan made with the caches on (bases included), the plan cache of its own: so it is proved."""
    return pgconverge.plan(db, SQL, cache_dir=tmp_path / f"cache{n}", **ALL, **kw)


def test_the_second_proof_copies_the_first_restore(make_db, admin, tmp_path):
    db = make_db()
    with psycopg.connect(db, autocommit=True) as c:
        c.execute(BEFORE)
    first = plan(db, tmp_path, 1)
    assert (first.proof.status, first.proof.copy) == (proof.PROVED, proof.RESTORED)
    assert first.to_json()["proof"]["copy"] == "restored"
    (name, marker), = listed(admin)  # one base, and no rehearsal left
    assert name.startswith(bases.BASE_PREFIX)
    second = plan(db, tmp_path, 2)
    assert (second.proof.status, second.proof.copy) == (proof.PROVED, proof.TEMPLATE)
    assert "copied from a base restored earlier" in second.proof.summary()
    assert [s.sql for s in second.steps] == [s.sql for s in first.steps]
    assert listed(admin) == [(name, marker)]
    pgconverge.apply(db, second, cache_dir=tmp_path / "cache2", **ALL)
    assert pgconverge.plan(db, SQL, cache_dir=tmp_path / "cache3", **ALL).is_empty


def test_publishing_a_base_leaves_the_targets_plan_cache_valid(make_db, admin, tmp_path):
    """The base's role is one of ours: it is not part of the target's catalog fingerprint, so the
    plan the first run cached is served to the next one."""
    db = make_db()
    with psycopg.connect(db, autocommit=True) as c:
        c.execute(BEFORE)
    first = plan(db, tmp_path, 1)
    assert len(listed(admin)) == 1
    again = plan(db, tmp_path, 1)
    assert again.plan_hash == first.plan_hash and again.proof.copy == proof.RESTORED  # the cached plan
    assert len(list((tmp_path / "cache1").glob("plan-*.pickle"))) == 1


def test_databases_of_one_schema_share_a_base(make_db, admin, tmp_path):
    """A fleet's databases with the same schema: one restore for all of them."""
    dbs = [make_db() for _ in range(3)]
    for db in dbs:
        with psycopg.connect(db, autocommit=True) as c:
            c.execute(BEFORE)
    copies = [plan(db, tmp_path, i).proof.copy for i, db in enumerate(dbs)]
    assert copies == [proof.RESTORED, proof.TEMPLATE, proof.TEMPLATE]
    assert len(listed(admin)) == 1


def test_a_base_is_out_of_reach_of_a_rehearsal(cluster, make_db, admin, tmp_path):
    db = make_db()
    with psycopg.connect(db, autocommit=True) as c:
        c.execute(BEFORE)
    plan(db, tmp_path, 1)
    (name, _), = listed(admin)
    owner, public_connect = rows(admin, "SELECT pg_get_userbyid(datdba), has_database_privilege('public', oid, "
                                        "'CONNECT') FROM pg_database WHERE datname = %s", name)[0]
    assert owner == rows(admin, "SELECT current_user")[0][0] and public_connect is False
    role = json.loads(listed(admin)[0][1])["role"]
    login, = rows(admin, "SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", role)[0]
    assert login is False
    # the base role owns the objects, and no database (so a copy's REASSIGN OWNED moves nothing else)
    assert rows(admin, "SELECT count(*) FROM pg_database WHERE datdba = (SELECT oid FROM pg_roles "
                       "WHERE rolname = %s)", role) == [(0,)]
    with psycopg.connect(cluster.conninfo(name), autocommit=True) as c:
        assert rows(c, "SELECT tableowner FROM pg_tables WHERE tablename = 't'") == [(role,)]
    # no scratch role of the rehearsal is left either
    assert rows(admin, "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'pgconverge\\_scratch\\_%'") == [(0,)]


def test_a_copys_role_holds_its_bases_objects_in_its_own_copy_only(cluster, make_db, admin, tmp_path):
    """A template copy's scratch role is a member of the base's role: it changes the copy's objects
    where they stand, and may connect neither to the base nor to another copy of it."""
    import secrets

    from pgconverge.exec import scratch
    from pgconverge.exec.runner import LocalRunner, PsqlError

    db = make_db()
    with psycopg.connect(db, autocommit=True) as c:
        c.execute(BEFORE)
    plan(db, tmp_path, 1)
    (name, marker), = listed(admin)
    base = bases.Base(name, json.loads(marker)["role"], "")
    server = LocalRunner(db)
    one = scratch.create(server, "pgconverge_rehearsal_" + secrets.token_hex(6), template=base.name, holder=base.role)
    two = scratch.create(server, "pgconverge_rehearsal_" + secrets.token_hex(6), template=base.name, holder=base.role)
    try:
        assert one.isolation == "scratch-role" and one.holder == base.role
        member_of = rows(admin, "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
                                "JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = %s", one.role)
        assert member_of == [(base.role,)]
        one.runner.run_script(one.script("ALTER TABLE t ADD COLUMN born date;\n"))  # the base's table, in place
        assert "born date" in one.as_deploy(one.admin.dump_schema())
        assert base.role not in one.as_deploy(one.admin.dump_schema())
        for elsewhere in (base.name, two.name):
            with pytest.raises(PsqlError, match="permission denied"):
                one.runner.for_database(elsewhere).query_text("SELECT 1")
    finally:
        one.drop()
        two.drop()
    with psycopg.connect(cluster.conninfo(base.name), autocommit=True) as c:  # the base is as it was
        assert rows(c, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'born'") == [(0,)]


def test_a_base_that_lost_its_schema_is_judged_again_on_a_restore(cluster, make_db, admin, tmp_path):
    """The key is the dump's hash, so a base differs from its schema only if someone changed it: the
    proof that fails on its copy is run again on a fresh restore, which counts, and is kept instead."""
    db = make_db()
    with psycopg.connect(db, autocommit=True) as c:
        c.execute(BEFORE)
    plan(db, tmp_path, 1)
    (name, marker), = listed(admin)
    with psycopg.connect(cluster.conninfo(name), autocommit=True) as c:
        c.execute("DROP VIEW v")  # the base no longer holds the target's schema
    again = plan(db, tmp_path, 2)
    assert (again.proof.status, again.proof.copy) == (proof.PROVED, proof.RESTORED)
    (name2, marker2), = listed(admin)
    assert marker2 != marker  # the changed base is gone, the fresh restore is the base now
    assert plan(db, tmp_path, 3).proof.copy == proof.TEMPLATE


def test_a_wrong_plan_is_refused_on_a_copy_as_on_a_restore(make_db, admin, tmp_path, request):
    db = make_db()
    with psycopg.connect(db, autocommit=True) as c:
        c.execute(BEFORE)
    plan(db, tmp_path, 1)
    request.getfixturevalue("lossy_planner")  # the planted fault, from here on
    with pytest.raises(NotProved, match="does not produce the declared schema"):
        plan(db, tmp_path, 2)
    assert [n for n, _ in listed(admin) if n.startswith(proof.REHEARSAL_PREFIX)] == []


def test_no_base_without_the_caches(make_db, admin, tmp_path):
    db = make_db()
    with psycopg.connect(db, autocommit=True) as c:
        c.execute(BEFORE)
    for n in (1, 2):
        got = pgconverge.plan(db, SQL, use_cache=False, **ALL)
        assert got.proof.copy == proof.RESTORED
    assert listed(admin, EVERY) == []


def test_default_privileges_are_always_restored(make_db, admin, tmp_path):
    """REASSIGN OWNED leaves default privileges with the base's role: such a schema gets no base."""
    db = make_db()
    with psycopg.connect(db, autocommit=True) as c:
        c.execute(BEFORE + " ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO PUBLIC;")
    sql = SQL + ["ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO PUBLIC;"]
    for n in (1, 2):
        got = pgconverge.plan(db, sql, cache_dir=tmp_path / f"c{n}", **ALL)
        assert (got.proof.status, got.proof.copy) == (proof.PROVED, proof.RESTORED)
    assert listed(admin, EVERY) == []  # nor is its shadow kept as one


def test_a_schema_that_grants_to_other_roles_gets_no_base(make_db, admin, tmp_path):
    """A base holding a grant to a role would keep DROP ROLE from dropping that role."""
    db = make_db()
    admin.execute("CREATE ROLE pgc_base_reader")
    try:
        with psycopg.connect(db, autocommit=True) as c:
            c.execute(BEFORE + " GRANT SELECT ON t TO pgc_base_reader;")
        sql = SQL + ["GRANT SELECT ON t TO pgc_base_reader;"]
        for n in (1, 2):
            got = pgconverge.plan(db, sql, cache_dir=tmp_path / f"c{n}", **ALL)
            assert (got.proof.status, got.proof.copy) == (proof.PROVED, proof.RESTORED)
        assert listed(admin, EVERY) == []  # nor is its shadow kept as one (the hand-back ran there)
        with psycopg.connect(db, autocommit=True) as c:
            c.execute("DROP OWNED BY pgc_base_reader")
    finally:
        admin.execute("DROP ROLE pgc_base_reader")  # nothing of ours holds it


def test_only_the_newest_bases_are_kept(make_db, admin, tmp_path):
    for i in range(bases.KEPT + 2):
        db = make_db()
        with psycopg.connect(db, autocommit=True) as c:
            c.execute(BEFORE + f" CREATE TABLE extra{i} (x int);")
        pgconverge.plan(db, SQL + [f"CREATE TABLE extra{i} (x int, y int);"], cache_dir=tmp_path / f"c{i}", **ALL)
    assert len(listed(admin, EVERY)) == bases.KEPT
    roles = rows(admin, "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'pgconverge\\_base\\_%'")[0][0]
    assert roles == bases.KEPT  # the roles of the dropped bases went with them


def test_a_converged_targets_next_proof_copies_the_shadow_of_its_sql(cluster, make_db, admin, tmp_path):
    """The plan that built sql/'s shadow kept it as a base of sql/'s schema: once the target converged
    to it, the proof of the next sql/ copies it instead of restoring the target's dump."""
    db = make_db()
    with psycopg.connect(db, autocommit=True) as c:
        c.execute(BEFORE)
    first = plan(db, tmp_path, 1)
    assert first.proof.copy == proof.RESTORED  # BEFORE was never a shadow here
    (shadow_base, marker), = listed(admin, ("shadow",))
    role = json.loads(marker)["role"]
    assert rows(admin, "SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", role) == [(False,)]
    owner, public_connect = rows(admin, "SELECT pg_get_userbyid(datdba), has_database_privilege('public', oid, "
                                        "'CONNECT') FROM pg_database WHERE datname = %s", shadow_base)[0]
    assert owner == rows(admin, "SELECT current_user")[0][0] and public_connect is False
    with psycopg.connect(cluster.conninfo(shadow_base), autocommit=True) as c:
        assert rows(c, "SELECT tableowner FROM pg_tables WHERE tablename = 't'") == [(role,)]
    pgconverge.apply(db, first, cache_dir=tmp_path / "cache1", **ALL)
    nxt = SQL + ["CREATE TABLE u (id int PRIMARY KEY, t_id int REFERENCES t);"]
    second = pgconverge.plan(db, nxt, cache_dir=tmp_path / "cache2", **ALL)
    assert (second.proof.status, second.proof.copy) == (proof.PROVED, proof.TEMPLATE)
    assert [s.kind for s in second.steps if s.kind == "create_table"] == ["create_table"]
    pgconverge.apply(db, second, cache_dir=tmp_path / "cache2", **ALL)
    assert pgconverge.plan(db, nxt, cache_dir=tmp_path / "cache3", **ALL).is_empty


def test_a_shadow_already_kept_is_dropped_and_a_failed_plan_keeps_none(make_db, admin, tmp_path):
    db = make_db()
    plan(db, tmp_path, 1)
    kept = listed(admin, ("shadow",))
    assert len(kept) == 1
    plan(db, tmp_path, 2)  # another cache: the same shadow built again, and dropped
    assert listed(admin, ("shadow",)) == kept
    assert rows(admin, "SELECT count(*) FROM pg_database WHERE datname LIKE 'pgconverge\\_shadow\\_%'") == [(0,)]
    with pytest.raises(SourceError, match="nowhere"):
        pgconverge.plan(db, ["CREATE TABLE w (id int REFERENCES nowhere);"], cache_dir=tmp_path / "c3", **ALL)
    assert listed(admin, ("shadow",)) == kept
    assert rows(admin, "SELECT count(*) FROM pg_database WHERE datname LIKE 'pgconverge\\_shadow\\_%'") == [(0,)]


# --------------------------------------------------------------------------- pure logic


def test_the_key_ignores_the_dumps_restrict_lines_and_nothing_else():
    a = "\\restrict abc\nCREATE TABLE t (x int);\n\\unrestrict abc\n"
    b = "\\restrict xyz\nCREATE TABLE t (x int);\n\\unrestrict xyz\n"
    assert bases.key(a, "u") == bases.key(b, "u")
    assert bases.key(a, "u") != bases.key(a.replace("int", "bigint"), "u")
    assert bases.key(a, "u") != bases.key(a, "v")
    assert bases.name_of(bases.key(a)).startswith(bases.BASE_PREFIX) and len(bases.name_of(bases.key(a))) <= 63


def test_roles_a_dump_names():
    assert not proof.names_roles("GRANT ALL ON SCHEMA public TO PUBLIC;\nREVOKE ALL ON FUNCTION public.f() FROM PUBLIC;",
                                 "deployer")
    assert not proof.names_roles("GRANT SELECT(a) ON TABLE public.t TO deployer;", "deployer")
    # on a whole object, a grant to the deploy role reads against the owner: the base's role on a copy
    assert proof.names_roles("GRANT SELECT ON TABLE public.t TO deployer;", "deployer")
    assert proof.names_roles("REVOKE ALL ON TABLE public.t FROM deployer;", "deployer")
    assert not proof.names_roles("CREATE POLICY p ON public.t FOR SELECT TO deployer USING ((id > 0));", "deployer")
    assert proof.names_roles("GRANT SELECT ON TABLE public.t TO reader;", "deployer")
    assert proof.names_roles("GRANT SELECT ON TABLE public.t TO PUBLIC, reader WITH GRANT OPTION;", "deployer")
    assert proof.names_roles("CREATE POLICY p ON public.t FOR SELECT TO reader USING ((id > 0));", "deployer")
    assert not proof.names_roles("CREATE POLICY p ON public.t USING ((id > 0));", "deployer")
