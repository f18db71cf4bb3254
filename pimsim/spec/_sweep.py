"""Sweep files (``kind: sweep``): which designs to evaluate, on which networks, for what.

A sweep names one or more base arch specs and workloads, the spec fields to vary (any field that
``--set`` accepts, as a dotted path), fixed overrides, objectives, constraints, a search strategy
and, when accuracy is wanted, the oracle's budget. Loading validates all of it against the base
specs, so a typo in a field path, an empty range or an unknown metric is an error with
``file:line:col`` and the field path before anything runs. Values that only some designs reject
(a preset that contradicts an explicit knob, an array too small for the rows per read) are not
load errors: those designs become infeasible points of the sweep.

.. code-block:: yaml

    kind: sweep
    name: adc_vs_scheme
    arch: ../neurosim_rram_22nm.yaml        # or a list; paths relative to this file
    workload: lenet5_mnist                  # zoo name or workload file; or a list
    set: {cell.bits: null}                  # fixed overrides (null: back to the preset's value)
    parameters:
      decomposition.scheme: [native, differential, bit_serial]
      adc.bits: {range: [3, 8]}                           # integers, step 1
      technology.clock_hz: {range: [1.0e8, 1.0e9], count: 4, scale: log}
    linked:                                 # zipped, not multiplied
      - {array.rows: [64, 128], array.rows_per_adc_read: [64, 128]}
    objectives: [energy_pj:min, accuracy:max]
    constraints: ["area_mm2 <= 50"]
    strategy: grid                          # or {kind: random|nsga2|tpe, n: 100, seed: 0}
    accuracy: {checkpoint: ../../results/checkpoints/lenet5_mnist_qat.pt, images: 500}

``accuracy.checkpoints`` (instead of ``checkpoint``) names several trained checkpoints of the same
network by label, ``{qat: ..._qat.pt, float: ..._float.pt}``: the label is then a parameter of the
sweep (column ``checkpoint``, the first dimension), and every design is evaluated with each.

Instead of ``accuracy:``, a ``training:`` section trains every design on chip (the learning rule,
update scheme, threshold, learning rate, epochs and batch of its ``training`` spec section, which
may be parameters: ``training.rule: [backprop, dfa]``) and records the trained chip's accuracy and
the training cost (``training_energy_pj`` per epoch, ``training_latency_ns`` per step,
``training_writes`` per epoch, ``training_area_mm2``) from the writes that training measured.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, Field, model_validator

from pimsim.dataflow._model import DEFAULT_GRANULARITY
from pimsim.errors import Location, PimsimError, SpecError, SpecErrors, did_you_mean
from pimsim.spec._arch import ArchSpec
from pimsim.spec._fields import PositiveInt, SpecModel
from pimsim.spec._load import field_names, validate_document
from pimsim.spec._metrics import (
    METRICS,
    Constraint,
    Objective,
    ObjectiveError,
    check_satisfiable,
    parse_constraint,
    parse_objectives,
)
from pimsim.spec._yaml import Document, format_path, parse_override_path, read_document

STRATEGIES = ("grid", "random", "nsga2", "tpe")
CHECKPOINT_PARAMETER = "checkpoint"
"""The parameter (and store column) that names the checkpoint of ``accuracy.checkpoints``."""
MAX_LABEL_LENGTH = 64
#: Values one grid parameter may take (a range is counted before any value is made).
MAX_DIMENSION_VALUES = 100_000
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
MAX_NAME_LENGTH = 128
Scalar = str | bool | int | float | None


class RangeSpec(SpecModel):
    """A parameter's values as a mapping: an explicit ``values`` list, or a ``range``."""

    values: list[Any] | None = None
    """The values, in order (same as giving the list directly)."""
    range: list[int | float] | None = Field(default=None, min_length=2, max_length=2)
    """``[low, high]``, both included. Integers (both bounds integers) step by 1 unless told."""
    step: int | float | None = Field(default=None, gt=0)
    """Spacing of a linear range (low, low + step, ... <= high)."""
    count: PositiveInt | None = None
    """Number of values from low to high, spaced by ``scale``."""
    scale: Literal["linear", "log"] = "linear"
    """Spacing of ``count`` values (``log``: a geometric series; both bounds > 0)."""
    type: Literal["int", "float"] | None = None
    """Value type; default ``int`` when both bounds are integers (values rounded, duplicates
    dropped), else ``float``. A float range without ``step`` or ``count`` is continuous: only the
    ``random``, ``nsga2`` and ``tpe`` strategies can sample it."""

    @model_validator(mode="after")
    def _one_form(self):
        if (self.values is None) == (self.range is None):
            raise ValueError("give either 'values' or 'range'")
        if self.values is not None and (self.step or self.count):
            raise ValueError("'step' and 'count' go with 'range', not 'values'")
        if self.step is not None and self.count is not None:
            raise ValueError("give 'step' or 'count', not both")
        return self


