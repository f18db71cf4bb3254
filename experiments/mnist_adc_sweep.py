"""LeNet-5 (conventional digital QAT, 8-bit weights and inputs) on PIM hardware: accuracy vs ADC
bits (3..8) under the three decomposition presets, 128 rows per ADC read.

Spec: ``arch_specs/sram_charge_domain_28nm.yaml`` (its survey ADC model covers any resolution),
with each preset's knobs set explicitly (the spec pins the bit-serial preset). Data: the last
2,000 images of the shipped MNIST test set (the documented split; the network was trained on the
first 8,000). Writes ``results/mnist_adc_sweep.csv`` and ``results/mnist_adc_sweep.png``.

    python experiments/mnist_adc_sweep.py [--checkpoint results/checkpoints/lenet5_mnist_qat.pt]
"""

from __future__ import annotations

import argparse
import csv
import warnings
from pathlib import Path

import torch

import pimsim
import pimsim.oracle
from pimsim.spec import preset_overrides
from pimsim.training._checkpoint import load_checkpoint
from pimsim.training._data import load_mnist

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ("native", "differential", "bit_serial")
BITS = range(3, 9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint", default=str(ROOT / "results/checkpoints/lenet5_mnist_qat.pt")
    )
    args = parser.parse_args()
    pimsim.oracle.tune_cpu_allocator()  # large partial sums: reuse memory, no fresh page faults
    model, meta = load_checkpoint(args.checkpoint)
    x, y = load_mnist(split="test")
    with torch.no_grad():
        digital = float((model(x).argmax(1) == y).float().mean())
    base = ROOT / "arch_specs" / "sram_charge_domain_28nm.yaml"
    rows = []
    for preset in PRESETS:
        for bits in BITS:
            arch = pimsim.load_arch(
                base,
                {
                    **preset_overrides(preset, 8, 8),  # DESIGN.md Conventions, 'presets'
                    "adc.bits": bits,
                    "array.rows_per_adc_read": 128,
                    "adc.range": "full_scale",  # the worst case this table documents
                    # as the table was measured: the offset removed exactly, no reference column
                    "decomposition.offset_reference": "digital",
                },
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pim = pimsim.oracle.convert(model, arch, (1, 1, 28, 28))
            with torch.no_grad():
                acc = (
                    sum(
                        int((pim(xb).argmax(1) == yb).sum())
                        for xb, yb in zip(torch.split(x, 500), torch.split(y, 500), strict=True)
                    )
                    / y.numel()
                )
            conversions = sum(pimsim.oracle.counts(pim).values()) // y.numel()
            rows.append(
                {
                    "preset": preset,
                    "adc_bits": bits,
                    "accuracy": acc,
                    "conversions_per_image": conversions,
                }
            )
            print(f"{preset:<13} {bits} bits: accuracy {acc:.4f} ({conversions} conversions/image)")
    out = ROOT / "results" / "mnist_adc_sweep.csv"
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for preset in PRESETS:
        pts = [(r["adc_bits"], r["accuracy"] * 100) for r in rows if r["preset"] == preset]
        ax.plot(*zip(*pts, strict=True), marker="o", label=preset)
    ax.axhline(digital * 100, color="k", linestyle="--", label=f"digital QAT {digital:.2%}")
    ax.set_xlabel("ADC bits")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("LeNet-5 (8-bit QAT) on MNIST, 128 rows per ADC read")
    ax.set_ylim(0, 100)
    ax.legend()
    fig.tight_layout()
    fig.savefig(ROOT / "results" / "mnist_adc_sweep.png", dpi=120)
    print(f"digital QAT accuracy {digital:.4f}; wrote {out.relative_to(ROOT)} and the plot")


if __name__ == "__main__":
    main()
