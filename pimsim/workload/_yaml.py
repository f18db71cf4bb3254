"""Workload YAML files (``kind: workload``): layers, reusable blocks, repeats.

A file lists ``layers`` in order; each layer reads the previous one unless ``from`` names others
(``input`` is the network input, or a block's input inside a block). A ``block`` is written once
with ``params`` (used as ``$name`` in its layers) and instantiated by an entry with ``block:``,
optionally ``repeat: N`` with ``{i}`` in the entry's name (``layer1.{i}``, i from ``start``). Layer
names inside a block instance are ``<instance>.<layer>`` (``layer1.0.conv1``), which matches the
qualified module names of the torch zoo.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from pimsim.errors import SpecError, WorkloadError
from pimsim.spec._fields import NonNegFloat, PositiveInt, SpecModel
from pimsim.spec._load import validate_document
from pimsim.spec._yaml import Document, format_path, read_document
from pimsim.workload import _layer as L

Param = Annotated[str, Field(pattern=r"^\$[A-Za-z_]\w*$")]
"""A block parameter reference such as ``$channels``."""
IntP = Annotated[int, Field(ge=0)] | Param
PairP = IntP | Annotated[list[IntP], Field(min_length=2, max_length=2)]

MAX_BLOCK_NESTING = 8


class LayerEntry(SpecModel):
    """One entry of ``layers``: a layer (``kind``) or a block instance (``block``)."""

    name: str = Field(min_length=1)
    """Layer name (torch qualified-name style), or the instance name of a block; with
    ``repeat`` it must contain ``{i}``."""
    kind: Literal[YAML_KINDS] | None = None
    """Layer kind (omit for a block instance)."""
    block: str | None = None
    """Name of a block defined under ``blocks``."""
    repeat: PositiveInt = 1
    """Instances of the block, named by ``name`` with ``{i}`` = start, start+1, ..."""
    start: Annotated[int, Field(ge=0)] = 0
    """First value of ``{i}``."""
    params: dict[str, int | str | NonNegFloat] = {}
    """Values of the block's parameters."""
    from_: str | list[str] | None = Field(default=None, alias="from")
    """Input layer name(s); default the previous entry. ``input``: the network/block input."""
    out_channels: IntP | None = None
    """conv: output channels."""
    out_features: IntP | None = None
    """linear: output features."""
    kernel: PairP | None = None
    """conv/pool: kernel size (int or [h, w])."""
    stride: PairP | None = None
    """conv/pool: stride (conv default 1, pool default = kernel)."""
    padding: PairP | Literal["same", "valid"] | None = None
    """conv/pool: zero padding (default 0)."""
    dilation: PairP | None = None
    """conv/pool: dilation (default 1)."""
    groups: IntP | None = None
    """conv: groups (default 1; equal to in_channels for depthwise)."""
    bias: bool = False
    """conv/linear: whether the layer has a bias (added digitally)."""
    op: str | None = None
    """act: function (relu, relu6, sigmoid, ...); pool: max, avg, adaptive_avg, adaptive_max."""
    ceil_mode: bool = False
    """pool: round output size up."""
    output_size: PairP | None = None
    """adaptive pool: output size (default 1)."""
    dim: int | None = None
    """concat: dimension (batch excluded; 0 = channels); flatten: start dimension (default 0)."""


class BlockSpec(SpecModel):
    """A reusable group of layers with parameters."""

    params: list[str] = []
    """Parameter names, referenced as ``$name`` in the layers."""
    layers: list[LayerEntry] = Field(min_length=1)
    """The block's layers; the last one is the block's output."""


#: Layer kinds a workload file spells out layer by layer; attention, RNNs and the other kinds
#: of traced models come from the model itself (``model:``).
YAML_KINDS = ("conv", "linear", "pool", "add", "concat", "bn", "act", "flatten", "norm")


