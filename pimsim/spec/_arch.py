"""The accelerator spec (``kind: arch``): every knob of DESIGN.md's primer and Conventions.

Field docstrings become the JSON Schema descriptions printed by ``pimsim schema arch``. Preset
resolution (``decomposition.scheme``) happens before validation, so a loaded spec always carries
the resolved ``dac.bits``, ``cell.bits`` and ``decomposition.signed_encoding``; cross-field rules
run after it and name the field at fault.
"""

from __future__ import annotations

import copy
import math
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PrivateAttr, model_validator

from pimsim.spec._fields import (
    AREA_ONLY_CLASSES,
    ComponentSpec,
    ExplicitValues,
    Fraction,
    NonNegFloat,
    PositiveFloat,
    PositiveInt,
    SpecModel,
)

#: Component models the cost model implements, per component; ``fixed`` = explicit values only.
ADC_MODELS = ("fixed", "isaac_scaling", "survey", "neurosim", "unit")
DAC_MODELS = ("fixed", "drive", "neurosim", "unit")
ARRAY_MODELS = ("fixed", "conductance", "sram_cell", "charge", "neurosim", "unit")
COMPONENT_MODELS = (
    "fixed",
    "shift_add",
    "adder_tree",
    "relu",
    "max_pool",
    "register_file",
    "sram_buffer",
    "bus",
    "htree",
    "router",
    "level_shifter",
    "neurosim",
    "unit",
    "digital_mac",
)

#: Spec fields that can change what the accuracy oracle computes (field paths; a path covers the
#: fields under it). Every other field (technology, component models and sizes, buffers, the
#: clock, duplication, chip size) changes only cost, so a sweep over it never re-runs the oracle
#: (:func:`oracle_fields`). ``pimsim/oracle`` reads the arch only through these fields and the
#: mapping's row/column tiling, which they determine; ``tests/test_explore.py`` holds the oracle's
#: output fixed while every other field changes.
ORACLE_FIELDS = (
    "cell.bits",
    "cell.on_off_ratio",
    "cell.variation",
    "array.rows",
    "array.cols",
    "array.rows_per_adc_read",
    "adc.bits",
    "adc.range",
    "adc.range_percentile",
    "adc.range_granularity",
    "adc.nonideal",
    "dac.bits",
    "decomposition",
    "mapping.pack_groups",
    "mapping.kernel_rows",
    "mapping.activation_matmul",
    "cell.update",
    "training",
)

#: Technology nodes (nm) the cost models accept, and the range they are calibrated over (the
#: DNN+NeuroSim technology tables span 7-130 nm; the ADC survey and ISAAC/Horowitz references sit
#: inside it). Outside the calibrated range a report notes the extrapolation.
NODE_RANGE_NM = (1.0, 1000.0)
CALIBRATED_NODES_NM = (7.0, 130.0)

SCHEMES = ("native", "differential", "bit_serial")
ENCODINGS = ("offset", "twos_complement", "differential_analog", "differential_digital")
DIFFERENTIAL = ENCODINGS[2:]  # a weight's two polarities in two cells


Components = Annotated[
    tuple[ComponentSpec, ...], BeforeValidator(lambda v: tuple(v) if isinstance(v, list) else v)
]
"""An immutable list of components (YAML lists are accepted)."""


class FieldProblem(ValueError):
    """A cross-field rule failed; ``path`` is the field at fault (a tuple of keys)."""

    def __init__(self, path: tuple, message: str) -> None:
        self.path = path
        super().__init__(message)


