"""Group data validation: types, unknown keys, lenient --data strings, messages naming the key."""

from __future__ import annotations

import pytest

from pgconverge.runbook.settings import (EnvSettings, SettingsError, database_specs, setting_keys, validate)


DEV = EnvSettings(backup_dir="backups/dev", signoff_file="signoffs/dev.yml")  # the defaults, for env "dev"


def test_defaults() -> None:
    assert EnvSettings.from_data({}) == DEV


def test_typed_values_and_env_templates() -> None:
    s = EnvSettings.from_data({"pgconverge_env": "staging", "pgconverge_backup_keep": 3,
                               "pgconverge_allow_hazards": ["index_build"], "pgconverge_min_server_version": 150004,
                               "pgconverge_sql": ["sql/a", "sql/b"], "pgconverge_backup_space_factor": 3})
    assert (s.env, s.backup_keep, s.allow_hazards, s.min_server_version) == ("staging", 3, ("index_build",), 15)
    assert s.sql == ("sql/a", "sql/b") and s.space_factor == 3.0
    assert s.backup_dir == "backups/staging" and s.signoff_file == "signoffs/staging.yml"


def test_data_strings_are_parsed_leniently() -> None:
    # what `--data key=value` gives when pyinfra cannot parse the value itself
    s = EnvSettings.from_data({"pgconverge_check": "yes", "pgconverge_backup": "off", "pgconverge_backup_keep": "4",
                               "pgconverge_drops": "table:public.a, table:public.b", "pgconverge_sql": "x,y",
                               "pgconverge_backup_format": ".sql.gz", "pgconverge_lock_timeout": "5s"})
    assert s.check is True and s.backup is False and s.backup_keep == 4
    assert s.drops == ("table:public.a", "table:public.b") and s.sql == ("x", "y")
    assert s.backup_format == "sql.gz" and s.lock_timeout == "5s"


def test_none_means_not_set() -> None:
    assert EnvSettings.from_data({"pgconverge_backup_keep": None, "pgconverge_analyze": None}) == DEV


def test_a_wrong_type_names_key_type_and_origin() -> None:
    with pytest.raises(SettingsError) as e:
        EnvSettings.from_data({"pgconverge_env": "staging", "pgconverge_backup_keep": "many"})
    assert e.value.key == "pgconverge_backup_keep"
    assert str(e.value) == ("pgconverge_backup_keep: expected `int`, got `str` (in the data of environment staging: "
                            "group_data/all.py, group_data/staging.py, inventory/staging.py or --data)")


def test_the_origin_function_says_which_file() -> None:
    origins = {"pgconverge_backup_keep": "group_data/production.py"}
    with pytest.raises(SettingsError, match=r"\(in group_data/production.py\)$"):
        EnvSettings.from_data({"pgconverge_backup_keep": [1]}, origins.get)


def test_an_unknown_key_is_refused_with_a_suggestion() -> None:
    with pytest.raises(SettingsError) as e:
        EnvSettings.from_data({"pgconverge_bakup_keep": 3}, "group_data/all.py")
    assert e.value.key == "pgconverge_bakup_keep"
    assert "did you mean pgconverge_backup_keep?" in str(e.value) and "group_data/all.py" in str(e.value)


def test_other_keys_are_not_ours() -> None:
    # pyinfra's own data (ssh_user, ...) and the project's are none of our business
    assert EnvSettings.from_data({"ssh_user": "deploy", "app_port": 8080}) == DEV


def test_a_wrong_item_in_a_list_is_located() -> None:
    with pytest.raises(SettingsError, match=r"^pgconverge_required_extensions\[1\]: expected `str`, got `int`"):
        EnvSettings.from_data({"pgconverge_required_extensions": ["pgcrypto", 7]})


def test_a_bad_boolean_string_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"^pgconverge_require_signoff: expected `bool`, got `str`"):
        EnvSettings.from_data({"pgconverge_require_signoff": "perhaps"})


def test_backup_format_must_be_known() -> None:
    with pytest.raises(SettingsError, match=r"^pgconverge_backup_format: must be one of custom, sql.gz, not 'zip'"):
        EnvSettings.from_data({"pgconverge_backup_format": "zip"})


def test_backup_may_name_a_file_for_restores() -> None:
    # restore.py takes --data pgconverge_backup=FILE: not a boolean, and no error
    assert validate({"pgconverge_backup": "backups/app/app-20250701T000000Z.dump"}).backup.endswith(".dump")


def test_database_specs_are_validated() -> None:
    specs = database_specs({"pgconverge_databases": [{"name": "app", "url_env": "APP_URL", "port": 5433},
                                                     "postgresql:///other"]})
    assert specs == [{"name": "app", "url_env": "APP_URL", "port": 5433}, "postgresql:///other"]
    with pytest.raises(SettingsError, match=r"^pgconverge_databases\[0\]: unknown connection setting `dbnmae`"):
        database_specs({"pgconverge_databases": [{"dbnmae": "app"}]})
    with pytest.raises(SettingsError, match="a password in group data would end up in the repository"):
        database_specs({"pgconverge_databases": [{"dbname": "app", "password": "secret"}]})
    with pytest.raises(SettingsError, match=r"^pgconverge_shadow: a password"):
        EnvSettings.from_data({"pgconverge_shadow": {"dbname": "x", "password": "secret"}})
    with pytest.raises(ValueError, match="set pgconverge_databases"):
        database_specs({})


def test_shadow_spec_stays_a_plain_dict() -> None:
    s = EnvSettings.from_data({"pgconverge_shadow": {"url_env": "SHADOW_URL"}})
    assert s.shadow == {"url_env": "SHADOW_URL"}


def test_setting_keys_cover_the_repo_group_data() -> None:
    from pathlib import Path

    keys = set(setting_keys())
    repo = Path(__file__).resolve().parents[2]
    for f in (repo / "group_data").glob("*.py"):
        scope: dict = {}
        exec(compile(f.read_text(), str(f), "exec"), scope)
        used = {k for k in scope if k.startswith("pgconverge_")}
        assert used <= keys, (f, used - keys)
        validate(scope, str(f))  # and every value has the right type


def test_unmanaged_defaults_per_environment() -> None:
    # production leaves objects sql/ does not declare alone; elsewhere they are planned as drops
    assert EnvSettings.from_data({"pgconverge_env": "production"}).unmanaged == "report"
    assert EnvSettings.from_data({"pgconverge_env": "staging"}).unmanaged == "refuse"
    assert DEV.unmanaged == "refuse"
    s = EnvSettings.from_data({"pgconverge_env": "production", "pgconverge_unmanaged": "Drop"})
    assert s.unmanaged == "drop" and s.engine_options()["unmanaged"] == "drop"
    assert EnvSettings.from_data({"pgconverge_env": "staging", "pgconverge_unmanaged": "report"}).unmanaged == "report"


def test_unmanaged_wrong_value_names_key_value_and_file() -> None:
    with pytest.raises(SettingsError) as e:
        validate({"pgconverge_unmanaged": "keep"}, origin="group_data/production.py")
    assert str(e.value) == ("pgconverge_unmanaged: must be one of refuse, report, drop, not 'keep' "
                            "(in group_data/production.py)")
    with pytest.raises(SettingsError, match=r"pgconverge_unmanaged: expected `str`, got `int`"):
        validate({"pgconverge_unmanaged": 3})