class WorkloadFile(SpecModel):
    """A network description (a ``kind: workload`` file)."""

    kind: Literal["workload"] = "workload"
    """File kind."""
    name: str = Field(min_length=1)
    """Network name."""
    description: str = ""
    """Free text (source of the architecture, dataset)."""
    input_shape: list[PositiveInt] = Field(min_length=1, max_length=4)
    """Input shape without the batch dimension, e.g. [3, 32, 32]."""
    blocks: dict[str, BlockSpec] = {}
    """Reusable blocks by name."""
    layers: list[LayerEntry] = []
    """The network, in order (or ``model``)."""
    model: str | None = Field(default=None, min_length=3)
    """Instead of ``layers``: a torch model to trace, as ``package.module:factory`` (a function
    or class returning the ``nn.Module``) or a zoo network's name; ``input_shape`` gives its
    input."""


class _Builder:
    def __init__(self, doc: Document, spec: WorkloadFile) -> None:
        self.doc, self.spec = doc, spec
        self.layers: list[L.Layer] = []
        self.shapes: dict[str, tuple] = {L.INPUT: tuple(spec.input_shape)}

    def fail(self, path: tuple, message: str, context: str = "") -> SpecError:
        where = f" (in {context})" if context else ""
        return SpecError(message + where, self.doc.locate(path), format_path(path))

    def run(self) -> list[L.Layer]:
        self.sequence(self.spec.layers, ("layers",), "", L.INPUT, {}, {}, "", 0)
        return self.layers

    def sequence(self, entries, path, prefix, block_input, params, names, context, depth):
        """Build ``entries``; returns the global name of the last output."""
        names = dict(names)
        names["input"] = block_input
        prev = block_input
        for i, entry in enumerate(entries):
            epath = path + (i,)
            if entry.block is not None:
                prev = self.instantiate(entry, epath, prefix, prev, params, names, context, depth)
            else:
                prev = self.layer(entry, epath, prefix, prev, params, names, context)
            names[entry.name] = prev
        return prev

    def inputs(self, entry, path, prev, names, context) -> tuple[str, ...]:
        if entry.from_ is None:
            return (prev,)
        wanted = [entry.from_] if isinstance(entry.from_, str) else entry.from_
        out = []
        for ref in wanted:
            if ref not in names:
                known = ", ".join(k for k in names if k != "input")
                raise self.fail(
                    path + ("from",),
                    f"unknown layer {ref!r} (earlier layers here: input, {known})",
                    context,
                )
            out.append(names[ref])
        return tuple(out)

    def value(self, v, params, path, context):
        if isinstance(v, list):
            return [self.value(x, params, path, context) for x in v]
        if isinstance(v, str) and v.startswith("$"):
            if v[1:] not in params:
                raise self.fail(path, f"parameter {v} is not defined", context)
            return params[v[1:]]
        return v

    def layer(self, entry, path, prefix, prev, params, names, context) -> str:
        if entry.kind is None:
            raise self.fail(
                path, "entry needs 'kind' (a layer) or 'block' (a block instance)", context
            )
        name = f"{prefix}.{entry.name}" if prefix else entry.name
        inputs = self.inputs(entry, path, prev, names, context)
        shapes = tuple(self.shapes[s] for s in inputs)
        fields = (
            "out_channels",
            "out_features",
            "kernel",
            "stride",
            "padding",
            "dilation",
            "groups",
            "output_size",
        )
        v = {f: self.value(getattr(entry, f), params, path + (f,), context) for f in fields}
        for f, value in v.items():
            items = value if isinstance(value, list) else [value]
            if value is None or (f == "padding" and value in ("same", "valid")):
                continue
            if not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in items):
                raise self.fail(
                    path + (f,),
                    f"expected a non-negative integer or a pair of them, got {value!r}",
                    context,
                )
        kind, op = entry.kind, entry.op
        try:
            if len(inputs) != 1 and kind not in ("add", "concat"):
                raise WorkloadError(f"a {kind} layer takes one input, got {len(inputs)}")
            if kind == "conv":
                layer = L.conv(
                    name,
                    inputs,
                    shapes[0],
                    self.need(v, "out_channels", kind),
                    self.need(v, "kernel", kind),
                    v["stride"] or 1,
                    v["padding"] or 0,
                    v["dilation"] or 1,
                    v["groups"] or 1,
                    entry.bias,
                )
            elif kind == "linear":
                layer = L.linear(
                    name, inputs, shapes[0], self.need(v, "out_features", kind), entry.bias
                )
            elif kind == "pool":
                layer = L.pool(
                    name,
                    inputs,
                    shapes[0],
                    op or "",
                    v["kernel"],
                    v["stride"],
                    v["padding"] or 0,
                    v["dilation"] or 1,
                    entry.ceil_mode,
                    v["output_size"],
                )
            elif kind == "act":
                layer = L.act(name, inputs, shapes[0], op or "")
            elif kind == "add":
                layer = L.add(name, inputs, shapes)
            elif kind == "concat":
                layer = L.concat(name, inputs, shapes, entry.dim or 0)
            elif kind == "bn":
                layer = L.bn(name, inputs, shapes[0])
            elif kind == "norm":
                layer = L.norm(name, inputs, shapes[0], op or "")
            else:
                layer = L.flatten(name, inputs, shapes[0], entry.dim or 0)
        except WorkloadError as exc:
            raise self.fail(path, str(exc), context) from None
        if name in self.shapes:
            raise self.fail(path + ("name",), f"layer name {name!r} is used twice", context)
        self.layers.append(layer)
        self.shapes[name] = layer.output_shape
        return name

    @staticmethod
    def need(values, field, kind):
        if values[field] is None:
            raise WorkloadError(f"a {kind} layer needs '{field}'")
        return values[field]

    def instantiate(self, entry, path, prefix, prev, params, names, context, depth) -> str:
        block = self.spec.blocks.get(entry.block)
        if block is None:
            known = ", ".join(self.spec.blocks) or "none defined"
            raise self.fail(
                path + ("block",), f"unknown block {entry.block!r} (blocks: {known})", context
            )
        if depth >= MAX_BLOCK_NESTING:
            raise self.fail(path, f"blocks nested deeper than {MAX_BLOCK_NESTING}", context)
        if entry.kind is not None:
            raise self.fail(path + ("kind",), "an entry is either a layer or a block", context)
        if entry.repeat > 1 and "{i}" not in entry.name:
            raise self.fail(path + ("name",), "a repeated block needs '{i}' in its name", context)
        given = {
            k: self.value(v, params, path + ("params", k), context) for k, v in entry.params.items()
        }
        missing = [p for p in block.params if p not in given]
        extra = [p for p in given if p not in block.params]
        if missing or extra:
            raise self.fail(
                path + ("params",),
                f"block {entry.block!r} takes params "
                f"{block.params}; missing {missing}, unknown {extra}",
                context,
            )
        block_in = self.inputs(entry, path, prev, names, context)
        if len(block_in) != 1:
            raise self.fail(path + ("from",), "a block takes one input", context)
        out = block_in[0]
        bpath = ("blocks", entry.block, "layers")
        for i in range(entry.start, entry.start + entry.repeat):
            local = entry.name.replace("{i}", str(i))
            full = f"{prefix}.{local}" if prefix else local
            ctx = f"block {entry.block!r} as {full}"
            out = self.sequence(block.layers, bpath, full, out, given, {}, ctx, depth + 1)
        return out


