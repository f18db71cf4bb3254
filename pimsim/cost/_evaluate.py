"""``evaluate(arch, workload)``: energy, latency, area and efficiency per layer and in total.

Energy = sum over action classes of count x energy per action (+ leakage x latency). The energy
per action of a class comes from the spec's component of that class nearest the arrays (PE, then
tile, then chip); a class the spec does not instantiate uses the generic model named in
``FALLBACK_MODELS`` (reported in ``Report.notes``). A network that runs in passes
(``mapping.reprogram``) also pays for reprogramming its arrays (class ``write``), each layer for
its own cells. Every class but leakage is counted per layer, so the layers' energies sum to the
total less leakage, and each class of ``energy_breakdown_pj`` to its column of the layers.

Latency (analytical): an array step is one row-group read and its conversions,
``max(read time, columns per ADC x conversions per column / ADC rate)``; a mapped layer takes
``steps per sample / copies`` steps (its arrays work in parallel); a digital layer takes its
operations / (clock x units of its class on the chip; element-wise layers fall back on the
shift-and-add units). ``latency_ns`` sums the layers;
``throughput_fps`` is 1 / slowest layer when the chip is pipelined, else 1 / latency.

Latency (event, the default): the dataflow simulation of :mod:`pimsim.dataflow` on the times and
bandwidths of :func:`chip_timing`; ``latency_ns`` is one input's time through the chip and
``throughput_fps`` the steady-state rate of inputs streamed back to back. The analytical per-layer
times stay in the ``latency_analytical_ns`` column of ``Report.layers``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from pimsim.cost._actions import ACTION_CLASSES, action_weights, is_network, layer_actions
from pimsim.cost._activity import as_activity
from pimsim.cost._components import read_time_ns
from pimsim.cost._hierarchy import estimate, instances, level_counts, level_reports
from pimsim.cost._registry import BUFFER_ACCESS_BITS, ComponentEstimate, lookup
from pimsim.dataflow import DEFAULT_GRANULARITY, ChipTiming, Port
from pimsim.mapping import Mapping, map_network, steps_per_sample
from pimsim.spec import ArchSpec
from pimsim.spec._arch import CALIBRATED_NODES_NM
from pimsim.spec._fields import (
    AREA_CLASSES,
    DEFAULT_COMPONENT_MODELS,
    ENERGY_CLASSES,
)
from pimsim.workload import Workload

LAYER_ENERGY_CLASSES = (*ACTION_CLASSES, "write")
"""Classes of the per-layer energy columns ``energy_{class}_pj``: the actions and the cell
writes of reprogramming."""

#: The generic model costed for an action class the spec has no component for (every class a
#: layer can use but the write-voltage level shifters, which are area only).
FALLBACK_MODELS = {k: v for k, v in DEFAULT_COMPONENT_MODELS.items() if k != "level_shifter"}


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
    dataflow: object = None
    """The :class:`~pimsim.dataflow.DataflowResult` behind the latency (event model), or None."""

    def to_dict(self) -> dict:
        """The stable JSON structure: totals, breakdowns and per-layer records."""
        cols = ["name", "kind", "macs", "arrays", "adc_conversions", "cell_writes", "energy_pj",
                "latency_ns"]
        layers = []
        for row in self.layers.to_dict(orient="records"):
            rec = {k: row[k] for k in cols}
            rec["energy_breakdown_pj"] = {
                c: row[f"energy_{c}_pj"] for c in LAYER_ENERGY_CLASSES if row[f"energy_{c}_pj"]
            }
            if self.dataflow is not None:
                rec["latency_breakdown_ns"] = self.dataflow.layers[rec["name"]][
                    "latency_breakdown_ns"
                ]
            layers.append(rec)
        out = {
            "arch": self.mapping.arch.name,
            "latency_model": "event" if self.dataflow is not None else "analytical",
            "workload": self.mapping.workload.name,
            "totals": self.totals,
            "energy_breakdown_pj": self.energy_breakdown_pj,
            "area_breakdown_mm2": self.area_breakdown_mm2,
            "layers": layers,
            "notes": list(self.notes),
        }
        if self.dataflow is not None:
            flow = self.dataflow.to_dict()
            flow.pop("layers")
            out["dataflow"] = flow
        return out

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=2, default=float)

    def ordered_breakdown(self, kind: str) -> dict[str, float]:
        """The ``energy`` (pJ) or ``area`` (mm2) breakdown with every class of
        :data:`ENERGY_CLASSES` / :data:`AREA_CLASSES` in order (0 where the spec has none), any
        other class after them in name order."""
        breakdown = self.energy_breakdown_pj if kind == "energy" else self.area_breakdown_mm2
        classes = ENERGY_CLASSES if kind == "energy" else AREA_CLASSES
        extra = sorted(set(breakdown) - set(classes))
        return {c: float(breakdown.get(c, 0.0)) for c in (*classes, *extra)}

    def breakdown_columns(self) -> dict[str, float]:
        """The breakdowns as flat columns for CSV files and results stores: ``energy_<class>_pj``
        then ``area_<class>_mm2`` in the order of :meth:`ordered_breakdown`. The energy columns
        sum to ``totals["energy_pj"]``, the area columns to ``totals["area_mm2"]``."""
        out = {}
        for kind, unit in (("energy", "pj"), ("area", "mm2")):
            for cls, value in self.ordered_breakdown(kind).items():
                out[f"{kind}_{cls}_{unit}"] = value
        return out


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
    node = arch.technology.node_nm
    low, high = CALIBRATED_NODES_NM
    if not low <= node <= high:
        notes.append(
            f"technology.node_nm = {node:g} nm is outside the {low:g}-{high:g} nm the component "
            "models are calibrated over: energies and areas are extrapolated by first-order "
            "scaling (energy ~ node, area ~ node^2)"
        )
    return per_class, widths, notes


def _read_ns(arch: ArchSpec) -> float:
    """Array read time of one step. The ``neurosim`` array reads inside the sensing cycle of
    each conversion (SubArray.cpp, conventional parallel read: the bit-line delay is not added to
    the cycle), so unless the spec gives ``array.read_time_ns`` it adds nothing."""
    if arch.array.model == "neurosim" and arch.array.read_time_ns is None:
        return 0.0
    return read_time_ns(arch)


def conversions_per_adc(arch: ArchSpec, mapping_layer) -> int:
    """Conversions one ADC makes per array read, from the floorplan: an array's cols physical
    columns share its cols / cols_per_adc ADCs. A differential pair combined on the column
    (``differential_analog``) is one analog value, so an ADC muxed over cols_per_adc columns
    converts cols_per_adc / 2 of them (at least one); with ``differential_digital`` each polarity
    column is converted, cols_per_adc per ADC, whether the pair shares an ADC (cols_per_adc >= 2)
    or each column has its own (cols_per_adc = 1: the two convert at once)."""
    per_column = mapping_layer.conversions_per_column_read
    if arch.decomposition.differential:
        per_column /= 2
    return max(1, math.ceil(arch.adc.cols_per_adc * per_column))


def _step_ns(arch: ArchSpec, mapping_layer, adc_rate_hz: float) -> float:
    convert = conversions_per_adc(arch, mapping_layer) / adc_rate_hz
    return max(_read_ns(arch), convert * 1e9)


def period_ns(arch: ArchSpec, adc_rate_hz: float) -> float:
    """The digital clock period: 1 / ``clock_hz``, or with ``technology.clocking:
    synchronous`` the longer of that and one ADC conversion."""
    period = 1e9 / arch.technology.clock_hz
    if arch.technology.clocking == "synchronous":
        period = max(period, 1e9 / adc_rate_hz)
    return period


def _units(arch: ArchSpec, mapping: Mapping):
    units: dict[str, float] = {}
    on_chip = []
    parts = instances(arch)
    per_level = level_counts(arch, mapping.chip_tiles)
    for inst in parts:
        n = math.ceil(per_level[inst.level] / inst.shared_by) * inst.count
        on_chip.append((inst, n))
        units[inst.component_class] = units.get(inst.component_class, 0) + n
    return units, on_chip, parts


def _digital_class(layer) -> str:
    return {"act": "activation", "pool": "pooling", "matmul": "mac"}.get(layer.kind, "digital")


def _digital_ns(arch, layer, counts, units, period) -> float:
    """Time of a digital layer: its operations / (units of its class x clock). A spec without
    ``digital`` units runs element-wise layers (adds, batch-norm) on its shift-and-add units,
    and one without ``mac`` units runs activation x activation products on them (one MAC per
    unit per cycle); a missing activation or pooling class counts one unit."""
    ops = max(counts["activation"], counts["pooling"], counts["digital"], counts["mac"])
    cls = _digital_class(layer)
    shared = cls in ("digital", "mac")
    n = units.get(cls) or (units.get("shift_add", 1) if shared else 1)
    return ops * period / max(1, n)


def write_ns(arch: ArchSpec, m) -> float:
    """Time to write a rewritten (activation) matrix for one input: each array is written one
    row at a time (``cell.write_pulses`` pulses of ``cell.write_latency_ns``), its arrays in
    parallel; 0 when the spec gives no write latency."""
    if not m.rewritten or arch.cell.write_latency_ns is None:
        return 0.0
    return max(m.row_tiles) * arch.cell.write_pulses * arch.cell.write_latency_ns


def chip_timing(arch: ArchSpec, mapping: Mapping, _cache=None) -> ChipTiming:
    """The times and bandwidths the dataflow model simulates, from the spec's components:
    array steps per output position, digital layer times, and every tile/chip buffer and
    interconnect as a :class:`~pimsim.dataflow.Port` (bandwidth = width x count x rate, rate =
    the component's ``rate_hz`` or the digital clock; a component without ``width_bits`` moves
    ``BUFFER_ACCESS_BITS`` per cycle, as the energy model assumes)."""
    per_class, _, notes = _cache or _class_estimates(arch)
    units = _units(arch, mapping)[0]
    adc_rate = per_class["adc"].rate_hz
    period = period_ns(arch, adc_rate)
    position, adc_bound, digital, digital_class, writes = {}, {}, {}, {}, {}
    weights = action_weights(arch)
    for layer in mapping.workload.layers:
        m = mapping.layers.get(layer.name)
        if m is not None:
            step = _step_ns(arch, m, adc_rate)
            position[layer.name] = step * m.position_steps
            adc_bound[layer.name] = step > _read_ns(arch)
            if m.rewritten:
                writes[layer.name] = write_ns(arch, m)
        else:
            counts = layer_actions(mapping, layer, weights)
            digital[layer.name] = _digital_ns(arch, layer, counts, units, period)
            digital_class[layer.name] = _digital_class(layer)
    ports = []
    for level in ("tile", "chip"):
        for comp in getattr(arch, level).components:
            if comp.component_class not in ("buffer", "interconnect"):
                continue
            rate = comp.rate_hz or 1e9 / period
            width = comp.width_bits or BUFFER_ACCESS_BITS
            if comp.component_class == "buffer":
                name = comp.name.lower()
                role = (
                    "input"
                    if "in" in name.split("_")[0]
                    else ("output" if "out" in name.split("_")[0] else "both")
                )
                cap = comp.size_bytes * 8 * comp.count if comp.size_bytes else None
            else:
                role = "network" if is_network(level, comp) else "local"
                cap = None
            ports.append(
                Port(
                    name=f"{level}.{comp.name}",
                    kind=comp.component_class,
                    level=level,
                    role=role,
                    bits_per_ns=width * comp.count * rate * 1e-9,
                    shared_by=comp.shared_by,
                    capacity_bits=cap,
                    hops=comp.hops,
                    topology=comp.topology,
                )
            )
    return ChipTiming(
        period_ns=period,
        position_ns=position,
        adc_bound=adc_bound,
        digital_ns=digital,
        digital_class=digital_class,
        ports=tuple(ports),
        write_ns=writes,
    )


LATENCY_MODELS = ("event", "analytical")


def evaluate(
    arch: ArchSpec,
    workload: Workload,
    mapping: Mapping | None = None,
    activity=None,
    latency_model: str = "event",
    granularity: str = DEFAULT_GRANULARITY,
    samples: int = 2,
) -> Report:
    """Cost of one input sample of ``workload`` on ``arch`` (see the module docstring).

    ``activity`` (an :class:`Activity`, a number in [0, 1] or None for 1) scales the energy of
    row drivers and cell reads by the fraction of input bits that are 1. ``latency_model``:
    ``event`` (the dataflow simulation of :mod:`pimsim.dataflow` at ``granularity`` with
    ``samples`` inputs streamed) or ``analytical`` (the per-layer sums described above).
    """
    import pandas as pd

    if latency_model not in LATENCY_MODELS:
        raise ValueError(f"latency_model must be one of {LATENCY_MODELS}, not {latency_model!r}")
    mapping = mapping or map_network(arch, workload)
    activity = as_activity(activity)
    cache = _class_estimates(arch)
    per_class, widths, notes = cache
    notes = list(notes)
    units, on_chip, parts = _units(arch, mapping)
    tiles = mapping.chip_tiles
    period = period_ns(arch, per_class["adc"].rate_hz)
    # A network larger than a fixed chip runs in passes: every pass reprograms its arrays, so
    # each sample (one sample per pass, the worst case) pays for writing every used cell, which
    # each layer pays for its own cells.
    reprogrammed = mapping.passes > 1
    write_pj = arch.cell.write_energy_pj or 0.0
    if reprogrammed and arch.cell.write_energy_pj is None:
        notes.append(
            "the network needs reprogramming but cell.write_energy_pj is not "
            "given: writes are counted, not costed"
        )
    if any(m.rewritten for m in mapping.layers.values()):
        missing = [f for f in ("write_energy_pj", "write_latency_ns")
                   if getattr(arch.cell, f) is None]  # fmt: skip
        if missing:
            notes.append(
                "activation x activation products are written into arrays for every input "
                f"but cell.{' and cell.'.join(missing)} not given: those writes are counted, "
                "not costed"
            )
    rows = []
    weights = action_weights(arch)
    for layer in workload.layers:
        counts = layer_actions(mapping, layer, weights)
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
            latency += write_ns(arch, m)
        else:
            latency = _digital_ns(arch, layer, counts, units, period)
        rewrite = m is not None and (reprogrammed or m.rewritten)
        writes = m.used_cells * m.copies * arch.cell.write_pulses if rewrite else 0
        energy["write"] = writes * write_pj
        row = {
            "name": layer.name,
            "kind": layer.kind,
            "macs": layer.macs,
            "arrays": m.arrays_total if m else 0,
            "copies": m.copies if m else 0,
            "adc_conversions": m.adc_conversions if m is not None else 0,  # data-carrying
            "cell_writes": writes,
            "latency_ns": latency,
        }
        row.update({f"energy_{c}_pj": energy[c] for c in LAYER_ENERGY_CLASSES})
        row["energy_pj"] = sum(energy.values())
        rows.append(row)
    frame = pd.DataFrame(rows)
    levels = level_reports(arch, tiles, parts)
    chip = levels[-1]

    def column_sum(key):  # from the rows: a pandas column sum costs more than the sweep point
        return sum(row[key] for row in rows)

    latency = float(column_sum("latency_ns"))
    slowest = float(max((row["latency_ns"] for row in rows), default=0.0))
    throughput = 1e9 / (slowest if arch.chip.pipelined else latency) if latency else math.inf
    flow = None
    frame["latency_analytical_ns"] = frame["latency_ns"]
    if latency_model == "event":
        from pimsim.dataflow import simulate

        flow = simulate(
            mapping, chip_timing(arch, mapping, cache), granularity=granularity, samples=samples
        )
        frame["latency_ns"] = [flow.layers[n]["latency_ns"] for n in frame["name"]]
        latency, throughput = flow.latency_ns, flow.throughput_fps
        notes.extend(flow.notes)
    leakage_mw = sum(inst.estimate.leakage_mw * n for inst, n in on_chip)
    breakdown = {c: float(column_sum(f"energy_{c}_pj")) for c in ACTION_CLASSES}
    breakdown["leakage"] = leakage_mw * latency  # mW x ns = pJ
    breakdown["write"] = float(column_sum("energy_write_pj"))
    writes = int(column_sum("cell_writes"))
    energy_total = sum(breakdown.values())
    ops = 2 * workload.macs
    area = chip.area_mm2
    totals = {
        "macs": workload.macs,
        "adc_conversions": int(column_sum("adc_conversions")),
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
    return Report(frame, totals, breakdown, area_breakdown, mapping, tuple(notes), flow)
