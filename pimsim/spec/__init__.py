"""Specs: the only place YAML is read. Produces frozen, validated objects."""

from pimsim.spec._arch import ArchSpec, preset_defaults
from pimsim.spec._load import load_arch, with_overrides

__all__ = ["ArchSpec", "load_arch", "preset_defaults", "with_overrides"]
