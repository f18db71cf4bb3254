"""Monte-Carlo accuracy over chips: each chip is a fresh draw of every stochastic non-ideality."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from pimsim.oracle._convert import convert
from pimsim.oracle._device import cuda_exactness, resolve_device, to_device


@dataclass(frozen=True)
class AccuracyResult:
    """Accuracy of one model on ``n_chips`` sampled chips (fractions in [0, 1])."""

    per_chip: tuple[float, ...]
    conversions: dict
    signed_layers: tuple[str, ...] = ()
    """Layers whose inputs were quantized as signed (``signed_inputs: auto`` decides per layer)."""
    adc_ranges: dict = field(default_factory=dict)
    """First chip: each layer's ADC range as a fraction of its nominal full scale (the largest
    of its ranges where ``adc.range_granularity`` gives it several)."""

    @property
    def mean(self) -> float:
        """Mean over chips."""
        return float(np.mean(self.per_chip))

    @property
    def std(self) -> float:
        """Standard deviation over chips (0 for one chip)."""
        return float(np.std(self.per_chip))

    @property
    def worst(self) -> float:
        """Lowest accuracy of any chip."""
        return float(min(self.per_chip))

    def percentile(self, q: float) -> float:
        """The q-th percentile (0..100) over chips."""
        return float(np.percentile(self.per_chip, q))

    def to_dict(self) -> dict:
        """JSON form."""
        return {
            "mean": self.mean,
            "std": self.std,
            "worst": self.worst,
            "p5": self.percentile(5),
            "p50": self.percentile(50),
            "per_chip": list(self.per_chip),
            "adc_conversions": self.conversions,
            "signed_input_layers": list(self.signed_layers),
            "adc_range_fraction": self.adc_ranges,
        }


def accuracy(
    model,
    arch,
    data,
    *,
    input_shape=None,
    n_chips: int = 1,
    seed: int = 0,
    calibration=None,
    mapping=None,
    chunk=None,
    progress: bool = False,
    tune=None,
    device: str | torch.device | None = "cpu",
) -> AccuracyResult:
    """Top-1 accuracy of ``model`` on ``arch`` over ``data`` (an iterable of (inputs, labels)
    batches) for ``n_chips`` chips whose seeds are spawned from ``seed``
    (``numpy.random.SeedSequence(seed).spawn(n_chips)``). ``input_shape`` (batch of 1 included)
    defaults to the first batch's shape. Returns per-chip accuracies and the ADC conversions of
    the first chip per layer. ``tune``: a callable run on each chip's converted model before it
    is measured (per-chip BN calibration or self-tuning, :func:`pimsim.training.chip_tuning`).

    ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``, :func:`resolve_device`): where
    the chips compute. The model is converted on the CPU as always (input scales, signed inputs
    and the mapping come from the same float32 arithmetic on every device), then moved; batches
    move one at a time, and the result holds plain Python values. On CUDA TF32 is off
    (:func:`cuda_exactness`), so an ideal chip gives the CPU's outputs bit for bit; stochastic
    non-idealities are drawn from a generator on the device, so each chip is a draw of the same
    distribution as on the CPU, not the same draw. ``tune`` then runs on the device too, and
    must use batches there (the CLI's ``chip_tuning`` does)."""
    from pimsim.oracle._convert import set_chip

    dev = resolve_device(device)
    batches = list(data)
    if calibration is not None:
        calibration = list(calibration)  # every chip calibrates its ADCs on the same batches
    if input_shape is None:
        input_shape = (1, *batches[0][0].shape[1:])
    if dev.type != "cpu":
        with cuda_exactness(dev):
            return _accuracy_on(
                dev, model, arch, batches, input_shape, n_chips, seed, calibration, mapping,
                chunk, progress, tune,
            )  # fmt: skip
    results, first = [], ({}, (), {})
    chips = np.random.SeedSequence(seed).spawn(n_chips)
    iterator = chips
    if progress:
        from tqdm import tqdm

        iterator = tqdm(chips, desc="chips", unit="chip")
    pim = None
    for i, chip_seed in enumerate(iterator):
        if pim is None:  # convert once; every further chip only redraws cells and ADCs
            pim = convert(
                model,
                arch,
                input_shape,
                seed=chip_seed,
                mapping=mapping,
                calibration=calibration,
                chunk=chunk,
            )
        else:
            set_chip(pim, arch, chip_seed, calibration)
        if tune is not None:
            tune(pim)
        results.append(_chip_accuracy(pim, batches))
        if i == 0:
            first = _first_chip(pim)
    return AccuracyResult(tuple(results), *first)


def _chip_accuracy(pim, batches, dev=None) -> float:
    """Top-1 accuracy of one drawn chip (batches moved to ``dev`` one at a time if given)."""
    correct = total = 0
    with torch.no_grad():
        for inputs, labels in batches:
            if dev is not None:
                inputs, labels = to_device(inputs, dev), to_device(labels, dev)
            pred = pim(inputs).argmax(dim=1)
            correct += int((pred == labels).sum())
            total += labels.numel()
    return correct / total


def _first_chip(pim) -> tuple:
    """What a result reports of its first chip: conversions per layer, the layers with signed
    inputs, and each layer's ADC range as a fraction of its full scale."""
    from pimsim.oracle._convert import _pim_layers, counts

    layers = _pim_layers(pim)
    signed = tuple(n for n, layer in layers.items() if layer.plan.signed_inputs)
    ranges = {n: layer.plan.adc_full_scale / layer.plan.full_scale for n, layer in layers.items()}
    return counts(pim), signed, ranges


def _accuracy_on(
    dev, model, arch, batches, input_shape, n_chips, seed, calibration, mapping, chunk, progress,
    tune,
) -> AccuracyResult:
    """:func:`accuracy` on a device other than the CPU: convert on the CPU, move the converted
    model to ``dev``, draw every chip there (its cells, ADCs and, for ``adc.range`` calibrated or
    learned, its ranges from the calibration batches on ``dev``) and measure."""
    from pimsim.oracle._convert import set_chip
    from pimsim.spec import with_overrides

    data_driven = arch.adc.range in ("calibrated", "learned")
    # convert's own range calibration would run the PIM model on the CPU; it is done on the
    # device instead, by set_chip with the spec's range (the plans do not depend on adc.range)
    host_arch = with_overrides(arch, {"adc.range": "full_scale"}) if data_driven else arch
    pim = convert(
        model, host_arch, input_shape, mapping=mapping, calibration=calibration, chunk=chunk,
        seed=0,
    ).to(dev)  # fmt: skip
    on_dev = None if calibration is None else [to_device(b, dev) for b in calibration]
    chips = np.random.SeedSequence(seed).spawn(n_chips)
    iterator = chips
    if progress:
        from tqdm import tqdm

        iterator = tqdm(chips, desc="chips", unit="chip")
    results, first = [], ({}, (), {})
    for i, chip_seed in enumerate(iterator):
        set_chip(pim, arch, chip_seed, on_dev)
        if tune is not None:
            tune(pim)
        results.append(_chip_accuracy(pim, batches, dev))
        if i == 0:
            first = _first_chip(pim)
    return AccuracyResult(tuple(results), *first)
