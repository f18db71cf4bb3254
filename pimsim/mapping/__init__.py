"""Mapping: the single source of truth for arrays, slices, row groups, cycles and conversions."""

from pimsim.mapping._layer_map import MAPPED_KINDS, LayerMapping, map_layer
from pimsim.mapping._network import Mapping, is_mapped, map_network, steps_per_sample
from pimsim.mapping._traffic import LayerTraffic, activation_level, layer_traffic

__all__ = [
    "MAPPED_KINDS",
    "is_mapped",
    "LayerMapping",
    "LayerTraffic",
    "Mapping",
    "activation_level",
    "layer_traffic",
    "map_layer",
    "map_network",
    "steps_per_sample",
]
