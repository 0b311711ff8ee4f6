"""The external conformance suite: migra's 26 schema pairs, judged by pg_dump.

For each pair: load a.sql into A and b.sql into B, converge A to b.sql with every
hazard allowed, check a second plan is empty, then compare `pg_dump --schema-only`
of A and B (column order inside tables ignored). Run it as a report:

    .venv/bin/python -m tests.conformance            # prints the table
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO.parent / "shared" / "conformance" / "migra"
if not FIXTURES.exists():
    FIXTURES = Path("/work/shared/conformance/migra")

# Scoping each fixture ran with upstream, and the pg_dump arguments that compare that scope.
SCOPES: dict[str, dict] = {
    "singleschema": {"options": {"only_schemas": ["goodschema"]}, "dump": ["--schema", "goodschema"]},
    "singleschema_ext": {"options": {"only_schemas": ["goodschema"]}, "dump": ["--schema", "goodschema"],
                         "extensions": True},
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
    from pgconverge.runner import LocalRunner

    LocalRunner(conninfo).run_script(path.read_text())


def dump(conninfo: str, extra: list[str]) -> str:
    from pgconverge.embedded import find_bindir
    from pgconverge.runner import Conn

    conn = Conn.parse(conninfo)
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | conn.env
    out = subprocess.run([str(find_bindir() / "pg_dump"), "--schema-only", *extra], env=env, check=True,
                         capture_output=True, text=True).stdout
    return out


def normalize_dump(text: str) -> list[str]:
    """pg_dump entries as a sorted list, with \\restrict lines removed and column order inside
    CREATE TABLE ignored."""
    lines = [ln for ln in text.splitlines() if not ln.startswith(("\\restrict", "\\unrestrict"))]
    entries, current = [], []
    for ln in lines:
        if ln.startswith("-- Name:") or ln.startswith("-- Data for Name:"):
            if current:
                entries.append(current)
            current = []
        current.append(ln)
    if current:
        entries.append(current)
    out = []
    for entry in entries:
        body, cols, in_table = [], [], False
        for ln in entry:
            if re.match(r"^CREATE (UNLOGGED )?(TABLE|TYPE) .*\($", ln):
                in_table = True
                body.append(ln)
                continue
            if in_table and re.match(r"^\)", ln):
                body.extend(sorted(c.rstrip(",") for c in cols))
                cols, in_table = [], False
                body.append(ln)
                continue
            (cols if in_table else body).append(ln)
        out.append("\n".join(body).strip())
    return sorted(e for e in out if e)


def extensions_of(conninfo: str) -> set[str]:
    from pgconverge.runner import LocalRunner

    return set(LocalRunner(conninfo).query_json("SELECT json_agg(extname) FROM pg_extension;") or [])


def run_fixture(name: str, make_db) -> Outcome:
    import pgconverge
    from pgconverge.planner import UnsupportedError

    scope = SCOPES.get(name, {})
    options = dict(scope.get("options", {}), allow_hazards="all", drops=["*"])
    a, b = make_db(), make_db()
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
        only_a = [e for e in da if e not in db_]
        only_b = [e for e in db_ if e not in da]
        first = (only_a or only_b)[0].splitlines()
        return Outcome(name, "failed", f"pg_dump differs: {len(only_a)} entries only in A, {len(only_b)} only "
                       f"in B; first: {' | '.join(first[:4])[:300]}")
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

    from pgconverge.embedded import Cluster

    cluster = Cluster(REPO / ".pgconverge" / "test-cluster")
    cluster.ensure_started()
    created: list[str] = []

    def make_db() -> str:
        n = "pgc_conf_" + secrets.token_hex(5)
        created.append(n)
        return cluster.create_database(n)

    import psycopg

    with psycopg.connect(cluster.conninfo(), autocommit=True) as c:
        c.execute("DO $$ BEGIN CREATE ROLE schemainspect_test_role NOLOGIN; EXCEPTION WHEN duplicate_object "
                  "THEN NULL; END $$")
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