ParameterValues = Annotated[
    RangeSpec, BeforeValidator(lambda v: {"values": v} if isinstance(v, list) else v)
]
"""A parameter's values: a list, or a :class:`RangeSpec` mapping."""


class StrategySpec(SpecModel):
    """How design points are chosen."""

    kind: Literal[STRATEGIES] = "grid"
    """``grid`` (every combination), ``random`` (``n`` distinct points drawn with ``seed``),
    ``nsga2`` or ``tpe`` (multi-objective search with optuna, ``n`` trials in batches)."""
    n: PositiveInt | None = None
    """Points (random) or trials (nsga2, tpe)."""
    seed: int = 0
    """Seed of the random draw or of the search's sampler."""
    population: PositiveInt | None = None
    """Trials asked at once (nsga2: its population size; default 20 for nsga2, 8 for tpe)."""


class LatencySpec(SpecModel):
    """How latency and throughput are computed for every design of the sweep."""

    model: Literal["event", "analytical"] = "event"
    """``event``: the dataflow simulation (``pimsim.dataflow``); ``analytical``: per-layer sums."""
    granularity: Literal["layer", "row"] = DEFAULT_GRANULARITY
    """Chunks of the event model: ``row`` (one per output row; the default, as for ``pimsim
    evaluate``) or ``layer`` (one per layer)."""
    samples: PositiveInt = 2
    """Inputs streamed back to back (steady-state throughput needs at least 2)."""


class AccuracySpec(SpecModel):
    """The accuracy oracle's budget: which trained network, how many test images and chips."""

    checkpoint: str | dict[str, str] | None = None
    """A checkpoint written by ``pimsim train`` (relative to this file), or one per workload."""
    checkpoints: dict[str, str | dict[str, str]] | None = None
    """Instead of ``checkpoint``: several checkpoints by label (each a path, or one per
    workload), e.g. ``{qat: a_qat.pt, float: a_float.pt}``. The label is a parameter of the sweep
    (column ``checkpoint``): every design is evaluated with each checkpoint."""
    images: PositiveInt | Literal["all"] = 500
    """Test images per design (the first N of the test split)."""
    chips: PositiveInt = 1
    """Chips sampled per design (Monte-Carlo over device and ADC non-idealities)."""
    seed: int = 0
    """Seed of the chip draws (``numpy.random.SeedSequence(seed).spawn(chips)``)."""
    data: str | None = None
    """Dataset folder (default: the shipped MNIST copy), relative to this file."""
    batch: PositiveInt = 250
    """Images per forward pass."""
    calibration: PositiveInt = 256
    """Training images (the first N of the training split) that set each chip's ADC ranges
    (``adc.range`` calibrated or learned), a float checkpoint's input scales and which layers
    take signed inputs."""
    device: str = Field(default="cpu", pattern=r"^(cpu|auto|cuda(:[0-9]+)?)$")
    """Where the oracle computes: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (cuda when a GPU is
    visible, else cpu); ``pimsim sweep --device`` overrides it. Not part of the results' keys:
    an ideal chip gives the same accuracy on either (stochastic chips: draws of the same
    distribution)."""


class TrainingSweepSpec(SpecModel):
    """On-chip training of every design (``pimsim.training.train_onchip``) on the bundled MNIST
    split; the rule, update scheme, learning rate, epochs and batch come from each design's
    ``training`` spec section."""

    train_samples: PositiveInt | None = None
    """Training images per epoch (default: the design's ``training.train_samples``, else all
    8,000 of the split)."""
    images: PositiveInt | Literal["all"] = "all"
    """Test images (the first N of the test split)."""
    seed: int = 0
    """Seed of the initialisation, data order, feedback matrices and pulses."""
    data: str | None = None
    """Dataset folder (default: the shipped MNIST copy), relative to this file."""


