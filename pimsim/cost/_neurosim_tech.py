"""NeuroSim V1.4 technology tables: FinFET-era device and layout rules, per-node sense-amplifier
fits and the ChipFloorPlan sizing rule.

Re-derived from DNN+NeuroSim V1.4 (``neurosim/DNN_NeuroSim_V1.4``, ``Inference_pytorch/NeuroSIM``;
values and rules read, no code copied). Sources by table:

* :data:`FINFET`: Technology.cpp, LSTP roadmap below 22 nm (IRDS 2017 for 10 and 7 nm): supply,
  on-current, CACTI's effective-resistance multiplier, gate and drain capacitance per effective
  fin width. formula.cpp CalculateOnResistance: below 22 nm a width of ``w`` (in F) is
  ``ceil(w / 2)`` fins, each ``effective_width`` wide.
* :data:`SRAM_CELL_F`: Param.cpp SRAM cell (height, width) in F per node (10 x 28 above 14 nm).
* :data:`METAL_NM`: Param.cpp (Metal0, Metal1) widths: column wires use Metal0, row wires Metal1.
* :data:`MLSA_POWER`, :data:`MLSA_LATENCY`: MultilevelSenseAmp.cpp GetColumnPower (LP, current
  mode) and ColumnLatency_Table (current mode), one fit per node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class FinFET:
    """Technology.cpp LSTP constants and constant.h layout rules of one FinFET node (SI units;
    layout rules in F)."""

    vdd: float
    ion_per_m: float  # currentOnNmos[0] (uA/um = A/m of effective width); P equals N
    r_eff_mult: float  # effectiveResistanceMultiplier
    cap_gate_per_fin: float  # caplist x 1e-18 F: capIdealGate x effective_width
    cap_drain_per_fin: float  # cap_draintotallist (F): the array's access-transistor drains
    effective_width: float  # m
    fin_pitch: float  # m
    fin_width: float  # m
    max_fins: int  # max_fin_num: fins per device in a standard cell before folding
    cap_junction: float  # capJunction (F/m2): the only drain capacitance at <= 14 nm
    cell_h: float  # constant.h MAX_TRANSISTOR_HEIGHT_xnm: standard-cell height (bulk 28)
    cpp: float  # CPP_xnm: contacted poly pitch (bulk POLY_WIDTH + gap = 3.8)
    poly: float  # POLY_WIDTH_xnm: a drain is cpp - poly wide
    pn_gap: float  # MIN_GAP_BET_P_AND_N_DIFFS_xnm (bulk 3.5)
    outer: float  # OUTER_HEIGHT_REGION_xnm: cell edge outside the fins (bulk 3.6 for both)
    m3_pitch: float  # M3_PITCH_xnm (bulk 2.8): row-decoder address wires


# Technology.cpp: 14 nm (IRDS 2016: fin 42 nm tall, 8 nm wide, pitch 48 nm), 10 nm (IRDS 2017:
# 45 nm tall, 8 nm wide, pitch 36 nm) and 7 nm (IRDS 2017: 50 nm tall, 7 nm wide, pitch 30 nm,
# effective width 107 nm); max_fin_num and capJunction per node. constant.h: cell heights
# (Samsung 14 nm, TSMC 10 and 7 nm), CPP and poly widths, P-N gaps, outer regions, M3 pitches.
FINFET = {
    14: FinFET(0.80, 595.045, 2.09, 103.816e-18, 2.499e-17, 8e-9 + 2 * 42e-9, 48e-9, 8e-9,
               4, 0.0120, 41.142, 5.571, 1.857, 9.71, 10.285, 4.57),
    10: FinFET(0.75, 599.237, 2.09, 97.549e-18, 2.668e-17, 8e-9 + 2 * 45e-9, 36e-9, 8e-9,
               3, 0.0134, 33.0, 6.4, 2.2, 10.0, 8.2, 4.4),
    7: FinFET(0.70, 562.048, 2.05, 100.497e-18, 2.224e-17, 107e-9, 30e-9, 7e-9,
              2, 0.0137, 34.285, 8.1428, 3.14, 11.85, 12.28, 5.71),
}  # fmt: skip


SRAM_CELL_F = {14: (10.6, 30.8), 10: (12.8, 31.25), 7: (16.0, 34.43)}
SRAM_CELL_BULK_F = (10.0, 28.0)
METAL_NM = {14: (32, 39), 10: (22, 32), 7: (20, 28.5)}

# GetColumnPower, LP, current mode: (R breakpoints, [(slope, intercept, log?) per segment]).
# Above 22 nm the fits have three segments (linear, ln, ln); below, two (linear, ln).
_P3 = (4832.0, 379269.0)
MLSA_POWER = {
    130: (_P3, ((-4.12599e-11, 1.48536e-06), (-2.6617e-07, 3.56576e-06),
                (-1.25872e-07, 1.81453e-06))),
    90: (_P3, ((-1.67004e-11, 8.54958e-07), (-1.50719e-07, 2.0858e-06),
               (-8.89685e-08, 1.3007e-06))),
    65: (_P3, ((-6.08647e-12, 4.82814e-07), (-8.03449e-08, 1.16437e-06),
               (-6.01171e-08, 8.9355e-07))),
    45: (_P3, ((-3.96471e-12, 3.44344e-07), (-5.66235e-08, 8.27849e-07),
               (-4.32673e-08, 6.46111e-07))),
    32: (_P3, ((-6.72783e-12, 4.19847e-07), (-7.28881e-08, 1.02677e-06),
               (-4.35333e-08, 6.4697e-07))),
    22: (_P3, ((-2.85373e-11, 9.16744e-07), (-1.63133e-07, 2.1687e-06),
               (-5.8712e-08, 8.64648e-07))),
    14: ((7847.0,), ((-3.11213e-13, 5.34821e-08), (-9.64978e-09, 1.44527e-07))),
    10: ((20691.0,), ((-3.27225e-13, 5.54082e-08), (-9.99199e-09, 1.49539e-07))),
    7: ((20691.0,), ((-2.62089e-13, 4.7357e-08), (-8.49198e-09, 1.27848e-07))),
}  # fmt: skip
# ColumnLatency_Table, current mode: breakpoints, segments (the last one linear in R, the others in
# ln R), then refcap, dC, R2 and the threshold above which the column capacitance adds delay.
MLSA_LATENCY = {
    130: ((1832.0,), ((-1.18573e-10, 2.54175e-09), (3.78659e-14, 2.60629e-09)),
          26.62e-15, 2.0e-9, 0.1e6, 1.95e3),
    90: ((4832.0,), ((-1.08914e-10, 2.43204e-09), (2.8688e-14, 2.31147e-09)),
         18.4e-15, 1.5e-9, 0.1e6, 4.83e3),
    65: ((4832.0,), ((-8.11436e-11, 2.2554e-09), (2.12366e-14, 2.14339e-09)),
         13.3e-15, 1.2e-9, 0.1e6, 4.83e3),
    45: ((4832.0,), ((-1.12976e-10, 2.16762e-09), (1.54619e-14, 1.60263e-09)),
         9.21e-15, 0.81e-9, 0.1e6, 4.83e3),
    32: ((4832.0,), ((-1.31777e-10, 2.03151e-09), (1.15509e-14, 1.19475e-09)),
         6.55e-15, 0.55e-9, 0.1e6, 4.83e3),
    22: ((4832.0,), ((-1.32118e-10, 1.7552e-09), (8.02517e-15, 8.51803e-10)),
         4.5e-15, 0.31e-9, 0.1e6, 12.7e3),
    14: ((812.0, 2962.0), ((-7.01209e-11, 1.21771e-09), (-2.11644e-11, 8.96216e-10),
                           (6.18337e-15, 8.17633e-10)), 2.86e-15, 0.29e-9, 0.1e6, 12.7e3),
    10: ((1128.0, 4832.0), ((-7.20238e-11, 1.18578e-09), (-1.81368e-11, 8.16065e-10),
                            (4.72185e-15, 7.28474e-10)), 2.04e-15, 0.27e-9, 0.1e6, 12.7e3),
    7: ((4832.0,), ((-4.67061e-11, 1.03708e-09), (3.72084e-15, 7.02172e-10)),
        1.43e-15, 0.13e-9, 0.1e6, 12.7e3),
}  # fmt: skip


def nearest_node(table: dict, node: float):
    """The entry of ``table`` for the tabulated node nearest ``node``."""
    return table[min(table, key=lambda k: abs(k - node))]


def is_finfet(node: float) -> bool:
    """NeuroSim switches to its FinFET rules below 22 nm (Technology.cpp, formula.cpp)."""
    return node < 22


def mlsa_column_power(node: float, r: float, levels: int) -> float:
    """GetColumnPower (W) at column resistance ``r`` (already rescaled to the 0.5 V fit), times
    the L - 1 comparators; no active row (r infinite) draws NeuroSim's flat 1 uW."""
    if math.isinf(r):
        return 1e-6
    bounds, segs = nearest_node(MLSA_POWER, node)
    i = sum(r >= b for b in bounds)
    a, b = segs[i]
    p = a * r + b if i == 0 else a * math.log(r) + b
    return max(p, 0.0) * (levels - 1)


