"""ADC models: energy per conversion, area and conversion rate by circuit type.

``survey`` (the default) follows the figure-of-merit envelopes of the ADC performance survey
(B. Murmann, "ADC Performance Survey 1997-2023", ISSCC and VLSI papers), in the two forms that
survey plots:

* Walden: E = FOM_W x 2^ENOB per conversion (energy per conversion step). It sets the energy of
  low and medium resolution converters.
* Schreier: FOM_S = SNDR + 10 log10(f_s / 2 / P), i.e. E = P / f_s = 10^((SNDR - FOM_S) / 10) / 2,
  with SNDR = 6.02 ENOB + 1.76 dB. Thermal noise (kT/C) sets this floor; it takes over above
  about 13 bits.

A converter is taken at its nominal resolution (ENOB = bits: in-memory-computing papers quote the
bits of their ADCs, not measured ENOB). Energy is the larger of the two terms.

**Sample rate.** Below a corner rate the survey's envelope is flat in f_s; above it energy per
conversion rises in proportion to f_s (the circuits are pushed past their efficient speed). The
corner follows from the comparator's decision rate, F_CMP_HZ at REF_NODE_NM (scaled as 1 / node,
as transistor speed does): a SAR makes bits + 1 comparator cycles per conversion (sampling and one
per bit), a flash one, so their corners are F_CMP / (bits + 1) and F_CMP. A ramp (single-slope)
or integrating (time-domain) converter counts 2^bits clock steps, so it is slow by construction:
its conversion rate defaults to clock / 2^bits and its energy does not rise with rate.

**Constants** (a documented calibration; the test module checks them against the published
converters below):

* FOM_W_FJ = 3 fJ per step at 28 nm, scaled with node like every other energy in pimsim
  (node / 28), and F_CMP_HZ together: published SAR ADCs of good, not record, efficiency
  spend 0.77-1.19x the model's energy per conversion: Liu et al., JSSC 2010 (10 b, 50 MS/s,
  0.13 um, 826 uW); Harpe et al., JSSC 2011 (8 b, 10 MS/s, 90 nm, 26 uW); Kull et al., JSSC
  2013 (8 b, 1.2 GS/s, 32 nm SOI, 3.1 mW); ISAAC's ADC (ISCA 2016 Table I: 8 b, 1.2 GS/s,
  32 nm, 2 mW). The survey's very best designs reach about 1 fJ per step; typical published
  ones spend 3-100x the model's energy.
* FOM_S_DB = 180 dB: the survey's Schreier envelope for Nyquist converters sits at 180-186 dB
  at low bandwidth.
* F_CMP_HZ = 5 GHz at 28 nm: a dynamic comparator decision rate; with it an 8-bit SAR's corner
  is 560 MS/s, where the survey's single-channel SARs of 28-40 nm start to lose efficiency.

**Types.** ``sar``, ``pipeline``: the survey energy. ``flash`` (and a multi-bit ``sense_amp``,
DNN+NeuroSim's multilevel sense amplifier being a flash of current comparators): 2^bits - 1
comparators decide at once, each costing the survey's 1-bit energy. A 1-bit ``sense_amp`` is one
comparator. ``ramp`` and ``integrating``: one comparator decision per count step, 2^bits of them
(the Walden step is literally one ramp level), plus the conversion-rate limit above.

**Area** (um2 at 32 nm, scaled with node squared): SAR and pipeline: A = p bits + q 4^bits, the
least-squares fit (relative error) to the ISAAC-style bits table of DESIGN.md's reference numbers
(residuals within 19% over 4-10 bits); its 1-bit value, p + 4 q = 104 um2, is one comparator with
its latch. Flash and multi-bit sense amps: 2^bits - 1 comparators. Ramp and integrating: one
comparator and a bits-wide counter/latch of COUNTER_BIT_UM2 per bit (a 1-bit adder and register:
twice the per-bit area of Horowitz's 8-bit adder, ISSCC 2014, 36 um2 at 45 nm).
"""

from __future__ import annotations

