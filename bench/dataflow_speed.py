"""Speed of the event-driven dataflow model (run: ``python bench/dataflow_speed.py``).

Times, on this machine, the median of N repeats of:
- ``simulate`` alone (the event model: one single-input run + a 2-input streamed run) for
  ResNet-18/ImageNet and VGG-8/CIFAR-10 at row and layer granularity, with events per second;
- ``evaluate`` (mapping + cost + event model) of VGG-8, next to the analytical model, measured
  side by side in this run;
- the one-pass kernel (``run_static``, the default) against the reference event queue
  (``kernel="heap"``) on the same simulations, side by side.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pimsim  # noqa: E402
from pimsim.cost import chip_timing, evaluate  # noqa: E402
from pimsim.dataflow import simulate  # noqa: E402
from pimsim.mapping import map_network  # noqa: E402


def median_s(fn, repeats: int) -> tuple[float, object]:
    out, times = None, []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    arch = pimsim.load_arch(ROOT / "arch_specs" / "neurosim_rram_22nm.yaml")
    rows, kernels = [], []
    for work_name, repeats in (("resnet18_imagenet", 5), ("vgg8_cifar10", 15)):
        work = pimsim.load_workload(work_name)
        mapping = map_network(arch, work)
        timing = chip_timing(arch, mapping)
        for gran in ("row", "layer"):
            t, flow = median_s(lambda: simulate(mapping, timing, granularity=gran), repeats)
            rows.append((f"simulate {work_name}", gran, t * 1e3, flow.events, flow.events / t))
            t_heap, _ = median_s(
                lambda: simulate(mapping, timing, granularity=gran, kernel="heap"), repeats
            )
            kernels.append((work_name, gran, t_heap * 1e3, t * 1e3))
    work = pimsim.load_workload("vgg8_cifar10")
    t_ana, _ = median_s(lambda: evaluate(arch, work, latency_model="analytical"), 15)
    for gran in ("row", "layer"):
        t, rep = median_s(lambda: evaluate(arch, work, granularity=gran), 15)
        rows.append(("evaluate vgg8_cifar10", gran, t * 1e3, rep.dataflow.events,
                     rep.dataflow.events / t))
    rows.append(("evaluate vgg8_cifar10", "analytical", t_ana * 1e3, 0, 0.0))
    print(f"{'what':32s} {'model':>10s} {'median ms':>10s} {'events':>8s} {'events/s':>10s}")
    for what, gran, ms, ev, eps in rows:
        print(f"{what:32s} {gran:>10s} {ms:10.2f} {ev:8d} {eps:10.0f}")
    ev_row = [r for r in rows if r[0] == "evaluate vgg8_cifar10"]
    print(f"\nevaluate VGG-8: event/row = {ev_row[0][2] / ev_row[2][2]:.1f}x analytical, "
          f"event/layer = {ev_row[1][2] / ev_row[2][2]:.1f}x analytical")
    print(f"\n{'simulate':24s} {'granularity':>11s} {'heap ms':>9s} {'one-pass ms':>12s} "
          f"{'speed-up':>9s}")
    for work_name, gran, heap_ms, static_ms in kernels:
        print(f"{work_name:24s} {gran:>11s} {heap_ms:9.2f} {static_ms:12.2f} "
              f"{heap_ms / static_ms:8.2f}x")


if __name__ == "__main__":
    main()
