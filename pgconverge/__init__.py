"""pgconverge: converge PostgreSQL databases to a schema declared as plain SQL, with pyinfra.

The Python API is ``plan(target, sql, **options)`` and ``apply(target, plan_or_sql, **options)``;
see ``pgconverge.api``; ``dump(target, out, ...)`` writes a live database's schema as sql/
(``pgconverge.dump``). pyinfra operations live in ``pgconverge.operations``, facts in
``pgconverge.facts``.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["plan", "apply", "Plan", "Step", "Hazard", "HazardRefused", "NotConverged", "PlanChanged", "dump"]


def __getattr__(name: str):
    # Imported lazily so that `python -m pgconverge.dev.embedded` works before pglast is installed.
    if name in ("plan", "apply", "NotConverged", "PlanChanged"):
        from pgconverge import api

        return getattr(api, name)
    if name == "dump":
        from pgconverge.dump import dump

        return dump
    if name in ("Plan", "Step"):
        from pgconverge.planning import planner

        return getattr(planner, name)
    if name in ("Hazard", "HazardRefused"):
        from pgconverge.planning import hazards

        return getattr(hazards, name)
    raise AttributeError(name)
