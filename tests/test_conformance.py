"""migra's 26 schema pairs as a test: each must converge and then equal a database loaded
from its b.sql, judged by pg_dump (tests/conformance.py, per the corpus README).

EXPECTED says what each fixture must give today, so the test fails when a fixture that
passed regresses, and when one expected to be refused as unsupported fails for another
reason (or starts passing: then move it to "passed").
"""

from __future__ import annotations

import pytest

from tests.conformance import fixture_names, run_fixture

EXPECTED: dict[str, str] = {
    "collations": "passed",
    "constraints": "passed",
    "dependencies": "passed",
    "dependencies2": "passed",
    "dependencies3": "passed",
    "dependencies4": "passed",
    "enumdefaults": "passed",
    "enumdeps": "passed",
    "everything": "passed",
    "excludeschema": "passed",
    "extversions": "passed",
    "generated": "passed",
    "generated_added": "passed",
    "identitycols": "passed",
    "inherit": "passed",
    "inherit2": "passed",
    "partitioning": "passed",
    "privileges": "passed",
    "rls": "passed",
    "rls2": "passed",
    "seq": "passed",
    "singleschema": "passed",
    "singleschema_ext": "passed",
    "triggers": "passed",
    "triggers2": "passed",
    "triggers3": "passed",
}


def test_every_fixture_has_an_expectation():
    assert sorted(EXPECTED) == fixture_names()
    assert len(EXPECTED) == 26


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture(name, make_db):
    outcome = run_fixture(name, make_db)
    expected = EXPECTED[name]
    if expected == "passed":
        assert outcome.status == "passed", f"{name}: {outcome.status}: {outcome.reason}"
    else:
        status, _, reason = expected.partition(": ")
        assert (outcome.status, reason in outcome.reason) == (status, True), \
            f"{name}: expected {expected!r}, got {outcome.status}: {outcome.reason}"