class SweepFile(SpecModel):
    """A design sweep (a ``kind: sweep`` file)."""

    kind: Literal["sweep"] = "sweep"
    """File kind."""
    name: str = Field(min_length=1)
    """Name of the sweep (the default results store is ``results/<name>.sqlite``): letters,
    digits, ``_``, ``-`` and ``.`` (not first), no path separators and no ``..``."""
    description: str = ""
    """Free text."""
    arch: str | list[str]
    """Base arch spec file(s), relative to this file."""
    workload: str | list[str]
    """Zoo name(s) or workload file(s) (relative to this file)."""
    set: dict[str, Any] = {}
    """Overrides applied to every design (dotted field path: value; null restores a preset's
    default)."""
    parameters: dict[str, ParameterValues] = {}
    """Fields to vary (dotted path: list of values or a range); the sweep takes their product."""
    linked: list[dict[str, list[Any]]] = []
    """Groups of fields varied together (zipped): lists of one group have one length."""
    objectives: list[str | dict[str, str]] = []
    """``metric:min`` / ``metric:max`` (``pimsim schema sweep`` lists the metrics)."""
    constraints: list[str] = []
    """``metric <= number`` (also ``<``, ``>=``, ``>``); designs outside are not on the front."""
    strategy: Literal[STRATEGIES] | StrategySpec = "grid"
    """``grid``, or a mapping with ``kind``, ``n``, ``seed``, ``population``."""
    accuracy: AccuracySpec | None = None
    training: TrainingSweepSpec | None = None
    """Train every design on chip; its accuracy and training cost become metrics."""
    latency: LatencySpec = LatencySpec()
    """Latency model of the cost evaluation (default: event model at row granularity, as
    ``pimsim evaluate``)."""
    """The oracle's budget; required when an objective or constraint names an accuracy metric."""


@dataclass(frozen=True)
class Dimension:
    """One axis of the design space: one field, or several linked fields varied together.

    ``values`` holds one tuple per choice (a value per path); a continuous axis has
    ``values = None`` and samples ``[low, high]`` (geometrically when ``log``). The path
    ``checkpoint`` (:data:`CHECKPOINT_PARAMETER`) is no spec field: its values are the labels of
    ``accuracy.checkpoints``."""

    paths: tuple[str, ...]
    values: tuple[tuple, ...] | None
    low: float | None = None
    high: float | None = None
    log: bool = False

    @property
    def name(self) -> str:
        """``adc.bits``, or ``array.rows+array.rows_per_adc_read`` for a linked group."""
        return "+".join(self.paths)

    @property
    def size(self) -> float:
        """Number of choices (``inf`` when continuous)."""
        return math.inf if self.values is None else len(self.values)


@dataclass(frozen=True)
class CheckpointRef:
    """A checkpoint for one workload: its path and the sha256 of its weights (from the sidecar)."""

    path: Path
    sha256: str
    workload: str


@dataclass(frozen=True)
class AccuracyBudget:
    """The oracle's budget, resolved: checkpoints by workload name, images, chips, seed.

    With ``accuracy.checkpoints`` the checkpoints are in ``alternatives`` (``{label: {workload
    name: CheckpointRef}}``, in file order) and ``checkpoints`` is empty."""

    checkpoints: dict
    images: int | None
    chips: int
    seed: int
    data: Path | None
    batch: int
    calibration: int = 256
    alternatives: dict = field(default_factory=dict)
    device: str = "cpu"
    """Where the oracle computes (``accuracy.device``, or ``pimsim sweep --device``); not in
    :meth:`key`."""

    @property
    def labels(self) -> tuple[str, ...]:
        """The labels of ``accuracy.checkpoints`` (``()`` with a single checkpoint)."""
        return tuple(self.alternatives)

    def ref(self, workload: str, label: str | None = None) -> CheckpointRef:
        """The checkpoint of ``workload`` (of the one labelled ``label``, with several)."""
        if self.alternatives:
            if label is None:
                raise KeyError(f"a checkpoint label is needed (one of {', '.join(self.labels)})")
            return self.alternatives[label][workload]
        return self.checkpoints[workload]

    def key(self) -> dict:
        """What of the budget can change an accuracy (for cache keys and design hashes)."""
        return {
            "images": self.images,
            "chips": self.chips,
            "seed": self.seed,
            "data": str(self.data) if self.data else None,
            "calibration": self.calibration,
        }


