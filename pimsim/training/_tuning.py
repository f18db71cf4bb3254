"""Per-chip adjustments at deployment that reprogram no weight: BN calibration and self-tuning.

* **BN calibration** (PIM-QAT): on a converted (PIM, possibly non-ideal) model, forget every
  BatchNorm layer's running statistics and re-estimate them from a few hundred training images
  run through that chip, so that normalisation uses the statistics the chip actually produces.
* **Self-tuning** (variability-aware training and self-tuning, Deng & Orshansky): for each PIM
  layer in network order, measure the per-channel mean and standard deviation of its outputs on
  the chip from N calibration images and map them onto the statistics of the nominal chip (the
  design without random effects) by a per-channel affine y <- a y + b. The affine is folded into
  the layer's digital epilogue (``a`` into the output scale, ``a x bias + b`` into the bias),
  so the cells, their conductances and the ADCs are untouched: only activation statistics move.
"""

from __future__ import annotations

import torch
from torch import nn

from pimsim.oracle._layers import PimMatrixLayer


def _inputs(batch):
    return batch[0] if isinstance(batch, list | tuple) else batch


def bn_calibrate(model: nn.Module, batches) -> int:
    """Re-estimate the running mean and variance of every BatchNorm layer of ``model`` from
    ``batches`` (inputs or (inputs, labels)): statistics are reset, then averaged over all
    batches (cumulative average, ``momentum=None``) with only the BatchNorm layers in training
    mode. Returns the number of BatchNorm layers (0: nothing to calibrate). ``model`` is left in
    eval mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    model.eval()
    saved = []
    for bn in norms:
        saved.append(bn.momentum)
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    try:
        with torch.no_grad():
            for batch in batches:
                model(_inputs(batch))
    finally:
        for bn, momentum in zip(norms, saved, strict=True):
            bn.momentum = momentum
        model.eval()
    return len(norms)


def _channel_stats(outputs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (mean, std) of layer outputs [B, C, ...] in float64."""
    flat = [o.detach().to(torch.float64).transpose(0, 1).reshape(o.shape[1], -1) for o in outputs]
    values = torch.cat(flat, dim=1)
    return values.mean(dim=1), values.std(dim=1, correction=0)


def _pim_layers(model: nn.Module) -> list[PimMatrixLayer]:
    """PIM layers in mapping (network) order."""
    layers = {m.name: m for m in model.modules() if isinstance(m, PimMatrixLayer)}
    order = getattr(model, "pim_mapping", None)
    names = [n for n in order.layers if n in layers] if order is not None else list(layers)
    return [layers[n] for n in names]


def _record_outputs(model: nn.Module, layers, batches) -> dict[str, list]:
    """Outputs of ``layers`` (PIM layers of ``model``) over ``batches``, in eval mode."""
    seen: dict[str, list] = {layer.name: [] for layer in layers}
    hooks = [
        layer.register_forward_hook(lambda mod, args, out: seen[mod.name].append(out))
        for layer in layers
    ]
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                model(_inputs(batch))
    finally:
        for h in hooks:
            h.remove()
    return seen


