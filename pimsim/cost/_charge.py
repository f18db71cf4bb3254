"""Charge-domain compute array: cells whose product charges a compute capacitor.

Charge-domain SRAM macros multiply in the bit cell and add by charge sharing: the product of an
input and a stored weight drives one plate of a capacitor (a MOM capacitor over the cell, a
binary-weighted capacitor at the column, a C-2C ladder per multi-bit weight), and the
capacitors of a column share their charge before one conversion. The capacitors, not the
bit-line wire that ``sram_cell`` charges, then set the array's energy. This model charges both.

Energy per cell read (the ``array`` action, one cell in one input cycle):

    E = SWITCHING_FACTOR x C_compute x V^2  +  C_wire x V_dd^2

* ``C_compute`` = ``cell.capacitance_ff``, the compute capacitance one cell read switches: the
  cell's own capacitor(s), its share of capacitors the cells of a column share (their
  capacitance / ``array.rows_per_adc_read``), or for a capacitor network whose internal nodes
  float (a C-2C ladder) the network's input capacitance (:func:`c2c_input_capacitance`).
* ``V`` = ``cell.read_voltage_v`` (the swing on the driven plate), else ``technology.vdd_v``.
* the wire term is ``sram_cell``'s unchanged (``WIRE_CAP_FF_PER_CELL_32NM`` scaled by node, at
  V_dd, switched on every read), so a zero ``capacitance_ff`` costs exactly what ``sram_cell``
  costs.

Switching factor 1/2, derived. ``pimsim.evaluate`` scales the count of cell reads by
``activity``, the fraction of input bits that are 1, so the energy per read is the energy of a
read whose input bit is 1. In that read the capacitor's driven plate goes to V when the product
(then the stored weight bit) is 1 and stays at 0 otherwise; every cycle starts from a reset.
Charging C from 0 to V through a switch draws Q = C V from the supply, i.e. E = Q V = C V^2:
half is lost in the switch, half is stored, and the stored half is lost in the charge sharing
and the reset (none returns to the supply). With uniformly distributed weight bits (pimsim
keeps no weight statistics) the product is 1 on half the reads: 1/2 C V^2 per read. This holds
when the shared node is held while the plates are driven (charge, then share). Where it floats
(charge redistribution straight onto the column), k driven capacitors of N draw C V (1 - k/N)
each, so the factor is an upper bound, high by up to 2x (1/4 at k = N/2).

Area: ``cell.area_f2`` as ``sram_cell`` (default 280 F^2): in the macros this model is built
for, the capacitor is a metal (MOM) capacitor stacked over the cell, so it adds no footprint;
a capacitor beside the cell belongs in ``cell.area_f2``.
"""

from __future__ import annotations

import itertools

import numpy as np

from pimsim.cost._components import (
    ISAAC_NODE_NM,
    WIRE_CAP_FF_PER_CELL_32NM,
    _array_rate,
    _cell_area_um2,
    node_energy,
)
from pimsim.cost._registry import ComponentEstimate, register
from pimsim.errors import SpecError

SWITCHING_FACTOR = 0.5
"""Expected fraction of C V^2 drawn per read with the input bit at 1 (module docstring)."""


def charge_energy_pj(capacitance_ff: float, voltage_v: float) -> float:
    """Expected supply energy (pJ) of one read of a compute capacitor ``capacitance_ff`` (fF)
    driven to ``voltage_v`` (V) when its product is 1: SWITCHING_FACTOR x C V^2."""
    return SWITCHING_FACTOR * capacitance_ff * 1e-15 * voltage_v**2 * 1e12


@register("array", "charge")
def array_charge(arch, array) -> ComponentEstimate:
    """Charge-domain compute cell: SWITCHING_FACTOR x ``cell.capacitance_ff`` x V^2 (V =
    ``cell.read_voltage_v`` or ``technology.vdd_v``) plus ``sram_cell``'s bit-line wire charge
    per cell read; area from ``cell.area_f2`` (default 280 F^2, capacitor stacked over the
    cell). Derivation and caveats: :mod:`pimsim.cost._charge`."""
    cell, tech = arch.cell, arch.technology
    if cell.capacitance_ff is None:
        raise SpecError(
            "array.model 'charge' needs cell.capacitance_ff, the compute capacitance one cell "
            "read switches (fF; 0 for the bit-line wire alone, as sram_cell)",
            field="cell.capacitance_ff",
        )
    v = cell.read_voltage_v or tech.vdd_v
    wire_ff = WIRE_CAP_FF_PER_CELL_32NM * node_energy(tech.node_nm, ISAAC_NODE_NM)
    energy = charge_energy_pj(cell.capacitance_ff, v) + wire_ff * 1e-15 * tech.vdd_v**2 * 1e12
    area = array.rows * array.cols * _cell_area_um2(arch, 280.0)
    return ComponentEstimate(energy, area, _array_rate(arch))


def c2c_input_capacitance(bits: int) -> float:
    """Input capacitance of a ``bits``-stage C-2C ladder multiplier, in unit capacitors C.

    The ladder (as Wang et al., JSSC 2023, build it; topology as CiMLoop's
    ``c2c_multiplier.yaml`` draws it): node i has a shunt C whose bottom plate weight bit i
    connects to the analog input A (bit 1) or to ground (bit 0), a series 2C to each
    neighbouring node, a C to ground at the LSB end, and the MSB node is the output. From a
    reset (every node at 0) A steps to V; charge conservation at the floating nodes gives their
    voltages v_i (a tridiagonal solve), and A supplies Q = C sum_i b_i (V - v_i), E = Q V.
    Averaged over uniform weight codes, E = SWITCHING_FACTOR x C_in x V^2 defines the returned
    C_in / C, so ``charge`` costs a ladder cell as one capacitor of this size. For 8 bits it is
    2.89: far below the 8 switched capacitors (the floating nodes redistribute charge rather
    than draw it), and an upper bound where the ladder is not reset between inputs."""
    n = bits
    # node equations in units of C: shunt 1, series 2 to each neighbour, 1 to ground at node 0
    # (the output node n - 1 floats)
    series = 2.0 * (np.eye(n, k=1) + np.eye(n, k=-1))
    base = np.diag(1.0 + series.sum(axis=1)) - series
    base[0, 0] += 1.0
    total = 0.0
    for code in itertools.product((0.0, 1.0), repeat=n):
        b = np.array(code)
        v = np.linalg.solve(base, b)  # V = 1
        total += float(b @ (1.0 - v))
    return total / 2**n / SWITCHING_FACTOR
