"""``compare(report_a, report_b)``: two cost reports of one workload side by side.

Every quantity appears as A, B and the ratio B/A: the totals, the energy and the chip area of
each component class, and each layer's energy and latency. A ratio above 1 means B spends more
(or, for throughput and the efficiencies, does better). Equal values give 1, zeros included, so
a design compared with itself gives 1 everywhere; a quantity that is 0 for A only gives inf.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pimsim.cost._evaluate import Report

TOTALS = (
    "energy_pj",
    "latency_ns",
    "throughput_fps",
    "area_mm2",
    "tops_per_w",
    "tops_per_mm2",
    "adc_conversions",
    "arrays_used",
)
"""The ``totals`` keys a :class:`Comparison` sets side by side, in its order."""

SECTIONS = ("totals", "energy_pj", "area_mm2", "layer_energy_pj", "layer_latency_ns")
"""The ``section`` values of :meth:`Comparison.frame`, in its order: the totals, the energy and
area by component class, and the energy and latency by layer."""


def ratio(a: float, b: float) -> float:
    """``b / a``; 1 when the two are equal (0 and 0 included: nothing changed), inf when only
    ``a`` is 0."""
    if a == b:
        return 1.0
    return b / a if a else math.inf


@dataclass(frozen=True)
class Comparison:
    """Result of :func:`compare`. Each table is a DataFrame with columns ``a``, ``b`` and
    ``ratio`` (B/A) beside what it is of."""

    labels: tuple[str, str]
    """Names of A and B (for headers and legends)."""
    workload: str
    """The workload both reports cost."""
    totals: object
    """One row per key of :data:`TOTALS`: ``metric``, ``a``, ``b``, ``ratio``."""
    energy_breakdown_pj: object
    """One row per component class with energy in A or B: ``class``, ``a``, ``b``, ``ratio``
    (pJ per sample; the classes of :data:`~pimsim.spec._fields.ENERGY_CLASSES` order)."""
    area_breakdown_mm2: object
    """One row per component class with area in A or B: ``class``, ``a``, ``b``, ``ratio``
    (mm2 of the chip)."""
    layers: object
    """One row per layer of the workload: ``name``, ``kind``, ``energy_pj_a``,
    ``energy_pj_b``, ``energy_ratio``, ``latency_ns_a``, ``latency_ns_b``, ``latency_ratio``."""

    def frame(self):
        """Every table in one long DataFrame (the CSV form): ``section`` (one of
        :data:`SECTIONS`), ``item`` (metric, class or layer), ``a``, ``b``, ``ratio``."""
        import pandas as pd

        parts = [
            self.totals.rename(columns={"metric": "item"}).assign(section="totals"),
            self.energy_breakdown_pj.rename(columns={"class": "item"}).assign(section="energy_pj"),
            self.area_breakdown_mm2.rename(columns={"class": "item"}).assign(section="area_mm2"),
        ]
        for quantity in ("energy", "latency"):
            unit = "pj" if quantity == "energy" else "ns"
            part = self.layers[["name", f"{quantity}_{unit}_a", f"{quantity}_{unit}_b",
                                f"{quantity}_ratio"]]  # fmt: skip
            part.columns = ["item", "a", "b", "ratio"]
            parts.append(part.assign(section=f"layer_{quantity}_{unit}"))
        out = pd.concat(parts, ignore_index=True)
        return out[["section", "item", "a", "b", "ratio"]]

    def to_dict(self) -> dict:
        """The JSON structure: labels, workload, and each table as a list of records (a ratio
        that is not finite becomes null)."""

        def records(frame) -> list[dict]:
            rows = frame.to_dict(orient="records")
            for row in rows:
                for key, value in row.items():
                    if isinstance(value, float) and not math.isfinite(value):
                        row[key] = None
                    elif hasattr(value, "item"):  # numpy scalars to Python
                        row[key] = value.item()
            return rows

        return {
            "labels": {"a": self.labels[0], "b": self.labels[1]},
            "workload": self.workload,
            "totals": records(self.totals),
            "energy_breakdown_pj": records(self.energy_breakdown_pj),
            "area_breakdown_mm2": records(self.area_breakdown_mm2),
            "layers": records(self.layers),
        }


def _side_by_side(a: dict, b: dict, keys, name: str, drop_zero: bool):
    import pandas as pd

    rows = [
        {name: k, "a": float(a.get(k, 0.0)), "b": float(b.get(k, 0.0))}
        for k in keys
        if not (drop_zero and not a.get(k) and not b.get(k))
    ]
    frame = pd.DataFrame(rows, columns=[name, "a", "b"])
    frame["ratio"] = [ratio(x, y) for x, y in zip(frame["a"], frame["b"], strict=True)]
    return frame


def compare(report_a: Report, report_b: Report, labels: tuple[str, str] | None = None):
    """Set two :func:`~pimsim.cost.evaluate` reports of one workload side by side (see the
    module docstring); ``labels`` default to the two arch names. Component classes with neither
    energy (area) in A nor in B are left out of the breakdowns. Raises ``ValueError`` when the
    reports cost different workloads or come from different latency models."""
    import pandas as pd

    wl_a, wl_b = report_a.mapping.workload, report_b.mapping.workload
    names_a, names_b = list(report_a.layers["name"]), list(report_b.layers["name"])
    if wl_a.name != wl_b.name or names_a != names_b:
        raise ValueError(f"compare needs two reports of one workload, not {wl_a.name!r} and "
                         f"{wl_b.name!r}")  # fmt: skip
    if (report_a.dataflow is None) != (report_b.dataflow is None):
        raise ValueError("compare needs two reports of one latency model (event or analytical)")
    labels = labels or (report_a.mapping.arch.name, report_b.mapping.arch.name)
    energy_a, energy_b = report_a.ordered_breakdown("energy"), report_b.ordered_breakdown("energy")
    area_a, area_b = report_a.ordered_breakdown("area"), report_b.ordered_breakdown("area")
    la, lb = report_a.layers, report_b.layers
    layers = pd.DataFrame(
        {
            "name": la["name"],
            "kind": la["kind"],
            "energy_pj_a": la["energy_pj"].astype(float),
            "energy_pj_b": lb["energy_pj"].astype(float).to_numpy(),
            "latency_ns_a": la["latency_ns"].astype(float),
            "latency_ns_b": lb["latency_ns"].astype(float).to_numpy(),
        }
    )
    for quantity, unit in (("energy", "pj"), ("latency", "ns")):
        pairs = zip(layers[f"{quantity}_{unit}_a"], layers[f"{quantity}_{unit}_b"], strict=True)
        layers[f"{quantity}_ratio"] = [ratio(x, y) for x, y in pairs]
    order = ["name", "kind", "energy_pj_a", "energy_pj_b", "energy_ratio", "latency_ns_a",
             "latency_ns_b", "latency_ratio"]  # fmt: skip
    return Comparison(
        labels=(str(labels[0]), str(labels[1])),
        workload=wl_a.name,
        totals=_side_by_side(report_a.totals, report_b.totals, TOTALS, "metric", False),
        energy_breakdown_pj=_side_by_side(
            energy_a, energy_b, dict.fromkeys([*energy_a, *energy_b]), "class", True
        ),
        area_breakdown_mm2=_side_by_side(
            area_a, area_b, dict.fromkeys([*area_a, *area_b]), "class", True
        ),
        layers=layers[order],
    )


def _scaled(values_pj: list[float]) -> tuple[float, str]:
    """A factor and unit that keep energies in pJ readable (pJ, nJ, uJ or mJ)."""
    top = max((abs(v) for v in values_pj), default=0.0)
    for factor, unit in ((1e-9, "mJ"), (1e-6, "uJ"), (1e-3, "nJ")):
        if top >= 1 / factor:
            return factor, unit
    return 1.0, "pJ"


def plot_comparison(comparison: Comparison, path: str) -> None:
    """Save a three-panel PNG of grouped bars, A beside B: energy by component class, chip area
    by component class, and energy per layer (layers with energy in A or B)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    c = comparison
    layers = c.layers[(c.layers["energy_pj_a"] > 0) | (c.layers["energy_pj_b"] > 0)]
    factor, unit = _scaled([*c.energy_breakdown_pj["a"], *c.energy_breakdown_pj["b"]])
    lfactor, lunit = _scaled([*layers["energy_pj_a"], *layers["energy_pj_b"]])
    panels = [
        (c.energy_breakdown_pj["class"], c.energy_breakdown_pj["a"] * factor,
         c.energy_breakdown_pj["b"] * factor, f"energy per sample ({unit})", "energy by class"),
        (c.area_breakdown_mm2["class"], c.area_breakdown_mm2["a"],
         c.area_breakdown_mm2["b"], "area (mm2)", "chip area by class"),
        (layers["name"], layers["energy_pj_a"] * lfactor, layers["energy_pj_b"] * lfactor,
         f"energy per sample ({lunit})", "energy per layer"),
    ]  # fmt: skip
    fig, axes = plt.subplots(
        1, 3, figsize=(16, 5), gridspec_kw={"width_ratios": [1, 1, max(1.0, len(layers) / 10)]}
    )
    for ax, (names, a, b, ylabel, title) in zip(axes, panels, strict=True):
        x = np.arange(len(names))
        ax.bar(x - 0.2, list(a), width=0.4, label=c.labels[0])
        ax.bar(x + 0.2, list(b), width=0.4, label=c.labels[1])
        ax.set_xticks(x, list(names), rotation=90, fontsize=7)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{c.labels[0]} vs {c.labels[1]} on {c.workload}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
