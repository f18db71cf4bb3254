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
digital`` and every other encoding). Reference cells count as used cells and as cell reads.

**Grouped convs** (depthwise included) map each group's K/groups x N/groups matrix. With
``mapping.pack_groups: block_diagonal`` several groups share an array along its diagonal
(``groups_per_array`` = as many as fit in its rows and logical columns); a read drives only one
group's rows and converts only that group's columns (and the array's reference columns), so
packing saves arrays without reading or converting the zero cells off the diagonal: conversions,
cell reads and used cells equal those of separate mapping, and the groups of one array are read
one after another (``groups_per_array`` times the steps per output position).

**Rows per kernel position** (``mapping.kernel_rows: per_position``, DNN+NeuroSim V1.4's
"novel mapping", Chip.cpp ChipDesignInitialize / ChipFloorPlan, read for the rule): a k x k conv
whose kernel area is the network's mapped kernel (NeuroSim's numPENM, the most common kernel area
above 1) and whose K = k x k x Cin rows fill at least one array (Cin x k x k >= rows, NeuroSim's
test) maps each kernel position's Cin rows (im2col rows c x k x k + p, c = 0..Cin-1) on arrays of
its own: ceil(Cin / rows) row tiles per position, k x k times, so ``row_tiles`` lists the k x k
positions' tiles in turn (Cin = 128 on 256-row arrays: nine tiles of 128 rows, half of each
array used, where packing gives 256, 256, 256, 256, 128). Conversions, row activations and cell
reads follow DESIGN.md's Counting with these row tiles; the oracle reads the same row grouping
(:meth:`LayerMapping.tile_rows`). Other layers (1x1 convs, small convs such as a first layer on
3 channels, linear layers) stay packed.

**Reading every row group** (``array.read_all_row_groups``, as DNN+NeuroSim V1.4's subarray
does): an array read converts all ceil(array rows / rows_per_adc_read) row groups, also those
without weight rows, so the step time of a position counts them all (a 27-row conv on 128-row
arrays with 32 rows per read takes 4 groups, not 1). :attr:`LayerMapping.adc_conversions`
keeps counting the conversions that carry data; the others are
:attr:`LayerMapping.empty_conversions`, which the cost model charges at its no-current energy.

**Other mapped layers.** A linear layer on any leading dimensions has one output position per
leading index; an ``rnn`` layer (LSTM/GRU) stores its input and hidden weights stacked in one
matrix of I + H rows read once per time step, ``gates x H`` columns (a GRU's candidate gate keeps
its input and hidden parts in separate column blocks, as the reset gate scales the hidden part
alone, so it takes 4H columns, and the cells of each block outside its own rows hold zero:
they are read and converted with the column but are not used cells); an activation x activation
``matmul`` mapped on arrays (``mapping.activation_matmul: rewrite``) writes its second operand as
the weights of ``batch`` matrices for every input and reads them once per row of the first.
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
    groups_per_array: int = 1
    """Matrices (groups) packed block-diagonally into one array (1: each on its own arrays)."""
    rewritten: bool = False
    """The weights are activations written for every input (``mapping.activation_matmul:
    rewrite``): every used cell is written once per sample."""
    references: int = 0
    """Reference weights (each ``cols_per_weight`` physical columns) per array: 1 with
    ``offset`` weights and ``offset_reference: column``, else 0."""
    kernel_positions: int = 1
    """Kernel positions whose rows sit on arrays of their own (``kernel_rows: per_position``:
    kh x kw, ``row_tiles`` then holds each position's tiles in turn); 1: rows packed densely."""
    reads_all_row_groups: bool = False
    """Whether every array read converts all ceil(array rows / rows_per_adc_read) row groups,
    used rows or not (``array.read_all_row_groups``); else only the groups holding weight rows."""

    @property
    def position_row_tiles(self) -> int:
        """Row tiles of one kernel position (of the whole matrix when rows are packed)."""
        return len(self.row_tiles) // self.kernel_positions

    def tile_rows(self) -> tuple[tuple[int, ...], ...]:
        """Matrix (im2col) rows of each row tile, in array-row order: contiguous ranges when
        packed; per kernel position p, rows c x positions + p (``unfold`` order: channel
        slowest) of the tile's channels."""
        kp, out = self.kernel_positions, []
        for p in range(kp):
            start = 0
            for used in self.row_tiles[: self.position_row_tiles]:
                out.append(tuple(c * kp + p for c in range(start, start + used)))
                start += used
        return tuple(out)

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
    def read_row_groups(self) -> tuple[int, ...]:
        """Row groups one array read converts for each row tile: :attr:`row_groups`, or every
        group of the array with ``array.read_all_row_groups``."""
        if not self.reads_all_row_groups:
            return self.row_groups
        return (math.ceil(self.array_rows / self.rows_per_adc_read),) * len(self.row_tiles)

    @property
    def arrays(self) -> int:
        """Arrays holding one copy of the weights."""
        packs = math.ceil(self.matrices / self.groups_per_array)
        return packs * len(self.row_tiles) * len(self.col_tiles)

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
    def position_steps(self) -> int:
        """Sequential row-group reads of one array per output position: the input cycles x the
        largest row tile's reads, for each group packed into the array."""
        return self.input_cycles * max(self.read_row_groups) * self.groups_per_array

    @property
    def adc_conversions(self) -> int:
        """ADC conversions for one input sample (DESIGN.md Counting, with the reference columns
        of the module docstring), independent of copies."""
        return self._conversions_per_row_group * sum(self.row_groups)

    @property
    def _conversions_per_row_group(self) -> int:
        return (
            self.output_positions
            * self.converted_cols
            * self.weight_slices
            * self.input_cycles
            * self.conversions_per_column_read
            * self.matrices
        )

    @property
    def empty_conversions(self) -> int:
        """Conversions of row groups without weight rows for one input sample (0 unless
        ``array.read_all_row_groups``): not in :attr:`adc_conversions`, which counts the
        conversions that carry data (the oracle's)."""
        empty = sum(self.read_row_groups) - sum(self.row_groups)
        return self._conversions_per_row_group * empty

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


