"""``sweep()``: a sweep file -> design points -> executor -> results store, with progress.

Cost-only sweeps send points to the workers in batches (a cost evaluation takes milliseconds, so
one task per point would be mostly overhead). Sweeps with the oracle first resolve each point's
spec here and group the points by accuracy key, so that one task runs the oracle once for all the
designs it cannot tell apart (a sweep over the clock or the node runs it once); a key already in
the store's accuracy cache is not run again. With several checkpoints (``accuracy.checkpoints``)
each label is a parameter value like any other, so every strategy handles it: the oracle runs once
per checkpoint and accuracy key.

Every run records which designs the sweep asks for (the store's ``requested`` table), so the
sweep's frame and front hold every design it asked for, also those another sweep sharing the store
evaluated first. ``fresh=True`` deletes the store first, but only a pimsim store that holds no
other sweep's results.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from pimsim.errors import PimsimError, StoreError
from pimsim.explore._executor import default_workers, make_executor
from pimsim.explore._points import (
    DesignPoint,
    KeyMaker,
    SweepSizeError,
    check_size,
    grid_points,
    random_points,
)
from pimsim.explore._store import ResultStore
from pimsim.explore._worker import Context, Task, accuracy_key, resolve, run_task
from pimsim.spec._sweep import SweepSpec, load_sweep, sweep_name_problem


@dataclass
class SweepResult:
    """What :func:`sweep` did: the store, the points it evaluated and skipped, oracle runs."""

    store: Path
    sweep: SweepSpec = field(repr=False)
    evaluated: int = 0
    skipped: int = 0
    infeasible: int = 0
    failed: int = 0
    oracle_runs: int = 0
    wall_s: float = 0.0
    errors: list = field(default_factory=list)

    @property
    def rate_per_min(self) -> float:
        """Points evaluated per minute of wall time."""
        return self.evaluated / self.wall_s * 60 if self.wall_s else math.inf

    def frame(self):
        """Every design this sweep asked for, from the store, as a DataFrame (also those that
        another sweep sharing the store evaluated first)."""
        with ResultStore(self.store) as store:
            return store.frame(self.sweep.name)

    def pareto(self, objectives=None, constraints=None):
        """The front of this sweep's rows for its objectives and constraints (or those given)."""
        from pimsim.explore._pareto import pareto

        objectives = objectives or self.sweep.objectives
        if not objectives:
            raise PimsimError(f"sweep {self.sweep.name!r} has no objectives: give some")
        constraints = self.sweep.constraints if constraints is None else constraints
        return pareto(self.frame(), objectives, constraints)


def default_store(sweep: SweepSpec) -> Path:
    """``results/<sweep name>.sqlite`` (relative to the working directory); raises
    :class:`PimsimError` for a name that is not a plain file name (``load_sweep`` refuses those
    already, with the position in the file)."""
    problem = sweep_name_problem(sweep.name)
    if problem:
        raise PimsimError(problem)
    return Path("results") / f"{sweep.name}.sqlite"


def _delete_store(path: Path, name: str) -> None:
    """Delete the store at ``path`` and its ``-wal``/``-shm`` files for a fresh run of sweep
    ``name``; refuse (and delete nothing) when the file is not a pimsim store or holds the
    results of other sweeps."""
    if path.exists():
        try:  # read only, advising as for the store the sweep is about to write
            with ResultStore(path, readonly=True, to_write=True) as db:
                others = sorted(set(db.sweeps()) - {name})
        except StoreError as exc:
            raise StoreError(f"{exc} (--fresh deletes only a pimsim store it can read)") from None
        if others:
            listed = ", ".join(repr(o) for o in others)
            raise PimsimError(
                f"{path} holds the results of other sweeps ({listed}), not only of {name!r}: "
                "a fresh run will not delete it (give this sweep its own store)"
            )
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def _batch_size(pending: int, workers: int) -> int:
    return max(1, min(64, math.ceil(pending / (max(1, workers) * 16))))


def _tasks(ctx: Context, points: list[DesignPoint], cache: dict, workers: int) -> list[Task]:
    if ctx.accuracy is None:
        size = _batch_size(len(points), workers)
        return [Task(points[i : i + size]) for i in range(0, len(points), size)]
    groups: dict[str, list[DesignPoint]] = {}
    singles = []
    for point in points:
        try:
            key = accuracy_key(ctx, resolve(ctx, point), point.workload, point.checkpoint)
        except PimsimError:  # the worker records the error
            singles.append(Task([point]))
            continue
        groups.setdefault(key, []).append(point)
    return [Task(pts, key, cache.get(key)) for key, pts in groups.items()] + singles


