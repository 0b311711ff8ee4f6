"""Waiting in tests for something another process does (a backend gone, a file removed)."""

from __future__ import annotations

import time
from typing import Callable


def wait_for(predicate: Callable[[], object], what: str, seconds: float = 60.0, step: float = 0.02) -> None:
    """Return once `predicate()` is true; fail naming `what` after `seconds`."""
    for _ in range(int(seconds / step)):
        if predicate():
            return
        time.sleep(step)
    raise AssertionError(f"never happened: {what}")
