"""Speed of one design point (map + cost) with spec and workload already loaded.

Goals (issue: mapper and cost model): VGG-8 under 50 ms, ResNet-18/ImageNet under 300 ms.
Prints the median of repeated runs in one process and the machine it ran on.

    python bench/cost_speed.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import pimsim

ROOT = Path(__file__).resolve().parents[1]
CASES = [
    ("neurosim_rram_22nm", "vgg8_cifar10", 50.0),
    ("isaac", "vgg8_cifar10", 50.0),
    ("neurosim_rram_22nm", "resnet18_imagenet", 300.0),
    ("isaac", "resnet18_imagenet", 300.0),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    print(f"{'arch':<22}{'workload':<20}{'median ms':>10}{'min ms':>9}{'goal ms':>9}  ok")
    for arch_name, net_name, goal in CASES:
        arch = pimsim.load_arch(ROOT / "arch_specs" / f"{arch_name}.yaml")
        net = pimsim.load_workload(net_name)
        pimsim.evaluate(arch, net)  # warm-up (imports, caches of pandas)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            pimsim.evaluate(arch, net)
            times.append((time.perf_counter() - start) * 1e3)
        med = statistics.median(times)
        print(
            f"{arch_name:<22}{net_name:<20}{med:>10.1f}{min(times):>9.1f}{goal:>9.0f}  "
            f"{'yes' if med < goal else 'NO'}"
        )


if __name__ == "__main__":
    main()
