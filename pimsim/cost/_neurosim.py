"""NeuroSim-style component models, registered as ``neurosim`` for the array, ADC, DAC and
components (dispatching on the component's class).

Area: NeuroSim charges every subarray as its bounding box (:func:`subarray_geometry`); the box
is split over our classes (:meth:`SubarrayGeometry.shares`) so that one array's instances plus
its share of the per-subarray PE components add up to exactly one bounding box:

* ``array``: the array itself; ``adc``: sense-amp and encoder bands over the ADCs of an array;
  ``dac``: switch matrices, mux and decoder over the rows of an array;
* PE components of class ``shift_add`` / ``level_shifter`` / ``accumulator`` carry that class's
  share for the PE's arrays (``count`` instances split it; list them with ``count`` = arrays per
  PE). The PE ``accumulator`` also holds the PE's adder tree.

PE, tile and chip components are sized as ProcessingUnit.cpp, Tile.cpp and Chip.cpp size them
from the spec: PE adder tree over the PE's subarray rows; tile H-tree (folding 16) between PEs
and a tile accumulation tree over the tile's PEs (NeuroSim's novel-mapping tile); chip X-Y bus,
register-file buffers, global accumulation, ReLU and max-pool units. Sizes NeuroSim derives from
the network (buffer capacities, bus width, tiles spanned by the bus, unit counts) come from the
component entries (``size_bytes``, ``width_bits``, ``hops``, ``count``); see the NeuroSim specs.

Energy per action: see :mod:`pimsim.cost._neurosim_energy`. Leakage is 0: NeuroSim's LSTP
leakage is about 0.4 % of the VGG-8 energy and depends on the pipeline period, which a
per-instance model does not know.
"""

from __future__ import annotations

import math

from pimsim.cost._components import _array_rate
from pimsim.cost._neurosim_area import (
    adder_bit_area,
    adder_tree_bits,
    dff_width,
    htree,
    htree_area,
    n_adcs,
    repeater,
    subarray_geometry,
    tech,
    xy_bus_area,
)
from pimsim.cost._neurosim_energy import (
    GAMMA,
    INPUT_TOGGLE,
    adder_energy,
    dff_energy,
    mux_energy,
    output_bits,
    row_drive_energy,
    scan_chain_energy,
    sense_amp,
    shift_add_energy,
    wire_energy_per_m,
)
from pimsim.cost._registry import BUFFER_ACCESS_BITS, ComponentEstimate, lookup, register
from pimsim.errors import SpecError

GLOBAL_BUS_BITS = 1024  # Param.cpp maxGlobalBusWidth 2048, halved: default X-Y bus width
GLOBAL_ACCUMULATION_INPUTS = 8  # Chip.cpp maxTileAdded (tile rows of the largest layer)
DEFAULT_BUFFER_BYTES = 1024  # a buffer entry without size_bytes: one 32 x 32-bit tile core
PJ = 1e12
# Param.cpp beta = 1.4 with validated = true: SubArray.cpp multiplies the sensing cycle (the clock
# period of the synchronous chip) by this latency factor from NeuroSim's silicon validation.
BETA = 1.4
SECTIONS = ("array", "adc", "dac")


def _estimate(arch, energy_pj: float, area_um2: float, rate_hz=None, latency_ns=0.0):
    return ComponentEstimate(
        energy_pj=energy_pj,
        area_um2=area_um2,
        rate_hz=rate_hz or arch.technology.clock_hz,
        latency_ns=latency_ns,
        accuracy="first_order",
    )


@register("array", "neurosim")
def array_neurosim(arch, array) -> ComponentEstimate:
    """The array's share of the subarray bounding box; no energy per cell read (NeuroSim's
    parallel read folds the bit-line current into the sense amplifier's column power)."""
    return _estimate(arch, 0.0, subarray_geometry(arch).shares()["array"], _array_rate(arch))


