"""Component models. Each returns one instance's :class:`ComponentEstimate`.

Technology scaling (first order, from C ~ feature size and E = C V^2): energy scales with
node / reference node and area with (node / reference node)^2. Digital units and buffers take
ISAAC's Table I (32 nm, 1.2 GHz; Shafiee et al., ISCA 2016) as their reference points.
"""

from __future__ import annotations

import math

from pimsim.cost._registry import ComponentEstimate, register

ISAAC_NODE_NM = 32.0
ISAAC_RATE_HZ = 1.2e9


def node_energy(node_nm: float, ref_nm: float) -> float:
    """First-order energy scaling factor between technology nodes."""
    return node_nm / ref_nm


def node_area(node_nm: float, ref_nm: float) -> float:
    """First-order area scaling factor between technology nodes."""
    return (node_nm / ref_nm) ** 2


def _rate(arch, block) -> float:
    return (
        getattr(block, "sample_rate_hz", None)
        or getattr(block, "rate_hz", None)
        or arch.technology.clock_hz
    )


def _explicit(arch, block, rate: float | None = None, model=None) -> ComponentEstimate:
    """Published values; a published power becomes energy per action at ``rate`` actions per
    second (default: the component's own rate). A value the block leaves out comes from
    ``model`` (the component's scaling model); a ``fixed`` block must give both (the spec check
    refuses one that does not, so nothing is silently zero)."""
    rate = rate or _rate(arch, block)
    energy = block.energy_pj
    if energy is None and block.power_mw is not None:
        energy = block.power_mw / (rate * 1e-9)
    area = block.area_um2
    if model is not None and (energy is None or area is None):
        energy = model.energy_pj if energy is None else energy
        area = model.area_um2 if area is None else area
    return ComponentEstimate(
        energy_pj=energy or 0.0,
        area_um2=area or 0.0,
        rate_hz=rate,
        leakage_mw=block.leakage_mw or 0.0,
        accuracy="published",
    )


def _generic(arch, block, energy_pj_32, area_um2_32, rate=None) -> ComponentEstimate:
    node = arch.technology.node_nm
    est = ComponentEstimate(
        energy_pj=energy_pj_32 * node_energy(node, ISAAC_NODE_NM),
        area_um2=area_um2_32 * node_area(node, ISAAC_NODE_NM),
        rate_hz=rate or getattr(block, "rate_hz", None) or arch.technology.clock_hz,
        leakage_mw=block.leakage_mw or 0.0,
    )
    return _explicit(arch, block, model=est) if block.has_explicit else est


def _per_op(power_mw: float) -> float:
    """ISAAC Table I power at its 1.2 GHz clock -> energy per operation (pJ)."""
    return power_mw / (ISAAC_RATE_HZ * 1e-9)


@register("component", "fixed")
def fixed(arch, comp) -> ComponentEstimate:
    """Published values only."""
    return _explicit(arch, comp)


@register("component", "shift_add")
def shift_add(arch, comp) -> ComponentEstimate:
    """ISAAC Table I shift-and-add unit: 0.05 mW, 60 um2 at 32 nm (one operation per cycle)."""
    return _generic(arch, comp, _per_op(0.05), 60.0)


# Accumulation of partial sums: modelled as a shift-add unit per operation (ISAAC Table I).
register("component", "adder_tree")(shift_add)


@register("component", "relu")
def relu(arch, comp) -> ComponentEstimate:
    """Activation unit: ISAAC Table I sigmoid unit, 0.26 mW, 300 um2 at 32 nm."""
    return _generic(arch, comp, _per_op(0.26), 300.0)


@register("component", "max_pool")
def max_pool(arch, comp) -> ComponentEstimate:
    """Pooling unit: ISAAC Table I max-pool, 0.4 mW, 240 um2 at 32 nm."""
    return _generic(arch, comp, _per_op(0.4), 240.0)


