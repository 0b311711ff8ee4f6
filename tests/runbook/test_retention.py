"""Backup retention: which backups are pruned for a retention count and age."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from localshell import LocalShell

from pgconverge.runbook import backup as backups
from pgconverge.runbook.settings import EnvSettings

NOW = datetime(2025, 7, 1, 12, 0, tzinfo=timezone.utc)


def newest_first(*days_old: float) -> list[backups.Backup]:
    return [backups.Backup(f"b/app/app-{i}.dump", "custom", NOW - timedelta(days=d)) for i, d in enumerate(days_old)]


def paths(found: list[backups.Backup]) -> list[str]:
    return [b.path for b in found]


def test_keeps_the_newest_count() -> None:
    found = newest_first(0, 1, 2, 3, 4)
    assert paths(backups.beyond_retention(found, keep=3, max_age_days=30, now=NOW)) == paths(found[3:])


def test_prunes_by_age_even_within_the_count() -> None:
    found = newest_first(0, 10, 31, 40)
    assert paths(backups.beyond_retention(found, keep=10, max_age_days=30, now=NOW)) == paths(found[2:])


def test_the_newest_backup_always_stays() -> None:
    found = newest_first(100, 200)  # both far too old
    assert paths(backups.beyond_retention(found, keep=0, max_age_days=1, now=NOW)) == paths(found[1:])
    assert backups.beyond_retention(found[:1], keep=0, max_age_days=0, now=NOW) == []


def test_exactly_at_the_age_limit_is_kept() -> None:
    found = newest_first(0, 30)
    assert backups.beyond_retention(found, keep=5, max_age_days=30, now=NOW) == []


def test_prune_deletes_only_our_old_files(tmp_path: Path) -> None:
    folder = tmp_path / "backups" / "app"
    folder.mkdir(parents=True)
    names = [f"app-{(NOW - timedelta(days=d)).strftime('%Y%m%dT%H%M%SZ')}.dump" for d in (0, 1, 2, 3)]
    for n in names + ["notes.txt"]:
        (folder / n).write_text("x")
    settings = EnvSettings(backup_dir=str(tmp_path / "backups"), backup_keep=2, backup_max_age_days=30)
    pruned = backups.prune(LocalShell(), settings, "app", now=NOW)
    assert sorted(Path(p).name for p in pruned) == sorted(names[2:])
    assert sorted(p.name for p in folder.iterdir()) == sorted(names[:2] + ["notes.txt"])
