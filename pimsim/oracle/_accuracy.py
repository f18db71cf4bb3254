"""Monte-Carlo accuracy over chips: each chip is a fresh draw of every stochastic non-ideality."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from pimsim.oracle._convert import convert


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
) -> AccuracyResult:
    """Top-1 accuracy of ``model`` on ``arch`` over ``data`` (an iterable of (inputs, labels)
    batches) for ``n_chips`` chips whose seeds are spawned from ``seed``
    (``numpy.random.SeedSequence(seed).spawn(n_chips)``). ``input_shape`` (batch of 1 included)
    defaults to the first batch's shape. Returns per-chip accuracies and the ADC conversions of
    the first chip per layer. ``tune``: a callable run on each chip's converted model before it
    is measured (per-chip BN calibration or self-tuning, :func:`pimsim.training.chip_tuning`)."""
    from pimsim.oracle._convert import _pim_layers, counts, set_chip

    batches = list(data)
    if calibration is not None:
        calibration = list(calibration)  # every chip calibrates its ADCs on the same batches
    if input_shape is None:
        input_shape = (1, *batches[0][0].shape[1:])
    results, first_counts, signed, ranges = [], {}, (), {}
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
        correct = total = 0
        with torch.no_grad():
            for inputs, labels in batches:
                pred = pim(inputs).argmax(dim=1)
                correct += int((pred == labels).sum())
                total += labels.numel()
        results.append(correct / total)
        if i == 0:
            first_counts = counts(pim)
            layers = _pim_layers(pim)
            signed = tuple(n for n, layer in layers.items() if layer.plan.signed_inputs)
            ranges = {
                n: layer.plan.adc_full_scale / layer.plan.full_scale for n, layer in layers.items()
            }
    return AccuracyResult(tuple(results), first_counts, signed, ranges)
