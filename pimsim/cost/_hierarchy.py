"""Instantiated components and area / peak power per hierarchy level (array, PE, tile, chip).

A component shared by ``shared_by`` instances of its level is counted once per sharing group:
the chip holds ceil(level instances / shared_by) x count copies, and a report of one level
instance carries count / shared_by of it (DESIGN.md Conventions, 'sharing'). Peak power uses each
component's rated action rate (DESIGN.md Conventions, 'rates').
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pimsim.cost._components import adc_reference
from pimsim.cost._registry import ComponentEstimate, lookup
from pimsim.spec import ArchSpec

LEVELS = ("array", "pe", "tile", "chip")


@dataclass(frozen=True)
class Instance:
    """A component type placed at one level: ``count`` per level instance, ``shared_by`` level
    instances per group."""

    level: str
    name: str
    component_class: str
    count: int
    shared_by: int
    estimate: ComponentEstimate

    @property
    def share(self) -> float:
        """Copies carried by one instance of the level."""
        return self.count / self.shared_by


def estimate(arch: ArchSpec, section: str, block=None) -> ComponentEstimate:
    """Run the registered model of ``arch.<section>`` (adc, dac, array) or of a component."""
    if block is None:
        block = getattr(arch, section)
        return lookup(section, block.model)(arch, block)
    return lookup("component", block.model)(arch, block)


def instances(arch: ArchSpec) -> list[Instance]:
    """Every component type with its level, count and sharing."""
    adcs = math.ceil(arch.array.cols / arch.adc.cols_per_adc)
    out = [
        Instance("array", "array", "array", 1, 1, estimate(arch, "array")),
        Instance("array", "adc", "adc", adcs, 1, estimate(arch, "adc")),
        Instance("array", "dac", "dac", arch.array.rows, 1, estimate(arch, "dac")),
    ]
    if arch.adc.range != "full_scale":  # a programmable reference per ADC sets its range
        out.append(
            Instance(
                "array",
                "adc_reference",
                "adc_reference",
                adcs,
                1,
                adc_reference(arch),
            )
        )
    for level in ("pe", "tile", "chip"):
        for comp in getattr(arch, level).components:
            out.append(
                Instance(
                    level,
                    comp.name,
                    comp.component_class,
                    comp.count,
                    comp.shared_by,
                    estimate(arch, level, comp),
                )
            )
    return out


@dataclass(frozen=True)
class LevelReport:
    """Area and peak power of one instance of a level, with a per-class breakdown; ``count`` is
    the number of such instances on the chip (in one tile when the chip size is unknown)."""

    name: str
    count: int
    area_mm2: float
    peak_power_mw: float
    breakdown: dict

    def to_dict(self) -> dict:
        """JSON form (``inspect`` output)."""
        return {
            "name": self.name,
            "count": self.count,
            "area_mm2": self.area_mm2,
            "peak_power_mw": self.peak_power_mw,
            "breakdown": self.breakdown,
        }


def level_counts(arch: ArchSpec, tiles: int) -> dict[str, int]:
    """How many arrays, PEs, tiles and chips a chip of ``tiles`` tiles has."""
    return {
        "array": arch.pe.arrays * arch.tile.pes * tiles,
        "pe": arch.tile.pes * tiles,
        "tile": tiles,
        "chip": 1,
    }


def level_reports(
    arch: ArchSpec, chip_tiles: int | None, parts: list[Instance] | None = None
) -> list[LevelReport]:
    """Per-instance area/peak power of array, PE, tile and (when ``chip_tiles`` is known) chip.

    Multiplicities: arrays per PE, PEs per tile, tiles per chip. At the chip level a shared
    component is counted ceil(tiles / shared_by) times; below it, as its share. ``parts`` are
    :func:`instances` of ``arch`` when the caller already has them.
    """
    parts = instances(arch) if parts is None else parts
    mult = {"array": arch.pe.arrays, "pe": arch.tile.pes}
    acc: dict[str, list[float]] = {}
    reports = []
    tiles = chip_tiles or 1
    counts = level_counts(arch, tiles)
    for level in LEVELS:
        if level == "chip" and chip_tiles is None:
            break
        if level != "array":
            below = LEVELS[LEVELS.index(level) - 1]
            factor = mult.get(below, chip_tiles)
            acc = {cls: [v[0] * factor, v[1] * factor] for cls, v in acc.items()}
            if level == "chip":
                # shared tile components: whole groups instead of shares
                for inst in parts:
                    if inst.level == "tile" and inst.shared_by > 1:
                        exact = math.ceil(chip_tiles / inst.shared_by) * inst.count
                        delta = exact - inst.share * chip_tiles
                        _add(acc, inst, delta)
        for inst in parts:
            if inst.level == level:
                _add(acc, inst, inst.share)
        area = sum(v[0] for v in acc.values())
        power = sum(v[1] for v in acc.values())
        breakdown = {
            cls: {"area_mm2": v[0], "peak_power_mw": v[1]} for cls, v in sorted(acc.items())
        }
        reports.append(LevelReport(level, counts[level], area, power, breakdown))
    return reports


def _add(acc: dict, inst: Instance, copies: float) -> None:
    entry = acc.setdefault(inst.component_class, [0.0, 0.0])
    entry[0] += copies * inst.estimate.area_um2 * 1e-6
    entry[1] += copies * inst.estimate.peak_power_mw
