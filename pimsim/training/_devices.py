"""Device update models: how an SGD update reaches the conductances of a PIM array.

A trainable layer's weights live on devices. Each weight is treated as one analog device (a
multi-level cell or a differential pair) whose state moves by programming pulses; the oracle
reads the device state through its usual quantization (``PimMatrixLayer.program`` with the
layer's scale fixed at the start of training, so the weight grid does not move under the
devices). Three update schemes (``training.update`` of the arch spec):

``exact``
    Float SGD: a digital master copy takes ``w -= lr * grad`` and the arrays are reprogrammed to
    it every step (its scale re-derived from max |w|). The reference: every weight is written
    every step.
``pulsed``
    The update of each weight becomes ``n = stochastic_round(-lr * grad / step)`` pulses applied
    to the device (``step`` = the nominal weight change of one pulse); small updates happen
    with the right probability instead of vanishing (unbiased on average).
``mixed_precision``
    The updates accumulate in high-precision digital memory ``chi``; a device is pulsed only when
    ``|chi| >= threshold * step``, with ``n = sign(chi) max(1, round(|chi| / step))`` pulses, and
    ``chi -= n * step``
    (the accumulator subtracts the intended change: the digital side does not read the device
    back). Every such crossing is one counted device write.

**The device** (``cell.update``): a state g in [0, 1] across the weight range [-w_max, w_max]
that ``levels - 1`` nominal pulses traverse. A potentiating pulse moves g to
``B - (B - g) exp(-nu / P)`` (``P = levels - 1``, ``B = 1 / (1 - exp(-nu))``, nu =
``nonlinearity_ltp``), the saturating exponential of NeuroSim+'s synaptic device model (Chen et
al., IEEE TCAD 2018, written with nu = P / A); n pulses compose in closed form. Depression
mirrors it from the top with ``nonlinearity_ltd`` (asymmetric when the two differ). Cycle-to-
cycle write noise adds a Gaussian of sigma ``c2c_noise x sqrt(n) / P`` to the state (n
independent pulses, each with sigma ``c2c_noise`` nominal steps). The state saturates at 0 and 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

UPDATES = ("exact", "pulsed", "mixed_precision")


def apply_pulses(
    state: torch.Tensor, pulses: torch.Tensor, update, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Device states in [0, 1] after ``pulses`` (signed integers: + potentiate, - depress) under
    the ``cell.update`` model ``update`` (levels given: ``update.levels`` must be set)."""
    p = float(update.levels - 1)
    n = pulses.to(state.dtype)
    up, down = n > 0, n < 0
    out = state.clone()
    nu_p, nu_d = update.nonlinearity_ltp, update.nonlinearity_ltd
    if nu_p > 0:
        b = 1.0 / (1.0 - math.exp(-nu_p))
        out = torch.where(up, b - (b - state) * torch.exp(-nu_p * n / p), out)
    else:
        out = torch.where(up, state + n / p, out)
    if nu_d > 0:
        b = 1.0 / (1.0 - math.exp(-nu_d))
        top = 1.0 - state
        out = torch.where(down, 1.0 - (b - (b - top) * torch.exp(nu_d * n / p)), out)
    else:
        out = torch.where(down, state + n / p, out)
    if update.c2c_noise:
        noise = torch.randn(state.shape, generator=generator, dtype=state.dtype)
        out = out + noise * (update.c2c_noise * n.abs().sqrt() / p)
    return out.clamp_(0.0, 1.0)


@dataclass
class WriteCounter:
    """Device writes (devices programmed, one per device per step at most) and pulses."""

    writes: int = 0
    pulses: int = 0
    steps: int = 0
    per_step: list = field(default_factory=list)

    def add(self, writes: int, pulses: int) -> None:
        self.writes += writes
        self.pulses += pulses


class DeviceWeights:
    """One layer's weights as devices under an update scheme (see the module docstring).

    ``weight``: the initial float weights (the torch layer's shape); ``scheme``: ``exact``,
    ``pulsed`` or ``mixed_precision``; ``update``: the spec's ``cell.update`` with ``levels``
    resolved; ``w_max``: the weight range; ``threshold``: mixed precision's threshold in
    nominal steps."""

    def __init__(self, weight, scheme, update, w_max, threshold=1.0, generator=None):
        if scheme not in UPDATES:
            raise ValueError(f"update scheme must be one of {UPDATES}, not {scheme!r}")
        self.scheme = scheme
        self.update = update
        self.w_max = float(w_max)
        self.threshold = float(threshold)
        self.generator = generator
        self.step = 2.0 * self.w_max / (update.levels - 1)  # weight change of one nominal pulse
        w = weight.detach().to(torch.float64)
        if scheme == "exact":
            self.master = w.clone()
        else:
            self.state = ((w.clamp(-self.w_max, self.w_max) + self.w_max) / (2 * self.w_max))
        self.acc = torch.zeros_like(w) if scheme == "mixed_precision" else None
        self.counter = WriteCounter()

    @property
    def weight(self) -> torch.Tensor:
        """The weights the devices hold now (float64, the layer's shape)."""
        if self.scheme == "exact":
            return self.master
        return self.state * (2 * self.w_max) - self.w_max

    def apply(self, delta: torch.Tensor) -> tuple[int, int]:
        """Apply one step's intended update ``delta`` (= -lr x gradient); returns (writes,
        pulses) of this step and adds them to :attr:`counter`."""
        delta = delta.detach().to(torch.float64)
        if self.scheme == "exact":
            self.master += delta
            writes = int(torch.count_nonzero(delta))  # every updated weight is rewritten
            pulses = writes
        else:
            if self.scheme == "pulsed":
                ratio = delta / self.step
                low = torch.floor(ratio)
                u = torch.rand(ratio.shape, generator=self.generator, dtype=ratio.dtype)
                n = low + (u < (ratio - low)).to(ratio.dtype)
            else:
                self.acc += delta
                fire = self.acc.abs() >= self.threshold * self.step
                count = torch.round(self.acc.abs() / self.step).clamp_(min=1.0)
                n = torch.where(fire, torch.sign(self.acc) * count, torch.zeros_like(delta))
                self.acc -= n * self.step
            moved = n != 0
            writes = int(moved.sum())
            pulses = int(n.abs().sum())
            if writes:
                self.state = apply_pulses(self.state, n, self.update, self.generator)
        self.counter.add(writes, pulses)
        self.counter.steps += 1
        return writes, pulses
