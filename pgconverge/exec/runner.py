"""The one way SQL reaches a server: psql, fed on stdin.

The CLI, the Python API and the pyinfra operations all run the same psql
scripts; only the transport differs (a local subprocess here, the pyinfra host's
connector in ``pgconverge.operations``). Connection settings travel as PG*
environment variables and a password only ever through a 0600 password file, so
no secret is ever part of a command line.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import psycopg
from psycopg.conninfo import conninfo_to_dict

from pgconverge.exec.secrets import child_environment, env_url, password_file, passfile_line, stop_with_parent
from pgconverge.quoting import lit

__all__ = ["Conn", "ConnectionSettingError", "LocalRunner", "PsqlError", "Runner", "conn_from_spec",
           "passfile_line", "parse_psql_error", "shell_command"]

# "-f -" reads stdin as a file, so errors carry "psql:<stdin>:LINE:"; -w: never prompt for a password
PSQL_FLAGS = ["-X", "-q", "-w", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose", "-f", "-"]

# libpq keywords and the environment variables that carry them
ENV_FOR_KEYWORD = {
    "host": "PGHOST", "hostaddr": "PGHOSTADDR", "port": "PGPORT", "dbname": "PGDATABASE", "user": "PGUSER",
    "passfile": "PGPASSFILE", "service": "PGSERVICE", "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY", "connect_timeout": "PGCONNECT_TIMEOUT",
    "application_name": "PGAPPNAME", "options": "PGOPTIONS", "target_session_attrs": "PGTARGETSESSIONATTRS",
}

_ERROR = re.compile(r"^psql:[^:]*:(\d+): (ERROR|FATAL):\s+(?:([0-9A-Z]{5}): )?(.*)$")


class ConnectionSettingError(ValueError):
    """A connection string or spec pgconverge cannot use; the message never holds a password."""


class PsqlError(Exception):
    """psql failed. Carries PostgreSQL's message, its SQLSTATE and the script line."""

    def __init__(self, message: str, sqlstate: str | None = None, line: int | None = None, detail: str = "",
                 position_line: int | None = None):
        self.message = message
        self.position_line = position_line  # "LINE n:" inside the failing statement, when PostgreSQL gave one
        self.sqlstate = sqlstate
        self.line = line
        self.detail = detail
        super().__init__(message + (f"\n{detail}" if detail else ""))


def parse_psql_error(stderr: str) -> PsqlError:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        m = _ERROR.match(ln)
        if m:
            extra = [x.strip() for x in lines[i + 1:] if x.split(":", 1)[0] in ("DETAIL", "HINT", "CONTEXT")]
            pos = next((int(p.group(1)) for x in lines[i + 1:] if (p := re.match(r"^LINE (\d+):", x))), None)
            return PsqlError(m.group(4), m.group(3), int(m.group(1)), "\n".join(extra), pos)
    text = "\n".join(ln for ln in lines if not ln.startswith("LOCATION:")) or "psql failed without a message"
    m = re.search(r"(?:ERROR|FATAL):\s+(?:([0-9A-Z]{5}): )?(.*)", text)
    if m:
        return PsqlError(m.group(2), m.group(1))
    return PsqlError(text)


# What libpq says when it could not connect (psql and pg_dump alike), and the SQLSTATEs of refusals
_CONNECT_FAILED = re.compile(r"(?:psql|pg_dump|pg_restore): error: (?:connection to server|could not connect)")
_AUTH_STATES = {"28P01": "the password was refused", "28000": "the server refused this user"}


