"""Tables and plots of ``experiments/realistic_accuracy.py`` from its run log.

Writes ``results/realistic_accuracy.md``, ``results/realistic_accuracy_table_{a,b,c}.csv``,
``results/realistic_accuracy_table_a.png`` (accuracy against ADC bits per preset) and
``results/realistic_accuracy_loss.png`` (PIM-QAT training loss per epoch). A cell is the mean +-
std over seeds (Table A: one chip, nothing random at deployment) or over seeds x chips (Tables B
and C), with the number of runs it holds.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from pim_training_report import _markdown, _samples  # noqa: E402

METHODS_A = ("digital_qat", "full_scale", "calibrated", "learned", "pimqat")
LABELS_A = {
    "digital_qat": "digital QAT",
    "full_scale": "conventional, full scale",
    "calibrated": "conventional, calibrated (percentile)",
    "learned": "conventional, learned (least error)",
    "pimqat": "PIM-QAT, trained ranges",
}


def _load(path: Path) -> pd.DataFrame:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return pd.DataFrame(rows).drop_duplicates("key", keep="last")


def _cell(values) -> str:
    if len(values) == 0:
        return "not run"
    v = np.asarray(values, dtype=float) * 100
    return f"{v.mean():.2f} +- {v.std():.2f} (n={len(v)})"


def table_a(frame: pd.DataFrame) -> pd.DataFrame:
    a = frame[frame["table"] == "a"]
    rows = []
    for (network, bits), group in a.groupby(["network", "bits"]):
        digital = group[group["method"] == "digital_qat"]["acc"].tolist()
        pim = group[group["method"] != "digital_qat"]
        for (preset, adc), cells in pim.groupby(["preset", "adc_bits"]):
            row = {"network": network, "precision": f"W{int(bits)}A{int(bits)}", "preset": preset,
                   "adc_bits": int(adc), "digital_qat": _cell(digital)}
            for method in METHODS_A[1:]:
                row[method] = _cell(cells[cells["method"] == method]["acc"].tolist())
            means = {m: cells[cells["method"] == m]["acc"].mean() * 100 for m in METHODS_A[1:]}
            gap = np.mean(digital) * 100 - means["pimqat"]
            row["digital - pimqat"] = "" if np.isnan(gap) else f"{gap:.2f}"
            rows.append(row)
    return pd.DataFrame(rows)


def _by_method(frame: pd.DataFrame, table: str, level_cols: list[str]) -> pd.DataFrame:
    t = frame[frame["table"] == table]
    methods = list(dict.fromkeys(t["method"]))
    rows = []
    for levels, group in t.groupby(level_cols, sort=False):
        levels = levels if isinstance(levels, tuple) else (levels,)
        row = dict(zip(level_cols, levels, strict=True))
        for method in methods:
            runs = group[group["method"] == method]
            row[method] = _cell(_samples(runs)) if len(runs) else "-"  # not a row of this level
        rows.append(row)
    return pd.DataFrame(rows)


def plot_a(frame: pd.DataFrame, path: Path) -> None:
    a = frame[frame["table"] == "a"]
    if a.empty:
        return
    keys = sorted(set(zip(a["network"], a["bits"], strict=True)))
    presets = ("native", "differential", "bit_serial")
    fig, axes = plt.subplots(len(keys), 3, figsize=(12, 3.2 * len(keys)), squeeze=False)
    for i, (network, bits) in enumerate(keys):
        group = a[(a["network"] == network) & (a["bits"] == bits)]
        digital = group[group["method"] == "digital_qat"]["acc"].mean() * 100
        for j, preset in enumerate(presets):
            ax = axes[i][j]
            cells = group[group["preset"] == preset]
            ax.axhline(digital, color="k", ls="--", lw=1, label="digital QAT")
            for method in METHODS_A[1:]:
                m = cells[cells["method"] == method].groupby("adc_bits")["acc"]
                if len(m):
                    mean, std = m.mean() * 100, m.std(ddof=0).fillna(0) * 100
                    ax.errorbar(mean.index, mean.values, yerr=std.values, marker="o", ms=3,
                                capsize=2, label=LABELS_A[method])
            ax.set_title(f"{network} W{int(bits)}A{int(bits)}, {preset}", fontsize=9)
            ax.set_xlabel("ADC bits")
            ax.set_ylabel("test accuracy (%)")
            ax.set_xticks([3, 4, 5, 6, 8])
            ax.set_xlim(2.5, 8.5)
            ax.set_ylim(0, 100)
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_loss(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    runs = frame[frame["table"] == "loss"]
    rows = []
    if runs.empty:
        return pd.DataFrame(rows)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for _, run in runs.iterrows():
        ax = axes[0 if run["start"] == "scratch" else 1]
        losses = run["losses"]
        ax.plot(range(1, len(losses) + 1), losses, marker="o", ms=3,
                label=f"{run['network']}, {run['preset']}")
        falls = sum(b < a for a, b in zip(losses, losses[1:], strict=False))
        lowest = int(np.argmin(losses)) + 1
        rows.append({"network": run["network"], "preset": run["preset"], "start": run["start"],
                     "epochs": len(losses), "first loss": f"{losses[0]:.3f}",
                     "last loss": f"{losses[-1]:.3f}",
                     "epochs it fell": f"{falls} of {len(losses) - 1}",
                     "lowest at epoch": lowest,
                     "accuracy (trained ranges)": f"{run['acc'] * 100:.2f}"})
    for ax, title in zip(axes, ("PIM-QAT from scratch", "PIM-QAT from the QAT model"),
                         strict=True):
        ax.set_title(f"{title} (W4A4, 4-bit ADC, 128 rows)", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss (through the ADCs)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return pd.DataFrame(rows)


def report(runs: Path, out: Path) -> None:
    frame = _load(runs)
    parts = ["# Accuracy as chips deliver it (generated by experiments/realistic_accuracy.py)\n"]
    a = table_a(frame)
    if not a.empty:
        a.to_csv(out / "realistic_accuracy_table_a.csv", index=False)
        plot_a(frame, out / "realistic_accuracy_table_a.png")
        parts += ["## Table A: where the accuracy goes, and what ranges and training win back "
                  "(accuracy %)\n", _markdown(a), "", "![](realistic_accuracy_table_a.png)\n"]
    loss = plot_loss(frame, out / "realistic_accuracy_loss.png")
    if not loss.empty:
        parts += ["## PIM-QAT training loss per epoch\n", _markdown(loss), "",
                  "![](realistic_accuracy_loss.png)\n"]
    why = frame[frame["table"] == "why"]
    if not why.empty:
        rows = []
        for _, run in why.iterrows():
            for layer in run["layers"]:
                rows.append({"preset": run["preset"], "layer": layer["layer"],
                             "ADC step": f"{layer['step']:.1f}",
                             "std of what the ADC converts": f"{layer['converted_std']:.1f}",
                             "std of the signal x . w": f"{layer['signal_std']:.1f}",
                             "signal std / step": f"{layer['signal_std'] / layer['step']:.2f}"})
        parts += ["## Why native stays short at 4 ADC bits (LeNet-5 W4A4, seed 0, learned "
                  "ranges, 64 training images)\n", _markdown(pd.DataFrame(rows)), ""]
    if (frame["table"] == "b").any():
        b = _by_method(frame, "b", ["variation", "sigma"])
        b.to_csv(out / "realistic_accuracy_table_b.csv", index=False)
        parts += ["## Table B: device variability (LeNet-5, native W8A8 with a reference "
                  "column, 8-bit ADC; accuracy %, seeds x 10 chips)\n", _markdown(b), ""]
    if (frame["table"] == "c").any():
        c = _by_method(frame, "c", ["level"])
        c.to_csv(out / "realistic_accuracy_table_c.csv", index=False)
        parts += ["## Table C: ADC non-idealities (differential W8A8, 6-bit ADC; INL rows: "
                  "LeNet-5 with BatchNorm; accuracy %, seeds x 10 chips)\n", _markdown(c), ""]
    (out / "realistic_accuracy.md").write_text("\n".join(parts) + "\n")
