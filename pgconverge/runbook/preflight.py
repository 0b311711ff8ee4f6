"""Preflight: what the runbooks check by hand before touching a database.

    connectivity and the server version (>= pgconverge_min_server_version, default 15)
    the extensions sql/ creates are available (and creatable by this role)
    the role may create the shadow database (CREATEDB), or a shadow server is configured
    (check_space, once a backup is due) the backup folder has room: free space >= factor x database size (default 2x)

Nothing here changes anything. Each problem is one sentence saying what is wrong
and what to do about it; any problem stops that host before its first change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Sequence


from pgconverge.runbook.shell import RemoteError, Shell, command_exists, free_kb
from pgconverge.exec.runner import PsqlError, Runner
from pgconverge.runbook.settings import EnvSettings
from pgconverge.source import Source
from pgconverge.exec.progress import human_bytes

# What preflight needs to know about the server and the role, in one round trip.
SERVER_INFO = """SELECT json_build_object(
  'server_version', current_setting('server_version_num')::int,
  'database', current_database(),
  'user', current_user,
  'superuser', (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
  'createdb', (SELECT rolcreatedb FROM pg_roles WHERE rolname = current_user),
  'size_bytes', pg_database_size(current_database()),
  'available_extensions', (SELECT json_object_agg(name, default_version) FROM pg_available_extensions),
  'installed_extensions', (SELECT coalesce(json_object_agg(extname, extversion), '{}') FROM pg_extension),
  'trusted_extensions', (SELECT coalesce(json_agg(DISTINCT name), '[]') FROM pg_available_extension_versions
                          WHERE trusted),
  'can_create_schema', has_database_privilege(current_database(), 'CREATE'));
"""


@dataclass
class PreflightReport:
    target: str
    info: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # the values of the `also` statements (``check``), read in the same round trip as `info`
    also: list[Any] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        out = [f"preflight {self.target}: {'ok' if self.ok else 'FAILED'}"]
        out += [f"  - {n}" for n in self.notes]
        out += [f"  ! {p}" for p in self.problems]
        return out


def extensions_in(source: Source) -> list[str]:
    """The extensions sql/ creates (CREATE EXTENSION statements)."""
    from pglast import parse_sql

    names = []
    for st in source.statements:
        if st.kind == "CreateExtensionStmt":
            node = parse_sql(st.text)[0].stmt
            if node.extname not in names:
                names.append(node.extname)
    return names


# one formatting of sizes for the preflight, the backup lines and the progress lines
human = human_bytes


def server_info(shell: Shell, runner: Runner, psql: str = "psql", also: Sequence[str] = ()) -> Any:
    """SERVER_INFO through the host's psql; raises PsqlError with the server's own message,
    or saying that psql is missing on the host. With `also` (scripts each printing one JSON value
    on one line), all in one psql call: [info, *their values]."""
    try:
        if not also:
            return runner.query_json(SERVER_INFO)
        lines = [line for line in runner.query_text(SERVER_INFO + "".join(also)).splitlines() if line.strip()]
        if len(lines) != 1 + len(also):
            raise PsqlError(f"preflight: expected {1 + len(also)} values from {runner.name}, got {len(lines)}")
        return [json.loads(line) for line in lines]
    except PsqlError:
        if not command_exists(shell, psql):
            raise PsqlError(f"{psql} is not installed on {shell.name}: install the PostgreSQL client "
                            "(Debian: apt-get install postgresql-client)") from None
        raise


def check(shell: Shell, runner: Runner, settings: EnvSettings, source: Source, *,
          shadow: Runner | None = None, also: Sequence[str] = ()) -> PreflightReport:
    """Connectivity, version, extensions and privileges; never raises for a failed check.
    The free space check (``check_space``) follows once the plan says a backup is due.
    `also`: scripts each printing one JSON value on one line (the target's catalog fingerprint, the
    ledger's rows), read in the same psql call for what follows the preflight (``report.also``)."""
    psql = settings.tool("psql")
    report = PreflightReport(runner.name)
    env = settings.env
    try:
        info = server_info(shell, runner, psql, also=also)
        if also:
            info, *report.also = info
    except PsqlError as e:
        report.problems.append(
            f"cannot connect to {runner.name} from {shell.name}: {e.message}. Check the connection in "
            f"group_data/{env}.py (url_env, service or passfile), that the server is up and that it "
            f"accepts this client (pg_hba.conf / firewall).")
        return report
    report.info = info
    version = int(info["server_version"])
    report.notes.append(f"connected as {info['user']} to {info['database']}, PostgreSQL {version // 10000}.{version % 100}")

    # version
    if version // 10000 < settings.min_server_version:
        report.problems.append(
            f"the server runs PostgreSQL {version // 10000}; environment {env} requires "
            f"{settings.min_server_version} or later (pgconverge_min_server_version): upgrade the server "
            "or lower the minimum if the schema allows it.")

    # extensions
    available = info.get("available_extensions") or {}
    installed = info.get("installed_extensions") or {}
    trusted = set(info.get("trusted_extensions") or [])
    wanted = extensions_in(source) + [e for e in settings.required_extensions if e not in extensions_in(source)]
    for ext in wanted:
        if ext in installed:
            continue
        if ext not in available:
            report.problems.append(
                f"extension {ext} is not available on the server: install its package "
                f"(Debian: postgresql-contrib or postgresql-{version // 10000}-{ext}), or allow-list it on "
                "a managed service, then run again.")
        elif not info.get("superuser") and ext not in trusted:
            report.problems.append(
                f"extension {ext} is not trusted, and {info['user']} is not a superuser: ask a superuser to run "
                f"CREATE EXTENSION {ext}; in {info['database']}, then run again.")
    if wanted:
        report.notes.append("extensions: " + ", ".join(
            f"{e} ({'installed ' + installed[e] if e in installed else 'available'})" for e in wanted
            if e in installed or e in available))

    # privileges for the shadow database
    if shadow is None:
        if not (info.get("createdb") or info.get("superuser")):
            report.problems.append(
                f"role {info['user']} cannot create the shadow database (no CREATEDB): "
                f"ALTER ROLE {info['user']} CREATEDB, or set pgconverge_shadow in group_data/{env}.py "
                "to a scratch server of the same major version.")
    else:
        try:
            sinfo = server_info(shell, shadow, psql)
        except PsqlError as e:
            report.problems.append(f"cannot connect to the shadow server {shadow.name}: {e.message}. "
                                   f"Check pgconverge_shadow in group_data/{env}.py.")
        else:
            if int(sinfo["server_version"]) // 10000 != version // 10000:
                report.problems.append(
                    f"the shadow server runs PostgreSQL {int(sinfo['server_version']) // 10000} but the target "
                    f"runs {version // 10000}: use a shadow server of the same major version.")
            if not (sinfo.get("createdb") or sinfo.get("superuser")):
                report.problems.append(f"role {sinfo['user']} on the shadow server has no CREATEDB: grant it.")
            report.notes.append(f"shadow server: {shadow.name}")

    return report


def check_space(shell: Shell, settings: EnvSettings, report: PreflightReport) -> None:
    """Room for the backup: free space at the backup folder >= factor x database size."""
    size = int((report.info or {}).get("size_bytes") or 0)
    try:
        free = free_kb(shell, settings.backup_dir) * 1024
    except (RemoteError, ValueError, IndexError) as e:
        report.problems.append(f"cannot measure free space at {settings.backup_dir} on {shell.name}: {e}")
        return
    need = settings.space_factor * size
    report.notes.append(f"backup folder {settings.backup_dir}: {human(free)} free, database "
                        f"{human(size)}, need {settings.space_factor:g}x = {human(need)}")
    if free < need:
        report.problems.append(
            f"not enough room for the backup at {settings.backup_dir} on {shell.name}: {human(free)} free, "
            f"{human(need)} needed ({settings.space_factor:g}x the {human(size)} database). Free space, "
            "point pgconverge_backup_dir at a larger disk, or lower pgconverge_backup_space_factor.")
