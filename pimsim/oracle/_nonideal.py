"""Device and ADC non-idealities, each drawn from an explicit seed.

Conductances are expressed in units of one level step, dG = (G_on - G_off) / (2^cell_bits - 1):
a cell holding level u has target conductance g = u + g_off, where g_off = G_off / dG =
(2^cell_bits - 1) / (on_off_ratio - 1) (0 for an ideal ratio or without ``off_current``), and
the column current of a read is sum_r x_r g_r in those units. Device effects act on these cell
conductances, never on the float weights (DESIGN.md Conventions, 'device variation'):

* stuck-at faults: a cell is stuck at g_on = (2^cell_bits - 1) + g_off or at g_off;
* variation: g <- g exp(e_chip + e_device), e ~ Normal(0, sigma^2), e_chip one value per chip;
* drift: g <- g (t / t0)^-nu for t > t0 (PCM-style power law);
* read noise: each read adds Normal(0, (sigma_read g_r)^2) per cell; applied as its exact
  equivalent on the column sum, Normal(0, sum_r x_r^2 (sigma_read g_r)^2);
* finite on/off ratio (with ``cell.variation.off_current``): the g_off of every cell adds
  g_off sum_r x_r to the column sum (no reference column subtracts it).

ADC effects on each partial sum p (in level units): gain and offset, p (1 + gain) + offset x
step; thermal noise Normal(0, (sigma x step)^2); integral non-linearity as a smooth bow of peak
``inl_lsb`` steps, zero at zero and at the ends (offset and gain are their own errors):
4 (p / FS)(1 - p / FS) unipolar, (3 sqrt(3) / 2)(p / FS)(1 - (p / FS)^2) bipolar; differential
non-linearity as per-code threshold shifts Normal(0, dnl_lsb^2) steps, fixed per chip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class ChipDraw:
    """The random state of one chip: its between-chip factor and a seed for each layer."""

    e_chip: float
    layer_seeds: dict


def draw_chip(arch, layer_names, seed) -> ChipDraw:
    """Draw one chip from ``seed`` (an int or a numpy SeedSequence)."""
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    chip_seq, *layer_seqs = seq.spawn(1 + len(layer_names))
    sigma = arch.cell.variation.between_chip
    e_chip = float(np.random.default_rng(chip_seq).normal(0.0, sigma)) if sigma else 0.0
    seeds = {
        name: int(s.generate_state(1, dtype=np.uint64)[0] % (2**63))
        for name, s in zip(layer_names, layer_seqs, strict=True)
    }
    return ChipDraw(e_chip, seeds)


def device_active(arch) -> bool:
    """Whether any device effect changes cell conductances."""
    v = arch.cell.variation
    drift = v.drift_nu > 0 and v.drift_time_s > v.drift_t0_s
    return bool(
        v.between_chip
        or v.within_chip
        or v.stuck_at_on
        or v.stuck_at_off
        or drift
        or arch.cell.on_off_ratio
    )


def adc_active(arch) -> bool:
    """Whether any ADC effect is enabled."""
    a = arch.adc.nonideal
    return bool(a.inl_lsb or a.dnl_lsb or a.gain_error or a.offset_lsb or a.thermal_noise_lsb)


def perturb_cells(arch, levels: torch.Tensor, e_chip: float, gen: torch.Generator) -> torch.Tensor:
    """Actual conductances (level units) of cells programmed to ``levels`` (any shape)."""
    v = arch.cell.variation
    top = 2**arch.cell.bits - 1
    ratio = arch.cell.on_off_ratio
    g_off = top / (ratio - 1) if ratio and v.off_current else 0.0
    g = levels.to(torch.float64) + g_off
    if v.stuck_at_on or v.stuck_at_off:
        u = torch.rand(levels.shape, generator=gen, dtype=torch.float64, device=levels.device)
        g = torch.where(u < v.stuck_at_on, torch.full_like(g, top + g_off), g)
        g = torch.where(
            (u >= v.stuck_at_on) & (u < v.stuck_at_on + v.stuck_at_off),
            torch.full_like(g, g_off),
            g,
        )
    if v.within_chip or e_chip:
        e_dev = torch.randn(levels.shape, generator=gen, dtype=torch.float64, device=levels.device)
        e_dev = e_dev * v.within_chip
        g = g * torch.exp(e_chip + e_dev)
    if v.drift_nu and v.drift_time_s > v.drift_t0_s:
        g = g * (v.drift_time_s / v.drift_t0_s) ** (-v.drift_nu)
    return g


def read_noise_sigma(arch, x_cycles_sq: torch.Tensor, g_sq: torch.Tensor) -> torch.Tensor:
    """Column-sum sigma of read noise: sqrt(sum_r x_r^2 (sigma_read g_r)^2) via one product."""
    sigma = arch.cell.variation.read_noise
    return torch.bmm(x_cycles_sq, g_sq).mul_(sigma * sigma).sqrt_()


def dnl_thresholds(plan, sigma_lsb: float, gen: torch.Generator) -> torch.Tensor:
    """Decision thresholds (in steps) between consecutive codes, shifted per chip by DNL (on
    the generator's device)."""
    lo, hi = plan.code_range
    centres = torch.arange(lo, hi, dtype=torch.float64, device=gen.device) + 0.5
    shifts = torch.randn(centres.shape, generator=gen, dtype=torch.float64, device=gen.device)
    return centres + shifts * sigma_lsb


INL_CUBIC = 1.5 * 3**0.5  # 1 / max of r (1 - r^2) over [0, 1], reached at r = 1/sqrt(3)


def adc_convert(arch, plan, partial: torch.Tensor, thresholds, gen) -> torch.Tensor:
    """Non-ideal conversion of partial sums (level units) to codes."""
    a = arch.adc.nonideal
    p = partial.to(torch.float64)
    fs = plan.adc_full_scale
    if a.inl_lsb:
        r = p / fs
        # offset and gain are trimmed (their own fields), so the bow is zero at zero input and at
        # the ends: 4 r (1 - r) unipolar; bipolar, the odd cubic r (1 - r^2) scaled to peak 1 at
        # |r| = 1/sqrt(3) (a symmetric bow would be an offset of the codes around zero, where
        # most partial sums of a differential pair fall)
        bow = INL_CUBIC * r * (1 - r * r) if plan.bipolar else 4 * r * (1 - r)
        p = p + a.inl_lsb * plan.step * bow
    if a.gain_error or a.offset_lsb:
        p = p * (1 + a.gain_error) + a.offset_lsb * plan.step
    if a.thermal_noise_lsb:
        noise = torch.randn(p.shape, generator=gen, dtype=torch.float64, device=p.device)
        p = p + noise * (a.thermal_noise_lsb * plan.step)
    lo, hi = plan.code_range
    scaled = p / plan.step
    if thresholds is not None:
        return torch.bucketize(scaled, thresholds).to(torch.float64) + lo
    return scaled.round_().clamp_(lo, hi)
