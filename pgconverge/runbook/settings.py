"""An environment's settings, read from a host's data (the ``pgconverge_*`` keys).

group_data/all.py holds the defaults, group_data/<env>.py overrides them, the host's
own data in inventory/<env>.py overrides both, and ``--data key=value`` on the deploy's
command line overrides everything (given as strings, hence the lenient parsing of
booleans, numbers and comma lists). The data is validated into a typed record
(``GroupData``, by msgspec): a key of the wrong type, or a ``pgconverge_*`` key that
does not exist (a typo), is an error naming the key, the type it takes and where it
came from, before anything runs.

The CLI sees the same data as a deploy: it loads the inventory with the deploy tool's
own loader (see cli/env.py).
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, get_args

import msgspec

from pgconverge.exec.durations import seconds
from pgconverge.exec.runner import ENV_FOR_KEYWORD
from pgconverge.runbook import smoke_commands

BACKUP_FORMATS = ("custom", "sql.gz")
PREFIX = "pgconverge_"

_TRUE = ("1", "true", "yes", "y", "on")
_FALSE = ("0", "false", "no", "n", "off", "")


def as_bool(value: Any, default: bool = False) -> bool:
    """group data holds booleans; ``--data key=value`` gives strings."""
    if value is None or value == "":
        return default
    if isinstance(value, str):
        return value.strip().lower() in _TRUE
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


# --------------------------------------------------------------------------- the typed record


# One database: libpq keywords (values as libpq takes them, a port may be a number), plus
# ``url_env`` (the variable holding its URL) and ``name`` (its label in plans, backups, sign-offs).
# ``password`` is a field only so that it can be refused with a better message than "unknown".
DatabaseSpec = msgspec.defstruct(
    "DatabaseSpec",
    [("name", "str | None", None), ("url_env", "str | None", None), ("password", "str | int | None", None)]
    + [(k, "str | int | None", None) for k in ENV_FOR_KEYWORD],
    kw_only=True, forbid_unknown_fields=True, module=__name__)



class SmokeCommandSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One entry of ``pgconverge_smoke_commands``: a command run through pyinfra on other hosts."""

    name: str
    command: str
    hosts: str | list[str]  # host names or inventory groups
    timeout: str | None = None  # a duration such as "10s"; default 60s


Names = str | list[str] | None  # a list, or a comma-separated string (as ``--data`` gives it)


