"""`pgconverge dump`: sql/ written from a live database.

Its two properties, on the example schema, on both sides of migra's 26 pairs and on generated
schemas: a plan of the source against its own dump is empty, and a fresh database converged from
the dump equals the source by pg_dump --schema-only. Then its refusals: what sql/ cannot say
names the kind and the object and leaves no folder behind; a non-empty folder needs --force.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings

import pgconverge
from pgconverge.cli.main import main
from pgconverge.dump import DumpRefused, dump, needs_quotes, unquote_names
from pgconverge.errors import PlanError, UnsupportedError
from pgconverge.exec.runner import LocalRunner
from pgconverge.proof import NotProved
from pgconverge.source import load_source
from tests.conformance import FIXTURES, SCOPES, dump as pg_dump, ensure_role, first_difference, fixture_names
from tests.conformance import normalize_dump
from tests.generators import ensure_roles, render, specs
from tests.test_conformance import EXPECTED

REPO = Path(__file__).resolve().parent.parent


def load(conninfo: str, sql: str) -> None:
    LocalRunner(conninfo).run_script(sql)


def check_properties(source: str, fresh: str, out: Path, scope: dict | None = None, prove: bool = False) -> None:
    """The dump's two properties for a source database already dumped into `out`. pg_dump judges the
    fresh copy; `prove` also has apply rehearse it (and refuse what the planner cannot do)."""
    scope = scope or {}
    options = scope.get("options", {})
    scoping = {k: options[k] for k in ("only_schemas", "exclude_schemas", "create_extensions_anywhere")
               if k in options}
    plan = pgconverge.plan(source, str(out), **scoping)
    assert plan.is_empty, f"the source plans against its own dump:\n{plan.to_sql()}"
    pgconverge.apply(fresh, str(out), allow_hazards="all", prove=prove, **scoping)
    a = normalize_dump(pg_dump(source, scope.get("dump", [])))
    b = normalize_dump(pg_dump(fresh, scope.get("dump", [])))
    assert a == b, "the converged copy differs from the source: " + first_difference(a, b)


def files_of(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- the two properties


def test_the_example_schema_round_trips(make_db, converge, tmp_path):
    source, fresh = make_db(), make_db()
    converge(source, str(REPO / "sql" / "schema"))
    out = tmp_path / "sql"
    result = dump(source, out)
    assert [f.path for f in result.files] == files_of(out)
    assert result.files[0].path == "00_extensions.sql"
    assert any(f.path.endswith("_tables/public.users.sql") for f in result.files)
    users = next(out.glob("*_tables/public.users.sql")).read_text()
    # quoted only where needed: a plain name is bare, a camelCase one keeps its quotes
    assert "CREATE TABLE public.users (" in users and '"purchasedCreditPacks" integer' in users
    assert "COMMENT ON TABLE public.users IS" in users
    check_properties(source, fresh, out)


def test_files_load_in_dependency_order(make_db, tmp_path):
    """A function used by a table's default, a view over two tables, a foreign key between them,
    a trigger, a policy and a grant: each goes to its file, and sql/'s name order is a valid order."""
    source, fresh = make_db(), make_db()
    load(source, """
        CREATE SCHEMA app;
        CREATE TYPE app.mood AS ENUM ('ok', 'sad');
        CREATE FUNCTION app.code() RETURNS text LANGUAGE sql AS $$ SELECT 'c' || 1 $$;
        CREATE TABLE app.zeta (id int PRIMARY KEY, code text DEFAULT app.code());
        CREATE TABLE app.alpha (id serial PRIMARY KEY, zeta int REFERENCES app.zeta, m app.mood);
        CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
        CREATE TRIGGER alpha_touch BEFORE INSERT ON app.alpha FOR EACH ROW EXECUTE FUNCTION app.touch();
        ALTER TABLE app.alpha ENABLE ROW LEVEL SECURITY;
        CREATE POLICY mine ON app.alpha USING (id > 0);
        GRANT SELECT ON app.alpha TO PUBLIC;
        CREATE VIEW app.joined AS SELECT a.id, z.code FROM app.alpha a JOIN app.zeta z ON z.id = a.zeta;
        CREATE VIEW app."Over" AS SELECT id FROM app.joined;
    """)
    out = tmp_path / "sql"
    result = dump(source, out)
    paths = [f.path for f in result.files]
    assert paths == files_of(out)
    zeta = next(p for p in paths if p.endswith("app.zeta.sql"))
    alpha = next(p for p in paths if p.endswith("app.alpha.sql"))
    assert zeta < alpha  # alpha's foreign key needs zeta's key
    alpha_text = (out / alpha).read_text()
    for piece in ("CREATE TABLE app.alpha", "FOREIGN KEY", "CREATE TRIGGER alpha_touch", "CREATE POLICY mine",
                  "ENABLE ROW LEVEL SECURITY", "GRANT SELECT ON TABLE app.alpha TO PUBLIC",
                  "OWNED BY app.alpha.id"):
        assert piece in alpha_text, piece
    views = (out / next(p for p in paths if p.endswith("_views.sql"))).read_text()
    assert views.index("CREATE VIEW app.joined") < views.index('CREATE VIEW app."Over"')
    functions = next(p for p in paths if p.endswith("_functions.sql"))
    assert functions < zeta
    # the files parse as sql/: only definitions
    assert not load_source(str(out)).is_empty
    check_properties(source, fresh, out)