def mlsa_column_latency(node: float, r: float, c_col: float) -> float:
    """ColumnLatency_Table (s) of a reference at ``r`` with column capacitance ``c_col``."""
    bounds, segs, refcap, dc, r2, thr = nearest_node(MLSA_LATENCY, node)
    i = sum(r >= b for b in bounds)
    a, b = segs[i]
    t = a * r + b if i == len(segs) - 1 else a * math.log(r) + b
    if r > thr:
        t += dc / (r2 - thr) * (r - thr) * ((c_col - refcap) / refcap)
    return t


# ----------------------------------------------------------------------------- Tech

BULK_CELL_H = 28.0  # constant.h MAX_TRANSISTOR_HEIGHT (F)
BULK_CPP = 3.8  # constant.h POLY_WIDTH 1 + MIN_GAP_BET_GATE_POLY 2.8 (F)
BULK_M3_PITCH = 2.8  # constant.h M3_PITCH (F)

# Technology.cpp, 22 nm LSTP (PTM 22nm_LP): on-currents (uA/um = A/m), CACTI's effective
# resistance multiplier, gate capacitance per width (ideal + overlap 0.2 x ideal + fringe). Used
# at 22 nm and above (the bulk rules); below 22 nm :data:`FINFET` replaces them.
ION_N, ION_P = 791.9, 600.2
R_EFF_MULT = 1.77
C_GATE_PER_M = 5.245e-10 * 1.2 + 8.004e-10
C_WIRE_PER_M = 0.2e-15 / 1e-6  # SubArray.cpp / HTree.cpp: 0.2 fF/um for every wire

