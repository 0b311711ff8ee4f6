"""Progress of a long step in pyinfra's output: the converge operation, through the real pyinfra CLI
(gevent and all), prints the index build's progress lines with the host's prefix and each step's time."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg

PYINFRA = str(Path(sys.executable).parent / "pyinfra")
SLOW = """CREATE FUNCTION public.slow(v integer) RETURNS integer LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN PERFORM pg_sleep(0.003); RETURN v; END $$;
"""
DEPLOY = """
from pgconverge import operations as pgc

pgc.converge(name="converge target", database={"url_env": "PGC_TEST_URL"}, sql=%r, allow_hazards="all")
"""


def test_pyinfra_prints_progress_of_a_slow_index_build(db: str, tmp_path: Path) -> None:
    table = "CREATE TABLE public.t (id integer PRIMARY KEY, v integer NOT NULL);\n"
    with psycopg.connect(db, autocommit=True) as c:
        c.execute(SLOW + table)
        c.execute("INSERT INTO public.t SELECT g, g FROM generate_series(1, 3000) g")  # ~9 s of scanning
    (tmp_path / "sql").mkdir()
    (tmp_path / "sql" / "schema.sql").write_text(SLOW + table + "CREATE INDEX t_slow_idx ON public.t (public.slow(v));\n")
    deploy = tmp_path / "deploy_test.py"
    deploy.write_text(DEPLOY % str(tmp_path / "sql"))
    env = {**os.environ, "PGC_TEST_URL": db, "PGCONVERGE_HOME": str(tmp_path / ".pgconverge")}
    res = subprocess.run([PYINFRA, "@local", str(deploy), "-y"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, input="\n")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    lines = [ln.strip() for ln in out.splitlines()]
    build = [ln for ln in lines if "progress: step 1/1 (create_index index:public.t_slow_idx): " in ln]
    assert build, out
    assert all(ln.startswith("[@local]") for ln in build), build
    assert all(": building index" in ln or ": waiting for" in ln or ": index validation" in ln for ln in build), build
    assert any(re.search(r"building index: scanning table, blocks \d+/\d+ \(\d+%\), tuples \d+, "
                         r"index public\.t_slow_idx on public\.t, \d+ s$", ln) for ln in build), build
    assert any(ln.endswith("s  step 1/1 (create_index index:public.t_slow_idx)") for ln in lines), out
    with psycopg.connect(db) as c:
        assert c.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'public.t_slow_idx'::regclass"
                         ).fetchone() == (True,)
