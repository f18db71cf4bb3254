"""The metrics a sweep can optimise or constrain: every ``totals`` key of a cost report, its
energy and area by component class, the energy-delay product and the accuracy oracle's results,
each with its unit and natural direction.

Objectives are written ``metric:min`` / ``metric:max`` (or a mapping ``{metric: min}``);
constraints ``metric <= value`` (also ``<``, ``>=``, ``>``).
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass

from pimsim.errors import PimsimError, did_you_mean
from pimsim.spec._fields import AREA_CLASSES, ENERGY_CLASSES


@dataclass(frozen=True)
class Metric:
    """A column of the results store that objectives and constraints may name."""

    name: str
    unit: str
    """Unit for axis labels ("" for counts and fractions)."""
    direction: str
    """``min`` or ``max``: the direction a designer usually wants."""
    label: str
    """Axis label without the unit."""
    accuracy: bool = False
    """Whether the metric comes from the accuracy oracle (the sweep must give ``accuracy:``, or
    ``training:`` for the accuracy of on-chip training)."""
    training: bool = False
    """Whether the metric comes from on-chip training (the sweep must give ``training:``)."""

    @property
    def axis_label(self) -> str:
        """``"energy per inference (pJ)"``."""
        return f"{self.label} ({self.unit})" if self.unit else self.label


#: Every metric a sweep records, by store column name (the cost report's ``totals`` keys first).
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("macs", "", "min", "MACs per inference"),
        Metric("adc_conversions", "", "min", "ADC conversions per inference"),
        Metric("energy_pj", "pJ", "min", "energy per inference"),
        Metric("latency_ns", "ns", "min", "latency per inference"),
        Metric("throughput_fps", "inferences/s", "max", "throughput"),
        Metric("area_mm2", "mm²", "min", "chip area"),
        Metric("tops_per_w", "TOPS/W", "max", "energy efficiency"),
        Metric("tops_per_mm2", "TOPS/mm²", "max", "area efficiency"),
        Metric("arrays_used", "", "min", "arrays used"),
        Metric("utilization", "", "max", "cell utilization"),
        Metric("chip_tiles", "", "min", "chip tiles"),
        Metric("passes", "", "min", "weight-programming passes"),
        Metric("cell_writes", "", "min", "cell writes per inference"),
        # energy x latency of one inference: pJ x ns
        Metric("edp", "pJ·ns", "min", "energy-delay product"),
        Metric("accuracy", "", "max", "top-1 accuracy (mean over chips)", accuracy=True),
        Metric("accuracy_worst", "", "max", "top-1 accuracy (worst chip)", accuracy=True),
        Metric("accuracy_std", "", "min", "top-1 accuracy (std over chips)", accuracy=True),
        # on-chip training (a sweep with a ``training:`` section; pimsim.cost.training_cost)
        Metric("training_energy_pj", "pJ", "min", "training energy per epoch", training=True),
        Metric("training_latency_ns", "ns", "min", "training latency per step", training=True),
        Metric("training_writes", "", "min", "device writes per epoch", training=True),
        Metric("training_area_mm2", "mm²", "min", "area added for training", training=True),
        # the cost report's breakdowns, one column per component class
        *(Metric(f"energy_{c}_pj", "pJ", "min", f"{c} energy per inference")
          for c in ENERGY_CLASSES),
        *(Metric(f"area_{c}_mm2", "mm²", "min", f"{c} area") for c in AREA_CLASSES),
    )
}

DIRECTIONS = ("min", "max")


class ObjectiveError(PimsimError, ValueError):
    """An objective or constraint names no metric, or is malformed."""


def metric(name: str) -> Metric:
    """The :class:`Metric` called ``name``; an error lists the known ones."""
    if name not in METRICS:
        hint = did_you_mean(name, METRICS) or f" (known: {', '.join(METRICS)})"
        raise ObjectiveError(f"unknown metric {name!r}{hint}")
    return METRICS[name]


@dataclass(frozen=True)
class Objective:
    """One objective: a metric and whether smaller (``min``) or larger (``max``) is better."""

    metric: str
    direction: str

    @property
    def sign(self) -> float:
        """+1 for ``min``, -1 for ``max``: multiply to turn the objective into a minimisation."""
        return 1.0 if self.direction == "min" else -1.0

    def __str__(self) -> str:
        return f"{self.metric}:{self.direction}"


def parse_objective(text: str) -> Objective:
    """``"energy_pj:min"`` (or ``"energy_pj"`` with the metric's natural direction)."""
    name, _, direction = str(text).strip().partition(":")
    name, direction = name.strip(), direction.strip()
    m = metric(name)
    if not direction:
        direction = m.direction
    if direction not in DIRECTIONS:
        raise ObjectiveError(f"objective {text!r}: direction must be min or max, got {direction!r}")
    return Objective(name, direction)


def parse_objectives(items) -> tuple[Objective, ...]:
    """A comma-separated string, a list of ``"metric:dir"`` strings or ``{metric: dir}`` mappings,
    or one mapping ``{metric: dir, ...}``; a metric named twice is an error."""
    if isinstance(items, str):
        items = [part for part in items.split(",") if part.strip()]
    if isinstance(items, dict):
        items = [items]
    out: list[Objective] = []
    for item in items:
        if isinstance(item, dict):
            out += [parse_objective(f"{k}:{v}") for k, v in item.items()]
        else:
            out.append(parse_objective(item))
    seen = set()
    for obj in out:
        if obj.metric in seen:
            raise ObjectiveError(f"objective {obj.metric!r} given twice")
        seen.add(obj.metric)
    if not out:
        raise ObjectiveError("no objectives given (e.g. energy_pj:min,accuracy:max)")
    return tuple(out)


_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}
_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>)\s*(\S+)\s*$")


