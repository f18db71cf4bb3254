"""pimsim's event-driven latency vs three runs of unmodified DNN+NeuroSim V1.4 (VGG-8/CIFAR-10,
22 nm, 128x128, 1 bit/cell, 4-bit sense-amp ADC, 8-bit weights and inputs; the runs and their
per-layer breakdowns are in ``../shared/data/neurosim_vgg8/``).

Same settings on both sides: the shipped NeuroSim specs with ``array.rows_per_adc_read`` set to
the run's rows in parallel, ``mapping.duplication: speedup`` (their rule), event model at row
granularity. Nothing is fitted to these runs. What the two report:

* throughput: NeuroSim's FPS is 1 / its slowest pipeline stage; ours is the steady-state rate of
  inputs streamed back to back through the event model.
* per layer: NeuroSim's ``readLatency`` is the sum of the layer's ADC, accumulation, buffer and
  interconnect times (its stages one after the other). Ours is the layer simulated alone with its
  input ready (``layers[].latency_ns``: its rows pipelined through its stages, so stages
  overlap), with the busy time per class (``latency_breakdown_ns``) beside it; the stage sum
  (``ours_sum_ns``, NeuroSim's convention) is shown too.

Writes results/neurosim_vgg8_latency.md and .csv.

    python experiments/neurosim_vgg8_latency.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "neurosim_vgg8"
CONFIGS = {1: "neurosim_sram_22nm", 4: "neurosim_rram_22nm", 5: "neurosim_rram_22nm"}
#: A layer is "dominant" when NeuroSim's per-layer latency is at least this share of its slowest
#: stage (the layers that set FPS and most of the single-input latency).
DOMINANT_SHARE = 0.25


def compare(data_dir: Path = DATA):
    """(runs, layers): two DataFrames of ours vs NeuroSim, per configuration and per layer."""
    import pandas as pd

    import pimsim
    from pimsim.cost import evaluate

    runs = pd.read_csv(data_dir / "runs.csv")
    layers = pd.read_csv(data_dir / "layers.csv")
    work = pimsim.load_workload("vgg8_cifar10")
    run_rows, layer_rows = [], []
    for cfg, arch_name in CONFIGS.items():
        ref = runs[runs.config == cfg].iloc[0]
        arch = pimsim.load_arch(
            ROOT / "arch_specs" / f"{arch_name}.yaml",
            {"array.rows_per_adc_read": int(ref.parallelRead_rows),
             "mapping.duplication": "speedup"},
        )
        rep = evaluate(arch, work)
        flow = rep.dataflow
        run_rows.append({
            "config": cfg,
            "name": ref["name"],
            "fps_ours": flow.throughput_fps,
            "fps_neurosim": ref.FPS,
            "fps_ratio": flow.throughput_fps / ref.FPS,
            "latency_ours_ns": flow.latency_ns,
            "slowest_stage_neurosim_ns": ref.latency_per_image_ns,
            "bottleneck_ours": f"{flow.bottleneck['resource']} ({flow.bottleneck['class']})",
            "clock_ns_neurosim": ref.clkPeriod_ns,
        })
        ns_layers = layers[layers.config == cfg].reset_index(drop=True)
        slowest = ns_layers.readLatency_ns.max()
        for name, (_, n) in zip(rep.mapping.layers, ns_layers.iterrows(), strict=True):
            bd = flow.layers[name]["latency_breakdown_ns"]
            ours = flow.layers[name]["latency_ns"]
            layer_rows.append({
                "config": cfg,
                "layer": name,
                "ours_ns": ours,
                "neurosim_ns": n.readLatency_ns,
                "ratio": ours / n.readLatency_ns,
                "ours_sum_ns": sum(bd.values()),
                "dominant": bool(n.readLatency_ns >= DOMINANT_SHARE * slowest),
                "ours_adc_ns": bd.get("adc", 0.0) + bd.get("compute", 0.0),
                "neurosim_adc_ns": n.ADC_latency_ns,
                "ours_buffer_ns": bd.get("buffer", 0.0),
                "neurosim_buffer_ns": n.bufferLatency_ns,
                "ours_ic_ns": bd.get("interconnect", 0.0),
                "neurosim_ic_ns": n.icLatency_ns,
                "copies_ours": rep.mapping.layers[name].copies,
                "speedup_neurosim": int(n.speedup),
            })
    return pd.DataFrame(run_rows), pd.DataFrame(layer_rows)


def _md(frame, floats="{:,.0f}") -> str:
    cols = list(frame.columns)
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame.itertuples(index=False):
        cells = []
        for v in row:
            if isinstance(v, float):
                cells.append(f"{v:.2f}" if abs(v) < 10 else floats.format(v))
            else:
                cells.append(str(v))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    if not DATA.exists():
        sys.exit(f"no reference data at {DATA}")
    runs, layers = compare()
    out = ROOT / "results"
    layers.to_csv(out / "neurosim_vgg8_latency.csv", index=False)
    dom = layers[layers.dominant]
    text = [
        "# Event-driven latency vs DNN+NeuroSim V1.4 (VGG-8/CIFAR-10)",
        "",
        "Written by `python experiments/neurosim_vgg8_latency.py`; per-layer rows also in "
        "`neurosim_vgg8_latency.csv`.",
        "",
        "## Throughput",
        "",
        _md(runs),
        "",
        "## Per layer (ns; ours = the layer alone, rows pipelined through its stages)",
        "",
        _md(layers.drop(columns=["dominant"])),
        "",
        f"Dominant layers (NeuroSim latency >= {DOMINANT_SHARE:.0%} of its slowest stage): "
        f"ratio ours / NeuroSim from {dom.ratio.min():.2f} to {dom.ratio.max():.2f}; "
        f"FPS ratio from {runs.fps_ratio.min():.2f} to {runs.fps_ratio.max():.2f}.",
        "",
    ]
    (out / "neurosim_vgg8_latency.md").write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
