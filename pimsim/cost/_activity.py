"""Data-dependent activity that scales the energy of input-driven actions."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class Activity:
    """Fraction of input bits that are 1 (rows actually driven) per mapped layer.

    Row-driver (``dac``) and cell-read (``array``) energies scale with it; ADC conversions do not
    (every column is converted whether or not a row was driven). ``default`` applies to layers not
    listed. With no activity given, :func:`pimsim.evaluate` assumes every row is driven in every
    input cycle (activity 1, the worst case). The accuracy oracle measures it on real data.
    """

    input_bits: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    default: float = 1.0

    def __post_init__(self) -> None:
        values = [self.default, *self.input_bits.values()]
        if any(not 0.0 <= v <= 1.0 for v in values):
            raise ValueError("activity values are fractions in [0, 1]")
        object.__setattr__(self, "input_bits", MappingProxyType(dict(self.input_bits)))

    def for_layer(self, name: str) -> float:
        """Activity of layer ``name``."""
        return self.input_bits.get(name, self.default)


def as_activity(value) -> Activity:
    """None -> activity 1; a number -> that activity for every layer; an Activity as is."""
    if value is None:
        return Activity()
    if isinstance(value, Activity):
        return value
    return Activity(default=float(value))
