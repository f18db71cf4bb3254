"""Training time per epoch on CPU for each method: float, QAT, and PIM-QAT under the three
decomposition presets (8-bit weights and inputs, 6-bit ADC, 128 rows per ADC read), for LeNet-5
and the MLP on the MNIST split (8,000 training images) and ResNet-20 on CIFAR-10-shaped data
(50,000 images: random bytes written as python batches, since no CIFAR data ships).

Each epoch is timed over ``--steps`` steps (MNIST, 64 images) or ``--resnet-steps`` steps
(ResNet-20, 128 images) after one warm-up step and scaled to the steps of a whole epoch (125 and
391; the table says so). Methods run side by side in one process, so the ratios to float come
from the same machine state.

    python bench/training_speed.py [--steps 25] [--resnet-steps 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import torch
import torch.nn.functional as F

import pimsim
from pimsim.spec import preset_overrides
from pimsim.training import PimQatOptions, attach_pim, load_mnist
from pimsim.training._train import build_model

SPEC = "arch_specs/sram_charge_domain_28nm.yaml"
def arch(preset):
    return pimsim.load_arch(SPEC, {**preset_overrides(preset, 8, 8), "adc.bits": 6,
                                   "array.rows_per_adc_read": 128})


def model_for(network, method, shape):
    model = build_model(network, "float" if method == "float" else "qat", seed=0)
    if method.startswith("pimqat"):
        model = attach_pim(model, arch(method.split(":")[1]), shape, PimQatOptions())
    return model


def time_steps(model, x, y, batch, steps):
    """Seconds per step over ``steps`` Adam steps of ``batch`` images (after one warm-up)."""
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    model.train()

    def step(i):
        xb = x[(i * batch) % len(x):][:batch]
        yb = y[(i * batch) % len(y):][:batch]
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step(0)
    start = time.perf_counter()
    for i in range(1, steps + 1):
        step(i)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--resnet-steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    methods = ["float", "qat", "pimqat:native", "pimqat:differential", "pimqat:bit_serial"]
    x, y = load_mnist(split="train")
    rows = []
    for network in ("mlp_mnist", "lenet5_mnist"):
        epoch = math.ceil(len(x) / 64)
        for method in methods:
            per_step = time_steps(model_for(network, method, (1, 1, 28, 28)), x, y, 64, args.steps)
            rows.append((network, method, per_step * epoch, f"{args.steps} steps x {epoch}"))
    gen = torch.Generator().manual_seed(0)
    xc = torch.randint(0, 256, (128 * (args.resnet_steps + 1), 3, 32, 32), generator=gen) / 255.0
    yc = torch.randint(0, 10, (len(xc),), generator=gen)
    for method in methods:
        per_step = time_steps(model_for("resnet20_cifar10", method, (1, 3, 32, 32)), xc, yc, 128,
                              args.resnet_steps)
        rows.append(("resnet20_cifar10", method, per_step * 391,
                     f"{args.resnet_steps} steps x 391"))
    base = {net: s for net, m, s, _ in rows if m == "float"}
    print(f"torch threads: {torch.get_num_threads()}")
    print(f"{'network':18} {'method':22} {'s/epoch':>9} {'x float':>8}  how")
    for network, method, seconds, how in rows:
        print(f"{network:18} {method:22} {seconds:9.1f} {seconds / base[network]:8.1f}  {how}")


if __name__ == "__main__":
    main()
