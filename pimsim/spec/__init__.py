"""Specs: the only place YAML is read. Produces frozen, validated objects."""

from pimsim.spec._arch import (
    ORACLE_FIELDS,
    ArchSpec,
    oracle_fields,
    preset_defaults,
    preset_overrides,
)
from pimsim.spec._load import load_arch, with_overrides
from pimsim.spec._sweep import SweepSpec, load_sweep

__all__ = [
    "ORACLE_FIELDS",
    "ArchSpec",
    "SweepSpec",
    "load_arch",
    "load_sweep",
    "oracle_fields",
    "preset_defaults",
    "preset_overrides",
    "with_overrides",
]
