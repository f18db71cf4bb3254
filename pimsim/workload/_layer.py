"""Layers and workloads: one representation for YAML files, the zoo and traced torch models.

Shapes exclude the batch dimension (of one sample; a model that folds the batch into another
dimension, as windowed attention does, keeps that dimension). MACs and weights follow DESIGN.md's
Conventions: ``macs`` counts multiply-accumulates of every matrix product exactly: conv (1-D and
2-D; stride, padding, dilation and groups respected), linear on any leading dimensions, rnn (LSTM
and GRU gates over every time step) and matmul (a product of two activations, such as attention's
Q K^T); ``weights`` counts the static weight elements of conv, linear and rnn layers (no bias, no
normalisation parameters, no embedding tables).

The layer constructors below (:func:`conv`, :func:`linear`, ...) are the only place where output
shapes, MACs and weights are computed, so every source of workloads agrees by construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cached_property

import networkx as nx

from pimsim.errors import WorkloadError

#: Name used in :attr:`Layer.inputs` for the network input.
INPUT = "input"

#: Layer kinds. ``conv``, ``linear`` and ``rnn`` are mapped onto crossbars; ``matmul`` (two
#: activations) runs where ``mapping.activation_matmul`` says; the others run on digital units
#: (``move``: data movement such as permute/transpose/slicing; ``eltwise``: element-wise
#: arithmetic and reductions; ``norm``: layer/RMS/group normalisation; ``embedding``: table
#: lookups).
KINDS = (
    "conv",
    "linear",
    "pool",
    "add",
    "concat",
    "bn",
    "act",
    "flatten",
    "matmul",
    "rnn",
    "norm",
    "eltwise",
    "move",
    "embedding",
)

#: ``norm`` operations.
NORM_OPS = ("layernorm", "rmsnorm", "groupnorm", "instancenorm")

#: ``eltwise`` operations: binary arithmetic (either operand may be a stored constant), unary
#: functions and reductions.
ELTWISE_OPS = (
    "add", "sub", "mul", "div", "pow", "neg", "abs", "exp", "log", "sqrt", "rsqrt", "reciprocal",
    "mean", "sum", "amax", "amin", "square", "clamp", "where", "maximum", "minimum", "erf",
)  # fmt: skip

#: ``move`` operations. Views (no data moves) are :data:`VIEW_OPS`; the others copy their output.
MOVE_OPS = (
    "reshape", "view", "unflatten", "squeeze", "unsqueeze", "expand", "permute", "transpose",
    "slice", "select", "chunk", "split", "unbind", "roll", "pad", "repeat", "flip", "narrow",
    "gather", "index",
)  # fmt: skip
VIEW_OPS = ("reshape", "view", "unflatten", "squeeze", "unsqueeze", "expand")

#: ``rnn`` cells.
RNN_OPS = ("lstm", "gru")

#: Activation functions an ``act`` layer may name.
ACTIVATIONS = (
    "relu",
    "relu6",
    "sigmoid",
    "tanh",
    "gelu",
    "silu",
    "hardswish",
    "hardsigmoid",
    "softmax",
    "log_softmax",
    "leaky_relu",
    "elu",
    "hardtanh",
    "softplus",
    "mish",
    "identity",
)

#: Pooling operations a ``pool`` layer may name.
POOL_OPS = ("max", "avg", "adaptive_avg", "adaptive_max")

Shape = tuple[int, ...]
Pair = tuple[int, int]

TABLE_COLUMNS = (
    "name",
    "kind",
    "input shape",
    "output shape",
    "kernel",
    "stride",
    "padding",
    "groups",
    "macs",
    "weights",
)


@dataclass(frozen=True)
class Layer:
    """One node of a network graph.

    ``inputs`` names the predecessor layers (``"input"`` for the network input) in argument order;
    ``input_shapes`` gives their shapes in the same order. ``op`` names the activation function
    (``act``), the pooling operation (``pool``) or the operation of ``norm``, ``eltwise``,
    ``move`` and ``rnn`` layers; ``dim`` is the concatenation or flatten start dimension (batch
    excluded). ``groups`` is the groups of a conv or the independent matrix products of a
    ``matmul`` (attention heads x batch-like dimensions). ``kernel``/``stride``/``padding``/
    ``dilation`` are (height, width) pairs for conv and pool layers and ``None`` otherwise.
    """

    name: str
    kind: str
    inputs: tuple[str, ...]
    input_shapes: tuple[Shape, ...]
    output_shape: Shape
    kernel: Pair | None = None
    stride: Pair | None = None
    padding: Pair | None = None
    dilation: Pair | None = None
    groups: int = 1
    bias: bool = False
    op: str = ""
    dim: int | None = None
    macs: int = 0
    weights: int = 0
    inner: int = 0
    """The summed dimension K of a ``matmul`` (0 for other kinds)."""
    cols: int = 0
    """The columns N of each of a ``matmul``'s products (0 for other kinds)."""

    @property
    def input_shape(self) -> Shape:
        """Shape of the first input (the only one except for ``add`` and ``concat``)."""
        return self.input_shapes[0]

    @property
    def in_channels(self) -> int:
        """Input channels of a conv layer, input features of a linear or rnn layer."""
        return self.input_shape[0] if self.kind == "conv" else self.input_shape[-1]

    @property
    def out_channels(self) -> int:
        """Output channels of a conv layer, output features of a linear or rnn layer."""
        return self.output_shape[0] if self.kind == "conv" else self.output_shape[-1]

    def table_row(self) -> dict:
        """This layer as a row of the layer table (see :data:`TABLE_COLUMNS`)."""

        def fmt(pair: Pair | None) -> str:
            return "" if pair is None else f"{pair[0]}x{pair[1]}"

        return {
            "name": self.name,
            "kind": self.kind if not self.op else f"{self.kind}:{self.op}",
            "input shape": " + ".join("x".join(map(str, s)) for s in self.input_shapes),
            "output shape": "x".join(map(str, self.output_shape)),
            "kernel": fmt(self.kernel),
            "stride": fmt(self.stride),
            "padding": fmt(self.padding),
            "groups": self.groups,
            "macs": self.macs,
            "weights": self.weights,
        }


