"""Evaluating design points, in whatever process the executor chose: resolve the spec, run the
cost model, and (once per task, which holds designs with one accuracy key) the accuracy oracle.

Nothing here raises for a bad design: spec and mapping errors make the point ``infeasible`` with
the error's message, anything unexpected makes it ``failed`` with the exception's text.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass, field

from pimsim.dataflow._model import DEFAULT_GRANULARITY
from pimsim.errors import PimsimError
from pimsim.explore._points import DesignPoint, KeyMaker
from pimsim.spec import oracle_fields, with_overrides
from pimsim.spec._sweep import AccuracyBudget, TrainingBudget


@dataclass(frozen=True)
class Context:
    """What every worker needs, sent once: base specs, workloads, keys, oracle budget."""

    sweep: str
    archs: tuple
    arch_labels: tuple
    workloads: tuple
    keys: KeyMaker
    accuracy: AccuracyBudget | TrainingBudget | None
    fixed: dict = field(default_factory=dict)
    threads: int = 1


@dataclass
class Task:
    """Points evaluated together; with an oracle, they share ``accuracy_key`` and ``cached``
    holds the oracle's stored result for it when there is one."""

    points: list[DesignPoint]
    accuracy_key: str | None = None
    cached: dict | None = None


@dataclass
class TaskResult:
    """Rows for the store, new oracle results by accuracy key, and the oracle runs made."""

    rows: list[dict]
    accuracy: dict = field(default_factory=dict)
    oracle_runs: int = 0


def accuracy_key(ctx: Context, spec, workload: int, checkpoint: str | None = None) -> str:
    """The key of the oracle's result: the spec's oracle fields, the checkpoint (the weights'
    digest its sidecar records and the sha256 of the ``.pt`` file itself, so a replaced
    checkpoint is a new key; with several checkpoints, the one labelled ``checkpoint``) and the
    budget (the technology, the clock or buffer sizes never enter it)."""
    name = ctx.workloads[workload].name
    if isinstance(ctx.accuracy, TrainingBudget):  # trained on chip: the spec's fields decide
        return ctx.keys.accuracy({"oracle": oracle_fields(spec), "train": True}, workload)
    ref = ctx.accuracy.ref(name, checkpoint)
    return ctx.keys.accuracy(
        {
            "oracle": oracle_fields(spec),
            "weights": ref.sha256,
            "checkpoint": ctx.keys.checkpoint(workload, checkpoint),
        },
        workload,
        checkpoint,
    )


def resolve(ctx: Context, point: DesignPoint):
    """The point's spec: its base with the sweep's fixed overrides, then its own values
    (``with_overrides``); raises the spec's error."""
    overrides = {**ctx.fixed, **point.overrides}
    return with_overrides(ctx.archs[point.arch], overrides) if overrides else ctx.archs[point.arch]


_PROCESS: dict = {}  # per-process memo of loaded checkpoints and datasets (read-only objects)


def init_process(ctx: Context) -> None:
    """Worker start-up: remember the context, limit threads to this worker's share of cores."""
    _PROCESS["ctx"] = ctx
    if ctx.accuracy is not None:
        import torch

        from pimsim.oracle._memory import tune_cpu_allocator

        torch.set_num_threads(max(1, ctx.threads))
        tune_cpu_allocator()


def run_in_process(task: Task) -> TaskResult:
    """:func:`run_task` with the context given to :func:`init_process` (process pools)."""
    return run_task(_PROCESS["ctx"], task)


def _base_row(ctx: Context, point: DesignPoint) -> dict:
    row = {
        "point": point.index,
        "sweep": ctx.sweep,
        "arch": ctx.arch_labels[point.arch],
        "workload": ctx.workloads[point.workload].name,
        "request": point.request,
    }
    row.update({path: value for path, value in point.values})
    return row


def _cost(spec, workload, latency: dict | None = None) -> dict:
    from pimsim.cost import evaluate

    latency = latency or {}
    report = evaluate(
        spec,
        workload,
        latency_model=latency.get("model", "event"),
        granularity=latency.get("granularity", DEFAULT_GRANULARITY),
        samples=latency.get("samples", 2),
    )
    totals = dict(report.totals)
    totals["edp"] = totals["energy_pj"] * totals["latency_ns"]
    totals.update(report.breakdown_columns())  # energy_<class>_pj, area_<class>_mm2
    return totals


def _train(ctx: Context, spec, workload_name: str) -> dict:
    """Train ``workload_name`` on chip as ``spec``'s ``training`` section says; the accuracy
    record with the measured writes in its ``training`` field (JSON)."""

    from pimsim.training import train_onchip
    from pimsim.training._data import load_dataset
    from pimsim.training._train import build_model, dataset_of

    budget = ctx.accuracy
    data_key = ("train-data", workload_name, str(budget.data))
    if data_key not in _PROCESS:
        name = dataset_of(workload_name)
        _PROCESS[data_key] = (load_dataset(name, budget.data, "train"),
                              load_dataset(name, budget.data, "test"))
    (x, y), (xt, yt) = _PROCESS[data_key]
    samples = budget.train_samples or spec.training.train_samples
    if samples:
        x, y = x[:samples], y[:samples]
    if budget.images:
        xt, yt = xt[: budget.images], yt[: budget.images]
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = train_onchip(build_model(workload_name, "float", budget.seed), spec, (x, y),
                           (xt, yt), seed=budget.seed, device=getattr(budget, "device", "cpu"))
    record = {
        "writes_per_step": res.writes_per_step,
        "pulses_per_step": res.pulses_per_step,
        "batch_size": res.batch_size,
        "samples_per_epoch": res.samples_per_epoch,
        "per_epoch": res.epochs,
    }
    return {
        "accuracy": res.accuracy,
        "accuracy_worst": res.accuracy,
        "accuracy_std": 0.0,
        "per_chip": json.dumps([res.accuracy]),
        "eval_s": time.perf_counter() - start,
        "training": json.dumps(record),
    }


