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

#: Values of :func:`from_torch`'s ``method``.
METHODS = ("auto", "fx", "record")

# Activation modules; the op name is the lower-cased class name (ReLU6 -> relu6).
_ACT_MODULES = tuple(getattr(nn, n) for n in "ReLU ReLU6 Sigmoid Tanh GELU SiLU Hardswish".split())
_ACT_MODULES += (nn.Softmax,)
# Pool modules in the order of _layer.POOL_OPS (max, avg, adaptive_avg, adaptive_max).
_POOL_MODULES = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_POOL_MODULES = tuple(zip(_POOL_MODULES, L.POOL_OPS, strict=True))
_LAYER_MODULES = (nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.Flatten)
_LAYER_MODULES += _ACT_MODULES + tuple(c for c, _ in _POOL_MODULES)
# Modules that compute nothing at inference: no layer, edges bypass them.
_PASS_MODULES = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)
_PASS_MODULES += (nn.AlphaDropout, nn.FeatureAlphaDropout)

_ACT_OPS = {c.__name__.lower() for c in _ACT_MODULES}
_POOL_OPS = {f"{op}_pool2d": op for op in L.POOL_OPS}  # max_pool2d -> max, ...
_FLATTEN_OPS = ("flatten", "view", "reshape")
_SKIP_OPS = {"contiguous", "clone", "detach", "to", "type", "float"}
_SKIP_OPS |= {"dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout"}
_SKIP_OPS |= {"feature_alpha_dropout"}
_LAYER_OPS = _ACT_OPS | set(_POOL_OPS) | set(_FLATTEN_OPS) | {"add", "cat", "conv2d", "linear"}
# Operator spellings that mean the same layer: `x += y` is `iadd`, `1 + x` is `radd`.
_ALIASES = {"iadd": "add", "radd": "add", "concat": "cat", "concatenate": "cat"}
# Positional parameter names of the functional ops whose arguments matter.
_SIGNATURES = {
    "max_pool2d": ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    "avg_pool2d": ("input", "kernel_size", "stride", "padding", "ceil_mode"),
    "conv2d": ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
    "linear": ("input", "weight", "bias"),
    "cat": ("tensors", "dim"),
    "add": ("input", "other"),
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


def _flatten_layer(name: str, inputs, shape: tuple, out: tuple) -> Layer:
    """A flatten layer when ``out`` (batch included) flattens the trailing dims of ``shape``."""
    keep = len(out) - 1
    if keep < 1 or shape[:keep] != out[:keep] or math.prod(shape[keep:]) != out[keep]:
        raise WorkloadError(
            f"reshaping {shape[1:]} to {out[1:]} is not supported (only flattening trailing "
            "dimensions, keeping the batch, is)"
        )
    return L.flatten(name, inputs, shape[1:], keep - 1)


def _pool_layer(name, inputs, shape, out, op: str, p: dict) -> Layer:
    if op.startswith("adaptive"):
        return L.pool(name, inputs, shape[1:], op, output_size=out[2:])
    # torch spells "stride = kernel" as None or [].
    window = (p.get("kernel_size"), p.get("stride") or None, p.get("padding", 0))
    rest = (p.get("dilation", 1), bool(p.get("ceil_mode", False)))
    return L.pool(name, inputs, shape[1:], op, *window, *rest)


def _module_layer(mod: nn.Module, name: str, inputs, shape: tuple, out: tuple) -> Layer:
    """The layer for one call of a supported leaf module (shapes include the batch)."""
    if isinstance(mod, nn.Conv2d):
        geometry = (mod.kernel_size, mod.stride, mod.padding, mod.dilation, mod.groups)
        return L.conv(name, inputs, shape[1:], mod.out_channels, *geometry, mod.bias is not None)
    if isinstance(mod, nn.Linear):
        return L.linear(name, inputs, shape[1:], mod.out_features, mod.bias is not None)
    if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return L.bn(name, inputs, shape[1:])
    if isinstance(mod, nn.Flatten):
        return _flatten_layer(name, inputs, shape, out)
    for cls in _ACT_MODULES:
        if isinstance(mod, cls):
            return L.act(name, inputs, shape[1:], cls.__name__.lower())
    op = next(op for cls, op in _POOL_MODULES if isinstance(mod, cls))
    params = {k: getattr(mod, k, _DEFAULTS.get(k)) for k in _SIGNATURES["max_pool2d"][1:]}
    return _pool_layer(name, inputs, shape, out, op, params)


class _Builder:
    """Turns module calls and function calls, with :class:`_Ref` in place of tensors, into
    layers; each call returns the :class:`_Ref` of its result."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.layers: list[Layer] = []
        self.names = {L.INPUT}

    def _unique(self, base: str) -> str:
        name, i = base, 0
        while name in self.names:
            i += 1
            name = f"{base}_{i}"
        return name

    def _emit(self, base: str, what: str, inputs: list[_Ref], out, build) -> _Ref:
        """Append ``build(name, input_names)`` unless an input or the result is unusable."""
        if any(ref.src is None for ref in inputs):
            return _bad(f"{what}: an operand is not computed from the network input (it is a "
                        "parameter, buffer or constant), which is not supported")  # fmt: skip
        if out is None:
            return _bad(f"{what}: returns several tensors, which is not supported")
        name = self._unique(base)
        try:
            layer = build(name, tuple(r.src for r in inputs))
        except WorkloadError as exc:
            return _bad(f"{what}: {exc}")
        if layer.output_shape != tuple(out[1:]):
            return _bad(f"{what}: output shape {layer.output_shape} != torch's {out[1:]}")
        self.layers.append(layer)
        self.names.add(name)
        return _Ref(name, tuple(out))

    def module(self, qualname: str, mod: nn.Module, args, kwargs, out) -> _Ref:
        """One call of leaf module ``mod``; ``out`` is the result's shape (None: not a tensor)."""
        refs = _leaves((args, kwargs), _Ref)
        if bad := next((r for r in refs if r.error), None):
            return bad  # Report the first unsupported operation upstream.
        what = f"module {qualname!r} ({type(mod).__name__})"
        if isinstance(mod, _PASS_MODULES) and refs:
            return refs[0]
        if not isinstance(mod, _LAYER_MODULES):
            return _bad(f"{what} is not supported; supported modules: {_SUPPORTED_MODULES}")
        if len(refs) != 1:
            return _bad(f"{what}: expected one tensor input, got {len(refs)}")
        x = refs[0]
        return self._emit(
            qualname, what, refs, out, lambda n, i: _module_layer(mod, n, i, x.shape, out)
        )

    def function(self, scope: str, op: str, args, kwargs, out) -> _Ref:
        """One functional op, tensor method or operator called in module ``scope``."""
        refs = _leaves((args, kwargs), _Ref)
        if bad := next((r for r in refs if r.error), None):
            return bad
        if all(r.src is None for r in refs):
            return _Ref(None, out or ())  # Computed from parameters or constants only.
        if op in _SKIP_OPS:
            return refs[0]
        label = "flatten" if op in _FLATTEN_OPS else op
        base = f"{scope}.{label}" if scope else label
        what = f"operation {op!r} (in {repr(scope) if scope else 'the top-level forward'})"
        if op not in _LAYER_OPS:
            return _bad(f"{what} is not supported; supported operations: {_SUPPORTED_OPS}")
        p = dict(_DEFAULTS)
        p.update(zip(_SIGNATURES.get(op, ("input",)), args, strict=False))
        p.update(kwargs)
        inputs = [p.get("input"), p.get("other")] if op == "add" else [p.get("input")]
        inputs = list(p.get("tensors", ())) if op == "cat" else inputs
        if not inputs or not all(isinstance(v, _Ref) for v in inputs):
            why = "adding a non-tensor (a Python scalar) is not supported; only tensor + tensor "
            why = why + "(a residual add) is" if op == "add" else "expected tensor operands"
            return _bad(f"{what}: {why}")
        return self._emit(
            base, what, inputs, out, lambda n, i: _function_layer(op, p, n, i, inputs, out)
        )


def _function_layer(op: str, p: dict, name: str, names, inputs: list[_Ref], out) -> Layer:
    """The layer of functional op ``op`` with arguments ``p`` and tensor operands ``inputs``."""
    x, shapes = inputs[0], tuple(r.shape[1:] for r in inputs)
    if op == "add":
        return L.add(name, names, shapes)
    if op == "cat":
        dim = p.get("dim", 0) % len(out)
        if dim == 0:
            raise WorkloadError("concatenating along the batch dimension is not supported")
        return L.concat(name, names, shapes, dim - 1)
    if op in _ACT_OPS:
        return L.act(name, names, x.shape[1:], op)
    if op in _POOL_OPS:
        return _pool_layer(name, names, x.shape, out, _POOL_OPS[op], p)
    if op in _FLATTEN_OPS:
        return _flatten_layer(name, names, x.shape, out)
    w = p.get("weight")  # conv2d or linear; only a parameter weight maps onto a crossbar
    if not isinstance(w, _Ref) or w.src is not None:
        raise WorkloadError("the weight must be a parameter, not computed from the input")
    bias = p.get("bias") is not None
    if op == "linear":
        return L.linear(name, names, x.shape[1:], w.shape[0], bias)
    geometry = (w.shape[2:], p["stride"] or 1, p["padding"], p["dilation"], p["groups"])
    return L.conv(name, names, x.shape[1:], w.shape[0], *geometry, bias)


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
        if isinstance(m, _LAYER_MODULES + _PASS_MODULES):
            return True
        return super().is_leaf_module(m, qualname)


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
        out = tuple(meta.shape) if isinstance(meta, TensorMetadata) else None
        if node.op == "output":
            _check_output(map_arg(node.args[0], env.get))
            continue
        if node.op == "placeholder":
            placeholders += 1
            env[node] = _Ref(L.INPUT, out) if placeholders == 1 and out else values.get(node)
            continue
        if meta is None:
            env[node] = values.get(node)  # Sizes, shapes and other Python values.
            continue
        args = map_arg(node.args, env.get)
        kwargs = map_arg(node.kwargs, env.get)
        if node.op == "get_attr":
            env[node] = _Ref(None, out or ())
        elif node.op == "call_module":
            mod = model.get_submodule(node.target)
            env[node] = builder.module(node.target, mod, args, kwargs, out)
        else:
            target = node.target
            name = target if isinstance(target, str) else getattr(target, "__name__", str(target))
            env[node] = builder.function(_fx_scope(node), _canonical(name), args, kwargs, out)
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

    def bind(self, value, ref: _Ref) -> None:
        """Mark every tensor of ``value`` as produced by ``ref``."""
        for t in _leaves(value, torch.Tensor):
            self.seen[id(t)] = (ref, t)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        """Run ``func`` and, outside leaf modules, record it when it returns tensors."""
        kwargs = kwargs or {}
        args_refs = None if self.stack and self.stack[-1][2] else self.refs((args, kwargs))
        out = func(*args, **kwargs)
        if args_refs is None or not _leaves(out, torch.Tensor):
            return out
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else None
        scope = self.stack[-1][0] if self.stack else ""
        name = _canonical(getattr(func, "__name__", repr(func)))
        self.bind(out, self.builder.function(scope, name, *args_refs, shape))
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
                if self.stack.pop()[1] and _leaves(out, torch.Tensor):
                    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else None
                    refs = self.refs((args, kwargs))
                    self.bind(out, self.builder.module(qualname, mod, *refs, shape))

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
    return builder


# --------------------------------------------------------------------------- entry point


def from_torch(
    model: nn.Module, input_shape, name: str | None = None, method: str = "auto"
) -> Workload:
    """Convert ``model`` to a workload for an input of ``input_shape`` (batch of 1 included,
    e.g. ``(1, 3, 32, 32)``).

    ``method`` is ``"fx"`` (symbolic tracing), ``"record"`` (record the ops executed on a zeros
    input) or ``"auto"`` (fx, falling back to recording when tracing fails). The model is run in
    eval mode without gradients; its train/eval flags are restored afterwards. The workload is
    called ``name`` or the model's class name. Unsupported modules or operations that reach the
    output raise :class:`~pimsim.errors.WorkloadError`.
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
    example = torch.zeros(shape, dtype=param.dtype, device=param.device)
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
