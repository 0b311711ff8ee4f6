"""A warm no-op `pgconverge plan` (sql/ parsed before, target unchanged) loads neither pglast,
pyinfra nor hypothesis: the start-up of the common case is interpreter and psycopg only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg

SCHEMA = ("CREATE TABLE public.t (id integer PRIMARY KEY, v text NOT NULL);\n"
          "CREATE INDEX t_v_idx ON public.t (v);\n")

# runs the CLI in this interpreter, then prints the top-level packages it imported on the last line
WRAPPER = """
import json, sys
from pgconverge.cli.main import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:
    code = e.code
print(json.dumps({"code": code, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def _plan(db: str, sql: Path, cwd: Path) -> tuple[int, set[str], str]:
    done = subprocess.run([sys.executable, "-c", WRAPPER, "plan", "--target", db, "--sql", str(sql)],
                          capture_output=True, text=True, cwd=cwd)
    last = json.loads(done.stdout.strip().splitlines()[-1])
    return last["code"], set(last["modules"]), done.stdout + done.stderr


def test_warm_noop_plan_imports_no_parser_nor_pyinfra(db: str, tmp_path: Path) -> None:
    with psycopg.connect(db, autocommit=True) as c:
        c.execute(SCHEMA)
    sql = tmp_path / "schema.sql"
    sql.write_text(SCHEMA)
    # the first run parses sql/ (pglast is needed then) and fills the caches
    code, cold, out = _plan(db, sql, tmp_path)
    assert code == 0, out
    assert "pglast" in cold, "the cold run should parse sql/: the check below would prove nothing"
    code, warm, out = _plan(db, sql, tmp_path)
    assert code == 0, out
    assert "psycopg" in warm
    assert not warm & {"pglast", "pyinfra", "hypothesis"}, sorted(warm & {"pglast", "pyinfra", "hypothesis"})