# Param.cpp wire width brackets (nm lower bound: aspect ratio, resistivity), the per-node wire
# width (also NeuroSim's ``param->featuresize``), MLSA read voltage, final mux-decoder driver
# sizing and switch-matrix sizing.
WIRE_BRACKETS = (
    (175, 1.6, 2.01e-8), (110, 1.6, 2.20e-8), (105, 1.7, 2.21e-8), (80, 1.7, 2.37e-8),
    (56, 1.8, 2.63e-8), (40, 1.9, 2.97e-8), (32, 2.0, 3.25e-8), (22, 2.0, 3.95e-8),
    (20, 2.0, 4.17e-8), (15, 2.0, 4.98e-8), (12, 2.0, 5.8e-8), (10, 2.0, 6.61e-8),
    (8, 3.0, 7.87e-8),
)  # fmt: skip
WIRES = {130: 175, 90: 110, 65: 105, 45: 80, 32: 56, 22: 40, 14: 32, 10: 22, 7: 20}
VREAD = {130: 0.58, 90: 0.58, 65: 0.55, 45: 0.51, 32: 0.51, 22: 0.55, 14: 0.277, 10: 0.28, 7: 0.264}
SIZING_MUX = {22: 110, 14: 130, 10: 80, 7: 60}
NEW_SWITCH_RATIO = {22: 14}  # Param.cpp newswitchmatrixsizeratio (default 6)
SWITCH_RATIO = {22: 0.2, 14: 0.2, 10: 0.2, 7: 0.2}  # Param.cpp switchmatrixsizeratio (0.1)


def wire_res_per_m(width_nm: float) -> float:
    """Param.cpp unit-length resistance (Ohm/m) of a wire ``width_nm`` wide: bracketed aspect
    ratio and resistivity. (Its barrier-thickness correction mixes nm and m, about 1e-10: bulk
    resistivity remains.)"""
    ar, rho = next(((a, r) for lo, a, r in WIRE_BRACKETS if width_nm >= lo), WIRE_BRACKETS[-1][1:])
    return rho / ((width_nm * 1e-9) ** 2 * ar)