MIGRA = [(name, side) for name in fixture_names() for side in ("a", "b")]


@pytest.mark.slow
@pytest.mark.parametrize("name,side", MIGRA, ids=[f"{n}-{s}" for n, s in MIGRA])
def test_migra_schemas_round_trip(name, side, make_db, tmp_path):
    source, fresh = make_db(), make_db()
    ensure_role(source)
    load(source, (FIXTURES / name / f"{side}.sql").read_text())
    scope = SCOPES.get(name, {})
    options = scope.get("options", {})
    expected = EXPECTED[name]
    out = tmp_path / "sql"
    if expected != "passed":  # where the tool cannot plan the schema, the dump refuses the same way
        reason = expected.partition(": ")[2]
        with pytest.raises(UnsupportedError, match=reason):
            dump(source, out, only_schemas=options.get("only_schemas", ()),
                 exclude_schemas=options.get("exclude_schemas", ()))
        assert not out.exists()
        return
    dump(source, out, only_schemas=options.get("only_schemas", ()),
         exclude_schemas=options.get("exclude_schemas", ()))
    check_properties(source, fresh, out, scope)


def test_migra_has_26_pairs():
    assert len(MIGRA) == 52


@pytest.fixture
def scratch(cluster):
    made: list[str] = []

    def make() -> str:
        name = "pgc_test_dump_" + secrets.token_hex(5)
        made.append(name)
        return cluster.create_database(name)

    def drop_all() -> None:
        for name in made:
            cluster.drop_database(name)
        made.clear()

    make.drop_all = drop_all
    yield make
    drop_all()


