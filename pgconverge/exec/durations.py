"""Durations as PostgreSQL's settings spell them: ``500ms``, ``2s``, ``1min``, or a bare number of
milliseconds (the unit of lock_timeout and statement_timeout).

The executor needs some of them as numbers (the lock deadline is arithmetic inside its PL/pgSQL
block), and a misspelt one should be refused before anything runs, not in the middle of a run.
"""

from __future__ import annotations

import re

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(us|ms|s|min|h|d)?\s*$")


def seconds(value: str | int | float, setting: str) -> float:
    """The duration in seconds; ValueError naming `setting` when it is not one."""
    if isinstance(value, bool):
        raise ValueError(f"{setting}: {value!r} is not a duration (e.g. 500ms, 60s, 2min)")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{setting}: {value!r} is negative")
        return float(value) / 1000
    m = _DURATION.match(value)
    if not m:
        raise ValueError(f"{setting}: {value!r} is not a duration (e.g. 500ms, 60s, 2min; a bare number "
                         "is milliseconds)")
    return float(m.group(1)) * _UNITS[m.group(2) or "ms"]


def setting_text(value: str | int | float) -> str:
    """The value as PostgreSQL's set_config takes it (a bare number means milliseconds there too)."""
    return value.strip() if isinstance(value, str) else f"{value}ms"