@dataclass(frozen=True)
class Tech:
    """Process constants for one spec: feature size, supply, wires, read voltage and, below
    22 nm, the FinFET device constants and standard-cell layout rules NeuroSim switches to
    (:data:`FINFET`; the gate layouts themselves are in :mod:`pimsim.cost._neurosim_area`)."""

    node_nm: float
    vdd: float
    vread: float
    wire_nm: float
    wire_res_per_m: float  # Metal0 / wireWidth: bit lines, buses
    row_res_per_m: float  # Metal1: word lines (resRow)
    pn: float = ION_N / ION_P  # Technology.cpp pnSizeRatio (22 nm: not truncated; FinFET: 1)
    fin: FinFET | None = None

    @property
    def cell_h(self) -> float:
        """Standard-cell height (F) a gate laid out at NeuroSim's default height gets:
        MAX_TRANSISTOR_HEIGHT 28F (bulk) or the node's MAX_TRANSISTOR_HEIGHT_xnm (34.285F at
        7 nm; formula.cpp CalculateGateArea rescales the requested height by it / 28)."""
        return self.fin.cell_h if self.fin is not None else BULK_CELL_H

    @property
    def cpp(self) -> float:
        """Contacted poly pitch (F): bulk POLY_WIDTH + MIN_GAP_BET_GATE_POLY = 3.8, FinFET
        constant.h CPP_xnm (8.1428F at 7 nm)."""
        return self.fin.cpp if self.fin is not None else BULK_CPP

    @property
    def m3_pitch(self) -> float:
        """Metal3 pitch (F) of the row-decoder address wires (constant.h M3_PITCH[_xnm])."""
        return self.fin.m3_pitch if self.fin is not None else BULK_M3_PITCH

    @property
    def f_m(self) -> float:
        """Feature size (m)."""
        return self.node_nm * 1e-9

    @property
    def f_um(self) -> float:
        """Feature size (um)."""
        return self.node_nm * 1e-3

    def fins(self, w: float) -> int:
        """formula.cpp, below 22 nm: a device ``w`` F wide is ceil(w / 2) fins."""
        return max(1, math.ceil(w / 2 - 1e-9))

    def r_on(self, w: float, nmos: bool = True, mult: float | None = None) -> float:
        """formula.cpp CalculateOnResistance for a width of ``w`` F (``mult`` 1: the
        ``_normal`` variant the switch matrices and mux use for sizing). FinFET: the on-current
        of ceil(w / 2) fins of the node's effective width."""
        if self.fin is not None:
            m = self.fin.r_eff_mult if mult is None else mult
            return m * self.vdd / (self.fin.ion_per_m * self.fins(w) * self.fin.effective_width)
        m = R_EFF_MULT if mult is None else mult
        return m * self.vdd / ((ION_N if nmos else ION_P) * w * self.f_m)

    def gate_cap(self, w: float) -> float:
        """formula.cpp CalculateGateCap (F) of a ``w`` F wide gate (FinFET: per fin)."""
        if self.fin is not None:
            return self.fin.cap_gate_per_fin * self.fins(w)
        return C_GATE_PER_M * w * self.f_m

    def junction(self) -> tuple[float, float, float]:
        """Technology.cpp: bottom (F/m2), sidewall and gate-edge (F/m) junction capacitance."""
        bias = 1 + self.vdd / 0.9
        return 1e-3 / bias**0.5, 2.5e-10 / bias**0.33, 0.5e-10 / bias**0.33


def tech(arch) -> Tech:
    """The :class:`Tech` of a spec; read voltage from ``cell.read_voltage_v`` or Param.cpp's
    per-node table (fixed by the sense-amplifier fits). Supply: the spec's ``vdd_v`` when it
    sets one; below 22 nm without one, Technology.cpp's supply for the node (0.7 V at 7 nm)."""
    node = arch.technology.node_nm
    wire_nm = nearest_node(WIRES, node)
    row_nm = nearest_node(METAL_NM, node)[1] if is_finfet(node) else wire_nm
    vread = arch.cell.read_voltage_v or nearest_node(VREAD, node)
    vdd = arch.technology.vdd_v
    if is_finfet(node):
        fin = nearest_node(FINFET, node)
        if "vdd_v" not in getattr(arch.technology, "model_fields_set", {"vdd_v"}):
            vdd = fin.vdd  # Technology.cpp's supply for the node unless the spec sets one
        res = wire_res_per_m(wire_nm)
        return Tech(node, vdd, vread, wire_nm, res, wire_res_per_m(row_nm), 1.0, fin)
    res = wire_res_per_m(wire_nm)
    return Tech(node, vdd, vread, wire_nm, res, res)


