"""``convert``: a copy of any torch model whose conv/linear layers compute as the mapped hardware
does; ``counts``, ``reset_counts`` and ``activity`` read what the converted model did."""

from __future__ import annotations

import copy
import dataclasses
import warnings
from collections import OrderedDict

import torch
from torch import nn

from pimsim.cost import Activity
from pimsim.errors import MappingError, SpecError
from pimsim.mapping import Mapping, map_network
from pimsim.oracle._engine import make_plan
from pimsim.oracle._layers import (
    PimConv2d,
    PimLinear,
    PimMatrixLayer,
    input_levels,
    non_negative_inputs,
    replace_module,
    scale_from_max,
)
from pimsim.oracle._nonideal import draw_chip
from pimsim.workload import from_torch


def _signed(arch, name: str, non_negative: dict[str, bool], module) -> bool:
    mode = arch.decomposition.signed_inputs
    if mode == "signed":
        return True
    if mode == "unsigned":
        return False
    if hasattr(module, "signed_input"):  # a QAT module knows how it was trained
        return bool(module.signed_input)
    return not non_negative[name]


def _calibrate(model, names, batches, bits, signed) -> dict[str, float]:
    """Input scales from the maximum seen over the calibration batches (DESIGN.md)."""
    seen = dict.fromkeys(names, 0.0)
    modules = dict(model.named_modules())
    hooks = [
        modules[n].register_forward_pre_hook(
            lambda mod, args, n=n: seen.__setitem__(n, max(seen[n], float(args[0].abs().max())))
        )
        for n in names
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                model(batch[0] if isinstance(batch, list | tuple) else batch)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return {n: scale_from_max(seen[n], bits, signed[n]) for n in names}


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
    if arch.adc.range != "full_scale" and calibration is None:
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
    pim = copy.deepcopy(model)
    modules = dict(pim.named_modules())
    non_negative = non_negative_inputs(workload)
    targets = [n for n in mapping.layers if n in modules]
    missing = [n for n in mapping.layers if n not in modules]
    if missing:
        raise MappingError(
            f"mapped layers {missing} are not modules of the model (functional conv/linear or a "
            "module called more than once cannot be converted)"
        )
    signed = {n: _signed(arch, n, non_negative, modules[n]) for n in targets}
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
    if calibration is not None:
        todo = [n for n in targets if scales[n] is None]
        if todo:
            scales.update(
                _calibrate(model, todo, calibration, arch.decomposition.input_bits, signed)
            )
    if any(s is None for s in scales.values()):
        warnings.warn(
            "no activation scales (neither a QAT model nor calibration batches): scales are "
            "measured on every batch, which is optimistic",
            stacklevel=2,
        )
    for n in targets:
        plan = make_plan(arch, mapping.layers[n], signed[n])
        old = modules[n]
        cls = PimConv2d if isinstance(old, nn.Conv2d) else PimLinear
        replace_module(pim, n, cls(n, plan, old, scales[n], chunk))
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
    if arch.adc.range != "full_scale":
        _calibrate_adc_ranges(pim, calibration, arch.adc.range, arch.adc.range_percentile)


def _calibrate_adc_ranges(pim: nn.Module, batches, policy: str, percentile: float) -> None:
    """``adc.range: calibrated`` or ``learned``: run the calibration batches through the PIM
    model, recording every layer's partial sums, and set each ADC's range from them (see
    :meth:`PimMatrixLayer.calibrate_range`; DESIGN.md 'ADC range'). Layers are calibrated
    together, each seeing its inputs through the full-scale ADCs of the layers before it."""
    layers = _pim_layers(pim)
    for layer in layers.values():  # record through full-scale ADCs, as at conversion
        layer.plan = dataclasses.replace(layer.plan, adc_full_scale=layer.plan.full_scale)
        layer.partial_samples = []
    with torch.no_grad():
        for batch in batches:
            pim(batch[0] if isinstance(batch, list | tuple) else batch)
    for layer in layers.values():
        layer.calibrate_range(policy, percentile)
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
