"""Fused CPU kernels for the oracle's elementwise steps, compiled with numba.

Each kernel does in one pass over memory what the torch expressions of
:mod:`pimsim.oracle._layers` and :mod:`pimsim.oracle._engine` do in several (on CPU every torch
operation reads and writes a whole tensor, and the float64 ADC division alone costs four such
passes from float32 partial sums). The torch expressions remain the implementation on every other
device, on ``meta`` and for the dtypes the kernels do not take; the tests hold both to the same
results:

* :func:`quantize_rows`: integer inputs clip(round_half_even(x / s)) with s rounded to float32 (as
  ``torch.div`` of a float32 tensor computes), their sums per row and matrix (the ``offset``
  correction) and their number of non-zeros (activity), exactly;
* :func:`adc_codes_`: ADC codes clip(round_half_even(p / step)), p / step in float64 (DESIGN.md
  'ADC range'), in place;
* :func:`finish`: the digital units after the ADC (optionally the ADC itself): codes x step plus
  the corrections, times input scale x weight scale, plus bias, in float64, rounded once.

Integer sums are accumulated in float32 only while they stay below 2^24 (exact in any order, which
lets the compiler vectorize them), else in float64. Division is never replaced by a reciprocal
multiplication (numba's ``fastmath`` is limited to reassociation) and nothing is contracted into a
fused multiply-add, so the rounding is the one the conventions fix.

Each kernel is a row function inlined into two loops over the rows: serial, and parallel on numba's
threads (as many as torch uses) for tensors of :data:`PARALLEL_MIN` elements or more; below that,
waking the threads costs more than it saves. The kernels are compiled on first use (about a second
each) and cached on disk by numba where it finds a writable place. ``PIMSIM_KERNELS=0`` in the
environment (or :data:`ENABLED` set to False) runs the torch expressions on CPU too.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from pimsim.oracle._engine import EXACT_FLOAT32

ENABLED = True  # False: the torch operations on CPU too (PIMSIM_KERNELS=0 never imports this)

PARALLEL_MIN = 1 << 20  # elements from which a kernel runs its parallel loop
FLOATS = (torch.float32, torch.float64)


def _cache_probe():
    return 0


def _can_cache() -> bool:
    """Whether numba finds a writable place for its on-disk cache (beside this file, or the
    user's cache folder); without one (a read-only install) the kernels compile in each process."""
    try:
        numba.njit(cache=True)(_cache_probe)
    except RuntimeError:
        return False
    return True


# Only reassociation is allowed (vectorized sums of integers, exact below 2^24 in any order).
_JIT = dict(cache=_can_cache(), fastmath={"reassoc"})


def usable(t: torch.Tensor) -> bool:
    """Whether the kernels can take ``t``: kernels enabled, a CPU tensor of float32 or float64."""
    return ENABLED and t.is_cpu and t.dtype in FLOATS


def _parallel(elements: int) -> bool:
    """Whether to run the parallel loop; sets numba's threads to torch's (so that
    ``torch.set_num_threads`` applies to both)."""
    if elements < PARALLEL_MIN:
        return False
    threads = min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)
    if threads < 2:
        return False
    numba.set_num_threads(threads)
    return True


@numba.njit(inline="always", **_JIT)
def _quantize_row(x, r, k, scale, lo, hi, out, sums, zero):
    s, low, high = np.float32(scale), np.float32(lo), np.float32(hi)
    xr, outr = x[r], out[r]  # 1-D rows: simple indexing that the compiler vectorizes
    nonzeros = 0
    for m in range(sums.shape[1]):
        base = m * k
        total = zero
        active = np.float32(0.0)
        for i in range(k):
            v = np.rint(xr[base + i] / s)
            v = low if v < low else (high if v > high else v)  # NaN stays NaN, as in torch
            outr[base + i] = v
            total += v
            active += np.float32(v > 0) + np.float32(v < 0)  # NaN counts as zero, as sign()
        sums[r, m] = total
        nonzeros += int(active)
    return nonzeros


@numba.njit(**_JIT)
def _quantize_serial(x, k, scale, lo, hi, out, sums, zero):
    nonzeros = 0
    for r in range(x.shape[0]):
        nonzeros += _quantize_row(x, r, k, scale, lo, hi, out, sums, zero)
    return nonzeros


@numba.njit(parallel=True, **_JIT)
def _quantize_parallel(x, k, scale, lo, hi, out, sums, zero):
    nonzeros = 0
    for r in numba.prange(x.shape[0]):
        nonzeros += _quantize_row(x, r, k, scale, lo, hi, out, sums, zero)
    return nonzeros


