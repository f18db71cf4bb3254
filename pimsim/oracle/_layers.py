"""PIM versions of ``nn.Linear`` and ``nn.Conv2d``: quantize, compute on the mapped crossbars
(:mod:`pimsim.oracle._engine`), correct digitally, rescale, add the bias.

Quantization follows DESIGN.md's Conventions: weights are symmetric integers in
[-(2^(b-1) - 1), 2^(b-1) - 1] with one scale per output channel (max |w| / (2^(b-1) - 1)); inputs
are unsigned, clip(round_half_even(x / s), 0, 2^b - 1), or signed symmetric, with one scale s per
tensor (from a QAT model, from calibration batches, or, with a warning, from each batch).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pimsim.oracle import _engine as E
from pimsim.oracle._device import cuda_exactness


def quantize_weight(weight: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-output-channel symmetric quantization: (integers, scales [out])."""
    top = 2 ** (bits - 1) - 1
    flat = weight.detach().reshape(weight.shape[0], -1).to(torch.float64)
    scale = flat.abs().amax(dim=1) / top
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    w_int = torch.round(flat / scale[:, None]).clamp_(-top, top)
    return w_int.reshape(weight.shape), scale


def input_levels(bits: int, signed: bool) -> tuple[int, int]:
    """Integer range of quantized inputs."""
    if signed:
        top = 2 ** (bits - 1) - 1
        return -top, top
    return 0, 2**bits - 1


def scale_from_max(max_abs: float, bits: int, signed: bool) -> float:
    """Input scale from an observed maximum (absolute maximum for signed inputs)."""
    top = input_levels(bits, signed)[1]
    return max(float(max_abs), 1e-12) / top


NON_NEGATIVE_ACTS = ("relu", "relu6", "sigmoid", "softmax")


def non_negative_inputs(workload, input_nonnegative: bool = True) -> dict[str, bool]:
    """For each layer of ``workload``: is its input non-negative? (DESIGN.md 'signed inputs',
    ``auto``): the network input is when ``input_nonnegative`` (image pixels in [0, 1]);
    ReLU/ReLU6/sigmoid/softmax outputs are, and so are identity, max/average pooling, flatten and
    concatenation of non-negative tensors. Batch-norm and anything else may produce negative
    values. The one rule the oracle and QAT both use."""
    from pimsim.workload import INPUT

    out: dict[str, bool] = {}
    produces: dict[str, bool] = {INPUT: bool(input_nonnegative)}
    for layer in workload.layers:
        # an rnn layer's arrays also read its hidden state (tanh: signed)
        out[layer.name] = all(produces[s] for s in layer.inputs) and layer.kind != "rnn"
        if layer.kind == "act":
            produces[layer.name] = layer.op in NON_NEGATIVE_ACTS or (
                layer.op == "identity" and out[layer.name]
            )
        elif layer.kind in ("pool", "flatten", "concat"):
            produces[layer.name] = out[layer.name]
        else:
            produces[layer.name] = False
    return out


def least_error_range(
    seen: torch.Tensor, percentile_fs: torch.Tensor, levels: int, floor: float, top: float
) -> torch.Tensor:
    """Per row of ``seen`` ([groups, samples] of |partial sums|): the ADC range, among 63
    geometrically spaced candidates in [floor, top] and that row's ``percentile_fs``, whose
    quantization (step = max(1, range / levels), codes clipped to ``levels``) has the least mean
    squared reconstruction error on the row."""
    grid = torch.logspace(math.log10(floor), math.log10(top), 63, dtype=torch.float64)
    out = torch.empty_like(percentile_fs)
    per = max(1, 2**24 // (64 * seen.shape[1]))  # groups per chunk: bounded memory
    for g0 in range(0, seen.shape[0], per):
        rows = seen[g0 : g0 + per]  # [g, n]
        cands = torch.cat(
            [grid.expand(rows.shape[0], -1), percentile_fs[g0 : g0 + per, None]], dim=1
        )  # [g, 64]
        steps = (cands / levels).clamp(min=1.0)[:, :, None]
        recon = (rows[:, None, :] / steps).round().clamp(0, levels) * steps
        errors = (recon - rows[:, None, :]).square().mean(dim=2)
        out[g0 : g0 + per] = cands.gather(1, errors.argmin(dim=1, keepdim=True))[:, 0]
    return out


def replace_module(root: nn.Module, name: str, module: nn.Module) -> None:
    """Put ``module`` at the qualified ``name`` inside ``root``."""
    parent_name, _, attr = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, attr, module)


