"""Where tasks run: in this process, a local process pool, or a Dask cluster.

Each executor takes the sweep's :class:`~pimsim.explore._worker.Context` once and yields
:class:`~pimsim.explore._worker.TaskResult` objects as tasks finish (in any order), keeping a
bounded number of tasks in flight so that results reach the store as they come.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import select
import signal
import sys
import threading
import time
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


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _set_parent_death_signal() -> bool:
    """Have the kernel SIGKILL this process when its parent ends (Linux ``prctl``); whether it
    could be set."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process now: the owner's pid was reused
        return False
    return True


def _watch_owner(owner: int, parent: int, server: bool) -> None:
    """Block until the process ``owner`` (or this process's ``parent``) ends, then end this
    process, and first the forkserver that is its parent when ``server``."""
    pidfd = None
    if hasattr(os, "pidfd_open"):
        try:
            pidfd = os.pidfd_open(owner)
        except ProcessLookupError:
            pidfd = -1  # already gone
        except OSError:  # kernel without pidfds
            pidfd = None
    while pidfd != -1:
        if pidfd is not None:
            if select.select([pidfd], [], [], 1.0)[0]:  # a pidfd reads once its process ends
                break
        else:
            time.sleep(0.5)
            if not _exists(owner):
                break
        if os.getppid() != parent:
            break
    if server and os.getppid() == parent != owner:
        try:  # the forkserver would outlive its owner as long as any of its children
            os.kill(parent, signal.SIGKILL)
        except OSError:
            pass
    os._exit(1)


def bind_to_owner(owner: int, *, pdeathsig: bool = True, server: bool = False) -> None:
    """Make this worker process end when the process ``owner`` (the sweep) ends, however it
    ends (SIGKILL included): on Linux the kernel kills it when its parent ends
    (``PR_SET_PDEATHSIG``, with ``pdeathsig``), and everywhere a daemon thread watches
    ``owner`` (a pidfd where there are pidfds, else a poll of the pid and of the parent pid) and
    exits the process once ``owner`` is gone. With ``server`` the parent is a forkserver of
    ``owner`` that the thread kills as well."""
    parent = os.getppid()
    if pdeathsig and _set_parent_death_signal() and os.getppid() != parent:
        os._exit(1)  # the parent ended before the signal was set
    threading.Thread(
        target=_watch_owner, args=(owner, parent, server), name="pimsim-owner-watch", daemon=True
    ).start()


def _init_pool_worker(owner: int, server: bool, ctx: Context) -> None:
    """A pool worker's start-up: bound to the sweep process, then given the context."""
    bind_to_owner(owner, server=server)
    init_process(ctx)


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
    inherit the parent's threads), each initialised with the context once. The workers end
    when this process ends, even when it is killed (:func:`bind_to_owner`); so does the
    forkserver."""

    def __init__(self, ctx: Context, workers: int) -> None:
        from concurrent.futures import ProcessPoolExecutor

        methods = multiprocessing.get_all_start_methods()
        mp = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        server = mp.get_start_method() == "forkserver"
        if server:
            mp.set_forkserver_preload(
                ["pimsim.explore._worker", "pimsim.explore._executor", "pimsim.cost"]
            )
        self.workers = workers
        self.pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=mp,
            initializer=_init_pool_worker,
            initargs=(os.getpid(), server, ctx),
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
            # Its worker processes are this process's children: bound to it like a pool's
            # (by the watching thread alone: the nanny starts them from threads of its own,
            # whose end would fire a parent-death signal).
            self.client.run(bind_to_owner, os.getpid(), pdeathsig=False)
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
