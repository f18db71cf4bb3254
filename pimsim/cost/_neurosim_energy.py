"""NeuroSim-style energy per action (pJ), re-derived from DNN+NeuroSim V1.4's CalculatePower
functions (``neurosim/DNN_NeuroSim_V1.4``, ``Inference_pytorch/NeuroSIM``; formulas read, no code
copied).

NeuroSim computes one subarray's energy per input bit-plane ("one call") from the traced input
and weight bits. Row-driver energy here is per driven row (the evaluation scales it by the input
activity); the conversion energy is not scaled by activity, but its column power depends on the
column's conductance, for which we assume:

* ``INPUT_ACTIVITY``: the fraction of input bits that are 1 on the rows of one read. NeuroSim
  traces it per call; we use its documented default input statistic, Param.cpp ``inputtoggle``
  = 0.18 (from VGG-8/CIFAR-10 traces).
* ``WEIGHT_ONES``: the fraction of 1-bit weight slices that are in the on state (0.5).

Interconnect bits toggle at ``INPUT_TOGGLE`` (the same Param.cpp constant, as NeuroSim uses it).

Calibration factors kept, as NeuroSim applies them to energy with ``validated = true``
(Param.cpp): adder activity delta = 0.15, DFF activity gamma = 0.5 in shift-adds, accumulators
and register-file buffers. The post-layout factor zeta = 1.22 is a reporting convention of
NeuroSim's TOPS/W and is not applied here.
"""

from __future__ import annotations

import math

from pimsim.cost._neurosim_area import (
    C_WIRE_PER_M,
    IR_DROP,
    MIN_N,
    NEW_SWITCH_RATIO,
    SWITCH_RATIO,
    Tech,
    adder_nand,
    cell_dims,
    cell_resistances,
    drain_cap,
    inv_caps,
    n_adcs,
    pass_gate_height,
    row_groups,
    rows_per_read,
    tech,
    tg_width,
)
from pimsim.cost._neurosim_tech import mlsa_column_latency, mlsa_column_power

INPUT_TOGGLE = 0.18  # Param.cpp inputtoggle (VGG-8/CIFAR-10 default)
INPUT_ACTIVITY = INPUT_TOGGLE  # the same statistic, read as the fraction of active input rows
WEIGHT_ONES = 0.5
DELTA = 0.15  # Param.cpp delta: adder switching activity
GAMMA = 0.5  # Param.cpp gamma: DFF switching activity (shift-add, accumulator, buffers)
ACCESS_VOLTAGE = 1.1  # Param.cpp accessVoltage: gate voltage of the 1T1R access transistor
PJ = 1e12


def dff_energy(t: Tech, n: float = 1.0, gamma: float = 1.0) -> float:
    """DFF.cpp CalculatePower (J): ``n`` clocked DFFs with data (clock inverters, clock TGs and
    the D-to-Q path of every DFF), times ``gamma``."""
    ci, co = inv_caps(t, MIN_N, t.pn * MIN_N)
    clock = 4 * (ci + co) + 2 * ci  # clock INVs; clock TG gates (same sizes as the INV)
    data = (3 * co + ci) + (co + co) + (ci + co)  # D input, feedback, Q output
    return (clock + data) * t.vdd**2 * n * gamma


def adder_energy(t: Tech, bits: int) -> float:
    """Adder.cpp CalculatePower (J): one ``bits``-bit ripple-carry add of NAND2s (critical-path
    pattern incl. hidden transitions), times delta."""
    wn, wp = adder_nand(t)
    ci = t.gate_cap(wn) + t.gate_cap(wp)
    co = drain_cap(t, "NAND", 2, wn, wp)
    per = (14 * ci + 7 * co) + (bits - 1) * (13 * ci + 7 * co)
    return per * t.vdd**2 * DELTA


# ----------------------------------------------------------------------------- sense amp


def _col_power(r: float, t: Tech, levels: int) -> float:
    """MultilevelSenseAmp.cpp GetColumnPower, current mode, LSTP, the fit of the spec's node (W):
    each node's fit is for a 0.5 V read, so R is rescaled by 0.5 / Vread."""
    return mlsa_column_power(t.node_nm, r * 0.5 / t.vread, levels)


