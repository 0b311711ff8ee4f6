"""A Shell that runs commands with bash on this machine: the runbook's pieces tested without pyinfra."""

from __future__ import annotations

import subprocess

from pgconverge.runbook.shell import Result


class LocalShell:
    name = "test-machine"

    def __init__(self) -> None:
        self.commands: list[str] = []

    def run(self, command: str, stdin: str | None = None) -> Result:
        self.commands.append(command)
        p = subprocess.run(["bash", "-c", command], input=stdin or "", capture_output=True, text=True)
        return Result(p.returncode, p.stdout.splitlines(), p.stderr.splitlines())
