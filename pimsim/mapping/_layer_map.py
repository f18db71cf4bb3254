"""Mapping one conv/linear layer onto crossbar arrays (DESIGN.md primer, Counting, Conventions).

The unrolled (im2col) matrix of a layer, or of each group of a grouped conv, has K rows and N
logical columns. Row tiles fill arrays first (300 rows on 128-row arrays: 128, 128, 44); the
physical columns of one weight (its cell slices, doubled for differential encodings) stay in one
array, so an array holds floor(cols / columns_per_weight) logical columns.

Reference columns (``signed_encoding: offset`` with ``offset_reference: column``): every array
that holds a column tile of a matrix also holds one reference column per weight slice (a
*reference weight* of ``columns_per_weight`` physical columns) whose cells, in the array's used
rows, store the offset's slices; it serves that array's columns only. So an array holds
floor(cols / columns_per_weight) - 1 logical columns, and the reference is read and converted
like a column: per (row group, input cycle, slice) an array with n columns of a column tile makes
n + 1 conversions. Over a layer, for one input sample:

    conversions = output_positions x (N + column_tiles) x weight_slices x input_cycles
                  x sum over row tiles of ceil(rows_used / rows_per_adc_read)   (x matrices)

(DESIGN.md's Counting with N + column_tiles columns; unchanged with ``offset_reference:
digital`` and every other encoding). Reference cells count as used cells and as cell reads. With
block-diagonal packing and a reference column, the off-diagonal cells of a packed array hold a
zero weight (the offset level) so that one reference column serves every column of the array;
they count as used cells then.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pimsim.errors import MappingError
from pimsim.spec import ArchSpec
from pimsim.workload import Layer


@dataclass(frozen=True)
class LayerMapping:
    """How one conv/linear layer sits on arrays. All counts are per copy unless named ``total``.

    ``matrices`` is the number of separately mapped matrices (the groups of a grouped conv, or 1
    when groups are packed block-diagonally); ``k_rows`` x ``n_cols`` is each matrix's size.
    """

    name: str
    kind: str
    matrices: int
    k_rows: int
    n_cols: int
    used_cells_per_matrix: int
    output_positions: int
    weight_slices: int
    cols_per_weight: int
    input_cycles: int
    rows_per_adc_read: int
    row_tiles: tuple[int, ...]
    col_tiles: tuple[int, ...]
    conversions_per_column_read: int
    array_rows: int
    array_cols: int
    copies: int = 1
    references: int = 0
    """Reference weights (each ``cols_per_weight`` physical columns) per array: 1 with
    ``offset`` weights and ``offset_reference: column``, else 0."""

    @property
    def reference_cols(self) -> int:
        """Reference (logical) columns of one matrix: one per column tile, as every array of a
        column tile holds its own (0 without reference columns)."""
        return self.references * len(self.col_tiles)

    @property
    def converted_cols(self) -> int:
        """Logical columns of one matrix that the ADCs convert: its N columns plus the reference
        columns."""
        return self.n_cols + self.reference_cols

    @property
    def row_groups(self) -> tuple[int, ...]:
        """ADC reads per array read for each row tile: ceil(rows used / rows_per_adc_read)."""
        return tuple(math.ceil(r / self.rows_per_adc_read) for r in self.row_tiles)

    @property
    def arrays(self) -> int:
        """Arrays holding one copy of the weights."""
        return self.matrices * len(self.row_tiles) * len(self.col_tiles)

    @property
    def arrays_total(self) -> int:
        """Arrays including weight duplicates."""
        return self.arrays * self.copies

    @property
    def used_cells(self) -> int:
        """Cells holding weights (and reference cells), one copy."""
        return self.matrices * self.used_cells_per_matrix

    @property
    def utilization(self) -> float:
        """Used cells / cells of the allocated arrays (duplicates count as used)."""
        return self.used_cells / (self.arrays * self.array_rows * self.array_cols)

    @property
    def adc_conversions(self) -> int:
        """ADC conversions for one input sample (DESIGN.md Counting, with the reference columns
        of the module docstring), independent of copies."""
        return (
            self.output_positions
            * self.converted_cols
            * self.weight_slices
            * self.input_cycles
            * sum(self.row_groups)
            * self.conversions_per_column_read
            * self.matrices
        )

    @property
    def row_activations(self) -> int:
        """Row-driver (DAC) activations for one input sample: every used row of every array is
        driven once per input cycle and output position."""
        return (
            self.output_positions
            * self.input_cycles
            * sum(self.row_tiles)
            * len(self.col_tiles)
            * self.matrices
        )

    @property
    def cell_reads(self) -> int:
        """Cells activated for one input sample (rows driven x used columns of each array,
        reference columns included)."""
        used_cols = self.converted_cols * self.cols_per_weight
        return (
            self.output_positions
            * self.input_cycles
            * sum(self.row_tiles)
            * used_cols
            * self.matrices
        )


def _tiles(total: int, size: int) -> tuple[int, ...]:
    full, rest = divmod(total, size)
    return (size,) * full + ((rest,) if rest else ())


def map_layer(arch: ArchSpec, layer: Layer) -> LayerMapping:
    """Map one conv or linear layer (one copy; duplication is decided network-wide)."""
    if layer.kind not in ("conv", "linear"):
        raise MappingError(f"layer {layer.name!r} ({layer.kind}) is not mapped onto arrays")
    dec = arch.decomposition
    slices = arch.weight_slices
    cpw = slices * (2 if dec.differential else 1)
    rows, cols = arch.array.rows, arch.array.cols
    refs = 1 if dec.reference_column else 0
    if cpw * (1 + refs) > cols:
        raise MappingError(
            f"layer {layer.name!r}: a weight needs {cpw} columns ({slices} slices"
            f"{' x 2 polarities' if cpw > slices else ''})"
            f"{' and its reference column as many more' if refs else ''} but arrays have {cols};"
            " use more bits per cell or wider arrays"
            f"{' (or decomposition.offset_reference: digital)' if refs else ''}"
        )
    if layer.kind == "conv":
        groups = layer.groups
        k_g = (layer.in_channels // groups) * layer.kernel[0] * layer.kernel[1]
        n_g = layer.out_channels // groups
        positions = layer.output_shape[1] * layer.output_shape[2]
    else:
        groups, k_g, n_g = 1, layer.in_channels, layer.out_channels
        positions = math.prod(layer.output_shape[:-1])
    if groups > 1 and arch.mapping.pack_groups == "block_diagonal":
        matrices, k, n = 1, groups * k_g, groups * n_g
        # with a reference column the off-diagonal cells hold a zero weight (the offset level)
        used = (k * n if refs else groups * k_g * n_g) * cpw
    else:
        matrices, k, n = groups, k_g, n_g
        used = k_g * n_g * cpw
    per_array = cols // cpw - refs
    col_tiles = _tiles(n, per_array)
    used += refs * k * len(col_tiles) * cpw  # reference cells: the used rows of every array
    rpr = arch.array.rows_per_adc_read or rows
    return LayerMapping(
        name=layer.name,
        kind=layer.kind,
        matrices=matrices,
        k_rows=k,
        n_cols=n,
        used_cells_per_matrix=used,
        output_positions=positions,
        weight_slices=slices,
        cols_per_weight=cpw,
        input_cycles=arch.input_cycles,
        rows_per_adc_read=rpr,
        row_tiles=_tiles(k, rows),
        col_tiles=col_tiles,
        conversions_per_column_read=2 if dec.signed_encoding == "differential_digital" else 1,
        array_rows=rows,
        array_cols=cols,
        references=refs,
    )
