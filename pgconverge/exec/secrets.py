"""Where a password lives while pgconverge runs, and what the processes it starts inherit.

- A URL with a password read from an environment variable (``url_env`` in group data, ``--target
  env:VAR``) is taken out of this process's environment when it is read and kept in memory, so that
  no child (psql, pg_dump, the shells pyinfra's local connectors start) inherits it.
- A local psql or pg_dump reads its password from an anonymous in-memory file (Linux
  ``memfd_create``) handed to it as an inherited descriptor: nothing is written to a disk, and the
  file is gone with the last process holding it, kill -9 included. Where memfd is missing, a 0600
  file named after the creating process (``pgconverge-<pid>-*.pgpass``) is used for the call only,
  and files of dead creators are removed at the next start (``sweep_stale``).
- A local child is asked to stop when its parent dies (Linux ``PR_SET_PDEATHSIG``): SIGINT, on
  which psql cancels the statement running and stops its script.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import signal
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

# Files of ours: pgconverge-<pid of the creator>-<random>.pgpass. The old unnamed form
# (pgconverge-<random>.pgpass, before the pid was in the name) is swept by age.
_OURS = re.compile(r"^pgconverge-(\d+)-[A-Za-z0-9_]+\.pgpass$")
_LEGACY = re.compile(r"^pgconverge-[A-Za-z0-9_]+\.pgpass$")
_LEGACY_AGE = 24 * 3600  # no single psql call of an old version lasted a day

# URLs taken out of the environment, by variable name: read again when the variable is set anew.
_TAKEN: dict[str, str] = {}


def env_url(var: str, named_by: str) -> str:
    """The URL in environment variable `var`; when it holds a password, removed from this process's
    environment so that no child inherits it (a URL without one stays, for the user's own commands).
    `named_by` says where the name came from, for the message when it is unset."""
    if var in os.environ:
        if not _holds_password(os.environ[var]):
            _TAKEN.pop(var, None)
            return os.environ[var]
        _TAKEN[var] = os.environ.pop(var)
    if var not in _TAKEN:
        raise ValueError(f"environment variable {var} (named by {named_by}) is not set: export it with the "
                         "connection URL before running pgconverge")
    return _TAKEN[var]


def _holds_password(url: str) -> bool:
    from psycopg.conninfo import conninfo_to_dict

    try:
        return bool(conninfo_to_dict(url).get("password"))
    except Exception:  # unparsable: the caller's parse reports it; keep it out of children anyway
        return True


def child_environment(conn_env: Mapping[str, str], password: str | None) -> dict[str, str]:
    """The environment of a local psql or pg_dump: ours without any PG* setting and without any
    variable holding the connection's password, plain or percent-encoded (a URL the caller
    exported under another name), plus the connection's own non-secret PG* settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PG") and not (password and (password in v or password in unquote(v)))}
    env.update(conn_env)
    return env


def passfile_line(password: str) -> str:
    escaped = password.replace("\\", "\\\\").replace(":", "\\:")
    return f"*:*:*:*:{escaped}\n"


@dataclass
class PasswordHandle:
    """A password file for one child: ``path`` goes into PGPASSFILE, ``fds`` to the child's
    ``pass_fds``. ``close()`` right after the child started (memfd: the child holds its own copy;
    a disk file stays until ``remove()``)."""

    path: str
    fds: tuple[int, ...] = ()
    on_disk: bool = False

    def close(self) -> None:
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds = ()

    def remove(self) -> None:
        self.close()
        if self.on_disk:
            Path(self.path).unlink(missing_ok=True)


def _memfd_supported() -> bool:
    return hasattr(os, "memfd_create")


def password_file(password: str, use_memfd: bool | None = None) -> PasswordHandle:
    """A 0600 password file for one child: in memory where the system allows it, else on disk."""
    if use_memfd is None:
        use_memfd = _memfd_supported()
    data = passfile_line(password).encode()
    if use_memfd:
        try:
            fd = os.memfd_create("pgconverge-pgpass", os.MFD_CLOEXEC)
        except OSError:
            use_memfd = False
        else:
            os.fchmod(fd, 0o600)  # libpq ignores a password file that others may read (memfd starts 0777)
            os.write(fd, data)
            return PasswordHandle(f"/proc/self/fd/{fd}" if Path("/proc/self/fd").is_dir() else f"/dev/fd/{fd}",
                                  (fd,))
    sweep_stale()
    fd, path = tempfile.mkstemp(prefix=f"pgconverge-{os.getpid()}-", suffix=".pgpass")  # mkstemp: 0600
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return PasswordHandle(path, (), True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def sweep_stale(directory: str | None = None, alive: Callable[[int], bool] = pid_alive) -> list[str]:
    """Remove password files of ours whose creating process is gone (a kill -9 leaves them);
    returns the paths removed."""
    where = Path(directory or tempfile.gettempdir())
    removed = []
    try:
        entries = list(where.iterdir())
    except OSError:
        return removed
    now = time.time()
    for p in entries:
        m = _OURS.match(p.name)
        try:
            if m:
                stale = int(m.group(1)) != os.getpid() and not alive(int(m.group(1)))
            elif _LEGACY.match(p.name):
                stale = now - p.stat().st_mtime > _LEGACY_AGE
            else:
                continue
            if stale and p.is_file() and not p.is_symlink():
                p.unlink()
                removed.append(str(p))
        except OSError:
            continue  # another user's file, or gone meanwhile
    return removed


# -- parent death -------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    if not os.uname().sysname == "Linux":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl
    except (OSError, AttributeError):
        return None


# resolved once, in the parent: the child between fork and exec only calls it
_PRCTL = _load_prctl()


def stop_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive SIGINT when this process dies (None where the
    system has no such thing). SIGINT: psql cancels the running statement and ends its script;
    the server rolls back the open transaction."""
    if _PRCTL is None:
        return None
    prctl = _PRCTL
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGINT), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the line above: nobody will signal us
            os._exit(1)

    return preexec