@dataclass(frozen=True)
class TrainingBudget:
    """The on-chip training budget of a sweep, resolved."""

    train_samples: int | None
    images: int | None
    seed: int
    data: Path | None
    device: str = "cpu"
    """Where training runs: on-chip training runs on the CPU only (``cpu`` or ``auto``); not in
    :meth:`key`."""

    def key(self) -> dict:
        """What of the budget can change a training result (for cache keys)."""
        return {
            "training": True,
            "train_samples": self.train_samples,
            "images": self.images,
            "seed": self.seed,
            "data": str(self.data) if self.data else None,
        }


@dataclass(frozen=True)
class SweepSpec:
    """A loaded, validated sweep (see the module docstring); made by :func:`load_sweep`."""

    name: str
    source: str
    archs: tuple[ArchSpec, ...]
    arch_labels: tuple[str, ...]
    fixed: dict
    """The ``set:`` overrides, applied to every design before its parameters."""
    workloads: tuple  # of pimsim.workload.Workload
    dimensions: tuple[Dimension, ...]
    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...]
    strategy: StrategySpec
    accuracy: AccuracyBudget | TrainingBudget | None
    description: str = ""
    latency: dict = field(default_factory=lambda: LatencySpec().model_dump())
    """``model``, ``granularity`` and ``samples`` of the latency model (see LatencySpec)."""
    digest: str = field(default="")
    """sha256 of the sweep's resolved content (bases, workloads, parameters)."""

    @property
    def parameters(self) -> tuple[str, ...]:
        """Every varied field path, in file order (linked groups expanded)."""
        return tuple(p for d in self.dimensions for p in d.paths)

    @property
    def grid_size(self) -> float:
        """Designs in the full product (``inf`` with a continuous parameter)."""
        n = len(self.archs) * len(self.workloads)
        for d in self.dimensions:
            n *= d.size
        return n

    @property
    def needs_accuracy(self) -> bool:
        """Whether the oracle runs (the sweep gives an ``accuracy`` budget)."""
        return self.accuracy is not None


def load_sweep(path: str | os.PathLike) -> SweepSpec:
    """Load and validate a ``kind: sweep`` file; raises :class:`~pimsim.errors.SpecError` (with
    file:line:col and field path) for anything wrong in it or in the files it names."""
    path = Path(path)
    doc = read_document(path, ("sweep",))
    raw = validate_document(doc, SweepFile)
    return _resolve(raw, doc, path)