@register("adc", "neurosim")
def adc_neurosim(arch, adc) -> ComponentEstimate:
    """Multilevel current-mode sense amplifier with encoder (MultilevelSenseAmp.cpp,
    MultilevelSAEncoder.cpp): one conversion, plus the data-independent per-step work of the
    read it belongs to (column mux, word-line scan chain). Rated at one conversion per sensing
    cycle, ``BETA`` x the sensing time (SubArray.cpp with ``validated``), capped by the clock.
    The cycle leaves out the word-line switch-matrix / column-mux delay and the encoder that
    NeuroSim adds to it."""
    energy, t_col = sense_amp(arch)
    energy += scan_chain_energy(arch)
    area = subarray_geometry(arch).shares()["adc"] / n_adcs(arch)
    cycle = BETA * t_col
    rate = adc.sample_rate_hz or min(arch.technology.clock_hz, 1 / cycle)
    return _estimate(arch, energy + mux_energy(arch), area, rate, cycle * 1e9)


@register("adc_empty", "neurosim")
def adc_empty_neurosim(arch, adc) -> ComponentEstimate:
    """A conversion of a row group that holds no weights (``array.read_all_row_groups``): the
    sense amplifier's switching, mux and scan-chain work of :func:`adc_neurosim` with no cell
    current, the column at GetColumnPower's 1 uW (MultilevelSenseAmp.cpp). NeuroSim itself
    does not separate such groups: ProcessingUnit.cpp GetColumnResistance gives every one of
    the numAdd conversions of a call the column conductance of all the subarray's active rows
    (1T1R: divided by numAdd), and MultilevelSenseAmp.cpp CalculatePower charges each column
    numAdd times at it. For VGG-8's 27-row conv1 at 22 nm that totals within 2% of this split
    (1T1R, 32 or 64 rows per read); SRAM, whose conversions see the array's active rows
    undivided, comes 10% above it."""
    full = adc_neurosim(arch, adc)
    energy = sense_amp(arch, math.inf)[0] + scan_chain_energy(arch) + mux_energy(arch)
    return _estimate(arch, energy, 0.0, full.rate_hz, full.latency_ns)


@register("dac", "neurosim")
def dac_neurosim(arch, dac) -> ComponentEstimate:
    """Row driver: word line and switch-matrix TGs of one driven row (SubArray.cpp,
    NewSwitchMatrix.cpp / SwitchMatrix.cpp); area = the row-driver share over the rows."""
    area = subarray_geometry(arch).shares()["dac"] / arch.array.rows
    return _estimate(arch, row_drive_energy(arch), area)


# ----------------------------------------------------------------------------- hierarchy


def _level(arch, comp) -> str:
    """The hierarchy level a component entry belongs to (PE when not found)."""
    for level in ("pe", "tile", "chip"):
        if any(c is comp for c in getattr(arch, level).components):
            return level
    for level in ("pe", "tile", "chip"):
        if comp in getattr(arch, level).components:
            return level
    return "pe"


def _side(n: int) -> int:
    return math.ceil(math.sqrt(n))


def _pe_cols(arch) -> int:
    """Columns across a PE's square grid of subarrays (NeuroSim's PE size)."""
    return _side(arch.pe.arrays) * arch.array.cols


def _parts_area(arch, components) -> float:
    return sum(
        lookup("component", c.model)(arch, c).area_um2 * c.count / c.shared_by for c in components
    )


def pe_area_um2(arch) -> float:
    """One PE: its arrays with their ADCs and drivers, plus the PE components."""
    est = {s: lookup(s, getattr(arch, s).model)(arch, getattr(arch, s)) for s in SECTIONS}
    one = est["array"].area_um2 + n_adcs(arch) * est["adc"].area_um2
    one += arch.array.rows * est["dac"].area_um2
    return arch.pe.arrays * one + _parts_area(arch, arch.pe.components)


def tile_area_um2(arch) -> float:
    """One tile: its PEs plus the tile components."""
    return arch.tile.pes * pe_area_um2(arch) + _parts_area(arch, arch.tile.components)


def _tree_um2(arch, inputs: int, bits: int) -> float:
    t = tech(arch)
    return adder_tree_bits(inputs, bits) * adder_bit_area(t) * t.f_um**2


def _dff_um2(arch, n: int) -> float:
    t = tech(arch)
    return n * dff_width(t) * t.cell_h * t.f_um**2


def _covered_arrays(arch, level: str) -> int:
    if level == "pe":
        return arch.pe.arrays
    if level == "tile":
        return arch.pe.arrays * arch.tile.pes
    raise SpecError("neurosim per-subarray periphery belongs to the PE (or tile) level")


