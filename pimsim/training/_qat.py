"""Conventional digital quantization-aware training (QAT) with a straight-through estimator.

The quantizers follow DESIGN.md's Conventions exactly, so that a QAT model and the PIM oracle agree
on every integer:

- weights: symmetric integers w_q = round_half_even(w / t) in [-(2^(b-1) - 1), 2^(b-1) - 1], one
  scale per output channel, t = max|w| / (2^(b-1) - 1); the bias stays in float (it is added
  digitally after recombination);
- inputs: one scale s per tensor; unsigned x_q = clip(round_half_even(x / s), 0, 2^b - 1) when
  the layer's input cannot be negative (image pixels in [0, 1], or after ReLU/ReLU6, possibly
  through pooling/flatten/concat), signed symmetric x_q = clip(round_half_even(x / s),
  -(2^(b-1) - 1), 2^(b-1) - 1) otherwise.

``torch.round`` rounds half to even. The fake-quantized forward is the straight-through estimator
x + (q - x).detach() on the clipped input, written q + (x - x.detach()) so that the forward value
is exactly q (the first form can be one float32 ulp off): the gradient is the identity inside the
representable range and zero outside it (clipped straight-through estimator).

**These modules are the "activation scales from a QAT model"** that DESIGN's input-quantization
convention refers to: the PIM oracle reads each :class:`QuantConv2d` / :class:`QuantLinear`'s
``input_scale`` buffer (the frozen per-tensor scale s), its ``signed_input`` flag and its
``input_bits``/``weight_bits``, instead of calibrating scales itself.
"""

from __future__ import annotations

import copy
import re

import torch
import torch.nn.functional as F
from torch import nn

from pimsim.oracle._layers import input_levels, non_negative_inputs, quantize_weight, replace_module

#: Momentum of the exponential moving average of the input scale during training.
SCALE_MOMENTUM = 0.1


def integer_weight(weight: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(w_q, t)``: the weight integers (as a tensor shaped and typed like ``weight``) and the
    per-output-channel scale, so that ``w_q * t`` (broadcast over channel 0) is the fake-quantized
    weight. The integers are the oracle's own (:func:`~pimsim.oracle._layers.quantize_weight`,
    in float64), so the QAT model and the oracle agree on every one."""
    q, t = quantize_weight(weight, bits)
    return q.to(weight.dtype), t.to(weight.dtype)


def fake_quantize_weight(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Weight rounded onto its per-channel integer grid, with an identity (STE) gradient."""
    q, t = integer_weight(weight, bits)
    shape = (-1,) + (1,) * (weight.dim() - 1)
    return q * t.view(shape) + (weight - weight.detach())


def integer_input(x: torch.Tensor, scale: torch.Tensor | float, bits: int, signed: bool):
    """x_q = clip(round_half_even(x / s), lo, hi) as a float tensor (see
    :func:`~pimsim.oracle._layers.input_levels`)."""
    lo, hi = input_levels(bits, signed)
    return torch.round(x / scale).clamp_(lo, hi)


def fake_quantize_input(
    x: torch.Tensor, scale: torch.Tensor | float, bits: int, signed: bool
) -> torch.Tensor:
    """``x`` quantized to ``integer_input(x) * s``; gradient 1 inside [lo s, hi s], 0 outside."""
    lo, hi = input_levels(bits, signed)
    clipped = x.clamp(lo * scale, hi * scale)
    q = integer_input(x.detach(), scale, bits, signed) * scale
    return q + (clipped - clipped.detach())


