"""Action counts per layer for one input sample, read from the mapping (never re-derived).

Classes of actions (the keys of energy breakdowns):
``adc`` conversions (with ``array.read_all_row_groups`` the conversions of row groups without
weights too, each weighted by the ADC model's energy for it over a conversion's, see
:func:`empty_conversion_weight`); ``sample_hold`` one sample per conversion (empty ones
too); ``dac`` row activations (one per used row per input cycle per array read); ``array``
cell reads; ``shift_add`` one per conversion, empty ones too (recombining slices and cycles,
reference columns included); ``accumulator`` partial-sum
additions across row tiles and, once per output, the offset correction of ``offset`` (the
reference column's subtraction, or the exact digital term) and ``differential_digital``
encodings; ``buffer`` bits
read and written (:func:`pimsim.mapping.layer_traffic`: inputs read once per output position,
outputs written once, as partial sums where activation units sit at chip level); ``interconnect``
bit-transfers of the data that physically crosses each interconnect the spec declares
(:func:`interconnect_transfers`); ``activation`` / ``pooling`` /
``digital`` element operations of non-MVM layers (activation functions; pooling window operations;
residual adds, concatenation, batch-norm, element-wise arithmetic, normalisation); ``mac``
multiply-accumulates of activation x activation products on digital MAC units.

Operation counts of the layers that run on digital units, per output element unless said:
activation functions 1 (softmax and log-softmax: 1 exponential plus 2 digital operations, the
sum and the division); ``norm`` :data:`NORM_OPS_PER_ELEMENT` digital operations (layer norm:
mean 1, centring 1, square 1, variance sum 1, scaling 1, affine 2 = 7; RMS norm: square 1, sum 1,
scaling 1, affine 1 = 4); ``eltwise`` 1 per element of its largest operand (a reduction reads
every input element); ``move`` layers that copy data (permute, transpose, slicing, padding...)
read and write every output element through the buffers, views (reshape, squeeze, expand...)
move nothing; ``embedding`` reads its output vectors (weight bits each) and writes them
(activation bits); a ``matmul`` on digital units makes its MACs and reads both operands and
writes its output once through the buffers; an ``rnn`` layer's gates add, per time step and
hidden unit, 5 activation functions and 4 digital operations (LSTM: 3 sigmoid, 2 tanh; c = f c +
i g, h = o tanh(c)) or 3 and 6 (GRU: 2 sigmoid, 1 tanh; r n_h, n_x +, 1 - z, two products, +).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pimsim.mapping import Mapping, layer_traffic
from pimsim.spec._fields import ACTION_CLASSES
from pimsim.workload import Layer
from pimsim.workload._layer import VIEW_OPS

#: Digital operations per element of a ``norm`` layer (see the module docstring).
NORM_OPS_PER_ELEMENT = {"layernorm": 7, "rmsnorm": 4, "groupnorm": 7, "instancenorm": 7}
#: (activation functions, digital operations) per time step and hidden unit of an ``rnn`` layer.
RNN_GATE_OPS = {"lstm": (5, 4), "gru": (3, 6)}


def is_view(layer: Layer) -> bool:
    """Whether ``layer`` only relabels its input (flatten, reshape...): no data moves."""
    return layer.kind == "flatten" or (layer.kind == "move" and layer.op in VIEW_OPS)


def layer_actions(
    mapping: Mapping, layer: Layer, weights: ActionWeights | None = None
) -> dict[str, float]:
    """Counts of each action class for ``layer`` and one input sample; ``weights``:
    :func:`action_weights` of the arch (computed here when not given)."""
    arch = mapping.arch
    w = weights or action_weights(arch)
    in_bits = arch.decomposition.input_bits
    counts = dict.fromkeys(ACTION_CLASSES, 0.0)
    out_elems = math.prod(layer.output_shape)
    m = mapping.layers.get(layer.name)
    if m is not None:
        conv, empty = m.adc_conversions, m.empty_conversions
        counts["adc"] = conv + (empty * w.empty_conversion if empty else 0)
        counts["sample_hold"] = conv + empty
        counts["shift_add"] = conv + empty  # an empty group's zero partial sum is still added
        counts["dac"] = m.row_activations
        counts["array"] = m.cell_reads
        outputs = m.output_positions * m.n_cols * m.matrices
        corrections = (
            outputs
            if arch.decomposition.signed_encoding in ("offset", "differential_digital")
            else 0
        )
        counts["accumulator"] = outputs * (len(m.row_tiles) - 1) + corrections
        traffic = layer_traffic(mapping, layer)
        counts["buffer"] = traffic.input_bits + traffic.output_bits
        if layer.kind == "rnn":
            acts, ops = RNN_GATE_OPS[layer.op]
            counts["activation"] = out_elems * acts
            counts["digital"] = out_elems * ops
    elif layer.kind == "act":
        counts["activation"] = out_elems
        if layer.op in ("softmax", "log_softmax"):
            counts["digital"] = 2 * out_elems
    elif layer.kind == "norm":
        counts["digital"] = out_elems * NORM_OPS_PER_ELEMENT[layer.op]
    elif layer.kind == "eltwise":
        counts["digital"] = max([out_elems] + [math.prod(s) for s in layer.input_shapes])
    elif layer.kind == "move" and not is_view(layer):
        counts["buffer"] = 2 * out_elems * in_bits
    elif layer.kind == "embedding":
        counts["buffer"] = out_elems * (arch.decomposition.weight_bits + in_bits)
    elif layer.kind == "matmul":
        counts["mac"] = layer.macs
        operands = sum(math.prod(s) for s in layer.input_shapes)
        counts["buffer"] = (operands + out_elems) * in_bits
    elif layer.kind == "pool":
        window = (
            math.prod(layer.kernel)
            if layer.kernel
            else math.prod(layer.input_shape[1:]) // max(1, math.prod(layer.output_shape[1:]))
        )
        counts["pooling"] = out_elems * window
    elif layer.kind in ("add", "concat", "bn"):
        counts["digital"] = out_elems * (len(layer.inputs) - 1 if layer.kind == "add" else 1)
    if not is_view(layer):
        counts["interconnect"] = interconnect_transfers(mapping, layer, w)
    return counts


def empty_conversion_weight(arch) -> float:
    """Energy of a conversion of a row group without weights over a conversion's: the ADC
    model's ``adc_empty`` estimate (``neurosim``: the sense amplifier with no cell current)
    over its ``adc`` estimate; 1 for models without one (their energy does not depend on the
    input)."""
    from pimsim.cost._hierarchy import estimate
    from pimsim.cost._registry import lookup, models

    if ("adc_empty", arch.adc.model) not in models("adc_empty"):
        return 1.0
    full = estimate(arch, "adc").energy_pj
    return lookup("adc_empty", arch.adc.model)(arch, arch.adc).energy_pj / full if full else 1.0


def is_network(level: str, comp) -> bool:
    """Whether an interconnect component is a network between tiles (a chip-level one, one
    shared by several level instances, or a mesh / crossbar / point-to-point link) rather than
    a level's local interconnect; the dataflow model's ports and the traffic count agree on it."""
    return (
        level == "chip"
        or comp.shared_by > 1
        or comp.topology in ("mesh", "crossbar", "point_to_point")
    )


@dataclass(frozen=True)
class ActionWeights:
    """Per-arch factors of :func:`layer_actions`, computed once per evaluation
    (:func:`action_weights`) rather than for every layer."""

    empty_conversion: float
    """:func:`empty_conversion_weight`."""
    pe: float
    """Energy per bit of the PE-level local interconnects over the reference interconnect's:
    the spec's first interconnect component (PE, then tile, then chip), whose energy per bit
    the evaluation charges per ``interconnect`` action."""
    tile: float
    """The same for the tile-level local interconnects."""
    network: float
    """The same for the first network interconnect (1 when there is none)."""
    hops: float | None
    """The network component's ``hops`` (None: from the placement)."""
    has_network: bool
    """Whether the spec has a network interconnect."""
    chip_buffer: bool
    """Whether the chip has a buffer, from which inputs arrive over the network."""