def quantize_rows(
    x: torch.Tensor, scale: float, lo: int, hi: int, k: int
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Integer inputs of the float32 rows ``x`` [R, M * k]: clip(round_half_even(x / s), lo, hi)
    with s = float32(``scale``); also their sums [R, M] per row and matrix (float32 while exact,
    else float64) and the number of non-zero integers."""
    rows, width = x.shape
    out = torch.empty(rows, width)
    exact = k * max(-lo, hi) < EXACT_FLOAT32
    sums = torch.empty(rows, width // k, dtype=torch.float32 if exact else torch.float64)
    kernel = _quantize_parallel if _parallel(rows * width) else _quantize_serial
    zero = np.float32(0.0) if exact else 0.0
    nonzeros = kernel(x.numpy(), k, scale, lo, hi, out.numpy(), sums.numpy(), zero)
    return out, sums, nonzeros


@numba.njit(inline="always", **_JIT)
def _adc_row(p, r, step, lo, hi):
    pr = p[r]
    for c in range(pr.shape[0]):
        code = np.rint(np.float64(pr[c]) / step)
        pr[c] = lo if code < lo else (hi if code > hi else code)


@numba.njit(**_JIT)
def _adc_serial(p, step, lo, hi):
    for r in range(p.shape[0]):
        _adc_row(p, r, step, lo, hi)


@numba.njit(parallel=True, **_JIT)
def _adc_parallel(p, step, lo, hi):
    for r in numba.prange(p.shape[0]):
        _adc_row(p, r, step, lo, hi)


def adc_codes_(partial: torch.Tensor, step: float, lo: int, hi: int) -> torch.Tensor:
    """ADC codes of the contiguous partial sums, in place: clip(round_half_even(p / step), lo,
    hi), the division in float64 whatever the dtype of ``partial``."""
    flat = partial.numpy().reshape(-1, partial.shape[-1])
    kernel = _adc_parallel if _parallel(flat.size) else _adc_serial
    kernel(flat, float(step), float(lo), float(hi))
    return partial


# The digital units after the ADC, per output (row r, matrix m, column n):
#   out = (code x step + coef x (sums[r, m] + shift) + cols[m, n]) x s x w[m, n] + bias[m, n]
# with code = clip(round_half_even(value / step)) when ``adc``, else the value itself.


@numba.njit(inline="always", **_JIT)
def _finish_row(v, r, adc, lo, hi, step, sums, coef, shift, cols, s, w, bias, out):
    for m in range(v.shape[1]):
        row = coef * (np.float64(sums[r, m]) + shift)
        vm, om, cm, wm, bm = v[r, m], out[r, m], cols[m], w[m], bias[m]
        if adc:
            for n in range(vm.shape[0]):
                code = np.rint(np.float64(vm[n]) / step)
                code = lo if code < lo else (hi if code > hi else code)
                om[n] = (code * step + row + cm[n]) * (s * wm[n]) + bm[n]
        else:
            for n in range(vm.shape[0]):
                om[n] = (np.float64(vm[n]) * step + row + cm[n]) * (s * wm[n]) + bm[n]


@numba.njit(**_JIT)
def _finish_serial(v, adc, lo, hi, step, sums, coef, shift, cols, s, w, bias, out):
    for r in range(v.shape[0]):
        _finish_row(v, r, adc, lo, hi, step, sums, coef, shift, cols, s, w, bias, out)


@numba.njit(parallel=True, **_JIT)
def _finish_parallel(v, adc, lo, hi, step, sums, coef, shift, cols, s, w, bias, out):
    for r in numba.prange(v.shape[0]):
        _finish_row(v, r, adc, lo, hi, step, sums, coef, shift, cols, s, w, bias, out)


def finish(
    values: torch.Tensor,
    code_range: tuple[int, int] | None,
    step: float,
    row_terms: tuple[torch.Tensor, int, int] | None,
    col_terms: torch.Tensor | None,
    scale: float,
    weight_scale: torch.Tensor,
    bias: torch.Tensor | None,
    dtype: torch.dtype,
) -> torch.Tensor:
    """The digital units' work on [R, M, N] ``values`` in one pass, in float64, rounded once to
    ``dtype`` [R, M * N]: codes c = clip(round_half_even(v / step), code_range) when a
    ``code_range`` is given (else the values are codes already), then (c x step + coef x (sums
    [R, M] + shift) + col_terms [M, N]) x (``scale`` x weight_scale [M, N]) + bias [M, N], with
    ``row_terms`` = (sums, coef, shift); a missing term counts as zero."""
    rows, m, n = values.shape
    if row_terms is None:
        sums, coef, shift = np.zeros((rows, m), np.float32), 0, 0
    else:
        sums, coef, shift = row_terms[0].numpy().reshape(rows, m), *row_terms[1:]
    out = torch.empty(rows, m * n, dtype=dtype)
    lo, hi = code_range or (0, 0)
    kernel = _finish_parallel if _parallel(rows * m * n) else _finish_serial
    kernel(
        values.numpy(), code_range is not None, float(lo), float(hi), step, sums, float(coef),
        float(shift), _matrix(col_terms, m, n), float(scale), _matrix(weight_scale, m, n),
        _matrix(bias, m, n), out.numpy().reshape(rows, m, n),
    )  # fmt: skip
    return out


def _matrix(t: torch.Tensor | None, m: int, n: int) -> np.ndarray:
    """``t`` as an [m, n] float32 or float64 array (a missing term: zeros); the kernel reads it in
    float64."""
    if t is None:
        return np.zeros((m, n))
    return (t if t.dtype in FLOATS else t.to(torch.float64)).numpy().reshape(m, n)


# PIM-QAT's straight-through terms of the ADC (pimsim.training._pimqat, ``_through_adc``), per
# partial sum p of the 5-d view [M, G, C, B, Q] (Q = polarities x slices x columns):
#   u = float32(p) / step (float32), in range: lo <= u <= hi;
#   sums[m, g, b, q % N'] += a[c, q] where u is in range (a: shift-and-add magnitudes, powers of
#   two, so the float32 sums are exact in any order);
#   grad = lo where u < lo, hi where u > hi, else rint(u) - u (float32), when asked for.


@numba.njit(inline="always", **_JIT)
def _ste_row(p, i, steps, a, lo, hi, sums, grad, want_grad):
    gs, bs = p.shape[1], p.shape[3]
    m = i // (gs * bs)
    g = (i // bs) % gs
    b = i % bs
    low, high = np.float32(lo), np.float32(hi)
    cols = sums.shape[3]
    out = sums[m, g, b]
    for n in range(cols):
        out[n] = np.float32(0.0)
    for c in range(p.shape[2]):
        pr, sr, ar = p[m, g, c, b], steps[m, c], a[c]
        for q in range(pr.shape[0]):
            u = np.float32(pr[q]) / sr[q]
            inside = u >= low and u <= high
            if inside:
                out[q % cols] += ar[q]
            if want_grad:
                grad[m, g, c, b, q] = low if u < low else (high if u > high else np.rint(u) - u)


@numba.njit(**_JIT)
def _ste_serial(p, steps, a, lo, hi, sums, grad, want_grad):
    for i in range(p.shape[0] * p.shape[1] * p.shape[3]):
        _ste_row(p, i, steps, a, lo, hi, sums, grad, want_grad)


@numba.njit(parallel=True, **_JIT)
def _ste_parallel(p, steps, a, lo, hi, sums, grad, want_grad):
    for i in numba.prange(p.shape[0] * p.shape[1] * p.shape[3]):
        _ste_row(p, i, steps, a, lo, hi, sums, grad, want_grad)


def ste_terms(
    partial: torch.Tensor,
    shape5: tuple[int, int, int, int, int],
    columns: int,
    steps: torch.Tensor,
    weights: torch.Tensor,
    code_range: tuple[int, int],
    want_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One pass over the contiguous partial sums ``partial`` (viewed as ``shape5`` = [M, G, C,
    B, Q], Q = P x S x ``columns``): the in-range sums [M, G, B, columns] (float32) of the
    shift-and-add magnitudes ``weights`` [C, Q] over (C, P, S), and, if ``want_grad``, the LSQ
    step gradients [M, G, C, B, Q] (float32), with the partial sums divided by the float32
    ``steps`` [M, C, Q] (see the comment above)."""
    m, g, c, b, q = shape5
    p = partial.numpy().reshape(shape5)
    sums = torch.empty(m, g, b, columns, dtype=torch.float32)
    grad = torch.empty(shape5, dtype=torch.float32) if want_grad else torch.empty(1, 1, 1, 1, 1)
    kernel = _ste_parallel if _parallel(p.size) else _ste_serial
    lo, hi = code_range
    kernel(p, steps.numpy(), weights.numpy(), float(lo), float(hi), sums.numpy(), grad.numpy(),
           want_grad)
    return sums, grad if want_grad else None
