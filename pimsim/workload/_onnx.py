"""ONNX graphs as :class:`~pimsim.workload.Workload` s (the ``[onnx]`` extra: ``pip install
pimsim[onnx]``).

The graph's shapes come from ONNX shape inference; its first non-initializer input is the
network input, with a batch of 1 (a symbolic batch counts as 1). Each node becomes the layer the
torch tracer makes of the same operation, through the same constructors, so MACs agree with
:func:`pimsim.from_torch` on the model the file was exported from: ``Conv`` (1-D and 2-D),
``Gemm`` and ``MatMul`` with a stored matrix (linear), ``MatMul`` of two activations (matmul),
activations, pooling, normalisations, element-wise arithmetic, data movement and ``Gather`` from
a stored table (embedding). Nodes computed from stored tensors only (shape arithmetic,
constants) are constants; nodes whose results the outputs do not need are dropped. Layers are
named after the nodes (their ``name``, else their first output). ``LSTM``/``GRU`` nodes and
other operations raise a :class:`~pimsim.errors.WorkloadError` naming the node.
"""

from __future__ import annotations

import math
import os

from pimsim.errors import WorkloadError
from pimsim.workload import _layer as L
from pimsim.workload._layer import sample_shape as _s

_ACTS = {
    "Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Softmax": "softmax",
    "LogSoftmax": "log_softmax", "LeakyRelu": "leaky_relu", "Elu": "elu",
    "HardSigmoid": "hardsigmoid", "HardSwish": "hardswish", "Gelu": "gelu",
    "Softplus": "softplus", "Mish": "mish", "Clip": "hardtanh",
}  # fmt: skip
_ELTWISE = {
    "Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow", "Sqrt": "sqrt",
    "Exp": "exp", "Log": "log", "Neg": "neg", "Abs": "abs", "Reciprocal": "reciprocal",
    "ReduceMean": "mean", "ReduceSum": "sum", "ReduceMax": "amax", "ReduceMin": "amin",
    "Erf": "erf", "Max": "maximum", "Min": "minimum", "Where": "where",
}  # fmt: skip
_MOVES = {
    "Reshape": "reshape", "Squeeze": "squeeze", "Unsqueeze": "unsqueeze", "Expand": "expand",
    "Transpose": "transpose", "Slice": "slice", "Split": "split", "Pad": "pad", "Tile": "repeat",
    "Gather": "index", "GatherElements": "gather",
}  # fmt: skip
_PASS = {"Identity", "Dropout", "Cast"}
_NORMS = {"LayerNormalization": "layernorm", "RMSNormalization": "rmsnorm",
          "GroupNormalization": "groupnorm", "InstanceNormalization": "instancenorm"}  # fmt: skip


def _pads(attrs: dict, n: int, what: str) -> tuple[int, ...]:
    pads = list(attrs.get("pads", [0] * (2 * n)))
    begin, end = pads[:n], pads[n:]
    if begin != end:
        raise WorkloadError(f"{what}: asymmetric padding {pads} is not supported")
    return tuple(begin)


