"""Generated schemas, judged by pg_dump: no run may report success while the target differs
from a fresh load of the same SQL. A loud refusal is allowed; a wrong result never is."""

from __future__ import annotations

import secrets

import pytest
from hypothesis import HealthCheck, given, settings

from tests.generators import judge, mutations, render, specs

EXAMPLES = settings(max_examples=12, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture
def scratch(cluster):
    """A database factory whose databases are dropped after each generated example."""
    made: list[str] = []

    def make() -> str:
        name = "pgc_test_gen_" + secrets.token_hex(5)
        made.append(name)
        return cluster.create_database(name)

    def drop_all() -> None:
        for name in made:
            cluster.drop_database(name)
        made.clear()

    make.drop_all = drop_all
    yield make
    drop_all()


@EXAMPLES
@given(spec=specs())
def test_a_generated_schema_converges_from_empty(scratch, spec):
    try:
        v = judge(scratch, None, render(spec))
        assert v.outcome in ("converged", "refused"), f"{v.outcome}:\n{render(spec)}\n{v.detail}"
    finally:
        scratch.drop_all()


@EXAMPLES
@given(data=specs().flatmap(lambda a: mutations(a).map(lambda b: (a, b))))
def test_a_generated_change_converges_or_is_refused_loudly(scratch, data):
    a, b = data
    try:
        v = judge(scratch, render(a), render(b))
        assert v.outcome in ("converged", "refused"), f"{v.outcome}:\n-- before\n{render(a)}\n-- after\n{render(b)}\n{v.detail}"
    finally:
        scratch.drop_all()
