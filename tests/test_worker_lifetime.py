"""Sweep workers live no longer than the sweep: a SIGKILL of ``pimsim sweep`` takes its worker
processes (and the helper processes of the pool) with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests._cli import ROOT
from tests.conftest import UNIT_ARCH
from tests.test_explore import KILL_SWEEP, _rows

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads the process tree from /proc"
)

# Far more points than the test lets it reach: the sweep is still running when it is killed.
LONG_SWEEP = KILL_SWEEP.replace("name: kill", "name: long").replace("count: 10", "count: 100")


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of a live process, None when there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
    return int(fields[1]), fields[0], int(fields[19])


def _descendants(root: int) -> dict[int, int]:
    """Every process below ``root``, by pid, with its start time."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                parents[int(entry)] = stat
    found, frontier = {}, [root]
    while frontier:
        pid = frontier.pop()
        for child, (ppid, _, start) in parents.items():
            if ppid == pid and child not in found:
                found[child] = start
                frontier.append(child)
    return found


def _alive(pid: int, start: int) -> bool:
    """Whether the process that had ``pid`` at ``start`` still runs (zombies count as dead)."""
    stat = _stat(pid)
    return stat is not None and stat[2] == start and stat[1] not in ("Z", "X")


@pytest.mark.parametrize("executor", ["local", "dask"])
def test_sigkill_of_the_sweep_takes_its_workers_along(tmp_path, executor):
    if executor == "dask":
        pytest.importorskip("dask.distributed")
    (tmp_path / "unit.yaml").write_text(UNIT_ARCH)
    (tmp_path / "s.yaml").write_text(LONG_SWEEP)
    store = tmp_path / "s.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pimsim.cli", "sweep", str(tmp_path / "s.yaml")]
        + ["--store", str(store), "--workers", "2", "--quiet", "--no-plot"]
        + ["--executor", executor],
        cwd=ROOT,
        start_new_session=True,  # the whole tree can be cleaned up whatever happens
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        below: dict[int, int] = {}
        # The workers have started once results come in (the pool's helper processes, the
        # resource tracker and the forkserver, come first).
        while time.monotonic() < deadline and proc.poll() is None:
            below = _descendants(proc.pid)
            if _rows(store) > 0 and len(below) >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the sweep ended before it could be killed"
        assert len(below) >= 3, f"the sweep's processes never appeared: {below}"
        below = _descendants(proc.pid)  # the tree at the moment of the kill
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        left = dict(below)
        while left and time.monotonic() < deadline:
            left = {pid: start for pid, start in left.items() if _alive(pid, start)}
            time.sleep(0.1)
        assert not left, f"processes of the killed sweep still alive: {sorted(left)}"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