def column_cap(arch, t: Tech) -> float:
    """SubArray.cpp Initialize: bit-line capacitance (F) = wire (0.2 fF/um) plus the drain of
    every row's access transistor (1T1R: sized for R_access; SRAM: 1F)."""
    cell_h, _ = cell_dims(arch)
    rows = arch.array.rows
    return rows * cell_h * t.f_m * C_WIRE_PER_M + rows * drain_cap(
        t, "INV", 1, access_width(arch, t), 0
    )


def access_width(arch, t: Tech) -> float:
    """Access transistor width (F): SRAM 1F; 1T1R sized so that R_on(F) x 0.2 / W = R_access."""
    if arch.cell.device == "sram":
        return 1.0
    return t.r_on(1) * 0.2 / cell_resistances(arch)[2]


def column_resistance(arch, t: Tech) -> float:
    """Expected bit-line resistance seen by one conversion (Ohm), from ProcessingUnit.cpp
    GetColumnResistance with ``INPUT_ACTIVITY`` of the rows driven. 1T1R: the active rows of one
    row group (NeuroSim divides the column conductance by numAdd) with a ``WEIGHT_ONES`` share of
    on cells. SRAM: every active row of the array adds its access transistor in series with one
    cell's column wire (R_access + R_wire per row, no division by numAdd)."""
    if arch.cell.device == "sram":
        _, cell_w = cell_dims(arch)
        r_wire = t.wire_res_per_m * t.wire_nm * 1e-9 * cell_w  # Param.cpp wireResistanceCol
        active = INPUT_ACTIVITY * arch.array.rows
        return (t.r_on(1) + r_wire) / active
    r_on, r_off, r_acc = cell_resistances(arch)
    g_cell = WEIGHT_ONES / (r_on + r_acc) + (1 - WEIGHT_ONES) / (r_off + r_acc)
    return 1 / (INPUT_ACTIVITY * rows_per_read(arch) * g_cell)


def sense_amp(arch, r_col: float | None = None) -> tuple[float, float]:
    """One multilevel current-mode sense-amp conversion: (energy pJ, sensing time s), at the
    expected column resistance (:func:`column_resistance`) or at ``r_col`` (Ohm; ``math.inf``:
    a row group without weights, no cell current, GetColumnPower's flat 1 uW).

    MultilevelSenseAmp.cpp CalculatePower: E = (P_col(R_col) + P_ref) x T_col + (L - 1) E_sw.
    References Rref_i = R0 / (1 - i/L), R0 = R_on / rows read (SRAM: R_access / rows read);
    T_col is the slower of the extreme references; the dummy reference columns are shared by L
    sense amps (dumcolshared = levelOutput). E_sw: column and mirror switching at Vread, latch
    and encoder interface at Vdd, and (SRAM) a reference word line. P and T are NeuroSim's fits
    for the spec's node (:mod:`pimsim.cost._neurosim_tech`; nearest tabulated node otherwise).
    """
    t = tech(arch)
    levels = 2**arch.adc.bits
    nrp = rows_per_read(arch)
    sram = arch.cell.device == "sram"
    r0 = (t.r_on(1) if sram else cell_resistances(arch)[0]) / nrp
    rref = [r0 / (1 - i / levels) for i in range(levels - 1)]
    c_col = column_cap(arch, t)
    cgn, cjn = t.gate_cap(MIN_N), drain_cap(t, "INV", 1, MIN_N, 0)
    cgp, cjp = t.gate_cap(t.pn * MIN_N), drain_cap(t, "INV", 1, 0, t.pn * MIN_N)
    c_lat = c_col + cgn * max(levels - 3, 0)
    refs = (rref[-1], rref[min(1, len(rref) - 1)])
    t_col = max(mlsa_column_latency(t.node_nm, r, c_lat) for r in refs)
    p_ref = sum(_col_power(r, t, levels) for r in rref[1:-1]) / levels
    p_col = _col_power(column_resistance(arch, t) if r_col is None else r_col, t, levels)
    static = (p_col + p_ref) * t_col
    ref_wl = 0.0
    if sram:  # reference column's word line (reference_energy_peri), shared by L sense amps
        _, cell_w = cell_dims(arch)
        cap_row = arch.array.cols * (cell_w * t.f_m * C_WIRE_PER_M + t.gate_cap(1))
        ref_wl = cap_row / arch.array.cols * t.vdd**2 * arch.array.rows
    vr2, vdd2 = t.vread**2, t.vdd**2
    e_sw = (
        c_col * 2 * (1 / (levels - 1) + 1 / levels) / 2 * vr2
        + ref_wl / levels
        + (2 * cgn + (cjn + cgn) / (levels - 1) + (cjn + cgn) / levels) * vr2
        + (2 * cgp + cgn) * vdd2
        + (3 * cgp + 3 * cgn + 3 * (cjp + cjn) + cjp) * vdd2
        + (cgp + cgn) * vdd2
    )
    return (max(static, 0.0) + (levels - 1) * e_sw) * PJ, t_col


