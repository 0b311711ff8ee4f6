"""A backup reports the bytes pg_dump has written while it runs (real pg_dump, real PostgreSQL)."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from pathlib import Path

import psycopg

from localshell import LocalShell
from pgconverge.exec.progress import LineReporter
from pgconverge.exec.runner import Conn
from pgconverge.runbook import backup as backups
from pgconverge.runbook.settings import EnvSettings
from pgconverge.runbook.shell import ShellRunner

LINE = re.compile(r"^progress: backup of app: pg_dump writing, (\d+(?:\.\d)?) (B|kB|MB|GB) written, [^,]+/s, (\d+) s$")


def test_backup_reports_bytes_written(db: str, tmp_path: Path) -> None:
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("CREATE TABLE public.big (id integer, payload text)")
        c.execute("INSERT INTO public.big SELECT g, md5(g::text) || md5((g * 7)::text) "
                  "FROM generate_series(1, 300000) g")
    # a session holds the table for a while: pg_dump waits for its lock, so the watcher samples
    # the run however fast the machine dumps the rows afterwards
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with psycopg.connect(db) as c:
            c.execute("LOCK TABLE public.big IN ACCESS EXCLUSIVE MODE")
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(30)
    threading.Timer(5.0, release.set).start()
    lines: list[str] = []
    settings = EnvSettings(backup_dir=str(tmp_path / "backups"))
    shell = LocalShell()
    taken = backups.take(shell, ShellRunner(shell, Conn.parse(db)), settings, "app",
                         progress=LineReporter(lines.append, every=1.0, show_times=False))
    holder.join()
    assert Path(taken.path).stat().st_size == taken.size > 1_000_000
    assert lines, "no progress while pg_dump ran for 5 s or more"
    seen = [LINE.match(ln) for ln in lines]
    assert all(seen), lines
    elapsed = [int(m.group(3)) for m in seen]
    assert elapsed == sorted(elapsed) and elapsed[0] >= 1
    # the watcher read the partial file through the shell, never the final name
    assert any("stat -c %s" in c and ".partial-" in c for c in shell.commands)


def test_file_size_sampler_follows_a_growing_file(tmp_path: Path) -> None:
    path = tmp_path / "growing"
    writer = subprocess.Popen(["bash", "-c", f"for i in $(seq 1 40); do head -c 4096 /dev/zero >> {path}; "
                                             "sleep 0.05; done"])
    sample = backups.file_size_sampler(LocalShell(), str(path), "backup of x")
    sizes = []
    while writer.poll() is None:
        sizes.append(sample().counts[0].done)
        time.sleep(0.3)
    sizes.append(sample().counts[0].done)
    assert sizes == sorted(sizes) and sizes[-1] == 40 * 4096 and len(set(sizes)) >= 3
    p = sample()
    assert p.what == "backup of x" and p.phase == "pg_dump writing" and p.detail.endswith("/s")
    # a file not there yet is 0 bytes, not an error
    assert backups.file_size_sampler(LocalShell(), str(tmp_path / "none"), "b")().counts[0].done == 0