class GroupData(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Every ``pgconverge_*`` key (without the prefix) and the type it takes. None means "not set"."""

    env: str = "dev"
    sql: Names = None
    smoke: str | bool | None = None  # False or "": no smoke checks
    smoke_commands: list[SmokeCommandSpec] | None = None
    allow_hazards: Names = None
    drops: Names = None
    unmanaged: str | None = None  # refuse | report | drop (production: report)
    only_schemas: Names = None
    exclude_schemas: Names = None
    lock_timeout: str | int | None = None
    lock_deadline: str | int | None = None
    statement_timeout: str | int | None = None
    lock_retries: int | None = None
    prove: bool | None = None
    allow_extensions: Names = None
    scratch_role: str | None = None
    check: bool | None = None
    min_server_version: int | None = None
    required_extensions: Names = None
    shadow: str | DatabaseSpec | None = None
    backup_space_factor: float | None = None
    # also the backup file that restore.py and drill.py put back (--data pgconverge_backup=FILE)
    backup: bool | str | None = None
    backup_dir: str | None = None
    backup_format: str | None = None
    backup_keep: int | None = None
    backup_max_age_days: float | None = None
    backup_when_unchanged: bool | None = None
    analyze: bool | None = None
    verify_unchanged: bool | None = None
    require_signoff: bool | None = None
    signoff_file: str | None = None
    signoff_from: str | None = None
    allowed_signers: str | None = None
    confirm_restore: bool | None = None
    # refresh.py: the environment whose newest verified backup rebuilds this one, the masking
    # scripts run in the same transaction, and a folder the host shares with that environment
    refresh_from: str | None = None
    mask: str | bool | None = None  # False: refresh without masking (only for data with nothing to hide)
    refresh_dir: str | None = None
    plans_dir: str | None = None
    plans_keep: int | None = None
    actor: str | None = None
    bindir: str | None = None
    # read by deploy.py, restore.py and drill.py rather than by the runbook itself
    databases: list[str | DatabaseSpec] | None = None
    embedded: bool | None = None
    database: str | int | None = None  # restore/drill only this database of the host
    confirm: str | bool | None = None  # restore without asking


_BOOL_KEYS = frozenset(f.name for f in msgspec.structs.fields(GroupData) if set(get_args(f.type)) == {bool, type(None)})


# environments whose plans are always proved, whatever their group data says
PROVED_ENVIRONMENTS = frozenset({"staging", "production"})

# what becomes of objects sql/ does not declare (planning/unmanaged.py), and each environment's default:
# production leaves a hand-made hotfix alone and lists it; elsewhere it is planned as a drop
UNMANAGED_POLICIES = ("refuse", "report", "drop")
UNMANAGED_DEFAULTS = {"production": "report"}


class SettingsError(ValueError):
    """A ``pgconverge_*`` key is unknown or has a value of the wrong type."""

    def __init__(self, key: str, problem: str, where: str):
        self.key, self.problem, self.where = key, problem, where
        super().__init__(f"{key}: {problem} (in {where})")


Origin = Callable[[str], str]  # key -> where its value was set, e.g. "group_data/staging.py"

_MSGSPEC_ERROR = re.compile(r"^(?P<problem>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)


def _explain(error: msgspec.ValidationError, origin: Origin) -> SettingsError:
    """msgspec's message ("Expected `int`, got `str` - at `$.backup_keep`") in group-data terms."""
    m = _MSGSPEC_ERROR.match(str(error))
    problem, path = (m.group("problem"), m.group("path") or "") if m else (str(error), "")
    top = re.match(r"^\.(\w+)(.*)$", path)
    unknown = re.match(r"^Object contains unknown field `(.+)`$", problem)
    if unknown and not top:
        name = unknown.group(1)
        known = [PREFIX + f for f in GroupData.__struct_fields__]
        close = difflib.get_close_matches(PREFIX + name, known, n=1)
        hint = f"; did you mean {close[0]}?" if close else f"; known keys: {', '.join(sorted(known))}"
        return SettingsError(PREFIX + name, f"unknown pgconverge setting{hint}", origin(PREFIX + name))
    key = PREFIX + top.group(1) if top else PREFIX + "?"
    where_inside = top.group(2) if top else path
    if unknown and key == PREFIX + "smoke_commands":
        problem = (f"unknown field `{unknown.group(1)}` of a smoke command "
                   f"(known: {', '.join(SmokeCommandSpec.__struct_fields__)})")
    elif unknown:
        fields = [f for f in DatabaseSpec.__struct_fields__ if f != "password"]
        problem = f"unknown connection setting `{unknown.group(1)}` (known: {', '.join(fields)})"
    else:
        # "| null" is how the record says "not set", which is no type a user writes
        problem = (problem[:1].lower() + problem[1:]).replace(" | null`", "`")
    return SettingsError(key + where_inside, problem, origin(key))


def _keys_of(data: Any) -> dict[str, Any]:
    """The ``pgconverge_*`` items of a mapping, or of a deploy host's ``host.data`` (which has ``dict()``)."""
    items = data.dict() if hasattr(data, "dict") and callable(data.dict) else dict(data)
    return {k: v for k, v in items.items() if isinstance(k, str) and k.startswith(PREFIX)}


def _loose(name: str, value: Any) -> Any:
    """``--data`` gives strings: "yes" / "off" are booleans where a boolean is expected."""
    if name in _BOOL_KEYS and isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    return value


def validate(data: Any, origin: Origin | str | None = None) -> GroupData:
    """The typed record of a host's ``pgconverge_*`` data; raises SettingsError.

    `origin` says where a key was set, for the message: a function of the key, or one text
    for all keys (default: the environment's group data files)."""
    raw = {k[len(PREFIX):]: v for k, v in _keys_of(data).items() if v is not None}
    env = str(raw.get("env", "dev"))
    if origin is None:
        origin = f"the data of environment {env}: group_data/all.py, group_data/{env}.py, inventory/{env}.py or --data"
    where: Origin = origin if callable(origin) else (lambda _key, text=origin: text)
    try:
        record = msgspec.convert({k: _loose(k, v) for k, v in raw.items()}, GroupData, strict=False)
    except msgspec.ValidationError as e:
        raise _explain(e, where) from None
    specs = list(record.databases or []) + ([record.shadow] if record.shadow is not None else [])
    for spec in specs:
        if not isinstance(spec, str) and spec.password is not None:
            key = PREFIX + ("shadow" if spec is record.shadow else "databases")
            raise SettingsError(key, "a password in group data would end up in the repository: use url_env, "
                                     "a pg service file or a password file", where(key))
    for name in ("lock_timeout", "lock_deadline", "statement_timeout"):
        value = getattr(record, name)
        if value is not None:
            try:
                length = seconds(value, PREFIX + name)
            except ValueError as e:
                raise SettingsError(PREFIX + name, str(e).split(": ", 1)[1], where(PREFIX + name)) from None
            if name == "lock_deadline" and length <= 0:
                raise SettingsError(PREFIX + name, "must be longer than 0 (e.g. 60s): it bounds how long a step "
                                    "retries for its lock", where(PREFIX + name))
    if record.backup_format is not None and record.backup_format.lstrip(".") not in BACKUP_FORMATS:
        key = PREFIX + "backup_format"
        raise SettingsError(key, f"must be one of {', '.join(BACKUP_FORMATS)}, not {record.backup_format!r}",
                            where(key))
    if record.unmanaged is not None and record.unmanaged.strip().lower() not in UNMANAGED_POLICIES:
        key = PREFIX + "unmanaged"
        raise SettingsError(key, f"must be one of {', '.join(UNMANAGED_POLICIES)}, not {record.unmanaged!r}",
                            where(key))
    _check_smoke_commands(record, where)
    if record.plans_keep is not None and record.plans_keep < 0:
        key = PREFIX + "plans_keep"
        raise SettingsError(key, f"must be 0 (keep every plan) or more, not {record.plans_keep}", where(key))
    return record


def _check_smoke_commands(record: GroupData, where: Origin) -> None:
    key = PREFIX + "smoke_commands"
    seen: set[str] = set()
    for i, entry in enumerate(record.smoke_commands or []):
        at = f"{key}[{i}] ({entry.name or 'no name'})"
        if not entry.name.strip():
            raise SettingsError(f"{key}[{i}]", "needs a name (it names the check in the ledger)", where(key))
        if entry.name in seen:
            raise SettingsError(at, "the name is used by an earlier entry", where(key))
        seen.add(entry.name)
        problem = smoke_commands.problem_of(entry.command)
        if problem:
            raise SettingsError(at, problem, where(key))
        if not as_list(entry.hosts):
            raise SettingsError(at, "names no hosts: give host names or inventory groups to run it on", where(key))
        if entry.timeout is not None:
            try:
                length = seconds(entry.timeout, "timeout")
            except ValueError as e:
                raise SettingsError(at, "timeout: " + str(e).split(": ", 1)[-1], where(key)) from None
            if length <= 0:
                raise SettingsError(at, "timeout: must be longer than 0 (e.g. 30s)", where(key))


def smoke_command_of(entry: SmokeCommandSpec) -> smoke_commands.SmokeCommand:
    timeout = smoke_commands.DEFAULT_TIMEOUT if entry.timeout is None else seconds(entry.timeout, "timeout")
    return smoke_commands.SmokeCommand(entry.name, entry.command, as_list(entry.hosts), float(timeout))


def spec_dict(spec: Any) -> str | dict[str, Any]:
    """A validated database spec back as the plain URL or dict that ``conn_from_spec`` takes."""
    if spec is None or isinstance(spec, str):
        return spec
    return {k: v for k, v in msgspec.structs.asdict(spec).items() if v is not None}


@dataclass(frozen=True)
class EnvSettings:
    """Everything the runbook needs to know about one environment."""

    env: str = "dev"
    sql: tuple[str, ...] = ("sql/schema",)
    smoke: str | None = "sql/smoke"
    smoke_commands: tuple[smoke_commands.SmokeCommand, ...] = ()  # run on other hosts after the SQL checks
    # planning policy (passed to the engine unchanged)
    allow_hazards: tuple[str, ...] = ()
    drops: tuple[str, ...] = ()
    unmanaged: str = "refuse"  # objects sql/ does not declare: refuse | report | drop
    only_schemas: tuple[str, ...] = ()
    exclude_schemas: tuple[str, ...] = ()
    # lock discipline (engine defaults: 500ms per attempt, retried with jittered pauses for up to 60s)
    lock_timeout: str | int | None = None
    lock_deadline: str | int | None = None
    statement_timeout: str | int | None = None
    lock_retries: int | None = None  # at most this many retries (engine default: as many as fit the deadline)
    # every non-empty plan rehearsed on a copy of the target and judged by pg_dump (off: dev only)
    prove: bool = True
    allow_extensions: tuple[str, ...] = ()  # extensions that reach outside, allowed in sql/ by name
    # a powerless role to SET ROLE to in the scratch databases when the deploy role may not create roles
    scratch_role: str | None = None
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
    allowed_signers: str = "signoffs/allowed_signers"  # who may sign sign-offs (ssh-keygen's format)
    # restore
    confirm_restore: bool = False
    # refresh (refresh.py): rebuilt from refresh_from's newest verified backup, masked by the scripts
    # in `mask` (None: no masking, set as pgconverge_mask = False); the backups are read in
    # refresh_dir/<database>/ on the host when set (a shared folder), else in refresh_from's backup
    # folder on the machine running pyinfra and sent to the host by pyinfra's file transfer
    refresh_from: str = "production"
    mask: str | None = "sql/mask"
    refresh_dir: str | None = None
    # where things are written and who does it
    plans_dir: str = "plans"
    plans_keep: int = 30  # runs of plan files kept per database (0: every one)
    actor: str | None = None
    bindir: str | None = None  # PostgreSQL client binaries on the host (default: found on PATH)

    @classmethod
    def from_data(cls, data: Any, origin: Origin | str | None = None) -> EnvSettings:
        """From a deploy host's ``host.data`` (or any mapping); raises SettingsError (see ``validate``)."""
        return cls.from_record(validate(data, origin))

    @classmethod
    def from_record(cls, g: GroupData) -> EnvSettings:
        env = g.env
        if g.prove is False and env in PROVED_ENVIRONMENTS:
            raise SettingsError("pgconverge_prove", f"the proof cannot be switched off for {env}: only a "
                                "scratch environment such as dev may plan without it", f"the settings of {env}")
        default = cls()

        def pick(value: Any, fallback: Any) -> Any:
            return fallback if value is None else value

        sql = pick(g.sql, "sql/schema")
        smoke = pick(g.smoke, "sql/smoke")
        mask = "sql/mask" if g.mask is None or g.mask is True else g.mask
        return cls(
            env=env,
            sql=as_list(sql) if not isinstance(sql, str) or "," in sql else (sql,),
            smoke=str(smoke) if smoke else None,
            smoke_commands=tuple(smoke_command_of(e) for e in g.smoke_commands or []),
            allow_hazards=as_list(g.allow_hazards),
            drops=as_list(g.drops),
            unmanaged=(g.unmanaged or UNMANAGED_DEFAULTS.get(env, "refuse")).strip().lower(),
            only_schemas=as_list(g.only_schemas),
            exclude_schemas=as_list(g.exclude_schemas),
            lock_timeout=g.lock_timeout,
            lock_deadline=g.lock_deadline,
            statement_timeout=g.statement_timeout,
            lock_retries=g.lock_retries,
            prove=as_bool(g.prove, True),
            allow_extensions=as_list(g.allow_extensions),
            scratch_role=g.scratch_role or None,
            check=as_bool(g.check),
            min_server_version=major_version(pick(g.min_server_version, 15)),
            required_extensions=as_list(g.required_extensions),
            shadow=spec_dict(g.shadow),
            space_factor=float(pick(g.backup_space_factor, default.space_factor)),
            backup=as_bool(g.backup, True),
            backup_dir=str(pick(g.backup_dir, default.backup_dir)).format(env=env),
            backup_format=pick(g.backup_format, default.backup_format).lstrip("."),
            backup_keep=pick(g.backup_keep, default.backup_keep),
            backup_max_age_days=float(pick(g.backup_max_age_days, default.backup_max_age_days)),
            backup_when_unchanged=as_bool(g.backup_when_unchanged),
            analyze=as_bool(g.analyze, True),
            verify_unchanged=as_bool(g.verify_unchanged),
            require_signoff=as_bool(g.require_signoff),
            signoff_file=str(pick(g.signoff_file, default.signoff_file)).format(env=env),
            signoff_from=pick(g.signoff_from, default.signoff_from),
            allowed_signers=str(pick(g.allowed_signers, default.allowed_signers)),
            confirm_restore=as_bool(g.confirm_restore),
            refresh_from=pick(g.refresh_from, default.refresh_from),
            mask=str(mask) if mask is not False and str(mask).strip().lower() not in _FALSE else None,
            refresh_dir=str(g.refresh_dir).format(env=env) if g.refresh_dir else None,
            plans_dir=pick(g.plans_dir, default.plans_dir),
            plans_keep=int(pick(g.plans_keep, default.plans_keep)),
            actor=g.actor,
            bindir=g.bindir,
        )

    def engine_options(self) -> dict[str, Any]:
        """Keyword options for ``api.Options.build``."""
        return dict(allow_hazards=list(self.allow_hazards), drops=list(self.drops), unmanaged=self.unmanaged,
                    only_schemas=list(self.only_schemas), exclude_schemas=list(self.exclude_schemas),
                    lock_timeout=self.lock_timeout or None, lock_deadline=self.lock_deadline or None,
                    statement_timeout=self.statement_timeout or None, retries=self.lock_retries, prove=self.prove,
                    allow_extensions=list(self.allow_extensions), scratch_role=self.scratch_role)

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


def setting_keys() -> list[str]:
    """Every ``pgconverge_*`` key there is (for docs and checks)."""
    return [PREFIX + name for name in GroupData.__struct_fields__]


# --------------------------------------------------------------------------- the databases of a host


def database_specs(data: Any, origin: Origin | str | None = None) -> list[str | dict]:
    """The databases of this host (``pgconverge_databases``, validated), as connection specs
    for the operations: URLs, or dicts of libpq keywords plus ``url_env`` and ``name``.

    With ``pgconverge_embedded`` the embedded cluster is started (if needed), each database
    is created if missing, and its socket and port are filled in.
    """
    record = validate(data, origin)
    specs = [spec_dict(s) for s in record.databases or []]
    if not specs:
        raise ValueError("group data names no databases: set pgconverge_databases")
    if record.embedded:
        from pgconverge.dev.embedded import default_cluster

        cluster = default_cluster()
        cluster.ensure_started()
        for spec in specs:
            if not isinstance(spec, dict) or not spec.get("dbname"):
                raise ValueError("with pgconverge_embedded, each of pgconverge_databases needs a dbname")
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