class TechnologySpec(SpecModel):
    """Process technology and clock."""

    node_nm: PositiveFloat
    """Technology node (nm); component models scale with it."""
    vdd_v: float = Field(default=1.0, ge=0.1, le=5.0)
    """Digital supply voltage (V), 0.1-5 V (the models divide by drive currents that vanish near
    0 V). Default 1.0 V, a typical nominal supply at 22-45 nm."""
    clock_hz: PositiveFloat
    """Digital clock frequency (Hz)."""
    clocking: Literal["fixed", "synchronous"] = "fixed"
    """``fixed``: buffers, interconnect and digital units run at ``clock_hz``. ``synchronous``:
    one clock for the whole chip whose period is the longer of 1 / ``clock_hz`` and one ADC
    conversion (DNN+NeuroSim V1.4 Param.cpp ``synchronous = true``: the clock is set by the
    sensing delay and capped by ``clkFreq``)."""


class VariationSpec(SpecModel):
    """Device non-idealities (used by the accuracy oracle). All default to ideal."""

    between_chip: NonNegFloat = 0.0
    """Sigma of the lognormal conductance factor shared by all devices of one chip."""
    within_chip: NonNegFloat = 0.0
    """Sigma of the lognormal conductance factor drawn per device."""
    read_noise: NonNegFloat = 0.0
    """Cycle-to-cycle read noise: sigma relative to each cell's conductance, per read."""
    stuck_at_on: Fraction = 0.0
    """Fraction of cells stuck at the on (maximum) conductance."""
    stuck_at_off: Fraction = 0.0
    """Fraction of cells stuck at the off (minimum) conductance."""
    drift_nu: NonNegFloat = 0.0
    """Drift exponent nu of G(t) = G(t0) (t / t0)^-nu (PCM-style power law); 0 = no drift."""
    drift_t0_s: PositiveFloat = 1.0
    """Reference time t0 of the drift law (s after programming)."""
    drift_time_s: NonNegFloat = 0.0
    """Time after programming at which inference runs (s); drift applies when > t0."""
    off_current: bool = False
    """Accuracy oracle: let the off-state conductance of a finite ``cell.on_off_ratio`` add to
    every column sum (no reference column subtracts it). Off by default: designs with a reference
    column (as NeuroSim's) cancel it."""


class UpdateSpec(SpecModel):
    """How a device responds to programming pulses during on-chip training (``pimsim train
    --rule``); used by the device update models of :mod:`pimsim.training`. Defaults: an ideal
    linear device on the weight grid.

    A device moves between its lowest and highest state in ``levels - 1`` nominal pulses. With
    non-linearity nu, a potentiating pulse from state g (in [0, 1]) lands at
    g' = B - (B - g) exp(-nu / P), with P = levels - 1 and B = 1 / (1 - exp(-nu)) (the
    saturating exponential of NeuroSim+'s device model, Chen et al., IEEE TCAD 2018, written
    with nu = P / A); depressing pulses mirror it from the top with ``nonlinearity_ltd``."""

    levels: int | None = Field(default=None, ge=2)
    """Conductance states a device steps through (pulses from lowest to highest + 1). Default:
    the weight grid, 2^weight_bits - 1 levels (one pulse = one weight LSB)."""
    nonlinearity_ltp: NonNegFloat = 0.0
    """Non-linearity nu of potentiation (0 = linear; NeuroSim's Ag:a-Si device ~2.4)."""
    nonlinearity_ltd: NonNegFloat = 0.0
    """Non-linearity nu of depression (0 = linear); different from LTP = asymmetric."""
    c2c_noise: NonNegFloat = 0.0
    """Cycle-to-cycle write noise: sigma of each pulse's step relative to the nominal step."""