def _recurrent(node, op, attrs, base, names, shapes, unique, layers, src) -> None:
    """An ONNX ``LSTM``/``GRU`` node (time-major X of (T, 1, I), batch 1): one ``rnn`` layer per
    direction, then its outputs Y (T, directions, 1, H), Y_h and Y_c as data movement."""
    if attrs.get("layout", 0) != 0:
        raise WorkloadError("only layout 0 (time-major) is supported")
    t, b, i = shapes[node.input[0]]
    if b != 1:
        raise WorkloadError(f"the batch must be 1, got {b}")
    h = attrs["hidden_size"]
    cell = "lstm" if op == "LSTM" else "gru"
    bias = len(node.input) > 3 and bool(node.input[3])
    direction = attrs.get("direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    dirs = 2 if direction == "bidirectional" else 1
    parts = []
    for d in range(dirs):
        reverse = d or direction == "reverse"
        layer = L.rnn(unique(base + ("_reverse" if reverse else "")), names, (t, i), h, cell, bias)
        layers.append(layer)
        parts.append(layer)
    for value in [v for v in node.output if v]:
        shape = _s(shapes[value])
        inputs = tuple(p.name for p in parts)
        moved = L.move(unique(f"{base}.out"), inputs, tuple(p.output_shape for p in parts),
                       shape, "reshape" if dirs == 1 else "permute")  # fmt: skip
        layers.append(moved)
        src[value] = moved.name


def from_onnx(model, name: str | None = None) -> L.Workload:
    """The workload of an ONNX model (a path or an ``onnx.ModelProto``); see the module
    docstring."""
    try:
        import onnx
        from onnx import helper, numpy_helper, shape_inference
    except ImportError as exc:
        raise WorkloadError(
            "reading ONNX needs the onnx package: pip install 'pimsim[onnx]'"
        ) from exc
    source = "onnx"
    if isinstance(model, (str, os.PathLike)):
        source = f"onnx:{model}"
        try:
            model = onnx.load(os.fspath(model))
        except Exception as exc:  # a damaged or foreign file: one clear line
            raise WorkloadError(f"{model}: not a readable ONNX model ({exc})") from exc
    model = shape_inference.infer_shapes(model)
    graph = model.graph
    stored = {t.name: tuple(t.dims) for t in graph.initializer}
    tables = {t.name: numpy_helper.to_array(t) for t in graph.initializer if len(t.dims) == 2}
    shapes: dict[str, tuple[int, ...]] = {}
    for info in list(graph.value_info) + list(graph.input) + list(graph.output):
        dims = info.type.tensor_type.shape.dim
        shapes[info.name] = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in dims)
    inputs = [i for i in graph.input if i.name not in stored]
    if not inputs:
        raise WorkloadError("the ONNX graph has no input that is not an initializer")
    net_input = inputs[0].name
    src: dict[str, str | None] = {net_input: L.INPUT}  # value -> producing layer (None: constant)
    for value in stored:
        src[value] = None
    layers: list[L.Layer] = []
    used: set[str] = {L.INPUT}

    def unique(base: str) -> str:
        label, i = base, 0
        while label in used:
            i += 1
            label = f"{base}_{i}"
        used.add(label)
        return label

    for node in graph.node:
        what = f"ONNX node {node.name or node.output[0]!r} ({node.op_type})"
        ins = [v for v in node.input if v]
        live = [v for v in ins if src.get(v) is not None]
        if node.op_type in ("Constant", "Shape", "ConstantOfShape", "Range", "Size") or not live:
            for out in node.output:
                src[out] = None
            continue
        if node.op_type in _PASS:
            src[node.output[0]] = src[live[0]]
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        base = node.name or node.output[0]
        names = tuple(src[v] for v in live)
        in_shapes = tuple(_s(shapes[v]) for v in live)
        x = in_shapes[0]
        outs = [shapes.get(o) for o in node.output]
        if any(o is None for o in outs):
            raise WorkloadError(f"{what}: shape inference left its output shape unknown")
        out = _s(outs[0])
        op = node.op_type
        try:
            if op == "Conv":
                w = stored.get(ins[1])
                if w is None:
                    raise WorkloadError("the weight must be an initializer")
                n = len(w) - 2  # 1-D or 2-D: conv() takes (1, k) pairs for 1-D
                geometry = [
                    tuple(w[2:]), tuple(attrs.get("strides", [1] * n)), _pads(attrs, n, what),
                    tuple(attrs.get("dilations", [1] * n)),
                ]  # fmt: skip
                if n == 1:
                    geometry = [(1, *g) if g else (1, 0) for g in geometry]
                    geometry[2] = (0, geometry[2][1])
                layer = L.conv(base, names, x, w[0], *geometry, attrs.get("group", 1), len(ins) > 2)
            elif op == "Gemm" or (op == "MatMul" and len(live) == 1 and ins[1] in stored):
                b = stored.get(ins[1])
                if b is None or src.get(ins[0]) is None:
                    raise WorkloadError("only activation x stored matrix is supported")
                features = b[0] if attrs.get("transB", 0) else b[1]
                layer = L.linear(base, names, x, features, len(ins) > 2)
            elif op == "MatMul":
                if len(live) != 2:
                    raise WorkloadError("a stored matrix times an activation is not supported")
                groups = math.prod(out[:-2]) if len(out) > 2 else 1
                layer = L.matmul(base, names, in_shapes, out, x[-1], out[-1], groups)
            elif op in _ACTS:
                layer = L.act(base, names, x, _ACTS[op])
            elif op in ("MaxPool", "AveragePool"):
                k = tuple(attrs["kernel_shape"])
                layer = L.pool(
                    base, names, x, "max" if op == "MaxPool" else "avg", k,
                    tuple(attrs.get("strides", k)), _pads(attrs, 2, what),
                    tuple(attrs.get("dilations", [1, 1])), bool(attrs.get("ceil_mode", 0)),
                )  # fmt: skip
            elif op in ("GlobalAveragePool", "GlobalMaxPool"):
                kind = "adaptive_avg" if op == "GlobalAveragePool" else "adaptive_max"
                layer = L.pool(base, names, x, kind, output_size=1)
            elif op == "Flatten" and shapes[live[0]][:1] == (1,) and attrs.get("axis", 1) == 1:
                layer = L.flatten(base, names, x, 0)
            elif op == "Flatten":
                layer = L.move(base, names, in_shapes, out, "reshape")
            elif op == "BatchNormalization":
                layer = L.bn(base, names, x)
            elif op in _NORMS:
                layer = L.norm(base, names, x, _NORMS[op])
            elif op == "Concat":
                dim = attrs.get("axis", 0) % len(outs[0])
                if dim == 0:
                    raise WorkloadError("concatenating along the batch dimension")
                if len(live) == len(ins):
                    layer = L.concat(base, names, in_shapes, dim - 1)
                else:
                    layer = L.Layer(base, "concat", names, in_shapes, out, dim=dim - 1)
            elif op == "Add" and len(live) == 2 and len(set(in_shapes)) == 1:
                layer = L.add(base, names, in_shapes)
            elif op in _ELTWISE:
                layer = L.eltwise(base, names, in_shapes, out, _ELTWISE[op])
            elif op == "Gather" and ins[0] in tables:
                layer = L.embedding(base, names, x, tables[ins[0]].shape[1])
            elif op in ("LSTM", "GRU"):
                _recurrent(node, op, attrs, base, names, shapes, unique, layers, src)
                continue
            elif op in _MOVES:
                for value, shape in zip(node.output, outs, strict=True):
                    piece = L.move(unique(base), names, in_shapes, _s(shape), _MOVES[op])
                    layers.append(piece)
                    src[value] = piece.name
                continue
            else:
                raise WorkloadError("this operation is not supported")
        except WorkloadError as exc:
            raise WorkloadError(f"{what}: {exc}") from None
        if layer.output_shape != out:
            raise WorkloadError(f"{what}: output shape {layer.output_shape} != ONNX's {out}")
        layer = L.Layer(**{**layer.__dict__, "name": unique(base)})
        layers.append(layer)
        src[node.output[0]] = layer.name
    live_names = {src.get(o.name) for o in graph.output} - {None}
    for layer in reversed(layers):
        if layer.name in live_names:
            live_names.update(layer.inputs)
    kept = tuple(la for la in layers if la.name in live_names)
    return L.Workload(name or graph.name or "onnx", _s(shapes[net_input]), kept, source=source)