def layer_statistics(model: nn.Module, batches) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{layer: (mean, std)}`` per output channel of every PIM layer of a converted model over
    ``batches``, in eval mode without gradients."""
    seen = _record_outputs(model, _pim_layers(model), batches)
    return {name: _channel_stats(outs) for name, outs in seen.items() if outs}


def untune(model: nn.Module) -> None:
    """Undo :func:`self_tune` (restore every PIM layer's digital output scale and bias)."""
    for layer in _pim_layers(model):
        saved = getattr(layer, "untuned_epilogue", None)
        if saved is not None:
            scale, bias = saved
            layer.weight_scale = scale.clone()
            layer.bias = None if bias is None else nn.Parameter(bias.clone(), requires_grad=False)
            del layer.untuned_epilogue


def self_tune(
    model: nn.Module, batches, reference: dict, *, min_std: float = 1e-12
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Self-tune a converted model on its current chip: layer after layer, set the per-channel
    affine that maps the chip's output mean and std onto ``reference`` (from
    :func:`layer_statistics` on the nominal chip, same calibration images). The calibration
    images (``batches``, concatenated: a small set) pass once: each layer is measured on its
    inputs as corrected by the layers before it, and its corrected output goes on. A channel
    whose std on the chip is ~0 keeps its scale and only has its mean moved. The affine is
    folded into the digital epilogue; any earlier tuning is undone first. Returns
    ``{layer: (a, b)}``."""
    x = torch.cat([_inputs(batch) for batch in batches])
    untune(model)
    applied: dict = {}

    def correct(layer, args, out):
        if layer.name not in reference:
            return None
        ref_mean, ref_std = reference[layer.name]
        mean, std = _channel_stats([out])
        a = torch.where(std > min_std, ref_std / std.clamp(min=min_std), torch.ones_like(std))
        b = ref_mean - a * mean
        bias = layer.bias.detach().to(torch.float64) if layer.bias is not None else None
        layer.untuned_epilogue = (
            layer.weight_scale.clone(),
            None if bias is None else layer.bias.detach().clone(),
        )
        layer.weight_scale = layer.weight_scale * a.to(layer.weight_scale.dtype)
        new_bias = b if bias is None else a * bias + b
        dtype = layer.bias.dtype if layer.bias is not None else torch.float32
        layer.bias = nn.Parameter(new_bias.to(dtype), requires_grad=False)
        applied[layer.name] = (a, b)
        shape = (1, -1) + (1,) * (out.dim() - 2)
        return (out.to(torch.float64) * a.view(shape) + b.view(shape)).to(out.dtype)

    hooks = [layer.register_forward_hook(correct) for layer in _pim_layers(model)]
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return applied


def chip_tuning(
    model: nn.Module,
    arch,
    input_shape,
    calibration,
    *,
    bn_calibration: bool = False,
    self_tuning: bool = False,
):
    """A ``tune`` callable for :func:`pimsim.oracle.accuracy`: on each chip, BN calibration
    and/or self-tuning from the ``calibration`` batches (inputs or (inputs, labels)). The
    self-tuning reference is measured once, on ``model`` converted for the nominal chip of
    ``arch`` (:func:`~pimsim.training.training_arch` with its defaults: no device variation, no
    ADC non-idealities). None when neither is asked for.

    With a data-driven ADC range (``calibrated``, ``learned``) the tuning also sets each layer's
    ranges again (in self-tuning's one pass, or in a pass after BN calibration), on the inputs as
    the layers before it corrected them: the
    ranges the chip was calibrated with before tuning fit the uncorrected activations, and a
    chip whose gain the tuning undoes would otherwise clip (or waste codes) in every later layer
    (measured, LeNet-5 W8A8 native, between-chip sigma 0.1, one chip of ten: 98.5% untuned,
    19-45% tuned with the old ranges)."""
    if not (bn_calibration or self_tuning):
        return None
    from pimsim.oracle import convert
    from pimsim.training._pimqat import training_arch

    calibration = list(calibration)
    reference = None
    if self_tuning:
        nominal = convert(model, training_arch(arch), input_shape, calibration=calibration)
        if bn_calibration:
            bn_calibrate(nominal, calibration)
        reference = layer_statistics(nominal, calibration)

    data_driven = arch.adc.range in ("calibrated", "learned")

    def tune(pim: nn.Module) -> None:
        if bn_calibration:
            bn_calibrate(pim, calibration)
        if data_driven:  # each ADC re-ranges on its inputs as the layers before correct them
            for layer in _pim_layers(pim):
                layer.calibrating = (arch.adc.range, arch.adc.range_percentile)
        if self_tuning:
            self_tune(pim, calibration, reference)  # one pass: ranges, then each correction
        elif data_driven:
            pim.eval()
            with torch.no_grad():
                pim(torch.cat([_inputs(batch) for batch in calibration]))

    return tune


def calibrate_bn_for_chip(model: nn.Module, arch, input_shape, batches, *, seed=0) -> int:
    """BN calibration after training: convert ``model`` for ``arch`` (chip ``seed``, with every
    non-ideality of the spec), re-estimate its BatchNorm statistics there
    (:func:`bn_calibrate`) and copy them back into ``model``'s BatchNorm layers, so that a
    checkpoint carries statistics measured on the PIM model rather than on the training forward.
    Returns the number of BatchNorm layers calibrated."""
    from pimsim.oracle import convert

    pim = convert(model, arch, input_shape, seed=seed, calibration=list(batches))
    count = bn_calibrate(pim, batches)
    if count:
        trained = dict(model.named_modules())
        with torch.no_grad():
            for name, module in pim.named_modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    target = trained[name]
                    target.running_mean.copy_(module.running_mean)
                    target.running_var.copy_(module.running_var)
    return count