def connection_error(stderr: str, conn: Conn) -> PsqlError | None:
    """A connection failure, naming the database, the server and the user (never the password),
    with what to check; None when `stderr` is about something else."""
    if not _CONNECT_FAILED.search(stderr):
        return None
    fatal = re.search(r"FATAL:\s+(?:([0-9A-Z]{5}): )?(.*)", stderr)
    state, cause = (fatal.group(1), fatal.group(2).strip()) if fatal else (None, stderr.strip().splitlines()[-1])
    cause = re.sub(r"^(?:psql|pg_dump|pg_restore): error: ", "", cause)
    if state == "28P01" or "password authentication failed" in cause:
        state = "28P01"  # libpq prints no SQLSTATE for a failed connection
        hint = ("the password was refused: check the password of this user where it comes from (the URL in "
                "url_env or --target env:VAR, a pg service file or a password file)")
    elif "no password supplied" in cause:
        hint = "the server asks for a password and none was given: add it to the URL, a service or a password file"
    elif state in _AUTH_STATES:
        hint = f"{_AUTH_STATES[state]}: check pg_hba.conf and the role's LOGIN right"
    else:
        hint = "check that the server is up and reachable from here, and the connection settings"
    return PsqlError(f"cannot connect to {conn.endpoint()}: {cause}; {hint}", state)


def find_tool(name: str) -> str:
    """A PostgreSQL client tool (psql, pg_dump, pg_restore): on PATH, else beside the server binaries."""
    found = shutil.which(name)
    if found:
        return found
    from pgconverge.dev.embedded import find_bindir

    return str(find_bindir() / name)


def find_psql() -> str:
    return find_tool("psql")


@dataclass
class Conn:
    """Where a database is, without its secret in anything printable.

    ``env`` holds the non-secret PG* variables; ``password`` stays in memory and
    is written only to a private password file while psql runs.
    """

    env: dict[str, str] = field(default_factory=dict)
    password: str | None = field(default=None, repr=False)
    # a database the tool chose (shadow, rehearsal, scratch): named on the command line, where it wins
    # over a service file's dbname (PGDATABASE would not: libpq reads the service first)
    database: str | None = None
    # a user the tool chose (a scratch database's own role): on the command line (-U), where it wins
    # over a service file's user as the database does
    user: str | None = None

    @classmethod
    def parse(cls, target: str, where: str = "the connection string") -> Conn:
        """A URL or libpq keyword string; `where` names its origin in messages."""
        try:
            params = conninfo_to_dict(target)
        except psycopg.ProgrammingError as e:
            raise ConnectionSettingError(_parse_problem(str(e), where)) from None
        password = params.pop("password", None)
        env = {}
        for key, value in params.items():
            if key not in ENV_FOR_KEYWORD:
                raise ConnectionSettingError(_unknown_option(key, where))
            env[ENV_FOR_KEYWORD[key]] = str(value)
        return cls(env, password)

    @property
    def dbname(self) -> str:
        return self.database or self.env.get("PGDATABASE", "")

    def with_database(self, dbname: str) -> Conn:
        return Conn({**self.env, "PGDATABASE": dbname}, self.password, dbname, self.user)

    def with_login(self, user: str, password: str | None) -> Conn:
        """The same server and database as another user, with that user's password (or none)."""
        env = {k: v for k, v in self.env.items() if k not in ("PGUSER", "PGPASSFILE")}
        return Conn({**env, "PGUSER": user}, password, self.database, user)

    def args(self) -> list[str]:
        """Command-line arguments of psql and pg_dump that pick the database (and the user)."""
        return (["-d", self.database] if self.database else []) + (["-U", self.user] if self.user else [])

    def describe(self) -> str:
        """A printable name for messages: never the password."""
        host = self.env.get("PGHOST", "") or self.env.get("PGSERVICE", "")
        return f"{self.dbname or '?'}@{host or 'local'}"

    def endpoint(self) -> str:
        """Server and user, for a connection failure: never the password."""
        host = self.env.get("PGHOST") or self.env.get("PGHOSTADDR")
        where = (f"service {self.env['PGSERVICE']}" if "PGSERVICE" in self.env and not host
                 else f"host {host or 'the local socket'}")
        port = f", port {self.env['PGPORT']}" if "PGPORT" in self.env else ""
        user = self.env.get("PGUSER") or "the default user (the login name, or the service's)"
        return f"database {self.dbname or '(default)'} on {where}{port} as user {user}"


_SUPPORTED = ", ".join(sorted(ENV_FOR_KEYWORD))


def _unknown_option(key: str, where: str) -> str:
    return (f"{where}: connection option {key!r} is not supported by pgconverge; supported: {_SUPPORTED} "
            "(and password). Remove it, or set it in a pg_service.conf service")


