"""``convert``: a copy of any torch model whose conv/linear layers compute as the mapped hardware
does; ``counts``, ``reset_counts`` and ``activity`` read what the converted model did."""

from __future__ import annotations

import copy
import dataclasses
import math
import warnings
from collections import OrderedDict

import torch
from torch import nn

from pimsim.cost import Activity
from pimsim.errors import MappingError, SpecError
from pimsim.mapping import Mapping, map_network
from pimsim.oracle._engine import make_plan, plan_with_range
from pimsim.oracle._layers import (
    DigitalMatMul,
    PimConv1d,
    PimConv2d,
    PimLinear,
    PimMatMul,
    PimMatrixLayer,
    RewrittenArray,
    input_levels,
    non_negative_inputs,
    replace_module,
    scale_from_max,
)
from pimsim.oracle._nonideal import draw_chip
from pimsim.workload import from_torch
from pimsim.workload._modules import MatMul, decompose


def _signed(arch, name: str, non_negative: dict[str, bool], module, seen_min) -> bool:
    """Whether layer ``name`` takes signed inputs (DESIGN.md 'signed inputs'): the spec's
    ``signed``/``unsigned``, else what a QAT module was trained with, else signed unless the
    graph proves its input non-negative and the calibration data (``seen_min``: the smallest
    input value the layer received, None without data) never showed a negative value."""
    mode = arch.decomposition.signed_inputs
    if mode == "signed":
        return True
    if mode == "unsigned":
        return False
    if hasattr(module, "signed_input"):  # a QAT module knows how it was trained
        return bool(module.signed_input)
    return not non_negative[name] or (seen_min is not None and seen_min < 0)


def _observe(model, names, batches) -> tuple[dict[str, float], dict[str, float], float]:
    """Run the calibration batches through the float ``model``: the largest |input| and the
    smallest input of each named layer, and the smallest network input value."""
    top = dict.fromkeys(names, 0.0)
    low = dict.fromkeys(names, math.inf)
    modules = dict(model.named_modules())

    def record(n, x):
        x = x.detach()
        top[n] = max(top[n], float(x.abs().max()))
        low[n] = min(low[n], float(x.min()))

    hooks = [
        modules[n].register_forward_pre_hook(lambda mod, args, n=n: record(n, args[0]))
        for n in names
    ]
    first = math.inf
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                x = batch[0] if isinstance(batch, list | tuple) else batch
                first = min(first, float(x.min()))
                model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return top, low, first


