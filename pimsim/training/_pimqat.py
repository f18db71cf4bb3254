"""PIM-QAT: quantization-aware training with the mapped hardware's PIM quantization in the loop.

A PIM-QAT layer is a :class:`~pimsim.training._qat.QuantConv2d` / ``QuantLinear`` whose forward
*value* is the oracle's computation (:class:`pimsim.oracle.PimConv2d` / ``PimLinear``: every
partial sum of every row group, input cycle and weight slice through the spec's ADC, with the
spec's non-idealities where training asks for them), and whose *gradient* flows through the
digital fake-quantized product (straight-through estimator, STE). The oracle layer is the single
definition of the forward computation; this module re-programs it with the current weights each
step and never re-implements it.

Rescaling (the derivation, with the formulas for the two regimes, is in ``docs/pim_qat.md``). Write
the digital integer product of one output as y_d = sum_i a_i p_i, where i runs over (row group,
input cycle, weight slice), p_i is one partial sum and a_i its shift-and-add weight, and the PIM
result as y_p = sum_i a_i Q(p_i), where Q is the ADC with step Delta = max(1, FS / code_max), FS =
rows_per_adc_read x (2^cell_bits - 1) x (2^dac_bits - 1). Bussgang's decomposition Q(p) = gamma p +
e (e uncorrelated with p; for Gaussian p, gamma = E[Q'(p)]) gives

    y_p = gamma y_d + E,   Var(E) = sum_i a_i^2 Var(e_i),   gamma = <y_p, y_d> / <y_d, y_d>

with gamma -> 1 and Var(e) -> Delta^2 / 12 when Delta is small against the spread of the partial
sums, and gamma < 1 (the dead zone |p| < Delta / 2 maps to 0) when it is not: the PIM layer's
output magnitude shrinks by gamma and its noise grows with Delta, while the plain STE passes
gradients as if gamma were 1.

* **forward rescaling** multiplies the layer's output by eta = sqrt(<y_d, y_d> / <y_p, y_p>) =
  1 / sqrt(gamma^2 + Var(E) / Var(y_d)) (measured on each training batch, a running average
  in eval, set from 512 training images on the deployed precision after training, and folded
  into the digital output scale at deployment), so that the next layer sees the magnitudes
  digital QAT would give it: eta > 1 where the dead zone shrinks the output (gamma < 1), eta < 1
  where quantization noise inflates it;
* **backward rescaling** divides the gradient that passes back through the PIM quantizer by
  eta. Forward rescaling alone multiplies every gradient through the layer by eta (the chain
  rule through the output multiplier): a different effective learning rate per layer from
  digital QAT. With both, the layer's output has the digital magnitude and its backward map
  for a given upstream error is exactly the digital QAT layer's (STE).

``tests/test_pim_training.py`` checks both on random sparse inputs where eta is 1.79 and 0.43.

Trained ADC ranges (``docs/pim_qat.md``, 'Trained ADC ranges'): unless the spec's ``adc.range`` is
``full_scale``, each layer's ADC step is a parameter (``adc_log_step``, log form), started from
the ``learned`` calibration on the first batch, used by the oracle layer's plan on every forward,
and trained with LSQ's step gradient, computed on the oracle layer's partial sums and added to the
output as a zero-valued term. The ranges in use are the ``adc_range`` buffer the checkpoint
carries; ``adc.range: trained`` deploys them.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pimsim.oracle import _engine as E
from pimsim.oracle._layers import PimConv2d, PimLinear
from pimsim.training._qat import (
    SCALE_MOMENTUM,
    QuantConv2d,
    QuantLinear,
    fake_quantize_input,
    fake_quantize_weight,
    quant_layers,
)

#: Bounds of the measured gain gamma: a layer whose partial sums all fall in the ADC's dead zone
#: has gamma ~ 0, and 1 / gamma would amplify what little is left without limit.
GAIN_RANGE = (1.0 / 64.0, 64.0)

#: PIM-QAT from scratch: training batches during which a layer's input scale follows the batches
#: (QAT's moving average) before it holds (see ``_PimQatMixin._quantize_input``).
SCALE_WARMUP_STEPS = 125

#: Input scale used for an all-zero input (whose measured scale is 0).
MIN_SCALE = 1e-12


@dataclass(frozen=True)
class PimQatOptions:
    """How PIM-QAT trains (each field is one of the ablations of ``results/pim_training.md``)."""

    forward_rescale: bool = True
    """Multiply each PIM layer's output by 1 / gamma (see the module docstring)."""
    backward_rescale: bool = True
    """Divide the gradient through the PIM quantizer by eta (see the module docstring)."""
    adjusted_precision: int = 0
    """ADC bits removed during training (train at ``adc.bits - adjusted_precision``, deploy at
    ``adc.bits``); 0 trains at the deployed precision. Default 0 from our ablation
    (``results/pim_training.md`` Table 2: LeNet-5, differential, 6-bit ADC with 0.5 LSB thermal
    noise, 3 seeds x 10 chips): 1 bit fewer gave 13.9% against 22.4% at the deployed precision."""
    noise_injection: bool = False
    """Keep the spec's ADC non-idealities (thermal noise, INL/DNL, gain/offset) on while
    training (drawn anew every step); off trains with an ideal ADC. In the same ablation it
    raised accuracy under thermal noise from 22.4% to 28.4%: turn it on when the spec's ADC is
    noisy (it changes nothing for an ideal one)."""
    variability_aware: bool = False
    """Keep the spec's device variation (``cell.variation``) on while training: every step is a
    new chip (a new between-chip factor and new per-device factors)."""
    variation_scale: float = 1.0
    """With ``variability_aware``: sigmas used in training as a multiple of the spec's."""

    def describe(self) -> dict:
        """JSON form (for checkpoints and logs)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def training_arch(arch, options: PimQatOptions = PimQatOptions()):
    """The spec the PIM-QAT forward computes with: ``arch`` with ``adjusted_precision`` ADC bits
    fewer, its ADC non-idealities off unless ``noise_injection``, its device variation (and
    other device effects) off unless ``variability_aware`` (then scaled by
    ``variation_scale``)."""
    from pimsim.spec import with_overrides

    over: dict = {}
    if options.adjusted_precision:
        bits = arch.adc.bits - options.adjusted_precision
        if bits < 1:
            raise ValueError(
                f"adjusted_precision {options.adjusted_precision} leaves {bits} ADC bits"
            )
        over["adc.bits"] = bits
    if not options.noise_injection:
        for key in ("inl_lsb", "dnl_lsb", "gain_error", "offset_lsb", "thermal_noise_lsb"):
            if getattr(arch.adc.nonideal, key):
                over[f"adc.nonideal.{key}"] = 0.0
    var = arch.cell.variation
    for key in ("between_chip", "within_chip", "read_noise", "stuck_at_on", "stuck_at_off"):
        value = getattr(var, key)
        if value:
            keep = options.variability_aware and key in ("between_chip", "within_chip")
            over[f"cell.variation.{key}"] = value * options.variation_scale if keep else 0.0
    if var.drift_nu:
        over["cell.variation.drift_nu"] = 0.0
    return with_overrides(arch, over) if over else arch


@dataclass
class _Engine:
    """The oracle layer a PIM-QAT layer computes with, and what it is programmed with."""

    pim: nn.Module
    arch: object
    options: PimQatOptions
    stochastic: bool  # does the training arch draw anything (noise, variation)?
    version: tuple = ()  # (weight identity, version) last programmed
    gain_sums: list | None = None  # moments (see _moments) summed while calibrating
    chip: tuple = (0.0, 0)  # (between-chip factor, seed) of the chip computing now
    last: tuple = (1.0, 1.0)  # (gamma, eta) of the last training batch
    base_plan: object = None  # the layer's plan at full scale (trainable ranges replace its step)
    trainable: bool = False  # are the ADC ranges trained (adc.range other than full_scale)?
    tracked: int = 0  # training batches the input scale has followed (SCALE_WARMUP_STEPS: holds)
    tapped: tuple | None = None  # (mask, grad) of the forward's partial sums (see ste_terms)


class _PimQatMixin:
    """PIM-QAT forward and backward on top of a QAT layer (see the module docstring)."""

    engine: _Engine

    def _digital(self, x_q: torch.Tensor, w_q: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def _program(self) -> None:
        """Write the current weights into the oracle layer (when they changed) and draw the
        chip it computes on."""
        e = self.engine
        key = (id(self.weight), self.weight._version, e.chip)
        if key == e.version:
            return
        with torch.no_grad():
            e.pim.program(self.weight.detach())
            if e.stochastic:
                e.pim.set_chip(e.arch, e.chip[0], e.chip[1])
        e.version = key

    def _step(self) -> torch.Tensor:
        """The ADC step(s) exp(adc_log_step), kept within [1, nominal full scale / largest code]
        (the parameter is clamped there before use)."""
        e = self.engine
        levels = e.base_plan.code_range[1]
        top = max(e.base_plan.full_scale, float(levels)) / levels
        with torch.no_grad():
            self.adc_log_step.clamp_(0.0, math.log(top))
        return self.adc_log_step.exp()

    def _ranges(self) -> torch.Tensor:
        """The ADC ranges (partial-sum units, float64) the current step(s) give: what the
        forward converts with and what ``adc_range`` stores."""
        levels = self.engine.base_plan.code_range[1]
        return self._step().detach().to(torch.float64) * levels

    def _set_ranges(self) -> torch.Tensor | None:
        """Trainable ranges: point the oracle layer's plan at the current ranges and return the
        step(s) (a tensor that carries the gradient), or, before the first batch, make the oracle
        layer calibrate them on this batch (``learned``, or the percentile for ``calibrated``)
        and return None. Fixed ranges: None."""
        from pimsim.oracle._engine import plan_with_range

        e = self.engine
        if not e.trainable:
            return None
        if self.adc_range.numel() == 0:
            e.pim.plan = e.base_plan
            policy = "calibrated" if e.arch.adc.range == "calibrated" else "learned"
            e.pim.calibrating = (policy, e.arch.adc.range_percentile)
            return None
        step = self._step()
        ranges = step.detach().to(torch.float64) * e.base_plan.code_range[1]
        e.pim.plan = plan_with_range(e.base_plan, ranges, e.pim.name)
        self.adc_range = ranges.detach().clone()
        return step

    def _take_calibration(self) -> torch.Tensor:
        """After the oracle layer calibrated its ranges on a batch: start the trained ranges (the
        step parameter and ``adc_range``) from them; returns the step(s)."""
        e = self.engine
        plan = e.pim.plan
        levels = plan.code_range[1]
        if plan.adc_steps is None:
            ranges = torch.tensor([max(plan.step, 1.0) * levels], dtype=torch.float64)
        else:
            ranges = plan.adc_steps.detach().to(torch.float64).cpu() * levels
        ranges = ranges.reshape(self.adc_log_step.shape)
        with torch.no_grad():
            self.adc_log_step.copy_((ranges / levels).log())
        self.adc_range = self._ranges().clone()
        return self._step()

    def _quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        """Fake-quantize ``x`` with the layer's input scale, held fixed once it is set: the scale
        is the DAC's range, and the ADC ranges (partial-sum units) are trained for it. Letting
        it follow the batch maxima, as digital QAT does, feeds back: the PIM error inflates the
        next layer's maxima, a larger scale shrinks the partial sums into the ADC's dead zone,
        which adds more error (measured, LeNet-5 W4A4 native 4-bit ADC at a learning rate of
        0: the training loss rose 1.41, 1.43, 1.50 over three epochs with the moving average,
        1.20, 1.22, 1.21 with the scale held). A layer trained from scratch has no scale to
        hold: it follows the batches as in QAT (``engine.tracked`` counts them) for its first
        :data:`SCALE_WARMUP_STEPS` training batches, then holds. The MLP from scratch, W4A4,
        native, 4-bit ADC, 128 rows: training loss 1.83, 1.04, 1.06, 1.17, 1.37, ..., 5.54 over
        the recipe's 20 epochs (73.1%) while the scale follows every batch; 1.82, 1.10, 0.92,
        0.85, ..., 0.76 over 12 epochs (84.1%) held after 125."""
        e = self.engine
        if self.training and (e.tracked < SCALE_WARMUP_STEPS or not self.input_scale > 0):
            e.tracked += 1
            return super()._quantize_input(x)  # from scratch: the moving average of QAT
        scale = self.input_scale if self.input_scale > 0 else self._batch_scale(x)
        if scale <= 0:  # an all-zero input: nothing to quantize
            return x
        return fake_quantize_input(x, scale.to(x.dtype), self.input_bits, self.signed_input)

    def _tap_partials(self, calibrating: bool) -> bool:
        """Whether this forward's oracle pass hands its partial sums to ``_through_adc`` (a
        trainable-range training step, no calibration on this batch, one chunk, no read noise:
        then they are the very partial sums ``_through_adc`` would compute again)."""
        e = self.engine
        pim = e.pim
        return (
            e.trainable
            and self.training
            and not calibrating
            and pim.chunk is None
            and (pim.noise is None or pim.noise.g_sq is None)
        )

    def _through_adc(self, x_q, w_q, step, like):
        """What the PIM result's gradient flows through: ``(masked, digital, range_term)``, each
        shaped like the layer's output ``like``.

        ``digital`` is the digital product y_d = sum_g d_g (no gradient; for the rescaling
        moments), d_g the product of row group g (one ADC read) in real units. ``masked`` =
        sum_g m_g d_g carries the straight-through gradient of every partial-sum quantizer: m_g
        (per sample, row group and column) is the share of the shift-and-add weight |a_i| of the
        group's conversions (input cycle x weight slice x polarity) whose partial sum fell
        within the ADC's range (a clipped conversion passes no gradient, as the clip's
        derivative is 0); with one conversion per group it is the exact STE of clip(round(.)),
        without clipping it is y_d's gradient. ``range_term`` (zero in value; None when ``step``
        is None) carries LSQ's step gradient: for y = sum_i a_i step clip(round(p_i / step),
        lo, hi), dy/dstep = sum_i a_i (q_i - p_i / step) in range and a_i x (the clip bound)
        outside, times LSQ's gradient scale 1 / sqrt(N code_max), N the partial sums one sample
        converts with one step. The partial sums are the oracle layer's (its plan, inputs and
        cells, no second read-noise draw): those of this step's forward pass where it handed
        them over (``engine.tapped``, see :meth:`_tap_partials`), else computed again here; the
        forward value is not recomputed."""
        pim = self.engine.pim
        plan = pim.plan
        m, n = plan.matrices, plan.n_cols
        g_rows = plan.row_index
        samples = x_q.shape[0]
        # differentiable products per row group: [rows, M, G, N]
        rows = pim.input_rows(x_q)
        b = rows.shape[0]
        xm = rows.reshape(b, m, plan.k_rows)
        xg = torch.cat([xm, xm.new_zeros(b, m, 1)], dim=2)[:, :, g_rows]  # [rows, M, G, R]
        wm = pim._matrices(w_q)[0].to(xm.dtype)  # [M, K, N]
        wg = torch.cat([wm, wm.new_zeros(m, 1, n)], dim=1)[:, g_rows]  # [M, G, R, N]
        d = torch.einsum("bmgr,mgrn->bmgn", xg, wg)
        digital = d.detach().sum(dim=2)
        lo, hi = plan.code_range
        shape = E.group_shape(plan)
        s_weights, c_weights = plan.shift_add
        tapped, self.engine.tapped = self.engine.tapped, None
        if tapped is not None:  # the terms of the oracle layer's own partial sums (forward)
            mask, grad = tapped
        else:  # the ADC's partial sums of the same inputs on the programmed cells
            with torch.no_grad():
                x_int, _ = pim.quantize_input(rows.detach())
                xl = E.layout_inputs(plan, E.input_cycles(plan, x_int))
                partial = E.column_partials(plan, xl, pim.w_layout, pim.noise, read_noise=False)
                mask, grad = ste_terms(plan, partial, b, step is not None)
                del partial
        masked = (d * mask).sum(dim=2)  # [rows, M, N]
        term = None
        if step is not None:
            groups = math.prod(shape)
            scale = 1.0 / math.sqrt(grad.numel() / (samples * groups) * hi)
            s = step.to(torch.float32).view(shape if step.numel() > 1 else [1] * 7)
            signs = E.polarity_signs(plan)
            y = torch.einsum(
                "mgcbpsn,c,p,s->bmn",
                grad * ((s - s.detach()) * scale),
                torch.tensor(c_weights, dtype=torch.float32, device=grad.device),
                torch.tensor(signs, dtype=torch.float32, device=grad.device),
                torch.tensor(s_weights, dtype=torch.float32, device=grad.device),
            )
            y = E.subtract_reference(plan, y)  # [rows, M, N]
            out_scale = (pim.weight_scale.to(torch.float64) * pim.input_scale).to(torch.float32)
            term = y * out_scale.view(1, m, n)

        def as_output(t):
            if like.dim() == 4:  # conv rows (sample, position) -> [B, C, H, W]
                return t.reshape(samples, -1, m * n).transpose(1, 2).reshape(like.shape)
            return t.reshape(like.shape)

        return (
            as_output(masked),
            as_output(digital),
            None if term is None else as_output(term),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The oracle's PIM result for the value, the digital STE product for the gradient, both
        rescaled as the options say; with trainable ADC ranges, the value converts with the
        current ranges and the output carries the LSQ gradient of the step(s)."""
        x_q = self._quantize_input(x)
        e = self.engine
        self._program()
        pim = e.pim
        scale = float(self.input_scale) if self.input_scale > 0 else None
        if scale is None:  # an uncalibrated eval: the batch's own scale
            scale = float(self._batch_scale(x))
        # an all-zero input has no scale; any positive one gives its zero integers
        pim.input_scale.fill_(max(scale, MIN_SCALE))
        step = self._set_ranges()
        calibrating = e.trainable and step is None
        e.tapped = None
        with torch.no_grad():
            if self._tap_partials(calibrating):  # _through_adc's terms from these partial sums
                lsq = step.requires_grad
                kept = []
                with E.watching_partials(lambda p, t, b: kept.append(ste_terms(p, t, b, lsq))):
                    value = pim(x_q.detach())
                e.tapped = kept[0] if len(kept) == 1 else None
                del kept
            else:
                value = pim(x_q.detach())
        if calibrating:
            step = self._take_calibration()
        if not (self.training or e.gain_sums is not None):  # plain eval: the value alone
            eta = float(self.output_scale)
            out = value * eta if eta != 1.0 else value
            return self._add_bias(out)
        w_q = fake_quantize_weight(self.weight, self.weight_bits)
        range_term = None
        if e.trainable and self.training:  # ranges below full scale clip: through each ADC
            source, digital, range_term = self._through_adc(
                x_q, w_q, step if step.requires_grad else None, value
            )
        else:
            digital = self._digital(x_q, w_q)
            source = digital
        sums = _moments(value, digital.detach())
        if e.gain_sums is not None:
            e.gain_sums = [a + b for a, b in zip(e.gain_sums, sums, strict=True)]
        if self.training:
            gamma, eta = rescaling(*sums)
            e.last = (gamma, eta)
            if e.options.forward_rescale:
                with torch.no_grad():
                    if self.scale_seen:
                        self.output_scale.lerp_(self.output_scale.new_tensor(eta), SCALE_MOMENTUM)
                    else:
                        self.output_scale.fill_(eta)
                        self.scale_seen = True
            forward = eta if e.options.forward_rescale else 1.0
            slope = forward / (eta if e.options.backward_rescale else 1.0)
            eta = forward
        else:  # calibrating in eval: no gradient, only the value matters
            eta = float(self.output_scale)
            slope = 1.0
        # value exactly eta y_p (written so: d + (v - d) can be one float32 ulp off v)
        grad = source * slope
        out = (value * eta if eta != 1.0 else value) + (grad - grad.detach())
        if range_term is not None and self.training:
            out = out + range_term * eta  # zero in value
        return self._add_bias(out)

    def _add_bias(self, out: torch.Tensor) -> torch.Tensor:
        if self.bias is None:
            return out
        return out + (self.bias.view(1, -1, 1, 1) if out.dim() == 4 else self.bias)