@dataclass(frozen=True)
class Workload:
    """A network: layers in topological order plus its input shape (batch excluded)."""

    name: str
    input_shape: Shape
    layers: tuple[Layer, ...]
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        seen = {INPUT}
        for layer in self.layers:
            if layer.name in seen:
                raise WorkloadError(f"{self.name}: layer name {layer.name!r} is used twice")
            for src in layer.inputs:
                if src not in seen:
                    raise WorkloadError(
                        f"{self.name}: layer {layer.name!r} reads {src!r}, which is not an earlier "
                        "layer (layers must be listed in topological order)"
                    )
            seen.add(layer.name)

    @property
    def macs(self) -> int:
        """Total multiply-accumulates of every matrix product, for one input sample."""
        return sum(layer.macs for layer in self.layers)

    @property
    def weights(self) -> int:
        """Total static weight elements (conv, linear, rnn)."""
        return sum(layer.weights for layer in self.layers)

    @cached_property
    def graph(self) -> nx.DiGraph:
        """The layers as a DAG: node ``"input"`` plus one node per layer (attribute ``layer``)."""
        g = nx.DiGraph()
        g.add_node(INPUT)
        for layer in self.layers:
            g.add_node(layer.name, layer=layer)
            for src in layer.inputs:
                g.add_edge(src, layer.name)
        return g

    @property
    def edges(self) -> list[tuple[str, str]]:
        """Graph edges ``(source, destination)`` in layer order."""
        return [(src, layer.name) for layer in self.layers for src in layer.inputs]

    def layer(self, name: str) -> Layer:
        """The layer called ``name``."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def table(self):
        """The layer table as a pandas DataFrame with columns :data:`TABLE_COLUMNS`."""
        import pandas as pd

        return pd.DataFrame([layer.table_row() for layer in self.layers], columns=TABLE_COLUMNS)


def sample_shape(shape) -> Shape:
    """The per-sample shape of a framework shape: without its leading batch of 1 (a model that
    folds the batch into its first dimension keeps that dimension)."""
    shape = tuple(int(d) for d in shape)
    return shape[1:] if shape and shape[0] == 1 else shape


# --------------------------------------------------------------------------- constructors


def _pair(value, what: str, minimum: int = 1) -> Pair:
    if isinstance(value, int):
        value = (value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 2:
        raise WorkloadError(f"{what} must be an integer or a pair of integers, got {value}")
    if min(value) < minimum:
        raise WorkloadError(f"{what} must be >= {minimum}, got {value}")
    return value  # type: ignore[return-value]


def _window_out(size: int, kernel: int, stride: int, pad: int, dil: int, ceil: bool = False) -> int:
    span = dil * (kernel - 1) + 1
    num = size + 2 * pad - span
    if num < 0:
        return 0
    return (math.ceil(num / stride) if ceil else num // stride) + 1


def _check_positive(name: str, shape: Shape) -> None:
    if any(d <= 0 for d in shape):
        raise WorkloadError(f"layer {name!r}: output shape {shape} has a non-positive dimension")


def conv(
    name: str,
    inputs: tuple[str, ...],
    input_shape: Shape,
    out_channels: int,
    kernel,
    stride=1,
    padding=0,
    dilation=1,
    groups: int = 1,
    bias: bool = False,
) -> Layer:
    """A 2-D convolution on a (C, H, W) input, or a 1-D one on a (C, L) input (kernel, stride,
    padding and dilation then given as one integer each, or as pairs whose first is 1).
    ``padding`` may be ``"same"`` or ``"valid"``."""
    if len(input_shape) == 2:

        def one(v, first=1):
            return (first, v) if isinstance(v, int) else (first, *tuple(v)[-1:])

        pad = padding if isinstance(padding, str) else one(padding, 0)
        layer = conv(
            name, inputs, (input_shape[0], 1, input_shape[1]), out_channels, one(kernel),
            one(stride), pad, one(dilation), groups, bias,
        )  # fmt: skip
        return replace(
            layer,
            input_shapes=(tuple(input_shape),),
            output_shape=(layer.output_shape[0], layer.output_shape[2]),
        )
    if len(input_shape) != 3:
        raise WorkloadError(
            f"layer {name!r}: conv needs a (C, H, W) or (C, L) input, got {input_shape}"
        )
    cin, h, w = input_shape
    k, s, d = _pair(kernel, "kernel"), _pair(stride, "stride"), _pair(dilation, "dilation")
    if padding == "valid":
        padding = 0
    if padding == "same":
        if s != (1, 1):
            raise WorkloadError(f"layer {name!r}: padding 'same' needs stride 1")
        total = [d[i] * (k[i] - 1) for i in range(2)]
        if any(t % 2 for t in total):
            raise WorkloadError(f"layer {name!r}: asymmetric 'same' padding is not supported")
        padding = (total[0] // 2, total[1] // 2)
    p = _pair(padding, "padding", 0)
    if groups < 1 or cin % groups or out_channels % groups:
        raise WorkloadError(
            f"layer {name!r}: groups={groups} must divide in_channels={cin} and "
            f"out_channels={out_channels}"
        )
    ho = _window_out(h, k[0], s[0], p[0], d[0])
    wo = _window_out(w, k[1], s[1], p[1], d[1])
    out = (out_channels, ho, wo)
    _check_positive(name, out)
    per_output = (cin // groups) * k[0] * k[1]
    return Layer(
        name=name,
        kind="conv",
        inputs=inputs,
        input_shapes=(tuple(input_shape),),
        output_shape=out,
        kernel=k,
        stride=s,
        padding=p,
        dilation=d,
        groups=groups,
        bias=bias,
        macs=ho * wo * out_channels * per_output,
        weights=out_channels * per_output,
    )


def linear(
    name: str, inputs: tuple[str, ...], input_shape: Shape, out_features: int, bias: bool = False
) -> Layer:
    """A fully connected layer on the last dimension of its input."""
    if len(input_shape) < 1:
        raise WorkloadError(f"layer {name!r}: linear needs at least one input dimension")
    fin = input_shape[-1]
    out = tuple(input_shape[:-1]) + (out_features,)
    _check_positive(name, out)
    return Layer(
        name=name,
        kind="linear",
        inputs=inputs,
        input_shapes=(tuple(input_shape),),
        output_shape=out,
        bias=bias,
        macs=math.prod(input_shape[:-1]) * fin * out_features,
        weights=fin * out_features,
    )


def pool(
    name: str,
    inputs: tuple[str, ...],
    input_shape: Shape,
    op: str,
    kernel=None,
    stride=None,
    padding=0,
    dilation=1,
    ceil_mode: bool = False,
    output_size=None,
) -> Layer:
    """Max/average pooling (``kernel``, ``stride`` defaulting to the kernel) or adaptive pooling
    (``output_size``). For adaptive pooling the recorded kernel/stride are those of the equivalent
    fixed pooling when the input divides evenly, else ``None``."""
    if op not in POOL_OPS:
        raise WorkloadError(f"layer {name!r}: pool op {op!r} is not one of {POOL_OPS}")
    if len(input_shape) != 3:
        raise WorkloadError(f"layer {name!r}: pool needs a (C, H, W) input, got {input_shape}")
    c, h, w = input_shape
    if op.startswith("adaptive"):
        o = _pair(output_size if output_size is not None else 1, "output_size")
        out = (c, o[0], o[1])
        k = s = None
        if h % o[0] == 0 and w % o[1] == 0:
            k = s = (h // o[0], w // o[1])
        p = d = None
    else:
        if kernel is None:
            raise WorkloadError(f"layer {name!r}: pool op {op!r} needs a kernel")
        k = _pair(kernel, "kernel")
        s = _pair(stride if stride is not None else k, "stride")
        p, d = _pair(padding, "padding", 0), _pair(dilation, "dilation")
        out = (
            c,
            _window_out(h, k[0], s[0], p[0], d[0], ceil_mode),
            _window_out(w, k[1], s[1], p[1], d[1], ceil_mode),
        )
    _check_positive(name, out)
    return Layer(
        name=name,
        kind="pool",
        inputs=inputs,
        input_shapes=(tuple(input_shape),),
        output_shape=out,
        kernel=k,
        stride=s,
        padding=p,
        dilation=d,
        op=op,
    )


def add(name: str, inputs: tuple[str, ...], input_shapes: tuple[Shape, ...]) -> Layer:
    """Element-wise sum of two or more tensors of one shape (a residual add)."""
    shapes = tuple(tuple(s) for s in input_shapes)
    if len(shapes) < 2:
        raise WorkloadError(f"layer {name!r}: add needs at least two inputs")
    if len(set(shapes)) != 1:
        raise WorkloadError(f"layer {name!r}: add inputs have different shapes {list(shapes)}")
    return Layer(name, "add", tuple(inputs), shapes, shapes[0])


def concat(
    name: str, inputs: tuple[str, ...], input_shapes: tuple[Shape, ...], dim: int = 0
) -> Layer:
    """Concatenation along ``dim`` (batch excluded: 0 is the channel dimension)."""
    shapes = tuple(tuple(s) for s in input_shapes)
    rank = len(shapes[0])
    if dim < 0:
        dim += rank
    if not 0 <= dim < rank:
        raise WorkloadError(f"layer {name!r}: concat dim {dim} out of range for rank {rank}")
    rest = {s[:dim] + s[dim + 1 :] for s in shapes}
    if len(rest) != 1 or any(len(s) != rank for s in shapes):
        raise WorkloadError(f"layer {name!r}: concat inputs {list(shapes)} differ off dim {dim}")
    out = shapes[0][:dim] + (sum(s[dim] for s in shapes),) + shapes[0][dim + 1 :]
    return Layer(name, "concat", tuple(inputs), shapes, out, dim=dim)


def bn(name: str, inputs: tuple[str, ...], input_shape: Shape) -> Layer:
    """Batch normalisation (shape-preserving, no MACs counted)."""
    return Layer(name, "bn", inputs, (tuple(input_shape),), tuple(input_shape))


def act(name: str, inputs: tuple[str, ...], input_shape: Shape, op: str) -> Layer:
    """An element-wise activation named ``op`` (see :data:`ACTIVATIONS`)."""
    if op not in ACTIVATIONS:
        raise WorkloadError(f"layer {name!r}: activation {op!r} is not one of {ACTIVATIONS}")
    return Layer(name, "act", inputs, (tuple(input_shape),), tuple(input_shape), op=op)


def flatten(name: str, inputs: tuple[str, ...], input_shape: Shape, start_dim: int = 0) -> Layer:
    """Flatten dimensions ``start_dim..`` (batch excluded) into one."""
    shape = tuple(input_shape)
    if start_dim < 0:
        start_dim += len(shape)
    out = shape[:start_dim] + (math.prod(shape[start_dim:]),)
    return Layer(name, "flatten", inputs, (shape,), out, dim=start_dim)


def matmul(
    name: str,
    inputs: tuple[str, ...],
    input_shapes: tuple[Shape, ...],
    output_shape: Shape,
    inner: int,
    cols: int | None = None,
    groups: int = 1,
) -> Layer:
    """A product of two activations: ``groups`` independent (M, K) x (K, N) products (heads and
    other batch-like dimensions), K = ``inner``, N = ``cols`` (default: the output's last
    dimension); ``output_shape`` holds the groups x M x N results (in whatever layout the model
    keeps them, heads merged or not)."""
    out = tuple(output_shape)
    _check_positive(name, out)
    cols = out[-1] if cols is None else cols
    if len(inputs) != 2 or min(inner, cols, groups) < 1 or math.prod(out) % (groups * cols):
        raise WorkloadError(
            f"layer {name!r}: matmul needs two inputs, K, N >= 1 and groups x N dividing its "
            f"output (got {len(inputs)} inputs, K={inner}, N={cols}, groups={groups}, "
            f"output {out})"
        )
    return Layer(
        name, "matmul", tuple(inputs), tuple(tuple(s) for s in input_shapes), out,
        groups=groups, macs=math.prod(out) * inner, inner=inner, cols=cols,
    )  # fmt: skip


def rnn(
    name: str, inputs: tuple[str, ...], input_shape: Shape, hidden: int, op: str, bias: bool = True
) -> Layer:
    """One direction of one LSTM or GRU layer over a (T, I) sequence: output (T, H). Its gate
    weights (W_ih: gates*H x I, W_hh: gates*H x H; 4 gates for LSTM, 3 for GRU) are applied at
    every time step: MACs T x (I + H) x gates x H."""
    if op not in RNN_OPS:
        raise WorkloadError(f"layer {name!r}: rnn op {op!r} is not one of {RNN_OPS}")
    if len(input_shape) != 2:
        raise WorkloadError(f"layer {name!r}: rnn needs a (T, I) input, got {input_shape}")
    steps, fin = input_shape
    gates = 4 if op == "lstm" else 3
    out = (steps, hidden)
    _check_positive(name, out)
    weights = (fin + hidden) * gates * hidden
    return Layer(
        name, "rnn", inputs, (tuple(input_shape),), out, bias=bias, op=op,
        macs=steps * weights, weights=weights,
    )  # fmt: skip


def norm(name: str, inputs: tuple[str, ...], input_shape: Shape, op: str) -> Layer:
    """Layer/RMS/group/instance normalisation (shape-preserving; runs on digital units)."""
    if op not in NORM_OPS:
        raise WorkloadError(f"layer {name!r}: norm op {op!r} is not one of {NORM_OPS}")
    return Layer(name, "norm", inputs, (tuple(input_shape),), tuple(input_shape), op=op)


def eltwise(
    name: str, inputs: tuple[str, ...], input_shapes: tuple[Shape, ...], output_shape: Shape,
    op: str,
) -> Layer:  # fmt: skip
    """Element-wise arithmetic or a reduction (:data:`ELTWISE_OPS`) of one or two activations
    (a stored constant operand, such as a scale or a position embedding, is not an input)."""
    if op not in ELTWISE_OPS:
        raise WorkloadError(f"layer {name!r}: element-wise op {op!r} is not one of {ELTWISE_OPS}")
    if not inputs:
        raise WorkloadError(f"layer {name!r}: an element-wise op needs an activation operand")
    shapes = tuple(tuple(s) for s in input_shapes)
    return Layer(name, "eltwise", tuple(inputs), shapes, tuple(output_shape), op=op)


def move(
    name: str, inputs: tuple[str, ...], input_shapes: tuple[Shape, ...], output_shape: Shape,
    op: str,
) -> Layer:  # fmt: skip
    """Data movement (:data:`MOVE_OPS`): permute, transpose, slicing, splitting, padding...; the
    views of :data:`VIEW_OPS` move nothing."""
    if op not in MOVE_OPS:
        raise WorkloadError(f"layer {name!r}: data movement {op!r} is not one of {MOVE_OPS}")
    shapes = tuple(tuple(s) for s in input_shapes)
    return Layer(name, "move", tuple(inputs), shapes, tuple(output_shape), op=op)


def embedding(name: str, inputs: tuple[str, ...], input_shape: Shape, dim: int) -> Layer:
    """A table lookup: integer indices of ``input_shape`` -> vectors of ``dim`` (read from a
    memory, no MACs)."""
    out = tuple(input_shape) + (dim,)
    _check_positive(name, out)
    return Layer(name, "embedding", inputs, (tuple(input_shape),), out, dim=dim)
