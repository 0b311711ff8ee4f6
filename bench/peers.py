"""What the benchmarks share: where they live, and the peers they compare against (migra, pgdeclare)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH_HOME = REPO / ".pgconverge"
CLUSTER_DIR = BENCH_HOME / "bench-cluster"
VENV = BENCH_HOME / "bench-venv"
# pgdeclare requires Python 3.12 or later while pgconverge runs on 3.11: it gets a venv of its own.
VENV312 = BENCH_HOME / "bench-venv312"


def ensure_migra() -> Path:
    """migra from PyPI in a venv of its own. SQLAlchemy 2 needs the psycopg2 driver named in the URL."""
    exe = VENV / "bin" / "migra"
    if not exe.exists():
        print(f"creating {VENV} (migra, psycopg2-binary)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "migra", "psycopg2-binary"], check=True)
    return exe


def _is_python312(exe: str) -> bool:
    try:
        done = subprocess.run([exe, "-c", "import sys; print(sys.version_info[:2] == (3, 12))"],
                              capture_output=True, text=True, timeout=60)
    except OSError:
        return False
    return done.returncode == 0 and done.stdout.strip() == "True"


def find_python312() -> str | None:
    """A Python 3.12 interpreter: python3.12 on PATH, else the newest ~/.pyenv/versions/3.12*."""
    candidates = []
    on_path = shutil.which("python3.12")
    if on_path:
        candidates.append(on_path)
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    # newest patch release first: 3.12.10 sorts after 3.12.9 by its numbers, not its text
    def patch(p: Path) -> tuple[int, ...]:
        return tuple(int(x) for x in p.name.split(".") if x.isdigit())
    for version in sorted(pyenv.glob("3.12*"), key=patch, reverse=True):
        candidates.append(str(version / "bin" / "python3.12"))
    for exe in candidates:
        if Path(exe).exists() and _is_python312(exe):
            return exe
    return None


def ensure_pgdeclare() -> Path | None:
    """pgdeclare from PyPI in a Python 3.12 venv of its own; None, with a note printed, when this
    machine has no Python 3.12 (the benchmark then leaves pgdeclare's columns empty)."""
    exe = VENV312 / "bin" / "pgdeclare"
    if exe.exists():
        return exe
    python = find_python312()
    if python is None:
        print("note: no Python 3.12 found (python3.12 on PATH or ~/.pyenv/versions/3.12*): "
              "pgdeclare is skipped", flush=True)
        return None
    print(f"creating {VENV312} with {python} (pgdeclare)", flush=True)
    subprocess.run([python, "-m", "venv", str(VENV312)], check=True)
    subprocess.run([str(VENV312 / "bin" / "pip"), "install", "-q", "pgdeclare"], check=True)
    return exe
