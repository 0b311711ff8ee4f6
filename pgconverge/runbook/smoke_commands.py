"""Smoke checks beyond SQL: commands from group data (``pgconverge_smoke_commands``), run through
pyinfra on other hosts of the inventory (an application server's HTTP health check, say).

This module holds the records and the judging; ``pgconverge.pyinfra.smoke_commands`` runs them.
A command is wrapped so that the host's shell reports its exit code on the last line of its output
(pyinfra's connectors report only success or failure), and so that coreutils ``timeout`` stops it
when it runs too long, whatever the connector does.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any

TAIL_LINES = 20
TAIL_CHARS = 2000
DEFAULT_TIMEOUT = 60.0
TIMED_OUT = (124, 137)  # coreutils timeout: TERM sent (124), then KILL after the grace (137)
GRACE = 5  # seconds between TERM and KILL

_RC_MARK = "pgconverge-smoke-rc="
_RC_LINE = re.compile(r"^" + re.escape(_RC_MARK) + r"(\d+)\s*$")
# user:password@ in a URL: a secret that would sit in argv and the ledger
_URL_SECRET = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s/@:]*:[^\s/@]+@")


@dataclass(frozen=True)
class SmokeCommand:
    """One entry of ``pgconverge_smoke_commands``."""

    name: str
    command: str
    hosts: tuple[str, ...]  # host names or inventory groups
    timeout: float = DEFAULT_TIMEOUT  # seconds


@dataclass
class CommandResult:
    """One command on one host, as the ledger keeps it."""

    name: str
    host: str
    exit_code: int | None  # None: the connector could not run it
    seconds: float
    tail: str
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.exit_code == 0

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "host": self.host, "passed": self.passed, "exit_code": self.exit_code,
                "seconds": round(self.seconds, 3), "tail": self.tail, "detail": self.detail}


def problem_of(command: str) -> str | None:
    """Why a command from group data is refused, if it is."""
    if not command.strip():
        return "the command is empty"
    if _URL_SECRET.search(command):
        return ("the command holds a URL with a password, which would reach the host's process list and the "
                "ledger: let the command read it from the host's environment or a file instead")
    return None


def wrapped(cmd: SmokeCommand) -> str:
    """The shell line run on the host: the command under ``timeout``, its stderr with its stdout, and
    its exit code as the last line."""
    limit = f"{cmd.timeout:g}"
    return (f"timeout -k {GRACE} {limit} sh -c {shlex.quote(cmd.command)} 2>&1; "
            f"echo {_RC_MARK}$?")


def tail_of(lines: list[str]) -> str:
    """The last lines of the output, at most TAIL_LINES lines and TAIL_CHARS characters."""
    text = "\n".join(lines[-TAIL_LINES:])
    return text[-TAIL_CHARS:]


def judge(cmd: SmokeCommand, host: str, ok: bool, lines: list[str], seconds: float) -> CommandResult:
    """The result of one run from what the connector returned: its success and its output lines."""
    rc = None
    for i in range(len(lines) - 1, -1, -1):
        m = _RC_LINE.match(lines[i])
        if m:
            rc = int(m.group(1))
            lines = lines[:i]
            break
    if rc is None:
        detail = "the host did not run the command" + ("" if ok else " (the connector failed)")
    elif rc in TIMED_OUT:
        detail = f"timed out after {cmd.timeout:g}s"
    elif rc:
        detail = f"exit code {rc}"
    else:
        detail = ""
    return CommandResult(cmd.name, host, rc, seconds, tail_of(lines), detail)


def report_json(results: list[CommandResult]) -> dict[str, Any]:
    return {"passed": all(r.passed for r in results), "commands": [r.to_json() for r in results]}


def lines(results: list[CommandResult]) -> list[str]:
    out = []
    for r in results:
        out.append(f"  {'ok  ' if r.passed else 'FAIL'} {r.name} on {r.host} ({r.seconds:.2f}s)"
                   + (f": {r.detail}" if r.detail else ""))
        if not r.passed and r.tail:
            out.extend("      " + ln for ln in r.tail.splitlines()[-5:])
    return out
