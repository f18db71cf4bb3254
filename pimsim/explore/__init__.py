"""Design-space exploration: sweep files -> design points -> executor -> results store ->
Pareto fronts and plots.

``sweep(path)`` runs a ``kind: sweep`` file (grid, random or optuna search; local process pool
or Dask) into a crash-safe sqlite store; ``read_results(store)`` reads it back as a DataFrame;
``pareto(frame, objectives, constraints)`` keeps the non-dominated designs; ``plot_pareto``,
``plot_parallel`` and ``plot_sensitivity`` draw them. Nothing below this package imports it.
"""

from pimsim.explore._pareto import feasible, non_dominated, pareto
from pimsim.explore._plot import plot_parallel, plot_pareto, plot_sensitivity
from pimsim.explore._run import SweepResult, default_store, sweep
from pimsim.explore._store import ResultStore, read_results

__all__ = [
    "ResultStore",
    "SweepResult",
    "default_store",
    "feasible",
    "non_dominated",
    "pareto",
    "plot_parallel",
    "plot_pareto",
    "plot_sensitivity",
    "read_results",
    "sweep",
]