class CellSpec(SpecModel):
    """The memory cell that stores weight slices."""

    device: Literal["rram", "pcm", "sram", "fefet", "mram", "flash", "ecram"]
    """Device technology."""
    bits: PositiveInt | None = Field(default=None, le=8)
    """Bits stored per cell. Default: from ``decomposition.scheme``."""
    r_on_ohm: PositiveFloat | None = None
    """On-state (low) resistance (ohm)."""
    on_off_ratio: float | None = Field(default=None, gt=1)
    """G_on / G_off. None: an ideal (infinite) ratio for the oracle."""
    read_voltage_v: PositiveFloat | None = None
    """Read voltage across a cell (V)."""
    capacitance_ff: NonNegFloat | None = None
    """Compute capacitance one cell read switches (fF), for ``array.model: charge``: the cell's
    own compute capacitor(s) (e.g. a MOM capacitor over a charge-domain bit cell), its share of
    capacitors the cells of a column share (their capacitance / ``array.rows_per_adc_read``), or
    a capacitor ladder's input capacitance (``pimsim.cost._charge.c2c_input_capacitance``). A
    design parameter: cite the paper. Default None (no compute capacitor; ``charge`` refuses
    it, other array models ignore it)."""
    write_voltage_v: PositiveFloat | None = None
    """Programming voltage (V); above vdd it needs level shifters."""
    write_energy_pj: NonNegFloat | None = None
    """Energy of one programming pulse on one cell (pJ)."""
    write_latency_ns: PositiveFloat | None = None
    """Duration of one programming pulse (ns)."""
    write_pulses: PositiveInt = 1
    """Pulses per cell to program one level (write-verify)."""
    area_f2: PositiveFloat | None = None
    """Cell area in F^2 (F = node); e.g. 1T1R RRAM 4F x 12F = 48."""
    variation: VariationSpec = VariationSpec()
    """Device variation, noise, faults and drift."""
    update: UpdateSpec = UpdateSpec()
    """Response to programming pulses (on-chip training)."""


class ArraySpec(ExplicitValues):
    """A crossbar array and how many of its rows one ADC conversion reads."""

    model: str = "conductance"
    """Array model: ``conductance`` (energy from conductances, read voltage and read time),
    ``sram_cell`` (bit-line wire charge), ``charge`` (a charge-domain cell: its compute
    capacitor ``cell.capacitance_ff`` plus the wire), ``neurosim`` or ``fixed`` (explicit
    values)."""
    rows: PositiveInt
    """Rows (word lines), i.e. inputs per array."""
    cols: PositiveInt
    """Columns (bit lines), i.e. physical output columns per array."""
    rows_per_adc_read: PositiveInt | None = None
    """Rows activated together for one conversion. Default: all rows."""
    read_all_row_groups: bool = False
    """Whether an array read converts every row group of the array, ceil(rows /
    rows_per_adc_read), whether or not its rows hold weights (DNN+NeuroSim V1.4 does:
    SubArray.cpp charges numAdd = numRowSubArray / numRowParallel sensing cycles and
    conversions per input bit for any mapped subarray). False: only the groups with weight rows
    are read (a 27-row layer on 128-row arrays, 32 rows per read: 1 of 4). Cost only: a group
    without weights adds a zero partial sum, so the oracle and the reported ``adc_conversions``
    (the conversions that carry data) are unchanged; the step time counts every group and the
    empty groups' conversions are charged at the ADC model's no-current energy."""
    read_time_ns: PositiveFloat | None = None
    """Time of one array read (ns). Default: from the ADC/sense timing."""


class AdcNonidealSpec(SpecModel):
    """ADC non-idealities (used by the accuracy oracle), in LSB of the ADC."""

    inl_lsb: NonNegFloat = 0.0
    """Peak integral non-linearity (LSB), applied as a smooth bow over the code range."""
    dnl_lsb: NonNegFloat = 0.0
    """Sigma of the per-code differential non-linearity (LSB), fixed per chip."""
    gain_error: float = 0.0
    """Relative gain error (0.01 = +1%)."""
    offset_lsb: float = 0.0
    """Offset error (LSB)."""
    thermal_noise_lsb: NonNegFloat = 0.0
    """Sigma of Gaussian noise on the analog sum before conversion (LSB)."""


