"""Any torch model as a :class:`~pimsim.workload.Workload`.

Two front ends feed one converter (:class:`_Builder`), so they agree by construction:

* ``fx``: ``torch.fx.symbolic_trace`` plus shape propagation on a zeros input;
* ``record``: run the model once on a zeros input and record the operations actually executed,
  with a :class:`torch.overrides.TorchFunctionMode` (functional ops, tensor methods, operators)
  and forward hooks (leaf modules). This handles data-dependent Python control flow.

Layer names: a leaf module's layer is its qualified name (``layer1.0.conv1``), later calls of the
same module get ``_1``, ``_2``...; a functional op, tensor method or operator is
``<scope>.<op>`` (just ``<op>`` at top level), where scope is the qualified name of the innermost
module whose ``forward`` runs it; repeats get ``_1``, ``_2``...

Unsupported operations do not fail at once: their results are "poisoned" and the error is raised
only if a poisoned value reaches the model output, so that helper computations used only by
Python control flow (``if x.sum() > 0:``) are harmless.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.fx
from torch import nn
from torch.fx.node import map_arg
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata
from torch.overrides import TorchFunctionMode

from pimsim.errors import WorkloadError
from pimsim.workload import _layer as L
from pimsim.workload._layer import Layer, Workload
from pimsim.workload._layer import sample_shape as _s
from pimsim.workload._modules import RNN, MatMul

#: Values of :func:`from_torch`'s ``method``.
METHODS = ("auto", "fx", "record")

# Activation modules and their op names.
_ACT_NAMES = {
    nn.ReLU: "relu", nn.ReLU6: "relu6", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.GELU: "gelu",
    nn.SiLU: "silu", nn.Hardswish: "hardswish", nn.Hardsigmoid: "hardsigmoid",
    nn.Softmax: "softmax", nn.LogSoftmax: "log_softmax", nn.LeakyReLU: "leaky_relu",
    nn.ELU: "elu", nn.Hardtanh: "hardtanh", nn.Softplus: "softplus", nn.Mish: "mish",
}  # fmt: skip
_ACT_MODULES = tuple(_ACT_NAMES)
# Pool modules in the order of _layer.POOL_OPS (max, avg, adaptive_avg, adaptive_max).
_POOL_MODULES = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_POOL_MODULES = tuple(zip(_POOL_MODULES, L.POOL_OPS, strict=True))
_NORM_MODULES = {nn.LayerNorm: "layernorm", nn.RMSNorm: "rmsnorm", nn.GroupNorm: "groupnorm"}
_NORM_MODULES |= {nn.InstanceNorm1d: "instancenorm", nn.InstanceNorm2d: "instancenorm"}
_RNN_MODULES = (nn.LSTM, nn.GRU, RNN)  # pimsim's unrolled RNN is the same layers
_LAYER_MODULES = (nn.Conv1d, nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.Flatten)
_LAYER_MODULES += _ACT_MODULES + tuple(c for c, _ in _POOL_MODULES) + tuple(_NORM_MODULES)
_LAYER_MODULES += (nn.Embedding, nn.MultiheadAttention, MatMul) + _RNN_MODULES
# Modules that compute nothing at inference: no layer, edges bypass them.
_PASS_MODULES = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)
_PASS_MODULES += (nn.AlphaDropout, nn.FeatureAlphaDropout)

_ACT_OPS = set(_ACT_NAMES.values())
_POOL_OPS = {f"{op}_pool2d": op for op in L.POOL_OPS}  # max_pool2d -> max, ...
_FLATTEN_OPS = ("flatten", "view", "reshape")
_NORM_OPS = {"layer_norm": "layernorm", "rms_norm": "rmsnorm", "group_norm": "groupnorm"}
_NORM_OPS |= {"instance_norm": "instancenorm"}
_ELTWISE_OPS = {op: op for op in L.ELTWISE_OPS}
_ELTWISE_OPS |= {"truediv": "div", "rsub": "sub", "rtruediv": "div", "rmul": "mul"}
_ELTWISE_OPS |= {"imul": "mul", "isub": "sub", "itruediv": "div", "max": "amax", "min": "amin"}
_ELTWISE_OPS |= {"clip": "clamp", "rpow": "pow", "divide": "div", "multiply": "mul"}
_MOVE_OPS = {op: op for op in L.MOVE_OPS}
_MOVE_OPS |= {"getitem": "slice", "t": "transpose", "swapaxes": "transpose", "movedim": "permute"}
_MOVE_OPS |= {"expand_as": "expand", "tensor_split": "split", "index_select": "index"}
_MOVE_OPS |= {"repeat_interleave": "repeat", "tile": "repeat"}
_MATMUL_OPS = {"matmul", "bmm", "mm", "scaled_dot_product_attention", "addmm"}
# Ops that make a tensor from another's shape or dtype only: constants, not computations.
_CONST_OPS = {"new_zeros", "new_ones", "new_full", "new_empty", "new_tensor", "zeros_like"}
_CONST_OPS |= {"ones_like", "full_like", "empty_like", "rand_like", "randn_like", "arange"}
_SKIP_OPS = {"contiguous", "clone", "detach", "to", "type", "float", "half", "double"}
_SKIP_OPS |= {"dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout"}
_SKIP_OPS |= {"feature_alpha_dropout", "stochastic_depth", "cpu", "cuda", "requires_grad"}
_LAYER_OPS = _ACT_OPS | set(_POOL_OPS) | set(_FLATTEN_OPS) | {"add", "cat", "conv2d", "linear"}
_LAYER_OPS |= {"conv1d", "embedding", "batch_norm"} | set(_NORM_OPS) | set(_ELTWISE_OPS)
_LAYER_OPS |= set(_MOVE_OPS) | _MATMUL_OPS | {"stack"}
# Ops that return several tensors (one move layer each).
_MULTI_OPS = {"chunk", "split", "unbind", "tensor_split"}
# Operator spellings that mean the same layer: `x += y` is `iadd`, `1 + x` is `radd`.
_ALIASES = {"iadd": "add", "radd": "add", "concat": "cat", "concatenate": "cat"}
# Positional parameter names of the functional ops whose arguments matter.
_SIGNATURES = {
    "max_pool2d": ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    "avg_pool2d": ("input", "kernel_size", "stride", "padding", "ceil_mode"),
    "conv2d": ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
    "conv1d": ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
    "linear": ("input", "weight", "bias"),
    "embedding": ("input", "weight"),
    "cat": ("tensors", "dim"),
    "stack": ("tensors", "dim"),
    "add": ("input", "other"),
    "matmul": ("input", "other"),
    "addmm": ("input", "mat1", "mat2"),
    "bmm": ("input", "other"),
    "mm": ("input", "other"),
    "scaled_dot_product_attention": ("query", "key", "value"),
}
_DEFAULTS = {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False, "groups": 1}


_SUPPORTED_MODULES = ", ".join(sorted({c.__name__ for c in _LAYER_MODULES + _PASS_MODULES}))
_SUPPORTED_OPS = ", ".join(sorted(_LAYER_OPS | _SKIP_OPS))


@dataclass(frozen=True)
class _Ref:
    """A tensor seen while tracing: the layer that produced it (``"input"`` for the network
    input, ``None`` for tensors not computed from the input, such as parameters), its shape
    including the batch, or ``error`` when it was computed by an unsupported operation."""

    src: str | None
    shape: tuple[int, ...] = ()
    error: str | None = None


def _bad(message: str) -> _Ref:
    return _Ref(None, error=message)


def _leaves(value, cls) -> list:
    """The instances of ``cls`` inside nested tuples, lists and dicts, in order."""
    if isinstance(value, cls):
        return [value]
    if isinstance(value, (tuple, list)):
        return [r for v in value for r in _leaves(v, cls)]
    if isinstance(value, dict):
        return [r for v in value.values() for r in _leaves(v, cls)]
    return []


def _canonical(name: str) -> str:
    # `__add__` -> add, `_max_pool2d` -> max_pool2d, in-place `relu_` -> relu.
    base = name.strip("_")
    return _ALIASES.get(base, base)


def _is_flatten(shape: tuple, out: tuple | None) -> bool:
    """Whether reshaping ``shape`` to ``out`` (both with their batch of 1) flattens trailing
    dimensions."""
    if not out or not shape or shape[0] != 1:
        return False
    keep = len(out) - 1
    return keep >= 1 and shape[:keep] == out[:keep] and math.prod(shape[keep:]) == out[keep]


def _flatten_layer(name: str, inputs, shape: tuple, out: tuple) -> Layer:
    """A flatten layer when ``out`` flattens the trailing dims of ``shape`` (both with their
    batch of 1), else a ``move`` (reshape) layer."""
    if not _is_flatten(shape, out):
        return L.move(name, inputs, (_s(shape),), _s(out), "reshape")
    return L.flatten(name, inputs, shape[1:], len(out) - 2)


def _pool_layer(name, inputs, shape, out, op: str, p: dict) -> Layer:
    if op.startswith("adaptive"):
        return L.pool(name, inputs, shape[1:], op, output_size=out[2:])
    # torch spells "stride = kernel" as None or [].
    window = (p.get("kernel_size"), p.get("stride") or None, p.get("padding", 0))
    rest = (p.get("dilation", 1), bool(p.get("ceil_mode", False)))
    return L.pool(name, inputs, shape[1:], op, *window, *rest)


def _matmul_layer(name, names, a: _Ref, b: _Ref, out: tuple) -> Layer:
    """``a @ b`` of two activations (torch shapes, batch included)."""
    o = _s(out)
    groups = math.prod(o[:-2]) if len(o) > 2 else 1
    return L.matmul(name, names, (_s(a.shape), _s(b.shape)), o, a.shape[-1], o[-1], groups)


def _module_layer(mod: nn.Module, name: str, inputs, shape: tuple, out: tuple) -> Layer:
    """The layer for one call of a supported single-layer leaf module (shapes include the
    batch)."""
    if isinstance(mod, (nn.Conv1d, nn.Conv2d)):
        geometry = (mod.kernel_size, mod.stride, mod.padding, mod.dilation, mod.groups)
        return L.conv(name, inputs, _s(shape), mod.out_channels, *geometry, mod.bias is not None)
    if isinstance(mod, nn.Linear):
        return L.linear(name, inputs, _s(shape), mod.out_features, mod.bias is not None)
    if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return L.bn(name, inputs, _s(shape))
    if isinstance(mod, nn.Flatten):
        return _flatten_layer(name, inputs, shape, out)
    if isinstance(mod, nn.Embedding):
        return L.embedding(name, inputs, _s(shape), mod.embedding_dim)
    for cls, op in _NORM_MODULES.items():
        if isinstance(mod, cls):
            return L.norm(name, inputs, _s(shape), op)
    for cls, op in _ACT_NAMES.items():
        if isinstance(mod, cls):
            return L.act(name, inputs, _s(shape), op)
    op = next(op for cls, op in _POOL_MODULES if isinstance(mod, cls))
    params = {k: getattr(mod, k, _DEFAULTS.get(k)) for k in _SIGNATURES["max_pool2d"][1:]}
    return _pool_layer(name, inputs, shape, out, op, params)


def _bind(sig: tuple[str, ...], args, kwargs) -> dict:
    p = dict(_DEFAULTS)
    p.update(zip(sig, args, strict=False))
    p.update(kwargs)
    return p


class _Builder:
    """Turns module calls and function calls, with :class:`_Ref` in place of tensors, into
    layers; each call returns the :class:`_Ref` of its result (a list of them for calls that
    return several tensors)."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.layers: list[Layer] = []
        self.names = {L.INPUT}

    def prune(self, output) -> None:
        """Keep only the layers the model's ``output`` depends on: ops whose results serve
        Python control flow alone (``if x.sum() > 0:``) compute nothing the chip must."""
        live = {r.src for r in _leaves(output, _Ref) if r.src is not None}
        for layer in reversed(self.layers):
            if layer.name in live:
                live.update(layer.inputs)
        self.layers = [layer for layer in self.layers if layer.name in live]

    def _unique(self, base: str) -> str:
        name, i = base, 0
        while name in self.names:
            i += 1
            name = f"{base}_{i}"
        return name

    def _emit(self, base: str, what: str, inputs: list[_Ref], out, build) -> _Ref:
        """Append ``build(name, input_names)`` unless an input or the result is unusable;
        ``inputs`` are the operands computed from the network input (constants are not)."""
        inputs = [r for r in inputs if r.src is not None]
        if not inputs:
            return _bad(f"{what}: no operand is computed from the network input")
        if out is None:
            return _bad(f"{what}: returns several tensors, which is not supported")
        name = self._unique(base)
        try:
            layer = build(name, tuple(r.src for r in inputs))
        except WorkloadError as exc:
            return _bad(f"{what}: {exc}")
        if layer.output_shape != _s(out):
            return _bad(f"{what}: output shape {layer.output_shape} != torch's {_s(out)}")
        self.layers.append(layer)
        self.names.add(name)
        return _Ref(name, tuple(out))

    def module(self, qualname: str, mod: nn.Module, args, kwargs, outs: list) -> _Ref | list:
        """One call of leaf module ``mod``; ``outs`` are the shapes of the tensors it returns."""
        refs = _leaves((args, kwargs), _Ref)
        if bad := next((r for r in refs if r.error), None):
            return bad  # Report the first unsupported operation upstream.
        what = f"module {qualname!r} ({type(mod).__name__})"
        if isinstance(mod, _PASS_MODULES) and refs:
            return refs[0]
        if refs and all(r.src is None for r in refs) and len(outs) == 1:
            return _Ref(None, outs[0])  # computed from stored tensors only (a position table)
        if not isinstance(mod, _LAYER_MODULES):
            return _bad(f"{what} is not supported; supported modules: {_SUPPORTED_MODULES}")
        if isinstance(mod, nn.MultiheadAttention):
            return self._attention(qualname, what, mod, args, kwargs, outs)
        if isinstance(mod, _RNN_MODULES):
            return self._rnn(qualname, what, mod, args, kwargs, outs)
        out = outs[0] if len(outs) == 1 else None
        if isinstance(mod, MatMul):
            if len(refs) != 2:
                return _bad(f"{what}: expected two tensor inputs, got {len(refs)}")
            a, b = refs
            return self._emit(
                qualname, what, refs, out, lambda n, i: _matmul_layer(n, i, a, b, out)
            )
        if len(refs) != 1:
            return _bad(f"{what}: expected one tensor input, got {len(refs)}")
        x = refs[0]
        return self._emit(
            qualname, what, refs, out, lambda n, i: _module_layer(mod, n, i, x.shape, out)
        )

    def _linear(self, name, what, x: _Ref, features: int, bias: bool) -> _Ref:
        out = x.shape[:-1] + (features,)
        return self._emit(
            name, what, [x], out, lambda n, i: L.linear(n, i, _s(x.shape), features, bias)
        )

    def _attention_core(self, scope, what, q: _Ref, k: _Ref, v: _Ref, heads: int, out) -> _Ref:
        """softmax(Q K^T) V over ``heads`` heads: scores matmul, softmax, context matmul
        (shapes with the batch; q, k, v are (..., T, E) or already split into heads)."""
        split = len(q.shape) == 3  # (B, T, E): heads within E; else (B, H, T, dh) or deeper
        dh, lq, sk = q.shape[-1] // (heads if split else 1), q.shape[-2], k.shape[-2]
        lead = (q.shape[0], heads) if split else q.shape[:-2]
        groups = math.prod(_s(lead))  # independent products: heads x any folded batch
        s_shape = lead + (lq, sk)
        scores = self._emit(
            f"{scope}.scores", what, [q, k], s_shape,
            lambda n, i: L.matmul(n, i, (_s(q.shape), _s(k.shape)), _s(s_shape), dh, sk, groups),
        )  # fmt: skip
        if scores.error:
            return scores
        soft = self._emit(
            f"{scope}.softmax", what, [scores], s_shape,
            lambda n, i: L.act(n, i, _s(s_shape), "softmax"),
        )  # fmt: skip
        o = _s(out)
        return self._emit(
            f"{scope}.context", what, [soft, v], out,
            lambda n, i: L.matmul(n, i, (_s(s_shape), _s(v.shape)), o, sk,
                                  v.shape[-1] // (heads if split else 1), groups),
        )  # fmt: skip

    def _attention(self, qualname, what, mod, args, kwargs, outs) -> list:
        p = _bind(("query", "key", "value"), args, kwargs)
        q, k, v = p.get("query"), p.get("key"), p.get("value")
        if not all(isinstance(t, _Ref) and t.src is not None for t in (q, k, v)):
            return [_bad(f"{what}: query, key and value must be computed from the input")] * 2
        if not mod.batch_first:
            msg = f"{what}: batch_first=False is not supported; build it with batch_first=True"
            return [_bad(msg)] * 2
        e, bias = mod.embed_dim, mod.in_proj_bias is not None
        proj = [
            self._linear(f"{qualname}.{n}", what, t, e, bias)
            for n, t in zip("qkv", (q, k, v), strict=True)
        ]
        if bad := next((r for r in proj if r.error), None):
            return [bad] * 2
        ctx = self._attention_core(qualname, what, *proj, mod.num_heads, proj[0].shape)
        if ctx.error:
            return [ctx] * 2
        out = self._linear(f"{qualname}.out_proj", what, ctx, e, mod.out_proj.bias is not None)
        if outs and tuple(outs[0]) != out.shape:
            out = _bad(f"{what}: output shape {out.shape} != torch's {tuple(outs[0])}")
        return [out, _bad(f"{what}: the attention weights it returns are not supported")]

    def _rnn(self, qualname, what, mod, args, kwargs, outs) -> list:
        op = "lstm" if isinstance(mod, nn.LSTM) or getattr(mod, "op", "") == "lstm" else "gru"
        p = _bind(("input", "hx" if isinstance(mod, _RNN_MODULES[:2]) else "state"), args, kwargs)
        x, state = p.get("input"), p.get("hx")
        n_out = 3 if op == "lstm" else 2
        if not mod.batch_first:
            msg = f"{what}: batch_first=False is not supported; build it with batch_first=True"
            return [_bad(msg)] * n_out
        if state is not None or not isinstance(x, _Ref) or len(x.shape) != 3:
            msg = f"{what}: only a (batch, time, features) input and a zero initial state work"
            return [_bad(msg)] * n_out
        h, bias = mod.hidden_size, mod.bias
        for layer in range(mod.num_layers):
            parts = []
            for d in range(2 if mod.bidirectional else 1):
                base = f"{qualname}.l{layer}" + ("_reverse" if d else "")
                xs = x
                parts.append(self._emit(
                    base, what, [xs], xs.shape[:2] + (h,),
                    lambda n, i, xs=xs: L.rnn(n, i, _s(xs.shape), h, op, bias),
                ))  # fmt: skip
            if len(parts) == 2:
                shape = x.shape[:2] + (2 * h,)
                x = self._emit(
                    f"{qualname}.cat{layer}", what, parts, shape,
                    lambda n, i, parts=parts: L.concat(n, i, tuple(_s(r.shape) for r in parts), -1),
                )  # fmt: skip
            else:
                x = parts[0]
            if x.error:
                return [x] * n_out
        if outs and tuple(outs[0]) != x.shape:
            x = _bad(f"{what}: output shape {x.shape} != torch's {tuple(outs[0])}")
        state = _bad(f"{what}: its final state (h_n, c_n) is not supported; use output[:, -1]")
        return [x] + [state] * (n_out - 1)

    def function(self, scope: str, op: str, args, kwargs, outs: list) -> _Ref | list:
        """One functional op, tensor method or operator called in module ``scope``; ``outs``
        are the shapes of the tensors it returns."""
        if op == "getitem" and args and isinstance(args[0], (list, tuple)):
            try:  # indexing the several results of a module or a split
                return args[0][args[1]]
            except (IndexError, TypeError):
                return _bad(f"indexing the results of an operation with {args[1]!r} failed")
        refs = _leaves((args, kwargs), _Ref)
        if bad := next((r for r in refs if r.error), None):
            return bad
        out = outs[0] if len(outs) == 1 else None
        if all(r.src is None for r in refs) or op in _CONST_OPS:
            return _Ref(None, out or ())  # Computed from parameters or constants only.
        if op in _SKIP_OPS:
            return next(r for r in refs if r.src is not None)
        live = [r for r in refs if r.src is not None]
        flat = op in _FLATTEN_OPS and _is_flatten(live[0].shape if live else (), out)
        label = "flatten" if flat else op
        base = f"{scope}.{label}" if scope else label
        what = f"operation {op!r} (in {repr(scope) if scope else 'the top-level forward'})"
        if op not in _LAYER_OPS:
            return _bad(f"{what} is not supported; supported operations: {_SUPPORTED_OPS}")
        x = live[0]
        if op in _MULTI_OPS:
            pieces = []
            kind = _MOVE_OPS[op]
            for shape in outs:
                pieces.append(self._emit(
                    base, what, [x], shape,
                    lambda n, i, shape=shape: L.move(n, i, (_s(x.shape),), _s(shape), kind),
                ))  # fmt: skip
            return pieces
        p = _bind(_SIGNATURES.get(op, ("input",)), args, kwargs)
        if op == "scaled_dot_product_attention":
            q, k, v = p.get("query"), p.get("key"), p.get("value")
            if not all(isinstance(t, _Ref) and t.src is not None for t in (q, k, v)):
                return _bad(f"{what}: query, key and value must be computed from the input")
            return self._attention_core(scope or op, what, q, k, v, 1, out)
        if op == "addmm":  # bias + activation @ stored matrix (GPT-2's Conv1D): a linear
            a, b = p.get("mat1"), p.get("mat2")
            if isinstance(a, _Ref) and a.src is not None and isinstance(b, _Ref) and b.src is None:
                return self._emit(
                    base, what, [a], out, lambda n, i: L.linear(n, i, _s(a.shape), b.shape[1], True)
                )
            return _bad(f"{what}: only bias + activation @ stored matrix is supported")
        if op in ("matmul", "bmm", "mm"):
            a, b = p.get("input"), p.get("other")
            if not (isinstance(a, _Ref) and isinstance(b, _Ref)):
                return _bad(f"{what}: expected two tensor operands")
            if a.src is not None and b.src is not None:
                return self._emit(
                    base, what, [a, b], out, lambda n, i: _matmul_layer(n, i, a, b, out)
                )
            if a.src is not None and len(b.shape) == 2:  # activation @ stored matrix: a linear
                return self._emit(
                    base, what, [a], out, lambda n, i: L.linear(n, i, _s(a.shape), b.shape[1])
                )
            return _bad(f"{what}: a stored matrix times an activation is not supported "
                        "(write it as activation @ matrix or as an nn.Linear)")  # fmt: skip
        return self._emit(
            base, what, live, out, lambda n, i: _function_layer(op, p, n, i, live, out)
        )


def _function_layer(op: str, p: dict, name: str, names, inputs: list[_Ref], out) -> Layer:
    """The layer of functional op ``op`` with arguments ``p``; ``inputs`` are the operands
    computed from the network input (``p`` may hold constant operands as well)."""
    x, shapes = inputs[0], tuple(_s(r.shape) for r in inputs)
    if op == "add":
        both = isinstance(p.get("other"), _Ref) and p["other"].src is not None
        if both and isinstance(p.get("input"), _Ref) and len(set(shapes)) == 1 and len(shapes) == 2:
            return L.add(name, names, shapes)
        return L.eltwise(name, names, shapes, _s(out), "add")
    if op in ("cat", "stack"):
        tensors = p.get("tensors", ())
        dim = p.get("dim", 0) % len(out)
        if dim == 0:
            raise WorkloadError(f"{'concatenating' if op == 'cat' else 'stacking'} along the "
                                "batch dimension is not supported")  # fmt: skip
        if op == "cat" and all(isinstance(t, _Ref) and t.src is not None for t in tensors):
            return L.concat(name, names, shapes, dim - 1)
        # stored constants (a class token) or stacking: the output is torch's
        return Layer(name, "concat", tuple(names), shapes, _s(out), dim=dim - 1)
    if op in _ACT_OPS:
        return L.act(name, names, _s(x.shape), op)
    if op in _POOL_OPS:
        return _pool_layer(name, names, x.shape, out, _POOL_OPS[op], p)
    if op in _FLATTEN_OPS:
        return _flatten_layer(name, names, x.shape, out)
    if op in _NORM_OPS:
        return L.norm(name, names, _s(x.shape), _NORM_OPS[op])
    if op == "batch_norm":
        return L.bn(name, names, _s(x.shape))
    if op in _ELTWISE_OPS:
        return L.eltwise(name, names, shapes, _s(out), _ELTWISE_OPS[op])
    if op in _MOVE_OPS:
        return L.move(name, names, shapes, _s(out), _MOVE_OPS[op])
    w = p.get("weight")  # conv, linear or embedding: only a parameter weight is stored
    if not isinstance(w, _Ref) or w.src is not None:
        raise WorkloadError("the weight must be a parameter, not computed from the input")
    if op == "embedding":
        return L.embedding(name, names, _s(x.shape), w.shape[1])
    bias = p.get("bias") is not None
    if op == "linear":
        return L.linear(name, names, _s(x.shape), w.shape[0], bias)
    geometry = (w.shape[2:], p["stride"] or 1, p["padding"], p["dilation"], p["groups"])
    return L.conv(name, names, _s(x.shape), w.shape[0], *geometry, bias)


def _check_output(value) -> None:
    """Raise the error of the first poisoned tensor that reaches the model output."""
    for ref in _leaves(value, _Ref):
        if ref.error:
            raise WorkloadError(ref.error)


# --------------------------------------------------------------------------- torch.fx front end


class _ShapeProp(ShapeProp):
    """Shape propagation that also keeps the values of non-tensor nodes (``x.size(0)``)."""

    def run_node(self, n: torch.fx.Node):
        """Run one node, remembering its result when it holds no tensor."""
        result = super().run_node(n)
        if "tensor_meta" not in n.meta:
            self.values[n] = result
        return result


def _fx_scope(node: torch.fx.Node) -> str:
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return ""
    key, value = list(stack.items())[-1]
    # Values are (qualified name, type); keys carry "@1" suffixes on repeated calls.
    return value[0] if isinstance(value, tuple) else key


class _LeafTracer(torch.fx.Tracer):
    """torch.fx's tracer, with every subclass of a supported layer module kept as one leaf (a
    quantization-aware ``QuantConv2d`` is a conv layer, not the arithmetic inside it)."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        """Supported layer modules are leaves; every other module (torch's composite ones such
        as ``nn.TransformerEncoderLayer`` included) is traced through."""
        return isinstance(m, _LAYER_MODULES + _PASS_MODULES)


def _from_fx(model: nn.Module, example: torch.Tensor, strict: bool) -> _Builder | None:
    """Trace with torch.fx; ``None`` when tracing fails and ``strict`` is false."""
    try:
        graph = _LeafTracer().trace(model)
        gm = torch.fx.GraphModule(model, graph)
        prop = _ShapeProp(gm)
        prop.values = values = {}
        prop.propagate(example)
    except Exception as exc:
        if not strict:
            return None
        raise WorkloadError(f"torch.fx cannot trace {type(model).__name__}: {exc}") from exc
    builder = _Builder("fx")
    env: dict = {}
    placeholders = 0
    for node in gm.graph.nodes:
        meta = node.meta.get("tensor_meta")
        outs = [tuple(m.shape) for m in _leaves(meta, TensorMetadata)]
        out = outs[0] if len(outs) == 1 else None
        if node.op == "output":
            output = map_arg(node.args[0], env.get)
            try:
                _check_output(output)
            except WorkloadError:
                if strict:
                    raise
                return None  # let the recording front end try: it sees inside wrapped functions
            builder.prune(output)
            continue
        if node.op == "placeholder":
            placeholders += 1
            env[node] = _Ref(L.INPUT, out) if placeholders == 1 and out else values.get(node)
            continue
        if meta is None or (not outs and node.op != "call_module"):
            env[node] = values.get(node)  # Sizes, shapes and other Python values.
            continue
        args = map_arg(node.args, env.get)
        kwargs = map_arg(node.kwargs, env.get)
        if node.op == "get_attr":
            env[node] = _Ref(None, out or ())
        elif node.op == "call_module":
            mod = model.get_submodule(node.target)
            env[node] = builder.module(node.target, mod, args, kwargs, outs)
        else:
            target = node.target
            name = target if isinstance(target, str) else getattr(target, "__name__", str(target))
            env[node] = builder.function(_fx_scope(node), _canonical(name), args, kwargs, outs)
    return builder


# --------------------------------------------------------------------------- recording front end


class _Recorder(TorchFunctionMode):
    """Records the operations executed by a model into a :class:`_Builder`."""

    def __init__(self, builder: _Builder) -> None:
        super().__init__()
        self.builder = builder
        # One (qualname, record, quiet) per running module forward: `record` if the call is a
        # leaf module call to turn into a layer, `quiet` if ops run now belong to a leaf module.
        self.stack: list[tuple[str, bool, bool]] = []
        # id(tensor) -> (ref, tensor); holding the tensor keeps its id from being reused.
        self.seen: dict[int, tuple[_Ref, torch.Tensor]] = {}

    def refs(self, value):
        """``value`` with every tensor replaced by its :class:`_Ref`."""
        if isinstance(value, torch.Tensor):
            hit = self.seen.get(id(value))
            return hit[0] if hit is not None and hit[1] is value else _Ref(None, tuple(value.shape))
        if isinstance(value, list):
            return [self.refs(v) for v in value]
        if isinstance(value, tuple):  # torch.Size and named tuples become plain tuples
            return tuple(self.refs(v) for v in value)
        if isinstance(value, dict):
            return {k: self.refs(v) for k, v in value.items()}
        return value

    def bind(self, value, ref: _Ref | list) -> None:
        """Mark the tensors of ``value`` as produced by ``ref`` (all of them), or by the refs
        of a list (one per tensor, in order)."""
        tensors = _leaves(value, torch.Tensor)
        refs = ref if isinstance(ref, list) else [ref] * len(tensors)
        for t, r in zip(tensors, refs, strict=False):
            self.seen[id(t)] = (r, t)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        """Run ``func`` and, outside leaf modules, record it when it returns tensors."""
        kwargs = kwargs or {}
        args_refs = None if self.stack and self.stack[-1][2] else self.refs((args, kwargs))
        out = func(*args, **kwargs)
        tensors = _leaves(out, torch.Tensor)
        if args_refs is None or not tensors:
            return out
        scope = self.stack[-1][0] if self.stack else ""
        name = _canonical(getattr(func, "__name__", repr(func)))
        shapes = [tuple(t.shape) for t in tensors]
        self.bind(out, self.builder.function(scope, name, *args_refs, shapes))
        return out

    def hooks(self, model: nn.Module) -> list:
        """Register the pre/post forward hooks that maintain the module stack."""
        leaf = _LeafTracer().is_leaf_module
        handles = []
        for qualname, mod in model.named_modules():

            def pre(mod, args, kwargs, qualname=qualname):
                quiet = bool(self.stack) and self.stack[-1][2]
                is_leaf = qualname != "" and leaf(mod, qualname)
                self.stack.append((qualname, is_leaf and not quiet, is_leaf or quiet))

            def post(mod, args, kwargs, out, qualname=qualname):
                tensors = _leaves(out, torch.Tensor)
                if self.stack.pop()[1] and tensors:
                    shapes = [tuple(t.shape) for t in tensors]
                    refs = self.refs((args, kwargs))
                    self.bind(out, self.builder.module(qualname, mod, *refs, shapes))

            handles.append(mod.register_forward_pre_hook(pre, with_kwargs=True))
            handles.append(mod.register_forward_hook(post, with_kwargs=True))
        return handles


def _from_record(model: nn.Module, example: torch.Tensor) -> _Builder:
    builder = _Builder("record")
    recorder = _Recorder(builder)
    recorder.bind(example, _Ref(L.INPUT, tuple(example.shape)))
    handles = recorder.hooks(model)
    try:
        with recorder:
            out = model(example)
    except WorkloadError:
        raise
    except Exception as exc:
        raise WorkloadError(
            f"running {type(model).__name__} on a zeros input of shape {tuple(example.shape)} "
            f"failed: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        for handle in handles:
            handle.remove()
    _check_output(recorder.refs(out))
    builder.prune(recorder.refs(out))
    return builder


# --------------------------------------------------------------------------- entry point


def from_torch(
    model: nn.Module,
    input_shape,
    name: str | None = None,
    method: str = "auto",
    input_dtype: torch.dtype | None = None,
) -> Workload:
    """Convert ``model`` to a workload for an input of ``input_shape`` (batch of 1 included,
    e.g. ``(1, 3, 32, 32)``).

    ``method`` is ``"fx"`` (symbolic tracing), ``"record"`` (record the ops executed on a zeros
    input) or ``"auto"`` (fx, falling back to recording when tracing fails). The model is run in
    eval mode without gradients; its train/eval flags are restored afterwards. The workload is
    called ``name`` or the model's class name. Unsupported modules or operations that reach the
    output raise :class:`~pimsim.errors.WorkloadError`. The example input is zeros of
    ``input_dtype``: by default integer token indices for a model with an ``nn.Embedding``,
    else the model's floating-point type.
    """
    if method not in METHODS:
        raise WorkloadError(f"method {method!r} is not one of {METHODS}")
    if not isinstance(model, nn.Module):
        raise WorkloadError(f"expected a torch.nn.Module, got {type(model).__name__}")
    shape = tuple(int(d) for d in input_shape)
    if len(shape) < 2 or shape[0] != 1:
        raise WorkloadError(
            f"input_shape {shape} must start with a batch dimension of 1, e.g. (1, 3, 32, 32)"
        )
    # Match the model's dtype and device so that a double or GPU model runs.
    param = next((p for p in model.parameters() if p.is_floating_point()), torch.zeros(()))
    if input_dtype is None:
        embeds = any(isinstance(m, nn.Embedding) for m in model.modules())
        input_dtype = torch.long if embeds else param.dtype
    example = torch.zeros(shape, dtype=input_dtype, device=param.device)
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            builder = None if method == "record" else _from_fx(model, example, method == "fx")
            builder = builder or _from_record(model, example)
    finally:
        for mod, training in modes.items():
            mod.training = training
    return Workload(
        name or type(model).__name__,
        shape[1:],
        tuple(builder.layers),
        source=f"torch:{builder.method}",
    )
