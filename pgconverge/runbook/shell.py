"""The runbook's view of a machine: a shell to run commands on, a console to talk to the operator.

Everything the runbook does outside psql (pg_dump, pg_restore, gzip, df, sha256sum)
goes through a ``Shell``, so a backup of an SSH host lands on that host and a managed
database's backup lands on the machine running the deploy. The runbook never knows
what carries the commands: deploys bring one over their hosts' connectors (SSH or
local), tests may bring a local one.

Commands carry only non-secret PG* settings; a password reaches the tools on stdin, into a
0600 password file on the host that lives until the tool has connected (``exec.guard``).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from pgconverge.exec.guard import guarded
from pgconverge.exec.runner import PSQL_FLAGS, Conn, Runner
from pgconverge.exec.secrets import passfile_line

if TYPE_CHECKING:
    from pgconverge.planning.hazards import Hazard
    from pgconverge.planning.steps import Plan


class RemoteError(Exception):
    """A shell command on the host failed; the message says what to do."""


@dataclass(frozen=True)
class Result:
    """What one shell command did. ``exit_code`` is 0 on success; transports that only
    report success or failure give 1 for any failure."""

    exit_code: int
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def error(self) -> str:
        return "\n".join(self.stderr or self.stdout).strip() or "no message"


class Shell(Protocol):
    """Runs shell commands on one host."""

    @property
    def name(self) -> str:
        """The host's name, for messages."""
        ...

    def run(self, command: str, stdin: str | None = None) -> Result:
        """Run one command line (already shell-quoted), feeding it `stdin` when given."""
        ...


class Console(Protocol):
    """Where the runbook reports progress and asks the operator."""

    def say(self, text: str, fg: str | None = None, bold: bool = False) -> None:
        """One or more lines of progress about this host."""
        ...

    def ask(self, question: str) -> str | None:
        """The operator's answer, or None when nobody can answer (no terminal)."""
        ...

    def show_plan(self, database: str, plan: Plan, refused: list[Hazard]) -> None:
        """A plan in full, with the hazards the policy refuses."""
        ...


def must(shell: Shell, command: str, what: str, stdin: str | None = None) -> Result:
    res = shell.run(command, stdin)
    if not res.ok:
        raise RemoteError(f"{what} failed on {shell.name}: {res.error}")
    return res


def pg_tool(env: dict[str, str], tool: str, args: list[str]) -> str:
    """A client tool with the connection as PG* variables (never a password), shell-quoted."""
    assigns = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(env.items()))
    prefix = f"env {assigns} " if assigns else ""
    return prefix + " ".join(shlex.quote(a) for a in [tool, *args])


def free_kb(shell: Shell, path: str) -> int:
    """Free kilobytes on the file system holding `path` (or its nearest existing parent)."""
    res = must(shell, f"d={shlex.quote(path)}; while [ ! -d \"$d\" ]; do d=$(dirname \"$d\"); done; "
                      "df -Pk \"$d\" | tail -n 1", "df")
    fields = res.stdout[-1].split()
    return int(fields[3])


def write_private_file(shell: Shell, text: str, directory: str | None = None) -> str:
    """A 0600 temporary file on the host holding `text`, sent on stdin; returns its path."""
    where = f"-p {shlex.quote(directory)} .pgconverge-XXXXXXXX" if directory else "-t pgconverge-XXXXXXXX"
    res = must(shell, f"umask 077 && f=$(mktemp {where}) && cat > \"$f\" && echo \"$f\"",
               "writing a temporary file", stdin=text)
    return res.stdout[-1].strip()


def remove(shell: Shell, *paths: str) -> None:
    if paths:
        shell.run("rm -f -- " + " ".join(shlex.quote(p) for p in paths))


def file_facts(shell: Shell, path: str) -> tuple[int, str]:
    """(size in bytes, sha256) of a file on the host."""
    q = shlex.quote(path)
    res = must(shell, f"stat -c %s {q} && sha256sum {q}", f"reading {path}")
    return int(res.stdout[0].strip()), res.stdout[1].split()[0]


def command_exists(shell: Shell, program: str) -> bool:
    return shell.run(f"command -v {shlex.quote(program)}").ok


class ShellRunner(Runner):
    """psql through a Shell (SSH or local alike).

    A password never travels in a command: each call streams it on stdin into a private password
    file on the host that the wrapper (``exec.guard``) removes once the tool has connected, and a
    tool whose caller died is stopped.
    """

    def __init__(self, shell: Shell, conn: Conn, psql: str = "psql"):
        self.shell = shell
        self.conn = conn
        self.psql = psql

    def _sibling(self, conn: Conn) -> ShellRunner:
        return ShellRunner(self.shell, conn, self.psql)

    def for_database(self, dbname: str) -> ShellRunner:
        return self._sibling(self.conn.with_database(dbname))

    def with_conn(self, conn: Conn) -> ShellRunner:
        return self._sibling(conn)

    def env(self) -> dict[str, str]:
        """The connection's non-secret PG* settings."""
        return dict(self.conn.env)

    def connected(self, core: str, stdin: str | None = None) -> tuple[str, str | None]:
        """(command line, stdin) that run `core` (a client tool made by ``pg_tool``, with its
        redirections) with this connection's password, if it has one."""
        if self.conn.password is None:
            return guarded(core, False), stdin
        return guarded(core, True), passfile_line(self.conn.password) + (stdin or "")

    def run_connected(self, core: str, stdin: str | None = None) -> Result:
        """Run `core` (see ``connected``) on the host."""
        return self.shell.run(*self.connected(core, stdin))

    def command(self, args: list[str], stdin: str | None = None) -> tuple[str, str | None]:
        """The psql call with `args`, as (command line, stdin)."""
        return self.connected(pg_tool(self.env(), self.psql, [*PSQL_FLAGS, *self.conn.args(), *args]), stdin)

    def exec_tool(self, tool, args):
        res = self.run_connected(pg_tool(self.env(), tool, [*self.conn.args(), *args]))
        return (0 if res.ok else res.exit_code), "\n".join(res.stdout), "\n".join(res.stderr)

    def exec_psql(self, args, stdin, on_line=None):
        res = self.shell.run(*self.command(args, stdin))
        if on_line:
            for line in res.stdout:
                on_line(line)
        return (0 if res.ok else res.exit_code), "\n".join(res.stdout), "\n".join(res.stderr)

    def close(self) -> None:
        """Nothing is kept between calls (kept for callers that tidy up)."""


class LocalShell:
    """A ``Shell`` on this machine (bash), for the CLI's runs of the runbook (``pgconverge apply --env``).
    `name` is the inventory host it stands for (``@local``), so plan files and ledger rows read as a
    deploy's do."""

    def __init__(self, name: str = "@local"):
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def run(self, command: str, stdin: str | None = None) -> Result:
        import subprocess

        p = subprocess.run(["bash", "-c", command], input=stdin or "", capture_output=True, text=True)
        return Result(p.returncode, p.stdout.splitlines(), p.stderr.splitlines())
