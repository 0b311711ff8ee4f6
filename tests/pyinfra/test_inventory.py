"""The CLI sees an environment's data as pyinfra gives it to each host: group data, and the
hosts' own entries in the inventory (loaded by pyinfra's own loader)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import yaml

from pgconverge.cli.env import load_environment
from pgconverge.pyinfra.inventory import load_hosts
from pgconverge.runbook.settings import SettingsError

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def write(root: Path, rel: str, text: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def test_per_host_data_is_seen(tmp_path: Path) -> None:
    write(tmp_path, "inventory/production.py",
          'production = [("@pglocal/orders", {"pgconverge_databases": [{"name": "orders", "url_env": "O_URL"}],\n'
          '                                   "pgconverge_lock_timeout": "9s"}),\n'
          '              ("@pglocal/billing", {"pgconverge_databases": [{"name": "billing", "url_env": "B_URL"}]})]\n')
    write(tmp_path, "group_data/all.py", 'pgconverge_lock_timeout = "2s"\n')
    write(tmp_path, "group_data/production.py", 'pgconverge_env = "production"\npgconverge_backup_keep = 30\n')
    env = load_environment("production", str(tmp_path))
    assert [(t.name, t.spec["url_env"]) for t in env.targets] == [("orders", "O_URL"), ("billing", "B_URL")]
    assert [t.settings.lock_timeout for t in env.targets] == ["9s", "2s"]  # host data over group data
    assert {t.settings.backup_keep for t in env.targets} == {30}
    assert env.settings.env == "production"


def test_override_data_wins_like_dash_dash_data(tmp_path: Path) -> None:
    write(tmp_path, "inventory/staging.py", 'staging = [("@local", {"pgconverge_backup_keep": 3})]\n')
    [host] = load_hosts("staging", tmp_path, override_data={"pgconverge_backup_keep": 5})
    assert host.settings().backup_keep == 5
    assert host.origin("pgconverge_backup_keep") == "--data on the command line"


def test_loading_leaves_this_process_unpatched(tmp_path: Path) -> None:
    # pyinfra_cli patches its process with gevent on import: the loader runs in a child
    from gevent import monkey

    write(tmp_path, "inventory/staging.py", 'staging = ["@local"]\n')
    assert [h.name for h in load_hosts("staging", tmp_path)] == ["@local"]
    assert not monkey.is_module_patched("threading") and "pyinfra_cli" not in sys.modules


def test_a_broken_group_data_file_is_a_clear_error(tmp_path: Path) -> None:
    write(tmp_path, "inventory/staging.py", 'staging = ["@local"]\n')
    write(tmp_path, "group_data/staging.py", 'pgconverge_env = undefined_name\n')
    with pytest.raises(ValueError, match=r"cannot load .*inventory/staging.py: .*undefined_name"):
        load_hosts("staging", tmp_path)


def test_a_bad_value_names_where_it_was_set(tmp_path: Path) -> None:
    write(tmp_path, "inventory/staging.py", 'staging = [("@local", {"pgconverge_backup_keep": "lots"})]\n')
    [host] = load_hosts("staging", tmp_path)
    with pytest.raises(SettingsError) as e:
        host.settings()
    assert (e.value.key, e.value.where) == ("pgconverge_backup_keep", "the inventory entry of host @local")
    # the same files, edited: loaded again as they are now
    write(tmp_path, "inventory/staging.py", 'staging = ["@local"]\n')
    write(tmp_path, "group_data/staging.py", 'pgconverge_analyze = "maybe"\n')
    [host] = load_hosts("staging", tmp_path)
    with pytest.raises(SettingsError) as e:
        host.settings()
    assert (e.value.key, e.value.where) == ("pgconverge_analyze", "group_data/staging.py (group staging of host @local)")


def test_hosts_that_disagree_on_the_sql_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "inventory/production.py",
          'production = [("@pglocal/a", {"pgconverge_sql": "sql/a"}), ("@pglocal/b", {"pgconverge_sql": "sql/b"})]\n')
    with pytest.raises(ValueError, match="disagree on pgconverge_sql"):
        load_environment("production", str(tmp_path))


def test_a_missing_inventory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no inventory for environment 'qa'"):
        load_hosts("qa", tmp_path)


def test_signoff_finds_databases_given_per_host(tmp_path: Path, make_db, signing_keys) -> None:
    """End to end: staging and production list their databases only in the inventory's host entries."""
    staging, production = make_db(), make_db()
    for name in ("deploy.py",):
        (tmp_path / name).write_text((REPO / name).read_text())
    write(tmp_path, "sql/schema/00.sql", "CREATE TABLE items (id int PRIMARY KEY);\n")
    write(tmp_path, "sql/smoke/10.sql", "SELECT to_regclass('public.items') IS NOT NULL;\n")
    write(tmp_path, "group_data/all.py", 'pgconverge_lock_timeout = "5s"\n')
    write(tmp_path, "group_data/staging.py", 'pgconverge_env = "staging"\npgconverge_verify_unchanged = True\n')
    write(tmp_path, "group_data/production.py", 'pgconverge_env = "production"\npgconverge_require_signoff = True\n')
    for env, var in (("staging", "STAGING_URL"), ("production", "PROD_URL")):
        write(tmp_path, f"inventory/{env}.py",
              f'{env} = [("@local", {{"pgconverge_databases": [{{"name": "app", "url_env": "{var}"}}]}})]\n')
    run_env = {**os.environ, "STAGING_URL": staging, "PROD_URL": production, "PGCONVERGE_ACTOR": "tester",
               "PYINFRA_PROGRESS": "off", "PGCONVERGE_HOME": str(tmp_path / ".home")}

    def run(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(cmd), cwd=tmp_path, env=run_env, stdin=subprocess.DEVNULL, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)

    deployed = run(str(BIN / "pyinfra"), "-y", "inventory/staging.py", "deploy.py")
    assert deployed.returncode == 0, deployed.stdout[-3000:]
    write(tmp_path, "signoffs/allowed_signers", signing_keys["alice"].allowed_line())
    so = run(str(BIN / "pgconverge"), "signoff", "--key", str(signing_keys["alice"].key))
    assert so.returncode == 0, so.stdout[-3000:]
    doc = yaml.safe_load((tmp_path / "signoffs" / "production.yml").read_text())
    assert [d["database"] for d in doc["databases"]] == ["app"]
    assert [r["database"] for r in doc["staging"]["runs"]] == ["app"]
    assert (tmp_path / "signoffs" / "production.yml.sig").is_file()
    with psycopg.connect(production) as c:  # signing off changes nothing in production
        assert c.execute("SELECT to_regclass('public.items')").fetchone()[0] is None


