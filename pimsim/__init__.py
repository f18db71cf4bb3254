"""pimsim: evaluate neural networks on processing-in-memory accelerators described in YAML.

The public API is what this module exports. torch is imported only by the functions that need it
(:func:`from_torch`, :func:`zoo_model`), so cost-only use starts fast.
"""

from pimsim.cost import Activity, Report, evaluate
from pimsim.errors import MappingError, PimsimError, SpecError, WorkloadError
from pimsim.explore import pareto, read_results, sweep
from pimsim.mapping import LayerMapping, Mapping, map_network
from pimsim.spec import ArchSpec, SweepSpec, load_arch, load_sweep, with_overrides
from pimsim.workload import Layer, Workload, from_torch, load_workload, zoo_model, zoo_names

__version__ = "0.1.0"

__all__ = [
    "Activity",
    "ArchSpec",
    "Layer",
    "LayerMapping",
    "Mapping",
    "MappingError",
    "PimsimError",
    "Report",
    "SpecError",
    "SweepSpec",
    "Workload",
    "WorkloadError",
    "evaluate",
    "from_torch",
    "load_arch",
    "load_sweep",
    "load_workload",
    "map_network",
    "pareto",
    "read_results",
    "sweep",
    "with_overrides",
    "zoo_model",
    "zoo_names",
]


def __getattr__(name: str):
    # The oracle imports torch: load it only when ``pimsim.oracle`` is first used.
    if name in ("oracle", "explore"):
        import importlib

        return importlib.import_module(f"pimsim.{name}")
    raise AttributeError(f"module 'pimsim' has no attribute {name!r}")