def action_weights(arch) -> ActionWeights:
    """:class:`ActionWeights` of ``arch``."""
    from pimsim.cost._hierarchy import estimate
    from pimsim.cost._registry import BUFFER_ACCESS_BITS

    per_bit, ref, net = {}, None, None
    for level in ("pe", "tile", "chip"):
        for comp in getattr(arch, level).components:
            if comp.component_class != "interconnect":
                continue
            e = estimate(arch, level, comp).energy_pj / (comp.width_bits or BUFFER_ACCESS_BITS)
            ref = e if ref is None else ref
            if is_network(level, comp):
                if net is None:
                    net = comp
                    per_bit["network"] = e
            else:
                per_bit[level] = per_bit.get(level, 0.0) + e
    rel = {role: e / ref for role, e in per_bit.items()} if ref else {}
    return ActionWeights(
        empty_conversion=empty_conversion_weight(arch),
        pe=rel.get("pe", 0.0),
        tile=rel.get("tile", 0.0),
        network=rel.get("network", 1.0),
        hops=net.hops if ref and net is not None else None,
        has_network=bool(ref) and net is not None,
        chip_buffer=any(c.component_class == "buffer" for c in arch.chip.components),
    )


def interconnect_transfers(mapping: Mapping, layer: Layer, w: ActionWeights) -> float:
    """``interconnect`` actions of ``layer`` for one input sample: bits times the energy per bit
    of the interconnect that carries them over the reference's (:class:`ActionWeights`).

    A mapped layer's unrolled inputs and its row tiles' partial sums cross the PE's local
    interconnect (:attr:`LayerTraffic.pe_bits`); its inputs and results cross the tile's local
    interconnect (:attr:`LayerTraffic.local_bits`, the bits the dataflow model times there);
    each consumer receives the output over the network, ``hops`` transfers (the network
    component's ``hops``, else the placement's, ``Mapping.hops``), plus one local transfer when
    no local interconnect carried it already; with a chip buffer the inputs also arrive over
    the network from it (as the dataflow model moves them). A level without an interconnect
    component has no wire to charge."""
    arch = mapping.arch
    traffic = layer_traffic(mapping, layer)
    total = 0.0
    if layer.name in mapping.layers:
        total += w.pe * traffic.pe_bits + w.tile * traffic.local_bits
        if w.has_network and w.chip_buffer:
            bits = arch.decomposition.input_bits
            in_elems = sum(math.prod(s) for s in layer.input_shapes)
            hops = w.hops if w.hops is not None else 1.0
            total += w.network * hops * in_elems * bits
    local = 0 if w.tile and layer.name in mapping.layers else 1
    consumers = list(mapping.workload.graph.successors(layer.name)) or [layer.name]
    for dst in consumers:
        hops = w.hops if w.hops is not None else mapping.hops(layer.name, dst)
        total += traffic.send_bits * (local + w.network * hops)
    return total
