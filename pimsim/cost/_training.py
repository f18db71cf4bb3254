"""``training_cost(arch, workload)``: energy, latency and extra area of on-chip training, from the
same spec and mapping as inference.

One training step processes ``batch_size`` samples and then updates the weights once. Per step:

* **forward**: the inference energy of :func:`evaluate` per sample;
* **backward products**: ``backprop`` reads every trainable layer but the first transposed (the
  error drives the columns, the rows are converted); ``dfa`` multiplies the output error by a
  fixed random matrix per hidden layer, on arrays of its own. Both are costed by the same
  component models as the forward: a transposed read of a K x N layer at P output positions is
  costed as the forward read of an N -> K matrix at P positions on the same array geometry
  (rows and columns swapped; one copy of each layer, read in parallel by the layer's copies); a
  feedback product is an ``n_classes -> features`` layer. Errors are signed and pass the DAC at
  ``decomposition.input_bits``;
* **weight gradients**: P x K x N multiply-accumulates per sample and layer on the digital
  units, one digital action each;
* **accumulator memory**: every sample adds its gradient into a ``training.accumulator_bits``
  word per weight (read and write); ``exact`` (the master copy) and ``mixed_precision`` (the
  update accumulators) read and write every word once more per step. Its area, at the spec's
  buffer area per bit, is extra area (``pulsed`` with one sample per step needs none);
* **weight writes**: device writes x pulses, measured by the oracle (``writes_per_step``,
  ``pulses_per_step`` per layer, e.g. from :func:`pimsim.training.train_onchip`); without them
  every weight is assumed rewritten every step (the ``exact`` count: an upper bound). An
  ``exact`` write reprograms each of the weight's cells with ``cell.write_pulses`` pulses; a
  pulse of the ``pulsed``/``mixed_precision`` device models is one ``cell.write_energy_pj``.
  Writes go one array row at a time (a row's cells in parallel, a layer's arrays in parallel),
  ``cell.write_latency_ns`` per pulse.

**Latency** comes from the event kernel (:mod:`pimsim.dataflow`) on a task graph: per sample,
each layer's forward (its event-model time, on its arrays or the shared digital units), the
loss, then the errors: ``backprop`` runs the transposed reads layer after layer (each waits
for the error of the layer above, sent over the chip network and routed back through the
activation/pooling on the digital units) on the forward layer's own arrays; ``dfa`` broadcasts
the output error once and every feedback product runs at once on its own arrays. Each layer's
gradient runs on its own digital units as soon as its error is known; its write occupies its
arrays once all samples of the step are in. Nothing in the graph says how long a step takes:
the simulation does.

**Not modelled:** the element-wise backward through activations and pooling costs its forward
time but no energy; softmax and loss are one digital action per class; weight loading from
off chip; write-verify beyond ``write_pulses``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pimsim._files import read_json_object
from pimsim.cost._evaluate import _class_estimates, _units, chip_timing, evaluate
from pimsim.cost._hierarchy import estimate
from pimsim.cost._registry import BUFFER_ACCESS_BITS
from pimsim.dataflow import DEFAULT_GRANULARITY
from pimsim.dataflow._tasks import TaskGraph
from pimsim.errors import PimsimError, WorkloadError

RULES = ("backprop", "dfa")
UPDATES = ("exact", "pulsed", "mixed_precision")
TRAINABLE = ("conv", "linear")


@dataclass(frozen=True)
class TrainingReport:
    """Result of :func:`training_cost` (energies pJ, times ns, areas mm2)."""

    rule: str
    update: str
    batch_size: int
    steps_per_epoch: int
    energy_per_step_pj: float
    energy_breakdown_pj: dict
    latency_per_step_ns: float
    backward_latency_ns: float
    """From the last sample's loss to the last weight write: the error delivery and updates."""
    error_latency_ns: float
    """From the last sample's loss until every layer knows its error (the backward products,
    transfers and digital routing, without gradients and writes)."""
    forward_latency_ns: float
    extra_area_mm2: float
    area_breakdown_mm2: dict
    writes_per_step: float
    pulses_per_step: float
    writes_measured: bool
    layers: list = field(default_factory=list)
    notes: tuple = ()

    @property
    def energy_per_epoch_pj(self) -> float:
        return self.energy_per_step_pj * self.steps_per_epoch

    @property
    def latency_per_epoch_ns(self) -> float:
        return self.latency_per_step_ns * self.steps_per_epoch

    def to_dict(self) -> dict:
        """The ``training`` section of ``pimsim evaluate --training``."""
        return {
            "rule": self.rule,
            "update": self.update,
            "batch_size": self.batch_size,
            "steps_per_epoch": self.steps_per_epoch,
            "energy_per_step_pj": self.energy_per_step_pj,
            "energy_per_epoch_pj": self.energy_per_epoch_pj,
            "latency_per_step_ns": self.latency_per_step_ns,
            "latency_per_epoch_ns": self.latency_per_epoch_ns,
            "forward_latency_ns": self.forward_latency_ns,
            "backward_latency_ns": self.backward_latency_ns,
            "error_latency_ns": self.error_latency_ns,
            "extra_area_mm2": self.extra_area_mm2,
            "area_breakdown_mm2": self.area_breakdown_mm2,
            "energy_breakdown_pj": self.energy_breakdown_pj,
            "writes_per_step": self.writes_per_step,
            "writes_per_epoch": self.writes_per_step * self.steps_per_epoch,
            "pulses_per_step": self.pulses_per_step,
            "writes_measured": self.writes_measured,
            "layers": self.layers,
            "notes": list(self.notes),
        }


