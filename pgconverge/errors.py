"""The errors every layer raises: a plan that cannot be built, an object kind that is not managed."""

from __future__ import annotations


class PlanError(Exception):
    """The plan cannot be built. The message names the object and the cause."""


class UnsupportedError(PlanError):
    def __init__(self, kind: str, identity: str, why: str = ""):
        self.kind = kind
        self.identity = identity
        msg = f"unsupported: {kind} {identity}"
        super().__init__(msg + (f" ({why})" if why else ""))