class _QuantMixin:
    """Shared state and input handling of :class:`QuantConv2d` and :class:`QuantLinear`."""

    weight_bits: int
    input_bits: int
    signed_input: bool
    input_scale: torch.Tensor

    def __init__(
        self,
        *args,
        weight_bits: int = 8,
        input_bits: int = 8,
        signed_input: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)  # the torch layer's own arguments
        self._init_quant(weight_bits, input_bits, signed_input)

    def _init_quant(self, weight_bits: int, input_bits: int, signed_input: bool) -> None:
        if weight_bits < 2:
            raise ValueError(f"weight_bits must be >= 2 (symmetric integers), got {weight_bits}")
        if input_bits < (2 if signed_input else 1):
            raise ValueError(f"input_bits {input_bits} too small for signed={signed_input}")
        self.weight_bits = int(weight_bits)
        self.input_bits = int(input_bits)
        self.signed_input = bool(signed_input)
        # 0 = not calibrated yet; set from the first training batch, then an EMA.
        self.register_buffer("input_scale", torch.zeros(()))
        # PIM-QAT's forward rescaling (1 / gamma, see pimsim.training._pimqat), folded into the
        # digital output scale by pimsim.oracle.convert; 1 for conventional QAT. The digital
        # forward of this module ignores it (it compensates the PIM quantization alone).
        self.register_buffer("output_scale", torch.ones(()))
        # The ADC ranges PIM-QAT trained for this layer (partial-sum units: the full scale each
        # ADC spans; one value per layer, or one per range group of adc.range_granularity, in
        # that group shape), read by pimsim.oracle.convert under adc.range: trained. Empty
        # (numel 0) when the layer has none (digital QAT, or PIM-QAT at full scale).
        self.register_buffer("adc_range", torch.zeros(0, dtype=torch.float64))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # adc_range has the shape of what was trained (or none): take the stored one's shape,
        # and accept state dicts written before it existed
        key = prefix + "adc_range"
        if key in state_dict:
            self.adc_range = torch.empty_like(state_dict[key], dtype=torch.float64)
        else:
            state_dict[key] = torch.zeros(0, dtype=torch.float64)
            self.adc_range = torch.zeros(0, dtype=torch.float64)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def input_qmax(self) -> int:
        """Largest input integer: 2^b - 1 unsigned, 2^(b-1) - 1 signed."""
        return input_levels(self.input_bits, self.signed_input)[1]

    def _batch_scale(self, x: torch.Tensor) -> torch.Tensor:
        return x.detach().abs().amax().to(self.input_scale.dtype) / self.input_qmax()

    def _quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        """Update the scale (training) and fake-quantize ``x`` with it.

        In training the scale is an EMA (momentum :data:`SCALE_MOMENTUM`) of max|x| / qmax, started
        at the first batch's value; in eval it is frozen. An uncalibrated module (scale 0) in eval
        uses the batch's own scale without storing it.
        """
        if self.training:
            with torch.no_grad():
                batch = self._batch_scale(x)
                if self.input_scale > 0:
                    self.input_scale.lerp_(batch, SCALE_MOMENTUM)
                else:
                    self.input_scale.copy_(batch)
            scale = self.input_scale
        else:
            scale = self.input_scale if self.input_scale > 0 else self._batch_scale(x)
        if scale <= 0:  # an all-zero input: nothing to quantize
            return x
        return fake_quantize_input(x, scale.to(x.dtype), self.input_bits, self.signed_input)

    def integer_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(w_q, t)``: this layer's weight integers and per-output-channel scale."""
        return integer_weight(self.weight, self.weight_bits)

    def extra_repr(self) -> str:
        sign = "signed" if self.signed_input else "unsigned"
        return (
            f"{super().extra_repr()}, weight_bits={self.weight_bits}, "
            f"input_bits={self.input_bits} ({sign})"
        )


class QuantConv2d(_QuantMixin, nn.Conv2d):
    """:class:`torch.nn.Conv2d` with fake-quantized weights and inputs (see the module docstring).

    Extra arguments: ``weight_bits``, ``input_bits``, ``signed_input``; the buffer ``input_scale``
    (a scalar tensor) holds the per-tensor input scale s; ``adc_range`` the ADC ranges PIM-QAT
    trained (empty when none).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolution of the fake-quantized input with the fake-quantized weight (+ bias)."""
        w = fake_quantize_weight(self.weight, self.weight_bits)
        return self._conv_forward(self._quantize_input(x), w, self.bias)


class QuantLinear(_QuantMixin, nn.Linear):
    """:class:`torch.nn.Linear` with fake-quantized weights and inputs (see the module docstring).

    Extra arguments: ``weight_bits``, ``input_bits``, ``signed_input``; the buffer ``input_scale``
    (a scalar tensor) holds the per-tensor input scale s; ``adc_range`` the ADC ranges PIM-QAT
    trained (empty when none).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Linear map of the fake-quantized input by the fake-quantized weight (+ bias)."""
        w = fake_quantize_weight(self.weight, self.weight_bits)
        return F.linear(self._quantize_input(x), w, self.bias)


QUANT_MODULES = (QuantConv2d, QuantLinear)


def _geometry(module: nn.Module) -> tuple[tuple, dict]:
    """Constructor arguments of a Conv2d/Linear (sizes, keyword arguments) matching ``module``."""
    kwargs = dict(bias=module.bias is not None, device=module.weight.device)
    kwargs["dtype"] = module.weight.dtype
    if isinstance(module, nn.Conv2d):
        sizes = (module.in_channels, module.out_channels, module.kernel_size)
        for key in ("stride", "padding", "dilation", "groups", "padding_mode"):
            kwargs[key] = getattr(module, key)
        return sizes, kwargs
    return (module.in_features, module.out_features), kwargs


def _uninitialised(cls: type[nn.Module], *args, device, **kwargs) -> nn.Module:
    """``cls(*args, **kwargs)`` on ``device`` with uninitialised tensors: built on the meta device
    so that no random initialisation draws from the global RNG (its values are overwritten)."""
    return cls(*args, device="meta", **kwargs).to_empty(device=device)


def _copy_parameters(source: nn.Module, target: nn.Module) -> nn.Module:
    with torch.no_grad():
        target.weight.copy_(source.weight)
        if source.bias is not None:
            target.bias.copy_(source.bias)
    target.train(source.training)
    return target