def _count_problem(counts, names: list[str], workload: str, *, complete: bool):
    """What is wrong with per-layer device counts ``counts`` for the trainable layers ``names``
    of ``workload``: ``(field, message)`` (the field relative to the counts, "" for the whole),
    or None. Counts are finite non-negative numbers for conv or linear layers of the workload;
    with ``complete``, one for each."""
    if not isinstance(counts, dict):
        return "", f"a mapping from layer to count expected, not {type(counts).__name__}"
    for name, value in counts.items():
        if name not in names:
            return "", (f"layer {name!r} is not a conv or linear layer of {workload} "
                        f"({', '.join(names)})")
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value < 0:
            return f".{name}", f"{value!r} is not a finite non-negative count"
    if complete:
        missing = [name for name in names if name not in counts]
        if missing:
            return "", f"no count for layer {missing[0]!r} of {workload}"
    return None


def _trainable_names(workload) -> list[str]:
    return [la.name for la in workload.layers if la.kind in TRAINABLE]


class SummaryError(PimsimError, ValueError):
    """A ``--writes-from`` training summary cannot be read or does not fit the evaluation: the
    message names the file and the field."""


#: A per-layer count of a summary: a finite non-negative number.
_Count = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class WritesSummary(BaseModel):
    """The fields of a ``pimsim train ARCH WORKLOAD --rule R --summary F`` file that
    :func:`read_writes_summary` reads; any others are kept as they are."""

    model_config = ConfigDict(strict=True, extra="allow")

    workload: str | None = None
    """The network the writes were measured on."""
    rule: str | None = None
    """The learning rule it was trained with."""
    update: Literal["exact", "pulsed", "mixed_precision"] | None = None
    """The weight-update scheme."""
    batch_size: int | None = Field(None, ge=1)
    """Samples per training step."""
    samples_per_epoch: int | None = Field(None, ge=1)
    """Training samples per epoch."""
    writes_per_step: dict[str, _Count]
    """Device writes per training step, per conv or linear layer."""
    pulses_per_step: dict[str, _Count] | None = None
    """Programming pulses per training step, per conv or linear layer."""


#: Largest summary read (a real one is a few kB).
MAX_SUMMARY_BYTES = 16 * 2**20

_WRITE_ONE = "write one with pimsim train ARCH WORKLOAD --rule R --summary F"

_BOUNDS = {"greater_than_equal": ">=", "less_than_equal": "<=", "greater_than": ">",
           "less_than": "<"}


def _validation_problem(exc: ValidationError) -> str:
    """pydantic's first problem as ``field: what is wrong, got VALUE`` (dotted field path)."""
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"])
    value = err.get("input")
    shown = "a mapping" if isinstance(value, dict) else "a list" if isinstance(value, list) else (
        repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    )
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "missing":
        message = "missing (not a 'pimsim train --rule R --summary F' file?)"
    elif kind in _BOUNDS:
        message = f"must be {_BOUNDS[kind]} {next(iter(ctx.values()), '')}, got {shown}"
    else:
        text = str(err["msg"])
        message = f"{text[:1].lower()}{text[1:]}, got {shown}"
    return f"{loc}: {message}" if loc else message