# ----------------------------------------------------------------------------- components


def _shift_add(arch, comp, level):
    share = subarray_geometry(arch).shares()["shift_add"] * _covered_arrays(arch, level)
    return share / comp.count, shift_add_energy(arch)


def _level_shifter(arch, comp, level):
    # Write-only circuits (their read energy is 0 in NeuroSim's inference power).
    share = subarray_geometry(arch).shares()["level_shifter"] * _covered_arrays(arch, level)
    return share / comp.count, 0.0


def _accumulator(arch, comp, level):
    """PE: the partial-sum bands of its subarrays plus the adder tree over its subarray rows
    (ProcessingUnit.cpp); tile: the accumulation tree over its PEs (Tile.cpp, numBitPEOutput =
    subarray output + ceil(sqrt(subarrays per PE))); chip: one global accumulation tree
    (Chip.cpp). One action is one partial-sum addition of the PE tree's width."""
    t = tech(arch)
    nbo = output_bits(arch)
    trees = math.ceil(_pe_cols(arch) / arch.adc.cols_per_adc)
    if level == "pe":
        side = _side(arch.pe.arrays)
        share = subarray_geometry(arch).shares()["accumulator"] * arch.pe.arrays
        area = share + trees * _tree_um2(arch, side, nbo)
    elif level == "tile":
        area = trees * _tree_um2(arch, arch.tile.pes, nbo + _side(arch.pe.arrays))
    else:
        # one tree per instance (``count`` = trees); Chip.cpp widens it by the adds before it
        inputs = GLOBAL_ACCUMULATION_INPUTS
        grow = math.ceil(math.log2(inputs * _side(arch.pe.arrays) * arch.tile.pes))
        return _tree_um2(arch, inputs, nbo + grow), adder_energy(t, nbo) * PJ
    return area / comp.count, adder_energy(t, nbo) * PJ


def _buffer(arch, comp, level):
    """PE buffers are DFF banks (ProcessingUnit.cpp, no gamma); tile and chip buffers are
    register files (Buffer.cpp, peBufferType/tileBufferType/globalBufferType = false) whose
    bits switch with gamma. Area: one DFF per bit (the register-file row decoders, under 1 % of
    it, are left out). Energy per access of ``width_bits`` bits."""
    t = tech(arch)
    bits = (comp.size_bytes or DEFAULT_BUFFER_BYTES) * 8
    area = _dff_um2(arch, bits)
    per_bit = dff_energy(t, 1, 1.0 if level == "pe" else GAMMA)
    return area, per_bit * (comp.width_bits or BUFFER_ACCESS_BITS) * PJ


def _interconnect(arch, comp, level):
    """H-tree between the units of the level below (Tile.cpp: PEs, folding 16; bus width
    numPE x PE size, NeuroSim's novel-mapping tile), at the chip an X-Y bus across ``hops``
    tiles each way (XYBus.cpp, folding 4), or in a PE a bus between its subarrays
    (ProcessingUnit.cpp ``busInputNM`` / ``busOutputNM``, Bus.cpp: it runs over the subarrays,
    ``CalculateArea(1, true)``: no area of its own). Energy per bit, repeated-wire energy times
    the input toggle rate over: the root-to-leaf path (H-tree); (subarrays per side - 1) pitches
    (PE bus: inputs along a row, partial sums down a column; their mean); half a tile pitch per
    hop (X-Y bus: XYBus.cpp CalculatePower runs a transfer over half the bus, so the ``hops``
    hops that :func:`pimsim.cost._actions.interconnect_transfers` counts cover ``hops / 2``
    pitches)."""
    t = tech(arch)
    rep = repeater(t)
    per_bit_m = wire_energy_per_m(t, rep) * INPUT_TOGGLE
    topology = comp.topology or ("bus" if level == "chip" else "htree")
    bits = comp.width_bits or BUFFER_ACCESS_BITS
    if level == "pe" and topology == "bus":
        g = subarray_geometry(arch)
        length_um = (_side(arch.pe.arrays) - 1) * (g.width + g.height) / 2
        return 0.0, per_bit_m * length_um * 1e-6 * bits * PJ
    if topology == "htree" and level != "chip":
        if level == "pe":
            g = subarray_geometry(arch)
            unit_h, unit_w, n = g.height, g.width, arch.pe.arrays
            bus = comp.width_bits or _pe_cols(arch)
        else:
            unit_h = unit_w = math.sqrt(pe_area_um2(arch))
            n = arch.tile.pes
            bus = comp.width_bits or n * _pe_cols(arch)
        area = htree_area(t, _side(n), unit_h, unit_w, bus)
        stages, main, _ = htree(_side(n), unit_h, unit_w)
        length_um = sum(stages) + main
    else:
        unit = math.sqrt(tile_area_um2(arch))
        tiles = arch.chip.tiles if isinstance(arch.chip.tiles, int) else 1
        span = comp.hops if comp.hops is not None else _side(tiles)
        area = xy_bus_area(t, span, unit, unit, comp.width_bits or GLOBAL_BUS_BITS)
        length_um = unit / 2
    return area / comp.count, per_bit_m * length_um * 1e-6 * bits * PJ