def load_workload_file(path: str | os.PathLike) -> L.Workload:
    """Load a ``kind: workload`` YAML file into a :class:`~pimsim.workload.Workload`."""
    return build_workload(read_document(Path(path), ("workload",)), str(path))


def build_workload(doc: Document, source: str) -> L.Workload:
    """Validate a read ``kind: workload`` document and build its layers."""
    spec = validate_document(doc, WorkloadFile)
    if (spec.model is None) == (not spec.layers):
        field = "model" if spec.model is not None else "layers"
        raise SpecError(
            "a workload gives either 'layers' or 'model' (a torch model to trace), not "
            f"{'both' if spec.layers else 'neither'}",
            doc.locate((field,)),
            field,
        )
    if spec.model is not None:
        from pimsim.workload._zoo import traced_workload

        try:
            wl = traced_workload(spec.model, tuple(spec.input_shape))
        except WorkloadError as exc:
            raise SpecError(str(exc), doc.locate(("model",)), "model") from None
        return L.Workload(spec.name, wl.input_shape, wl.layers, source=source)
    layers = _Builder(doc, spec).run()
    try:
        return L.Workload(spec.name, tuple(spec.input_shape), tuple(layers), source=source)
    except WorkloadError as exc:
        raise SpecError(str(exc), doc.locate(("layers",)), "layers") from None
