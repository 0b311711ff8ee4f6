"""A refused hazard names what would allow it (the group-data key or the directive), and the online
alternative where there is one."""

from __future__ import annotations

import pytest

from pgconverge.planning import hazards as hz
from pgconverge.planning.hazards import ALL_HAZARDS, Policy
from pgconverge.runbook.remedies import online_alternative, refusal_lines, remedy

ALLOW_KEY = "pgconverge_allow_hazards"


@pytest.mark.parametrize("hazard, says", [
    (hz.deletes_data("table:public.legacy", "table public.legacy", " is dropped with its rows"),
     ["'-- @drop table public.legacy'", "pgconverge_drops = ['table:public.legacy']", "--drop table:public.legacy",
      "add deletes_data to pgconverge_allow_hazards"]),
    (hz.deletes_data("column:public.users.nick", "column users.nick"),
     ["'-- @allow deletes_data' next to the definition of table public.users", "pgconverge_drops"]),
    (hz.rewrites_table("column:public.t.at", "adding column t.at with a computed value", ""),
     ["add rewrites_table to pgconverge_allow_hazards", "--allow-hazards rewrites_table",
      "backfill it with a `-- @data <name> after` block, then declare the default"]),
    (hz.rewrites_table("column:public.t.n", "public.t.n changes type from integer to bigint"),
     ["add rewrites_table to " + ALLOW_KEY, "add a new column of the new type"]),
    (hz.blocks_reads_writes("column:public.p.n", "SET NOT NULL on p.n scans public.p", ""),
     ["add blocks_reads_writes to " + ALLOW_KEY, "set NOT NULL on each partition first"]),
    (hz.blocks_writes("index:public.p_idx", "index p_idx on public.p", ": writes wait for the build"),
     ["add blocks_writes to " + ALLOW_KEY]),
    (hz.index_build("index:public.t_idx", "index t_idx on public.t"), ["add index_build to " + ALLOW_KEY]),
    (hz.index_dropped("index:public.t_idx", "index public.t_idx"),
     ["add index_dropped to " + ALLOW_KEY, "keep its definition in sql/ until no query needs it"]),
    (hz.may_fail("column:public.t.c", "NOT NULL column t.c without a default", " fails when t has rows"),
     ["add may_fail_on_existing_data to " + ALLOW_KEY,
      "add the column nullable, backfill it with a `-- @data <name> after` block, then set NOT NULL"]),
    (hz.may_fail("column:public.t.c", "SET NOT NULL on t.c", " fails if a row holds NULL"),
     ["backfill the NULLs first with a `-- @data <name> before` block"]),
    (hz.may_fail("constraint:public.t.t_c_check", "new check t_c_check on public.t"),
     ["clean the existing rows first with a `-- @data <name> before` block"]),
    (hz.renames("column:public.t.b", "column t.a", "b"),
     ["add renames to " + ALLOW_KEY, "add the new name alongside the old one"]),
    (hz.extension_change("extension:pgcrypto", "pgcrypto", "is installed"), ["add extension_change to " + ALLOW_KEY]),
    (hz.authz_change("table:public.t", "GRANT SELECT on public.t to app"), ["add authz_change to " + ALLOW_KEY]),
    (hz.drops_object("view:public.v", "view public.v"),
     ["add drops_object to " + ALLOW_KEY, "keep its definition in sql/ until nothing calls it"]),
])
def test_each_hazard_names_its_remedy(hazard, says) -> None:
    text = remedy(hazard)
    assert text.startswith("to allow it, ")
    for phrase in says:
        assert phrase in text, text


def test_every_hazard_has_a_remedy_naming_a_key_or_a_directive() -> None:
    for name in ALL_HAZARDS:
        text = remedy(hz.Hazard(name, f"some {name} change", "table:public.t"))
        assert ALLOW_KEY in text or "-- @drop" in text, (name, text)


def test_a_deletion_allowed_but_not_named_asks_only_for_the_name() -> None:
    dropped = hz.deletes_data("table:public.legacy", "table public.legacy")
    [refused] = Policy(allow=frozenset({hz.DELETES_DATA})).refused([dropped])
    text = remedy(refused)
    assert "'-- @drop table public.legacy'" in text and "pgconverge_allow_hazards" not in text


def test_hazards_without_an_online_form_say_only_how_to_allow_them() -> None:
    assert online_alternative(hz.extension_change("extension:pgcrypto", "pgcrypto", "is installed")) is None
    assert "or, online" not in remedy(hz.index_build("index:public.t_idx", "index t_idx"))


def test_refusal_lines_carry_the_object_the_reason_and_the_remedy() -> None:
    [line] = refusal_lines([hz.renames("column:public.t.b", "column t.a", "b")])
    assert line.startswith("renames: column t.a is renamed to b") and "remedy: to allow it, add renames to" in line