@dataclass
class Counters:
    """What a PIM layer did since conversion or the last reset."""

    conversions: int = 0
    active_bits: int = 0
    input_bit_total: int = 0
    zero_inputs: int = 0
    input_total: int = 0
    code_histogram: torch.Tensor | None = None


class PimMatrixLayer(nn.Module):
    """Shared state and forward of :class:`PimLinear` and :class:`PimConv2d`."""

    def __init__(self, name, plan: E.EnginePlan, weight, bias, input_scale, chunk=None):
        super().__init__()
        if not hasattr(self, "output_scale"):
            self.output_scale = 1.0
        self.name = name
        self.plan = plan
        self.chunk = chunk
        m, k, n = plan.matrices, plan.k_rows, plan.n_cols
        matrices = self.program(weight)
        assert (m, k, n) == tuple(matrices.shape)
        self.bias = (
            None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)
        )
        fixed = input_scale is not None
        self.register_buffer(
            "input_scale", torch.tensor(float(input_scale or 0.0), dtype=torch.float64)
        )
        self.dynamic_scale = not fixed
        self.record_codes = False  # set True to histogram every ADC code (costs a pass)
        self.partial_samples = None  # a list while calibrating the ADC range
        # an unsigned layer whose input the graph does not prove non-negative looks for
        # negative values (convert clears this where the graph proves it) and warns once
        self.check_negative = True
        self.warned_negative = False
        self.calibrating = None  # (policy, percentile): set the ADC ranges on the next input
        self.reset_counts()
        self.noise = None

    def program(self, weight: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        """Write ``weight`` (float, the torch layer's shape) into this layer's cells: its
        integers and per-channel scales, the cell slices in the row-group layout and the column
        sums used by the digital corrections. Returns the integer matrices [M, K, N]. A chip drawn
        before (:meth:`set_chip`) keeps its old conductances until it is drawn again.

        ``scale`` (one per output channel) fixes the quantization step instead of deriving it
        from max |w| (on-chip training keeps a layer's step while its weights move):
        integers = clip(round_half_even(w / scale)) to the weight range."""
        plan = self.plan
        if scale is None:
            w_int, w_scale = quantize_weight(weight, plan.weight_bits)
        else:
            top = 2 ** (plan.weight_bits - 1) - 1
            w_scale = scale.detach().to(torch.float64).reshape(-1)
            flat = weight.detach().reshape(weight.shape[0], -1).to(torch.float64)
            w_int = torch.round(flat / w_scale[:, None]).clamp_(-top, top).reshape(weight.shape)
        w_scale = w_scale * self.output_scale  # a trained output rescaling rides on the scale
        matrices, mask = self._matrices(w_int)
        slices = E.weight_slices(plan, matrices)
        # only block-diagonal packing (one matrix for several groups) leaves cells unused: the
        # cell mask is kept for those layers alone (None: every cell of the matrices is used);
        # with a reference column their off-diagonal cells hold a zero weight (the offset level)
        # instead, so that the array's one reference column serves every column
        packed = getattr(self, "groups", 1) > 1 and plan.matrices == 1 and not plan.references
        if plan.encoding == "offset" and packed:
            slices = slices * mask.to(slices.dtype)  # unused cells of packed groups stay empty
        state = {
            "weight_int": w_int.to(torch.float32),
            "weight_scale": w_scale,
            "w_layout": E.layout_weights(plan, E.with_references(plan, slices)),
            "mask": mask.to(torch.float64) if packed else None,
            "col_sums": matrices.to(torch.float64).sum(dim=1),  # [M, N]
        }
        for key, value in state.items():
            if key in self._buffers:
                self._buffers[key] = value
            else:
                self.register_buffer(key, value)
        return matrices

    def set_chip(self, arch, e_chip: float, seed: int) -> None:
        """Make this layer one chip's instance: draw its cells' actual conductances (variation,
        faults, drift, on/off ratio) and its ADC's per-chip DNL from ``seed``; read noise and
        thermal noise are drawn on every read from the same generator."""
        from pimsim.oracle import _nonideal as NI

        device, adc = NI.device_active(arch), NI.adc_active(arch)
        if self.w_layout.device.type == "meta" or not (
            device or adc or arch.cell.variation.read_noise
        ):  # ideal, or a shape-only run
            self.noise = None
            return
        gen = torch.Generator(device=self.w_layout.device).manual_seed(seed)
        g = self.w_layout.to(torch.float64)
        if device or arch.cell.variation.read_noise:
            g = NI.perturb_cells(arch, self.w_layout, e_chip, gen)
        dtype = self.plan.sum_dtype
        thresholds = None
        if arch.adc.nonideal.dnl_lsb:
            thresholds = NI.dnl_thresholds(self.plan, arch.adc.nonideal.dnl_lsb, gen)
        self.noise = E.Noise(
            arch=arch,
            g_layout=g.to(dtype) if (device or arch.cell.variation.read_noise) else None,
            g_sq=g.square().to(dtype) if arch.cell.variation.read_noise else None,
            thresholds=thresholds,
            adc=adc,
            generator=gen,
        )

    def calibrate_range(self, policy: str, percentile: float = 99.99) -> None:
        """Set the ADC ranges from the |partial sums| recorded since ``partial_samples`` was set
        to a list, one range per group of ``adc.range_granularity`` (the layer, each column,
        each significance or each column and significance): ``calibrated`` takes their
        ``percentile``; ``learned`` takes the range whose quantization has the least mean squared
        reconstruction error on them (a search over 63 geometrically spaced candidate ranges and
        the percentile). Never beyond the nominal full scale, never below one level per code."""
        plan = self.plan
        if not self.partial_samples:
            raise ValueError(f"{self.name}: no partial sums were recorded for calibration")
        seen = torch.cat(self.partial_samples, dim=1)  # [groups, samples]
        groups = seen.shape[0]
        keep = max(512, 2**18 // groups)  # a cheap search (and within torch.quantile's limit)
        if seen.shape[1] > keep:
            seen = seen[:, :: math.ceil(seen.shape[1] / keep)]
        levels = plan.code_range[1]  # the largest code
        floor, top = float(levels), max(plan.full_scale, float(levels))
        fs = torch.quantile(seen, percentile / 100.0, dim=1).clamp_(floor, top)
        if policy == "learned":
            fs = least_error_range(seen, fs, levels, floor, top)
        self.plan = E.plan_with_range(plan, fs, self.name)  # the steps follow the ranges
        self.partial_samples = None

    def reset_counts(self) -> None:
        """Zero the conversion and activity counters."""
        self.counters = Counters()

    @property
    def conversions(self) -> int:
        """ADC conversions since conversion or the last :meth:`reset_counts`."""
        return self.counters.conversions

    @property
    def code_histogram(self):
        """ADC code counts, lowest code first (recorded with ``record_codes``), or None."""
        return self.counters.code_histogram

    # Subclasses give the integer weight matrices [M, K, N] and the cell mask [M, K, N].
    def _matrices(self, w_int):  # pragma: no cover - abstract
        raise NotImplementedError

    def quantize_input(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | float]:
        """Integer inputs [rows, M*K] of float rows ``x`` and the scale used: the fixed
        ``input_scale`` buffer (a 0-dim tensor, so no device sync), or a float measured on this
        batch."""
        return self._quantize(x)[:2]

    def _quantize(self, x: torch.Tensor):
        """:meth:`quantize_input`, plus what the fused CPU kernel measures on the way (else None):
        the integer inputs' sums [rows, M] per matrix and their number of non-zeros."""
        plan = self.plan
        lo, hi = input_levels(plan.input_bits, plan.signed_inputs)
        check = self.check_negative and not (plan.signed_inputs or self.warned_negative)
        if check and not x.is_meta and bool((x < 0).any()):
            self.warned_negative = True  # never clip silently: say so once per layer
            warnings.warn(
                f"{self.name}: unsigned inputs received negative values, clipped to 0 (give "
                "calibration data so that signed_inputs: auto sees them, or set "
                "decomposition.signed_inputs: signed)",
                RuntimeWarning,
                stacklevel=3,
            )
        if x.is_meta:  # shape-only run: no values to scale
            scale = 1.0
        elif self.dynamic_scale:
            scale = scale_from_max(x.detach().abs().max(), plan.input_bits, plan.signed_inputs)
        else:
            scale = self.input_scale
        if x.dtype == torch.float32 and E.use_kernels(x):
            x_int, sums, nonzeros = E.kernels().quantize_rows(
                x.detach(), float(scale), lo, hi, plan.k_rows
            )
            return x_int, scale, sums, nonzeros
        # a divisor tensor on x's device: CUDA multiplies by the reciprocal of a CPU scalar
        divisor = torch.as_tensor(scale, dtype=torch.float64, device=x.device)
        x_int = torch.div(x.detach(), divisor).round_().clamp_(lo, hi)
        return x_int, scale, None, None

    def _codes(self, x_int: torch.Tensor, nonzeros: int | None = None) -> torch.Tensor:
        """Recombined ADC codes [rows, M, N] for integer inputs, updating the counters.
        ``nonzeros``: the number of non-zero integer inputs, when already counted."""
        plan = self.plan
        single = plan.cycles == 1 and not plan.signed_inputs  # active bits = non-zero inputs
        # DESIGN.md 'exactness': no TF32 in any product of the pass (partial sums, read noise,
        # recombination), whichever method of the layer asked for the codes
        with cuda_exactness("cuda" if x_int.is_cuda else None):
            y, stats = E.pim_matmul(
                plan,
                x_int,
                self.w_layout,
                self.chunk,
                self.noise,
                self.record_codes,
                self.partial_samples is not None,
                active_bits=nonzeros if single else None,
            )
        if stats.samples is not None:
            self.partial_samples.extend(stats.samples)
        c = self.counters
        if stats.codes is not None:
            c.code_histogram = stats.codes + (
                c.code_histogram if c.code_histogram is not None else 0
            )
        if nonzeros is None and single:
            nonzeros = stats.active_bits
        self._tally(x_int, stats.conversions, stats.active_bits, stats.input_bits, nonzeros)
        return y.view(-1, plan.matrices, plan.n_cols)

    def _tally(self, x_int, conversions: int, active_bits: int, input_bits: int, nonzeros):
        """Add one pass to the counters (a plain object: cheaper to update than module
        attributes); ``nonzeros``: the non-zero integer inputs, counted here when None."""
        c = self.counters
        c.conversions += conversions
        c.active_bits += active_bits
        c.input_bit_total += input_bits
        if not x_int.is_meta:
            if nonzeros is None:
                nonzeros = E.count_nonzero(x_int)
            c.zero_inputs += x_int.numel() - nonzeros
            c.input_total += x_int.numel()

    def _offsets(self, x_int: torch.Tensor, dtype) -> torch.Tensor | None:
        """What the digital units add to the column results (minus the corrections),
        broadcastable to [rows, M, N]: -off x the applied inputs' sum for ``offset`` weights (cells
        hold w + off) without a reference column, -2^(b-1) x the weight column sums for offset
        inputs (applied as x + 2^(b-1)); None when there is nothing to correct. (A reference
        column's result is subtracted by :func:`~pimsim.oracle._engine.pim_matmul`.)"""
        plan = self.plan
        m, k = plan.matrices, plan.k_rows
        shift = self._input_shift
        out = None
        if self._weight_offset:
            x = x_int.view(-1, m, k)
            if self.mask is None:  # every cell is used: one input sum per matrix
                out = x.sum(dim=2, keepdim=True, dtype=dtype)
                if shift:
                    out += shift * k
            else:
                applied = E.as_dtype(x + shift, dtype)
                out = torch.einsum("bmk,mkn->bmn", applied, self.mask.to(dtype))
            out.mul_(self._weight_offset)
        if shift:
            cols = self.col_sums.to(dtype) * -shift
            out = cols if out is None else out + cols
        return out

    @property
    def _input_shift(self) -> int:
        """The offset added to signed inputs applied by a multi-bit DAC (x + 2^(b-1)), else 0."""
        plan = self.plan
        return 2 ** (plan.input_bits - 1) if plan.signed_inputs and plan.dac_bits > 1 else 0

    @property
    def _weight_offset(self) -> int:
        """Minus the offset stored with ``offset`` weights (cells hold w + 2^(b-1) - 1) when the
        digital units remove it exactly (``offset_reference: digital``), else 0 (no offset, or a
        reference column removes it)."""
        plan = self.plan
        digital = plan.encoding == "offset" and not plan.references
        return -(2 ** (plan.weight_bits - 1) - 1) if digital else 0

    def _direct(self, x_rows: torch.Tensor, bias) -> torch.Tensor | None:
        """:meth:`matmul` on CPU for a plan whose every output is one ADC conversion of one
        dense product (``plan.direct``, ideal cells, nothing recorded, no chunking): quantize
        (one kernel), one product, then ADC, corrections, scales and bias (one kernel). The same
        numbers as the general path, with less in between. None where it does not apply."""
        if not (
            self.plan.direct
            and x_rows.dtype == torch.float32
            and self.noise is None
            and self.mask is None
            and not self.record_codes
            and self.partial_samples is None
            and (self.chunk is None or self.chunk >= x_rows.shape[0])
            and self.w_layout.dtype == torch.float32
            and E.use_kernels(x_rows)
        ):
            return None
        plan = self.plan
        x_int, scale, sums, nonzeros = self._quantize(x_rows)
        partial = torch.mm(x_int, self.w_layout[0, : plan.k_rows])  # padding rows: zero
        # one cycle of unsigned inputs: the active bits are the non-zero inputs
        self._tally(x_int, partial.numel(), nonzeros, x_int.numel(), nonzeros)
        if plan.references:  # convert the reference columns too, subtract them, then finish
            codes = E.adc_quantize_(plan, partial, in_range=plan.adc_full_scale >= plan.full_scale)
            values = E.subtract_reference(plan, codes.unsqueeze(1))
            return self._finish(values, False, sums, scale, bias, x_rows.dtype)
        return self._finish(partial.unsqueeze(1), True, sums, scale, bias, x_rows.dtype)

    def _finish(self, values, convert, sums, scale, bias, dtype) -> torch.Tensor:
        """The digital units' work on CPU, one kernel pass over [rows, M, N] ``values``: their
        ADC codes (if ``convert``; else they are codes already) x step - corrections, x (input
        scale x weight scale) + bias; ``sums``: the integer inputs' sums [rows, M] per matrix."""
        plan = self.plan
        shift = self._input_shift
        return E.kernels().finish(
            values,
            plan.code_range if convert else None,
            plan.output_step,
            (sums, self._weight_offset, shift * plan.k_rows) if self._weight_offset else None,
            self.col_sums * -shift if shift else None,
            float(scale),
            self.weight_scale,
            None if bias is None else bias.data,  # .data: no parameter dispatch
            dtype,
        )

    def integer_matmul(self, x_int: torch.Tensor) -> torch.Tensor:
        """[rows, M*K] integer inputs -> [rows, M, N] results (float64, exact where the hardware
        is), with the digital corrections applied: what the hardware hands to the digital units."""
        y = self._codes(x_int).to(torch.float64) * self.plan.output_step
        offsets = self._offsets(x_int, torch.float64)
        return y if offsets is None else y + offsets

    def matmul(self, x_rows: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """[rows, M*K] float inputs -> [rows, M*N] float outputs, plus ``bias`` [M*N] if given.

        After the ADC: (step x codes + corrections) x (input scale x weight scale) + bias, in
        float64, rounded once to the input's dtype; on CPU one fused kernel pass, elsewhere torch
        operations."""
        if self.calibrating is not None:  # record these partial sums, set the ranges from them
            policy, percentile = self.calibrating
            self.partial_samples = []
            self._codes(self._quantize(x_rows)[0])
            self.calibrate_range(policy, percentile)
            self.calibrating = None
        direct = self._direct(x_rows, bias)
        if direct is not None:
            return direct
        x_int, scale, sums, nonzeros = self._quantize(x_rows)
        codes = self._codes(x_int, nonzeros)
        plan = self.plan
        if self.mask is None and E.use_kernels(codes) and E.use_kernels(x_rows):
            if self._weight_offset and sums is None:
                sums = x_int.view(-1, plan.matrices, plan.k_rows).sum(2, dtype=torch.float64)
            return self._finish(codes, False, sums, scale, bias, x_rows.dtype)
        # The kernel's arithmetic with torch operations: float64, rounded once at the end, so
        # that every device gives the same outputs (to the order of float64 additions).
        f64 = torch.float64
        y = codes.to(f64) * plan.output_step
        offsets = self._offsets(x_int, f64)
        if offsets is not None:
            y += offsets
        out_scale = (self.weight_scale.to(f64) * scale).view(plan.matrices, plan.n_cols)
        if bias is None:
            y *= out_scale
        else:
            y = torch.addcmul(bias.detach().to(f64).view_as(out_scale), y, out_scale)
        return y.to(x_rows.dtype).reshape(y.shape[0], -1)


def _output_scale(module: nn.Module) -> float:
    """The output rescaling a PIM-QAT model trained into ``module`` (``output_scale``), else 1:
    a digital multiplier, applied with the weight scale."""
    scale = getattr(module, "output_scale", None)
    return 1.0 if scale is None or scale.device.type == "meta" else float(scale)


class PimLinear(PimMatrixLayer):
    """``nn.Linear`` computed as the mapped crossbars compute it."""

    def __init__(self, name, plan, linear: nn.Linear, input_scale=None, chunk=None):
        self.output_scale = _output_scale(linear)
        super().__init__(name, plan, linear.weight, linear.bias, input_scale, chunk)

    def _matrices(self, w_int):
        w = w_int.t().unsqueeze(0)  # [1, in, out]
        return w, torch.ones_like(w)

    def input_rows(self, x: torch.Tensor) -> torch.Tensor:
        """The rows [rows, in] the arrays see for input ``x``."""
        return x.reshape(-1, x.shape[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        y = self.matmul(self.input_rows(x), self.bias)
        return y.reshape(*lead, -1)


class PimConv2d(PimMatrixLayer):
    """``nn.Conv2d`` computed as the mapped crossbars compute it (im2col in unfold order)."""

    def __init__(self, name, plan, conv: nn.Conv2d, input_scale=None, chunk=None):
        if isinstance(conv.padding, str) or conv.padding_mode != "zeros":
            raise ValueError(f"{name}: only numeric zero padding is supported")
        self.conv_args = dict(
            kernel_size=conv.kernel_size,
            dilation=conv.dilation,
            padding=conv.padding,
            stride=conv.stride,
        )
        self.groups = conv.groups
        self.out_channels = conv.out_channels
        self.output_scale = _output_scale(conv)
        super().__init__(name, plan, conv.weight, conv.bias, input_scale, chunk)

    def _matrices(self, w_int):
        g = self.groups
        cout = w_int.shape[0]
        per = w_int.reshape(g, cout // g, -1).transpose(1, 2)  # [G, K_g, N_g]
        if self.plan.matrices == g:
            return per, torch.ones_like(per)
        # block-diagonal packing: one matrix with the groups on its diagonal
        k_g, n_g = per.shape[1], per.shape[2]
        packed = per.new_zeros(g * k_g, g * n_g)
        mask = per.new_zeros(g * k_g, g * n_g)
        for i in range(g):
            packed[i * k_g : (i + 1) * k_g, i * n_g : (i + 1) * n_g] = per[i]
            mask[i * k_g : (i + 1) * k_g, i * n_g : (i + 1) * n_g] = 1
        return packed.unsqueeze(0), mask.unsqueeze(0)

    def input_rows(self, x: torch.Tensor) -> torch.Tensor:
        """The im2col rows [B * L, Cin*kh*kw] (unfold order) the arrays see for input ``x``."""
        cols = F.unfold(x, **self.conv_args)  # [B, Cin*kh*kw, L]
        return cols.transpose(1, 2).reshape(-1, cols.shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        y = self.matmul(self.input_rows(x), self.bias)
        k, d, p, s = (self.conv_args[a] for a in ("kernel_size", "dilation", "padding", "stride"))
        ho = (h + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
        wo = (w + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
        return y.view(b, ho * wo, self.out_channels).transpose(1, 2).reshape(b, -1, ho, wo)


class PimConv1d(PimConv2d):
    """``nn.Conv1d`` computed as the mapped crossbars compute it: a 1 x k conv2d on the
    (C, 1, L) view of its input (the mapper's rows: C/groups x k in unfold order)."""

    def __init__(self, name, plan, conv: nn.Conv1d, input_scale=None, chunk=None):
        if isinstance(conv.padding, str) or conv.padding_mode != "zeros":
            raise ValueError(f"{name}: only numeric zero padding is supported")
        as2d = nn.Conv2d(
            conv.in_channels, conv.out_channels, (1, conv.kernel_size[0]),
            stride=(1, conv.stride[0]), padding=(0, conv.padding[0]),
            dilation=(1, conv.dilation[0]), groups=conv.groups, bias=conv.bias is not None,
        )  # fmt: skip
        as2d.weight = nn.Parameter(conv.weight.detach().unsqueeze(2), requires_grad=False)
        if conv.bias is not None:
            as2d.bias = nn.Parameter(conv.bias.detach().clone(), requires_grad=False)
        if hasattr(conv, "output_scale"):
            as2d.output_scale = conv.output_scale
        super().__init__(name, plan, as2d, input_scale, chunk)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.unsqueeze(2)).squeeze(2)


def _symmetric(x: torch.Tensor, bits: int, dims) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric integers of ``x`` with one scale per slice over ``dims`` (max |x| / top)."""
    top = 2 ** (bits - 1) - 1
    scale = x.detach().abs().amax(dim=dims, keepdim=True).to(torch.float64) / top
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return torch.round(x.to(torch.float64) / scale).clamp_(-top, top), scale


class DigitalMatMul(nn.Module):
    """A product of two activations on digital MAC units (``mapping.activation_matmul:
    digital``): both operands quantized to the spec's input bits, signed, one scale per matrix
    (the units hold integers; the scales are the running maxima a digital datapath keeps), and
    multiplied exactly."""

    def __init__(self, name: str, bits: int) -> None:
        super().__init__()
        self.name, self.bits = name, bits

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a_int, sa = _symmetric(a, self.bits, (-2, -1))
        b_int, sb = _symmetric(b, self.bits, (-2, -1))
        return (torch.matmul(a_int, b_int) * sa * sb).to(a.dtype)


class RewrittenArray(PimLinear):
    """The arrays of a :class:`PimMatMul`: a :class:`PimLinear` whose every :meth:`program`
    writes the same drawn cells again (their variation, faults and drift follow the new
    conductances, drawn from the chip's seed as before)."""

    chip = None

    def set_chip(self, arch, e_chip: float, seed: int) -> None:
        """Draw the chip and remember it for every later write."""
        self.chip = (arch, e_chip, seed)
        super().set_chip(arch, e_chip, seed)

    def program(self, weight: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        """Write ``weight`` into the drawn cells."""
        matrices = super().program(weight, scale)
        if self.chip is not None:
            super().set_chip(*self.chip)
        return matrices


class PimMatMul(nn.Module):
    """A product of two activations on arrays rewritten for every input (``mapping.
    activation_matmul: rewrite``): for each (M, K) x (K, N) product the second operand is
    quantized as weights (per column) and written into the mapped arrays, then the first is
    read through them like a linear layer's input (its scale from calibration), ADCs and all.
    ``array`` is the :class:`RewrittenArray` of one product that every call reprograms;
    calibrated ADC ranges come from the partial sums of every product of the calibration
    batch."""

    def __init__(self, name: str, array: RewrittenArray) -> None:
        super().__init__()
        self.name = name
        self.array = array

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        lead = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        a = a.expand(*lead, *a.shape[-2:]).reshape(-1, *a.shape[-2:])
        b = b.expand(*lead, *b.shape[-2:]).reshape(-1, *b.shape[-2:])
        array = self.array
        if array.calibrating is not None:  # ranges from the partial sums of every product
            policy, percentile = array.calibrating
            array.calibrating, array.partial_samples = None, []
            with torch.no_grad():
                for ai, bi in zip(a, b, strict=True):
                    array.program(bi.t())
                    array._codes(array._quantize(ai)[0])
            array.calibrate_range(policy, percentile)
        outs = []
        for ai, bi in zip(a, b, strict=True):
            array.program(bi.t())  # weight [N, K]: one column per output
            outs.append(array(ai))
        return torch.stack(outs).reshape(*lead, a.shape[-2], b.shape[-1]).to(a.dtype)
