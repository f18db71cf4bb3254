"""ADC range policies and granularities on the shipped QAT checkpoints, no retraining.

The evidence behind ``adc.range``'s default: the shipped LeNet-5 and MLP QAT checkpoints on
``arch_specs/neurosim_rram_22nm.yaml`` with each preset's knobs explicit, 8-bit weights and
inputs, 128 rows per ADC read, the spec's digital offset correction (no reference column: the range
alone changes), ADC bits {3, 4, 5, 6}, every range policy (``full_scale``,
``calibrated`` at the 99.99th percentile, ``learned``) and granularity (``layer``, ``column``,
``significance``). Ranges are set from 256 training images of the bundled split; accuracy on the
first 500 test images (ideal cells: nothing random, one chip).

    python experiments/adc_range.py            # runs what is missing, then writes the report
    python experiments/adc_range.py --report   # only the report: results/adc_range.md
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import torch
from _runlog import RunLog

import pimsim
from pimsim.oracle import accuracy
from pimsim.spec import preset_overrides
from pimsim.training import load_mnist
from pimsim.training._checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "results" / "adc_range_runs.jsonl"
ARCH = ROOT / "arch_specs" / "neurosim_rram_22nm.yaml"
NETWORKS = ("lenet5_mnist", "mlp_mnist")
PRESETS = ("native", "differential", "bit_serial")
ADC_BITS = (3, 4, 5, 6)
POLICIES = (
    ("full_scale", "layer"),
    ("calibrated", "layer"),
    ("learned", "layer"),
    ("calibrated", "column"),
    ("calibrated", "significance"),
    ("learned", "significance"),
)


def run(log: RunLog) -> None:
    done = log.done_keys()
    x_test, y_test = load_mnist(split="test")
    x_cal = load_mnist(split="train")[0][:256]
    batches = list(zip(torch.split(x_test[:500], 250), torch.split(y_test[:500], 250), strict=True))
    for net in NETWORKS:
        model, _ = load_checkpoint(ROOT / "results" / "checkpoints" / f"{net}_qat.pt")
        for preset in PRESETS:
            for bits in ADC_BITS:
                for policy, granularity in POLICIES:
                    key = f"{net}/{preset}/{bits}/{policy}/{granularity}"
                    if key in done:
                        continue
                    arch = pimsim.load_arch(
                        ARCH,
                        overrides={
                            **preset_overrides(preset),
                            "adc.bits": bits,
                            "array.rows_per_adc_read": 128,
                            "adc.range": policy,
                            "adc.range_granularity": granularity,
                        },
                    )
                    t0 = time.perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        result = accuracy(model, arch, batches, calibration=[x_cal])
                    log.record(key, accuracy=result.mean, wall_s=time.perf_counter() - t0)


def report(log: RunLog) -> None:
    import json

    rows = {}
    for line in log.path.read_text().splitlines():
        rec = json.loads(line)
        rows[rec["key"]] = rec["accuracy"]
    heads = [f"{p} / {g}" for p, g in POLICIES]
    out = [
        "# ADC range policies on the shipped QAT checkpoints (no retraining)",
        "",
        "`python experiments/adc_range.py`: NeuroSim RRAM 22 nm design, 8-bit weights and inputs,",
        "128 rows per ADC read, digital offset correction (the spec's; only the range changes);",
        "ranges from 256 training images of the bundled MNIST split;",
        "top-1 accuracy (%) on the first 500 test images; ideal cells (one chip).",
        "",
    ]
    for net in NETWORKS:
        out += [f"## {net}", "", "| preset | ADC bits | " + " | ".join(heads) + " |"]
        out.append("|---|---|" + "---|" * len(heads))
        for preset in PRESETS:
            for bits in ADC_BITS:
                cells = []
                for policy, granularity in POLICIES:
                    acc = rows.get(f"{net}/{preset}/{bits}/{policy}/{granularity}")
                    cells.append("" if acc is None else f"{100 * acc:.1f}")
                out.append(f"| {preset} | {bits} | " + " | ".join(cells) + " |")
        out.append("")
    out += ["## Mean over the cells above (both networks, 24 cells each)", ""]
    out += ["| policy / granularity | mean accuracy (%) |", "|---|---|"]
    for (policy, granularity), head in zip(POLICIES, heads, strict=True):
        vals = [v for k, v in rows.items() if k.endswith(f"/{policy}/{granularity}")]
        if vals:
            out.append(f"| {head} | {100 * sum(vals) / len(vals):.1f} ({len(vals)} cells) |")
    out.append("")
    path = ROOT / "results" / "adc_range.md"
    path.write_text("\n".join(out) + "\n")
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", action="store_true", help="only write the report")
    args = parser.parse_args()
    log = RunLog(RUNS)
    if not args.report:
        run(log)
    report(log)


if __name__ == "__main__":
    main()
