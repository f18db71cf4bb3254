"""Accuracy oracle: PyTorch layers that compute exactly what the mapped hardware computes.

Imports torch; ``import pimsim`` does not import this package until ``pimsim.oracle`` is used.
"""

from pimsim.oracle._accuracy import AccuracyResult, accuracy
from pimsim.oracle._convert import (
    activity,
    code_histograms,
    convert,
    counts,
    record_codes,
    reset_counts,
    set_chip,
    zero_fraction,
)
from pimsim.oracle._device import (
    DEVICE_CHOICES,
    DeviceError,
    cuda_exactness,
    device_name,
    resolve_device,
)
from pimsim.oracle._layers import PimConv2d, PimLinear, quantize_weight
from pimsim.oracle._memory import tune_cpu_allocator

__all__ = [
    "AccuracyResult",
    "DEVICE_CHOICES",
    "DeviceError",
    "accuracy",
    "cuda_exactness",
    "device_name",
    "resolve_device",
    "PimConv2d",
    "PimLinear",
    "activity",
    "code_histograms",
    "convert",
    "counts",
    "quantize_weight",
    "record_codes",
    "reset_counts",
    "set_chip",
    "tune_cpu_allocator",
    "zero_fraction",
]
