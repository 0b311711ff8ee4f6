"""An environment's hosts and their data, loaded by pyinfra's own inventory loader.

``pgconverge signoff`` and ``history --env`` work outside a pyinfra run but must see exactly
the data a deploy sees: group_data/all.py, group_data/<group>.py, each host's own entry in
inventory/<env>.py, connector-made hosts (@pglocal/<name>) and ``--data``. Exec'ing the
group data files by hand would miss the host entries, so this goes through
``pyinfra_cli.inventory.make_inventory``, the function ``pyinfra inventory/<env>.py ...``
itself calls.

Importing ``pyinfra_cli`` runs gevent's ``monkey.patch_all()`` for the whole process (threads
become greenlets, blocking calls change behaviour), so the loader runs in a child Python
process and hands back each host's ``pgconverge_*`` data, and where each key was set, as JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgconverge.runbook.settings import PREFIX, EnvSettings, spec_dict, validate


@dataclass(frozen=True)
class InventoryHost:
    """One host of an inventory: its ``pgconverge_*`` data as ``host.data`` gives it in a deploy."""

    name: str
    data: dict[str, Any]
    origins: dict[str, str] = field(default_factory=dict)  # key -> where it was set

    def origin(self, key: str) -> str:
        return self.origins.get(key, f"the data of host {self.name}")

    def settings(self) -> EnvSettings:
        return EnvSettings.from_data(self.data, self.origin)

    def databases(self) -> list[str | dict]:
        """The host's ``pgconverge_databases``, validated (none: an empty list)."""
        return [spec_dict(s) for s in validate(self.data, self.origin).databases or []]


def inventory_path(env: str, root: str | Path = ".") -> Path:
    return Path(root) / "inventory" / f"{env}.py"


def load_hosts(env: str, root: str | Path = ".", override_data: dict[str, Any] | None = None) -> list[InventoryHost]:
    """The hosts of inventory/<env>.py under `root`, their data as pyinfra gives it
    (`override_data` plays the part of ``--data``). Raises FileNotFoundError without the file,
    ValueError when pyinfra cannot load the inventory or its group data."""
    path = inventory_path(env, root)
    if not path.is_file():
        raise FileNotFoundError(f"no inventory for environment {env!r}: expected {path}")
    cmd = [sys.executable, "-m", __name__, "--env", env, "--root", str(Path(root).resolve()),
           "--data-json", json.dumps(override_data or {})]
    done = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=Path(root).resolve())
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()
        raise ValueError(f"cannot load {path}: {detail[-1] if detail else 'the loader failed'}")
    return [InventoryHost(h["name"], h["data"], h["origins"]) for h in json.loads(done.stdout)]


# --------------------------------------------------------------------------- the child process


def _origins(host: Any, keys: list[str]) -> dict[str, str]:
    from pgconverge.pyinfra.host import data_origin

    origin = data_origin(host)
    return {k: origin(k) for k in keys}


def _load_here(env: str, root: str, override_data: dict[str, Any]) -> list[dict[str, Any]]:
    from pyinfra.api.state import State
    from pyinfra.context import ctx_state
    from pyinfra_cli.inventory import make_inventory  # patches this process with gevent

    if root not in sys.path:  # as pyinfra's CLI does: group data may import the project's modules
        sys.path.append(root)
    # pyinfra's loader records the file it execs on the current State, as in a CLI run
    state = State(check_for_changes=False)
    state.cwd = root
    with ctx_state.use(state):
        inventory = make_inventory(str(inventory_path(env, root).resolve()), override_data=override_data, cwd=root)
    hosts = []
    for h in inventory:
        data = {k: v for k, v in h.data.dict().items() if isinstance(k, str) and k.startswith(PREFIX)}
        hosts.append({"name": h.name, "data": data, "origins": _origins(h, list(data))})
    return hosts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgconverge.pyinfra.inventory",
                                     description="print an inventory's hosts and pgconverge_* data as JSON")
    parser.add_argument("--env", required=True)
    parser.add_argument("--root", default=".")
    parser.add_argument("--data-json", default="{}", help="override data, as pyinfra's --data gives it")
    args = parser.parse_args(argv)
    try:
        hosts = _load_here(args.env, str(Path(args.root).resolve()), json.loads(args.data_json))
    except Exception as e:
        # pyinfra wraps an error in a data file with the file's name (and no message of its own)
        inner, where = getattr(e, "exception", e), getattr(e, "filename", None)
        print(f"{where + ': ' if where else ''}{type(inner).__name__}: {inner}", file=sys.stderr)
        return 1
    try:
        text = json.dumps(hosts)
    except TypeError as e:
        print(f"a pgconverge_* value is not plain data (str, number, bool, list, dict): {e}", file=sys.stderr)
        return 1
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
