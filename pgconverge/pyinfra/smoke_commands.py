"""``pgconverge_smoke_commands`` run through pyinfra's connectors on the hosts they name.

The database host's smoke step calls the other hosts' connectors itself (``host.run_shell_command``
of the app server's ``Host``), rather than an operation of their own: the results belong to that
database's run (its ledger row, its restore command, its failure), and the step runs them exactly
when its SQL checks have passed or failed, whatever else the deploy file does (see docs/DESIGN.md).
"""

from __future__ import annotations

import time
from typing import Any, Callable

from pgconverge.runbook.settings import EnvSettings
from pgconverge.runbook.smoke_commands import GRACE, CommandResult, SmokeCommand, judge, wrapped

KEY = "pgconverge_smoke_commands"


def targets(inventory: Any, cmd: SmokeCommand, where: str) -> list[Any]:
    """The inventory's hosts a command runs on: each of its ``hosts`` a host name or a group."""
    found: list[Any] = []
    for name in cmd.hosts:
        host_ = inventory.get_host(name, None)
        group = [host_] if host_ is not None else list(inventory.get_group(name, []))
        if not group:
            raise ValueError(f"{KEY} ({cmd.name}): no host or group {name!r} in the inventory (in {where})")
        found.extend(h for h in group if h not in found)
    return found


def is_command_host(host_: Any) -> bool:
    """A host that only runs smoke commands: it has no databases, and some host's commands name it
    (by name or by one of its groups)."""
    if host_.data.get("pgconverge_databases"):
        return False
    names = {host_.name, *host_.groups}
    for other in host_.inventory:
        for entry in other.data.get(KEY) or []:
            hosts = entry.get("hosts") if isinstance(entry, dict) else None
            listed = [hosts] if isinstance(hosts, str) else list(hosts or [])
            if names & {h.strip() for item in listed for h in str(item).split(",")}:
                return True
    return False


def run_on(target: Any, cmd: SmokeCommand) -> CommandResult:
    """One command on one host, its timeout enforced on the host (``timeout``) and by the connector."""
    started = time.monotonic()
    try:
        if not target.connected:
            target.connect(raise_exceptions=True)
        ok, out = target.run_shell_command(wrapped(cmd), _timeout=cmd.timeout + GRACE + 10)
        lines = list(out.stdout_lines) + list(out.stderr_lines)
    except Exception as e:  # an unreachable host, the connector's own timeout: a failed check
        return CommandResult(cmd.name, target.name, None, time.monotonic() - started, "",
                             f"could not run it: {type(e).__name__}: {e}"[:500])
    return judge(cmd, target.name, ok, lines, time.monotonic() - started)


def runner_for(host_: Any, settings: EnvSettings, where: str) -> Callable[[], list[CommandResult]] | None:
    """What the smoke step calls to run the host's commands; None when there are none. The hosts are
    looked up now, so that an unknown one refuses the deploy before anything changes."""
    if not settings.smoke_commands:
        return None
    plan = [(cmd, targets(host_.inventory, cmd, where)) for cmd in settings.smoke_commands]

    def run() -> list[CommandResult]:
        return [run_on(t, cmd) for cmd, hosts in plan for t in hosts]

    return run
