"""Multi-objective search (``strategy: nsga2`` or ``tpe``) with optuna's in-memory ask/tell.

optuna only proposes designs: every design is evaluated by the same workers and recorded in the
same results store as a grid point, and the store (not optuna's storage) is the record. Trials
are asked in batches of ``population`` so that the workers stay busy; a design already in the
store (a re-run, or a proposal made twice) is told its stored values without being evaluated
again, so re-running a search with the same seed replays it and continues where it stopped.
The checkpoint label of ``accuracy.checkpoints`` is a categorical parameter like any other.
"""

from __future__ import annotations

import math
import warnings

from pimsim.explore._points import KeyMaker
from pimsim.spec._sweep import SweepSpec

_PRIMITIVE = (str, int, float, bool, type(None))


def _sampler(sweep: SweepSpec, constraints_func):
    import optuna

    s = sweep.strategy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if s.kind == "nsga2":
            return optuna.samplers.NSGAIISampler(
                population_size=max(2, s.population or 20),
                seed=s.seed,
                constraints_func=constraints_func,
            )
        return optuna.samplers.TPESampler(
            seed=s.seed, constraints_func=constraints_func, multivariate=True
        )


def _suggest(trial, sweep: SweepSpec) -> tuple[int, int, tuple]:
    """(arch, workload, values) proposed by ``trial``."""
    arch = trial.suggest_categorical("arch", list(range(len(sweep.archs))))
    work = trial.suggest_categorical("workload", list(range(len(sweep.workloads))))
    values: list = []
    for d in sweep.dimensions:
        if d.values is None:
            v = trial.suggest_float(d.name, d.low, d.high, log=d.log)
            values.append((d.paths[0], float(f"{v:.12g}")))
            continue
        flat = [c[0] for c in d.values]
        if len(d.paths) == 1 and all(isinstance(v, _PRIMITIVE) for v in flat):
            if len(set(map(repr, flat))) == len(flat):
                values.append((d.paths[0], trial.suggest_categorical(d.name, flat)))
                continue
        choice = d.values[trial.suggest_categorical(d.name, list(range(len(d.values))))]
        values += list(zip(d.paths, choice, strict=True))
    return arch, work, tuple(values)


def _violation(constraint, value) -> float:
    """optuna's convention: <= 0 when satisfied."""
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return 1.0
    if constraint.op in ("<=", "<"):
        return float(value - constraint.bound)
    return float(constraint.bound - value)


def run_search(sweep: SweepSpec, keys: KeyMaker, evaluate_batch) -> None:
    """Ask ``sweep.strategy.n`` trials in batches; ``evaluate_batch(points)`` evaluates and
    stores them and returns ``{request key: stored row}``."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    directions = ["minimize" if o.direction == "min" else "maximize" for o in sweep.objectives]
    constraints_func = None
    if sweep.constraints:

        def constraints_func(trial):
            return trial.user_attrs["constraints"]

    study = optuna.create_study(directions=directions, sampler=_sampler(sweep, constraints_func))
    n = sweep.strategy.n
    batch = sweep.strategy.population or (20 if sweep.strategy.kind == "nsga2" else 8)
    told = 0
    while told < n:
        trials = [study.ask() for _ in range(min(batch, n - told))]
        points = [keys.point(told + i, *_suggest(t, sweep)) for i, t in enumerate(trials)]
        rows = evaluate_batch(points)
        for trial, point in zip(trials, points, strict=True):
            row = rows.get(point.request) or {}
            values = [row.get(o.metric) for o in sweep.objectives]
            ok = row.get("status") == "ok" and all(
                isinstance(v, (int, float)) and math.isfinite(v) for v in values
            )
            if constraints_func is not None:
                trial.set_user_attr(
                    "constraints", [_violation(c, row.get(c.metric)) for c in sweep.constraints]
                )
            if ok:
                study.tell(trial, [float(v) for v in values])
            else:
                study.tell(trial, state=TrialState.FAIL)
        told += len(trials)
