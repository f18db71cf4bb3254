"""Mapping a whole network: per-layer array mappings, weight duplication, hierarchy allocation.

Allocation: each mapped layer gets whole PEs (ceil(arrays / arrays_per_pe)) and layers do not
share PEs; PEs fill tiles in layer order (a tile may hold PEs of consecutive layers). With
``chip.tiles: auto`` the chip has exactly the tiles needed; with a fixed number a network that
needs more is a :class:`~pimsim.errors.MappingError` unless ``mapping.reprogram`` allows passes.

Duplication (``mapping.duplication: balance``): a layer's stage time is proportional to its
sequential array steps per sample, ``output_positions x input_cycles x max row groups``; copies of
its weights split the output positions. We choose the smallest bottleneck T such that every layer
with copies_i = ceil(steps_i / T) (capped by ``max_duplication`` and by its output positions) fits
the chip, i.e. the layers are balanced to the slowest stage that cannot be sped up further (the
aim of ISAAC's replication of early layers and NeuroSim's speed-up degree).
``mapping.duplication: speedup`` instead follows DNN+NeuroSim's own rule (see ``_speedup``).

Layers mapped per kernel position (``mapping.kernel_rows: per_position``, NeuroSim's novel
mapping; Chip.cpp ChipFloorPlan, TileDesignNM, SubArrayDup and OverallEachLayer, read for the
rule) are allocated as NeuroSim allocates them: the PE is a square grid of arrays (``pe.arrays``,
4 x 4 in the NeuroSim specs) and each kernel position gets PEs of its own, each holding a block
of the position's matrix (ceil(row tiles / grid rows) x ceil(column tiles / grid columns) blocks
per copy) and as many copies of that block as fit in the grid (max(1, grid rows // row tiles) x
max(1, grid columns // column tiles), NeuroSim's subarray duplication); so a layer takes
kernel positions x blocks x ceil(copies / copies per PE) PEs, and starts and ends on whole tiles
(NeuroSim gives each layer tiles of its own; with ``tile.pes`` = kh x kw, as its numPENM, one PE
of each position per tile). With ``duplication: speedup`` the copies are rounded up to fill the
PEs, as NeuroSim's per-layer speed-up is the subarray duplication x ceil(speed-up /
duplication) (conv5 of VGG-8 at 128x128: Cin = 256 takes 2 of a PE's 4 array rows, so 2 copies
where the speed-up rule alone gives 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from pimsim.errors import MappingError
from pimsim.mapping._layer_map import MAPPED_KINDS, LayerMapping, map_layer, network_kernel
from pimsim.spec import ArchSpec
from pimsim.workload import Workload


@dataclass(frozen=True)
class Mapping:
    """The mapped network: read by the cost model, the dataflow model and the accuracy oracle."""

    arch: ArchSpec
    workload: Workload
    layers: MappingProxyType  # name -> LayerMapping, in workload order (conv/linear only)
    pes: MappingProxyType  # name -> PEs allocated to the layer (all copies)
    tiles_used: int
    chip_tiles: int
    passes: int = 1
    first_pe: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    """name -> chip-wide index of the layer's first PE."""

    def tile_span(self, name: str) -> tuple[int, int]:
        """(first tile, last tile) holding a mapped layer's PEs (PEs fill tiles in order)."""
        first = self.first_pe[name]
        last = first + self.pes[name] - 1
        per_tile = self.arch.tile.pes
        return first // per_tile, last // per_tile

    def location(self, name: str) -> tuple[float, float]:
        """Grid position of a layer: the centre of its tiles on a square mesh of the chip's
        tiles (row-major). A digital layer sits where its first input is computed; the network
        input enters at tile 0."""
        layer = self.workload.graph.nodes[name].get("layer") if name != "input" else None
        while layer is not None and layer.name not in self.layers:
            src = layer.inputs[0]
            layer = self.workload.graph.nodes[src].get("layer") if src != "input" else None
        if layer is None:
            return (0.0, 0.0)
        width = math.ceil(math.sqrt(self.chip_tiles))
        a, b = self.tile_span(layer.name)
        points = [divmod(t, width) for t in (a, b)]
        return ((points[0][0] + points[1][0]) / 2, (points[0][1] + points[1][1]) / 2)

    def hops(self, src: str, dst: str) -> float:
        """Mesh hops (Manhattan distance between locations) for data from ``src`` to ``dst``."""
        (r1, c1), (r2, c2) = self.location(src), self.location(dst)
        return abs(r1 - r2) + abs(c1 - c2)

    @property
    def arrays_used(self) -> int:
        """Arrays holding weights, duplicates included."""
        return sum(m.arrays_total for m in self.layers.values())

    @property
    def utilization(self) -> float:
        """Used cells / cells of the arrays holding weights (duplicates counted as used)."""
        cells = self.arch.array.rows * self.arch.array.cols
        used = sum(m.used_cells * m.copies for m in self.layers.values())
        return used / (self.arrays_used * cells)

    @property
    def adc_conversions(self) -> int:
        """ADC conversions per input sample over the network."""
        return sum(m.adc_conversions for m in self.layers.values())


