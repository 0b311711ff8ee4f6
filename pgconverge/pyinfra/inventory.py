"""An environment's hosts and their data, loaded by pyinfra's own inventory loader.

``pgconverge signoff`` works outside a pyinfra run but must see exactly the data a deploy
sees: group_data/all.py, group_data/<group>.py, each host's own entry in inventory/<env>.py
and connector-made hosts (@pglocal/<name>). Exec'ing the group data files by hand would
miss the host entries, so this goes through ``pyinfra_cli.inventory.make_inventory``, the
function ``pyinfra inventory/<env>.py ...`` itself calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyinfra.api.state import State
from pyinfra.context import ctx_state
from pyinfra_cli import util as pyinfra_cli_util
from pyinfra_cli.inventory import make_inventory

from pgconverge.pyinfra.host import data_origin
from pgconverge.runbook.settings import EnvSettings, Origin, spec_dict, validate


@dataclass(frozen=True)
class InventoryHost:
    """One host of an inventory, with its merged data (``host.data``, as in a deploy)."""

    name: str
    data: Any
    origin: Origin  # where each data key was set, for validation messages

    def settings(self) -> EnvSettings:
        return EnvSettings.from_data(self.data, self.origin)

    def databases(self) -> list[str | dict]:
        """The host's ``pgconverge_databases``, validated (none: an empty list)."""
        return [spec_dict(s) for s in validate(self.data, self.origin).databases or []]


def inventory_path(env: str, root: str | Path = ".") -> Path:
    return Path(root) / "inventory" / f"{env}.py"


def load_hosts(env: str, root: str | Path = ".", override_data: dict[str, Any] | None = None) -> list[InventoryHost]:
    """The hosts of inventory/<env>.py under `root`, their data as pyinfra gives it
    (`override_data` plays the part of ``--data``). Raises FileNotFoundError without the file."""
    path = inventory_path(env, root)
    if not path.is_file():
        raise FileNotFoundError(f"no inventory for environment {env!r}: expected {path}")
    cwd = str(Path(root).resolve())
    # pyinfra's loader records the file it execs on the current State, as in a CLI run
    # pyinfra_cli keeps compiled files by name for the one load of its run; a later load in this
    # process (a test, a long-lived tool) must see the files as they are now
    pyinfra_cli_util.PYTHON_CODES.clear()
    state = State(check_for_changes=False)
    state.cwd = cwd
    with ctx_state.use(state):
        inventory = make_inventory(str(path.resolve()), override_data=dict(override_data or {}), cwd=cwd)
    return [InventoryHost(h.name, h.data, data_origin(h)) for h in inventory]
