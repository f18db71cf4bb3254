"""The PIM matrix-vector engine: what the mapped crossbars compute, as batched tensor algebra.

For one mapped matrix (DESIGN.md primer and Conventions):

* quantized inputs (integers) are split into input cycles of ``dac.bits`` bits, unsigned, two's
  complement over cycles (signed, 1-bit DAC: the most significant cycle weighs -2^(b-1)) or offset
  (signed, multi-bit DAC: input + 2^(b-1), the bias times the weight column sums removed digitally);
* quantized weights are split into cell slices of ``cell.bits`` bits with the signed encoding:
  ``offset`` (stored w + 2^(b-1) - 1, the bias times the input sum removed digitally),
  ``twos_complement`` (1-bit cells, most significant slice weighs -2^(b-1)), ``differential_analog``
  (magnitude in a positive or negative cell, subtracted before one bipolar conversion) or
  ``differential_digital`` (each polarity converted on its own);
* rows are laid out as the mapping tiles them (row tiles filled first, or each kernel position's
  rows on their own with ``mapping.kernel_rows: per_position``; row groups of
  ``rows_per_adc_read`` contiguous in a tile); every (row group, input cycle, slice, column)
  partial sum passes through the ADC: code = clip(round_half_even(p / step)), step = max(1, FS /
  code range), FS = rows_per_adc_read x (2^cell_bits - 1) x (2^dac_bits - 1) at full scale, or
  the calibrated range (one per layer, or one per column, per significance (input cycle x weight
  slice) or both: ``adc.range_granularity``);
* codes are recombined by shift-and-add in float64 (with one step per layer the codes are added
  and the sum is multiplied by the step once; with finer ranges each code is multiplied by its
  own step before the shift-and-add);
* with ``offset`` weights and ``offset_reference: column`` each column tile (each array) has a
  reference column whose cells hold the offset's slices (:mod:`pimsim.mapping`): it is laid out
  after the N logical columns, converted like them (its own range group where the granularity
  gives columns their own) and recombined like them, and its result is subtracted from the
  results of its tile's columns (the digital units' work; with an ADC that resolves every level
  the difference is exactly the digital offset correction).

No Python loop runs over bits, slices or row groups: one batched product computes every partial
sum ([row groups, cycles x samples, rows per read] x [row groups, rows per read, slices x
columns]), one fused in-place step quantizes them all, and one contraction recombines them.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
import os
import warnings
from dataclasses import dataclass
from functools import cached_property

import torch

from pimsim.errors import SpecError
from pimsim.spec._arch import DIFFERENTIAL

EXACT_FLOAT32 = 2**24  # integers below this are exact in float32 (DESIGN.md 'exactness')


@dataclass(frozen=True)
class EnginePlan:
    """Everything fixed at conversion time for one mapped layer (read from the mapping)."""

    matrices: int  # separately mapped matrices (groups, or 1 when packed)
    k_rows: int  # rows of one matrix
    n_cols: int  # logical columns of one matrix
    row_index: torch.Tensor  # [row groups, rows per read] -> matrix row, k_rows = zero padding
    input_bits: int
    dac_bits: int
    weight_bits: int
    cell_bits: int
    encoding: str
    signed_inputs: bool
    adc_bits: int
    full_scale: float  # nominal: the largest partial sum the cells and DACs can produce
    bipolar: bool
    adc_full_scale: float = 0.0  # the range the ADC spans (nominal, or calibrated)
    granularity: str = "layer"  # adc.range_granularity: what shares one calibrated range
    adc_steps: torch.Tensor | None = None  # per-group steps [M, 1, C|1, 1, P|1, S|1, N'|1]
    references: int = 0  # reference columns per matrix (one per column tile), laid out after N
    tile_cols: int = 0  # logical columns per column tile (the last tile may hold fewer)

    @property
    def columns(self) -> int:
        """Converted (logical) columns per matrix: the N columns, then the reference columns."""
        return self.n_cols + self.references

    @property
    def output_step(self) -> float:
        """What the recombined result of :func:`pim_matmul` is multiplied by to give column
        values: the step with one range per layer (the codes were added as integers), 1 with
        finer ranges (each code was multiplied by its own step before the shift-and-add)."""
        return 1.0 if self.adc_steps is not None else self.step

    @cached_property
    def unit_plan(self) -> EnginePlan:
        """This plan with a step of 1 (the ADC spans the code range itself): converts partial
        sums already divided by their group's step."""
        return dataclasses.replace(
            self, adc_full_scale=float(self.code_range[1]), adc_steps=None
        )

    @cached_property
    def polarities(self) -> int:
        """Conversions per (slice, column) pair: 2 for ``differential_digital``, else 1."""
        return 2 if self.encoding == "differential_digital" else 1

    @cached_property
    def slices(self) -> int:
        """Weight slices per weight."""
        return len(slice_weights(self))

    @property
    def row_groups(self) -> int:
        """Row groups (ADC reads) per matrix per input cycle, summed over row tiles."""
        return self.row_index.shape[0]

    @cached_property
    def cycles(self) -> int:
        """Input cycles: ceil(input_bits / dac_bits)."""
        return math.ceil(self.input_bits / self.dac_bits)

    @cached_property
    def code_range(self) -> tuple[int, int]:
        """Smallest and largest ADC code."""
        if self.bipolar:
            top = 2 ** (self.adc_bits - 1) - 1
            return -top, top
        return 0, 2**self.adc_bits - 1

    @cached_property
    def step(self) -> float:
        """Partial-sum units per ADC code: max(1, ADC range / largest code) (DESIGN.md 'ADC
        range'); an ADC never resolves finer than one unit level."""
        return max(1.0, self.adc_full_scale / self.code_range[1])

    @cached_property
    def sum_dtype(self) -> torch.dtype:
        """dtype of the partial sums: float32 is exact while the full scale stays below 2^24
        (DESIGN.md 'exactness'), float64 above."""
        return torch.float64 if self.full_scale >= EXACT_FLOAT32 else torch.float32

    @cached_property
    def direct(self) -> bool:
        """Whether each output is one ADC conversion of one dense float32 product (full scale
        below 2^24), less its tile's reference conversion where there is one: one matrix, one row
        group (its rows in order, then any padding), one input cycle of unsigned inputs, one cell
        slice of weight 1, one polarity (the layers' CPU fast path)."""
        return (
            self.sum_dtype == torch.float32
            and self.matrices == 1
            and self.row_groups == 1
            and self.cycles == 1
            and not self.signed_inputs
            and self.shift_add == ((1.0,), (1.0,))
            and self.encoding not in DIFFERENTIAL
            and self.adc_steps is None
        )

    @cached_property
    def shift_add(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(:func:`slice_weights`, :func:`cycle_weights`), computed once."""
        return tuple(slice_weights(self)), tuple(cycle_weights(self))


def make_plan(arch, layer_mapping, signed_inputs: bool) -> EnginePlan:
    """Build the plan of one layer from the spec and its :class:`~pimsim.mapping.LayerMapping`."""
    dec = arch.decomposition
    rpr = layer_mapping.rows_per_adc_read
    index = []
    # row tiles as the mapping lays them out (filled first, or per kernel position); row
    # groups contiguous within a tile
    for tile in layer_mapping.tile_rows():
        for g0 in range(0, len(tile), rpr):
            rows = list(tile[g0 : g0 + rpr])
            index.append(rows + [layer_mapping.k_rows] * (rpr - len(rows)))
    bipolar = dec.signed_encoding == "differential_analog"
    full_scale = rpr * (2**arch.cell.bits - 1) * (2**arch.dac.bits - 1)
    return EnginePlan(
        matrices=layer_mapping.matrices,
        k_rows=layer_mapping.k_rows,
        n_cols=layer_mapping.n_cols,
        row_index=torch.tensor(index, dtype=torch.long),
        input_bits=dec.input_bits,
        dac_bits=arch.dac.bits,
        weight_bits=dec.weight_bits,
        cell_bits=arch.cell.bits,
        encoding=dec.signed_encoding,
        signed_inputs=signed_inputs,
        adc_bits=arch.adc.bits,
        full_scale=float(full_scale),
        adc_full_scale=float(full_scale),
        bipolar=bipolar,
        granularity=arch.adc.range_granularity,
        references=layer_mapping.reference_cols,
        tile_cols=layer_mapping.col_tiles[0],
    )


# ------------------------------------------------------------------------------ decomposition


def cycle_weights(plan: EnginePlan) -> list[float]:
    """Shift-and-add weight of each input cycle (the last one negative for two's complement)."""
    out = [2.0 ** (c * plan.dac_bits) for c in range(plan.cycles)]
    if plan.signed_inputs and plan.dac_bits == 1:
        out[-1] = -(2.0 ** (plan.input_bits - 1))
    return out


def slice_weights(plan: EnginePlan) -> list[float]:
    """Shift-and-add weight of each cell slice (the last one negative for two's complement)."""
    magnitude = plan.weight_bits - (plan.encoding in DIFFERENTIAL)
    out = [2.0 ** (s * plan.cell_bits) for s in range(math.ceil(magnitude / plan.cell_bits))]
    if plan.encoding == "twos_complement":
        out[-1] = -(2.0 ** (plan.weight_bits - 1))
    return out


def input_cycles(plan: EnginePlan, x_int: torch.Tensor) -> torch.Tensor:
    """Split integer inputs [..., K] into cycles [C, ..., K] (float, values < 2^dac_bits); their
    shift-and-add weights are :func:`cycle_weights`."""
    bits, db = plan.input_bits, plan.dac_bits
    if plan.cycles == 1 and not plan.signed_inputs:  # all bits in one cycle: nothing to split
        return as_dtype(x_int, torch.float32).unsqueeze(0)
    x = x_int.to(torch.int64)
    if plan.signed_inputs:
        x = x + 2 ** (bits - 1) if db > 1 else torch.remainder(x, 2**bits)  # offset / two's compl.
    shifts = torch.arange(plan.cycles, device=x.device) * db
    cycles = torch.bitwise_and(
        torch.bitwise_right_shift(x.unsqueeze(0), _expand(shifts, x)), 2**db - 1
    )
    return cycles.to(torch.float32)


def weight_slices(plan: EnginePlan, w_int: torch.Tensor) -> torch.Tensor:
    """Split integer weights [M, K, N] into cell slices [P, S, M, K, N] (P = 1 polarity, or 2 for
    differential encodings: positive, negative); their weights are :func:`slice_weights`."""
    bits, cb, enc = plan.weight_bits, plan.cell_bits, plan.encoding
    w = w_int.to(torch.int64)
    if enc == "offset":
        stored = [w + (2 ** (bits - 1) - 1)]
        magnitude = bits
    elif enc == "twos_complement":
        stored = [torch.remainder(w, 2**bits)]
        magnitude = bits
    else:
        stored = [w.clamp(min=0), (-w).clamp(min=0)]
        magnitude = bits - 1
    count = math.ceil(magnitude / cb)
    shifts = torch.arange(count, device=w.device) * cb
    out = torch.stack(
        [
            torch.bitwise_and(
                torch.bitwise_right_shift(s.unsqueeze(0), _expand(shifts, s)), 2**cb - 1
            )
            for s in stored
        ]
    )
    return out.to(torch.float32)


def as_dtype(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t`` in ``dtype`` (the tensor itself when it already is: a cheap check on the hot path)."""
    return t if t.dtype == dtype else t.to(dtype)


def _expand(shifts: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return shifts.view(-1, *([1] * like.dim()))


def with_references(plan: EnginePlan, slices: torch.Tensor) -> torch.Tensor:
    """[P, S, M, K, N] cell slices -> [P, S, M, K, N'] with the reference columns appended (one
    per column tile): every cell of a reference column holds the slices of the offset
    2^(b-1) - 1 (the offset encoding of a zero weight); their padding rows, added by
    :func:`layout_weights`, hold nothing. ``slices`` itself without references."""
    if not plan.references:
        return slices
    p, _, m, k, _ = slices.shape
    zero = torch.zeros(m, k, plan.references, dtype=torch.int64, device=slices.device)
    return torch.cat([slices, weight_slices(plan, zero).to(slices.dtype)], dim=4)


def layout_weights(plan: EnginePlan, slices: torch.Tensor) -> torch.Tensor:
    """[P, S, M, K, N] slices -> [M * G, rows per read, P * S * N] in the row-group layout."""
    p, s, m, k, n = slices.shape
    padded = torch.cat([slices, slices.new_zeros(p, s, m, 1, n)], dim=3)
    grouped = padded[:, :, :, plan.row_index, :]  # [P, S, M, G, R, N]
    g, r = plan.row_index.shape
    return grouped.permute(2, 3, 4, 0, 1, 5).reshape(m * g, r, p * s * n).contiguous()


def layout_inputs(plan: EnginePlan, cycles: torch.Tensor) -> torch.Tensor:
    """[C, B, M * K] cycles -> [M * G, C * B, rows per read] in the row-group layout."""
    c, b, _ = cycles.shape
    m, k = plan.matrices, plan.k_rows
    g, r = plan.row_index.shape
    if g == 1 and r == k:  # one row group holding every row in order: no gather needed
        if m == 1:
            return cycles if c == 1 else cycles.view(1, c * b, k)
        return cycles.view(c, b, m, k).permute(2, 0, 1, 3).reshape(m, c * b, k)
    x = cycles.view(c, b, m, k)
    x = torch.cat([x, x.new_zeros(c, b, m, 1)], dim=3)[:, :, :, plan.row_index]  # [C,B,M,G,R]
    return x.permute(2, 3, 0, 1, 4).reshape(m * g, c * b, r)


# ------------------------------------------------------------------------------ ADC and recombine


def adc_quantize_(plan: EnginePlan, partial: torch.Tensor, in_range: bool = False) -> torch.Tensor:
    """Quantize partial sums (in place where the dtype allows) to ADC codes (DESIGN.md 'ADC
    range'): clip(round half to even(p / step)); the reconstructed value is code x step (applied
    after recombination, so the codes stay exact integers). Exact when step is 1 and in range.

    ``in_range`` says the partial sums are known to be integers within the nominal full scale (ideal
    cells and DACs, ADC spanning that full scale): then no code can fall outside the code range,
    and the clip (and, with a step of 1, the rounding) are skipped as the no-ops they are."""
    lo, hi = plan.code_range
    if plan.step == 1.0 and in_range:
        return partial
    if use_kernels(partial) and partial.is_contiguous():  # one fused pass on CPU
        return kernels().adc_codes_(partial, plan.step, lo, hi)
    if plan.step != 1.0:  # DESIGN.md: p / step in float64, so ties round the same everywhere
        # a divisor tensor on the partial sums' device: CUDA multiplies by the reciprocal of a
        # CPU scalar, which can round a tie otherwise than the division
        step = torch.tensor(plan.step, dtype=torch.float64, device=partial.device)
        codes = partial.to(torch.float64).div_(step).round_()
        partial = codes.to(partial.dtype)  # codes are small integers: exact in either dtype
    else:
        partial = partial.round_()
    return partial if in_range else partial.clamp_(lo, hi)


_KERNELS: object = None  # the kernels module once loaded, False where they are off


def kernels():
    """The fused CPU kernels, :mod:`pimsim.oracle._kernels`, imported on first use (numba loads
    only where a CPU pass needs it); None where ``PIMSIM_KERNELS=0`` turns them off or numba
    cannot load (a warning says why; the torch operations compute the same numbers)."""
    global _KERNELS
    if _KERNELS is None:
        _KERNELS = False
        if os.environ.get("PIMSIM_KERNELS", "1") != "0":
            try:
                from pimsim.oracle import _kernels

                _KERNELS = _kernels
            except (ImportError, RuntimeError, OSError) as err:
                warnings.warn(
                    f"pimsim: the fused CPU kernels are unavailable ({err}); the oracle uses "
                    "torch operations on CPU (slower, same results)",
                    RuntimeWarning,
                    stacklevel=2,
                )
    return _KERNELS or None


def use_kernels(t: torch.Tensor) -> bool:
    """Whether the fused CPU kernels can process ``t`` (a CPU float tensor, kernels enabled)."""
    if not t.is_cpu:
        return False
    k = kernels()
    return k is not None and k.usable(t)


SAMPLE_LIMIT = 1 << 18  # partial sums kept per call for range calibration

#: ``adc.range_granularity`` -> the axes of a partial sum's index [matrix, cycle, polarity,
#: slice, column] whose values get ranges of their own (the other axes share one).
GROUP_AXES = {
    "layer": (),
    "column": (0, 4),
    "significance": (1, 3),
    "column_significance": (0, 1, 2, 3, 4),
}
# positions of those axes in the 7-d view [M, G, C, B, P, S, N] of the partial sums
_VIEW_AXES = (0, 2, 4, 5, 6)


def _view7(plan: EnginePlan, partial: torch.Tensor, b: int) -> torch.Tensor:
    """Partial sums [M*G, C*B, P*S*N'] as [M, G, C, B, P, S, N'] (P: conversions per pair; N':
    the columns and any reference columns)."""
    return partial.view(
        plan.matrices, plan.row_groups, plan.cycles, b, plan.polarities, plan.slices, plan.columns
    )


def group_shape(plan: EnginePlan) -> list[int]:
    """Shape of the per-group steps, broadcastable to the 7-d view of the partial sums."""
    sizes = (plan.matrices, plan.cycles, plan.polarities, plan.slices, plan.columns)
    shape = [1] * 7
    for axis in GROUP_AXES[plan.granularity]:
        shape[_VIEW_AXES[axis]] = sizes[axis]
    return shape


def plan_with_range(plan, ranges: torch.Tensor, name: str = "layer"):
    """``plan`` whose ADCs span ``ranges`` (partial-sum units): one value for the whole layer,
    or one per range group of ``plan.granularity`` (:func:`~pimsim.oracle._engine.group_shape`),
    each kept within [largest code, nominal full scale] as calibration keeps it. PIM-QAT's
    forward and ``adc.range: trained`` build their plans with this one function, so both
    convert with the same steps."""
    levels = plan.code_range[1]
    fs = ranges.detach().to(torch.float64).reshape(-1)
    fs = fs.clamp(float(levels), max(plan.full_scale, float(levels)))
    shape = group_shape(plan)
    if fs.numel() == 1:
        return dataclasses.replace(plan, adc_full_scale=float(fs[0]), adc_steps=None)
    if fs.numel() != math.prod(shape):
        raise SpecError(
            f"{name}: {fs.numel()} trained ADC ranges do not fit adc.range_granularity "
            f"{plan.granularity!r} ({math.prod(shape)} range groups): deploy with the "
            "granularity it was trained with",
            field="adc.range_granularity",
        )
    steps = (fs / levels).clamp(min=1.0).view(shape)
    return dataclasses.replace(plan, adc_full_scale=float(fs.max()), adc_steps=steps)


def _sample(plan: EnginePlan, partial: torch.Tensor, b: int, stats: Stats) -> None:
    """Keep a strided sample of |partial sums| per range group ([groups, n] per call)."""
    if partial.is_meta:
        return
    axes = [_VIEW_AXES[a] for a in GROUP_AXES[plan.granularity]]
    if axes:
        view = _view7(plan, partial, b)
        rest = [a for a in range(7) if a not in axes]
        groups = math.prod(view.shape[a] for a in axes)
        flat = view.permute(*axes, *rest).reshape(groups, -1)
    else:
        flat = partial.reshape(1, -1)
    stride = max(1, flat.numel() // SAMPLE_LIMIT)
    stats.samples.append(flat[:, ::stride].abs().to(torch.float64).cpu())


def _histogram(plan, codes: torch.Tensor, stats: Stats) -> None:
    if not codes.is_meta:
        lo = plan.code_range[0]
        counts = torch.bincount(
            (codes.reshape(-1) - lo).to(torch.int64), minlength=stats.codes.numel()
        )
        stats.codes += counts.cpu()


def _convert(plan, partial, noise):
    if noise is None:  # ideal cells and DACs: integer partial sums within the nominal range
        return adc_quantize_(plan, partial, in_range=plan.adc_full_scale >= plan.full_scale)
    if noise.adc:
        from pimsim.oracle._nonideal import adc_convert

        codes = adc_convert(noise.arch, plan, partial, noise.thresholds, noise.generator)
        return as_dtype(codes, plan.sum_dtype)
    return adc_quantize_(plan, partial)


def pim_matmul(
    plan: EnginePlan,
    x_int: torch.Tensor,
    w_layout: torch.Tensor,
    chunk: int | None = None,
    noise=None,
    record_codes: bool = False,
    record_partials: bool = False,
    active_bits: int | None = None,
) -> tuple[torch.Tensor, Stats]:
    """Recombined ADC codes [B, M * N] of the mapped layer on integer inputs [B, M * K] (float32
    where exact, else float64; times ``plan.step`` they are the column results), and the
    :class:`Stats` of the pass. ``chunk`` bounds the rows processed at once (peak memory).
    ``noise`` (a :class:`Noise`) replaces ideal cells and conversions by non-ideal ones.
    ``active_bits``: the number of non-zero input bits over all cycles, when the caller already
    knows it (then it is not counted again)."""
    b = x_int.shape[0]
    chunk = chunk or b
    outs, stats = [], Stats(active_bits=active_bits or 0)
    count = active_bits is None
    if record_partials:
        stats.samples = []
    if record_codes:
        lo, hi = plan.code_range
        stats.codes = torch.zeros(hi - lo + 1, dtype=torch.int64)
    if chunk >= b:
        return _pim_chunk(plan, x_int, w_layout, stats, noise, count), stats
    for start in range(0, b, chunk):
        rows = x_int[start : start + chunk]
        outs.append(_pim_chunk(plan, rows, w_layout, stats, noise, count))
    return torch.cat(outs), stats


@dataclass
class Stats:
    """What one forward pass did: ADC conversions and input-bit activity."""

    conversions: int = 0
    active_bits: int = 0
    input_bits: int = 0
    codes: torch.Tensor | None = None  # histogram of ADC codes (lowest code first), if recorded
    samples: list | None = None  # |partial sums| seen by the ADC (a strided sample), if recorded


@dataclass
class Noise:
    """Non-ideal state of one layer on one chip (see :mod:`pimsim.oracle._nonideal`)."""

    arch: object
    g_layout: torch.Tensor | None  # actual conductances in the row-group layout, or None
    g_sq: torch.Tensor | None  # g^2 for read noise, or None
    thresholds: torch.Tensor | None  # DNL decision thresholds, or None
    adc: bool
    generator: torch.Generator


def count_nonzero(t: torch.Tensor, nonnegative: bool = False) -> int:
    """Non-zero entries of an integer-valued tensor, exactly; a float32 sum of signs (exact
    while the count stays below 2^24, so larger tensors are summed per row, then in float64) is
    several times faster than ``torch.count_nonzero`` on CPU."""
    ones = t.sign() if nonnegative else t.sign().abs_()
    if ones.numel() < EXACT_FLOAT32:
        return int(ones.sum())
    width = ones.shape[-1] if ones.shape[-1] < EXACT_FLOAT32 else 1
    rows = ones.reshape(-1, width)
    return int(rows.sum(dim=1).sum(dtype=torch.float64))


def subtract_reference(plan: EnginePlan, y: torch.Tensor) -> torch.Tensor:
    """[..., M, N'] results of the columns and reference columns -> [..., M, N]: each column's
    result less its column tile's reference result (``y`` itself without references)."""
    if not plan.references:
        return y
    n = plan.n_cols
    refs = y[..., n:].repeat_interleave(plan.tile_cols, dim=-1)[..., :n]
    return y[..., :n] - refs


def _pim_chunk(plan, x_int, w_layout, stats: Stats, noise=None, count_active: bool = True):
    y = _recombine_chunk(plan, x_int, w_layout, stats, noise, count_active)
    if not plan.references:
        return y
    b = x_int.shape[0]
    return subtract_reference(plan, y.reshape(b, plan.matrices, plan.columns)).reshape(b, -1)


_PARTIALS_WATCHER: contextvars.ContextVar = contextvars.ContextVar("partials", default=None)


@contextlib.contextmanager
def watching_partials(callback):
    """Within the block, each pass of :func:`pim_matmul` (each chunk) calls ``callback(plan,
    partial, b)`` with the partial sums [M*G, C*B, P*S*N'] of its ``b`` rows before the ADC
    converts them (in place, afterwards: the callback takes what it needs and keeps no
    reference). PIM-QAT's straight-through terms read the forward's partial sums this way
    instead of computing them again. The fused CPU path of the layers (``plan.direct``) makes no
    such pass."""
    token = _PARTIALS_WATCHER.set(callback)
    try:
        yield
    finally:
        _PARTIALS_WATCHER.reset(token)


def column_partials(plan, xl, w_layout, noise=None, read_noise: bool = True) -> torch.Tensor:
    """The partial sums the ADCs convert, [M*G, C*B, P*S*N'], of inputs ``xl`` in the row-group
    layout: one batched product with the cells (the chip's actual conductances where ``noise``
    has them, plus a read-noise draw from its generator unless ``read_noise`` is False), and the
    analog subtraction of ``differential_analog`` pairs before the ADC."""
    if noise is not None and noise.g_layout is not None:
        partial = torch.bmm(as_dtype(xl, noise.g_layout.dtype), noise.g_layout)
        if read_noise and noise.g_sq is not None:
            from pimsim.oracle._nonideal import read_noise_sigma

            sigma = read_noise_sigma(noise.arch, xl.to(noise.g_sq.dtype).square(), noise.g_sq)
            partial = partial + sigma * torch.randn(
                partial.shape, generator=noise.generator, dtype=partial.dtype, device=partial.device
            )
    else:
        dtype = plan.sum_dtype
        partial = torch.bmm(as_dtype(xl, dtype), as_dtype(w_layout, dtype))  # [M*G, C*B, P*S*N]
    if plan.encoding == "differential_analog":
        mg, cb = partial.shape[:2]
        partial = partial.view(mg, cb, 2, -1)
        partial = partial[:, :, 0] - partial[:, :, 1]  # analog subtraction before the ADC
    return partial


def polarity_signs(plan) -> list[float]:
    """Shift-and-add sign of each conversion of a (slice, column) pair: +1, -1 for the two
    polarities of ``differential_digital``."""
    return [1.0, -1.0] if plan.encoding == "differential_digital" else [1.0]


def _recombine_chunk(plan, x_int, w_layout, stats: Stats, noise=None, count_active: bool = True):
    """Recombined codes [B, M * N'] of every converted column (references included)."""
    b = x_int.shape[0]
    m, n = plan.matrices, plan.columns
    g = plan.row_groups
    cycles = input_cycles(plan, x_int)
    if not cycles.is_meta:
        if count_active:
            stats.active_bits += count_nonzero(cycles, nonnegative=True)
        stats.input_bits += cycles.numel()
    xl = layout_inputs(plan, cycles)  # [M*G, C*B, R]
    partial = column_partials(plan, xl, w_layout, noise)
    watcher = _PARTIALS_WATCHER.get()
    if watcher is not None:
        watcher(plan, partial, b)
    s_weights, c_weights = plan.shift_add
    s, c = len(s_weights), plan.cycles
    signs = polarity_signs(plan)
    stats.conversions += partial.numel()
    if stats.samples is not None:
        _sample(plan, partial, b, stats)
    if plan.adc_steps is None:
        partial = codes = _convert(plan, partial, noise)
    else:  # a range per group: codes in units of each group's step, then back to values
        steps = plan.adc_steps.to(partial.device)
        scaled = (_view7(plan, partial, b).to(torch.float64) / steps).reshape(partial.shape)
        codes = _convert(plan.unit_plan, scaled, noise)
        partial = (_view7(plan, codes, b).to(torch.float64) * steps).reshape(partial.shape)
    if stats.codes is not None:
        _histogram(plan, codes, stats)
    p = len(signs)
    if g == 1 and c == 1 and s == 1 and p == 1:  # one code per output: nothing to add up
        y = partial.view(b, n) if m == 1 else partial.view(m, b, n).transpose(0, 1)
        if s_weights[0] * c_weights[0] != 1.0:
            y = y * (s_weights[0] * c_weights[0])
        return y.reshape(b, m * n)
    partial = partial.view(m, g, c, b, p, s, n)
    lo, hi = plan.code_range
    top = max(abs(lo), hi)
    # Integer codes: sums stay exact in float32 while below 2^24 (DESIGN.md 'exactness').
    if g > 1:
        exact = g * top < EXACT_FLOAT32
        partial = partial.sum(dim=1) if exact else partial.to(torch.float64).sum(1)
    else:
        partial = partial.squeeze(1)  # [M, C, B, P, S, N]
    # Recombined codes stay exact in float32 while their bound is below 2^24.
    bound = g * top * sum(abs(v) for v in s_weights) * sum(abs(v) for v in c_weights) * 2
    exact = bound < EXACT_FLOAT32 and partial.dtype == torch.float32
    dtype = torch.float32 if exact else torch.float64
    if s > 1:  # slices: one batched vector product over S
        coef = torch.tensor(s_weights, dtype=dtype, device=partial.device)
        partial = torch.matmul(coef, partial.to(dtype))  # [M, C, B, P, N]
    else:
        partial = partial.squeeze(-2).to(dtype)
        if s_weights[0] != 1.0:
            partial = partial * s_weights[0]
    if c > 1 or p > 1:
        y = torch.einsum(
            "mcbpn,c,p->bmn",
            partial,
            torch.tensor(c_weights, dtype=dtype, device=partial.device),
            torch.tensor(signs, dtype=dtype, device=partial.device),
        )
    else:
        y = partial[:, 0, :, 0, :].permute(1, 0, 2)
        if c_weights[0] != 1.0:
            y = y * c_weights[0]
    return y.reshape(b, m * n)  # recombined codes: multiply by plan.step for the column values
