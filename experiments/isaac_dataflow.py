"""ISAAC's layer pipeline in the event-driven model: single-input latency and pipelined
throughput of VGG-8 and ResNet-20 on ``arch_specs/isaac.yaml``, what limits each, and the
analytical model's numbers beside them. Writes results/isaac_dataflow.md.

    python experiments/isaac_dataflow.py
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pimsim
from pimsim.cost import evaluate

ROOT = Path(__file__).resolve().parents[1]


def rows():
    arch = pimsim.load_arch(ROOT / "arch_specs" / "isaac.yaml")
    for name in ("vgg8_cifar10", "resnet20_cifar10"):
        work = pimsim.load_workload(name)
        rep = evaluate(arch, work)
        ana = evaluate(arch, work, latency_model="analytical")
        flow = rep.dataflow
        path = defaultdict(float)
        for seg in flow.critical_path:
            path[seg["class"]] += seg["ns"]
        share = ", ".join(f"{c} {v / flow.latency_ns:.0%}" for c, v in
                          sorted(path.items(), key=lambda kv: -kv[1]))
        slow = max(flow.layers, key=lambda n: sum(flow.layers[n]["latency_breakdown_ns"].values()))
        b = flow.bottleneck
        yield {
            "workload": name,
            "stages (layers)": len(work.layers),
            "latency_us (event)": flow.latency_ns / 1e3,
            "latency_us (analytical)": ana.totals["latency_ns"] / 1e3,
            "throughput_fps (event)": flow.throughput_fps,
            "throughput_fps (analytical)": ana.totals["throughput_fps"],
            "throughput limited by": f"{b['resource']} ({b['class']}, {b['busy_ns'] / 1e3:.1f} "
                                     "us per input)",
            "latency critical path": share,
            "slowest layer": slow,
            "events": flow.events,
        }


def main() -> None:
    out = list(rows())
    cols = list(out[0])
    lines = ["# ISAAC in the event-driven dataflow model", "",
             "Written by `python experiments/isaac_dataflow.py`.", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in out:
        lines.append("| " + " | ".join(
            f"{v:,.1f}" if isinstance(v, float) else str(v) for v in r.values()) + " |")
    text = "\n".join(lines) + "\n"
    (ROOT / "results" / "isaac_dataflow.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
