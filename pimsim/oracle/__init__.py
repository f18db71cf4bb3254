"""Accuracy oracle: PyTorch layers that compute exactly what the mapped hardware computes.

Imports torch; ``import pimsim`` does not import this package until ``pimsim.oracle`` is used.
"""

from pimsim.oracle._accuracy import AccuracyResult, accuracy
from pimsim.oracle._convert import activity, convert, counts, reset_counts, zero_fraction
from pimsim.oracle._layers import PimConv2d, PimLinear, quantize_weight

__all__ = [
    "AccuracyResult",
    "accuracy",
    "PimConv2d",
    "PimLinear",
    "activity",
    "convert",
    "counts",
    "quantize_weight",
    "reset_counts",
    "zero_fraction",
]
