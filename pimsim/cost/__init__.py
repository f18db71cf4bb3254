"""Cost model: pure functions of (spec, mapping, counts) giving energy, area, latency, power."""

from pimsim.cost import _components, _neurosim  # noqa: F401  (they register the component models)
from pimsim.cost._activity import Activity
from pimsim.cost._evaluate import Report, evaluate
from pimsim.cost._hierarchy import LEVELS, Instance, LevelReport, instances, level_reports
from pimsim.cost._registry import ComponentEstimate, lookup, models, register

__all__ = [
    "Activity",
    "LEVELS",
    "ComponentEstimate",
    "Instance",
    "LevelReport",
    "Report",
    "evaluate",
    "instances",
    "level_reports",
    "lookup",
    "models",
    "register",
]