def test_history_lists_the_databases_of_an_environment(tmp_path: Path, make_db, monkeypatch, capsys) -> None:
    import json

    from pgconverge.cli.main import main as cli_main
    from pgconverge.exec.runner import LocalRunner
    from pgconverge.runbook import ledger

    a, b = make_db(), make_db()
    ledger.record(LocalRunner(a), ledger.RunStart(action="deploy", environment="staging", actor="alice"), "converged")
    write(tmp_path, "inventory/staging.py",
          'staging = [("@pglocal/a", {"pgconverge_databases": [{"name": "a", "url_env": "A_URL"}]}),\n'
          '           ("@pglocal/b", {"pgconverge_databases": [{"name": "b", "url_env": "B_URL"}]})]\n')
    monkeypatch.setenv("A_URL", a)
    monkeypatch.setenv("B_URL", b)
    assert cli_main(["history", "--env", "staging", "--root", str(tmp_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(d["host"], d["database"], [r["actor"] for r in d["runs"]]) for d in doc] == [
        ("@pglocal/a", "a", ["alice"]), ("@pglocal/b", "b", [])]
    assert cli_main(["history", "--env", "staging", "--root", str(tmp_path), "--database", "c"]) == 1
    assert "has no database 'c'" in capsys.readouterr().err
