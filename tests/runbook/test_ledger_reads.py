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
