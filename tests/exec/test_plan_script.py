"""The plan script (``pgconverge plan --script``, the plan files' .sql), against a real PostgreSQL:
run by hand with psql it gives what apply gives, it keeps apply's timeouts and transactions, and
squawk's lock and timeout rules find nothing in it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import psycopg

import pgconverge
from pgconverge import oracle
from pgconverge.cli.main import main as cli_main
from pgconverge.dev.embedded import find_bindir
from pgconverge.exec.script import ExecSettings, render_plan_script, render_script, timings, units

SQUAWK = str(Path(sys.executable).parent / "squawk")
START = """
CREATE TABLE users (id bigint PRIMARY KEY, email text, name text);
CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint, total numeric);
INSERT INTO users SELECT g, 'u' || g || '@example.com', 'name ' || g FROM generate_series(1, 200) g;
INSERT INTO orders SELECT g, 1 + g % 200, g FROM generate_series(1, 500) g;
"""
# online forms on the tables that exist (concurrent index, FK and CHECK NOT VALID then VALIDATE,
# SET NOT NULL through a check), a new table with its index and FK, a data block after the steps
DESIRED = """
CREATE TABLE users (id bigint PRIMARY KEY, email text, name text, nickname text);
CREATE INDEX users_email_idx ON users (email);
CREATE TABLE orders (
    id bigint PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id),
    total numeric CHECK (total >= 0)
);
CREATE TABLE notes (id bigint PRIMARY KEY, user_id bigint NOT NULL REFERENCES users (id), body text);
CREATE INDEX notes_user_idx ON notes (user_id);