def _read_summary(path) -> dict:
    """The JSON object in ``path``: a regular file of at most :data:`MAX_SUMMARY_BYTES`."""
    return read_json_object(path, MAX_SUMMARY_BYTES, SummaryError,
                            "a 'pimsim train --summary' file", _WRITE_ONE)


def read_writes_summary(path, workload, *, rule: str, update: str | None = None) -> dict:
    """The measured device writes of ``path``, a ``pimsim train ARCH WORKLOAD --rule R
    --summary F`` file, checked against the evaluation of ``workload`` with ``rule`` (and
    ``update`` when given): a regular file of at most :data:`MAX_SUMMARY_BYTES` holding a
    :class:`WritesSummary`; its network, rule and update scheme (where it records them) must be
    these, its per-step ``writes_per_step`` (and ``pulses_per_step``) finite non-negative counts
    for every conv or linear layer of ``workload`` and no other, ``batch_size`` and
    ``samples_per_epoch`` positive whole numbers. Returns the keyword arguments of
    :func:`training_cost` it gives: ``writes_per_step``, ``pulses_per_step``, ``update``,
    ``batch_size``, ``train_samples`` (None where not recorded). Raises a
    :class:`SummaryError` of one line that names the file and the field."""

    def fail(field_name: str, problem: str):
        raise SummaryError(f"{path}: {field_name}: {problem}")

    raw = _read_summary(path)
    try:
        summary = WritesSummary.model_validate(raw)
    except ValidationError as exc:
        raise SummaryError(f"{path}: {_validation_problem(exc)}") from None
    if summary.workload is not None and summary.workload != workload.name:
        fail("workload", f"the writes were measured on {summary.workload!r}, not on the "
                         f"evaluated {workload.name!r}")
    if summary.rule is not None and summary.rule != rule:
        fail("rule", f"the writes were measured with {summary.rule!r} training, not the "
                     f"evaluated {rule!r}")
    if summary.update is not None and update is not None and summary.update != update:
        fail("update", f"the writes were measured with {summary.update!r} updates, not the "
                       f"evaluated {update!r}")
    names = _trainable_names(workload)
    for key in ("writes_per_step", "pulses_per_step"):
        counts = getattr(summary, key)
        if counts is None:
            continue
        problem = _count_problem(counts, names, workload.name, complete=True)
        if problem is not None:
            fail(key + problem[0], problem[1])
    return {
        "writes_per_step": summary.writes_per_step,
        "pulses_per_step": summary.pulses_per_step,
        "update": summary.update,
        "batch_size": summary.batch_size,
        "train_samples": summary.samples_per_epoch,
    }


def _aux_arch(arch):
    """The spec for costing auxiliary products: a chip sized to them, one copy of each."""
    from pimsim.spec import with_overrides

    return with_overrides(arch, {"chip.tiles": "auto", "mapping.duplication": "none"})


def _product(aux, n_in: int, n_out: int, positions_hw: tuple[int, int] | None, granularity):
    """Energy (pJ, dynamic, per sample), latency (ns) and arrays of an ``n_in -> n_out`` product
    at ``positions_hw`` output positions (None: one), costed on ``aux``."""
    from torch import nn

    from pimsim.workload import from_torch

    if positions_hw is None:
        model = nn.Sequential(OrderedDict(product=nn.Linear(n_in, n_out, bias=False)))
        shape = (1, n_in)
    else:
        model = nn.Sequential(OrderedDict(product=nn.Conv2d(n_in, n_out, 1, bias=False)))
        shape = (1, n_in, *positions_hw)
    wl = from_torch(model, shape)
    rep = evaluate(aux, wl, latency_model="event", granularity=granularity, samples=1)
    row = rep.layers.iloc[0]
    return float(row["energy_pj"]), float(row["latency_ns"]), int(row["arrays"])