def convert(
    model: nn.Module,
    arch,
    input_shape,
    *,
    seed: int = 0,
    mapping: Mapping | None = None,
    calibration=None,
    chunk: int | None = None,
) -> nn.Module:
    """A copy of ``model`` whose conv/linear layers compute as ``arch`` maps them. ``model`` may
    be a bare conv or linear layer; the copy is then an ``nn.Sequential`` holding it.

    Builds the workload with :func:`pimsim.from_torch` and the mapping with
    :func:`pimsim.map_network` (or takes ``mapping``); the tiling is never re-derived.
    Activation scales come from a QAT model's ``input_scale`` buffers when it has them, else from
    the ``calibration`` batches (an iterable of input tensors or (input, label) pairs), else they
    are measured on every batch (with a warning: optimistic). ``chunk`` bounds the rows (samples x
    output positions) processed at once. ``seed`` (an int or a ``numpy.random.SeedSequence``)
    draws the chip: every stochastic non-ideality of the spec comes from it.
    """
    if arch.adc.range not in ("full_scale", "trained") and calibration is None:
        raise SpecError(
            f"adc.range {arch.adc.range!r} needs calibration batches (calibration=...)",
            field="adc.range",
        )
    if calibration is not None:
        calibration = list(calibration)  # used twice (scales, ADC ranges): a generator would not be
    workload = from_torch(model, input_shape)
    if not any(True for _ in model.children()) and len(workload.layers) == 1:
        # a bare layer (convert(nn.Linear(300, 7), ...)): the tracer names it after its kind;
        # hold it under that name so that the mapped layer is a module of the model
        model = nn.Sequential(OrderedDict([(workload.layers[0].name, model)]))
        workload = from_torch(model, input_shape)
    mapping = mapping or map_network(arch, workload)
    pim = decompose(copy.deepcopy(model))  # attention and RNNs as Linear and MatMul modules
    modules = dict(pim.named_modules())
    targets = [n for n in mapping.layers if n in modules]
    missing = [n for n in mapping.layers if n not in modules]
    if missing:
        raise MappingError(
            f"mapped layers {missing} are not modules of the model (functional conv/linear, a "
            "module called more than once or a product of two activations written with @ "
            "instead of a pimsim.workload.MatMul module cannot be converted)"
        )
    top: dict[str, float] = {}
    low: dict[str, float | None] = dict.fromkeys(targets)
    input_nonnegative = True  # without data: image pixels (a runtime check warns otherwise)
    if calibration is not None:
        top, low, first = _observe(pim, targets, calibration)
        input_nonnegative = first >= 0
    non_negative = non_negative_inputs(workload, input_nonnegative)
    signed = {n: _signed(arch, n, non_negative, modules[n], low[n]) for n in targets}
    scales: dict[str, float | None] = {}
    bits = arch.decomposition.input_bits
    for n in targets:
        qat = getattr(modules[n], "input_scale", None)
        if qat is None or qat.device.type == "meta" or float(qat) <= 0:
            scales[n] = None
            continue
        scales[n] = float(qat)
        trained = getattr(modules[n], "input_bits", bits)
        was_signed = bool(getattr(modules[n], "signed_input", signed[n]))
        if (trained, was_signed) != (bits, signed[n]):
            # keep the trained range: s_new = s_old x qmax_old / qmax_new
            old_top = input_levels(trained, was_signed)[1]
            scales[n] *= old_top / input_levels(bits, signed[n])[1]
            warnings.warn(
                f"{n}: trained with {trained}-bit inputs, requantized to {bits} bits", stacklevel=2
            )
    if calibration is not None:  # DESIGN.md: max over the calibration batches / top level
        for n in targets:
            if scales[n] is None:
                scales[n] = scale_from_max(top[n], bits, signed[n])
    if any(s is None for s in scales.values()):
        warnings.warn(
            "no activation scales (neither a QAT model nor calibration batches): scales are "
            "measured on every batch, which is optimistic",
            stacklevel=2,
        )
    if arch.adc.range == "trained":
        untrained = [n for n in targets if trained_range(modules[n]) is None]
        if untrained:
            raise SpecError(
                f"adc.range 'trained' needs the ADC ranges PIM-QAT trains (adc_range of each "
                f"quantized layer), and layers {untrained} have none: train the model with "
                "pimsim train --method pimqat on an arch whose adc.range is not full_scale, or "
                "use adc.range learned or calibrated (with calibration batches)",
                field="adc.range",
            )
    proven = non_negative_inputs(workload, False)  # non-negative whatever the network input
    for n in targets:
        plan = make_plan(arch, mapping.layers[n], signed[n])
        old = modules[n]
        if arch.adc.range == "trained":
            plan = plan_with_range(plan, trained_range(old), n)
        if isinstance(old, MatMul):  # a product of two activations on rewritten arrays
            m = dataclasses.replace(mapping.layers[n], matrices=1, groups_per_array=1)
            array = RewrittenArray(n, make_plan(arch, m, signed[n]),
                                   nn.Linear(m.k_rows, m.n_cols, bias=False), scales[n], chunk)
            array.check_negative = not proven[n]
            replace_module(pim, n, PimMatMul(n, array))
            continue
        cls = PimConv1d if isinstance(old, nn.Conv1d) else PimLinear
        cls = PimConv2d if isinstance(old, nn.Conv2d) else cls
        layer = cls(n, plan, old, scales[n], chunk)
        layer.check_negative = not proven[n]  # no per-batch check where the graph proves it
        replace_module(pim, n, layer)
    for layer in workload.layers:  # products of two activations left to digital units
        if layer.kind == "matmul" and layer.name not in mapping.layers:
            if isinstance(modules.get(layer.name), MatMul):
                replace_module(pim, layer.name, DigitalMatMul(layer.name, bits))
    pim.pim_mapping = mapping
    pim.eval()
    set_chip(pim, arch, seed, calibration)
    return pim