class AdcSpec(ExplicitValues):
    """Analog-to-digital converters at the bottom of the columns."""

    model: str = "survey"
    """ADC model: ``survey`` (default: the ADC survey's Walden/Schreier envelopes by ``type``,
    bits, sample rate and node; see ``pimsim.cost._adc``), ``isaac_scaling`` (ISAAC-style bits
    table at 32 nm, scaled by node), ``neurosim`` (NeuroSim's multilevel current-mode sense
    amplifier) or ``fixed`` (published values only)."""
    bits: PositiveInt = Field(le=16)
    """Resolution (bits)."""
    type: Literal["sar", "flash", "sense_amp", "ramp", "pipeline", "integrating"] = "sar"
    """Circuit type: ``sar`` (default: what CIM macros build most), ``pipeline``, ``flash``
    (2^bits - 1 comparators), ``sense_amp`` (1 bit: one comparator; more bits: a multilevel
    sense amplifier, costed as a flash), ``ramp`` (single slope) or ``integrating`` (time
    domain): these two count 2^bits clock steps per conversion."""
    cols_per_adc: PositiveInt = 1
    """Columns multiplexed onto one ADC."""
    sample_rate_hz: PositiveFloat | None = None
    """Conversion rate of one ADC (Hz): sets the ADC's step time and, with the ``survey``
    model, its energy per conversion above the type's corner rate. Default: one conversion per
    clock (ramp and integrating: clock / 2^bits)."""
    range: Literal["full_scale", "calibrated", "learned", "trained"] = "learned"
    """Input range policy (DESIGN.md Conventions, 'ADC range'): ``full_scale`` (fixed at design
    time), ``calibrated`` (the ``range_percentile`` of the partial sums seen on calibration
    data), ``learned`` (the range with the least mean squared ADC error on those partial sums,
    found by a search over candidate ranges) or ``trained`` (the ranges PIM-QAT trained with the
    weights and stored in the checkpoint, ``adc_range`` of each quantized layer; no calibration
    data; a model without them is refused)."""
    range_percentile: float = Field(default=99.99, gt=0, le=100)
    """With ``range: calibrated``: percentile of observed partial sums that sets full scale."""
    range_granularity: Literal["layer", "column", "significance", "column_significance"] = (
        "layer"
    )
    """What shares one calibrated range: the whole ``layer`` (one reference setting per layer),
    each ``column`` (a logical output column: its weight slices and polarities), each
    ``significance`` (input cycle x weight slice, shared by the columns) or each column and
    significance. Ignored with ``range: full_scale``."""
    nonideal: AdcNonidealSpec = AdcNonidealSpec()
    """Non-linearity, gain/offset and thermal noise."""


class DacSpec(ExplicitValues):
    """Input drivers: one per row, driving ``bits`` input bits per cycle."""

    model: str = "drive"
    """DAC/driver model: ``drive`` (row-driver energy from wire load and voltage) or ``fixed``."""
    bits: PositiveInt | None = Field(default=None, le=16)
    """Input bits applied per cycle (1 = bit-serial). Default: from ``decomposition.scheme``."""
    encoding: Literal["level", "pwm"] = "level"
    """Multi-bit input encoding: voltage levels or pulse width (PWM)."""


class DecompositionSpec(SpecModel):
    """How inputs and weights are split over cycles and cells (DESIGN.md Conventions)."""

    scheme: Literal[SCHEMES] = "native"
    """Preset that sets defaults for ``dac.bits``, ``cell.bits`` and ``signed_encoding``."""
    input_bits: PositiveInt = Field(default=8, le=32)
    """Input (activation) precision in bits."""
    weight_bits: int = Field(default=8, ge=2, le=32)
    """Weight precision in bits (signed)."""
    signed_encoding: Literal[ENCODINGS] | None = None
    """Signed-weight encoding. Default: from ``scheme``."""
    signed_inputs: Literal["auto", "signed", "unsigned"] = "auto"
    """Signed inputs: ``auto`` treats non-negative inputs (after ReLU, pixels) as unsigned."""
    offset_reference: Literal["column", "digital"] = "column"
    """With ``signed_encoding: offset``, how the stored offset (2^(b-1) - 1 per cell, times the
    input sum) is removed: ``column`` (how offset chips are built): every array holding a column
    tile also holds one reference column per weight slice whose cells store the offset's slice;
    it is read and converted like every other column (so it takes array columns and ADC
    conversions, and sees the chip's conductance shift) and its converted value is subtracted
    digitally from every column of its array; ``digital``: the exact offset x input sum is
    subtracted digitally (no reference column). Ignored with other encodings."""

    @property
    def differential(self) -> bool:
        """Whether each weight takes a positive and a negative cell (differential encodings)."""
        return self.signed_encoding in DIFFERENTIAL

    @property
    def reference_column(self) -> bool:
        """Whether arrays hold a reference column (``offset`` weights, ``offset_reference:
        column``)."""
        return self.signed_encoding == "offset" and self.offset_reference == "column"

    @property
    def magnitude_bits(self) -> int:
        """m of DESIGN.md's Counting: weight_bits - 1 if differential, else weight_bits."""
        return self.weight_bits - self.differential


