"""An environment's settings, read from pyinfra group data (``pgconverge_*`` keys).

group_data/all.py holds the defaults, group_data/<env>.py overrides them, and
``--data key=value`` on the pyinfra command line overrides both (strings, hence
the lenient parsing of booleans and numbers). The same reader serves the CLI,
which loads those files directly (``load_group_data``) when it needs an
environment's settings outside pyinfra.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

BACKUP_FORMATS = ("custom", "sql.gz")


def as_bool(value: Any, default: bool = False) -> bool:
    """group data holds booleans; ``--data key=value`` gives strings."""
    if value is None or value == "":
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "y", "on")
    return bool(value)


def as_list(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(x.strip() for x in value.split(",") if x.strip())
    return tuple(str(x) for x in value)


def major_version(value: Any) -> int:
    """15, "15", 150000 and "150004" all mean major version 15."""
    n = int(str(value).strip())
    return n // 10000 if n >= 1000 else n


@dataclass(frozen=True)
class EnvSettings:
    """Everything the runbook needs to know about one environment."""

    env: str = "dev"
    sql: tuple[str, ...] = ("sql/schema",)
    smoke: str | None = "sql/smoke"
    # planning policy (passed to the engine unchanged)
    allow_hazards: tuple[str, ...] = ()
    drops: tuple[str, ...] = ()
    only_schemas: tuple[str, ...] = ()
    exclude_schemas: tuple[str, ...] = ()
    lock_timeout: str | None = None
    statement_timeout: str | None = None
    lock_retries: int | None = None  # retries of a step whose lock was not granted (engine default: 5)
    check: bool = False
    # preflight
    min_server_version: int = 15
    required_extensions: tuple[str, ...] = ()
    shadow: Any = None  # a connection spec for the shadow server, when the role lacks CREATEDB
    space_factor: float = 2.0
    # backups
    backup: bool = True
    backup_dir: str = "backups/{env}"
    backup_format: str = "custom"
    backup_keep: int = 7
    backup_max_age_days: float = 30.0
    backup_when_unchanged: bool = False
    # after the change
    analyze: bool = True
    verify_unchanged: bool = False  # smoke checks + a ledger row even when the plan is empty
    # the production gate
    require_signoff: bool = False
    signoff_file: str = "signoffs/{env}.yml"
    signoff_from: str = "staging"
    # restore
    confirm_restore: bool = False
    # where things are written and who does it
    plans_dir: str = "plans"
    actor: str | None = None
    bindir: str | None = None  # PostgreSQL client binaries on the host (default: found on PATH)

    @classmethod
    def from_data(cls, data: Any) -> EnvSettings:
        """From pyinfra ``host.data`` (or any mapping with ``.get``)."""

        def get(key: str, default: Any = None) -> Any:
            value = data.get(f"pgconverge_{key}")
            return default if value is None else value

        env = str(get("env", "dev"))
        fmt = str(get("backup_format", "custom")).lstrip(".")
        if fmt not in BACKUP_FORMATS:
            raise ValueError(f"pgconverge_backup_format must be one of {', '.join(BACKUP_FORMATS)}, not {fmt!r}")
        sql = get("sql", "sql/schema")
        smoke = get("smoke", "sql/smoke")
        return cls(
            env=env,
            sql=as_list(sql) if not isinstance(sql, str) or "," in sql else (sql,),
            smoke=str(smoke) if smoke else None,
            allow_hazards=as_list(get("allow_hazards")),
            drops=as_list(get("drops")),
            only_schemas=as_list(get("only_schemas")),
            exclude_schemas=as_list(get("exclude_schemas")),
            lock_timeout=get("lock_timeout"),
            statement_timeout=get("statement_timeout"),
            lock_retries=int(get("lock_retries")) if get("lock_retries") is not None else None,
            check=as_bool(get("check")),
            min_server_version=major_version(get("min_server_version", 15)),
            required_extensions=as_list(get("required_extensions")),
            shadow=get("shadow"),
            space_factor=float(get("backup_space_factor", 2.0)),
            backup=as_bool(get("backup"), True),
            backup_dir=str(get("backup_dir", "backups/{env}")).format(env=env),
            backup_format=fmt,
            backup_keep=int(get("backup_keep", 7)),
            backup_max_age_days=float(get("backup_max_age_days", 30)),
            backup_when_unchanged=as_bool(get("backup_when_unchanged")),
            analyze=as_bool(get("analyze"), True),
            verify_unchanged=as_bool(get("verify_unchanged")),
            require_signoff=as_bool(get("require_signoff")),
            signoff_file=str(get("signoff_file", "signoffs/{env}.yml")).format(env=env),
            signoff_from=str(get("signoff_from", "staging")),
            confirm_restore=as_bool(get("confirm_restore")),
            plans_dir=str(get("plans_dir", "plans")),
            actor=get("actor"),
            bindir=get("bindir"),
        )

    def engine_options(self) -> dict[str, Any]:
        """Keyword options for ``api.Options.build``."""
        return dict(allow_hazards=list(self.allow_hazards), drops=list(self.drops),
                    only_schemas=list(self.only_schemas), exclude_schemas=list(self.exclude_schemas),
                    lock_timeout=self.lock_timeout or None, statement_timeout=self.statement_timeout or None,
                    retries=self.lock_retries)

    def tool(self, name: str) -> str:
        """The path of a PostgreSQL client program on the host."""
        return f"{self.bindir.rstrip('/')}/{name}" if self.bindir else name

    def resolved_actor(self) -> str:
        """Who runs this: group data, then $PGCONVERGE_ACTOR, then user@machine."""
        if self.actor:
            return str(self.actor)
        if os.environ.get("PGCONVERGE_ACTOR"):
            return os.environ["PGCONVERGE_ACTOR"]
        import getpass
        import socket

        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        return f"{user}@{socket.gethostname()}"


def safe_name(text: str) -> str:
    """A file-system-safe version of a host or database name."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text.lstrip("@")).strip("._")
    return cleaned or "default"


