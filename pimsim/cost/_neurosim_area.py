"""NeuroSim-style layout: technology, gates, parasitics and the subarray bounding box.

A re-derivation of the circuit formulas of DNN+NeuroSim V1.4 (``neurosim/DNN_NeuroSim_V1.4``,
``Inference_pytorch/NeuroSIM``; read for formulas and defaults, no code copied). File and
function names in comments point at the NeuroSim source of each formula.

Layout dimensions are in units of the feature size F (NeuroSim's ``tech.featureSize`` = the
spec's ``technology.node_nm``) until converted to um. Technology constants live in
:mod:`pimsim.cost._neurosim_tech`: the 22 nm LSTP device constants at 22 nm and above, and below
22 nm NeuroSim's FinFET devices (fins of an effective width, Technology.cpp / formula.cpp), its
per-node SRAM cells and Metal0/Metal1 wires (Param.cpp), and its FinFET standard-cell layout
(constant.h cell heights and poly pitches, fin-count folding, junction-only drain capacitance;
see the gates section).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pimsim.cost._neurosim_tech import (  # C_WIRE_PER_M ... tech re-exported for the models
    C_WIRE_PER_M,
    NEW_SWITCH_RATIO,
    SIZING_MUX,
    SRAM_CELL_BULK_F,
    SRAM_CELL_F,
    SWITCH_RATIO,
    Tech,
    is_finfet,
    nearest_node,
    tech,
)

# constant.h, in F: standard-cell height, contacted poly pitch (POLY_WIDTH 1 + gap 2.8), the gap
# that is a drain's width, P-N diffusion gap, and the (poly extension + field gap / 2) x 2 edge.
CELL_H = 28.0
CPP = 3.8
GAP_POLY = 2.8
GAP_PN = 3.5
EDGE = 3.6
MIN_N = 2.0
M3_PITCH = 2.8
LINEAR_REGION = 0.2  # constant.h LINEAR_REGION_RATIO: switch TGs sized in the linear region
IR_DROP = 0.25  # constant.h IR_DROP_TOLERANCE: 1T1R access R = 0.25 Ron; analog mux R share


# Param.cpp cell geometry: 1T1R cells are 4F x 12F at every node; SRAM cells 10F x 28F above
# 14 nm and the per-node FinFET cells below (SRAM_CELL_F, e.g. 16F x 34.43F at 7 nm). A spec's
# ``cell.area_f2`` keeps the height and sets the width.
DEFAULT_CELL_HEIGHT_F = 4.0
DEFAULT_RRAM_AREA_F2 = 48.0
R_ON_DEFAULT, ON_OFF_DEFAULT = 100e3, 17.0  # Param.cpp resistanceOn, resistanceOff / On
LEVEL_SHIFTER_VOLTAGE = 1.5  # SubArray.cpp: level shifters when cell.writeVoltage > 1.5 V
LS_ALPHA = 1.44  # Param.cpp alpha: level-shifter wiring area (validated = true)


# ----------------------------------------------------------------------------- gates
#
# formula.cpp lays every gate out in a standard cell of fixed height. Bulk (>= 22 nm): devices
# fold when wider than their share of the cell height, at a contacted poly pitch of 3.8F. Below
# 22 nm (FinFET, CalculateGateArea / CalculateGateCapacitance / EnlargeSize /
# CalculatePassGateArea): a device of w F is ceil(w / 2) fins; the cell is the node's
# MAX_TRANSISTOR_HEIGHT_xnm tall (the requested height x cell_h / 28) and holds max_fin_num fins
# per device (or, for a non-default height, as many as fit beside the P-N gap and outer
# regions); wider devices fold at the node's CPP; a drain's only capacitance is its bottom
# junction, (CPP - poly) x fins x fin width x capJunction. Heights ``h`` below are the height
# NeuroSim is asked for (F, default 28 = MAX_TRANSISTOR_HEIGHT); :func:`gate_layout` returns
# the height the gate gets.


def _max_widths(wn: float, wp: float, h: float) -> tuple[float, float]:
    """Widest unfolded N and P devices in a cell of height ``h`` (formula.cpp, bulk)."""
    if wp <= 0:
        return h - EDGE, 0.0
    if wn <= 0:
        return 0.0, h - EDGE
    r = wp / (wp + wn)
    mp = r * (h - GAP_PN - EDGE)
    return mp / r * (1 - r), mp


def _folds(w: float, wmax: float) -> int:
    # A device enlarged to exactly wmax must not fold (NeuroSim compares equal floats).
    return 1 if w <= wmax * (1 + 1e-9) else math.ceil(w / wmax)


def _fin_h(t: Tech, h: float | None) -> tuple[float, bool]:
    """The FinFET cell height (F) for a requested height, and whether it is NeuroSim's
    ``speciallayout`` (any height but the default 28F)."""
    req = CELL_H if h is None else h
    return req * t.fin.cell_h / CELL_H, abs(req - CELL_H) > 1e-9


def _max_fins(t: Tech, wn: float, wp: float, h: float | None) -> tuple[int, int]:
    """formula.cpp: most fins an (N, P) device holds before folding. Default height: 2 x
    max_fin_num shared between N and P in proportion (a device alone takes all); other heights:
    the fins that fit (height - P-N gap - outer region + pitch) / 2 / (fin width + pitch)."""
    fin = t.fin
    hf, special = _fin_h(t, h)
    m = fin.max_fins
    if special:
        room = (hf - fin.pn_gap - fin.outer) * t.f_m + fin.fin_pitch
        m = max(math.floor(room / 2 / (fin.fin_width + fin.fin_pitch)), 1)
    if wp <= 0:
        return 2 * m, 0
    if wn <= 0:
        return 0, 2 * m
    ratio = wp / (wp + wn)
    if ratio > 0.5:
        n = int(2 * m * (1 - ratio))
        p = 2 * m - n
    else:
        p = int(2 * m * ratio)
        n = 2 * m - p
    if p == 0:
        p, n = 1, 2 * m - 1
    if n == 0:
        n, p = 1, 2 * m - 1
    return n, p


def _fin_device(fins: int, max_fins: int) -> int:
    """Folds of a FinFET device. formula.cpp folds ``ceil(fins / max)`` in integer arithmetic,
    i.e. floor(fins / max): kept as NeuroSim computes it."""
    return 1 if fins <= max_fins else fins // max_fins


def _fins_of(w: float) -> int:
    return math.ceil(w / 2 - 1e-9) if w > 0 else 0


def gate_layout(
    t: Tech, kind: str, n_in: int, wn: float, wp: float, h: float | None = None
) -> tuple[float, float]:
    """formula.cpp CalculateGateArea: (width, height) in F of an INV/NAND/NOR asked for at
    cell height ``h`` F (default: the standard 28F)."""
    if t.fin is not None:
        height, _ = _fin_h(t, h)
        mn, mp = _max_fins(t, wn, wp, h)
        cpp = t.cpp
        fn, fp = _fins_of(wn), _fins_of(wp)
        kn, kp = _fin_device(fn, mn) if fn else 1, _fin_device(fp, mp) if fp else 1
        un = 0.0 if fn == 0 else (2 * cpp if fn <= mn else (kn + 1) * cpp)
        up = 0.0 if fp == 0 else (2 * cpp if fp <= mp else (kp + 1) * cpp)
    else:
        height = CELL_H if h is None else h
        mn, mp = _max_widths(wn, wp, height)
        kn, kp = _folds(wn, mn) if wn > 0 else 1, _folds(wp, mp) if wp > 0 else 1
        cpp = CPP
        un = 0.0 if wn <= 0 else (2 * cpp if kn == 1 else (kn + 1) * cpp)
        up = 0.0 if wp <= 0 else (2 * cpp if kp == 1 else (kp + 1) * cpp)
    if kind == "INV" or n_in == 1:
        return max(un, up), height
    if kn == 1 and kp == 1:  # shared source/drain between the stacked devices
        return max(u * n_in - (n_in - 1) * cpp for u in (un, up) if u > 0), height
    return max(un, up) * n_in, height


def gate_width(
    t: Tech, kind: str, n_in: int, wn: float, wp: float, h: float | None = None
) -> float:
    """Width (F) of :func:`gate_layout`."""
    return gate_layout(t, kind, n_in, wn, wp, h)[0]


def enlarge(t: Tech, wn: float, wp: float) -> tuple[float, float]:
    """formula.cpp EnlargeSize at the standard height: small devices grow to fill the cell.
    FinFET: a lone device grows to max_fin_num fins; an N-P pair grows to max_fin_num fins on
    the wider side when the ratio then gives a whole number of fins on the other."""
    if t.fin is None:
        mn, mp = _max_widths(wn, wp, CELL_H)
        return (mn, mp) if wn < mn and wp < mp else (wn, wp)
    m = t.fin.max_fins
    ratio = wp / (wp + wn)
    fn, fp = _fins_of(wn), _fins_of(wp)
    if ratio == 0 and fn <= m:
        fn = m
    elif ratio == 1 and fp <= m:
        fp = m
    elif 0 < fp <= m and 0 < fn <= m:
        if ratio >= 0.5:
            x = m / ratio * (1 - ratio)
            if x == int(x):
                fn, fp = int(x), m
        else:
            x = m / (1 - ratio) * ratio
            if x == int(x):
                fn, fp = m, int(x)
    else:
        return wn, wp
    return 2.0 * fn, 2.0 * fp


def pass_gate_height(t: Tech, wn: float, wp: float, folds: int) -> float:
    """formula.cpp CalculatePassGateArea: height (F) of a transmission gate folded ``folds``
    times (its width is (folds + 1) CPP). FinFET: the fins per fold at the fin pitch, plus the
    node's P-N gap and two outer regions."""
    if t.fin is None:
        return wp / folds + wn / folds + GAP_PN + EDGE
    fin = t.fin

    def region(w: float) -> float:
        per_fold = math.ceil(_fins_of(w) / folds)
        return ((per_fold - 1) * fin.fin_pitch + fin.fin_width) / t.f_m

    return region(wp) + region(wn) + fin.pn_gap + 2 * fin.outer