def ste_terms(plan, partial: torch.Tensor, b: int, lsq: bool):
    """``(mask, grad)`` of :meth:`_PimQatMixin._through_adc` from the partial sums ``partial``
    [M*G, C*B, P*S*N'] of ``b`` rows that the ADC converts with ``plan``: with u = p / step in
    float32, ``mask`` [rows, M, G, N] is the in-range share of the shift-and-add magnitudes of
    each group's conversions, ``grad`` [M, G, C, B, P, S, N'] (when ``lsq``, else None) is LSQ's
    step gradient per partial sum (the clip bound outside the range, round(u) - u inside).
    ``partial`` is left unchanged. On CPU one fused kernel pass (:func:`pimsim.oracle._kernels.
    ste_terms`), else torch operations; both give the same numbers (the mask's sums add powers
    of two, exact in float32 in any order)."""
    lo, hi = plan.code_range
    shape = E.group_shape(plan)
    s_weights, c_weights = plan.shift_add
    fine = plan.adc_steps is not None
    dev = partial.device
    current = (plan.adc_steps.to(dev, torch.float32) if fine
               else torch.tensor(plan.step, device=dev))
    a = (
        torch.tensor(c_weights, device=dev).abs().view(1, 1, -1, 1, 1, 1, 1)
        * torch.tensor(s_weights, device=dev).abs().view(1, 1, 1, 1, 1, -1, 1)
    ).to(torch.float32)
    a = a.expand(1, 1, plan.cycles, 1, plan.polarities, plan.slices, 1)
    n = plan.n_cols
    if E.use_kernels(partial) and partial.is_contiguous():
        m, g, c, cols = plan.matrices, plan.row_groups, plan.cycles, plan.columns
        q = plan.polarities * plan.slices * cols
        full = (m, 1, c, 1, plan.polarities, plan.slices, cols)
        steps = (current.view(shape) if fine else current.view([1] * 7)).expand(full)
        sums, grad = E.kernels().ste_terms(
            partial, (m, g, c, b, q), cols, steps.reshape(m, c, q).contiguous(),
            a.expand(full).reshape(m, c, q)[0].contiguous(), (lo, hi), lsq,
        )  # fmt: skip
        mask = sums / a.sum()  # [M, G, B, N']
        if grad is not None:
            grad = grad.view(m, g, c, b, plan.polarities, plan.slices, cols)
        return mask[..., :n].permute(2, 0, 1, 3), grad
    u = E._view7(plan, partial.to(torch.float32), b)  # [M, G, C, B, P, S, N']
    u = u / (current.view(shape) if fine else current)
    inside = ((u >= lo) & (u <= hi)).to(torch.float32)
    mask = (inside * a).sum(dim=(2, 4, 5)) / a.sum()  # [M, G, B, N']
    del inside
    grad = None
    if lsq:
        grad = torch.where(u < lo, float(lo), torch.where(u > hi, float(hi), u.round() - u))
    return mask[..., :n].permute(2, 0, 1, 3), grad  # mask: [rows, M, G, N]


