"""``evaluate(arch, workload)``: energy, latency, area and efficiency per layer and in total.

Energy = sum over action classes of count x energy per action (+ leakage x latency). The energy
per action of a class comes from the spec's component of that class nearest the arrays (PE, then
tile, then chip); a class the spec does not instantiate uses the generic model named in
``FALLBACK_MODELS`` (reported in ``Report.notes``).

Latency (analytical): an array step is one row-group read and its conversions,
``max(read time, columns per ADC x conversions per column / ADC rate)``; a mapped layer takes
``steps per sample / copies`` steps (its arrays work in parallel); a digital layer takes its
operations / (clock x units of its class on the chip). ``latency_ns`` sums the layers;
``throughput_fps`` is 1 / slowest layer when the chip is pipelined, else 1 / latency.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from pimsim.cost._actions import ACTION_CLASSES, layer_actions
from pimsim.cost._activity import as_activity
from pimsim.cost._components import read_time_ns
from pimsim.cost._hierarchy import estimate, instances, level_counts, level_reports
from pimsim.cost._registry import BUFFER_ACCESS_BITS, ComponentEstimate, lookup
from pimsim.mapping import Mapping, map_network, steps_per_sample
from pimsim.spec import ArchSpec
from pimsim.workload import Workload

FALLBACK_MODELS = {
    "shift_add": "shift_add",
    "accumulator": "adder_tree",
    "buffer": "register_file",
    "interconnect": "bus",
    "activation": "relu",
    "pooling": "max_pool",
    "digital": "shift_add",
}


@dataclass(frozen=True)
class Report:
    """Result of :func:`evaluate`. ``layers`` is a DataFrame (one row per layer), ``totals`` a
    dict with the keys documented in the README, ``mapping`` the mapping it was computed from."""

    layers: object
    totals: dict
    energy_breakdown_pj: dict
    area_breakdown_mm2: dict
    mapping: Mapping
    notes: tuple = field(default=())

    def to_dict(self) -> dict:
        """The stable JSON structure: totals, breakdowns and per-layer records."""
        cols = ["name", "macs", "arrays", "adc_conversions", "energy_pj", "latency_ns"]
        layers = []
        for row in self.layers.to_dict(orient="records"):
            rec = {k: row[k] for k in cols}
            rec["energy_breakdown_pj"] = {
                c: row[f"energy_{c}_pj"] for c in ACTION_CLASSES if row[f"energy_{c}_pj"]
            }
            layers.append(rec)
        return {
            "arch": self.mapping.arch.name,
            "workload": self.mapping.workload.name,
            "totals": self.totals,
            "energy_breakdown_pj": self.energy_breakdown_pj,
            "area_breakdown_mm2": self.area_breakdown_mm2,
            "layers": layers,
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=2, default=float)


def _class_estimates(arch: ArchSpec) -> tuple[dict[str, ComponentEstimate], dict, list[str]]:
    per_class: dict[str, ComponentEstimate] = {}
    widths: dict[str, int] = {}
    for section in ("adc", "dac", "array"):
        per_class[section] = estimate(arch, section)
    for level in ("pe", "tile", "chip"):
        for comp in getattr(arch, level).components:
            if comp.component_class not in per_class:
                per_class[comp.component_class] = estimate(arch, level, comp)
                widths[comp.component_class] = comp.width_bits or BUFFER_ACCESS_BITS
    notes = []
    if "sample_hold" not in per_class:  # charge held on the column itself: no separate S+H
        per_class["sample_hold"] = ComponentEstimate(0.0, 0.0, arch.technology.clock_hz)
    for cls, model in FALLBACK_MODELS.items():
        if cls not in per_class:
            from pimsim.spec._fields import ComponentSpec

            stub = ComponentSpec(name=cls, component_class=cls, model=model)
            per_class[cls] = lookup("component", model)(arch, stub)
            notes.append(f"no {cls} component in {arch.name}: used the generic {model!r} model")
    return per_class, widths, notes


def _step_ns(arch: ArchSpec, mapping_layer, adc_rate_hz: float) -> float:
    convert = arch.adc.cols_per_adc * mapping_layer.conversions_per_column_read / adc_rate_hz
    return max(read_time_ns(arch), convert * 1e9)


def evaluate(
    arch: ArchSpec, workload: Workload, mapping: Mapping | None = None, activity=None
) -> Report:
    """Cost of one input sample of ``workload`` on ``arch`` (see the module docstring).

    ``activity`` (an :class:`Activity`, a number in [0, 1] or None for 1) scales the energy of
    row drivers and cell reads by the fraction of input bits that are 1.
    """
    import pandas as pd

    mapping = mapping or map_network(arch, workload)
    activity = as_activity(activity)
    per_class, widths, notes = _class_estimates(arch)
    units: dict[str, float] = {}
    tiles = mapping.chip_tiles
    on_chip = []
    parts = instances(arch)
    per_level = level_counts(arch, tiles)
    for inst in parts:
        n = math.ceil(per_level[inst.level] / inst.shared_by) * inst.count
        on_chip.append((inst, n))
        units[inst.component_class] = units.get(inst.component_class, 0) + n
    rows = []
    for layer in workload.layers:
        counts = layer_actions(mapping, layer)
        driven = activity.for_layer(layer.name)
        counts["dac"] *= driven
        counts["array"] *= driven
        energy = {}
        for cls, count in counts.items():
            per = per_class[cls].energy_pj
            if cls in ("buffer", "interconnect"):
                per = per / widths.get(cls, BUFFER_ACCESS_BITS)  # per bit
            energy[cls] = count * per
        m = mapping.layers.get(layer.name)
        if m is not None:
            latency = steps_per_sample(m) / m.copies * _step_ns(arch, m, per_class["adc"].rate_hz)
        else:
            ops = max(counts["activation"], counts["pooling"], counts["digital"])
            latency = (
                ops
                / (
                    arch.technology.clock_hz
                    * max(
                        1,
                        units.get(
                            "activation"
                            if layer.kind == "act"
                            else "pooling"
                            if layer.kind == "pool"
                            else "digital",
                            1,
                        ),
                    )
                )
                * 1e9
            )
        row = {
            "name": layer.name,
            "kind": layer.kind,
            "macs": layer.macs,
            "arrays": m.arrays_total if m else 0,
            "copies": m.copies if m else 0,
            "adc_conversions": int(counts["adc"]),
            "latency_ns": latency,
        }
        row.update({f"energy_{c}_pj": energy[c] for c in ACTION_CLASSES})
        row["energy_pj"] = sum(energy.values())
        rows.append(row)
    frame = pd.DataFrame(rows)
    levels = level_reports(arch, tiles, parts)
    chip = levels[-1]
    latency = float(frame["latency_ns"].sum())
    slowest = float(frame["latency_ns"].max()) if len(frame) else 0.0
    leakage_mw = sum(inst.estimate.leakage_mw * n for inst, n in on_chip)
    breakdown = {c: float(frame[f"energy_{c}_pj"].sum()) for c in ACTION_CLASSES}
    breakdown["leakage"] = leakage_mw * latency  # mW x ns = pJ
    # A network larger than a fixed chip runs in passes: every pass reprograms its arrays, so
    # each sample (one sample per pass, the worst case) pays for writing every used cell.
    writes = 0
    if mapping.passes > 1:
        used = sum(m.used_cells * m.copies for m in mapping.layers.values())
        writes = used * arch.cell.write_pulses
        if arch.cell.write_energy_pj is None:
            notes.append(
                "the network needs reprogramming but cell.write_energy_pj is not "
                "given: writes are counted, not costed"
            )
    breakdown["write"] = writes * (arch.cell.write_energy_pj or 0.0)
    energy_total = sum(breakdown.values())
    ops = 2 * workload.macs
    area = chip.area_mm2
    throughput = 1e9 / (slowest if arch.chip.pipelined else latency) if latency else math.inf
    totals = {
        "macs": workload.macs,
        "adc_conversions": int(frame["adc_conversions"].sum()),
        "energy_pj": energy_total,
        "latency_ns": latency,
        "throughput_fps": throughput,
        "area_mm2": area,
        "tops_per_w": ops / energy_total if energy_total else 0.0,  # ops/pJ = TOPS/W
        "tops_per_mm2": ops * throughput / area * 1e-12 if area else 0.0,
        "arrays_used": mapping.arrays_used,
        "utilization": mapping.utilization,
        "chip_tiles": tiles,
        "passes": mapping.passes,
        "cell_writes": writes,
    }
    area_breakdown = {c: v["area_mm2"] for c, v in chip.breakdown.items()}
    return Report(frame, totals, breakdown, area_breakdown, mapping, tuple(notes))