# 8-bit integer multiply and add at 45 nm (M. Horowitz, "Computing's energy problem", ISSCC 2014,
# Fig. 1.1.9): 0.2 pJ + 0.03 pJ, 282 um2 + 36 um2. Rescaled to 32 nm here so that _generic's
# node scaling applies as for every other generic component.
HOROWITZ_NODE_NM = 45.0
MAC8_ENERGY_PJ_45 = 0.2 + 0.03
MAC8_AREA_UM2_45 = 282.0 + 36.0


@register("component", "digital_mac")
def digital_mac(arch, comp) -> ComponentEstimate:
    """One 8-bit integer multiply-accumulate unit (one MAC per cycle): Horowitz, ISSCC 2014,
    0.23 pJ and 318 um2 at 45 nm, scaled to the node like the other generic components; the
    energy and area scale with the operand bits (inputs) squared over 8 bits squared, as an
    array multiplier's partial-product array does."""
    bits = arch.decomposition.input_bits / 8
    e = MAC8_ENERGY_PJ_45 * node_energy(ISAAC_NODE_NM, HOROWITZ_NODE_NM) * bits**2
    a = MAC8_AREA_UM2_45 * node_area(ISAAC_NODE_NM, HOROWITZ_NODE_NM) * bits**2
    return _generic(arch, comp, e, a)


def _buffer(arch, comp, ref_bytes, power_mw, area_um2, ref_width=256) -> ComponentEstimate:
    size = comp.size_bytes or ref_bytes
    width = comp.width_bits or ref_width
    # Access energy ~ sqrt(capacity) (bit-line/word-line length) x width; area ~ capacity.
    e = _per_op(power_mw) * math.sqrt(size / ref_bytes) * width / ref_width
    return _generic(arch, comp, e, area_um2 * size / ref_bytes)


@register("component", "register_file")
def register_file(arch, comp) -> ComponentEstimate:
    """Register-file buffer: ISAAC Table I input register, 2 KB, 1.24 mW, 2100 um2 at 32 nm."""
    return _buffer(arch, comp, 2048, 1.24, 2100.0)


@register("component", "sram_buffer")
def sram_buffer(arch, comp) -> ComponentEstimate:
    """SRAM/eDRAM buffer: ISAAC Table I eDRAM, 64 KB, 20.7 mW, 0.083 mm2 at 32 nm."""
    return _buffer(arch, comp, 65536, 20.7, 83000.0)


@register("component", "bus")
def bus(arch, comp) -> ComponentEstimate:
    """Shared bus: ISAAC Table I tile bus, 384 bits wide, 7 mW, 0.090 mm2 at 32 nm."""
    width = (comp.width_bits or 384) / 384
    return _generic(arch, comp, _per_op(7.0) * width, 90000.0 * width)


# H-tree between PEs: modelled as ISAAC's tile bus.
register("component", "htree")(bus)


@register("component", "router")
def router(arch, comp) -> ComponentEstimate:
    """Mesh router: ISAAC Table I router, 42 mW, 0.151 mm2 at 32 nm (Orion 2.0)."""
    return _generic(arch, comp, _per_op(42.0), 151000.0)


@register("component", "level_shifter")
def level_shifter(arch, comp) -> ComponentEstimate:
    """Write-voltage level shifters: area only in inference (first-order: 128 shifters of
    0.5 um2 at 32 nm per instance); no read energy."""
    return _generic(arch, comp, 0.0, 64.0)


# ----------------------------------------------------------------------------- analog core

DEFAULT_READ_TIME_NS = 10.0  # when neither the spec nor a published value gives one
WIRE_CAP_FF_PER_CELL_32NM = 0.2  # first-order word-line capacitance per cell at 32 nm


def read_time_ns(arch) -> float:
    """Array read time: ``array.read_time_ns``, else DEFAULT_READ_TIME_NS."""
    return arch.array.read_time_ns or DEFAULT_READ_TIME_NS


def _array_rate(arch) -> float:
    """Cell reads per second of one array reading all its cells once per read time."""
    return arch.array.rows * arch.array.cols / (read_time_ns(arch) * 1e-9)


@register("array", "fixed")
def array_fixed(arch, array) -> ComponentEstimate:
    """Published values; the action is one cell read."""
    return _explicit(arch, array, rate=_array_rate(arch))