def _activation(arch, comp, level):
    """ReLU unit (Chip.cpp BitShifter; its source is not public): one input-width register;
    one action (an element) clocks it once."""
    t = tech(arch)
    bits = arch.decomposition.input_bits
    return _dff_um2(arch, bits), dff_energy(t, bits) * PJ


def _pooling(arch, comp, level):
    """Max-pool unit (Chip.cpp MaxPooling; source not public): an input-width comparator
    (adder) and register; one action (a window element) is one compare and one register load."""
    t = tech(arch)
    bits = arch.decomposition.input_bits
    area = bits * adder_bit_area(t) * t.f_um**2 + _dff_um2(arch, bits)
    return area, (adder_energy(t, bits) + dff_energy(t, bits, GAMMA)) * PJ


_CLASSES = {
    "shift_add": _shift_add,
    "level_shifter": _level_shifter,
    "accumulator": _accumulator,
    "buffer": _buffer,
    "interconnect": _interconnect,
    "activation": _activation,
    "pooling": _pooling,
    "digital": _pooling,  # element-wise adds: an adder and register per element
}


@register("component", "neurosim")
def component_neurosim(arch, comp) -> ComponentEstimate:
    """NeuroSim-style PE, tile and chip components, by ``class`` (see the module docstring)."""
    fn = _CLASSES.get(comp.component_class)
    if fn is None:
        known = ", ".join(sorted(_CLASSES))
        raise SpecError(f"no neurosim model for class {comp.component_class!r} (known: {known})")
    area, energy = fn(arch, comp, _level(arch, comp))
    return _estimate(arch, energy, area, comp.rate_hz)


#: Param.cpp ``zeta`` (``validated = true``): the post-layout factor NeuroSim divides its
#: reported efficiency by.
ZETA = 1.22


def neurosim_tops_per_w(report, workload) -> float:
    """TOPS/W of a pimsim report the way DNN+NeuroSim V1.4 reports it (main.cpp): its op count
    2 x H x W x Cin x kh x kw x Cout per conv at input size (linear: 2 x MACs), over the energy
    of the (H - kh + 1) x (W - kw + 1) positions of each conv it simulates (``numInVector``) plus
    leakage, divided by :data:`ZETA`. Evaluate with ``activity`` = NeuroSim's input toggle
    (:data:`~pimsim.cost._neurosim_energy.INPUT_TOGGLE` for VGG-8) to compare like with like."""
    rows = report.layers.set_index("name")
    ops, energy = 0.0, report.energy_breakdown_pj.get("leakage", 0.0)
    for layer in workload.layers:
        share = 1.0
        if layer.kind == "conv":
            _, h, w = layer.input_shape
            kh, kw = layer.kernel
            ops += 2 * h * w * layer.in_channels * kh * kw * layer.out_channels // layer.groups
            share = (h - kh + 1) * (w - kw + 1) / (layer.output_shape[1] * layer.output_shape[2])
        elif layer.kind == "linear":
            ops += 2 * layer.macs
        energy += rows.loc[layer.name, "energy_pj"] * share
    return ops / energy / ZETA