def _buffer_area_per_bit_mm2(arch) -> float | None:
    """Area per bit of the spec's largest sized buffer (tile, then chip, then PE level)."""
    best = None
    for level in ("tile", "chip", "pe"):
        for comp in getattr(arch, level).components:
            if comp.component_class == "buffer" and comp.size_bytes:
                bits = comp.size_bytes * 8
                if best is None or bits > best[0]:
                    best = (bits, estimate(arch, level, comp).area_um2 * 1e-6 / bits)
        if best is not None:
            return best[1]
    return None


def training_cost(
    arch,
    workload,
    *,
    rule: str | None = None,
    update: str | None = None,
    batch_size: int | None = None,
    train_samples: int | None = None,
    writes_per_step: dict | None = None,
    pulses_per_step: dict | None = None,
    granularity: str = DEFAULT_GRANULARITY,
) -> TrainingReport:
    """Energy and latency of one training step (and one epoch) of ``workload`` on ``arch``, and
    the area training adds (see the module docstring). Defaults from ``arch.training``;
    ``train_samples`` (default: the spec's, else the bundled MNIST training split, 8,000) sets
    the steps per epoch. ``writes_per_step`` and ``pulses_per_step`` map conv and linear
    layers of ``workload`` to finite non-negative counts (a layer left out writes nothing);
    anything else is a ``ValueError``."""
    cfg = arch.training
    rule = rule or cfg.rule
    update = update or cfg.update
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, not {rule!r}")
    if update not in UPDATES:
        raise ValueError(f"update must be one of {UPDATES}, not {update!r}")
    batch = batch_size or cfg.batch_size
    samples = train_samples or cfg.train_samples or 8000
    steps = math.ceil(samples / batch)
    for key, counts in (("writes_per_step", writes_per_step), ("pulses_per_step", pulses_per_step)):
        if counts is not None:
            problem = _count_problem(counts, _trainable_names(workload), workload.name,
                                     complete=False)
            if problem is not None:
                raise ValueError(f"{key}{problem[0]}: {problem[1]}")
    fwd = evaluate(arch, workload, latency_model="event", granularity=granularity, samples=1)
    mapping = fwd.mapping
    per_class, widths, _ = _class_estimates(arch)
    timing = chip_timing(arch, mapping)
    units = _units(arch, mapping)[0]
    notes: list[str] = []
    aux = _aux_arch(arch)
    layers = list(workload.layers)
    by_name = {layer.name: layer for layer in layers}
    position = {layer.name: i for i, layer in enumerate(layers)}
    trainable = [la.name for la in layers if la.kind in TRAINABLE and la.name in mapping.layers]
    if not trainable:
        raise WorkloadError(f"{workload.name}: no conv or linear layer to train")
    for name in trainable:
        if mapping.layers[name].matrices != 1:
            raise WorkloadError(f"{workload.name}: {name}: grouped convolutions are not "
                                "supported by the training cost model")
    n_classes = int(math.prod(by_name[trainable[-1]].output_shape))
    error_bits = arch.decomposition.input_bits
    mac_pj = per_class["digital"].energy_pj
    buf_pj_bit = per_class["buffer"].energy_pj / widths.get("buffer", BUFFER_ACCESS_BITS)
    acc_bits = cfg.accumulator_bits
    write_pj = arch.cell.write_energy_pj
    write_ns = arch.cell.write_latency_ns
    if write_pj is None or write_ns is None:
        notes.append("cell.write_energy_pj / write_latency_ns not given: writes are counted, "
                     "not costed")
    measured = writes_per_step is not None
    if not measured:
        notes.append("device writes not measured (no oracle run): every weight is assumed "
                     "rewritten every step, an upper bound for pulsed and mixed precision")
    digital_units = units.get("digital") or units.get("shift_add") or 1
    per_tile_units = digital_units / max(1, mapping.chip_tiles)
    clock_ns = timing.period_ns
    buffers = [p for p in timing.ports if p.kind == "buffer" and p.level == "tile"]
    buffer_bw = buffers[0].bits_per_ns if buffers else None
    nets = [p for p in timing.ports if p.kind == "interconnect" and p.role == "network"]
    network = nets[0] if nets else None
    encoding = arch.decomposition.signed_encoding
    fwd_latency = {row["name"]: float(row["latency_ns"])
                   for row in fwd.layers.to_dict(orient="records")}

    # ------------------------------------------------------------------ per trainable layer
    info: dict[str, dict] = {}
    energy = {k: 0.0 for k in ("forward", "backward", "feedback", "weight_gradient",
                               "accumulator", "write", "leakage")}
    fb_arrays = 0
    weights_total = 0
    for idx, name in enumerate(trainable):
        m = mapping.layers[name]
        layer = by_name[name]
        k, n, p = m.k_rows, m.n_cols, m.output_positions
        weights = k * n
        weights_total += weights
        a, b = mapping.tile_span(name)
        tiles = b - a + 1
        rec = {"name": name, "weights": weights}
        hw = tuple(layer.output_shape[1:]) if layer.kind == "conv" else None
        if rule == "backprop" and idx > 0:
            e, t, _ = _product(aux, n, k, hw, granularity)
            rec["backward_pj"] = e
            rec["backward_ns"] = t / m.copies
        if rule == "dfa" and idx < len(trainable) - 1:
            nxt = by_name[trainable[idx + 1]]
            features = int(math.prod(nxt.input_shapes[0]))
            e, t, arrays = _product(aux, n_classes, features, None, granularity)
            rec["feedback_pj"], rec["feedback_ns"], rec["feedback_arrays"] = e, t, arrays
            fb_arrays += arrays
        macs = p * k * n
        units_here = max(1.0, per_tile_units * tiles)
        rec["gradient_pj"] = macs * mac_pj
        rec["gradient_ns"] = macs * clock_ns / units_here
        sample_bits = 2 * weights * acc_bits if batch > 1 else 0  # one sample: no batch sum
        step_bits = sample_bits if update in ("exact", "mixed_precision") else 0
        rec["accumulator_sample_pj"] = sample_bits * buf_pj_bit
        rec["accumulator_step_pj"] = step_bits * buf_pj_bit
        bw = buffer_bw * tiles if buffer_bw else None
        rec["accumulator_sample_ns"] = sample_bits / bw if bw else 0.0
        rec["accumulator_step_ns"] = step_bits / bw if bw else 0.0
        # writes and pulses of this layer per step
        cells = m.weight_slices * (2 if encoding in ("differential_analog",
                                                       "differential_digital") else 1)
        if measured:
            w = float(writes_per_step.get(name, 0.0))
            pulses = float((pulses_per_step or writes_per_step).get(name, w))
        else:
            w = float(weights)
            pulses = w
        if update == "exact":
            cell_pulses = w * cells * arch.cell.write_pulses
            per_write = arch.cell.write_pulses
        else:
            cell_pulses = pulses
            per_write = math.ceil(pulses / w) if w else 0
        rows = max(m.row_tiles)
        arrays = m.arrays  # one copy is trained (copies are rewritten alike)
        row_cycles = min(rows, math.ceil(w / arrays)) if w else 0
        rec["writes"] = w
        rec["pulses"] = cell_pulses
        rec["write_pj"] = cell_pulses * (write_pj or 0.0) * m.copies
        rec["write_ns"] = row_cycles * per_write * (write_ns or 0.0)
        info[name] = rec

    # ------------------------------------------------------------------ the task graph
    g = TaskGraph()
    consumers: dict[str, list[str]] = {la.name: [] for la in layers}
    for la in layers:
        for src in la.inputs:
            if src in consumers:
                consumers[src].append(la.name)
    last_loss = None
    for s in range(batch):
        for la in layers:
            res = (f"arrays:{la.name}" if la.name in mapping.layers
                   else f"digital:{timing.digital_class.get(la.name, 'digital')}")
            g.add(f"f{s}:{la.name}", fwd_latency[la.name], res,
                  [f"f{s}:{src}" for src in la.inputs if src in by_name])
        last_loss = g.add(f"loss{s}", n_classes * clock_ns, "digital:loss",
                          [f"f{s}:{layers[-1].name}"])
        err: dict[str, str] = {trainable[-1]: last_loss}

        def route_back(start: str, stop: str | None, after: str, s=s) -> str:
            """Digital backward of the layers after ``stop`` up to ``start`` (activations,
            pooling, flatten), newest first; returns the last task."""
            i0 = position[start]
            i1 = position[stop] if stop is not None else -1
            prev = after
            for j in range(i0, i1, -1):
                la = layers[j]
                if la.name in mapping.layers:
                    continue
                prev = g.add(f"r{s}:{la.name}:{after}", fwd_latency[la.name],
                             f"digital:{timing.digital_class.get(la.name, 'digital')}", [prev])
            return prev

        def send(tag: str, bits: float, after: str, s=s) -> str:
            if network is None:
                return after
            hop = (network.hops if network.hops is not None else 1.0) * clock_ns
            return g.add(f"x{s}:{tag}", bits / network.bits_per_ns + hop, "network", [after])

        if rule == "backprop":
            for idx in range(len(trainable) - 1, 0, -1):
                name = trainable[idx]
                t = g.add(f"b{s}:{name}", info[name]["backward_ns"], f"arrays:{name}",
                          [err[name]])
                k_elems = math.prod(by_name[name].input_shapes[0])
                t = send(name, k_elems * error_bits, t)
                prev_name = trainable[idx - 1]
                producer = by_name[name].inputs[0]
                err[prev_name] = route_back(producer, prev_name, t)
        else:
            bcast = send("error", n_classes * error_bits, last_loss)
            for idx, name in enumerate(trainable[:-1]):
                t = g.add(f"fb{s}:{name}", info[name]["feedback_ns"], f"feedback:{name}",
                          [bcast])
                nxt = trainable[idx + 1]
                err[name] = route_back(by_name[nxt].inputs[0], name, t)
        last_errors = dict(err)
        for name in trainable:
            g.add(f"g{s}:{name}", info[name]["gradient_ns"] + info[name]["accumulator_sample_ns"],
                  f"update:{name}", [err[name], f"f{s}:{name}"])
    for name in trainable:
        t = g.add(f"acc:{name}", info[name]["accumulator_step_ns"], f"update:{name}",
                  [f"g{s}:{name}" for s in range(batch)])
        g.add(f"w:{name}", info[name]["write_ns"], f"arrays:{name}", [t])
    times = g.simulate()
    step_ns = times.makespan_ns
    loss_done = times.finish_ns[last_loss]
    error_done = max(times.finish_ns[t] for t in last_errors.values())

    # ------------------------------------------------------------------ energy and area
    fwd_dynamic = fwd.totals["energy_pj"] - fwd.energy_breakdown_pj.get("leakage", 0.0)
    energy["forward"] = batch * fwd_dynamic
    for rec in info.values():
        energy["backward"] += batch * rec.get("backward_pj", 0.0)
        energy["feedback"] += batch * rec.get("feedback_pj", 0.0)
        energy["weight_gradient"] += batch * rec["gradient_pj"]
        energy["accumulator"] += batch * rec["accumulator_sample_pj"] + rec["accumulator_step_pj"]
        energy["write"] += rec["write_pj"]
    fwd_lat = fwd.totals["latency_ns"]
    leak_mw = fwd.energy_breakdown_pj.get("leakage", 0.0) / fwd_lat if fwd_lat else 0.0
    energy["leakage"] = leak_mw * step_ns
    area_per_array = fwd.totals["area_mm2"] / (
        mapping.chip_tiles * arch.tile.pes * arch.pe.arrays
    )
    area = {"feedback_arrays": fb_arrays * area_per_array, "accumulators": 0.0}
    if not (update == "pulsed" and batch == 1):
        per_bit = _buffer_area_per_bit_mm2(arch)
        if per_bit is None:
            notes.append("no sized buffer in the spec: accumulator memory area not costed")
        else:
            area["accumulators"] = weights_total * acc_bits * per_bit
    return TrainingReport(
        rule=rule,
        update=update,
        batch_size=batch,
        steps_per_epoch=steps,
        energy_per_step_pj=sum(energy.values()),
        energy_breakdown_pj=energy,
        latency_per_step_ns=step_ns,
        backward_latency_ns=step_ns - loss_done,
        error_latency_ns=error_done - loss_done,
        forward_latency_ns=loss_done,
        extra_area_mm2=sum(area.values()),
        area_breakdown_mm2=area,
        writes_per_step=sum(r["writes"] for r in info.values()),
        pulses_per_step=sum(r["pulses"] for r in info.values()),
        writes_measured=measured,
        layers=list(info.values()),
        notes=tuple(notes),
    )
