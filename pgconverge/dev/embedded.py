"""A local PostgreSQL cluster for development and tests, run from the system's binaries.

Only the standard library is imported at module level (psycopg is imported where it is used), so
that `python -m pgconverge.dev.embedded stop` keeps working in a half-installed environment.
"""

from __future__ import annotations

import argparse
import fcntl
import glob
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import sys
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["Cluster", "EmbeddedError", "default_cluster", "find_bindir"]

PG_USER = "postgres"  # the OS user that owns the server when we run as root
_BEGIN = "# BEGIN pgconverge (managed: rewritten on every start)"
_END = "# END pgconverge"
# sun_path is 108 bytes on Linux; the socket file name is ".s.PGSQL.<port>".
_MAX_SOCKET_DIR = 107 - len("/.s.PGSQL.65535")


class EmbeddedError(RuntimeError):
    """The embedded cluster cannot be found, started or used."""


def _has_server(bindir: Path) -> bool:
    return (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file()


def _version_key(path: str) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin: compare versions numerically ("9.6" < "15").
    return tuple(int(n) for n in re.findall(r"\d+", Path(path).parent.name))


def find_bindir() -> Path:
    """The directory holding initdb and pg_ctl."""
    env = os.environ.get("PGCONVERGE_PG_BINDIR")
    if env:
        if not _has_server(Path(env)):
            raise EmbeddedError(f"PGCONVERGE_PG_BINDIR={env} has no initdb/pg_ctl")
        return Path(env)
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
        # Debian's pg_config comes from libpq-dev too, without any server next to it.
        if _has_server(Path(out.stdout.strip())):
            return Path(out.stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        pass
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    for candidate in found:
        if _has_server(Path(candidate)):
            return Path(candidate)
    raise EmbeddedError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: run `make setup` "
        "(it installs the `postgresql` package), or set PGCONVERGE_PG_BINDIR"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _has_c_utf8() -> bool:
    try:
        out = subprocess.run(["locale", "-a"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return False
    return any(line.strip().lower().replace("-", "") == "c.utf8" for line in out.splitlines())


class Cluster:
    """One PostgreSQL cluster under `base_dir`: data/, run/ (unix socket), postgres.log, port."""

    def __init__(self, base_dir: Path, port: int | None = None) -> None:
        # Absolute, because the socket path goes into postgresql.conf and into conninfo strings.
        self.base_dir = Path(base_dir).absolute()
        self.data_dir = self.base_dir / "data"
        self.run_dir = self.base_dir / "run"
        self.log_file = self.base_dir / "postgres.log"
        self._port_file = self.base_dir / "port"
        self._port = port
        self._bindir: Path | None = None

    def __repr__(self) -> str:
        return f"Cluster({str(self.base_dir)!r}, port={self._port})"

    @property
    def bindir(self) -> Path:
        if self._bindir is None:
            self._bindir = find_bindir()
        return self._bindir

    @property
    def port(self) -> int:
        if self._port is None:
            with self._lock():
                if self._port_file.exists():
                    self._port = int(self._port_file.read_text().strip())
                else:
                    self._port = _free_port()
                    self._port_file.write_text(f"{self._port}\n")
        return self._port

    # -- process control ---------------------------------------------------------------

    @contextmanager
    def _lock(self) -> Iterator[None]:
        # Serializes initdb/start/stop between processes (two pytest sessions, make deploy...).
        self.base_dir.mkdir(parents=True, exist_ok=True)
        with open(self.base_dir / ".lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _as_root(self) -> bool:
        return os.geteuid() == 0

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / tool), *args]
        if self._as_root():
            # initdb and pg_ctl refuse to run as root.
            cmd = ["runuser", "-u", PG_USER, "--", *cmd]
        # cwd: the postgres user may not be able to enter the caller's working directory.
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=self.base_dir)
        if check and proc.returncode != 0:
            raise EmbeddedError(
                f"{tool} {' '.join(args)} failed ({proc.returncode}):\n"
                f"{proc.stdout}{proc.stderr}{self._log_tail()}"
            )
        return proc

    def _log_tail(self, lines: int = 20) -> str:
        try:
            tail = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return f"--- {self.log_file} (tail) ---\n" + "\n".join(tail)

    def _give_to_postgres(self, *paths: Path) -> None:
        try:
            pw = pwd.getpwnam(PG_USER)
        except KeyError:
            raise EmbeddedError(f"no `{PG_USER}` OS user to run the server as root: run `make setup`")
        for p in paths:
            os.chown(p, pw.pw_uid, pw.pw_gid)
        # The server must reach its data and socket dirs through every parent directory.
        groups = set(os.getgrouplist(PG_USER, pw.pw_gid))
        for d in [self.base_dir, *self.base_dir.parents]:
            st = d.stat()
            if (
                st.st_mode & stat.S_IXOTH
                or (st.st_uid == pw.pw_uid and st.st_mode & stat.S_IXUSR)
                or (st.st_gid in groups and st.st_mode & stat.S_IXGRP)
            ):
                continue
            os.chmod(d, stat.S_IMODE(st.st_mode) | stat.S_IXOTH)

    def _settings(self) -> str:
        run_dir = str(self.run_dir).replace("'", "''")
        return "\n".join([
            _BEGIN,
            "listen_addresses = '127.0.0.1'",
            f"port = {self.port}",
            f"unix_socket_directories = '{run_dir}'",
            # A throwaway dev/test cluster: durability is not worth the fsyncs.
            "fsync = off",
            "synchronous_commit = off",
            "full_page_writes = off",
            "max_connections = 200",
            "shared_buffers = 256MB",
            _END,
            "",
        ])

    def _write_config(self) -> bool:
        """Write our settings block and pg_hba.conf; True when postgresql.conf changed."""
        conf = self.data_dir / "postgresql.conf"
        text = conf.read_text()
        block = self._settings()
        pattern = re.compile(re.escape(_BEGIN) + r".*?" + re.escape(_END) + r"\n?", re.S)
        new = pattern.sub(lambda _: block, text) if pattern.search(text) else text + "\n" + block
        (self.data_dir / "pg_hba.conf").write_text(
            "# managed by pgconverge.dev.embedded\n"
            "local   all          all                 trust\n"
            "local   replication  all                 trust\n"
            "host    all          all   127.0.0.1/32  scram-sha-256\n"
        )
        if new == text:
            return False
        conf.write_text(new)  # an in-place write keeps the postgres ownership
        return True

    def _initdb(self) -> None:
        if self.data_dir.exists():
            # A data dir without PG_VERSION is a failed initdb: it refuses non-empty dirs.
            shutil.rmtree(self.data_dir)
        self.data_dir.mkdir(mode=0o700)
        if self._as_root():
            self._give_to_postgres(self.data_dir)
        locale = ["--locale=C.UTF-8"] if _has_c_utf8() else ["--no-locale"]
        self._run(
            "initdb", "-D", str(self.data_dir), "-U", "postgres", "--encoding=UTF8", *locale,
            "--auth-local=trust", "--auth-host=scram-sha-256",
        )

    def ensure_started(self) -> Cluster:
        """Create the cluster if needed and start it if it is not running. Idempotent."""
        if len(str(self.run_dir)) > _MAX_SOCKET_DIR:
            raise EmbeddedError(f"socket dir path too long for a unix socket: {self.run_dir}")
        port = self.port
        with self._lock():
            self._port_file.write_text(f"{port}\n")  # an explicit port wins from now on
            if not (self.data_dir / "PG_VERSION").exists():
                self._initdb()
            self.run_dir.mkdir(exist_ok=True)
            self.log_file.touch()
            if self._as_root():
                self._give_to_postgres(self.data_dir, self.run_dir, self.log_file)
            changed = self._write_config()
            if self._is_running():
                if changed:
                    self._run("pg_ctl", "restart", "-w", "-t", "60", "-m", "fast",
                              "-D", str(self.data_dir), "-l", str(self.log_file))
            else:
                self._run("pg_ctl", "start", "-w", "-t", "60",
                          "-D", str(self.data_dir), "-l", str(self.log_file))
        return self

    def _is_running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        # pg_ctl status: 0 running, 3 not running, 4 no usable data dir.
        return self._run("pg_ctl", "status", "-D", str(self.data_dir), check=False).returncode == 0

    def is_running(self) -> bool:
        return self._is_running()

    def postmaster_pid(self) -> int | None:
        if not self._is_running():
            return None
        return int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])

    def stop(self) -> None:
        """Fast shutdown (rolls back open transactions). A no-op when stopped."""
        if not self.base_dir.exists():
            return
        with self._lock():
            if self._is_running():
                self._run("pg_ctl", "stop", "-w", "-t", "60", "-m", "fast", "-D", str(self.data_dir))

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    @contextmanager
    def session(
        self, stop: bool = True, cleanup: Callable[[Cluster], None] | None = None
    ) -> Iterator[Cluster]:
        """Use the started cluster for a while, alongside other processes doing the same.

        `cleanup` runs only when no other session uses the cluster (e.g. to drop leftovers of a
        crashed run without hurting a concurrent one). On exit the cluster is stopped only if no
        other session still uses it. POSIX record locks (lockf) are used because they convert
        exclusive -> shared atomically.
        """
        self.base_dir.mkdir(parents=True, exist_ok=True)
        with open(self.base_dir / ".users", "a+") as f:  # a+: a shared lock needs read access
            try:
                fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                alone = True
            except OSError:
                alone = False
                # Before starting: a last user stopping right now then finishes first.
                fcntl.lockf(f, fcntl.LOCK_SH)
            self.ensure_started()
            if alone:
                if cleanup is not None:
                    cleanup(self)
                fcntl.lockf(f, fcntl.LOCK_SH)
            try:
                yield self
            finally:
                if stop:
                    try:
                        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except OSError:
                        pass  # another session still uses it
                    else:
                        self.stop()

    # -- connections -------------------------------------------------------------------

    def conninfo(self, dbname: str = "postgres", user: str = "postgres") -> str:
        """libpq keyword/value string over the unix socket (trust auth, so no password)."""

        def q(v: str) -> str:
            if v and not re.search(r"[\s'\\]", v):
                return v
            return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"

        return f"host={q(str(self.run_dir))} port={self.port} user={q(user)} dbname={q(dbname)}"

    def url(self, dbname: str = "postgres", user: str = "postgres") -> str:
        host = urllib.parse.quote(str(self.run_dir), safe="")
        return (
            f"postgresql://{urllib.parse.quote(user, safe='')}@{host}:{self.port}/"
            f"{urllib.parse.quote(dbname, safe='')}"
        )

    def create_database(self, name: str, template: str = "template0") -> str:
        """Create `name`; returns its conninfo."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
        return self.conninfo(name)

    def ensure_database(self, name: str, template: str = "template0") -> str:
        """Create `name` unless it exists; returns its conninfo."""
        import psycopg

        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        return self.conninfo(name) if exists else self.create_database(name, template)

    def drop_database(self, name: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def default_cluster() -> Cluster:
    return Cluster(Path(os.environ.get("PGCONVERGE_HOME", ".pgconverge")) / "cluster")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pgconverge.dev.embedded", description="Manage the embedded PostgreSQL cluster."
    )
    parser.add_argument("--dir", type=Path, help="cluster base dir (default: $PGCONVERGE_HOME/cluster)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("start", help="create (if needed) and start the cluster")
    sub.add_parser("stop", help="stop the cluster")
    sub.add_parser("status", help="show whether it runs; exit 3 when stopped")
    p_url = sub.add_parser("url", help="print a postgresql:// URL for a database")
    p_url.add_argument("dbname", nargs="?", default="postgres")
    sub.add_parser("destroy", help="stop the cluster and delete its files")
    args = parser.parse_args(argv)
    cluster = Cluster(args.dir) if args.dir else default_cluster()
    try:
        if args.command == "start":
            cluster.ensure_started()
            print(f"running: {cluster.url()}  (log: {cluster.log_file})")
        elif args.command == "stop":
            cluster.stop()
            print(f"stopped: {cluster.base_dir}")
        elif args.command == "status":
            running = cluster.is_running()
            print(f"{'running' if running else 'stopped'}: {cluster.base_dir}")
            if running:
                print(f"  url:      {cluster.url()}\n  conninfo: {cluster.conninfo()}")
            return 0 if running else 3
        elif args.command == "url":
            print(cluster.url(args.dbname))
        elif args.command == "destroy":
            cluster.destroy()
            print(f"destroyed: {cluster.base_dir}")
    except EmbeddedError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
