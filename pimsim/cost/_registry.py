"""A small registry of component models: ``@register("adc", "survey")``.

A model is a pure function ``(arch, block) -> ComponentEstimate`` where ``block`` is the spec
section or component entry it estimates. A failed lookup lists the models that exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pimsim.errors import SpecError

#: Bits per buffer or interconnect access when the spec gives no ``width_bits``.
BUFFER_ACCESS_BITS = 256

_MODELS: dict[tuple[str, str], Callable] = {}


@dataclass(frozen=True)
class ComponentEstimate:
    """One instance of a component: energy per action, area, static power, rated action rate.

    ``accuracy`` says how far the model is trusted (as Accelergy's estimators declare theirs):
    ``published`` (a paper's measured/post-layout value), ``fitted`` (a documented calibration)
    or ``first_order`` (a scaling estimate).
    """

    energy_pj: float
    area_um2: float
    rate_hz: float
    leakage_mw: float = 0.0
    latency_ns: float = 0.0
    accuracy: str = "first_order"

    @property
    def peak_power_mw(self) -> float:
        """Power at the rated action rate plus leakage (mW): pJ x Hz = 1e-9 mW."""
        return self.energy_pj * self.rate_hz * 1e-9 + self.leakage_mw


def register(component: str, name: str):
    """Register a model function for ``component`` under ``name``."""

    def wrap(func):
        _MODELS[(component, name)] = func
        return func

    return wrap


def models(component: str | None = None) -> list[tuple[str, str]]:
    """Registered ``(component, name)`` pairs."""
    return sorted(k for k in _MODELS if component is None or k[0] == component)


def lookup(component: str, name: str) -> Callable:
    """The model registered as ``name`` for ``component``; a clear error lists the others."""
    try:
        return _MODELS[(component, name)]
    except KeyError:
        known = ", ".join(n for c, n in models(component)) or "none"
        raise SpecError(f"no {component} model named {name!r} (known: {known})") from None
