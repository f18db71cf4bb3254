"""Sweep throughput: a cost-only grid of 5,376 VGG-8 design points on ISAAC
(``bench/sweeps/vgg8_isaac_grid.yaml``), on the local process pool with 1 and 2 workers.

Goals: >= 20,000 points/minute with 2 workers, and 2 workers >= 1.7x one worker. Every point
is feasible (a sweep that refuses its designs early would measure the refusals): the run fails
otherwise. The latency model is the sweep default (event model, row granularity, as
``pimsim evaluate``). Both worker counts run in this one process, alternating (1, 2, 2, 1, ...)
so that a slow spell of the machine hits both; each run starts from an empty store (nothing
skipped) and its wall time covers loading nothing but the points: pool start-up, evaluation and
every commit to sqlite. Prints a table and the machine it ran on.

    python bench/sweep_speed.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
from pathlib import Path

from pimsim.explore import sweep
from pimsim.spec import load_sweep

ROOT = Path(__file__).resolve().parent
GRID = ROOT / "sweeps" / "vgg8_isaac_grid.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="Runs per worker count.")
    args = parser.parse_args()
    spec = load_sweep(GRID)
    rates: dict[int, list[float]] = {1: [], 2: []}
    order = []
    for r in range(args.rounds):
        order += [1, 2] if r % 2 == 0 else [2, 1]
    with tempfile.TemporaryDirectory() as tmp:
        for i, workers in enumerate(order):
            result = sweep(spec, Path(tmp) / f"run{i}.sqlite", workers=workers, progress=False)
            assert result.evaluated == spec.grid_size
            assert result.failed == 0 and result.infeasible == 0, result.errors[:3]
            rates[workers].append(result.rate_per_min)
            print(
                f"run {i + 1}: {workers} worker(s), {result.evaluated} points in "
                f"{result.wall_s:.1f} s = {result.rate_per_min:,.0f} points/min"
            )
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    print()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}")
    print(f"grid: {GRID.name}, {int(spec.grid_size)} points, cost only (VGG-8 on ISAAC), "
          f"latency: {spec.latency}")
    print("| workers | points/min (median) | goal |")
    print("| ---: | ---: | ---: |")
    print(f"| 1 | {one:,.0f} | - |")
    print(f"| 2 | {two:,.0f} | >= 20,000 |")
    print(f"2 workers / 1 worker: {two / one:.2f}x (goal >= 1.7x)")


if __name__ == "__main__":
    main()
