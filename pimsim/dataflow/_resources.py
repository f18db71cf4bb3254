"""What the dataflow model needs to know about a chip's timing, as plain numbers.

The cost model builds a :class:`ChipTiming` from the spec's components (``pimsim.cost.chip_timing``)
and the dataflow model reads nothing else, so the two agree on rates by construction and the
dataflow package depends on no component model.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Port:
    """A buffer or an interconnect: ``bits_per_ns`` of bandwidth per instance.

    ``level`` is ``tile`` (one per tile, or per ``shared_by`` tiles) or ``chip`` (one).
    ``role`` for buffers: ``input``, ``output`` or ``both``; for interconnects: ``local`` (inside
    a tile: bus, H-tree) or ``network`` (between tiles: router, mesh, chip bus).
    ``capacity_bits`` (buffers) is None when the spec gives no size; ``hops`` (networks) is the
    spec's average, or None to take hops from the placement; ``topology`` as in the spec."""

    name: str
    kind: str  # "buffer" or "interconnect"
    level: str
    role: str
    bits_per_ns: float
    shared_by: int = 1
    capacity_bits: int | None = None
    hops: float | None = None
    topology: str | None = None


@dataclass(frozen=True)
class ChipTiming:
    """Times and bandwidths of one mapped chip.

    ``position_ns[layer]``: time for one copy of a mapped layer to produce one output position
    (its array steps: input cycles x row groups x step time); ``adc_bound[layer]``: whether that
    step is set by the ADC conversions (else by the array read). ``digital_ns[layer]``: time of a
    digital layer on its units for one sample. ``period_ns``: the digital clock period (hop
    latency of a network transfer)."""

    period_ns: float
    position_ns: dict[str, float]
    adc_bound: dict[str, bool]
    digital_ns: dict[str, float]
    digital_class: dict[str, str]
    ports: tuple[Port, ...] = field(default=())
    notes: tuple[str, ...] = field(default=())
    write_ns: dict[str, float] = field(default_factory=dict)
    """Per rewritten layer (``mapping.activation_matmul: rewrite``): time to write its arrays
    with the operand of one input, before they are read."""
