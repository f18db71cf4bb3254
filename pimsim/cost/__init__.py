"""Cost model: pure functions of (spec, mapping, counts) giving energy, area, latency, power."""

from pimsim.cost import _adc, _charge, _components, _neurosim  # noqa: F401  (they register the component models)
from pimsim.cost._activity import Activity
from pimsim.cost._compare import Comparison, compare, plot_comparison
from pimsim.cost._evaluate import LATENCY_MODELS, Report, chip_timing, evaluate
from pimsim.cost._hierarchy import LEVELS, Instance, LevelReport, instances, level_reports
from pimsim.cost._registry import ComponentEstimate, lookup, models, register
from pimsim.cost._training import TrainingReport, training_cost

__all__ = [
    "Activity",
    "Comparison",
    "LATENCY_MODELS",
    "LEVELS",
    "ComponentEstimate",
    "Instance",
    "LevelReport",
    "Report",
    "chip_timing",
    "compare",
    "evaluate",
    "instances",
    "level_reports",
    "lookup",
    "models",
    "plot_comparison",
    "register",
    "TrainingReport",
    "training_cost",
]