def sweep_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a sweep (it names the default store file
    ``results/<name>.sqlite``, so it must be a plain file name), or None when it can."""
    if (
        len(name) <= MAX_NAME_LENGTH
        and _PLAIN_NAME.fullmatch(name)
        and ".." not in name
    ):
        return None
    return (
        f"sweep name {name!r} is not a plain name: use letters, digits, '_', '-' and '.' (not "
        f"first), at most {MAX_NAME_LENGTH} characters, no path separators and no '..' (the "
        "default results store is results/<name>.sqlite; give --store to put it elsewhere)"
    )


def _err(doc: Document, loc: tuple, message: str, key: bool = False) -> SpecError:
    return SpecError(message, doc.locate(loc, key=key), format_path(loc))


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _resolve(raw: SweepFile, doc: Document, path: Path) -> SweepSpec:
    here = path.parent
    errors: list[SpecError] = []
    problem = sweep_name_problem(raw.name)
    if problem:
        errors.append(_err(doc, ("name",), problem))
    archs, labels = _load_archs(raw, doc, here)
    workloads = _load_workloads(raw, doc, here)
    seen: dict[str, tuple] = {}
    for key in raw.set:
        _claim(key, ("set", key), seen, doc, errors)
    dims: list[Dimension] = []
    for key, spec in raw.parameters.items():
        loc = ("parameters", key)
        _claim(key, loc, seen, doc, errors)
        try:
            dims.append(_dimension(key, spec, doc, loc))
        except SpecError as exc:
            errors.append(exc)
    for i, group in enumerate(raw.linked):
        loc = ("linked", i)
        if not group:
            errors.append(_err(doc, loc, "empty linked group: give two or more fields"))
            continue
        lengths = {k: len(v) for k, v in group.items()}
        for key, values in group.items():
            _claim(key, loc + (key,), seen, doc, errors)
            if not values:
                errors.append(_err(doc, loc + (key,), "empty list of values"))
        if len(set(lengths.values())) > 1:
            errors.append(
                _err(
                    doc,
                    loc,
                    "linked lists must have one length (they are zipped), got "
                    + ", ".join(f"{k}: {n}" for k, n in lengths.items()),
                )
            )
        elif all(lengths.values()):
            dims.append(Dimension(tuple(group), tuple(zip(*group.values(), strict=True))))
    for key, loc in seen.items():
        if key == CHECKPOINT_PARAMETER:
            errors.append(
                _err(
                    doc,
                    loc,
                    f"{key!r} is not an arch field: to evaluate every design with several "
                    "checkpoints, name them in 'accuracy: {checkpoints: {label: path, ...}}'",
                    key=True,
                )
            )
            continue
        for spec in archs:
            problem = _check_field_path(spec, key)
            if problem:
                errors.append(_err(doc, loc, problem, key=True))
                break
    objectives = _objectives(raw, doc, errors)
    constraints = _constraints(raw, doc, errors)
    strategy = (
        raw.strategy if isinstance(raw.strategy, StrategySpec) else StrategySpec(kind=raw.strategy)
    )
    _check_strategy(strategy, dims, objectives, raw, doc, errors)
    wanted = [(o.metric, "objectives") for o in objectives] + [
        (c.metric, "constraints") for c in constraints
    ]
    wants_acc = [(m, w) for m, w in wanted if METRICS[m].accuracy]
    wants_train = [(m, w) for m, w in wanted if METRICS[m].training]
    if raw.accuracy is not None and raw.training is not None:
        errors.append(_err(doc, ("training",), "give either 'accuracy:' (a trained checkpoint) "
                           "or 'training:' (train every design on chip), not both"))
    if wants_train and raw.training is None:
        errors.append(_err(doc, (wants_train[0][1],), f"{wants_train[0][0]} needs on-chip "
                           "training: add a 'training:' section (e.g. 'training: "
                           "{train_samples: 2000}')"))
    if wants_acc and raw.accuracy is None and raw.training is None:
        errors.append(
            _err(
                doc,
                (wants_acc[0][1],),
                f"{wants_acc[0][0]} needs the accuracy oracle: add an 'accuracy:' section with "
                "a checkpoint (written by pimsim train), or a 'training:' section",
            )
        )
    budget = None
    if raw.accuracy is not None:
        try:
            budget = _budget(raw.accuracy, doc, here, workloads)
        except SpecError as exc:
            errors.append(exc)
        else:
            if budget.alternatives:  # the checkpoint is the first axis: one design per label
                dims.insert(
                    0, Dimension((CHECKPOINT_PARAMETER,), tuple((b,) for b in budget.labels))
                )
    elif raw.training is not None:
        from pimsim.workload import zoo_names

        t = raw.training
        for w in workloads:
            if w.name not in zoo_names():
                errors.append(_err(doc, ("training",), f"workload {w.name!r}: on-chip "
                                   "training sweeps train zoo networks only"))
        data = (here / t.data) if t.data else None
        if data is not None and not data.is_dir():
            errors.append(_err(doc, ("training", "data"), f"dataset folder {t.data} not found"))
        budget = TrainingBudget(t.train_samples, None if t.images == "all" else t.images,
                                t.seed, data)
    if errors:
        raise SpecErrors(sorted(errors, key=_order))
    digest = hashlib.sha256(
        json.dumps(
            {
                "archs": [a.model_dump(mode="json", by_alias=True) for a in archs],
                "set": raw.set,
                "workloads": [workload_digest(w) for w in workloads],
                "dimensions": [[d.paths, d.values, d.low, d.high, d.log] for d in dims],
            },
            sort_keys=True,
            default=str,
        ).encode()
    ).hexdigest()
    return SweepSpec(
        name=raw.name,
        source=str(path),
        archs=tuple(archs),
        arch_labels=labels,
        fixed=dict(raw.set),
        workloads=tuple(workloads),
        dimensions=tuple(dims),
        objectives=objectives,
        constraints=constraints,
        strategy=strategy,
        accuracy=budget,
        description=raw.description,
        digest=digest,
        latency=raw.latency.model_dump(),
    )


def _order(error: SpecError):
    loc = error.location or Location("")
    return (loc.source, loc.line or 0, loc.column or 0)


def workload_digest(workload) -> str:
    """sha256 of a workload's name, input shape and layer table (its identity in a store)."""
    text = repr((workload.name, tuple(workload.input_shape), tuple(workload.layers)))
    return hashlib.sha256(text.encode()).hexdigest()