# no shrinking: each example costs several databases and a shrink ran for minutes
@settings(max_examples=6, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(spec=specs())
def test_generated_schemas_round_trip(scratch, tmp_path_factory, spec):
    """Every generated schema the tool can plan from empty round-trips through its dump; one it
    cannot plan is refused by the dump as loudly (a PlanError: an unsupported kind, or a dump that would
    not load back, as the proof refuses such a plan), never half written."""
    sql = render(spec)
    try:
        source, fresh = scratch(), scratch()
        ensure_roles(source)  # the generated grants name roles of their own
        load(source, sql)
        out = tmp_path_factory.mktemp("dump") / "sql"
        try:
            dump(source, out, use_cache=False)
            # with the proof: a fresh database the planner cannot bring to this schema is refused
            check_properties(source, fresh, out, prove=True)
        except PlanError as e:
            assert not out.exists() or isinstance(e, NotProved), e
            with pytest.raises(PlanError):
                pgconverge.plan(scratch(), [sql], allow_hazards="all", use_cache=False)
    finally:
        scratch.drop_all()


# --------------------------------------------------------------------------- refusals


def test_an_unsupported_kind_is_refused_by_kind_and_name(db, tmp_path):
    load(db, """
        CREATE TABLE public.t (x int);
        CREATE AGGREGATE public.total(int) (SFUNC = int4pl, STYPE = int);
    """)
    out = tmp_path / "sql"
    with pytest.raises(UnsupportedError, match=r"aggregate public\.total\(integer\)"):
        dump(db, out)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no temporary folder left either


def test_an_absence_cannot_be_dumped(db, tmp_path):
    """A fresh database has schema public: sql/ cannot say that the source dropped it."""
    load(db, "DROP SCHEMA public; CREATE SCHEMA app; CREATE TABLE app.t (x int);")
    out = tmp_path / "sql"
    with pytest.raises(DumpRefused, match=r"cannot dump schema public: a fresh database has it"):
        dump(db, out)
    assert not out.exists()
    # out of scope, the absence does not matter
    dump(db, out, only_schemas=["app"])
    assert files_of(out) == ["00_schemas.sql", "01_tables/app.t.sql"]


def test_a_non_empty_folder_needs_force(db, tmp_path):
    load(db, "CREATE TABLE public.t (x int);")
    out = tmp_path / "sql"
    out.mkdir()
    (out / "keep.sql").write_text("CREATE TABLE public.old (y int);\n")
    with pytest.raises(PlanError, match="not empty"):
        dump(db, out)
    assert files_of(out) == ["keep.sql"]
    result = dump(db, out, force=True)
    assert files_of(out) == [f.path for f in result.files] and "keep.sql" not in files_of(out)
    assert "CREATE TABLE public.t" in (out / result.files[0].path).read_text()


def test_an_empty_scope_is_refused(db, tmp_path):
    with pytest.raises(PlanError, match="nothing to dump"):
        dump(db, tmp_path / "sql")
    assert not (tmp_path / "sql").exists()


# --------------------------------------------------------------------------- the CLI


def test_cli_dump(db, tmp_path, capsys):
    load(db, "CREATE SCHEMA s; CREATE TABLE s.t (id int PRIMARY KEY); CREATE TABLE public.u (x int);")
    out = tmp_path / "sql"
    assert main(["dump", "--target", db, "--out", str(out), "--only-schemas", "s", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [f["path"] for f in doc["files"]] == files_of(out)
    assert all("public" not in p for p in files_of(out))
    assert main(["dump", "--target", db, "--out", str(out)]) == 1
    assert "not empty" in capsys.readouterr().err
    assert main(["dump", "--target", db, "--out", str(out), "--force", "--exclude-schemas", "s"]) == 0
    assert any(p.endswith("public.u.sql") for p in files_of(out))


# --------------------------------------------------------------------------- names


def test_names_are_quoted_only_where_needed():
    assert not needs_quotes("users") and not needs_quotes("name") and not needs_quotes("a$1")
    assert needs_quotes("Users") and needs_quotes("select") and needs_quotes("1a") and needs_quotes("a b")
    assert needs_quotes("user")  # reserved
    text = 'CREATE TABLE "public"."users" ("id" int, "Name" text, "select" int, note text DEFAULT \'"x"\')'
    assert unquote_names(text) == ('CREATE TABLE public.users (id int, "Name" text, "select" int, '
                                   'note text DEFAULT \'"x"\')')
    body = 'CREATE FUNCTION "f"() RETURNS int LANGUAGE sql AS $$ SELECT 1 AS "keep" $$'
    assert unquote_names(body) == 'CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 AS "keep" $$'
