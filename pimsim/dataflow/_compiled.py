"""The one-pass kernel on arrays, compiled with numba: what :func:`pimsim.dataflow.simulate`
runs by default.

Jobs are numpy arrays (duration in ps, resource or -1, optional stream) and predecessor edges
``(dst, src)`` in any order. :func:`run_arrays` computes :func:`pimsim.dataflow._kernel.
run_static`'s trace: the service order (depth, then index; a stable counting sort), then the
max-plus recurrence in that order. Integer arithmetic throughout, so the trace is exact and the
same as the reference event queue's (:func:`pimsim.dataflow._kernel.run`), which the tests
compare it with. Where numba cannot load, the same functions run as plain Python (slowly).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - numba is a dependency; plain Python as a last resort
    numba = None


def _probe():
    return 0


def _can_cache() -> bool:
    """Whether numba finds a writable place for its on-disk cache (a read-only install: the
    kernels compile in each process)."""
    try:
        numba.njit(cache=True)(_probe)
    except RuntimeError:
        return False
    return True


_CACHE = numba is not None and _can_cache()


def _jit(fn):
    """``numba.njit`` (with its on-disk cache where it can write one); plain Python without
    numba."""
    return fn if numba is None else numba.njit(cache=_CACHE, nogil=True)(fn)


@_jit
def _csr(n0, dst, src, samples, link_dst, link_src, group, grouped):
    """Predecessors of each job as compressed rows (``indptr``, ``indices``) for ``samples``
    copies of the ``n0`` jobs and their edges ``src -> dst`` (copy ``b`` shifted by ``b * n0``),
    plus, from copy 1 on, the links ``link_src -> link_dst`` (``link_src`` relative to the
    copy before). ``grouped``: keep only edges within one ``group``. Edges keep their order
    within a job; ``indptr[0]`` is -1 if an edge does not point backwards."""
    n = n0 * samples
    indptr = np.zeros(n + 1, np.int64)
    bad = False
    for e in range(dst.size):
        if src[e] >= dst[e]:
            bad = True
        if not grouped or group[dst[e]] == group[src[e]]:
            for b in range(samples):
                indptr[dst[e] + b * n0 + 1] += 1
    for e in range(link_dst.size):
        for b in range(1, samples):
            indptr[link_dst[e] + b * n0 + 1] += 1
    for j in range(n):
        indptr[j + 1] += indptr[j]
    fill = indptr[:-1].copy()
    indices = np.empty(indptr[n], np.int64)
    for b in range(samples):
        off = b * n0
        for e in range(dst.size):
            if not grouped or group[dst[e]] == group[src[e]]:
                d = dst[e] + off
                indices[fill[d]] = src[e] + off
                fill[d] += 1
        if b:
            for e in range(link_dst.size):
                d = link_dst[e] + off
                indices[fill[d]] = link_src[e] + off - n0
                fill[d] += 1
    if bad:
        indptr[0] = -1
    return indptr, indices


@_jit
def _run(duration, resource, indptr, indices, span_lo, span_hi, n_resources, stream,
         with_stream):
    n = duration.size
    # depth: one more than the deepest predecessor and the previous job of the same stream on
    # the same resource (streams come in non-decreasing order from the dataflow model: then
    # that job is the last one seen on the resource, else a map finds it)
    depth = np.zeros(n, np.int64)
    monotone = True
    for j in range(1, n):
        if with_stream and stream[j] < stream[j - 1]:
            monotone = False
            break
    last_job = np.full(n_resources, -1, np.int64)
    last_stream = np.full(n_resources, -1, np.int64)
    seen = {}
    seen[np.int64(-1)] = np.int64(-1)
    for j in range(n):
        d = 0
        for e in range(indptr[j], indptr[j + 1]):
            dp = depth[indices[e]] + 1
            if dp > d:
                d = dp
        for p in range(span_lo[j], span_hi[j]):
            dp = depth[p] + 1
            if dp > d:
                d = dp
        r = resource[j]
        if with_stream and r >= 0:
            prev = -1
            if monotone:
                if last_stream[r] == stream[j]:
                    prev = last_job[r]
                last_stream[r] = stream[j]
                last_job[r] = j
            else:
                key = stream[j] * n_resources + r
                if key in seen:
                    prev = seen[key]
                seen[key] = j
            if prev >= 0 and depth[prev] + 1 > d:
                d = depth[prev] + 1
        depth[j] = d
    # service order: by depth, then index (stable counting sort)
    top = 0
    for j in range(n):
        if depth[j] > top:
            top = depth[j]
    slot = np.zeros(top + 2, np.int64)
    for j in range(n):
        slot[depth[j] + 1] += 1
    for d in range(top + 1):
        slot[d + 1] += slot[d]
    order = np.empty(n, np.int64)
    for j in range(n):
        order[slot[depth[j]]] = j
        slot[depth[j]] += 1
    rank = np.empty(n, np.int64)
    for i in range(n):
        rank[order[i]] = i
    # the max-plus recurrence in service order
    start = np.zeros(n, np.int64)
    finish = np.zeros(n, np.int64)
    cause = np.full(n, -1, np.int64)
    last_on = np.full(n_resources, -1, np.int64)
    for i in range(n):
        j = order[i]
        c = -1
        ready = 0
        for e in range(indptr[j], indptr[j + 1]):
            p = indices[e]
            f = finish[p]
            if c < 0 or f > ready or (f == ready and rank[p] > rank[c]):
                c = p
                ready = f
        for p in range(span_lo[j], span_hi[j]):
            f = finish[p]
            if c < 0 or f > ready or (f == ready and rank[p] > rank[c]):
                c = p
                ready = f
        t = ready
        r = resource[j]
        if r >= 0:
            prev = last_on[r]
            if prev >= 0 and finish[prev] > ready:
                t = finish[prev]
                c = prev
            last_on[r] = j
        start[j] = t
        finish[j] = t + duration[j]
        cause[j] = c
    return start, finish, cause


@_jit
def _expand(t_dur, t_res, t_cls, t_stage, t_lo, t_hi, plan, total):
    """Jobs of every layer's chunks from the layers' templates: ``plan`` rows are (first job,
    chunks, layer, offset and length of chunk 0's template, of later chunks' template); a
    template row is one job (duration, resource, class, stage, span relative to its chunk)."""
    duration = np.empty(total, np.int64)
    resource = np.empty(total, np.int64)
    layer = np.empty(total, np.int32)
    cls = np.empty(total, np.int16)
    stage = np.empty(total, np.int16)
    span_lo = np.empty(total, np.int64)
    span_hi = np.empty(total, np.int64)
    for row in range(plan.shape[0]):
        j = plan[row, 0]
        for r in range(plan[row, 1]):
            off = plan[row, 3] if r == 0 else plan[row, 5]
            length = plan[row, 4] if r == 0 else plan[row, 6]
            chunk = j
            for t in range(off, off + length):
                duration[j] = t_dur[t]
                resource[j] = t_res[t]
                layer[j] = plan[row, 2]
                cls[j] = t_cls[t]
                stage[j] = t_stage[t]
                span_lo[j] = chunk + t_lo[t]
                span_hi[j] = chunk + t_hi[t]
                j += 1
    return duration, resource, layer, cls, stage, span_lo, span_hi


def expand(templates: dict, plan: list, total: int) -> tuple:
    """:func:`_expand` on lists: ``templates`` maps ``dur``, ``res``, ``cls``, ``stage``,
    ``lo``, ``hi`` to one list each; ``plan`` is a list of 7-tuples."""
    t = [np.asarray(templates[k], np.int64) for k in ("dur", "res", "cls", "stage", "lo", "hi")]
    return _expand(*t, np.asarray(plan, np.int64).reshape(-1, 7), total)


@dataclass(frozen=True)
class ArrayTrace:
    """Start, finish and cause of every job (int64 arrays, ps); ``events``: jobs served."""

    start: np.ndarray
    finish: np.ndarray
    cause: np.ndarray
    events: int


def run_arrays(
    duration: np.ndarray,
    resource: np.ndarray,
    dst: np.ndarray,
    src: np.ndarray,
    n_resources: int,
    stream: np.ndarray | None = None,
    *,
    samples: int = 1,
    links: tuple[np.ndarray, np.ndarray] | None = None,
    group: np.ndarray | None = None,
    spans: tuple[np.ndarray, np.ndarray] | None = None,
) -> ArrayTrace:
    """Start and finish times of jobs ``0..n-1`` (see :func:`pimsim.dataflow._kernel.run` for
    the service order): ``duration`` (ps) and ``resource`` (-1: a pure delay) per job, an edge
    ``src -> dst`` per predecessor (``src < dst``), ``stream`` per job or None.

    ``samples`` > 1: ``duration``, ``resource`` and the edges describe one sample, and the run
    is of that many copies one after another in job order (copy ``b``'s jobs and edges shifted
    by ``b x`` jobs, its stream by ``b x (max stream + 1)``), with ``links`` ``(dst, src)``
    from copy 1 on (``src`` counted from the copy before: e.g. sinks of one sample before the
    sources of the next). ``group`` (per job): drop the edges between jobs of two groups.
    ``spans`` ``(lo, hi)`` per job: jobs ``lo .. hi - 1`` are predecessors too (a stage waiting
    for every job of the stage before, without an edge for each pair); they must be in the job's
    group."""
    duration = np.ascontiguousarray(duration, np.int64)
    resource = np.ascontiguousarray(resource, np.int64)
    n0 = duration.size
    empty = np.zeros(0, np.int64)
    link_dst, link_src = links if links is not None else (empty, empty)
    grouped = group is not None
    indptr, indices = _csr(
        n0, np.ascontiguousarray(dst, np.int64), np.ascontiguousarray(src, np.int64), samples,
        np.ascontiguousarray(link_dst, np.int64), np.ascontiguousarray(link_src, np.int64),
        np.ascontiguousarray(group, np.int64) if grouped else empty, grouped,
    )
    if n0 and indptr[0] < 0:
        raise ValueError("a job has a predecessor that is not earlier")
    if spans is None:
        lo = hi = np.zeros(n0, np.int64)
    else:
        lo, hi = (np.ascontiguousarray(v, np.int64) for v in spans)
        if np.any((hi > lo) & (hi > np.arange(n0))):
            raise ValueError("a job has a predecessor that is not earlier")
    with_stream = stream is not None
    streams = np.ascontiguousarray(stream, np.int64) if with_stream else empty
    if samples > 1:
        duration, resource = np.tile(duration, samples), np.tile(resource, samples)
        shift = (n0 * np.arange(samples, dtype=np.int64))[:, None]
        lo, hi = (lo[None, :] + shift).ravel(), (hi[None, :] + shift).ravel()
        if with_stream:
            width = int(streams.max()) + 1 if n0 else 1
            streams = (streams[None, :] + width * np.arange(samples)[:, None]).ravel()
    start, finish, cause = _run(duration, resource, indptr, indices, lo, hi,
                                max(1, int(n_resources)),
                                streams if with_stream else np.zeros(1, np.int64),
                                with_stream)
    return ArrayTrace(start, finish, cause, duration.size)


def edges_of(preds: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Predecessor lists as ``(dst, src)`` edge arrays."""
    counts = np.fromiter((len(p) for p in preds), np.int64, len(preds))
    dst = np.repeat(np.arange(len(preds), dtype=np.int64), counts)
    src = np.fromiter((p for ps in preds for p in ps), np.int64, int(counts.sum()))
    return dst, src


def preds_of(n: int, dst: np.ndarray, src: np.ndarray) -> list[list[int]]:
    """Edge arrays as predecessor lists (edges of a job in their given order)."""
    out: list[list[int]] = [[] for _ in range(n)]
    for d, s in zip(dst.tolist(), src.tolist(), strict=True):
        out[d].append(s)
    return out
