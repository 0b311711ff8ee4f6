"""One database of one host during a runbook: its connection, engine, label and console."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from pgconverge.api import Engine, Options
from pgconverge.catalog import introspect
from pgconverge.catalog.introspect import catalog_hash
from pgconverge.catalog.model import Catalog
from pgconverge.catalog.shadow import default_cache_dir
from pgconverge.exec.progress import LineReporter, Reporter
from pgconverge.exec.runner import conn_from_spec
from pgconverge.runbook import ledger, preflight
from pgconverge.runbook.settings import EnvSettings
from pgconverge.runbook.shell import Console, Shell, ShellRunner
from pgconverge.source import load_source


@dataclass(frozen=True)
class FirstLook:
    """What a preflight reads in its psql call for the check right after it: the ledger's rows it
    needs, and the target's catalog fingerprint (None: plans are not cached) for the plan."""

    ledger: ledger.Look
    fingerprint: Any = None


class Database:
    """One database of one host during a run: its connection, engine and label."""

    def __init__(self, shell: Shell, console: Console, spec: str | dict, settings: EnvSettings):
        self.shell = shell
        self.console = console
        self.settings = settings
        self.name = spec.get("name") if isinstance(spec, dict) else None
        self.conn = conn_from_spec(spec)
        psql = settings.tool("psql")
        self.runner = ShellRunner(shell, self.conn, psql)
        self.shadow = ShellRunner(shell, conn_from_spec(settings.shadow), psql) if settings.shadow else None
        # parsed once per sql/ content (cached): the body runs at plan and execute time, per database
        self.source = load_source(list(settings.sql) if len(settings.sql) > 1 else settings.sql[0],
                                  cache_dir=default_cache_dir())
        self.options = Options.build(**settings.engine_options())
        self.engine = Engine(self.runner, self.source, self.options, shadow=self.shadow)
        self.label = self.name or self.conn.dbname or self.conn.describe()
        self.info: dict[str, Any] | None = None
        self._first: FirstLook | None = None  # read by the last preflight (``take_first_look``)

    @property
    def host_name(self) -> str:
        return self.shell.name

    @property
    def key(self) -> tuple[str, str]:
        return (self.shell.name, self.label)

    def say(self, text: str, fg: str | None = None, bold: bool = False) -> None:
        self.console.say(text, fg=fg, bold=bold)

    def reporter(self) -> Reporter:
        """Where the progress of long steps goes: the console's own reporter when it has one (the
        CLI's bar on a terminal), else a line through ``say`` every few seconds."""
        own = getattr(self.console, "reporter", None)
        return own() if callable(own) else LineReporter(lambda text: self.console.say(text))

    def preflight(self) -> preflight.PreflightReport:
        # what the check after the preflight reads (the ledger's rows, the target's fingerprint for
        # the plan), in the preflight's own psql call: a round trip each saved per database
        also = [ledger.look_query()] + ([introspect.fingerprint_query()] if self.engine.caches_plans else [])
        report = preflight.check(self.shell, self.runner, self.settings, self.source, shadow=self.shadow,
                                 also=also)
        self._first = FirstLook(ledger.Look.from_json(report.also[0]),
                                report.also[1] if len(report.also) > 1 else None) if report.also else None
        if report.info:
            self.info = report.info
            if not self.name:
                self.label = report.info["database"]
        return report

    def actual_catalog(self, engine: Engine | None = None) -> Catalog:
        """What is there now (scoped like the plan's)."""
        engine = engine or self.engine
        return engine.scoped(introspect.parse_catalog(engine.actual_doc()))

    def actual_hash(self, engine: Engine | None = None) -> str:
        """The schema hash of what is there now (scoped like the plan's)."""
        return catalog_hash(self.actual_catalog(engine))

    def take_first_look(self) -> FirstLook | None:
        """What the last preflight read besides the server, once: for the check that follows that
        preflight right away (a later caller reads the ledger and the fingerprint again)."""
        first, self._first = self._first, None
        return first

    def note_interrupted(self, current: Callable[[], str | None], by: str, look: ledger.Look | None = None) -> None:
        """Before a run writes its own ledger row: rows left ``running`` by a process that is gone
        become ``interrupted``, with what was found (`current`: the schema hash now). `look`: the
        ledger as just read (``take_first_look``); None: read here."""
        # a database without a ledger has no rows left running: close_interrupted reads none
        for found in ledger.close_interrupted(self.runner, current, f"{by} from {self.host_name}",
                                              look.running if look else None):
            self.say(f"ledger: run #{found.run.id} {found.message}", fg="yellow")

    def close(self) -> None:
        self.runner.close()
        if self.shadow:
            self.shadow.close()
