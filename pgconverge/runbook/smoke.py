"""Smoke checks: the runbooks' "verify" and "smoke test" steps, as SQL in sql/smoke/.

Each ``.sql`` file holds one query. It passes when it returns no rows, or when
every row it returns is a single ``true``. Anything else fails, and the rows it
returned are shown (the query can select what is wrong). Each check runs in its
own read-only transaction with a statement timeout, so a check cannot change data
or hang the deploy.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgconverge.quoting import lit
from pgconverge.exec.runner import PsqlError, Runner

TIMEOUT = "60s"


@dataclass(frozen=True)
class Check:
    name: str
    sql: str


@dataclass
class CheckResult:
    name: str
    passed: bool
    detail: str = ""
    rows: list[Any] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail, "rows": self.rows[:5]}


@dataclass
class SmokeReport:
    sha256: str
    results: list[CheckResult]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "sha256": self.sha256, "checks": [r.to_json() for r in self.results]}

    def lines(self) -> list[str]:
        out = []
        for r in self.results:
            out.append(f"  {'ok  ' if r.passed else 'FAIL'} {r.name}" + (f": {r.detail}" if r.detail else ""))
        return out


def load(path: str | os.PathLike | None) -> list[Check]:
    """The checks in a folder (every *.sql, in name order) or one file; none when absent."""
    if not path:
        return []
    p = Path(path)
    if p.is_file():
        files = [p]
    elif p.is_dir():
        files = sorted(f for f in p.rglob("*.sql") if not f.name.startswith("."))
    else:
        return []
    return [Check(str(f.relative_to(p) if p.is_dir() else f.name), f.read_text()) for f in files]


def checks_hash(checks: list[Check]) -> str:
    h = hashlib.sha256()
    for c in checks:
        h.update(c.name.encode() + b"\0" + c.sql.encode() + b"\0")
    return h.hexdigest()


def _strip(sql: str) -> str:
    """The query without trailing semicolons and comments, so it can sit in a sub-select."""
    lines = sql.rstrip().splitlines()
    while lines and (not lines[-1].strip() or lines[-1].lstrip().startswith("--")):
        lines.pop()
    return "\n".join(lines).rstrip().rstrip(";").rstrip()


def _select(check: Check) -> str:
    # jsonb's text form is one line (json_agg's is not): one output line per check
    return ("BEGIN READ ONLY;\n"
            f"SELECT coalesce(jsonb_agg(to_jsonb(pgconverge_smoke)), '[]')::text FROM (\n{_strip(check.sql)}\n"
            ") AS pgconverge_smoke;\nROLLBACK;\n")


_PROLOGUE = f"SET default_transaction_read_only = on;\nSET statement_timeout = {lit(TIMEOUT)};\n"


def script(check: Check) -> str:
    return _PROLOGUE + _select(check)


def judge(rows: list[dict[str, Any]]) -> tuple[bool, str]:
    if not rows:
        return True, ""
    if all(len(r) == 1 and list(r.values())[0] is True for r in rows):
        return True, ""
    shown = "; ".join(", ".join(f"{k}={v}" for k, v in r.items()) for r in rows[:3])
    more = f" (and {len(rows) - 3} more)" if len(rows) > 3 else ""
    return False, f"returned {shown}{more}"


def run(runner: Runner, checks: list[Check]) -> SmokeReport:
    """All checks in one psql call; when one of them errors, again one by one to say which."""
    if not checks:
        return SmokeReport(checks_hash(checks), [])
    rc, out, _err = runner.exec_psql(["-A", "-t"], _PROLOGUE + "".join(_select(c) for c in checks))
    lines = [ln for ln in out.splitlines() if ln.strip()]
    if rc == 0 and len(lines) == len(checks):
        results = []
        for c, line in zip(checks, lines):
            rows = json.loads(line)
            ok, detail = judge(rows)
            results.append(CheckResult(c.name, ok, detail, rows if not ok else []))
        return SmokeReport(checks_hash(checks), results)
    results = []
    for c in checks:
        try:
            rows = runner.query_json(script(c)) or []
        except PsqlError as e:
            results.append(CheckResult(c.name, False, f"error: {e.message}"))
            continue
        ok, detail = judge(rows)
        results.append(CheckResult(c.name, ok, detail, rows if not ok else []))
    return SmokeReport(checks_hash(checks), results)