def _cell_area_um2(arch, default_f2: float) -> float:
    f_um = arch.technology.node_nm * 1e-3
    return (arch.cell.area_f2 or default_f2) * f_um * f_um


@register("array", "conductance")
def array_conductance(arch, array) -> ComponentEstimate:
    """Energy per cell read = V^2 x G_mean x t_read (Ohm's law over the read pulse), with
    G_mean the mean of G_on and G_off; area = rows x cols x cell area (F^2)."""
    cell = arch.cell
    g_on = 1.0 / (cell.r_on_ohm or 100e3)
    g_off = g_on / (cell.on_off_ratio or 1e9)
    v = cell.read_voltage_v or 0.5
    energy = v * v * 0.5 * (g_on + g_off) * read_time_ns(arch) * 1e-9 * 1e12
    area = array.rows * array.cols * _cell_area_um2(arch, 48.0)
    return ComponentEstimate(energy, area, _array_rate(arch))


@register("array", "sram_cell")
def array_sram(arch, array) -> ComponentEstimate:
    """SRAM compute cell: bit-line charge C V^2 per cell read (first order, C from the wire
    capacitance per cell); area from ``cell.area_f2`` (default 280 F^2, NeuroSim's 10F x 28F)."""
    c = WIRE_CAP_FF_PER_CELL_32NM * node_energy(arch.technology.node_nm, ISAAC_NODE_NM)
    energy = c * 1e-15 * arch.technology.vdd_v**2 * 1e12
    area = array.rows * array.cols * _cell_area_um2(arch, 280.0)
    return ComponentEstimate(energy, area, _array_rate(arch))


@register("dac", "fixed")
def dac_fixed(arch, dac) -> ComponentEstimate:
    """Published values; the action is one row activation per input cycle."""
    return _explicit(arch, dac, rate=1.0 / (read_time_ns(arch) * 1e-9))


@register("dac", "drive")
def dac_drive(arch, dac) -> ComponentEstimate:
    """Row driver: charges a word line of ``cols`` cells, C V^2 per activation, times the
    2^bits - 1 levels of a multi-bit drive (first order); 1 um2 per level at 32 nm."""
    c = (
        arch.array.cols
        * WIRE_CAP_FF_PER_CELL_32NM
        * node_energy(arch.technology.node_nm, ISAAC_NODE_NM)
    )
    v = arch.cell.read_voltage_v or arch.technology.vdd_v
    levels = 2**dac.bits - 1
    return ComponentEstimate(
        energy_pj=c * 1e-15 * v * v * 1e12 * (1 if dac.encoding == "pwm" else levels),
        area_um2=levels * node_area(arch.technology.node_nm, ISAAC_NODE_NM),
        rate_hz=1.0 / (read_time_ns(arch) * 1e-9),
    )


def adc_reference(arch) -> ComponentEstimate:
    """The programmable reference of one ADC whose input range is set per layer (or finer) from
    calibration data (``adc.range`` other than ``full_scale``): an ``adc.bits``-bit reference
    DAC, first order as the row driver's, 1 um2 per level at 32 nm scaled by node. It is set
    when the range changes (once per layer with ``range_granularity: layer``), not per
    conversion, so no conversion energy and no action rate (nothing in peak power) are charged
    to it: its area is what it adds."""
    levels = 2**arch.adc.bits - 1
    return ComponentEstimate(
        energy_pj=0.0,
        area_um2=levels * node_area(arch.technology.node_nm, ISAAC_NODE_NM),
        rate_hz=0.0,
    )


# ----------------------------------------------------------------------------- unit costs


def _unit(arch, block) -> ComponentEstimate:
    """Every action costs 1 pJ and every instance 1 um2: energies become action counts (for
    tests and for reading action counts off an energy report)."""
    return ComponentEstimate(1.0, 1.0, arch.technology.clock_hz, accuracy="unit")


for _section in ("adc", "dac", "array", "component"):
    register(_section, "unit")(_unit)
