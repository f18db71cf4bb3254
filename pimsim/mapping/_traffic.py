"""Data moved by one layer for one input sample: the one count that the cost model (buffer and
interconnect energy) and the dataflow model (buffer and interconnect time) both read.

- ``input_bits``: activations read from the input buffer into the arrays. A mapped layer reads
  its unrolled (im2col) input: every input of a receptive field once per output position and
  row-tile matrix, ``output_positions x k_rows x matrices x input_bits``.
- ``output_bits``: results written to the layer's output buffer. Where the activation units sit
  at chip level, the tile sends partial sums at accumulator precision,
  ``input_bits + weight_bits + ceil(log2 K)`` bits (the exact range of a K-term dot product);
  with activation units in the tile or PE (or none declared), outputs are quantized there and
  written at ``input_bits`` (DNN+NeuroSim V1.4 ``chipActivation``: Tile.cpp writes partial sums of
  ``numAdderBit + numStage`` bits to the tile output buffer, Chip.cpp moves ``numBitInput``-bit
  activations on the global bus).
- ``send_bits``: activations delivered to each consumer, ``output elements x input_bits``.
- ``psum_bits``: partial sums leaving the arrays' row tiles towards their accumulation, one per
  output position, column, matrix and row tile, at the exact range of a row tile's dot product,
  ``input_bits + weight_bits + ceil(log2 rows)`` (DNN+NeuroSim V1.4 ProcessingUnit.cpp:
  ``busOutput`` carries ``weightMatrixCol x (numStage + numAdderBit)`` bits per input vector).

Where these bits physically travel (:func:`pimsim.cost._actions.layer_actions` charges each on the
interconnect that carries it): the unrolled inputs cross the tile's local interconnect to the PEs
and the PE's bus to the arrays (``pe_bits``, ``local_bits``); the partial sums cross the PE bus,
the layer's results the tile's local interconnect (``output_bits``), and ``send_bits`` the
network to each consumer. DNN+NeuroSim moves the same data (Bus.cpp in the PE, HTree.cpp in the
tile, XYBus.cpp on the chip). The dataflow model times ``local_bits`` on the tile's local port.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pimsim.spec import ArchSpec


@dataclass(frozen=True)
class LayerTraffic:
    """Bits one layer moves for one input sample (see the module docstring)."""

    input_bits: int
    output_bits: int
    send_bits: int
    output_precision: int
    psum_bits: int = 0

    @property
    def pe_bits(self) -> int:
        """Bits on a PE's bus: unrolled inputs into the arrays, partial sums out of them."""
        return self.input_bits + self.psum_bits

    @property
    def local_bits(self) -> int:
        """Bits on a tile's local interconnect: inputs to its PEs, results out of them."""
        return self.input_bits + self.output_bits


def activation_level(arch: ArchSpec) -> str | None:
    """Level (``pe``, ``tile`` or ``chip``) of the arch's activation units, or None."""
    for level in ("pe", "tile", "chip"):
        if any(c.component_class == "activation" for c in getattr(arch, level).components):
            return level
    return None


def layer_traffic(mapping, layer) -> LayerTraffic:
    """:class:`LayerTraffic` of ``layer`` (a workload layer) under ``mapping``."""
    arch = mapping.arch
    bits = arch.decomposition.input_bits
    out_elems = math.prod(layer.output_shape)
    m = mapping.layers.get(layer.name)
    if m is None:
        return LayerTraffic(0, 0, out_elems * bits, bits)
    dec = arch.decomposition
    tile_rows = max(m.row_tiles)
    psum = bits + dec.weight_bits + math.ceil(math.log2(max(2, tile_rows)))
    positions = m.output_positions * m.matrices
    precision = bits
    if activation_level(arch) == "chip":
        precision = bits + arch.decomposition.weight_bits + math.ceil(math.log2(max(2, m.k_rows)))
    return LayerTraffic(
        input_bits=m.output_positions * m.k_rows * m.matrices * bits,
        output_bits=out_elems * precision,
        send_bits=out_elems * bits,
        output_precision=precision,
        psum_bits=positions * m.n_cols * len(m.row_tiles) * psum,
    )