import math

from pimsim.cost._components import _explicit
from pimsim.cost._registry import ComponentEstimate, register
from pimsim.errors import SpecError

REF_NODE_NM = 28.0
FOM_W_FJ = 3.0  # fJ per conversion step at REF_NODE_NM (see the module docstring)
FOM_S_DB = 180.0  # Schreier figure of merit (dB)
F_CMP_HZ = 5e9  # comparator decisions per second at REF_NODE_NM

# DESIGN.md reference numbers: ADC energy (pJ/conversion) and area (um2) vs bits at 32 nm,
# 1.2 GS/s (ISAAC-style scaling; 8 b: 16 mW / 8 ADCs / 1.2 GS/s = 1.67 pJ).
ISAAC_ADC_TABLE = {
    4: (0.79, 361),
    5: (0.99, 477),
    6: (1.20, 627),
    7: (1.42, 845),
    8: (1.67, 1200),
    9: (1.97, 1828),
    10: (2.38, 3002),
}
ISAAC_NODE_NM = 32.0

# A = p b + q 4^b (um2 at 32 nm): least-squares fit (relative error) to ISAAC_ADC_TABLE's areas.
SAR_AREA = (103.478054, 2.18338015e-03)
COUNTER_BIT_UM2_45 = 2 * 36.0 / 8  # Horowitz ISSCC 2014: 8-bit adder 36 um2 at 45 nm, x2 with DFF

ADC_TYPES = ("sar", "pipeline", "flash", "sense_amp", "ramp", "integrating")
COUNTING = ("ramp", "integrating")


def _energy_scale(node_nm: float, ref_nm: float = REF_NODE_NM) -> float:
    return node_nm / ref_nm


def _area_scale(node_nm: float, ref_nm: float = ISAAC_NODE_NM) -> float:
    return (node_nm / ref_nm) ** 2


def walden_pj(bits: float, node_nm: float) -> float:
    """Walden term FOM_W x 2^bits at ``node_nm`` (pJ)."""
    return FOM_W_FJ * 1e-3 * 2.0**bits * _energy_scale(node_nm)


def schreier_pj(bits: float) -> float:
    """Schreier (thermal-noise) floor P / f_s at FOM_S_DB (pJ); node-independent."""
    sndr = 6.02 * bits + 1.76
    return 0.5 * 10 ** ((sndr - FOM_S_DB) / 10) * 1e12


def corner_hz(adc_type: str, bits: int, node_nm: float) -> float:
    """Sample rate above which energy per conversion grows with rate (Hz); inf for counting
    converters, which are rate-limited instead."""
    f_cmp = F_CMP_HZ * REF_NODE_NM / node_nm
    if adc_type in COUNTING:
        return math.inf
    if adc_type in ("flash", "sense_amp"):
        return f_cmp
    return f_cmp / (bits + 1)


def conversion_energy_pj(adc_type: str, bits: int, node_nm: float, rate_hz: float) -> float:
    """Energy of one conversion (pJ) of a ``bits``-bit ``adc_type`` converter at ``node_nm``
    run at ``rate_hz`` conversions per second (module docstring)."""
    if adc_type not in ADC_TYPES:
        raise SpecError(f"unknown ADC type {adc_type!r}; known: {', '.join(ADC_TYPES)}",
                        field="adc.type")
    decision = walden_pj(1, node_nm)  # one comparator decision
    if adc_type in ("flash", "sense_amp"):
        base = (2**bits - 1) * decision
    elif adc_type in COUNTING:
        base = 2**bits * walden_pj(0, node_nm) + decision
    else:
        base = max(walden_pj(bits, node_nm), schreier_pj(bits))
    return base * max(1.0, rate_hz / corner_hz(adc_type, bits, node_nm))


def comparator_area_um2(node_nm: float) -> float:
    """One comparator with its latch: the SAR area fit at 1 bit (um2)."""
    p, q = SAR_AREA
    return (p + 4 * q) * _area_scale(node_nm)


