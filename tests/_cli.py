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


def error_line(result, start: str = r"error: ") -> str:
    """The single line an in-process ``CliRunner`` run refused its input with: exit status 2,
    no traceback, one non-empty line on stderr matching the regular expression ``start``."""
    import re

    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output + result.stderr, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and re.match(start, lines[0]), lines
    return lines[0]


def refusal(args, start: str = r"error: ") -> str:
    """``pimsim ARGS`` run in this process; its single refusal line (see :func:`error_line`)."""
    from click.testing import CliRunner

    from pimsim.cli import main

    return error_line(CliRunner().invoke(main, [str(a) for a in args]), start)