def _fin_drain_cap(t: Tech, kind: str, n_in: int, wn: float, wp: float, h: float | None) -> float:
    """formula.cpp CalculateGateCapacitance below 22 nm: bottom junction of the drains only."""
    fin = t.fin
    mn, mp = _max_fins(t, wn, wp, h)
    gap = (fin.cpp - fin.poly) * t.f_m
    total = 0.0
    for w, mx, is_p in ((wn, mn, False), (wp, mp, True)):
        fins = _fins_of(w)
        if fins == 0:
            continue
        k = _fin_device(fins, mx)
        if fins <= mx:
            drain, source, height = gap, gap, fins * fin.fin_width
        else:
            drain, source = math.ceil((k + 1) / 2) * gap, (k + 1) // 2 * gap
            height = mx * fin.fin_width
        if kind == "INV" or n_in == 1:
            wd = drain
        else:
            kn = _fin_device(_fins_of(wn), mn) if wn > 0 else 1
            kp = _fin_device(_fins_of(wp), mp) if wp > 0 else 1
            parallel = is_p if kind == "NAND" else not is_p
            if kn == 1 and kp == 1:
                wd = drain * ((n_in + 1) // 2) if parallel else drain * n_in
            else:
                wd = drain * n_in if parallel else drain * n_in + (n_in - 1) * source
        total += wd * height * fin.cap_junction
    return total


def drain_cap(t: Tech, kind: str, n_in: int, wn: float, wp: float, h: float | None = None) -> float:
    """formula.cpp CalculateGateCapacitance output capacitance (F) of an INV, NAND or NOR
    (bulk: junction bottom, sidewall and gate-edge terms; FinFET: the bottom junction)."""
    if t.fin is not None:
        return _fin_drain_cap(t, kind, n_in, wn, wp, h)
    cj, csw, cd2c = t.junction()
    hh = CELL_H if h is None else h
    mn, mp = _max_widths(wn, wp, hh)
    cap = 0.0
    for w, wmax, is_p in ((wn, mn, False), (wp, mp, True)):
        if w <= 0:
            continue
        folds = _folds(w, wmax)
        height = w if folds == 1 else wmax
        unit = GAP_POLY * (1 if folds == 1 else math.ceil((folds + 1) / 2))
        if kind == "INV" or n_in == 1:
            wd, side = unit, 2 * unit + height * (1 + (folds + 1) % 2)
        elif is_p:  # NAND pull-up: parallel devices share drains when unfolded
            if folds == 1:
                wd = unit * ((n_in + 1) // 2)
                side = 2 * wd + height * (1 - (n_in + 1) % 2)
            else:
                wd = unit * n_in
                side = 2 * wd + height * (1 + (folds + 1) % 2) * n_in
        else:  # NAND pull-down: a series stack (folded stacks are approximated as unfolded)
            wd = unit * n_in
            side = 2 * wd + height
        f = t.f_m
        cap += wd * f * height * f * cj + side * f * csw + folds * height * f * cd2c
    return cap


def inv_caps(t: Tech, wn: float, wp: float, h: float | None = None) -> tuple[float, float]:
    """(input, output) capacitance (F) of an inverter or transmission gate of ``wn``/``wp`` F."""
    return t.gate_cap(wn) + t.gate_cap(wp), drain_cap(t, "INV", 1, wn, wp, h)


def dff_width(t: Tech) -> float:
    """DFF.cpp CalculateArea: a DFF is 12 minimum inverters in a row (F)."""
    return 12 * gate_width(t, "INV", 1, MIN_N, t.pn * MIN_N)


def adder_nand(t: Tech) -> tuple[float, float]:
    """Adder.cpp Initialize: NAND2 of N 2 x min, P pn x min, enlarged to the cell height."""
    return enlarge(t, 2 * MIN_N, t.pn * MIN_N)


def adder_bit_area(t: Tech) -> float:
    """Adder.cpp CalculateArea: one full-adder bit is 9 NAND2 (F^2)."""
    return 9 * gate_width(t, "NAND", 2, *adder_nand(t)) * t.cell_h


def dff_rows_height(t: Tech, n: int, width: float) -> float:
    """DFF.cpp, rows across ``width`` F: height (F) of ``n`` DFFs."""
    if n <= 0:
        return 0.0
    per_row = min(int(width / dff_width(t)), n)
    return t.cell_h * math.ceil(n / max(per_row, 1))


def dff_cols_width(t: Tech, n: int, height: float) -> float:
    """DFF.cpp, columns of ``height`` F: width (F) of ``n`` DFFs."""
    per_col = min(int(height / t.cell_h), n)
    return dff_width(t) * math.ceil(n / max(per_col, 1))


def adder_tree_bits(inputs: int, bits: int) -> int:
    """AdderTree.cpp CalculateArea: adder bits of one tree (each stage one bit wider)."""
    total, j = 0, inputs
    for _ in range(math.ceil(math.log2(inputs)) if inputs > 1 else 0):
        total += bits * (j // 2)
        bits, j = bits + 1, j // 2
    return total


def level_shifter_area(t: Tech) -> float:
    """LevelShifter.cpp CalculateArea with ``validated``: three stages (low, latch, high) of
    (N, P) multiples of the minimum device, widths x2, cell height x2.5, IO devices 2.5x wide,
    times the wiring factor alpha (F^2)."""
    n, p = MIN_N * 2, t.pn * MIN_N * 2
    low, h = gate_layout(t, "INV", 1, n * 15, p * 20, CELL_H * 2.5)
    latch = gate_width(t, "INV", 1, n * 32, p * 10, CELL_H * 2.5)
    high = gate_width(t, "INV", 1, n * 64, p * 82, CELL_H * 2.5)
    return h * (low + 2.5 * (2 * latch + high)) * LS_ALPHA


# ----------------------------------------------------------------------------- subarray

# Bounding-box bands, top to bottom, and the class each is charged to (SubArray.cpp
# CalculateArea, conventionalParallel): peripheral blocks across the columns are laid out at the
# array's width and stacked; NeuroSim charges the subarray as height x full width.
BAND_CLASS = {
    "sl_level_shifter": "level_shifter",
    "sl_switch_matrix": "dac",
    "precharger": "adc",  # SRAM: NeuroSim counts it in areaADC
    "write_driver": "dac",  # SRAM column write drivers, with the other drivers
    "array": "array",
    "mux": "dac",
    "sense_amp": "adc",
    "encoder": "adc",
    "shift_add_weight": "shift_add",
    "shift_add_input": "shift_add",
    "partial_sum": "accumulator",
}


@dataclass(frozen=True)
class SubarrayGeometry:
    """One subarray as NeuroSim lays it out (um): the array with its row-side column (WL/BL
    level shifters and the WL switch matrix, or the mux decoder when wider) and the stacked
    column-side bands. ``used_um2`` is the area of the blocks themselves; the bounding box
    ``area_um2`` is what NeuroSim charges (ProcessingUnitCalculateArea sums ``subArray->area``).
    """

    array_w: float
    array_h: float
    row_side_w: float
    level_shifter_cols_w: float
    bands: tuple[tuple[str, float], ...]
    level_shifters: int
    level_shifter_um2: float
    sense_amp_um2: float
    used_um2: float
    extra: dict = field(default_factory=dict)

    @property
    def width(self) -> float:
        """Macro width (um): row-side column plus array."""
        return self.row_side_w + self.array_w

    @property
    def height(self) -> float:
        """Macro height (um): sum of the bands."""
        return sum(h for _, h in self.bands)

    @property
    def area_um2(self) -> float:
        """Bounding box (um2)."""
        return self.width * self.height

    def band(self, name: str) -> float:
        """Height (um) of a band (0 when absent)."""
        return dict(self.bands).get(name, 0.0)

    def shares(self) -> dict[str, float]:
        """The bounding box split over classes (um2; sums exactly to ``area_um2``): each band is
        height x full width; in the array band the array itself is ``array``, the WL/BL level
        shifter columns ``level_shifter`` and the rest of the row-side column ``dac``."""
        out = dict.fromkeys(("array", "adc", "dac", "level_shifter", "shift_add"), 0.0)
        out["accumulator"] = 0.0
        for name, h in self.bands:
            if name == "array":
                out["array"] += h * self.array_w
                out["level_shifter"] += h * self.level_shifter_cols_w
                out["dac"] += h * (self.row_side_w - self.level_shifter_cols_w)
            else:
                out[BAND_CLASS[name]] += h * self.width
        return out


def cell_dims(arch) -> tuple[float, float]:
    """(height, width) of a cell in F (Param.cpp): 1T1R 4F tall and 12F wide; SRAM 10F x 28F at
    22 nm and above, the per-node FinFET cell below (16F x 34.43F at 7 nm). ``cell.area_f2``,
    when given, sets the width for that height."""
    if arch.cell.device == "sram":
        node = arch.technology.node_nm
        h, w = nearest_node(SRAM_CELL_F, node) if is_finfet(node) else SRAM_CELL_BULK_F
    else:
        h, w = DEFAULT_CELL_HEIGHT_F, DEFAULT_RRAM_AREA_F2 / DEFAULT_CELL_HEIGHT_F
    return h, (arch.cell.area_f2 / h if arch.cell.area_f2 else w)


def cell_resistances(arch) -> tuple[float, float, float]:
    """(R_on, R_off, R_access) of a 1T1R cell: access transistor at IR_DROP x R_on."""
    r_on = arch.cell.r_on_ohm or R_ON_DEFAULT
    return r_on, r_on * (arch.cell.on_off_ratio or ON_OFF_DEFAULT), IR_DROP * r_on


def rows_per_read(arch) -> int:
    """Rows read together (NeuroSim numRowParallel)."""
    return arch.array.rows_per_adc_read or arch.array.rows


def row_groups(arch) -> int:
    """NeuroSim numAdd: row groups per array read."""
    return math.ceil(arch.array.rows / rows_per_read(arch))


def n_adcs(arch) -> int:
    """ADCs per subarray (numCol / numColMuxed)."""
    return math.ceil(arch.array.cols / arch.adc.cols_per_adc)


def tg_width(t: Tech, res: float, ratio: float, linear: bool = True) -> tuple[float, float]:
    """SwitchMatrix.cpp / Mux.cpp Initialize: TG widths (F, at least 1F) for a target resistance
    ``res`` x ``ratio``; switch matrices size in the linear region, the analog mux does not."""
    k = LINEAR_REGION if linear else 1.0
    tg = res * ratio
    wn, wp = (t.r_on(1, nmos, 1.0) * k / (2 * tg) for nmos in (True, False))
    return max(wn, 1.0), max(wp, 1.0)


def _pass_gate_band(t: Tech, wn: float, wp: float, n_tg: int, width: float, pair: bool) -> float:
    """Mux.cpp / SwitchMatrix.cpp COL_MODE: height (F) of ``n_tg`` TGs (or TG pairs) in rows
    across ``width`` F, each folded as much as its share of the width allows."""
    min_cell = 2 * t.cpp * (2 if pair else 1)
    rows = math.ceil(n_tg / max(int(width / min_cell), 1))
    per_row = math.ceil(n_tg / rows)
    tg_w = width / per_row / (2 if pair else 1)
    return pass_gate_height(t, wn, wp, max(int(tg_w / t.cpp) - 1, 1)) * rows


def mux_decoder(t: Tech, cols_per_adc: int) -> tuple[float, float]:
    """RowDecoder.cpp (MUX mode): (height, width) in F. One row per output; predecode INV,
    NAND2, address wires on M3, NOR2, NAND2 and two output inverters sized by Param.cpp's
    sizingfactor_MUX (110 at 22 nm). Larger muxes keep this one-stage structure."""
    if cols_per_adc <= 1:
        return 0.0, 0.0
    bits = math.ceil(math.log2(cols_per_adc))
    size = SIZING_MUX.get(round(t.node_nm), 1)
    w_inv = gate_width(t, "INV", 1, *enlarge(t, MIN_N, t.pn * MIN_N))
    w_nand = gate_width(t, "NAND", 2, *enlarge(t, 2 * MIN_N, t.pn * MIN_N))
    w_nor = gate_width(t, "NOR", 2, *enlarge(t, MIN_N, 2 * t.pn * MIN_N))
    w_drv = gate_width(t, "INV", 1, 2 * MIN_N * size, t.pn * 2 * MIN_N * size)
    width = w_inv + w_nand + t.m3_pitch * 2 * bits + w_nor + w_nand + 2 * w_drv
    return 2**bits * t.cell_h, width


def encoder(t: Tech, levels: int, n_adc: int, width: float) -> float:
    """MultilevelSAEncoder.cpp CalculateArea: band height (F) of the thermometer-to-binary
    encoders (INV, NAND2 per level and one L/2-input NAND per output bit)."""
    w_inv = gate_width(t, "INV", 1, MIN_N, t.pn * MIN_N)
    w_nand = gate_width(t, "NAND", 2, 2 * MIN_N, 2 * t.pn * MIN_N)
    w_big = gate_width(t, "NAND", max(levels // 2, 1), 2 * MIN_N, 2 * t.pn * MIN_N)
    w_enc = w_inv + w_nand + w_big
    h_cell = t.cell_h
    h_enc = ((w_inv + w_nand) * h_cell * (levels - 1) + w_big * h_cell * math.log2(levels)) / w_enc
    return h_enc * math.ceil(n_adc / min(math.ceil(width / w_enc), n_adc))


def shift_add_band(t: Tech, units: int, bits: int, pulses: int, width: float) -> float:
    """ShiftAdd.cpp CalculateArea (non-spiking): adders of ``bits`` bits in rows across the
    width, one cell row, and (bits + pulses) DFFs per unit (F)."""
    adders = adder_bit_area(t) * bits * units / width
    return adders + t.cell_h + dff_rows_height(t, (bits + pulses) * units, width)


def subarray_geometry(arch) -> SubarrayGeometry:
    """The subarray of ``arch`` laid out as NeuroSim V1.4 does (SubArray.cpp Initialize and
    CalculateArea, conventionalParallel). Depends only on the spec, never on the workload."""
    t = tech(arch)
    rows, cols = arch.array.rows, arch.array.cols
    cell_h, cell_w = cell_dims(arch)
    h_a, w_a = rows * cell_h, cols * cell_w
    sram = arch.cell.device == "sram"
    levels = 2**arch.adc.bits
    nrp, n_add, n_adc = rows_per_read(arch), row_groups(arch), n_adcs(arch)
    r_on, r_off, r_acc = cell_resistances(arch)
    sm_ratio = SWITCH_RATIO.get(round(t.node_nm), 0.1)
    bands: list[tuple[str, float]] = []
    ls_f2 = level_shifter_area(t)
    n_ls, ls_cols = 0, 0.0
    if sram:
        # Precharger.cpp / SRAMWriteDriver.cpp: three standard-cell rows each across the array.
        bands += [("precharger", 3 * t.cell_h), ("write_driver", 3 * t.cell_h)]
        # SwitchMatrix ROW_MODE driven against the word-line (Metal1) wire resistance.
        res_row = w_a * t.f_m * t.row_res_per_m
        wn, wp = tg_width(t, res_row, sm_ratio)
        per_col = math.ceil(rows / math.ceil(rows / max(int(h_a / t.cell_h), 1)))
        ncol = math.ceil(rows / per_col)
        wl_sm = 2 * gate_width(t, "INV", 1, wn, wp, h_a / per_col) * ncol
        wl_sm += dff_cols_width(t, rows, h_a)
        res_mux = t.r_on(1) / max(nrp // 2, 1)  # access NMOS, half the rows on
    else:
        if (arch.cell.write_voltage_v or 0.0) > LEVEL_SHIFTER_VOLTAGE:
            # WL and BL shifters per row in columns beside the array, SL shifters in a band.
            n_ls = 2 * rows + cols
            ls_cols = 2 * rows * ls_f2 / h_a
            bands.append(("sl_level_shifter", cols * ls_f2 / w_a))
        r_avg = 2 / (1 / (r_on + r_acc) + 1 / (r_off + r_acc))
        wn, wp = tg_width(t, r_avg / nrp * rows, sm_ratio)
        sl_sm = _pass_gate_band(t, wn, wp, cols, w_a, True) + dff_rows_height(t, cols, w_a)
        bands.append(("sl_switch_matrix", sl_sm))
        # NewSwitchMatrix.cpp: WL TGs of 2F x newswitchmatrixsizeratio plus a DFF scan chain.
        size = MIN_N * NEW_SWITCH_RATIO.get(round(t.node_nm), 6)
        ncol = math.ceil(rows / max(int(h_a / t.cell_h), 1))
        tg_h = h_a / math.ceil(rows / ncol)
        wl_sm = gate_width(t, "INV", 1, size, t.pn * size, tg_h) * 4 * ncol
        wl_sm += dff_cols_width(t, rows, h_a)
        res_mux = r_avg / nrp
    bands.append(("array", h_a))
    dec_h, dec_w = mux_decoder(t, arch.adc.cols_per_adc)
    if arch.adc.cols_per_adc > 1:
        wn, wp = tg_width(t, res_mux, IR_DROP, linear=False)
        bands.append(("mux", max(dec_h, _pass_gate_band(t, wn, wp, cols, w_a, False))))
    # MultilevelSenseAmp.cpp: 9 minimum NMOS per comparator level plus the shared dummy
    # (reference) columns, whose height uses NeuroSim's wire width (40 nm at 22 nm).
    a_min_n = gate_width(t, "INV", 1, MIN_N, 0) * t.cell_h
    wire_f = t.wire_nm / t.node_nm
    dummy = rows * cell_h * wire_f * cell_w * (1.0 if sram else wire_f)
    mlsa = (9 * a_min_n * (levels - 1) + dummy * (levels - 1) / levels) * n_adc
    bands += [("sense_amp", mlsa / w_a), ("encoder", encoder(t, levels, n_adc, w_a))]
    lb = arch.adc.bits
    extra_bits = math.ceil(math.log2(n_add)) if n_add > 1 else 0
    w_bits = lb + (extra_bits if sram else 0)  # SRAM shift-adds also carry the row-group sum
    slices, cycles = arch.weight_slices, arch.input_cycles
    if slices > 1:
        bands.append(("shift_add_weight", shift_add_band(t, n_adc, w_bits, slices, w_a)))
    if cycles > 1:
        bands.append(("shift_add_input", shift_add_band(t, n_adc, w_bits + slices, cycles, w_a)))
    if n_add > 1:
        ab = lb + extra_bits
        psum = adder_bit_area(t) * (ab - 1) * n_adc / w_a + dff_rows_height(t, ab * n_adc, w_a)
        bands.append(("partial_sum", psum))
    row_side = max(ls_cols + wl_sm, dec_w)
    f2 = t.f_um**2
    used = sum(h for n, h in bands if n != "array") * w_a + h_a * (w_a + ls_cols + wl_sm)
    used += dec_h * dec_w
    return SubarrayGeometry(
        array_w=w_a * t.f_um,
        array_h=h_a * t.f_um,
        row_side_w=row_side * t.f_um,
        level_shifter_cols_w=ls_cols * t.f_um,
        bands=tuple((n, h * t.f_um) for n, h in bands),
        level_shifters=n_ls,
        level_shifter_um2=ls_f2 * t.f_um**2 if n_ls else 0.0,
        sense_amp_um2=mlsa * f2,
        used_um2=used * f2,
        extra={"wl_switch_w": wl_sm * t.f_um, "mux_decoder": (dec_h * t.f_um, dec_w * t.f_um)},
    )


# ----------------------------------------------------------------------------- wires

LOCAL_DELAY_TOLERANCE = 0.1  # Param.cpp local/globalBusDelayTolerance
HTREE_FOLD = 16  # Tile.cpp: hTree CalculateArea(..., 16) is hard-coded for PE-to-PE trees
BUS_FOLD = 4  # Param.cpp treeFoldedRatio, used by the chip X-Y bus


@dataclass(frozen=True)
class Repeater:
    """A bus repeater: layout width/height (F), input/output capacitance (F), spacing (m)."""

    w: float
    h: float
    c_in: float
    c_out: float
    spacing: float


def repeater(t: Tech) -> Repeater:
    """HTree.cpp Initialize: the delay-optimal repeater size and spacing for the wire, then
    halved (spacing x 0.9) while the delay stays within (1 + tolerance) x optimum."""
    r_w, c_w = t.wire_res_per_m, C_WIRE_PER_M

    def r_on(size: float) -> float:
        return (t.r_on(MIN_N * size) + t.r_on(t.pn * MIN_N * size, False)) / 2

    def caps(size: float) -> tuple[float, float]:
        return inv_caps(t, MIN_N * size, t.pn * MIN_N * size)

    def delay(size: float, dist: float) -> float:
        ci, co = caps(size)
        wire = 0.54 * r_w * dist * c_w * dist + r_w * dist * ci
        return 0.7 * (r_on(size) * (ci + co + c_w * dist) + wire) / dist

    ci1, co1 = caps(1)
    size = math.floor(math.sqrt(r_on(1) * c_w / ci1 / r_w))
    dist = math.sqrt(2 * r_on(1) * (co1 + ci1) / (r_w * c_w))
    target, d = delay(size, dist) * (1 + LOCAL_DELAY_TOLERANCE), 0.0
    while d < target and size > 1:
        size, dist = size / 2, dist * 0.9
        d = delay(size, dist)
    size = max(1.0, size)
    ci, co = caps(size)
    w_rep, h_rep = gate_layout(t, "INV", 1, MIN_N * size, t.pn * MIN_N * size)
    return Repeater(w_rep, h_rep, ci, co, dist)


def htree(per_side: int, unit_h: float, unit_w: float) -> tuple[list[float], float, float]:
    """HTree.cpp geometry for a ``per_side`` x ``per_side`` grid of units (rounded up to 2^k):
    the halving stage lengths (um, vertical and horizontal alternately, as CalculateArea walks
    them), the main bus length and the grid side."""
    k = math.ceil(math.log2(per_side)) if per_side > 1 else 0
    side = 2**k
    v, h = unit_h * side / 2, unit_w * side / 2
    stages = []
    for _ in range(k):
        v, h = v / 2, h / 2
        stages += [v, h]
    center = side / 2
    if side - center < 1:  # over-routing constraint: keep the source inside the grid
        center -= 1
    return stages, max(min(side - center, center), 0.0) * unit_w, side


def htree_area(t: Tech, per_side: int, unit_h: float, unit_w: float, bus_bits: float) -> float:
    """HTree.cpp CalculateArea (um2): every stage but the last (it overlaps the units) carries
    the whole bus as folded repeater columns, plus the main bus from the source."""
    rep = repeater(t)
    stages, main, _ = htree(per_side, unit_h, unit_w)
    area, wid_v, wid_h = 0.0, 0.0, 0.0
    for i in range(0, max(len(stages) - 2, 0), 2):
        wid_v += bus_bits * rep.w * t.f_um / HTREE_FOLD
        wid_h += bus_bits * rep.h * t.f_um / HTREE_FOLD
        area += wid_v * stages[i] / 2 + wid_h * stages[i + 1] / 2
    return area + bus_bits * rep.h * t.f_um / HTREE_FOLD * main


def xy_bus_area(t: Tech, tiles_per_side: float, unit_h: float, unit_w: float, bits: float) -> float:
    """XYBus.cpp CalculateArea (um2): a vertical bus across the tile rows and a horizontal one
    across the tile columns, of folded repeaters (treeFoldedRatio = 4)."""
    rep = repeater(t)
    return bits / BUS_FOLD * t.f_um * tiles_per_side * (rep.w * unit_h + rep.h * unit_w)
