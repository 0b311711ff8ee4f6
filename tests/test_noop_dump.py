"""The proof's dump of the target is taken alongside the catalog read only while the shadow loads:
a no-op plan served from the desired-catalog cache (or the plan cache) starts no pg_dump, and a
change found then is still proved, with the dump taken for the proof."""

from __future__ import annotations

from pathlib import Path

import psycopg

from pgconverge import api, proof
from pgconverge.api import Engine, Options
from pgconverge.exec.runner import LocalRunner

SQL = ["CREATE TABLE public.t (id int PRIMARY KEY, name text);", "CREATE INDEX t_name ON public.t (name);"]


class CountingRunner(LocalRunner):
    """The real psql runner, counting the schema dumps it takes."""

    dumps = 0

    def dump_schema(self, *args, **kwargs):
        CountingRunner.dumps += 1
        return super().dump_schema(*args, **kwargs)


def _plan(db: str, sql: list[str], cache: Path):
    options = dict(allow_hazards="all", drops=["*"], cache_dir=cache)
    return Engine(CountingRunner(db), api._source(sql, options), Options.build(**options)).plan()


def test_noop_plans_take_no_dump_and_a_change_is_still_proved(db: str, tmp_path: Path) -> None:
    with psycopg.connect(db, autocommit=True) as c:
        c.execute(" ".join(SQL))
    CountingRunner.dumps = 0
    first = _plan(db, SQL, tmp_path)  # the shadow loads: the dump runs meanwhile, unused (empty plan)
    assert first.is_empty and first.proof.status == proof.SKIPPED
    assert CountingRunner.dumps == 1
    CountingRunner.dumps = 0
    again = _plan(db, SQL, tmp_path)  # the plan cache
    assert again.is_empty and CountingRunner.dumps == 0
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("COMMENT ON TABLE public.t IS 'drifted'")  # the fingerprint moves, sql/ does not
    changed = _plan(db, SQL, tmp_path)  # the desired catalog from its cache, a plan to make
    assert not changed.is_empty and changed.proof.status == proof.PROVED
    assert CountingRunner.dumps == 1  # the proof's own dump, and no other
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("COMMENT ON TABLE public.t IS NULL")
    CountingRunner.dumps = 0
    back = _plan(db, SQL, tmp_path)  # the target changed back: an empty plan, from a cache
    assert back.is_empty and back.proof.status == proof.SKIPPED and CountingRunner.dumps == 0