def _plain_copy(module: nn.Module) -> nn.Module:
    """``module`` as a plain Conv2d/Linear with the same parameters (for tracing)."""
    sizes, kwargs = _geometry(module)
    cls = nn.Conv2d if isinstance(module, nn.Conv2d) else nn.Linear
    return _copy_parameters(module, _uninitialised(cls, *sizes, **kwargs))


def _quant_copy(module: nn.Module, weight_bits: int, input_bits: int, signed: bool) -> nn.Module:
    sizes, kwargs = _geometry(module)
    cls = QuantConv2d if isinstance(module, nn.Conv2d) else QuantLinear
    bits = dict(weight_bits=weight_bits, input_bits=input_bits, signed_input=signed)
    new = _copy_parameters(module, _uninitialised(cls, *sizes, **kwargs, **bits))
    new.input_scale.zero_()
    new.output_scale.fill_(1.0)  # built uninitialised: every buffer is set here
    if isinstance(module, QUANT_MODULES):
        new.output_scale.copy_(module.output_scale)
        if (module.weight_bits, module.input_bits) == (weight_bits, input_bits):
            # trained ADC ranges hold for the same integers only
            new.adc_range = module.adc_range.detach().clone().to(torch.float64)
    if isinstance(module, QUANT_MODULES) and module.input_scale > 0:
        # Requantizing: keep the calibrated range max|x| = s * qmax, re-expressed in new bits.
        with torch.no_grad():
            new.input_scale.copy_(module.input_scale * module.input_qmax() / new.input_qmax())
    return new


def input_signedness(
    model: nn.Module, input_shape, input_nonnegative: bool = True
) -> dict[str, bool]:
    """``{qualified name: signed}`` for every Conv2d/Linear module of ``model``.

    The layer graph comes from :func:`pimsim.from_torch` (``input_shape`` includes a batch of 1);
    a layer's input is unsigned when the oracle's rule says it is non-negative
    (:func:`~pimsim.oracle._layers.non_negative_inputs`). A module called several times is signed
    if any call is. A module the trace never reaches is signed (the safe choice).
    """
    from pimsim.workload import from_torch

    # Trace a float twin so that quantized models trace exactly like the network they came from.
    graph = from_torch(dequantize_model(model), input_shape)
    nonneg = non_negative_inputs(graph, input_nonnegative)
    signed: dict[str, bool] = {}
    modules = dict(model.named_modules())
    for layer in graph.layers:
        if layer.kind in ("conv", "linear", "rnn"):
            name = layer.name if layer.name in modules else re.sub(r"_\d+$", "", layer.name)
            signed[name] = signed.get(name, False) or not nonneg[layer.name]
    return {
        name: signed.get(name, True)
        for name, module in model.named_modules()
        if isinstance(module, (nn.Conv2d, nn.Linear))
    }


def dequantize_model(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` with every :class:`QuantConv2d` / :class:`QuantLinear` replaced by
    a plain Conv2d / Linear holding the same float weights (input scales are dropped).

    :func:`pimsim.from_torch` traces the quantizers' arithmetic inside a quantized layer; tracing
    this float twin gives the layer graph of the network the quantized model came from.
    """
    plain = copy.deepcopy(model)
    for name, module in list(plain.named_modules()):
        if isinstance(module, QUANT_MODULES):
            replace_module(plain, name, _plain_copy(module))
    return plain


def quantize_model(
    model: nn.Module,
    weight_bits: int = 8,
    input_bits: int = 8,
    *,
    input_shape,
    input_nonnegative: bool = True,
) -> nn.Module:
    """A deep copy of ``model`` with every Conv2d/Linear replaced by :class:`QuantConv2d` /
    :class:`QuantLinear` (weights copied), ``signed_input`` decided per layer by
    :func:`input_signedness` on ``input_shape`` (batch of 1 included, e.g. ``(1, 1, 28, 28)``).

    Layers already quantized are requantized: their calibrated input range is kept and
    re-expressed as a scale for ``input_bits``. The oracle reads ``input_scale``, ``signed_input``
    and the bit widths from the returned modules.
    """
    from pimsim.workload._modules import decompose

    # attention and RNNs as Linear modules, the matrices the arrays hold
    model = decompose(copy.deepcopy(model))
    signs = input_signedness(model, input_shape, input_nonnegative)
    quantized = copy.deepcopy(model)
    for name, module in list(quantized.named_modules()):
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            new = _quant_copy(module, weight_bits, input_bits, signs[name])
            replace_module(quantized, name, new)
    return quantized


def quant_layers(model: nn.Module) -> dict[str, _QuantMixin]:
    """``{qualified name: module}`` of the quantized layers of ``model``, in module order."""
    return {n: m for n, m in model.named_modules() if isinstance(m, QUANT_MODULES)}
