"""Shell commands on a pyinfra host: the PostgreSQL client tools, df, files.

Everything the runbook does outside psql (pg_dump, pg_restore, gzip, df, sha256sum)
runs through the host's connector, so a backup of an SSH host lands on that host
and a managed database's backup lands on the machine running pyinfra (``@local``).
Commands carry only non-secret PG* settings; a password reaches the tools through
the 0600 password file that ``operations.HostRunner`` keeps on the host.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from pyinfra.api import StringCommand


class RemoteError(Exception):
    """A shell command on the host failed; the message says what to do."""


@dataclass
class Result:
    ok: bool
    stdout: list[str]
    stderr: list[str]

    @property
    def error(self) -> str:
        return "\n".join(self.stderr or self.stdout).strip() or "no message"


def sh(host: Any, command: str, stdin: str | None = None) -> Result:
    """Run one shell command on the host."""
    kwargs = {"_stdin": stdin} if stdin is not None else {}
    ok, out = host.run_shell_command(StringCommand(command), **kwargs)
    return Result(bool(ok), list(out.stdout_lines), list(out.stderr_lines))


def must(host: Any, command: str, what: str, stdin: str | None = None) -> Result:
    res = sh(host, command, stdin)
    if not res.ok:
        raise RemoteError(f"{what} failed on {host.name}: {res.error}")
    return res


def pg_tool(env: dict[str, str], tool: str, args: list[str]) -> str:
    """A client tool with the connection as PG* variables (never a password), shell-quoted."""
    assigns = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(env.items()))
    prefix = f"env {assigns} " if assigns else ""
    return prefix + " ".join(shlex.quote(a) for a in [tool, *args])


def free_kb(host: Any, path: str) -> int:
    """Free kilobytes on the file system holding `path` (or its nearest existing parent)."""
    res = must(host, f"d={shlex.quote(path)}; while [ ! -d \"$d\" ]; do d=$(dirname \"$d\"); done; "
                     "df -Pk \"$d\" | tail -n 1", "df")
    fields = res.stdout[-1].split()
    return int(fields[3])


def write_private_file(host: Any, text: str, directory: str | None = None) -> str:
    """A 0600 temporary file on the host holding `text`, sent on stdin; returns its path."""
    where = f"-p {shlex.quote(directory)} .pgconverge-XXXXXXXX" if directory else "-t pgconverge-XXXXXXXX"
    res = must(host, f"umask 077 && f=$(mktemp {where}) && cat > \"$f\" && echo \"$f\"",
               "writing a temporary file", stdin=text)
    return res.stdout[-1].strip()


def remove(host: Any, *paths: str) -> None:
    if paths:
        sh(host, "rm -f -- " + " ".join(shlex.quote(p) for p in paths))


def file_facts(host: Any, path: str) -> tuple[int, str]:
    """(size in bytes, sha256) of a file on the host."""
    q = shlex.quote(path)
    res = must(host, f"stat -c %s {q} && sha256sum {q}", f"reading {path}")
    return int(res.stdout[0].strip()), res.stdout[1].split()[0]