def set_chip(pim: nn.Module, arch, seed, calibration=None) -> None:
    """Make a converted model another chip of the same design: draw every layer's cells and
    ADC from ``seed`` (an int or a ``numpy.random.SeedSequence``) and, for ``adc.range``
    ``calibrated`` or ``learned``, set each ADC's range on that chip from the ``calibration``
    batches. Quantization, tiling and weights stay as converted, so a Monte-Carlo over chips
    converts once."""
    layers = _pim_layers(pim)
    names = [n for n in pim.pim_mapping.layers if n in layers]  # mapping order: stable seeds
    chip = draw_chip(arch, names, seed)
    for n in names:
        layers[n].set_chip(arch, chip.e_chip, chip.layer_seeds[n])
    pim.pim_seed = seed
    if arch.adc.range not in ("full_scale", "trained"):  # trained ranges were set by convert
        _calibrate_adc_ranges(pim, calibration, arch.adc.range, arch.adc.range_percentile)


def trained_range(module) -> torch.Tensor | None:
    """The ADC ranges PIM-QAT trained into ``module`` (its ``adc_range`` buffer, partial-sum
    units), or None when it has none."""
    value = getattr(module, "adc_range", None)
    if value is None or value.numel() == 0 or value.device.type == "meta":
        return None
    return value.detach()


def _calibrate_adc_ranges(pim: nn.Module, batches, policy: str, percentile: float) -> None:
    """``adc.range: calibrated`` or ``learned``: set each layer's ADC ranges from the partial
    sums it produces on the calibration batches (see :meth:`PimMatrixLayer.calibrate_range`).
    Layers are calibrated in order, as a chip is: in one pass over the calibration images (one
    batch), each layer records its partial sums, sets its ranges and then computes its output
    through them, so every layer sees its inputs through the calibrated ADCs before it."""
    layers = _pim_layers(pim)
    inputs = [b[0] if isinstance(b, list | tuple) else b for b in batches]
    x = inputs[0] if len(inputs) == 1 else torch.cat(inputs)
    for layer in layers.values():  # until calibrated, a layer's ADCs span the full scale
        layer.plan = dataclasses.replace(
            layer.plan, adc_full_scale=layer.plan.full_scale, adc_steps=None
        )
        layer.calibrating = (policy, percentile)
    try:
        with torch.no_grad():
            pim(x)
        idle = [name for name, layer in layers.items() if layer.calibrating is not None]
        if idle:
            raise ValueError(f"layers {idle} did not run on the calibration batches")
    finally:
        for layer in layers.values():
            layer.calibrating = None
            layer.reset_counts()


def _pim_layers(pim_model: nn.Module) -> dict[str, PimMatrixLayer]:
    return {m.name: m for m in pim_model.modules() if isinstance(m, PimMatrixLayer)}


def counts(pim_model: nn.Module) -> dict[str, int]:
    """ADC conversions per layer since conversion or the last :func:`reset_counts`, keyed by the
    layer names of ``pimsim.evaluate`` on ``pimsim.from_torch`` of the same model."""
    return {name: layer.conversions for name, layer in _pim_layers(pim_model).items()}


def reset_counts(pim_model: nn.Module) -> None:
    """Zero every PIM layer's conversion and activity counters."""
    for layer in _pim_layers(pim_model).values():
        layer.reset_counts()


def activity(pim_model: nn.Module) -> Activity:
    """Measured fraction of active (non-zero) input bits per cycle per layer, as an
    :class:`~pimsim.cost.Activity` that ``pimsim.evaluate(..., activity=...)`` accepts."""
    values = {
        name: layer.counters.active_bits / layer.counters.input_bit_total
        for name, layer in _pim_layers(pim_model).items()
        if layer.counters.input_bit_total
    }
    return Activity(values)


def record_codes(pim_model: nn.Module, enabled: bool = True) -> None:
    """Start (or stop) histogramming every ADC code of every PIM layer; read them with
    :func:`code_histograms`."""
    for layer in _pim_layers(pim_model).values():
        layer.record_codes = enabled


def code_histograms(pim_model: nn.Module) -> dict[str, list[int]]:
    """ADC code counts per layer (lowest code first) since recording started or the last
    :func:`reset_counts`."""
    return {
        name: layer.code_histogram.tolist()
        for name, layer in _pim_layers(pim_model).items()
        if layer.code_histogram is not None
    }


def zero_fraction(pim_model: nn.Module) -> dict[str, float]:
    """Fraction of quantized inputs that were exactly zero, per layer."""
    return {
        name: layer.counters.zero_inputs / layer.counters.input_total
        for name, layer in _pim_layers(pim_model).items()
        if layer.counters.input_total
    }
