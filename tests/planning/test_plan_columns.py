"""Fast unit tests of the column kind: volatility from the catalog (Column.volatile_default, filled from
pg_proc.provolatile), type change costs."""

from __future__ import annotations


from pgconverge.catalog.model import Catalog, Column, Schema, Table
from pgconverge.planning import hazards as hz
from pgconverge.planning.kinds.columns import type_change_hazards
from pgconverge.planning.planner import diff


def cat(t: Table) -> Catalog:
    c = Catalog(server_version=150000)
    c.schemas["schema:public"] = Schema("public")
    c.tables[t.id] = t
    return c


ID = Column("id", "integer")


def test_volatile_default_rewrites_on_add_column():
    have = Table("public", "t", columns={"id": ID})
    added = Column("a", "double precision", default="public.noise()", volatile_default=True)
    (step,) = diff(cat(have), cat(Table("public", "t", columns={"id": ID, "a": added})))
    assert [h.name for h in step.hazards] == [hz.REWRITES_TABLE, hz.BLOCKS_READS_WRITES]
    stable = Column("a", "double precision", default="public.noise()")
    (step,) = diff(cat(have), cat(Table("public", "t", columns={"id": ID, "a": stable})))
    assert step.hazards == ()
    # no guess from the text: a default the catalog calls stable adds no rewrite, whatever its name
    named = Column("a", "timestamp with time zone", default="clock_timestamp()")
    (step,) = diff(cat(have), cat(Table("public", "t", columns={"id": ID, "a": named})))
    assert step.hazards == ()


def test_type_change_hazards_lives_with_the_columns():
    t = Table("public", "t")
    names = [h.name for h in type_change_hazards(t, Column("a", "integer"), Column("a", "bigint"))]
    assert names == [hz.REWRITES_TABLE, hz.BLOCKS_READS_WRITES, hz.MAY_FAIL_ON_EXISTING_DATA]
    assert type_change_hazards(t, Column("a", "character varying(5)"), Column("a", "text")) == ()