def _load_archs(raw: SweepFile, doc: Document, here: Path):
    from pimsim.spec._load import load_arch

    archs, labels = [], []
    for i, name in enumerate(_as_list(raw.arch)):
        loc = ("arch", i) if isinstance(raw.arch, list) else ("arch",)
        file = here / name
        if not file.exists():
            raise _err(doc, loc, f"arch file {name} not found (paths are relative to the sweep)")
        spec = load_arch(file)
        label = spec.name if spec.name not in labels else file.stem
        archs.append(spec)
        labels.append(label)
    if not archs:
        raise _err(doc, ("arch",), "no arch spec given")
    return archs, tuple(labels)


def _load_workloads(raw: SweepFile, doc: Document, here: Path) -> list:
    from pimsim.workload import load_workload, zoo_names

    out = []
    names = _as_list(raw.workload)
    for i, name in enumerate(names):
        loc = ("workload", i) if isinstance(raw.workload, list) else ("workload",)
        try:
            from pimsim.workload._zoo import is_model_spec

            if name in zoo_names() or (is_model_spec(name) and not (here / name).exists()):
                out.append(load_workload(name))  # a zoo name or package.module:factory
            else:
                out.append(load_workload(here / name))
        except PimsimError as exc:
            if isinstance(exc, SpecError) and exc.location and exc.location.source != doc.source:
                raise
            raise _err(doc, loc, str(exc)) from None
    if not out:
        raise _err(doc, ("workload",), "no workload given")
    return out


def _claim(key: str, loc: tuple, seen: dict, doc: Document, errors: list) -> None:
    """A field may be set or varied in one place only (paths that contain each other clash)."""
    for other, other_loc in seen.items():
        if key == other or key.startswith(other + ".") or other.startswith(key + "."):
            first = doc.locate(other_loc, key=True)
            what = "given twice" if key == other else f"overlaps {other}"
            errors.append(
                _err(doc, loc, f"parameter {key} {what} (first at line {first.line})", key=True)
            )
            return
    seen[key] = loc


def _dimension(key: str, spec: RangeSpec, doc: Document, loc: tuple) -> Dimension:
    if spec.values is not None:
        if not spec.values:
            raise _err(doc, loc + ("values",), "empty list of values")
        return Dimension((key,), tuple((v,) for v in spec.values))
    low, high = spec.range
    if any(isinstance(v, bool) for v in (low, high)):
        raise _err(doc, loc + ("range",), "range bounds must be numbers")
    if low > high:
        raise _err(doc, loc + ("range",), f"empty range: low {low} > high {high}")
    is_int = spec.type == "int" or (
        spec.type is None and isinstance(low, int) and isinstance(high, int)
    )
    if spec.scale == "log" and low <= 0:
        raise _err(doc, loc + ("range",), "a log range needs bounds > 0")
    if spec.scale == "log" and spec.step is not None:
        raise _err(doc, loc + ("scale",), "a log range takes 'count', not 'step'")
    if spec.count is None and spec.step is None:
        if not is_int:
            return Dimension((key,), None, float(low), float(high), spec.scale == "log")
        step = 1
    else:
        step = spec.step
    n = spec.count if spec.count is not None else math.floor(
        (high - low) / step * (1 + 1e-12)) + 1
    if n > MAX_DIMENSION_VALUES:
        what = f"count: {spec.count}" if spec.count is not None else f"step {step}"
        raise _err(doc, loc + ("range",),
                   f"{what} makes {n:,} values, over the {MAX_DIMENSION_VALUES:,} one parameter "
                   "may take: give a coarser step or a smaller count, or leave a float range "
                   "continuous for strategy random, nsga2 or tpe")
    if spec.count is not None:
        if spec.count == 1:
            grid = np.array([low], dtype=float)
        elif spec.scale == "log":
            grid = np.geomspace(low, high, spec.count)
        else:
            grid = np.linspace(low, high, spec.count)
    else:
        grid = low + step * np.arange(n)
    values = {}  # in order, duplicates dropped (a dict: a list's `in` made this quadratic)
    for v in grid.tolist():
        values.setdefault(int(round(v)) if is_int else float(f"{v:.12g}"), None)
    return Dimension((key,), tuple((v,) for v in values))


