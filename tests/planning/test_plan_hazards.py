"""Fast unit tests of the hazard constructors: each writes its standard phrase once."""

from __future__ import annotations

from pgconverge.planning import hazards as hz


def test_each_constructor_carries_its_hazard_name_and_object():
    made = {
        hz.deletes_data("o", "x"): hz.DELETES_DATA,
        hz.rewrites_table("o", "x"): hz.REWRITES_TABLE,
        hz.blocks_reads_writes("o", "x"): hz.BLOCKS_READS_WRITES,
        hz.blocks_writes("o", "x", ""): hz.BLOCKS_WRITES,
        hz.index_build("o", "x"): hz.INDEX_BUILD,
        hz.index_dropped("o", "x"): hz.INDEX_DROPPED,
        hz.may_fail("o", "x"): hz.MAY_FAIL_ON_EXISTING_DATA,
        hz.renames("o", "x", "y"): hz.RENAMES,
        hz.extension_change("o", "x", "is dropped"): hz.EXTENSION_CHANGE,
        hz.authz_change("o", "x"): hz.AUTHZ_CHANGE,
        hz.drops_object("o", "x"): hz.DROPS_OBJECT,
    }
    assert {h.name for h in made} == set(hz.ALL_HAZARDS)  # one constructor per hazard, none left out
    assert all(h.name == name and h.object == "o" for h, name in made.items())


def test_standard_phrases():
    assert hz.deletes_data("schema:app", "schema app").reason == "schema app is dropped"
    assert hz.rewrites_table("c", "t.c changes type from a to b").reason == (
        "t.c changes type from a to b; the table is rewritten under ACCESS EXCLUSIVE")
    assert hz.blocks_reads_writes("c", "s.t").reason == "s.t: reads and writes wait for the rewrite"
    assert hz.index_build("i", "index i is built on s.t").reason == (
        "index i is built on s.t (CONCURRENTLY: reads and writes go on)")
    assert hz.index_dropped("i", "index s.i on t is dropped").reason == (
        "index s.i on t is dropped; queries using it slow down")
    assert hz.may_fail("c", "new check k on s.t").reason == "new check k on s.t fails if existing rows violate it"
    assert hz.renames("t", "table s.a", "b").reason == "table s.a is renamed to b; clients using the old name break"
    assert hz.renames("i", "index s.a", "b", how="").reason == "index s.a is renamed to b"
    assert hz.extension_change("e", "x", "is installed").reason == "extension x is installed"
    assert hz.drops_object("v", "view s.v").reason == "view s.v is not in sql/ and is dropped; code that uses it breaks"


def test_how_replaces_the_standard_phrase():
    h = hz.deletes_data("sequence:s.q", "sequence s.q", " is dropped with its position")
    assert h.reason == "sequence s.q is dropped with its position"
    assert str(h) == "deletes_data: sequence s.q is dropped with its position"