def _moments(value: torch.Tensor, digital: torch.Tensor) -> tuple[float, float, float]:
    """(<y_p, y_d>, <y_d, y_d>, <y_p, y_p>) in float64."""
    p, d = value.to(torch.float64), digital.to(torch.float64)
    return float((p * d).sum()), float(d.square().sum()), float(p.square().sum())


def rescaling(cross: float, digital: float, pim: float) -> tuple[float, float]:
    """(gamma, eta) from the moments of :func:`_moments`: the Bussgang gain gamma = <y_p, y_d> /
    <y_d, y_d> and the forward factor eta = sqrt(<y_d, y_d> / <y_p, y_p>), the factor that gives
    the PIM result the digital result's magnitude (1 / sqrt(gamma^2 + Var(E) / Var(y_d))). Both
    are clipped to GAIN_RANGE; each is 1 when its denominator is 0."""
    lo, hi = GAIN_RANGE
    gamma = min(max(cross / digital, lo), hi) if digital > 0 else 1.0
    eta = min(max(math.sqrt(digital / pim), lo), hi) if pim > 0 else 1.0
    return gamma, eta


class PimQatConv2d(_PimQatMixin, QuantConv2d):
    """:class:`QuantConv2d` trained through the oracle's :class:`~pimsim.oracle.PimConv2d`."""

    def _digital(self, x_q, w_q):
        return self._conv_forward(x_q, w_q, None)


