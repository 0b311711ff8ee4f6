from __future__ import annotations

import sys
from pathlib import Path

# tests/runbook/ holds helpers (localshell.py) next to the tests, without being a package
sys.path.insert(0, str(Path(__file__).resolve().parent))
