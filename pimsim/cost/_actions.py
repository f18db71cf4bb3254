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
residual adds, concatenation, batch-norm and flatten moves).
"""

from __future__ import annotations

import math

from pimsim.mapping import Mapping, layer_traffic
from pimsim.spec._fields import ACTION_CLASSES
from pimsim.workload import Layer


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
    elif layer.kind == "act":
        counts["activation"] = out_elems
    elif layer.kind == "pool":
        window = (
            math.prod(layer.kernel)
            if layer.kernel
            else math.prod(layer.input_shape[1:]) // max(1, math.prod(layer.output_shape[1:]))
        )
        counts["pooling"] = out_elems * window
    elif layer.kind in ("add", "concat", "bn"):
        counts["digital"] = out_elems * (len(layer.inputs) - 1 if layer.kind == "add" else 1)
    if layer.kind != "flatten":
        # each consumer receives the output: one local transfer plus the mesh hops to it
        consumers = list(mapping.workload.graph.successors(layer.name)) or [layer.name]
        counts["interconnect"] = sum(
            out_elems * in_bits * (1 + mapping.hops(layer.name, dst)) for dst in consumers
        )
    return counts