class PimQatLinear(_PimQatMixin, QuantLinear):
    """:class:`QuantLinear` trained through the oracle's :class:`~pimsim.oracle.PimLinear`."""

    def _digital(self, x_q, w_q):
        return F.linear(x_q, w_q)


PIMQAT_MODULES = (PimQatConv2d, PimQatLinear)


def attach_pim(
    model: nn.Module,
    arch,
    input_shape,
    options: PimQatOptions = PimQatOptions(),
    *,
    chunk: int | None = None,
) -> nn.Module:
    """A copy of the quantized ``model`` (from :func:`~pimsim.training.quantize_model`) whose
    quantized layers compute through ``arch``'s PIM quantization (the training arch of
    ``options``, :func:`training_arch`). The mapping comes from :func:`pimsim.map_network` on the
    traced model, as at deployment. The weights, input scales and output scales are the same
    parameters and buffers as the QAT model's, so :func:`detach_pim` (or saving the state dict)
    gives back a QAT model that :func:`pimsim.oracle.convert` deploys.

    Unless ``arch``'s ``adc.range`` is ``full_scale``, each layer gets a trainable ADC step
    ``adc_log_step`` (one per range group of ``adc.range_granularity``), started from the layer's
    stored ``adc_range`` where it has one, else from the ``learned`` calibration on the first
    batch it computes (see the module docstring); :func:`detach_pim` stores the ranges it gives
    in ``adc_range``."""
    from pimsim.mapping import map_network
    from pimsim.oracle._convert import trained_range
    from pimsim.oracle._engine import group_shape, make_plan
    from pimsim.oracle._layers import replace_module
    from pimsim.training._qat import dequantize_model
    from pimsim.workload import from_torch

    train_arch = training_arch(arch, options)
    trainable = train_arch.adc.range != "full_scale"
    layers = quant_layers(model)
    if not layers:
        raise ValueError("attach_pim needs a quantized model (pimsim.training.quantize_model)")
    workload = from_torch(dequantize_model(model), input_shape)
    mapping = map_network(train_arch, workload)
    stochastic = _stochastic(train_arch)
    out = copy.deepcopy(model)
    for name, module in quant_layers(out).items():
        if name not in mapping.layers:
            raise ValueError(f"{name}: not a mapped layer of the traced model")
        cls = PimQatConv2d if isinstance(module, nn.Conv2d) else PimQatLinear
        new = _as_pimqat(module, cls)
        plan = make_plan(train_arch, mapping.layers[name], module.signed_input)
        oracle_cls = PimConv2d if isinstance(module, nn.Conv2d) else PimLinear
        with torch.no_grad():
            pim = oracle_cls(name, plan, module, input_scale=1.0, chunk=chunk)
        pim.bias = None  # the bias is added after rescaling
        pim.output_scale = 1.0  # rescaling is this layer's; the oracle layer gives y_p
        new.engine = _Engine(pim, train_arch, options, stochastic, base_plan=plan,
                             trainable=trainable,
                             tracked=SCALE_WARMUP_STEPS if float(module.input_scale) > 0 else 0)
        if trainable:
            shape = [1] if plan.granularity == "layer" else group_shape(plan)
            levels = plan.code_range[1]
            stored = trained_range(module)
            log_step = torch.zeros(shape, dtype=torch.float64)
            if stored is not None and stored.numel() in (1, math.prod(shape)):
                fs = stored.to(torch.float64).reshape(-1).expand(math.prod(shape))
                log_step = (fs / levels).clamp(min=1.0).log().reshape(shape).clone()
                new.adc_range = (log_step.exp() * levels).clone()
            else:  # set from the first batch (see _set_ranges)
                new.adc_range = torch.zeros(0, dtype=torch.float64)
            new.adc_log_step = nn.Parameter(log_step)
        replace_module(out, name, new)
    out.pim_options = options
    return out