class MappingSpec(SpecModel):
    """Options of the layer-to-crossbar mapper."""

    pack_groups: Literal["separate", "block_diagonal"] = "separate"
    """Grouped convs: each group on its own arrays, or groups packed block-diagonally."""
    duplication: Literal["none", "balance", "speedup"] = "none"
    """Weight duplication: ``balance`` duplicates slow (early) layers to balance the pipeline;
    ``speedup`` follows DNN+NeuroSim's pipeline speed-up rule (copies = ceil((IFM / bound)^2),
    see ``pimsim.mapping``) with ``max_duplication`` as its speed-up degree."""
    max_duplication: PositiveInt | None = None
    """Upper bound on copies of one layer's weights (None: limited by chip size)."""
    kernel_rows: Literal["packed", "per_position"] = "packed"
    """How a k x k conv layer's unrolled rows meet the arrays. ``packed``: the K = k x k x Cin
    im2col rows fill arrays densely (row tiles of ``array.rows``). ``per_position``:
    DNN+NeuroSim V1.4's novel mapping (Chip.cpp ChipDesignInitialize / ChipFloorPlan): each
    kernel position's Cin rows are tiled on arrays of their own (ceil(Cin / rows) row tiles per
    position; a 128-channel layer on 256-row arrays uses half their rows), each position on PEs
    of its own, the layer on whole tiles, and with ``duplication: speedup`` copies fill the PE
    (see ``pimsim.mapping``). It applies, as in NeuroSim, to conv layers whose kernel area is the
    network's most common one above 1 and whose K fills at least one array; others stay packed.
    It changes which rows share an ADC read, so the oracle follows it."""
    reprogram: bool = False
    """Allow a network larger than a fixed chip to run in several passes, counting the writes."""
    activation_matmul: Literal["digital", "rewrite"] = "digital"
    """Where products of two activations (attention's Q K^T and softmax x V) run: ``digital``
    MAC units (class ``mac``; what transformer PIM chips build, as their operands change with
    every input) or ``rewrite``: arrays whose cells are written with the second operand for
    every input, the writes' energy and time counted (needs ``cell.write_energy_pj`` to cost
    them)."""


class PeSpec(SpecModel):
    """A processing element (ISAAC's IMA): arrays with their ADCs, DACs and local periphery."""

    arrays: PositiveInt
    """Arrays per PE."""
    components: Components = ()
    """Other per-PE components (shift-add, input/output registers, sample-and-hold, ...)."""


class TileSpec(SpecModel):
    """A tile: PEs plus tile-level buffers, interconnect and digital units."""

    pes: PositiveInt
    """PEs per tile."""
    components: Components = ()
    """Per-tile components (eDRAM, bus, router with ``shared_by``, activation, pooling, ...)."""


class ChipSpec(SpecModel):
    """The chip: tiles plus chip-level components."""

    tiles: PositiveInt | Literal["auto"] = "auto"
    """Tiles per chip, or ``auto`` to size the chip to the network."""
    pipelined: bool = True
    """Layers run as a pipeline (throughput from the slowest stage)."""
    components: Components = ()
    """Chip-level components (off-chip links such as HyperTransport, global buffer, ...)."""