_QUOTED = re.compile(r'"[^"]*"')


def _parse_problem(message: str, where: str) -> str:
    # libpq's message may quote a piece of the string, which may be the password: only an option
    # name (a plain word) is repeated
    m = re.search(r'invalid (?:connection option|URI query parameter):? "(\w+)"', message)
    if m:
        return _unknown_option(m.group(1), where)
    told = _QUOTED.sub("(...)", message.strip())
    return (f"{where} is not a valid libpq connection string or URL (libpq: {told}); "
            "see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNSTRING")


def database_guard(name: str) -> str:
    """A statement that fails unless the session is in database `name`: a script meant for a scratch
    database must never run anywhere else."""
    return (f"DO $guard$ BEGIN IF current_database() <> {lit(name)} THEN RAISE EXCEPTION "
            f"'pgconverge: this script is for the scratch database %, not %', {lit(name)}, current_database(); "
            "END IF; END $guard$;\n")


class Runner:
    """Runs psql for one database. Subclasses provide the transport."""

    conn: Conn

    def exec_psql(self, args: list[str], stdin: str, on_line: Callable[[str], None] | None = None) -> tuple[int, str, str]:
        raise NotImplementedError

    def exec_tool(self, tool: str, args: list[str]) -> tuple[int, str, str]:
        """Another client tool (pg_dump) for the same database, with the same connection settings."""
        raise NotImplementedError

    def for_database(self, dbname: str) -> Runner:
        raise NotImplementedError

    def with_conn(self, conn: Conn) -> Runner:
        """The same transport with other connection settings."""
        raise NotImplementedError

    def with_login(self, user: str, password: str | None) -> Runner:
        """The same server and database, logged in as `user`."""
        return self.with_conn(self.conn.with_login(user, password))

    @property
    def name(self) -> str:
        return self.conn.describe()

    def failure(self, stderr: str) -> PsqlError:
        """The error of a failed psql: a connection failure names the server and the user."""
        return connection_error(stderr, self.conn) or parse_psql_error(stderr)

    def query_text(self, script: str) -> str:
        """Run a script whose last statement returns one value; its text as psql printed it."""
        rc, out, err = self.exec_psql(["-A", "-t"], script)
        if rc != 0:
            raise self.failure(err)
        return out

    def query_json(self, script: str) -> Any:
        """Run a script whose last statement returns one JSON value."""
        out = self.query_text(script)
        return json.loads(out) if out.strip() else None

    def run_script(self, script: str, on_line: Callable[[str], None] | None = None) -> str:
        rc, out, err = self.exec_psql([], script, on_line)
        if rc != 0:
            raise self.failure(err)
        return out

    def dump_schema(self, exclude_schemas: tuple[str, ...] = (), archive: Path | None = None) -> str:
        """``pg_dump --schema-only`` of the database, owners left out (the proof ignores them and
        a copy restored by another role could not set them). With `archive`, a custom-format
        archive is written there instead (for restore_archive) and "" returned."""
        args = ["--schema-only", "--no-owner"] + [f"--exclude-schema={s}" for s in exclude_schemas]
        if archive is not None:
            args += ["--format=custom", f"--file={archive}"]
        rc, out, err = self.exec_tool("pg_dump", args)
        if rc != 0:
            raise connection_error(err, self.conn) or PsqlError(f"pg_dump of {self.name} failed: "
                                                                f"{err.strip() or 'no message'}")
        return out

    def restore_archive(self, archive: Path, jobs: int = 1, role: str | None = None) -> None:
        """pg_restore of a custom-format archive into this database, in `jobs` sessions, stopping at
        the first error. Owners are left out, as in dump_schema. `role`: every session runs
        SET ROLE to it first (pg_restore --role)."""
        if not self.conn.database:
            # without a database pg_restore would print the script instead of restoring it
            raise PsqlError(f"pg_restore needs a database to restore into ({self.name})")
        rc, _out, err = self.exec_tool("pg_restore", ["--no-owner", "--exit-on-error", f"--jobs={int(jobs)}",
                                                      *([f"--role={role}"] if role else []), str(archive)])
        if rc != 0:
            raise PsqlError(f"pg_restore into {self.name} failed: {err.strip() or 'no message'}")