def adc_area_um2(adc_type: str, bits: int, node_nm: float) -> float:
    """Area of one converter (um2; module docstring)."""
    if adc_type in ("flash", "sense_amp"):
        return (2**bits - 1) * comparator_area_um2(node_nm)
    if adc_type in COUNTING:
        per_bit = COUNTER_BIT_UM2_45 * _area_scale(node_nm, 45.0)
        return comparator_area_um2(node_nm) + bits * per_bit
    p, q = SAR_AREA
    return (p * bits + q * 4.0**bits) * _area_scale(node_nm)


def adc_rate_hz(arch, adc) -> float:
    """Conversions per second of one ADC: ``adc.sample_rate_hz``, else one per clock, except a
    counting (ramp / integrating) converter: clock / 2^bits."""
    if adc.sample_rate_hz:
        return adc.sample_rate_hz
    if adc.type in COUNTING:
        return arch.technology.clock_hz / 2**adc.bits
    return arch.technology.clock_hz


def _explicit_or_model(arch, adc, energy, area, rate, accuracy) -> ComponentEstimate:
    """The model's estimate, or explicit published values rescaled by the model's ratio between
    the spec's parameters and the reference's; a value the spec leaves out (e.g. area when only
    an energy is published) comes from the model."""
    node = arch.technology.node_nm
    e_spec, a_spec = energy(adc.bits, node), area(adc.bits, node)
    if not adc.has_explicit:
        return ComponentEstimate(e_spec, a_spec, rate, adc.leakage_mw or 0.0, accuracy)
    ref = adc.reference
    ref_bits, ref_node = ref.bits or adc.bits, ref.node_nm or node
    e_pub = adc.energy_pj
    if e_pub is None and adc.power_mw is not None:
        e_pub = adc.power_mw / ((ref.sample_rate_hz or rate) * 1e-9)
    e = e_spec if e_pub is None else e_pub * e_spec / energy(ref_bits, ref_node)
    a = a_spec if adc.area_um2 is None else adc.area_um2 * a_spec / area(ref_bits, ref_node)
    return ComponentEstimate(e, a, rate, adc.leakage_mw or 0.0, "published")


@register("adc", "fixed")
def adc_fixed(arch, adc) -> ComponentEstimate:
    """Published values only (tied to the parameters in ``adc.reference``), at the ADC's
    conversion rate (:func:`adc_rate_hz`)."""
    return _explicit(arch, adc, rate=adc_rate_hz(arch, adc))


@register("adc", "survey")
def adc_survey(arch, adc) -> ComponentEstimate:
    """Survey-envelope model by type, bits, sample rate and node (module docstring)."""
    rate = adc_rate_hz(arch, adc)

    def energy(bits, node):
        return conversion_energy_pj(adc.type, bits, node, rate)

    def area(bits, node):
        return adc_area_um2(adc.type, bits, node)

    return _explicit_or_model(arch, adc, energy, area, rate, "fitted")


def _isaac_table(bits: int, column: int) -> float:
    if bits not in ISAAC_ADC_TABLE:
        raise SpecError(
            f"adc.bits = {bits}: the isaac_scaling ADC model covers "
            f"{min(ISAAC_ADC_TABLE)}..{max(ISAAC_ADC_TABLE)} bits; use adc.model: "
            "survey for other resolutions",
            field="adc.bits",
        )
    return ISAAC_ADC_TABLE[bits][column]


@register("adc", "isaac_scaling")
def adc_isaac_scaling(arch, adc) -> ComponentEstimate:
    """DESIGN.md's ISAAC-style bits table at 32 nm (4..10 bits), scaled by node (energy linear,
    area squared); rate-independent up to the table's 1.2 GS/s."""

    def energy(bits, node):
        return _isaac_table(bits, 0) * _energy_scale(node, ISAAC_NODE_NM)

    def area(bits, node):
        return _isaac_table(bits, 1) * _area_scale(node)

    return _explicit_or_model(arch, adc, energy, area, adc_rate_hz(arch, adc), "fitted")
