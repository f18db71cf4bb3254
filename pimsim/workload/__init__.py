"""Workloads: networks as graphs of layers, from YAML files, the built-in zoo or any torch model."""

from pimsim.workload._layer import INPUT, KINDS, TABLE_COLUMNS, Layer, Workload

__all__ = ["INPUT", "KINDS", "TABLE_COLUMNS", "Layer", "Workload"]