class TrainingSpec(SpecModel):
    """On-chip training: the learning rule and how weight updates reach the devices (read by
    ``pimsim train --rule``, ``pimsim evaluate --training`` and sweeps; see
    :mod:`pimsim.training` for the methods)."""

    rule: Literal["backprop", "dfa"] = "backprop"
    """``backprop``: the error reaches each layer through the transposed forward weights (read
    from the same arrays); ``dfa``: direct feedback alignment, the output error through a fixed
    random matrix per layer, stored on arrays of its own."""
    update: Literal["exact", "pulsed", "mixed_precision"] = "exact"
    """``exact``: float SGD (a digital master copy; every weight is rewritten every step);
    ``pulsed``: each update becomes stochastic-rounded pulses on the device (``cell.update``);
    ``mixed_precision``: updates accumulate in digital memory and a device is pulsed only when its
    accumulated update crosses ``threshold`` nominal steps."""
    threshold: float = Field(default=1.0, gt=0)
    """Mixed precision: program a device when |accumulated update| >= threshold x its nominal
    step (one pulse's worth of weight)."""
    lr: PositiveFloat = 0.05
    """Learning rate of SGD."""
    batch_size: PositiveInt = 32
    """Samples per training step (the weight update happens once per step)."""
    epochs: PositiveInt = 3
    """Epochs of the bundled MNIST training split (sweeps and ``pimsim train``)."""
    train_samples: PositiveInt | None = None
    """Training samples per epoch (default: the whole training split)."""
    accumulator_bits: PositiveInt = 32
    """Width of a digital update accumulator or master weight (bits per weight)."""
    weight_range: PositiveFloat = 2.0
    """Device weight range, as a multiple of the largest |initial weight| of the layer (pulsed and
    mixed precision: the per-layer scale is fixed at the start; weights saturate at the range)."""


class ArchSpec(SpecModel):
    """A complete accelerator description (a ``kind: arch`` file)."""

    kind: Literal["arch"] = "arch"
    """File kind."""
    name: str = Field(min_length=1)
    """Short name of the design."""
    description: str = ""
    """Free text."""
    technology: TechnologySpec
    cell: CellSpec
    array: ArraySpec
    adc: AdcSpec
    dac: DacSpec = DacSpec()
    decomposition: DecompositionSpec = DecompositionSpec()
    mapping: MappingSpec = MappingSpec()
    pe: PeSpec
    tile: TileSpec
    chip: ChipSpec = ChipSpec()
    training: TrainingSpec = TrainingSpec()
    _source: Any = PrivateAttr(default=None)  # the YAML document it was loaded from

    def __eq__(self, other: object) -> bool:
        # Equal when every field is equal; where the spec was loaded from does not matter.
        return type(other) is type(self) and self.__dict__ == other.__dict__

    __hash__ = SpecModel.__hash__

    @model_validator(mode="before")
    @classmethod
    def _resolve_presets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = resolve_presets(data)
        return data

    @model_validator(mode="after")
    def _cross_checks(self):
        check_arch(self)
        return self

    @property
    def weight_slices(self) -> int:
        """ceil(m / cell.bits): cells (slices) per weight magnitude."""
        return math.ceil(self.decomposition.magnitude_bits / self.cell.bits)

    @property
    def input_cycles(self) -> int:
        """ceil(input_bits / dac.bits)."""
        return math.ceil(self.decomposition.input_bits / self.dac.bits)


def oracle_fields(spec: ArchSpec) -> dict[str, Any]:
    """The values of :data:`ORACLE_FIELDS` in ``spec`` (JSON-able, by field path): two specs with
    equal values get the same accuracy from the oracle for the same model, data and seed."""
    data = spec.model_dump(mode="json", by_alias=True)
    out = {}
    for path in ORACLE_FIELDS:
        value: Any = data
        for part in path.split("."):
            value = value[part]
        out[path] = value
    return out


