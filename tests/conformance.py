"""The external conformance suite: migra's 26 schema pairs, judged by pg_dump.

For each pair: load a.sql into A and b.sql into B, converge A to b.sql with every
hazard allowed, check a second plan is empty, then compare `pg_dump --schema-only`
of A and B (column order inside tables ignored). Run it as a report:

    .venv/bin/python -m tests.conformance            # prints the table
"""

from __future__ import annotations

import difflib
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO.parent / "shared" / "conformance" / "migra"
if not FIXTURES.exists():
    FIXTURES = Path("/work/shared/conformance/migra")

ROLE = "schemainspect_test_role"

# Scoping each fixture ran with upstream, and the pg_dump arguments that compare that scope.
SCOPES: dict[str, dict] = {
    "singleschema": {"options": {"only_schemas": ["goodschema"]}, "dump": ["--schema", "goodschema"]},
    "singleschema_ext": {"options": {"only_schemas": ["goodschema"], "create_extensions_anywhere": True},
                         "dump": ["--schema", "goodschema"], "extensions": True},
    "excludeschema": {"options": {"exclude_schemas": ["excludedschema"]},
                      "dump": ["--exclude-schema", "excludedschema"]},
    "extversions": {"options": {"compare_extension_versions": True}},
}


@dataclass
class Outcome:
    fixture: str
    status: str  # passed | failed | unsupported
    reason: str = ""


def fixture_names() -> list[str]:
    return sorted(p.name for p in FIXTURES.iterdir() if (p / "a.sql").exists())


def psql_load(conninfo: str, path: Path) -> None:
    from pgconverge.exec.runner import LocalRunner

    LocalRunner(conninfo).run_script(path.read_text())


def dump(conninfo: str, extra: list[str]) -> str:
    from pgconverge.dev.embedded import find_bindir
    from pgconverge.exec.runner import Conn

    conn = Conn.parse(conninfo)
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | conn.env
    out = subprocess.run([str(find_bindir() / "pg_dump"), "--schema-only", *extra], env=env, check=True,
                         capture_output=True, text=True).stdout
    return out


def normalize_dump(text: str) -> list[str]:
    """The lines of a pg_dump, compared as the README says: the \\restrict and \\unrestrict
    lines (a random key per dump) are removed, and the lines inside each CREATE TABLE's
    parentheses are sorted, so that column order inside a table is ignored. Everything else,
    entry order included, is compared as pg_dump printed it."""
    out: list[str] = []
    body: list[str] = []
    in_table = False
    for ln in text.splitlines():
        if ln.startswith(("\\restrict", "\\unrestrict")):
            continue
        if in_table:
            if ln.startswith(")"):
                # the last column has no trailing comma: compare the lines without it
                out.extend(sorted(c.rstrip(",") for c in body))
                body, in_table = [], False
                out.append(ln)
            else:
                body.append(ln)
            continue
        if re.match(r"^CREATE (UNLOGGED |FOREIGN )?TABLE .*\($", ln):
            in_table = True
        out.append(ln)
    return out


def first_difference(a: list[str], b: list[str]) -> str:
    """A short description of where two normalized dumps differ."""
    diff = [ln for ln in difflib.unified_diff(a, b, "A", "B", n=0, lineterm="")
            if not ln.startswith(("---", "+++", "@@"))]
    return f"{len(diff)} differing line(s); first: {' | '.join(diff[:4])[:300]}"


def ensure_role(conninfo: str) -> None:
    """The role the rls fixture grants to (cluster-wide; created once, concurrent runs tolerated)."""
    from pgconverge.exec.runner import LocalRunner

    LocalRunner(conninfo).run_script(f"""DO $$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN CREATE ROLE {ROLE} NOLOGIN; END IF;
      EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
      END $$;
""")


def extensions_of(conninfo: str) -> set[str]:
    from pgconverge.exec.runner import LocalRunner

    return set(LocalRunner(conninfo).query_json("SELECT json_agg(extname) FROM pg_extension;") or [])


def run_fixture(name: str, make_db) -> Outcome:
    import pgconverge
    from pgconverge.errors import UnsupportedError

    scope = SCOPES.get(name, {})
    # b.sql files may hold ALTER TABLE ... DROP COLUMN (inherit2): they only shape the shadow
    options = dict(scope.get("options", {}), allow_hazards="all", drops=["*"], permissive_source=True)
    a, b = make_db(), make_db()
    ensure_role(a)
    psql_load(a, FIXTURES / name / "a.sql")
    psql_load(b, FIXTURES / name / "b.sql")
    desired = str(FIXTURES / name / "b.sql")
    try:
        pgconverge.apply(a, desired, **options)
    except UnsupportedError as e:
        return Outcome(name, "unsupported", str(e))
    except Exception as e:  # the report shows every other failure with its cause
        return Outcome(name, "failed", f"apply: {type(e).__name__}: {str(e).splitlines()[0][:300]}")
    again = pgconverge.plan(a, desired, **options)
    if not again.is_empty:
        return Outcome(name, "failed", "second plan not empty: " + again.steps[0].sql[:200])
    da, db_ = normalize_dump(dump(a, scope.get("dump", []))), normalize_dump(dump(b, scope.get("dump", [])))
    if da != db_:
        return Outcome(name, "failed", "pg_dump differs: " + first_difference(da, db_))
    if scope.get("extensions") and not extensions_of(b) <= extensions_of(a):
        return Outcome(name, "failed", "extensions of B missing in A")
    return Outcome(name, "passed")


def report(outcomes: list[Outcome]) -> str:
    width = max(len(o.fixture) for o in outcomes)
    rows = [f"| {'fixture'.ljust(width)} | result      | reason |", f"|{'-' * (width + 2)}|-------------|--------|"]
    rows += [f"| {o.fixture.ljust(width)} | {o.status.ljust(11)} | {o.reason.replace('|', '/')} |" for o in outcomes]
    passed = sum(o.status == "passed" for o in outcomes)
    rows.append(f"\n{passed}/{len(outcomes)} passed")
    return "\n".join(rows)


def main() -> int:
    import secrets

    from pgconverge.dev.embedded import Cluster

    cluster = Cluster(REPO / ".pgconverge" / "test-cluster")
    cluster.ensure_started()
    created: list[str] = []

    def make_db() -> str:
        n = "pgc_conf_" + secrets.token_hex(5)
        created.append(n)
        return cluster.create_database(n)

    names = sys.argv[1:] or fixture_names()
    outcomes = []
    try:
        for n in names:
            outcomes.append(run_fixture(n, make_db))
    finally:
        for n in created:
            cluster.drop_database(n)
    print(report(outcomes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
