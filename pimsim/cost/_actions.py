"""Action counts per layer for one input sample, read from the mapping (never re-derived).

Classes of actions (the keys of energy breakdowns):
``adc`` conversions; ``sample_hold`` one sample per conversion; ``dac`` row activations (one per
used row per input cycle per array read); ``array`` cell reads; ``shift_add`` one per conversion
(recombining slices and cycles, reference columns included); ``accumulator`` partial-sum
additions across row tiles and, once per output, the offset correction of ``offset`` (the
reference column's subtraction, or the exact digital term) and ``differential_digital``
encodings; ``buffer`` bits
read and written (:func:`pimsim.mapping.layer_traffic`: inputs read once per output position,
outputs written once, as partial sums where activation units sit at chip level); ``interconnect``
bit-transfers: each consumer of a layer's output receives it over one local transfer plus the
mesh hops between the two layers' tiles (``Mapping.hops``); ``activation`` / ``pooling`` /
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


def layer_actions(mapping: Mapping, layer: Layer) -> dict[str, float]:
    """Counts of each action class for ``layer`` and one input sample."""
    arch = mapping.arch
    in_bits = arch.decomposition.input_bits
    counts = dict.fromkeys(ACTION_CLASSES, 0.0)
    out_elems = math.prod(layer.output_shape)
    m = mapping.layers.get(layer.name)
    if m is not None:
        conv = m.adc_conversions
        counts["adc"] = conv
        counts["sample_hold"] = conv
        counts["shift_add"] = conv
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
        # each consumer receives the output: one local transfer plus the mesh hops to it
        consumers = list(mapping.workload.graph.successors(layer.name)) or [layer.name]
        counts["interconnect"] = sum(
            out_elems * in_bits * (1 + mapping.hops(layer.name, dst)) for dst in consumers
        )
    return counts
