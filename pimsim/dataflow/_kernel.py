"""The event kernel: jobs on unit-capacity resources, a heap keyed ``(time, priority, sequence)``
(:func:`run`, the reference), and :func:`run_static`, the same trace in one pass (compiled:
:mod:`pimsim.dataflow._compiled`, what :func:`pimsim.dataflow.simulate` runs).

Time is an integer number of **picoseconds** (:data:`PS_PER_NS` per ns), so sums and maxima of
durations are exact and two runs give identical traces.

A job has a duration, at most one resource and predecessors. It becomes *ready* when its last
predecessor finishes and starts when it is ready, its resource is free and every job before it
in the resource's fixed order (dependency depth, then job index; see :func:`run`) has started.
A job without a resource is a pure delay. All events of one instant are applied before any
resource is dispatched, so simultaneous events leave in job order whatever order they were
pushed in.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np

PS_PER_NS = 1000


def to_ps(ns: float) -> int:
    """Nanoseconds to whole picoseconds, rounded up (a non-zero time never becomes 0)."""
    return max(0, math.ceil(ns * PS_PER_NS - 1e-9))


@dataclass
class Trace:
    """What one run of :func:`run` produced, indexed by job."""

    start: list[int]
    finish: list[int]
    cause: list[int]
    """The job whose finish let this job start: the job before it on its resource when it had
    to wait for the resource, else its last predecessor to finish (:func:`last_predecessor`);
    -1 for a job that started at time 0 without predecessors."""
    events: int


def service_order(
    resource: list[int], preds: list[list[int]], stream: list[int] | None = None
) -> list[int]:
    """Jobs sorted by (depth, index): the order in which each resource serves its jobs (see
    :func:`run`). Every predecessor of a job, and the job before it on its resource, comes
    earlier, so it is also an order in which finish times can be computed one job at a time."""
    n = len(preds)
    depth = [0] * n
    previous: dict[tuple[int, int], int] = {}
    for j, ps in enumerate(preds):
        d = 0
        for p in ps:
            if p >= j:
                raise ValueError(f"job {j} has a predecessor {p} that is not earlier")
            if depth[p] >= d:
                d = depth[p] + 1
        if resource[j] >= 0:
            key = (stream[j] if stream is not None else -1 - j, resource[j])
            if key in previous and depth[previous[key]] >= d:
                d = depth[previous[key]] + 1
            previous[key] = j
        depth[j] = d
    return sorted(range(n), key=depth.__getitem__)  # stable: ties keep index order


def last_predecessor(preds: list[int], finish: list[int], rank: list[int]) -> int:
    """The predecessor that made a job ready: the last to finish, and of several finishing at
    that instant the one served last (highest ``rank`` in :func:`service_order`); -1 if none."""
    c = -1
    for p in preds:
        if c < 0 or finish[p] > finish[c] or (finish[p] == finish[c] and rank[p] > rank[c]):
            c = p
    return c


def run_static(
    duration: list[int],
    resource: list[int],
    preds: list[list[int]],
    n_resources: int,
    stream: list[int] | None = None,
) -> Trace:
    """:func:`run`'s trace without an event queue. As each resource serves its jobs in a fixed
    order (:func:`service_order`), a job starts at the later of its last predecessor's finish
    and the finish of the job before it on its resource, a max-plus recurrence computed in
    that order in one pass (compiled: :func:`pimsim.dataflow._compiled.run_arrays`). The cause
    of a job is :func:`run`'s: the job before it on its resource when that finished after the
    job was ready, else :func:`last_predecessor`."""
    from pimsim.dataflow._compiled import edges_of, run_arrays

    dst, src = edges_of(preds)
    trace = run_arrays(
        np.asarray(duration, np.int64), np.asarray(resource, np.int64), dst, src, n_resources,
        None if stream is None else np.asarray(stream, np.int64),
    )
    return Trace(trace.start.tolist(), trace.finish.tolist(), trace.cause.tolist(), trace.events)


def run(
    duration: list[int],
    resource: list[int],
    preds: list[list[int]],
    n_resources: int,
    stream: list[int] | None = None,
) -> Trace:
    """Simulate jobs ``0..n-1`` and return their start and finish times.

    Predecessors must have lower indices than their successors. Each resource serves its jobs
    in one fixed order: by depth, then by index. A job's depth is one more than the deepest of
    its predecessors and of the previous job of its ``stream`` on its resource (a stream is,
    e.g., the chunks of one layer, which a resource serves in order): the wavefront of a
    pipeline, so that layers sharing a resource interleave their chunks. The order does not
    depend on any duration, so every finish time is a max-plus expression of the durations:
    shortening a job (a faster ADC, a wider buffer or link) can never delay any other job.
    """
    n = len(duration)
    succs: list[list[int]] = [[] for _ in range(n)]
    waiting = [len(ps) for ps in preds]
    for j, ps in enumerate(preds):
        for p in ps:
            succs[p].append(j)
    order = service_order(resource, preds, stream)
    rank = [0] * n
    sequence: list[list[int]] = [[] for _ in range(n_resources)]
    for i, j in enumerate(order):
        rank[j] = i
        if resource[j] >= 0:
            sequence[resource[j]].append(j)
    head = [0] * n_resources
    start = [-1] * n
    finish = [-1] * n
    cause = [-1] * n
    ready = [False] * n
    ready_at = [0] * n
    busy = [False] * n_resources
    last_on = [-1] * n_resources
    events: list[tuple[int, int, int]] = []  # (time, priority = job, sequence)
    seq = 0
    count = 0
    push, pop = heapq.heappush, heapq.heappop
    touched: set[int] = set()

    def begin(j: int, t: int) -> None:
        nonlocal seq
        start[j] = t
        finish[j] = t + duration[j]
        seq += 1
        push(events, (finish[j], j, seq))

    def make_ready(j: int, t: int) -> None:
        ready_at[j] = t
        ready[j] = True
        r = resource[j]
        if r < 0:
            begin(j, t)
        else:
            touched.add(r)

    for j in range(n):
        if waiting[j] == 0:
            make_ready(j, 0)
    now = 0
    while True:
        for r in sorted(touched):
            if busy[r] or head[r] >= len(sequence[r]):
                continue
            j = sequence[r][head[r]]
            if not ready[j]:
                continue
            head[r] += 1
            busy[r] = True
            if last_on[r] >= 0 and finish[last_on[r]] > ready_at[j]:
                cause[j] = last_on[r]
            last_on[r] = j
            begin(j, now)
        touched.clear()
        if not events:
            break
        now = events[0][0]
        while events and events[0][0] == now:
            _, j, _ = pop(events)
            count += 1
            r = resource[j]
            if r >= 0:
                busy[r] = False
                touched.add(r)
            for s in succs[j]:
                waiting[s] -= 1
                if waiting[s] == 0:
                    cause[s] = last_predecessor(preds[s], finish, rank)
                    make_ready(s, now)
    if any(f < 0 for f in finish):
        raise RuntimeError("dataflow: some jobs never ran")
    return Trace(start, finish, cause, count)


def max_plus_chain(durations: list[list[int]], needs: list[list[int]]) -> list[list[int]]:
    """Closed form of a linear chain of layers with one resource each and nothing else shared:
    chunk ``j`` of layer ``i`` finishes at ``f[i][j] = max(f[i][j-1], f[i-1][needs[i][j]]) +
    d[i][j]`` (the max-plus recurrence), where ``needs[i][j]`` is the last chunk of layer
    ``i - 1`` it reads and the chunks of one layer leave in order (producer chunks that finish in
    order make "all chunks up to k" the same as "chunk k")."""
    out: list[list[int]] = []
    for i, ds in enumerate(durations):
        row: list[int] = []
        prev = 0
        for j, d in enumerate(ds):
            ready = out[i - 1][needs[i][j]] if i else 0
            prev = max(prev, ready) + d
            row.append(prev)
        out.append(row)
    return out
