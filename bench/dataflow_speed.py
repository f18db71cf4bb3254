"""Speed of the event-driven dataflow model (run: ``python bench/dataflow_speed.py``).

Times, on this machine, the median of N repeats of:
- ``pimsim.evaluate`` (mapping + cost + event model) with the default latency model (event, row
  granularity) for VGG-8/CIFAR-10 and ResNet-18/ImageNet on ISAAC and on the NeuroSim RRAM
  chip, next to layer granularity and the analytical model, measured side by side in this run
  (goals: ISAAC VGG-8 <= 20 ms, ResNet-18 <= 60 ms);
- ``simulate`` alone (one single-input run + a 2-input streamed run), with jobs per second;
- the compiled one-pass kernel (the default) against the reference event queue
  (``kernel="heap"``) on the same simulations, side by side.

The first call of a process compiles the kernel (or loads it from numba's cache); the table
says how long that took. Every timed call comes after it.

    python bench/dataflow_speed.py [--repeats 9]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pimsim  # noqa: E402
from pimsim.cost import chip_timing, evaluate  # noqa: E402
from pimsim.dataflow import DEFAULT_GRANULARITY, simulate  # noqa: E402
from pimsim.mapping import map_network  # noqa: E402

ARCHS = ("isaac", "neurosim_rram_22nm")
NETWORKS = ("vgg8_cifar10", "resnet18_imagenet")
GOALS_MS = {("isaac", "vgg8_cifar10"): 20.0, ("isaac", "resnet18_imagenet"): 60.0}


def median_ms(fn, repeats: int) -> tuple[float, object]:
    out, times = None, []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="Calls per median.")
    args = parser.parse_args()
    n = args.repeats
    first = time.perf_counter()
    arch0 = pimsim.load_arch(ROOT / "arch_specs" / "isaac.yaml")
    evaluate(arch0, pimsim.load_workload("lenet5_mnist"))
    first_ms = (time.perf_counter() - first) * 1e3

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}; first evaluate of the process (kernel "
          f"compile or cache load included): {first_ms:.0f} ms\n")
    print("evaluate, median ms (default latency model: event, "
          f"{DEFAULT_GRANULARITY} granularity)")
    print("| arch | network | default | goal | event, layer | analytical | "
          "default / analytical |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    sims = []
    for arch_name in ARCHS:
        arch = pimsim.load_arch(ROOT / "arch_specs" / f"{arch_name}.yaml")
        for work_name in NETWORKS:
            work = pimsim.load_workload(work_name)
            t_def, rep = median_ms(lambda a=arch, w=work: evaluate(a, w), n)
            t_layer, _ = median_ms(lambda a=arch, w=work: evaluate(a, w, granularity="layer"), n)
            t_ana, _ = median_ms(
                lambda a=arch, w=work: evaluate(a, w, latency_model="analytical"), n)
            goal = GOALS_MS.get((arch_name, work_name))
            mark = "" if goal is None else f"<= {goal:.0f}" + (" ok" if t_def <= goal else
                                                                " MISSED")
            print(f"| {arch_name} | {work_name} | {t_def:.1f} | {mark} | {t_layer:.1f} | "
                  f"{t_ana:.1f} | {t_def / t_ana:.1f}x |")
            sims.append((arch_name, work_name, arch, work, rep.dataflow.jobs))
    print("\nsimulate alone, median ms: compiled one-pass kernel vs the reference event queue")
    print("| arch | network | granularity | jobs | compiled | jobs/s | heap | heap / compiled |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for arch_name, work_name, arch, work, _ in sims:
        mapping = map_network(arch, work)
        timing = chip_timing(arch, mapping)
        for gran in ("row", "layer"):
            t_fast, flow = median_ms(
                lambda m=mapping, t=timing, g=gran: simulate(m, t, granularity=g), n)
            t_heap, ref = median_ms(
                lambda m=mapping, t=timing, g=gran: simulate(m, t, granularity=g, kernel="heap"),
                max(1, n // 3))
            assert ref.to_dict() == flow.to_dict()
            print(f"| {arch_name} | {work_name} | {gran} | {flow.jobs} | {t_fast:.2f} | "
                  f"{flow.jobs / t_fast * 1e3:,.0f} | {t_heap:.1f} | {t_heap / t_fast:.0f}x |")


if __name__ == "__main__":
    main()