@dataclass(frozen=True)
class Constraint:
    """``metric op bound``, e.g. ``area_mm2 <= 50``; a point without the metric fails it."""

    metric: str
    op: str
    bound: float

    def holds(self, values):
        """Elementwise truth for a number, numpy array or pandas Series (NaN fails)."""
        return _OPS[self.op](values, self.bound)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"


def parse_constraint(text: str) -> Constraint:
    """``"area_mm2 <= 50"`` -> :class:`Constraint`."""
    match = _CONSTRAINT.match(str(text))
    if not match:
        raise ObjectiveError(
            f"constraint {text!r}: expected 'METRIC OP NUMBER' with OP one of <=, <, >=, > "
            "(e.g. 'area_mm2 <= 50')"
        )
    name, op, number = match.groups()
    metric(name)
    try:
        bound = float(number)
    except ValueError:
        raise ObjectiveError(f"constraint {text!r}: {number!r} is not a number") from None
    if not math.isfinite(bound):
        raise ObjectiveError(f"constraint {text!r}: the bound must be finite")
    return Constraint(name, op, bound)


def check_satisfiable(constraints) -> None:
    """Raise :class:`ObjectiveError` when the constraints on one metric leave no value (e.g.
    ``area_mm2 <= 10`` with ``area_mm2 >= 50``): such a sweep could never find a feasible point."""
    by_metric: dict[str, list[Constraint]] = {}
    for c in constraints:
        by_metric.setdefault(c.metric, []).append(c)
    for name, group in by_metric.items():
        lo, lo_strict, hi, hi_strict = -math.inf, False, math.inf, False
        for c in group:
            if c.op in (">=", ">"):
                if c.bound > lo or (c.bound == lo and c.op == ">"):
                    lo, lo_strict = c.bound, c.op == ">"
            elif c.bound < hi or (c.bound == hi and c.op == "<"):
                hi, hi_strict = c.bound, c.op == "<"
        if lo > hi or (lo == hi and (lo_strict or hi_strict)):
            raise ObjectiveError(
                f"constraints on {name} contradict each other: "
                + " and ".join(str(c) for c in group)
                + " leave no value"
            )