def _stochastic(arch) -> bool:
    from pimsim.oracle import _nonideal as NI

    return bool(NI.device_active(arch) or NI.adc_active(arch) or arch.cell.variation.read_noise)


def _as_pimqat(module: nn.Module, cls: type) -> nn.Module:
    """``module`` (a QuantConv2d/QuantLinear) as ``cls``, sharing its parameters and buffers."""
    new = cls.__new__(cls)
    new.__dict__ = module.__dict__.copy()
    for key in ("_parameters", "_buffers", "_modules"):
        new.__dict__[key] = dict(module.__dict__[key])
    new.scale_seen = False
    return new


def detach_pim(model: nn.Module) -> nn.Module:
    """A copy of a PIM-QAT model with plain :class:`QuantConv2d` / :class:`QuantLinear` layers
    holding the trained weights, input scales, output scales and trained ADC ranges
    (``adc_range``, from the current steps; what checkpoints store)."""
    from pimsim.oracle._layers import replace_module

    out = copy.deepcopy(model)
    for name, module in list(out.named_modules()):
        if isinstance(module, PIMQAT_MODULES):
            base = QuantConv2d if isinstance(module, nn.Conv2d) else QuantLinear
            plain = base.__new__(base)
            plain.__dict__ = {
                k: v for k, v in module.__dict__.items() if k not in ("engine", "scale_seen")
            }
            plain._parameters = dict(module._parameters)
            plain._buffers = dict(module._buffers)
            if plain._parameters.pop("adc_log_step", None) is not None:
                ready = module.adc_range.numel() > 0
                plain._buffers["adc_range"] = (
                    module._ranges().clone() if ready else torch.zeros(0, dtype=torch.float64)
                )
            replace_module(out, name, plain)
    if hasattr(out, "pim_options"):
        del out.pim_options
    return out