def _check_field_path(spec: ArchSpec, key: str) -> str | None:
    """Why ``key`` names no field of ``spec`` (as ``--set`` would take it), or None."""
    try:
        path = parse_override_path(key, key)
    except SpecError as exc:
        return exc.message
    model: Any = ArchSpec
    data: Any = spec._source.data if spec._source is not None else {}
    for i, part in enumerate(path):
        where = format_path(path[:i]) or "the arch spec"
        if isinstance(part, int):
            if not isinstance(data, list) or part >= len(data):
                n = len(data) if isinstance(data, list) else 0
                return f"{format_path(path[:i])} has {n} entries in {spec.name}, no [{part}]"
            data = data[part]
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return f"{where} is a value, not a section: it has no field {part!r}"
        fields = model.model_fields
        name = next((n for n, f in fields.items() if (f.alias or n) == part), None)
        if name is None:
            names = field_names(model)
            hint = did_you_mean(part, names) or f" (fields: {', '.join(names)})"
            return f"unknown field {part!r} in {where}{hint}"
        model = _inner_model(fields[name].annotation)
        data = data.get(part) if isinstance(data, dict) else None
        nxt = path[i + 1] if i + 1 < len(path) else None
        if isinstance(nxt, int) and not _is_list(fields[name].annotation):
            return f"{format_path(path[: i + 1])} is not a list"
    return None


