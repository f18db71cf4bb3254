"""Mapping: the single source of truth for arrays, slices, row groups, cycles and conversions."""

from pimsim.mapping._layer_map import LayerMapping, map_layer
from pimsim.mapping._network import Mapping, map_network, steps_per_sample

__all__ = ["LayerMapping", "Mapping", "map_layer", "map_network", "steps_per_sample"]
