"""Workloads: networks as graphs of layers, from YAML files, the built-in zoo or any torch model.

torch is imported only by :func:`from_torch` and :func:`zoo_model`.
"""

from pimsim.workload._layer import INPUT, KINDS, TABLE_COLUMNS, Layer, Workload
from pimsim.workload._load import load_workload, zoo_names


def from_torch(model, input_shape, name=None, **kwargs) -> Workload:
    """Trace any ``torch.nn.Module`` into a :class:`Workload` (``input_shape`` includes a batch
    of 1, e.g. ``(1, 3, 32, 32)``): torch.fx with shape propagation, falling back to recording the
    ops executed on an example input when tracing fails."""
    from pimsim.workload._torch import from_torch as _from_torch

    return _from_torch(model, input_shape, name=name, **kwargs)


def from_onnx(model, name=None) -> Workload:
    """An ONNX model (a path or an ``onnx.ModelProto``) as a :class:`Workload` (needs the
    ``onnx`` package: ``pip install 'pimsim[onnx]'``)."""
    from pimsim.workload._onnx import from_onnx as _from_onnx

    return _from_onnx(model, name=name)


def zoo_model(name: str, **kwargs):
    """The built-in zoo network ``name`` as a ``torch.nn.Module``."""
    from pimsim.workload._zoo import zoo_model as _zoo_model

    return _zoo_model(name, **kwargs)


__all__ = [
    "INPUT",
    "KINDS",
    "TABLE_COLUMNS",
    "Layer",
    "Workload",
    "from_onnx",
    "from_torch",
    "load_workload",
    "zoo_model",
    "zoo_names",
]