def preset_defaults(scheme: str, input_bits: int, weight_bits: int) -> dict[tuple, Any]:
    """The knob values a preset sets (DESIGN.md Conventions, 'presets'), by field path."""
    if scheme == "native":
        return {
            ("dac", "bits"): input_bits,
            ("cell", "bits"): weight_bits,
            ("decomposition", "signed_encoding"): "offset",
        }
    if scheme == "differential":
        return {
            ("dac", "bits"): input_bits,
            ("cell", "bits"): weight_bits - 1,
            ("decomposition", "signed_encoding"): "differential_analog",
        }
    if scheme == "bit_serial":
        return {
            ("dac", "bits"): 1,
            ("cell", "bits"): 1,
            ("decomposition", "signed_encoding"): "twos_complement",
        }
    return {}


def preset_overrides(scheme: str, input_bits: int = 8, weight_bits: int = 8) -> dict[str, Any]:
    """Dotted overrides (for :func:`pimsim.load_arch`) that set ``scheme`` with every knob it
    implies made explicit, so that a spec which pins its own knobs (e.g. a bit-serial macro)
    still computes the named preset."""
    knobs = {
        "decomposition.scheme": scheme,
        "decomposition.input_bits": input_bits,
        "decomposition.weight_bits": weight_bits,
    }
    for path, value in preset_defaults(scheme, input_bits, weight_bits).items():
        knobs[".".join(path)] = value
    return knobs


def resolve_presets(data: dict) -> dict:
    """Fill knobs the file leaves out from ``decomposition.scheme``; explicit knobs win."""
    data = copy.deepcopy(data)
    dec = data.get("decomposition") or {}
    if not isinstance(dec, dict):
        return data
    scheme = dec.get("scheme", "native")
    ib, wb = dec.get("input_bits", 8), dec.get("weight_bits", 8)
    if not (isinstance(ib, int) and isinstance(wb, int) and isinstance(scheme, str)):
        return data  # the field validators report the type errors
    for (section, key), value in preset_defaults(scheme, ib, wb).items():
        block = data.setdefault(section, {})
        if isinstance(block, dict) and block.get(key) is None:
            block[key] = value
    return data


