"""Plots of a cost report: per-layer energy stacked by component class, and the area breakdown."""

from __future__ import annotations

from pimsim.cost._evaluate import LAYER_ENERGY_CLASSES


def plot_report(report, path: str) -> None:
    """Save a two-panel PNG: stacked per-layer energy (mapped and digital layers) and chip area
    by component class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = report.layers
    frame = frame[frame["energy_pj"] > 0]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 5), gridspec_kw={"width_ratios": [3, 1]})
    bottom = [0.0] * len(frame)
    for cls in LAYER_ENERGY_CLASSES:
        values = list(frame[f"energy_{cls}_pj"] * 1e-6)
        if any(values):
            ax1.bar(range(len(frame)), values, bottom=bottom, label=cls)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax1.set_xticks(range(len(frame)), frame["name"], rotation=90, fontsize=6)
    ax1.set_ylabel("energy per sample (uJ)")
    ax1.set_title(f"{report.mapping.workload.name} on {report.mapping.arch.name}")
    ax1.legend(fontsize=7)
    area = {k: v for k, v in report.area_breakdown_mm2.items() if v > 0}
    ax2.bar(list(area), list(area.values()))
    ax2.set_ylabel("area (mm2)")
    ax2.set_title(f"chip area {report.totals['area_mm2']:.1f} mm2")
    ax2.tick_params(axis="x", rotation=90)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