# ----------------------------------------------------------------------------- floorplan


@dataclass(frozen=True)
class Floorplan:
    """Chip.cpp ChipFloorPlan's choice for a network (sizes in cells, one side of a square)."""

    pes_per_tile_nm: int  # numPENM: the most common kernel size (9 for 3x3)
    pe_size_nm: int  # desiredPESizeNM
    tile_size_cm: int  # desiredTileSizeCM
    pe_size_cm: int  # desiredPESizeCM

    def arrays_per_pe(self, rows: int) -> int:
        """Subarrays in a novel-mapping PE: (PE size / array rows)^2."""
        return (self.pe_size_nm // rows) ** 2

    @property
    def pes_per_tile_cm(self) -> int:
        """PEs in a conventional-mapping tile: (tile size / PE size)^2."""
        return (self.tile_size_cm // self.pe_size_cm) ** 2


def _pow2(x: float) -> int:
    return 2 ** math.ceil(math.log2(x))


def floorplan(layers, rows: int, cols_per_weight: int) -> Floorplan:
    """ChipFloorPlan (Chip.cpp, novel mapping on) for conv/linear layers given as
    ``(cin, kh, kw, cout)`` tuples, ``rows`` x ``rows`` subarrays and ``cols_per_weight`` columns
    per weight (numColPerSynapse). Layers with the most common kernel and at least ``rows``
    unrolled rows use the novel mapping (NM). The NM PE size starts at the largest
    2^ceil(log2(cout x cols)) of the NM layers and is halved while it stays above 2 x rows,
    keeping the best utilisation; the conventional (CM) tile likewise above 4 x rows, and its PE
    from tile / 2 down to above 2 x rows. The array size enters only through these floors: at
    128 rows VGG-8 gets 512-cell PEs (4 x 4 subarrays); at 256 rows 512 is below the floor and
    the PE is 1024 cells, again 4 x 4 subarrays."""
    kernels = [kh * kw for _, kh, kw, _ in layers]
    common = max((k for k in kernels if k != 1), key=kernels.count, default=1)
    nm = [ly for ly in layers if ly[1] * ly[2] == common and ly[0] * common >= rows]
    cm = [ly for ly in layers if ly not in nm]

    def cube(group):
        return max((_pow2(c * cols_per_weight) for *_, c in group), default=0)

    def weights(group):
        return sum(cin * kh * kw * c * cols_per_weight for cin, kh, kw, c in group)

    def best(start, floor, util):
        chosen, top, size = start, 0.0, start
        while size > floor:
            if util(size) > top:
                top, chosen = util(size), size
            size //= 2
        return chosen

    def util_nm(pe):  # TileDesignNM: one tile of `common` PEs per (cin, cout) block
        tiles = sum(math.ceil(cin / pe) * math.ceil(c * cols_per_weight / pe)
                    for cin, _, _, c in nm)  # fmt: skip
        return weights(nm) / (tiles * pe * pe * common) if tiles else 0.0

    def util_cm(tile):  # TileDesignCM
        tiles = sum(math.ceil(cin * kh * kw / tile) * math.ceil(c * cols_per_weight / tile)
                    for cin, kh, kw, c in cm)  # fmt: skip
        return weights(cm) / (tiles * tile * tile) if tiles else 0.0

    pe_nm = best(max(cube(nm), 2 * rows), 2 * rows, util_nm)
    tile_cm = best(max(cube(cm), 4 * rows), 4 * rows, util_cm)
    # PEDesign: the CM PE from tile / 2 while above 2 x rows (VGG-8: one candidate per size)
    pe_cm = max(tile_cm // 2, 2 * rows)
    return Floorplan(common, pe_nm, tile_cm, pe_cm)