def check_arch(spec: ArchSpec) -> None:
    """Cross-field rules; raises :class:`FieldProblem` naming the field at fault."""
    dec, arr, adc = spec.decomposition, spec.array, spec.adc
    if arr.rows_per_adc_read is not None and arr.rows_per_adc_read > arr.rows:
        raise FieldProblem(
            ("array", "rows_per_adc_read"),
            f"{arr.rows_per_adc_read} rows per ADC read exceeds array.rows = {arr.rows}",
        )
    if adc.cols_per_adc > arr.cols:
        raise FieldProblem(
            ("adc", "cols_per_adc"),
            f"{adc.cols_per_adc} columns per ADC exceeds array.cols = {arr.cols}",
        )
    if dec.signed_encoding == "twos_complement" and spec.cell.bits != 1:
        raise FieldProblem(
            ("decomposition", "signed_encoding"),
            f"twos_complement needs cell.bits = 1 (got {spec.cell.bits}); use "
            "offset or a differential encoding with multi-bit cells",
        )
    node = spec.technology.node_nm
    if not NODE_RANGE_NM[0] <= node <= NODE_RANGE_NM[1]:
        raise FieldProblem(
            ("technology", "node_nm"),
            f"technology.node_nm = {node:g} nm is not a CMOS node pimsim can scale to (models "
            f"accept {NODE_RANGE_NM[0]:g}..{NODE_RANGE_NM[1]:g} nm and are calibrated over "
            f"{CALIBRATED_NODES_NM[0]:g}..{CALIBRATED_NODES_NM[1]:g} nm); the node is in "
            "nanometres (e.g. 22)",
        )
    mapping = spec.mapping
    if (
        mapping.duplication == "balance"
        and spec.chip.tiles == "auto"
        and mapping.max_duplication is None
    ):
        raise FieldProblem(
            ("mapping", "max_duplication"),
            "mapping.duplication: balance with chip.tiles: auto has nothing to balance against "
            "(an auto-sized chip grows with every copy), so it would copy nothing: set "
            "mapping.max_duplication (copies per layer, e.g. 8) or a fixed chip.tiles that "
            "balance fills",
        )
    var = spec.cell.variation
    if var.stuck_at_on + var.stuck_at_off > 1:
        raise FieldProblem(
            ("cell", "variation", "stuck_at_off"), "stuck_at_on + stuck_at_off exceeds 1"
        )
    models = (("adc", adc, ADC_MODELS), ("dac", spec.dac, DAC_MODELS), ("array", arr, ARRAY_MODELS))
    for section, block, known in models:
        if block.model not in known:
            raise FieldProblem(
                (section, "model"),
                f"unknown {section} model {block.model!r}; known: {', '.join(known)}",
            )
        _check_reference(spec, section, block)
    for level in ("pe", "tile", "chip"):
        names = set()
        for i, comp in enumerate(getattr(spec, level).components):
            if comp.name in names:
                raise FieldProblem(
                    (level, "components", i, "name"),
                    f"component name {comp.name!r} used twice in {level}",
                )
            names.add(comp.name)
            if comp.model not in COMPONENT_MODELS:
                raise FieldProblem(
                    (level, "components", i, "model"),
                    f"unknown component model {comp.model!r}; known: {', '.join(COMPONENT_MODELS)}",
                )
            _check_reference(spec, f"{level}.components[{i}]", comp, (level, "components", i))


def _check_fixed(section: str, block: ExplicitValues, path: tuple, area_only: bool) -> None:
    """A ``fixed`` block has no model to fill a value in: it must publish its energy (or power)
    and its area, or both would be costed as zero without a word."""
    missing = []
    if not area_only and block.energy_pj is None and block.power_mw is None:
        missing.append("energy_pj (or power_mw)")
    if block.area_um2 is None:
        missing.append("area_um2")
    if missing:
        raise FieldProblem(
            path + ("model",),
            f"{section}.model is 'fixed' (published values only) but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not given: give the published "
            f"value{'s' if len(missing) > 1 else ''} with a 'reference', or set {section}.model "
            "to a model that computes them",
        )


def _check_reference(spec: ArchSpec, section: str, block: ExplicitValues, path=None) -> None:
    """Explicit values are tied to the parameters they were measured at (see ReferenceSpec)."""
    path = path or (section,)
    if block.has_explicit and block.reference is None:
        raise FieldProblem(
            path + ("reference",),
            "explicit power/energy/area values need a 'reference' with their 'source'",
        )
    if block.model == "fixed":
        area_only = getattr(block, "component_class", None) in AREA_ONLY_CLASSES
        _check_fixed(section, block, path, area_only)
    ref = block.reference
    if ref is None or block.model != "fixed":
        return
    actual = {
        "bits": getattr(block, "bits", None),
        "sample_rate_hz": getattr(block, "sample_rate_hz", None),
        "node_nm": spec.technology.node_nm,
        "size_bytes": getattr(block, "size_bytes", None),
        "width_bits": getattr(block, "width_bits", None),
        "rows": getattr(block, "rows", None),
        "cols": getattr(block, "cols", None),
    }
    for key, value in actual.items():
        measured = getattr(ref, key)
        if measured is not None and value is not None and not math.isclose(measured, value):
            raise FieldProblem(
                path + (key,) if key != "node_nm" else ("technology", "node_nm"),
                f"{section} has explicit values measured at {key} = {measured:g} "
                f"({ref.source}) but the spec sets {key} = {value:g}; with model 'fixed' they "
                f"cannot be rescaled: set {section}.model to a scaling model or remove the "
                "explicit values",
            )