def _training_cost(spec, workload, acc: dict) -> dict:
    """The training-cost metrics of ``spec`` with the writes its training run measured."""
    from pimsim.cost import training_cost

    rec = json.loads(acc["training"])
    rep = training_cost(spec, workload, batch_size=rec["batch_size"],
                        train_samples=rec["samples_per_epoch"],
                        writes_per_step=rec["writes_per_step"],
                        pulses_per_step=rec["pulses_per_step"])
    return {
        "training_energy_pj": rep.energy_per_epoch_pj,
        "training_latency_ns": rep.latency_per_step_ns,
        "training_writes": rep.writes_per_step * rep.steps_per_epoch,
        "training_area_mm2": rep.extra_area_mm2,
    }


def _oracle(ctx: Context, spec, workload: int, checkpoint: str | None = None) -> dict:
    import torch

    from pimsim.oracle import accuracy
    from pimsim.training._checkpoint import load_checkpoint
    from pimsim.training._data import load_dataset

    budget = ctx.accuracy
    workload_name = ctx.workloads[workload].name
    ref = budget.ref(workload_name, checkpoint)
    dec = spec.decomposition
    # the file's digest: a checkpoint replaced between sweeps of one process is loaded anew
    model_key = ("model", str(ref.path), ctx.keys.checkpoint(workload, checkpoint),
                 dec.weight_bits, dec.input_bits)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if model_key not in _PROCESS:
            _PROCESS[model_key] = load_checkpoint(ref.path, dec.weight_bits, dec.input_bits)[0]
        data_key = ("data", workload_name, str(budget.data), budget.images, budget.batch,
                    budget.calibration)
        if data_key not in _PROCESS:
            dataset = workload_name.rsplit("_", 1)[-1]
            x, y = load_dataset(dataset, budget.data, "test")
            if budget.images:
                x, y = x[: budget.images], y[: budget.images]
            x_cal = load_dataset(dataset, budget.data, "train")[0][: budget.calibration]
            _PROCESS[data_key] = (
                list(zip(torch.split(x, budget.batch), torch.split(y, budget.batch), strict=True)),
                list(torch.split(x_cal, budget.batch)),
            )
        test, calibration = _PROCESS[data_key]
        start = time.perf_counter()
        result = accuracy(
            _PROCESS[model_key],
            spec,
            test,
            n_chips=budget.chips,
            seed=budget.seed,
            calibration=calibration,
            device=getattr(budget, "device", "cpu"),
        )
    return {
        "accuracy": result.mean,
        "accuracy_worst": result.worst,
        "accuracy_std": result.std,
        "per_chip": json.dumps(list(result.per_chip)),
        "eval_s": time.perf_counter() - start,
    }


def run_task(ctx: Context, task: Task) -> TaskResult:
    """Evaluate every point of ``task``; the oracle runs at most once (when some point is
    feasible and no cached result was sent)."""
    out = TaskResult([])
    acc = task.cached
    for point in task.points:
        start = time.perf_counter()
        row = _base_row(ctx, point)
        try:
            spec = resolve(ctx, point)
            row["key"] = ctx.keys.design(
                spec.model_dump(mode="json"), point.workload, point.checkpoint
            )
            row.update(_cost(spec, ctx.workloads[point.workload], ctx.keys.latency))
            if ctx.accuracy is not None:
                key = task.accuracy_key or accuracy_key(
                    ctx, spec, point.workload, point.checkpoint
                )
                row["accuracy_key"] = key
                training = isinstance(ctx.accuracy, TrainingBudget)
                if acc is None:
                    if training:
                        acc = _train(ctx, spec, ctx.workloads[point.workload].name)
                    else:
                        acc = _oracle(ctx, spec, point.workload, point.checkpoint)
                    out.accuracy[key] = acc
                    out.oracle_runs += 1
                row.update({k: acc[k] for k in ("accuracy", "accuracy_worst", "accuracy_std")})
                if training:
                    row.update(_training_cost(spec, ctx.workloads[point.workload], acc))
            row["status"] = "ok"
        except PimsimError as exc:
            row.setdefault("key", point.request)
            row.update(status="infeasible", error=_one_line(exc))
        except Exception as exc:  # an internal error must not stop the sweep: record it
            row.setdefault("key", point.request)
            row.update(status="failed", error=f"{type(exc).__name__}: {_one_line(exc)}")
        row["eval_ms"] = (time.perf_counter() - start) * 1e3
        row["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        out.rows.append(row)
    return out


def _one_line(exc: BaseException) -> str:
    text = " / ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text or type(exc).__name__


def is_number(value) -> bool:
    """Whether ``value`` is a finite real number (for reading metrics back)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