def pimqat_layers(model: nn.Module) -> dict[str, _PimQatMixin]:
    """``{qualified name: module}`` of the PIM-QAT layers of ``model``."""
    return {n: m for n, m in model.named_modules() if isinstance(m, PIMQAT_MODULES)}


def draw_training_chip(model: nn.Module, generator: np.random.Generator) -> None:
    """Variability-aware training: make the next step run on a new chip (one between-chip
    factor for the whole model, a fresh device seed per layer), drawn from ``generator``."""
    layers = pimqat_layers(model)
    if not layers:
        return
    arch = next(iter(layers.values())).engine.arch
    sigma = arch.cell.variation.between_chip
    e_chip = float(generator.normal(0.0, sigma)) if sigma else 0.0
    for layer in layers.values():
        if layer.engine.stochastic:
            layer.engine.chip = (e_chip, int(generator.integers(2**62)))


def calibrate_output_scales(model: nn.Module, batches) -> dict:
    """Set every PIM-QAT layer's output scale to 1 / gamma measured over ``batches`` (inputs, or
    (inputs, labels) pairs) in eval mode on the arch the layers are attached to (attach the
    deployed arch with :func:`deployment_options` first after adjusted-precision training).
    Returns ``{layer: gamma}``. Layers are measured together in one pass, each seeing its inputs
    through the already-rescaled layers before it. A layer trained without forward rescaling
    keeps its output scale of 1."""
    layers = pimqat_layers(model)
    for layer in layers.values():
        layer.engine.gain_sums = [0.0, 0.0, 0.0]
    was = model.training
    model.eval()
    with torch.no_grad():
        for batch in batches:
            model(batch[0] if isinstance(batch, list | tuple) else batch)
    model.train(was)
    gains = {}
    for name, layer in layers.items():
        gamma, eta = rescaling(*layer.engine.gain_sums)
        layer.engine.gain_sums = None
        gains[name] = gamma
        if layer.engine.options.forward_rescale:
            layer.output_scale.fill_(eta)
    return gains


def deployment_options(options: PimQatOptions) -> PimQatOptions:
    """``options`` as the deployed chip computes: the spec's ADC bits, ideal ADC and cells (the
    rescaling choices kept)."""
    return dataclasses.replace(
        options, adjusted_precision=0, noise_injection=False, variability_aware=False
    )


__all__ = [
    "GAIN_RANGE",
    "PIMQAT_MODULES",
    "PimQatConv2d",
    "PimQatLinear",
    "PimQatOptions",
    "attach_pim",
    "calibrate_output_scales",
    "deployment_options",
    "detach_pim",
    "draw_training_chip",
    "pimqat_layers",
    "training_arch",
]
