"""The ledger's reads ask psql whether the ledger exists in the same round trip as the read: a
database without one reads as empty, one with rows reads them, each in one psql call."""

from __future__ import annotations

from pgconverge.exec.runner import LocalRunner
from pgconverge.runbook import ledger


class CountingRunner(LocalRunner):
    """A real psql runner that counts its psql calls."""

    calls = 0

    def exec_psql(self, args, stdin, on_line=None):
        self.calls += 1
        return super().exec_psql(args, stdin, on_line)


def test_reads_of_a_database_without_a_ledger_are_empty_in_one_call_each(db: str) -> None:
    runner = CountingRunner(db)
    assert ledger.history(runner) == []
    assert ledger.in_progress(runner) == []
    assert ledger.snapshot_note(runner) is None
    assert runner.calls == 3
    assert not ledger.exists(runner)  # nothing was created by reading


def test_reads_of_a_ledger_return_its_rows_in_one_call_each(db: str) -> None:
    runner = CountingRunner(db)
    run_id = ledger.start(runner, ledger.RunStart(action="deploy", environment="fleet", actor="test"),
                          ensure_first=True)
    done = ledger.record(runner, ledger.RunStart(action="refresh", environment="fleet", actor="test",
                                                 snapshot={"environment": "production", "database": "app",
                                                           "sha256": "ab" * 32}), "refreshed")
    runner.calls = 0
    assert [r.id for r in ledger.in_progress(runner)] == [run_id]
    assert [r.id for r in ledger.history(runner)] == [done, run_id]
    note = ledger.snapshot_note(runner)
    assert note is not None and f"ledger run #{done}" in note and "production app" in note
    assert runner.calls == 3


def test_the_look_of_a_deploy_check_is_one_line_read_with_the_preflight(db: str) -> None:
    """The rows a deploy's check needs (left running, the newest refresh) come in the preflight's
    own psql call, with or without a ledger, and say what the separate reads say."""
    from pgconverge.runbook import preflight

    runner = CountingRunner(db)
    info, doc = preflight.server_info(None, runner, also=[ledger.look_query()])  # type: ignore[arg-type]
    assert info["database"] == runner.conn.dbname and runner.calls == 1
    empty = ledger.Look.from_json(doc)
    assert empty.running == [] and empty.refreshed is None and ledger.snapshot_note(runner, empty) is None
    first = ledger.start(runner, ledger.RunStart(action="deploy", environment="fleet", actor="test",
                                                 plan={"text": "line one\nline two"}), ensure_first=True)
    second = ledger.start(runner, ledger.RunStart(action="deploy", environment="fleet", actor="test"))
    ledger.record(runner, ledger.RunStart(action="refresh", environment="fleet", actor="test",
                                          snapshot={"environment": "production", "database": "app"}), "refreshed")
    runner.calls = 0
    _info, doc = preflight.server_info(None, runner, also=[ledger.look_query()])  # type: ignore[arg-type]
    look = ledger.Look.from_json(doc)
    assert runner.calls == 1
    assert [r.id for r in look.running] == [second, first] == [r.id for r in ledger.in_progress(runner)]
    assert look.running[1].plan == {"text": "line one\nline two"}
    assert ledger.snapshot_note(runner, look) == ledger.snapshot_note(runner) is not None