-- @data fill_nicknames after
UPDATE users SET nickname = name WHERE nickname IS NULL;
-- @end
"""
# squawk's rules about locks and timeouts: none of them may fire on a plan script
LOCK_RULES = {
    "require-lock-timeout", "require-statement-timeout", "require-concurrent-index-creation",
    "require-concurrent-index-deletion", "ban-concurrent-index-creation-in-transaction",
    "constraint-missing-not-valid", "adding-foreign-key-constraint", "disallowed-unique-constraint",
    "changing-column-type", "adding-field-with-default", "adding-not-nullable-field", "adding-required-field",
    "adding-serial-primary-key-field", "transaction-nesting", "ban-alter-domain-with-add-constraint",
}
# squawk's style and compatibility rules, which say nothing about locks (the planner's SQL does not
# follow them: it drops the temporary NOT NULL check it made, names no IF NOT EXISTS)
STYLE_RULES = {"prefer-robust-stmts", "ban-drop-constraint", "prefer-bigint-over-int", "prefer-bigint-over-smallint",
               "prefer-identity", "prefer-text-field", "prefer-timestamp-tz"}


def _start(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as c:
        c.execute(START)


def _psql(db: str, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(find_bindir() / "psql"), "-X", "-d", db, "-f", str(path)], capture_output=True,
                          text=True)


def _dump(db: str) -> oracle.Dump:
    d = psycopg.conninfo.conninfo_to_dict(db)
    out = subprocess.run([str(find_bindir() / "pg_dump"), "--schema-only", "--no-owner", "-h", str(d["host"]),
                          "-p", str(d["port"]), "-U", str(d["user"]), "-d", str(d["dbname"])],
                         capture_output=True, text=True, check=True).stdout
    return oracle.parse_dump(out)


def _squawk(path: Path) -> list[dict]:
    done = subprocess.run([SQUAWK, "--reporter", "json", "--pg-version", "15", str(path)], capture_output=True,
                          text=True)
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout or "[]")


def _desired(tmp_path: Path) -> Path:
    f = tmp_path / "schema.sql"
    f.write_text(DESIRED)
    return f


def test_plan_script_run_with_psql_gives_the_catalog_apply_gives(make_db, tmp_path, capsys) -> None:
    by_hand, by_apply = make_db(), make_db()
    _start(by_hand)
    _start(by_apply)
    sql = _desired(tmp_path)
    script = tmp_path / "plan.sql"
    assert cli_main(["plan", "--target", by_hand, "--sql", str(sql), "--allow-hazards", "all",
                     "--script", str(script)]) == 2
    capsys.readouterr()
    text = script.read_text()
    # the protections are in the file itself
    assert "\\set ON_ERROR_STOP on" in text and "pg_try_advisory_lock" in text
    assert text.count("SET lock_timeout = '500ms';") >= 3 and "SET statement_timeout = '30min';" in text
    concurrent = text.index("CREATE INDEX CONCURRENTLY users_email_idx")
    assert text.rfind("BEGIN;", 0, concurrent) < text.rfind("COMMIT;", 0, concurrent)  # outside a transaction
    assert text.rfind("SET lock_timeout = '0';", 0, concurrent) > text.rfind("COMMIT;", 0, concurrent)

    ran = _psql(by_hand, script)
    assert ran.returncode == 0, ran.stderr
    pgconverge.apply(by_apply, str(sql), allow_hazards="all")

    assert oracle.compare(_dump(by_apply), _dump(by_hand)) == []
    assert pgconverge.plan(by_hand, str(sql), allow_hazards="all").is_empty
    for db in (by_hand, by_apply):
        with psycopg.connect(db) as c:
            assert c.execute("SELECT count(*) FROM users WHERE nickname = name").fetchone() == (200,)
            assert c.execute("SELECT name FROM pgconverge.data_blocks").fetchall() == [("fill_nicknames",)]
            assert c.execute("SELECT bool_and(convalidated) FROM pg_constraint WHERE conrelid = "
                             "'orders'::regclass").fetchone() == (True,)


def test_squawk_finds_no_lock_or_timeout_problem_in_the_plan_script(db, tmp_path) -> None:
    _start(db)
    plan = pgconverge.plan(db, str(_desired(tmp_path)), allow_hazards="all")
    script = tmp_path / "plan.sql"
    script.write_text(render_plan_script(plan))
    found = _squawk(script)
    assert {f["rule_name"] for f in found} <= STYLE_RULES, found
    assert not [f for f in found if f["rule_name"] in LOCK_RULES]

    # the same statements without the script around them are what squawk warns about
    plain = tmp_path / "plain.sql"
    plain.write_text(plan.to_sql())
    rules = {f["rule_name"] for f in _squawk(plain)}
    assert {"require-lock-timeout", "require-statement-timeout"} <= rules


def test_json_and_the_script_carry_the_timeouts_apply_runs_under(db, tmp_path, capsys) -> None:
    _start(db)
    sql = _desired(tmp_path)
    assert cli_main(["plan", "--target", db, "--sql", str(sql), "--allow-hazards", "all", "--json",
                     "--lock-timeout", "3s", "--statement-timeout", "10min"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["proof"]["status"] == "proved"
    assert doc["execution"] == {"lock_timeout": "3s", "statement_timeout": "10min", "concurrent_lock_timeout": "0",
                                "lock_deadline": "60s", "retries": None}
    for step in doc["steps"]:
        assert step["statement_timeout"] == "10min"
        assert step["lock_timeout"] == ("3s" if step["transactional"] else "0"), step
    assert any(not s["transactional"] for s in doc["steps"]) and len({s["unit"] for s in doc["steps"]}) > 1

    # the timings are those of the script apply runs: each unit's SET statement_timeout and its
    # lock_timeout (set_config inside the retry block, SET for a step outside a transaction)
    settings = ExecSettings(lock_timeout="3s", statement_timeout="10min")
    plan = pgconverge.plan(db, str(sql), allow_hazards="all", lock_timeout="3s", statement_timeout="10min")
    applied = render_script(plan, settings)
    seen = []
    for chunk in re.split(r"\\echo pgconverge:unit \d+ :pgconverge_clock\n", applied)[1:len(units(plan.steps)) + 1]:
        statement = re.search(r"SET statement_timeout = '([^']*)'", chunk).group(1)
        lock = re.search(r"set_config\('lock_timeout', '([^']*)'|SET lock_timeout = '([^']*)'", chunk)
        seen.append((lock.group(1) or lock.group(2), statement))
    per_unit = {}
    for t in timings(plan, settings):
        per_unit.setdefault(t.unit, (t.lock_timeout, t.statement_timeout))
    assert seen == [per_unit[i] for i in range(len(per_unit))]
    by_hand = render_plan_script(plan, settings)
    assert re.findall(r"-- unit \d+/\d+.*\n\\echo .*\nSET lock_timeout = '([^']*)';\nSET statement_timeout = "
                      r"'([^']*)';", by_hand) == seen
