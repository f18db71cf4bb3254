"""Building blocks shared by the spec models: the strict frozen base model, explicit component
values tied to the parameters they were measured at, and component entries of the hierarchy."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


class SpecModel(BaseModel):
    """Base of every spec model: strict types, unknown keys refused, immutable after loading."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        use_attribute_docstrings=True,
        populate_by_name=True,
    )

    def replace(self, **changes):
        """A copy with ``changes`` applied and validated again (specs are never mutated)."""
        data = self.model_dump(by_alias=True)
        data.update(changes)
        return type(self).model_validate(data)


class ReferenceSpec(SpecModel):
    """The conditions under which an explicit energy/area/power value was measured or published.

    Every field given here is compared with the spec's actual value: a component whose model does
    not rescale (``model: fixed``) and whose actual parameter differs is an error, so a published
    number is never silently applied at other parameters."""

    source: str = Field(min_length=3)
    """Citation: paper, table and, where known, the tool the authors used (e.g. CACTI 6.5)."""
    bits: PositiveInt | None = None
    """Resolution (ADC/DAC) the value was measured at."""
    sample_rate_hz: PositiveFloat | None = None
    """Sample or action rate (Hz) the value was measured at."""
    node_nm: PositiveFloat | None = None
    """Technology node (nm) the value was measured at."""
    size_bytes: PositiveInt | None = None
    """Capacity (bytes) of the buffer the value was measured for."""
    width_bits: PositiveInt | None = None
    """Port/bus width (bits) the value was measured for."""
    rows: PositiveInt | None = None
    """Array rows the value was measured for."""
    cols: PositiveInt | None = None
    """Array columns the value was measured for."""


class ExplicitValues(SpecModel):
    """Optional published per-instance values; each needs a ``reference`` saying where from."""

    model: str = "fixed"
    """Component model that gives energy/area/latency (see ``pimsim schema`` for names).
    ``fixed`` uses the explicit values as they are and forbids changing the parameters they were
    measured at; a scaling model rescales explicit values from ``reference`` to the spec's
    parameters, or computes them from scratch when no explicit value is given."""
    power_mw: NonNegFloat | None = None
    """Published power of one instance at its rated rate (mW)."""
    energy_pj: NonNegFloat | None = None
    """Published energy of one action of one instance (pJ)."""
    area_um2: NonNegFloat | None = None
    """Published area of one instance (um^2)."""
    leakage_mw: NonNegFloat | None = None
    """Static power of one instance (mW); 0 when not given."""
    reference: ReferenceSpec | None = None
    """Where the explicit values come from and the parameters they were measured at."""

    @property
    def has_explicit(self) -> bool:
        """Whether any published value is given."""
        return any(
            v is not None for v in (self.power_mw, self.energy_pj, self.area_um2, self.leakage_mw)
        )


#: Component classes whose actions the cost model counts (the energy breakdown's classes).
ACTION_CLASSES = (
    "adc",
    "sample_hold",
    "dac",
    "array",
    "shift_add",
    "accumulator",
    "buffer",
    "interconnect",
    "activation",
    "pooling",
    "digital",
    "mac",
)

#: Component classes with area (and leakage) only: no action of inference uses them.
AREA_ONLY_CLASSES = ("level_shifter", "io", "other")

ComponentClass = Literal[ACTION_CLASSES + AREA_ONLY_CLASSES]

#: Classes of a cost report's energy breakdown (``energy_<class>_pj`` columns): the actions, the
#: chip's leakage and the cell writes of reprogramming.
ENERGY_CLASSES = (*ACTION_CLASSES, "leakage", "write")

#: Classes of a cost report's area breakdown (``area_<class>_mm2`` columns); ``adc_reference``
#: is the programmable range reference of each ADC.
AREA_CLASSES = (*ACTION_CLASSES, "adc_reference", *AREA_ONLY_CLASSES)


#: The model a component of each class gets when the spec names none and gives no published
#: values (a buffer whose ``technology`` is sram or edram gets ``sram_buffer``). Classes not listed
#: have no generic model: they need published values (``model: fixed``) or a named model.
DEFAULT_COMPONENT_MODELS = {
    "shift_add": "shift_add",
    "accumulator": "adder_tree",
    "buffer": "register_file",
    "interconnect": "bus",
    "activation": "relu",
    "pooling": "max_pool",
    "digital": "shift_add",
    "mac": "digital_mac",
    "level_shifter": "level_shifter",
}


class ComponentSpec(ExplicitValues):
    """A component instantiated ``count`` times at one hierarchy level (PE, tile or chip).

    ``shared_by`` instances of the level share one copy (ISAAC's router serves 4 tiles:
    ``shared_by: 4``), so the chip holds ceil(level instances / shared_by) x count copies and a
    report of one instance carries 1/shared_by of it."""

    name: str = Field(min_length=1)
    """Unique name within its level (e.g. ``edram``, ``router``)."""
    component_class: ComponentClass = Field(alias="class")
    """Class for breakdowns: adc, dac, array, sample_hold, shift_add, accumulator, buffer,
    interconnect, activation, pooling, digital, mac (digital multiply-accumulate units for
    products of two activations), level_shifter, io, other."""
    count: PositiveInt = 1
    """Instances per instance of the level."""
    shared_by: PositiveInt = 1
    """Number of level instances that share one group of these components."""
    rate_hz: PositiveFloat | None = None
    """Rated action rate (Hz) used for peak power; default: the technology clock."""
    size_bytes: PositiveInt | None = None
    """Capacity of a buffer (bytes)."""
    width_bits: PositiveInt | None = None
    """Port width of a buffer, or width of a bus/link (bits per cycle)."""
    technology: Literal["sram", "edram", "register_file", "dram"] | None = None
    """Memory technology of a buffer."""
    topology: Literal["bus", "mesh", "htree", "crossbar", "point_to_point"] | None = None
    """Topology of an interconnect."""
    hops: NonNegFloat | None = None
    """Average hops per transfer on an interconnect (default: from the placement)."""

    @model_validator(mode="before")
    @classmethod
    def _default_model(cls, data):
        """No ``model``: ``fixed`` when published values are given, else the class's generic
        model (DEFAULT_COMPONENT_MODELS), so a component is never silently free."""
        if not isinstance(data, dict) or data.get("model") is not None:
            return data
        explicit = any(data.get(k) is not None for k in ("power_mw", "energy_pj", "area_um2",
                                                         "leakage_mw"))
        klass = data.get("class", data.get("component_class"))
        model = "fixed"
        if not explicit and isinstance(klass, str) and klass in DEFAULT_COMPONENT_MODELS:
            model = DEFAULT_COMPONENT_MODELS[klass]
            if klass == "buffer" and data.get("technology") in ("sram", "edram"):
                model = "sram_buffer"
        return {**data, "model": model}