def steps_per_sample(m: LayerMapping) -> int:
    """Sequential row-group reads of one array per sample for one copy (arrays run in parallel)."""
    return m.output_positions * m.position_steps


def _pe_grid(arch: ArchSpec) -> tuple[int, int]:
    """A PE's arrays as a grid (rows, columns) of arrays, square where ``pe.arrays`` is a square
    (NeuroSim's PEs are), else the widest with floor(sqrt) rows."""
    rows = math.isqrt(arch.pe.arrays)
    return rows, arch.pe.arrays // rows


def pe_copies(arch: ArchSpec, m: LayerMapping) -> int:
    """Copies of a per-kernel-position layer's block that one PE holds (Chip.cpp SubArrayDup:
    max(1, grid rows // row tiles) x max(1, grid columns // column tiles)); 1 for other layers."""
    if m.kernel_positions == 1 or m.matrices > 1:
        return 1
    rows, cols = _pe_grid(arch)
    return max(1, rows // m.position_row_tiles) * max(1, cols // len(m.col_tiles))


def layer_pes(arch: ArchSpec, m: LayerMapping) -> int:
    """PEs allocated to a mapped layer, all copies (see the module docstring)."""
    if m.kernel_positions == 1:
        return math.ceil(m.arrays_total / arch.pe.arrays)
    rows, cols = _pe_grid(arch)
    blocks = math.ceil(m.position_row_tiles / rows) * math.ceil(len(m.col_tiles) / cols)
    blocks *= m.matrices
    return m.kernel_positions * blocks * math.ceil(m.copies / pe_copies(arch, m))


def _layout(arch: ArchSpec, maps: list[LayerMapping]) -> tuple[dict, dict, int]:
    """(PEs per layer, first PE per layer, tiles used): PEs fill tiles in layer order; a layer
    mapped per kernel position starts and ends on whole tiles."""
    per_tile = arch.tile.pes
    pes, first, running = {}, {}, 0
    for m in maps:
        whole = m.kernel_positions > 1
        if whole:
            running = math.ceil(running / per_tile) * per_tile
        pes[m.name] = layer_pes(arch, m)
        first[m.name] = running
        running += pes[m.name]
        if whole:
            running = math.ceil(running / per_tile) * per_tile
    return pes, first, math.ceil(running / per_tile)


def _tiles(arch: ArchSpec, maps: list[LayerMapping]) -> int:
    return _layout(arch, maps)[2]


def _fill_pes(arch: ArchSpec, maps: list[LayerMapping]) -> list[LayerMapping]:
    """Round the speed-up copies of per-kernel-position layers up to whole PEs of copies
    (Chip.cpp OverallEachLayer: speed-up = duplication x ceil(speed-up / duplication)), at most
    one copy per output position."""
    out = []
    for m in maps:
        dup = pe_copies(arch, m)
        copies = min(m.output_positions, dup * math.ceil(m.copies / dup))
        out.append(replace(m, copies=max(m.copies, copies)))
    return out


def _balance(arch: ArchSpec, maps: list[LayerMapping], limit_tiles: int | None):
    cap = arch.mapping.max_duplication or 1 << 30
    steps = [steps_per_sample(m) for m in maps]
    limits = [min(cap, m.output_positions) for m in maps]

    def dup(target: float) -> list[LayerMapping]:
        return [
            replace(m, copies=min(lim, max(1, math.ceil(s / target))))
            for m, s, lim in zip(maps, steps, limits, strict=False)
        ]

    floor = max(s / lim for s, lim in zip(steps, limits, strict=False))
    # Candidate bottlenecks: every stage time a layer can reach; tiles needed fall as T grows,
    # so the smallest feasible T is found by bisection.
    candidates = sorted(
        {floor}
        | {
            s / c
            for s, lim in zip(steps, limits, strict=False)
            for c in range(1, min(lim, 4096) + 1)
            if s / c >= floor
        }
    )
    if limit_tiles is None:
        return dup(candidates[0])
    lo, hi = 0, len(candidates) - 1
    if _tiles(arch, dup(candidates[hi])) > limit_tiles:
        return maps
    while lo < hi:
        mid = (lo + hi) // 2
        if _tiles(arch, dup(candidates[mid])) <= limit_tiles:
            hi = mid
        else:
            lo = mid + 1
    return dup(candidates[lo])


def _speedup(arch: ArchSpec, workload: Workload, maps: list[LayerMapping]) -> list[LayerMapping]:
    """DNN+NeuroSim V1.4's pipeline speed-up rule (Chip.cpp, ChipDesignInitialize, read for the
    rule): the speed-up degree S (``max_duplication``) is clipped to floor(maxIFM / minIFM), where
    maxIFM is the input height of the first mapped layer and minIFM the smallest input height of a
    conv layer with a kernel larger than 1x1; with bound = ceil(maxIFM / S) a layer whose input is
    IFM high gets ceil((IFM / bound)^2) copies (linear layers: 1)."""
    heights = {}
    for layer in workload.layers:
        if layer.name in {m.name for m in maps}:
            heights[layer.name] = (
                layer.input_shape[1] if layer.kind == "conv" else 1,
                layer.kind == "conv" and layer.kernel != (1, 1),
            )
    first = heights[maps[0].name][0]
    spatial = [h for h, big in heights.values() if big]
    if not spatial:
        return maps
    degree = min(arch.mapping.max_duplication or 1, max(1, first // min(spatial)))
    bound = math.ceil(first / degree)
    return [
        replace(m, copies=max(1, math.ceil((heights[m.name][0] / bound) ** 2)))
        if m.kind == "conv"
        else m
        for m in maps
    ]


def is_mapped(arch: ArchSpec, layer) -> bool:
    """Whether ``layer`` computes on arrays under ``arch``: conv, linear and rnn layers always,
    activation x activation matmuls when ``mapping.activation_matmul`` is ``rewrite``."""
    if layer.kind == "matmul":
        return arch.mapping.activation_matmul == "rewrite"
    return layer.kind in MAPPED_KINDS


def map_network(arch: ArchSpec, workload: Workload) -> Mapping:
    """Map every conv/linear layer of ``workload`` onto ``arch``; see the module docstring."""
    kernel = network_kernel(workload.layers)
    maps = [map_layer(arch, layer, kernel) for layer in workload.layers if is_mapped(arch, layer)]
    fixed = arch.chip.tiles if arch.chip.tiles != "auto" else None
    if arch.mapping.duplication == "speedup":
        maps = _fill_pes(arch, _speedup(arch, workload, maps))
    elif arch.mapping.duplication == "balance":
        if fixed is None:
            # auto-sized chip: balance with the duplication cap alone
            if arch.mapping.max_duplication is not None:
                maps = _balance(arch, maps, None)
        else:
            maps = _balance(arch, maps, fixed)
    tiles_used = _tiles(arch, maps)
    passes = 1
    if fixed is not None and tiles_used > fixed:
        if not arch.mapping.reprogram:
            biggest = max(maps, key=lambda m: m.arrays_total)
            raise MappingError(
                f"{workload.name} needs {tiles_used} tiles of {arch.tile.pes} PEs x "
                f"{arch.pe.arrays} arrays but {arch.name} has chip.tiles = {fixed} (largest "
                f"layer {biggest.name!r}: {biggest.arrays} arrays); set chip.tiles: auto, use "
                "larger arrays or set mapping.reprogram: true"
            )
        passes = math.ceil(tiles_used / fixed)
    pes, first, _ = _layout(arch, maps)
    return Mapping(
        arch=arch,
        workload=workload,
        layers=MappingProxyType({m.name: m for m in maps}),
        pes=MappingProxyType(pes),
        tiles_used=tiles_used,
        chip_tiles=fixed if fixed is not None else tiles_used,
        passes=passes,
        first_pe=MappingProxyType(first),
    )