def _inner_model(annotation):
    for arg in (annotation, *typing.get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
        inner = typing.get_args(arg)
        for sub in inner:
            if isinstance(sub, type) and issubclass(sub, BaseModel):
                return sub
            found = _inner_model(sub) if typing.get_args(sub) else None
            if found is not None:
                return found
    return annotation


def _is_list(annotation) -> bool:
    text = str(annotation)
    return "tuple[" in text or "list[" in text or "Components" in text


def _objectives(raw: SweepFile, doc: Document, errors: list) -> tuple[Objective, ...]:
    out: list[Objective] = []
    for i, item in enumerate(raw.objectives):
        try:
            for obj in parse_objectives([item]):
                if any(o.metric == obj.metric for o in out):
                    raise ObjectiveError(f"objective {obj.metric!r} given twice")
                out.append(obj)
        except ObjectiveError as exc:
            errors.append(_err(doc, ("objectives", i), str(exc)))
    return tuple(out)


def _constraints(raw: SweepFile, doc: Document, errors: list) -> tuple[Constraint, ...]:
    out = []
    for i, text in enumerate(raw.constraints):
        try:
            out.append(parse_constraint(text))
        except ObjectiveError as exc:
            errors.append(_err(doc, ("constraints", i), str(exc)))
    try:
        check_satisfiable(out)
    except ObjectiveError as exc:
        errors.append(_err(doc, ("constraints",), str(exc)))
    return tuple(out)


def _check_strategy(strategy, dims, objectives, raw, doc, errors) -> None:
    loc = ("strategy",)
    if strategy.kind == "grid":
        for d in dims:
            if d.values is None:
                errors.append(
                    _err(
                        doc,
                        ("parameters", d.paths[0], "range"),
                        "a grid needs discrete values: give 'step' or 'count' for this float "
                        "range (continuous ranges are for random, nsga2 and tpe)",
                    )
                )
        return
    if strategy.n is None:
        errors.append(_err(doc, loc, f"strategy {strategy.kind} needs 'n' (points to evaluate)"))
    if strategy.kind in ("nsga2", "tpe") and not objectives:
        errors.append(_err(doc, loc, f"strategy {strategy.kind} needs objectives to optimise"))


def checkpoint_label_problem(label) -> str | None:
    """Why ``label`` cannot label a checkpoint of ``accuracy.checkpoints``, or None when it can."""
    if (
        isinstance(label, str)
        and len(label) <= MAX_LABEL_LENGTH
        and _PLAIN_NAME.fullmatch(label)
        and ".." not in label
    ):
        return None
    return (
        f"checkpoint label {label!r} is not a plain name: use letters, digits, '_', '-' and '.' "
        f"(not first), at most {MAX_LABEL_LENGTH} characters (e.g. qat, float)"
    )


def _budget(spec: AccuracySpec, doc: Document, here: Path, workloads) -> AccuracyBudget:
    from pimsim.workload import zoo_names

    if spec.checkpoint is not None and spec.checkpoints is not None:
        raise _err(
            doc,
            ("accuracy", "checkpoints"),
            "give either 'checkpoint:' (one trained network) or 'checkpoints:' (label: path, a "
            "parameter of the sweep), not both",
            key=True,
        )
    if spec.checkpoint is None and spec.checkpoints is None:
        raise _err(
            doc,
            ("accuracy",),
            "the oracle needs 'checkpoint:' (written by pimsim train) or 'checkpoints:' "
            "(label: path, every design evaluated with each)",
        )
    loc = ("accuracy", "checkpoint" if spec.checkpoint is not None else "checkpoints")
    for w in workloads:
        if w.name not in zoo_names():
            raise _err(doc, loc, f"workload {w.name!r}: checkpoints exist for zoo networks only")
    refs, alternatives = {}, {}
    if spec.checkpoint is not None:
        refs = _checkpoint_refs(spec.checkpoint, loc, doc, here, workloads)
    elif not spec.checkpoints:
        raise _err(doc, loc, "no checkpoint given: name one or more as 'label: path'")
    else:
        for label, given in spec.checkpoints.items():
            problem = checkpoint_label_problem(label)
            if problem:
                raise _err(doc, loc + (label,), problem, key=True)
            alternatives[label] = _checkpoint_refs(given, loc + (label,), doc, here, workloads)
    data = (here / spec.data) if spec.data else None
    if data is not None and not data.is_dir():
        raise _err(doc, ("accuracy", "data"), f"dataset folder {spec.data} not found")
    images = None if spec.images == "all" else spec.images
    return AccuracyBudget(
        refs, images, spec.chips, spec.seed, data, spec.batch, spec.calibration, alternatives,
        device=spec.device,
    )


def _checkpoint_refs(given, loc: tuple, doc: Document, here: Path, workloads) -> dict:
    """``{workload name: CheckpointRef}`` of a checkpoint path (or of one path per workload) at
    ``loc``, each ``.pt`` with its sidecar, trained for that workload."""
    by_workload = given if isinstance(given, dict) else None
    refs = {}
    for w in workloads:
        text = by_workload.get(w.name) if by_workload is not None else given
        if text is None:
            raise _err(doc, loc, f"no checkpoint for workload {w.name!r}")
        where = loc + (w.name,) if by_workload is not None else loc
        base = (here / text).with_suffix("")
        pt, sidecar = base.with_name(base.name + ".pt"), base.with_name(base.name + ".json")
        if not pt.exists() or not sidecar.exists():
            raise _err(
                doc, where, f"checkpoint {text} not found (need {pt.name} and {sidecar.name})"
            )
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, ValueError) as exc:
            raise _err(
                doc, where, f"checkpoint sidecar {sidecar.name} unreadable: {exc}"
            ) from None
        if not isinstance(meta, dict) or meta.get("workload") != w.name:
            held = meta.get("workload") if isinstance(meta, dict) else None
            raise _err(doc, where, f"checkpoint {text} holds {held!r}, not {w.name!r}")
        refs[w.name] = CheckpointRef(pt, str(meta.get("state_dict_sha256", "")), w.name)
    return refs