def mux_energy(arch) -> float:
    """Mux.cpp CalculatePower per conversion (pJ): the column TG turned on (gate at Vdd, two
    drains at Vread); NeuroSim switches it once per mux step for all row groups of a call."""
    if arch.adc.cols_per_adc <= 1:
        return 0.0
    t = tech(arch)
    if arch.cell.device == "sram":
        res = t.r_on(1) / max(rows_per_read(arch) // 2, 1)
    else:
        r_on, r_off, r_acc = cell_resistances(arch)
        res = 2 / (1 / (r_on + r_acc) + 1 / (r_off + r_acc)) / rows_per_read(arch)
    wn, wp = tg_width(t, res, IR_DROP, linear=False)
    cd = drain_cap(t, "INV", 1, wn, wp, pass_gate_height(t, wn, wp, 1))
    return (t.gate_cap(wn) * t.vdd**2 + 2 * cd * t.vread**2) / row_groups(arch) * PJ


# ----------------------------------------------------------------------------- drivers


def _switch_tg(arch, t: Tech) -> tuple[float, float]:
    """(gate, drain) capacitance of one row's word-line switch TG: 1T1R NewSwitchMatrix.cpp
    (2F x newswitchmatrixsizeratio) or SRAM SwitchMatrix.cpp ROW_MODE (sized against the word
    line's wire resistance), at the TG cell height of the row-side column."""
    rows, cols = arch.array.rows, arch.array.cols
    cell_h, cell_w = cell_dims(arch)
    h_a = rows * cell_h
    per_col = math.ceil(rows / math.ceil(rows / max(int(h_a / t.cell_h), 1)))
    if arch.cell.device == "sram":
        res_row = cols * cell_w * t.f_m * t.wire_res_per_m
        wn, wp = tg_width(t, res_row, SWITCH_RATIO.get(round(t.node_nm), 0.1))
        return inv_caps(t, wn, wp, h_a / per_col)
    size = MIN_N * NEW_SWITCH_RATIO.get(round(t.node_nm), 6)
    ncol = math.ceil(rows / max(int(h_a / t.cell_h), 1))
    return inv_caps(t, size, t.pn * size, h_a / math.ceil(rows / ncol))


def row_drive_energy(arch) -> float:
    """Energy of one driven row of one array in one input cycle (pJ).

    SubArray.cpp CalculatePower (conventionalParallel) repeats the word-line drive for each of
    the ``cols_per_adc`` mux steps. Per step a driven row charges its word line (wire plus the
    access gates, C_row Vdd^2) and its switch-matrix TGs (1T1R NewSwitchMatrix.cpp: 2 drains at
    Vaccess, 5 at Vread, 3 gates at Vdd; SRAM SwitchMatrix.cpp ROW_MODE: 3 drains at Vread and
    the gates). NeuroSim multiplies these by the traced row activity; ours are per driven row
    (activity 1) and the evaluation scales them by the input activity it is given. The row's
    scan DFF is clocked whatever the data: see :func:`scan_chain_energy`.
    """
    t = tech(arch)
    cols = arch.array.cols
    _, cell_w = cell_dims(arch)
    c_row = cols * (cell_w * t.f_m * C_WIRE_PER_M + t.gate_cap(access_width(arch, t)))
    cg, cd = _switch_tg(arch, t)
    if arch.cell.device == "sram":
        tg = 3 * cd * t.vread**2 + cg * t.vdd**2
    else:
        tg = 2 * cd * ACCESS_VOLTAGE**2 + 5 * cd * t.vread**2 + 3 * cg * t.vdd**2
    return arch.adc.cols_per_adc * (c_row * t.vdd**2 + tg) * PJ


def scan_chain_energy(arch) -> float:
    """The word-line switch matrix's DFF scan chain per conversion (pJ): one DFF per row,
    clocked once per mux step whatever the inputs (DFF.cpp, no gamma), spread over the
    cols x numAdd conversions of the read."""
    t = tech(arch)
    per_read = arch.array.rows * arch.adc.cols_per_adc * dff_energy(t)
    return per_read / (arch.array.cols * row_groups(arch)) * PJ


# ----------------------------------------------------------------------------- digital


def shift_add_energy(arch) -> float:
    """Digital recombination per conversion (pJ), from one call of SubArray.cpp CalculatePower
    divided by its cols x numAdd conversions: the weight shift-add ((slices - 1) reads), the
    input shift-add (one read), both ShiftAdd.cpp (adders x delta, DFFs x gamma), and the
    partial-sum adder + DFF that adds the numAdd row groups ((numAdd - 1) x cols_per_adc reads).
    The last is per-conversion work inside the array, so it rides on the conversion count.
    """
    t = tech(arch)
    units, cpa = n_adcs(arch), arch.adc.cols_per_adc
    slices, cycles, n_add = arch.weight_slices, arch.input_cycles, row_groups(arch)
    lb = arch.adc.bits
    extra = math.ceil(math.log2(n_add)) if n_add > 1 else 0
    bits = lb + (extra if arch.cell.device == "sram" else 0)
    total = 0.0
    if slices > 1:
        reads = (slices - 1) * math.ceil(cpa / slices)
        total += reads * units * (adder_energy(t, bits) + dff_energy(t, bits + slices, GAMMA))
    if cycles > 1:
        reads = math.ceil(cpa / slices)
        wide = bits + slices
        total += reads * units * (adder_energy(t, wide) + dff_energy(t, wide + cycles, GAMMA))
    if n_add > 1:
        ab = lb + extra
        # DFF.cpp: all ab x units DFFs clocked, (lb + extra / 2) x units carrying data
        ci, co = inv_caps(t, MIN_N, t.pn * MIN_N)
        clock = (4 * (ci + co) + 2 * ci) * ab
        data = ((3 * co + ci) + 2 * co + (ci + co)) * (lb + extra / 2)
        dff = (clock + data) * t.vdd**2 * GAMMA
        total += cpa * (n_add - 1) * units * (adder_energy(t, ab - 1) + dff)
    return total / (arch.array.cols * n_add) * PJ


def output_bits(arch) -> int:
    """Tile.cpp numBitSubarrayOutput: width of a subarray's recombined output."""
    n_add = row_groups(arch)
    extra = math.ceil(math.log2(n_add)) if n_add > 1 else 0
    dec = arch.decomposition
    return arch.adc.bits + extra + dec.input_bits + (arch.weight_slices - 1) * arch.cell.bits + 1


def wire_energy_per_m(t: Tech, rep) -> float:
    """HTree.cpp / XYBus.cpp CalculatePower: energy per bit and metre of a repeated wire (J/m),
    0.5 (C_rep,in + C_rep,out + c_wire x spacing) Vdd^2 / spacing."""
    return 0.5 * (rep.c_in + rep.c_out + C_WIRE_PER_M * rep.spacing) * t.vdd**2 / rep.spacing