def load_group_data(env: str, root: str | os.PathLike = ".") -> dict[str, Any]:
    """group_data/all.py then group_data/<env>.py, as pyinfra merges them, read as plain Python.

    Used by the CLI (sign-off, drill) outside a pyinfra run."""
    base = Path(root) / "group_data"
    data: dict[str, Any] = {}
    found = False
    for name in ("all", env):
        path = base / f"{name}.py"
        if not path.exists():
            continue
        found = found or name == env
        scope: dict[str, Any] = {"__file__": str(path), "__name__": f"group_data.{name}"}
        exec(compile(path.read_text(), str(path), "exec"), scope)
        data.update({k: v for k, v in scope.items() if not k.startswith("_")})
    if not found:
        raise FileNotFoundError(f"no group data for environment {env!r}: expected {base / (env + '.py')}")
    data.setdefault("pgconverge_env", env)
    return data


def setting_keys() -> list[str]:
    """The group data keys this module reads (for docs and checks)."""
    renamed = {"space_factor": "backup_space_factor"}
    return [f"pgconverge_{renamed.get(f.name, f.name)}" for f in fields(EnvSettings)]


# --------------------------------------------------------------------------- the databases of a host


def database_specs(data: Any) -> list[dict]:
    """The databases of this host, as connection specs for ``operations.converge``.

    With ``pgconverge_embedded`` the embedded cluster is started (if needed), each database
    is created if missing, and its socket and port are filled in.
    """
    specs = [dict(s) for s in (data.get("pgconverge_databases") or [])]
    if not specs:
        raise ValueError("group data names no databases: set pgconverge_databases")
    if data.get("pgconverge_embedded"):
        from pgconverge.dev.embedded import default_cluster

        cluster = default_cluster()
        cluster.ensure_started()
        for spec in specs:
            spec.setdefault("host", str(cluster.run_dir))
            spec.setdefault("port", str(cluster.port))
            spec.setdefault("user", "postgres")
            cluster.ensure_database(spec["dbname"])
    return specs


def label_of(spec: str | dict) -> str:
    """A printable name for a database spec (never its URL, which may hold a password)."""
    if isinstance(spec, dict):
        for key in ("name", "dbname", "service"):
            if spec.get(key):
                return str(spec[key])
        if spec.get("url_env"):
            return f"${spec['url_env']}"
        return "database"
    from pgconverge.exec.runner import Conn

    return Conn.parse(spec).dbname or "database"
