"""What the benchmarks share: where they live, and migra, the peer they compare against."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH_HOME = REPO / ".pgconverge"
CLUSTER_DIR = BENCH_HOME / "bench-cluster"
VENV = BENCH_HOME / "bench-venv"


def ensure_migra() -> Path:
    """migra from PyPI in a venv of its own. SQLAlchemy 2 needs the psycopg2 driver named in the URL."""
    exe = VENV / "bin" / "migra"
    if not exe.exists():
        print(f"creating {VENV} (migra, psycopg2-binary)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "migra", "psycopg2-binary"], check=True)
    return exe
