"""Running the ``pimsim`` command line in a subprocess, for the tests."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m pimsim.cli ARGS`` from ``cwd``; a generous timeout, never a timing assertion."""
    return subprocess.run(
        [sys.executable, "-m", "pimsim.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