class _Runner:
    """Sends points to the executor and commits what comes back, with a progress bar."""

    def __init__(self, sweep, store, executor, workers, ctx, result, progress, total):
        self.sweep, self.store, self.executor = sweep, store, executor
        self.workers, self.ctx, self.result = workers, ctx, result
        self.roles = {p: "parameter" for p in sweep.parameters}
        self.requested: dict[str, int] = {}  # request key -> point index, this run
        self.bar = None
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=sweep.name, unit="pt", dynamic_ncols=True)

    def run(self, points: list[DesignPoint], only: bool = False) -> None:
        """Evaluate the ``points`` not answered yet; record that the sweep asks for all of
        them (``only``: for none besides)."""
        for p in points:
            self.requested.setdefault(p.request, p.index)
        self.store.note_requests(self.sweep.name, ((p.request, p.index) for p in points), only)
        answered = self.store.answered()
        pending, seen = [], set()
        for p in points:
            if p.request in answered or p.request in seen:
                self.result.skipped += 1
                continue
            seen.add(p.request)
            pending.append(p)
        if self.bar is not None:
            self.bar.update(len(points) - len(pending))
        if not pending:
            return
        tasks = _tasks(self.ctx, pending, self.store.accuracy_cache(), self.workers)
        for out in self.executor.run(tasks):
            self.store.commit(out.rows, out.accuracy, self.roles)
            self.result.evaluated += len(out.rows)
            self.result.oracle_runs += out.oracle_runs
            for row in out.rows:
                if row["status"] == "infeasible":
                    self.result.infeasible += 1
                elif row["status"] == "failed":
                    self.result.failed += 1
                    self.result.errors.append(row["error"])
            if self.bar is not None:
                self.bar.update(len(out.rows))
                if self.ctx.accuracy is not None:
                    self.bar.set_postfix(oracle_runs=self.result.oracle_runs, refresh=False)

    def evaluate_batch(self, points: list[DesignPoint]) -> dict:
        self.run(points)
        return self.store.rows_for(p.request for p in points)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _estimate(spec: SweepSpec, ctx: Context, keys: KeyMaker, designs: float,
              workers: int, sample: int = 5) -> str:
    """How long ``designs`` designs would take, from ``sample`` of them timed here (cost only:
    with an oracle budget the accuracy runs come on top, and the text says so)."""
    if math.isinf(designs):
        return ""
    from dataclasses import replace

    cost_only = replace(ctx, accuracy=None)
    points = random_points(spec, keys, sample, seed=0, max_points=sample)
    start = time.perf_counter()
    rows = run_task(cost_only, Task(points)).rows
    feasible = sum(row["status"] == "ok" for row in rows)
    per_min = len(points) / max(time.perf_counter() - start, 1e-9) * 60 * max(1, workers)
    minutes = designs / per_min
    span = (f"{minutes / 1440:,.1f} days" if minutes > 2880 else
            f"{minutes / 60:,.1f} hours" if minutes > 120 else f"{minutes:,.0f} minutes")
    extra = ", cost only: the oracle comes on top" if ctx.accuracy is not None else ""
    return (f"; at {per_min:,.0f} designs/min (measured on {len(points)} of its designs here, "
            f"{feasible} of them feasible, {max(1, workers)} workers{extra}) it would take "
            f"about {span}")


def sweep(
    spec,
    store=None,
    *,
    workers: int | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    progress: bool = True,
    fresh: bool = False,
    max_points: int | None = None,
) -> SweepResult:
    """Run a sweep (a ``kind: sweep`` file path or a loaded :class:`SweepSpec`) into the results
    store ``store`` (default ``results/<name>.sqlite``), skipping designs already stored.

    ``workers`` processes (default: every core; 0 runs in this process) on the local pool, or on
    Dask with ``executor="dask"`` (``scheduler`` is a scheduler address; without one a
    ``LocalCluster`` of ``workers`` processes is started). ``fresh=True`` deletes the store first.
    Returns a :class:`SweepResult`; ``.frame()`` and ``.pareto()`` read the store. A sweep of
    more than ``max_points`` designs (default :data:`pimsim.explore._points.MAX_POINTS`) is
    refused (:class:`~pimsim.explore._points.SweepSizeError`) before the store is touched.
    """
    if not isinstance(spec, SweepSpec):
        spec = load_sweep(spec)
    strategy = spec.strategy
    designs = (spec.grid_size if strategy.kind == "grid"
               else min(strategy.n or 0, spec.grid_size))
    workers = default_workers() if workers is None else workers
    if workers < 0:
        raise PimsimError(f"workers must be >= 0, got {workers}")
    keys = KeyMaker.of(spec)
    cores = default_workers()
    ctx = Context(
        spec.name,
        spec.archs,
        spec.arch_labels,
        spec.workloads,
        keys,
        spec.accuracy,
        spec.fixed,
        threads=max(1, cores // max(1, workers)),
    )
    try:
        check_size(spec, designs, max_points)
    except SweepSizeError as exc:
        raise SweepSizeError(f"{exc}{_estimate(spec, ctx, keys, designs, workers)}") from None
    path = Path(store) if store is not None else default_store(spec)
    if fresh:
        _delete_store(path, spec.name)
    if strategy.kind == "grid":
        points = grid_points(spec, keys, max_points)
    elif strategy.kind == "random":
        points = random_points(spec, keys, strategy.n, strategy.seed, max_points)
    else:
        points = None
    result = SweepResult(path, spec)
    start = time.perf_counter()
    with ResultStore(path) as db:
        db.record_sweep(
            spec.name,
            {
                "source": os.path.abspath(spec.source),
                "digest": spec.digest,
                "objectives": [str(o) for o in spec.objectives],
                "constraints": [str(c) for c in spec.constraints],
                "parameters": list(spec.parameters),
                "strategy": strategy.model_dump(),
            },
        )
        total = len(points) if points is not None else strategy.n
        runner = None
        pool = make_executor(ctx, executor, workers, scheduler)
        try:
            runner = _Runner(spec, db, pool, workers, ctx, result, progress, total)
            if points is not None:
                runner.run(points, only=True)
            else:
                from pimsim.explore._search import run_search

                run_search(spec, keys, runner.evaluate_batch)
                db.note_requests(spec.name, runner.requested.items(), only=True)
        finally:
            if runner is not None:
                runner.close()
            pool.close()
    result.wall_s = time.perf_counter() - start
    return result
