"""Colour only on a terminal, painted by click; plain text is the same with colour turned off."""

from __future__ import annotations

import io

import click

from pgconverge.planning.hazards import Hazard
from pgconverge.planning.steps import Plan, Step
from pgconverge.runbook.style import format_plan, paint, use_colour


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def plan() -> Plan:
    return Plan(steps=[Step("DROP TABLE old;", "drop_table", "table:public.old",
                            hazards=(Hazard("deletes_data", "drops its rows", "table:public.old"),))])


def test_only_terminals_get_colour() -> None:
    assert use_colour(Tty()) is True
    assert use_colour(io.StringIO()) is False


def test_plain_plan_has_no_escape_codes() -> None:
    text = format_plan(plan(), colours=False)
    assert "\x1b[" not in text
    assert text == "-- hazard deletes_data: drops its rows\nDROP TABLE old;"


def test_coloured_plan_is_the_plain_one_painted() -> None:
    coloured = format_plan(plan(), colours=True)
    assert click.unstyle(coloured) == format_plan(plan(), colours=False)
    assert click.style("DROP TABLE old;", fg="red") in coloured  # what removes things is red


def test_paint_leaves_unstyled_text_alone() -> None:
    assert paint("x", True) == "x"
    assert paint("x", False, fg="red") == "x"
    assert paint("x", True, bold=True) == click.style("x", bold=True)