class LocalRunner(Runner):
    """psql as a local subprocess."""

    def __init__(self, target: str | Conn, psql: str | None = None):
        self.conn = target if isinstance(target, Conn) else Conn.parse(target)
        self.psql = psql or find_psql()

    def for_database(self, dbname: str) -> LocalRunner:
        return LocalRunner(self.conn.with_database(dbname), self.psql)

    def with_conn(self, conn: Conn) -> LocalRunner:
        return LocalRunner(conn, self.psql)

    def exec_psql(self, args, stdin, on_line=None):
        return self._exec([self.psql, *PSQL_FLAGS, *self.conn.args(), *args], stdin, on_line)

    def exec_tool(self, tool, args):
        return self._exec([find_tool(tool), *self.conn.args(), *args], "", None)

    def _exec(self, argv: list[str], stdin: str, on_line: Callable[[str], None] | None):
        env = child_environment(self.conn.env, self.conn.password)
        secret = password_file(self.conn.password) if self.conn.password is not None else None
        try:
            if secret:
                env["PGPASSFILE"] = secret.path
            with tempfile.TemporaryFile(mode="w+") as err:
                proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env,
                                        text=True, pass_fds=secret.fds if secret else (),
                                        preexec_fn=stop_with_parent())
                if secret:
                    secret.close()  # the child holds its own descriptor: the in-memory file dies with it
                assert proc.stdin and proc.stdout
                # stdin is written by a thread-free trick: scripts are small enough for the pipe
                # buffer only sometimes, so write then stream stdout with communicate semantics.
                if on_line is None:
                    out, _ = proc.communicate(stdin)
                else:
                    out = _stream(proc, stdin, on_line)
                err.seek(0)
                return proc.returncode, out, err.read()
        finally:
            if secret:
                secret.remove()


def _stream(proc: subprocess.Popen, stdin: str, on_line: Callable[[str], None]) -> str:
    import threading

    def feed() -> None:
        try:
            proc.stdin.write(stdin)
            proc.stdin.close()
        except BrokenPipeError:
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    lines = []
    for line in proc.stdout:
        lines.append(line)
        on_line(line.rstrip("\n"))
    proc.wait()
    writer.join()
    return "".join(lines)


def conn_from_spec(spec: str | dict, where: str = "the connection") -> Conn:
    """A connection from group data: a URL, or a dict of libpq keywords plus ``url_env``,
    the name of an environment variable (on the machine running pyinfra) that holds the URL.
    ``password`` is refused here: secrets belong in a service file, a password file or
    the environment variable (taken out of the environment once read: ``exec.secrets``)."""
    if isinstance(spec, str):
        return Conn.parse(spec, where)
    spec = dict(spec)
    if "password" in spec:
        raise ConnectionSettingError("a password in group data would end up in the repository: use url_env, "
                                     "a pg service file or a password file")
    url_env = spec.pop("url_env", None)
    spec.pop("name", None)
    if url_env:
        conn = Conn.parse(env_url(url_env, "url_env"), f"the URL in environment variable {url_env} (url_env)")
    else:
        conn = Conn()
    for key, value in spec.items():
        if key not in ENV_FOR_KEYWORD:
            raise ConnectionSettingError(f"{where}: unknown connection setting {key!r}; known: url_env, name, "
                                         f"{', '.join(ENV_FOR_KEYWORD)}")
        conn.env[ENV_FOR_KEYWORD[key]] = str(value)
    return conn


def shell_command(conn_env: dict[str, str], args: list[str], psql: str = "psql") -> str:
    """The psql command line for a remote shell: only non-secret PG* settings, shell-quoted."""
    assigns = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(conn_env.items()))
    return f"env {assigns} {shlex.quote(psql)} {' '.join(shlex.quote(a) for a in [*PSQL_FLAGS, *args])}".replace(
        "env  ", "env ")