#: Layer kinds always mapped onto arrays (``matmul`` too under ``activation_matmul: rewrite``).
MAPPED_KINDS = ("conv", "linear", "rnn")


def _matrix(layer: Layer) -> tuple[int, int, int, int, int]:
    """(groups, K rows, N columns, output positions, weights per group) of a mapped layer."""
    if layer.kind == "conv":
        k_g = (layer.in_channels // layer.groups) * math.prod(layer.kernel)
        n_g = layer.out_channels // layer.groups
        return layer.groups, k_g, n_g, math.prod(layer.output_shape[1:]), k_g * n_g
    if layer.kind == "rnn":
        i, h = layer.input_shape[-1], layer.output_shape[-1]
        steps = layer.input_shape[0]
        if layer.op == "gru":  # r, z on [x, h]; candidate: input part, hidden part
            return 1, i + h, 4 * h, steps, (i + h) * 3 * h
        return 1, i + h, 4 * h, steps, (i + h) * 4 * h
    if layer.kind == "matmul":
        k, n = layer.inner, layer.cols
        return layer.groups, k, n, layer.macs // (layer.groups * k * n), k * n
    k, n = layer.in_channels, layer.out_channels
    return 1, k, n, math.prod(layer.output_shape[:-1]), k * n


def kernel_positions(arch: ArchSpec, layer: Layer, network_kernel: int | None = None) -> int:
    """Kernel positions mapped on arrays of their own: kh x kw under ``kernel_rows:
    per_position`` for a conv whose kernel area is ``network_kernel`` (None: its own) and whose
    per-group K fills at least one array (Chip.cpp ChipDesignInitialize's novel-mapping test:
    kernel area = numPENM and Cin x kh x kw x numRowPerSynapse >= numRowSubArray); else 1."""
    if arch.mapping.kernel_rows != "per_position" or layer.kind != "conv":
        return 1
    area = math.prod(layer.kernel)
    k_g = (layer.in_channels // layer.groups) * area
    if area == 1 or area != (network_kernel or area) or k_g < arch.array.rows:
        return 1
    return area


def network_kernel(layers) -> int | None:
    """The kernel area of NeuroSim's novel-mapped tile (Chip.cpp ChipDesignInitialize: numPENM,
    the kernel area above 1 that most conv layers share, the first such layer winning a tie);
    None without conv layers of a kernel larger than 1."""
    areas = [math.prod(x.kernel) for x in layers if x.kind == "conv" and math.prod(x.kernel) > 1]
    return max(areas, key=areas.count) if areas else None


def map_layer(arch: ArchSpec, layer: Layer, network_kernel: int | None = None) -> LayerMapping:
    """Map one conv, linear, rnn or activation-matmul layer (one copy; duplication is decided
    network-wide). ``network_kernel``: the kernel area ``kernel_rows: per_position`` maps per
    position (:func:`network_kernel` of the network; None: the layer's own)."""
    if layer.kind not in MAPPED_KINDS + ("matmul",):
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
    groups, k, n, positions, weights = _matrix(layer)
    per_array = cols // cpw - refs
    col_tiles = _tiles(n, per_array)
    kp = kernel_positions(arch, layer, network_kernel)
    row_tiles = _tiles(k // kp, rows) * kp  # each position's Cin rows on arrays of their own
    packed = 1
    if groups > 1 and arch.mapping.pack_groups == "block_diagonal" and k <= rows and kp == 1:
        if n <= per_array:  # whole groups side by side on the diagonal
            packed = min(groups, rows // k, per_array // n)
    used = weights * cpw + refs * k * len(col_tiles) * cpw  # reference cells: the used rows
    rpr = arch.array.rows_per_adc_read or rows
    return LayerMapping(
        name=layer.name,
        kind=layer.kind,
        matrices=groups,
        k_rows=k,
        n_cols=n,
        used_cells_per_matrix=used,
        output_positions=positions,
        weight_slices=slices,
        cols_per_weight=cpw,
        input_cycles=arch.input_cycles,
        rows_per_adc_read=rpr,
        row_tiles=row_tiles,
        col_tiles=col_tiles,
        conversions_per_column_read=2 if dec.signed_encoding == "differential_digital" else 1,
        array_rows=rows,
        array_cols=cols,
        groups_per_array=packed,
        rewritten=layer.kind == "matmul",
        references=refs,
        kernel_positions=kp,
        reads_all_row_groups=arch.array.read_all_row_groups,
    )
