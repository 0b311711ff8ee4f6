"""How a smoke check's rows are judged: no rows, or only single `true`s, pass."""

from __future__ import annotations

from pgconverge.runbook import smoke


def test_no_rows_pass() -> None:
    assert smoke.judge([]) == (True, "")


def test_single_true_columns_pass() -> None:
    assert smoke.judge([{"ok": True}, {"?column?": True}]) == (True, "")


def test_a_false_fails_and_shows_the_row() -> None:
    ok, detail = smoke.judge([{"ok": True}, {"ok": False}])
    assert not ok and detail == "returned ok=True; ok=False"


def test_truthy_values_are_not_true() -> None:
    assert smoke.judge([{"n": 1}])[0] is False
    assert smoke.judge([{"s": "true"}])[0] is False


def test_rows_with_two_columns_fail_even_when_true() -> None:
    ok, detail = smoke.judge([{"a": True, "b": True}])
    assert not ok and detail == "returned a=True, b=True"


def test_only_three_rows_are_shown() -> None:
    ok, detail = smoke.judge([{"id": i} for i in range(5)])
    assert not ok and detail == "returned id=0; id=1; id=2 (and 2 more)"


def test_check_sql_is_stripped_of_trailing_semicolons_and_comments() -> None:
    script = smoke.script(smoke.Check("a.sql", "SELECT true;\n-- done\n\n"))
    assert "(\nSELECT true\n) AS pgconverge_smoke" in script
    assert script.startswith("SET default_transaction_read_only = on;")


def test_smoke_run_judges_real_rows(db: str) -> None:
    from pgconverge.exec.runner import LocalRunner

    checks = [smoke.Check("ok.sql", "SELECT 1 = 1;"), smoke.Check("bad.sql", "SELECT 'x' AS what, false AS ok"),
              smoke.Check("broken.sql", "SELECT * FROM no_such_table")]
    report = smoke.run(LocalRunner(db), checks)
    assert [r.passed for r in report.results] == [True, False, False]
    assert report.results[1].detail == "returned ok=False, what=x"  # jsonb orders the keys
    assert report.results[2].detail.startswith("error: ") and "no_such_table" in report.results[2].detail
    assert not report.passed
