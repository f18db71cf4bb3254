"""Where tasks run: in this process, a local process pool, or a Dask cluster.

Each executor takes the sweep's :class:`~pimsim.explore._worker.Context` once and yields
:class:`~pimsim.explore._worker.TaskResult` objects as tasks finish (in any order), keeping a
bounded number of tasks in flight so that results reach the store as they come.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Iterable, Iterator

from pimsim.errors import PimsimError
from pimsim.explore._worker import Context, Task, TaskResult, init_process, run_in_process, run_task

EXECUTORS = ("local", "dask")


def default_workers() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class InlineExecutor:
    """Runs tasks one after the other in this process (``workers=0``: for debugging)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        init_process(ctx)

    def run(self, tasks: Iterable[Task]) -> Iterator[TaskResult]:
        """Yield each task's result."""
        for task in tasks:
            yield run_task(self.ctx, task)

    def close(self) -> None:
        """Nothing to release."""


class PoolExecutor:
    """A local pool of ``workers`` processes (forkserver where available, so workers never
    inherit the parent's threads), each initialised with the context once."""

    def __init__(self, ctx: Context, workers: int) -> None:
        from concurrent.futures import ProcessPoolExecutor

        methods = multiprocessing.get_all_start_methods()
        mp = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if mp.get_start_method() == "forkserver":
            mp.set_forkserver_preload(["pimsim.explore._worker", "pimsim.cost"])
        self.workers = workers
        self.pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=mp, initializer=init_process, initargs=(ctx,)
        )

    def run(self, tasks: Iterable[Task]) -> Iterator[TaskResult]:
        """Yield results as tasks finish, with at most 4 tasks per worker in flight."""
        from concurrent.futures import FIRST_COMPLETED, wait

        pending = iter(tasks)
        running = set()
        limit = 4 * self.workers
        while True:
            while len(running) < limit:
                task = next(pending, None)
                if task is None:
                    break
                running.add(self.pool.submit(run_in_process, task))
            if not running:
                return
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()

    def close(self) -> None:
        """Stop the worker processes (pending tasks are cancelled)."""
        self.pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """Tasks on a Dask cluster: the scheduler at ``address``, or a ``LocalCluster`` of
    ``workers`` single-threaded processes when none is given (``pip install -e ".[dask]"``)."""

    def __init__(self, ctx: Context, workers: int, address: str | None = None) -> None:
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise PimsimError(
                '--executor dask needs dask.distributed: pip install -e ".[dask]"'
            ) from None
        self.cluster = None
        if address:
            self.client = Client(address)
        else:
            self.cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            self.client = Client(self.cluster)
        self.workers = max(1, len(self.client.scheduler_info().get("workers", {})) or workers)
        self.client.run(init_process, ctx)  # every worker present now gets the context
        self.ctx = self.client.scatter(ctx, broadcast=True)

    def run(self, tasks: Iterable[Task]) -> Iterator[TaskResult]:
        """Yield results as tasks finish, with at most 4 tasks per worker in flight."""
        from dask.distributed import as_completed

        pending = iter(tasks)
        first = [
            self.client.submit(run_task, self.ctx, t, pure=False)
            for t in _take(pending, 4 * self.workers)
        ]
        done = as_completed(first)
        for future in done:
            yield future.result()
            nxt = next(pending, None)
            if nxt is not None:
                done.add(self.client.submit(run_task, self.ctx, nxt, pure=False))

    def close(self) -> None:
        """Close the client (and the LocalCluster it started)."""
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _take(iterator, n: int) -> list:
    out = []
    for _ in range(n):
        item = next(iterator, None)
        if item is None:
            break
        out.append(item)
    return out


def make_executor(ctx: Context, executor: str, workers: int, scheduler: str | None = None):
    """The executor named ``executor`` (``local`` or ``dask``); ``workers=0`` runs inline."""
    if executor not in EXECUTORS:
        raise PimsimError(f"unknown executor {executor!r} (known: {', '.join(EXECUTORS)})")
    if executor == "dask":
        return DaskExecutor(ctx, workers or 1, scheduler)
    if workers == 0:
        return InlineExecutor(ctx)
    return PoolExecutor(ctx, workers)
