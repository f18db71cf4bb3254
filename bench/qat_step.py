"""One PIM-QAT training step on CPU against its floor and against float training.

For LeNet-5 (MNIST shape, batch 64) and ResNet-20 (CIFAR-10 shape, batch 128, random data), per
decomposition preset (native, differential, bit_serial; 8-bit weights and inputs, 6-bit ADC, 128
rows per ADC read on ``arch_specs/sram_charge_domain_28nm.yaml``, as bench/training_speed.py),
the median time of one training step (forward, backward, Adam step) of:

* **step**: the PIM-QAT model (:func:`pimsim.training.attach_pim`);
* **floor**: the same QAT model and step where every PIM layer's product is the dense products
  the hardware must do at least: (input cycles x weight slices x conversions per pair) products
  of the layer's shape, read from the layer's engine plan, computed as one convolution / matmul
  with the cycles folded into the batch and the slices into the output channels, then summed,
  plus the float backward of the layer (its input and weight gradients, once). Row groups, the
  ADC, shift-and-add and the rescaling are not in the floor;
* **float**: float training of the same network.

The three run side by side in one process, in alternating rounds (one step each per round, after
warm-up steps that include PIM-QAT's first-batch ADC range calibration); the table gives
medians over the rounds. Then one PIM-QAT step per preset runs under ``torch.profiler`` and the
top operations by self CPU time are printed.

    python bench/qat_step.py [--rounds 5] [--threads 0] [--quick] [--resnet-batch 128]
                             [--serial-resnet-batch N] [--no-profile]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from training_speed import model_for  # noqa: E402  (bench/ helpers: the same models and arch)

from pimsim.training._pimqat import pimqat_layers  # noqa: E402
from pimsim.training._qat import QuantConv2d, QuantLinear, fake_quantize_weight  # noqa: E402

PRESETS = ("native", "differential", "bit_serial")
NETWORKS = {  # network -> (input shape, batch)
    "lenet5_mnist": ((1, 1, 28, 28), 64),
    "resnet20_cifar10": ((1, 3, 32, 32), 128),
}


def products(plan) -> int:
    """Dense products of the layer's shape one PIM layer must do at least: input cycles x weight
    slices x conversions per (slice, column) pair (a ``differential_analog`` pair is subtracted
    before its one conversion: one signed product)."""
    return plan.cycles * plan.slices * plan.polarities


class _FloorProduct(torch.autograd.Function):
    """Value: ``cycles x slices`` dense products of the layer's shape in one conv / matmul
    (cycles folded into the batch, slices into the output channels), summed; gradient: the
    float layer's input and weight gradients."""

    @staticmethod
    def forward(ctx, x, w, layer, cycles, slices):
        ctx.save_for_backward(x, w)
        ctx.layer = layer
        xs = x.repeat(cycles, *([1] * (x.dim() - 1)))
        ws = w.repeat(slices, *([1] * (w.dim() - 1)))
        if isinstance(layer, torch.nn.Conv2d):
            y = layer._conv_forward(xs, ws, None)
        else:
            y = F.linear(xs, ws)
        y = y.view(cycles, x.shape[0], slices, w.shape[0], *y.shape[2:])
        return y.sum(dim=(0, 2))

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        layer = ctx.layer
        if isinstance(layer, torch.nn.Conv2d):
            args = (layer.stride, layer.padding, layer.dilation, layer.groups)
            gx = torch.nn.grad.conv2d_input(x.shape, w, grad, *args)
            gw = torch.nn.grad.conv2d_weight(x, w.shape, grad, *args)
        else:
            gx, gw = grad @ w, grad.t() @ x
        return gx, gw, None, None, None


def _floor_forward(self, x):
    x_q = self._quantize_input(x)
    w_q = fake_quantize_weight(self.weight, self.weight_bits)
    out = _FloorProduct.apply(x_q, w_q, self, *self.floor_counts)
    if self.bias is None:
        return out
    return out + (self.bias.view(1, -1, 1, 1) if out.dim() == 4 else self.bias)


def floor_model(network: str, pim_model) -> torch.nn.Module:
    """The QAT model of ``network`` whose quantized layers compute the floor products of the
    matching PIM-QAT layer of ``pim_model`` (see :class:`_FloorProduct`)."""
    model = model_for(network, "qat", None)
    plans = {name: layer.engine.base_plan for name, layer in pimqat_layers(pim_model).items()}
    for name, module in model.named_modules():
        if isinstance(module, QuantConv2d | QuantLinear):
            plan = plans[name]
            module.floor_counts = (plan.cycles, plan.slices * plan.polarities)
            module.forward = _floor_forward.__get__(module)
    return model


def stepper(model, x, y):
    """One Adam training step of ``model`` on (x, y)."""
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    model.train()

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def data(network: str, batch: int):
    shape, _ = NETWORKS[network]
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (batch, *shape[1:]), generator=gen) / 255.0
    return x, torch.randint(0, 10, (batch,), generator=gen)


def layer_counts(pim_model) -> str:
    """cycles x slices (x polarities) per PIM layer, 'CxS (x layers)' when all alike."""
    counts = [
        (p.cycles, p.slices * p.polarities)
        for p in (m.engine.base_plan for m in pimqat_layers(pim_model).values())
    ]
    if len(set(counts)) == 1:
        c, s = counts[0]
        return f"{c}x{s} (x{len(counts)})"
    return f"{sum(c * s for c, s in counts)} total"


def measure(network: str, preset: str, batch: int, rounds: int, warmup: int):
    shape, _ = NETWORKS[network]
    x, y = data(network, batch)
    pim = model_for(network, f"pimqat:{preset}", shape)
    models = {"step": pim, "floor": floor_model(network, pim), "float": model_for(network,
                                                                                  "float", shape)}
    steps = {k: stepper(m, x, y) for k, m in models.items()}
    for _ in range(warmup):
        for s in steps.values():
            s()
    times: dict[str, list[float]] = {k: [] for k in steps}
    for r in range(rounds):
        order = list(steps) if r % 2 == 0 else list(reversed(steps))
        for k in order:
            start = time.perf_counter()
            steps[k]()
            times[k].append(time.perf_counter() - start)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    return layer_counts(pim), med, steps["step"]


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        return names[0] if names else platform.processor()
    except OSError:
        return platform.processor()


def profile(step, rows: int) -> str:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--resnet-batch", type=int, default=128)
    parser.add_argument("--serial-resnet-batch", type=int, default=0,
                        help="ResNet-20 batch for bit_serial (default: --resnet-batch)")
    parser.add_argument("--networks", default=",".join(NETWORKS))
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--quick", action="store_true",
                        help="3 rounds, 1 warm-up, ResNet-20 batch 16, top 8 profile rows")
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.rounds, args.warmup, args.resnet_batch = 3, 1, 16
    warnings.simplefilter("ignore")
    rows, profiles = [], []
    for network in args.networks.split(","):
        for preset in args.presets.split(","):
            batch = NETWORKS[network][1] if network.startswith("lenet") else args.resnet_batch
            if preset == "bit_serial" and network.startswith("resnet"):
                batch = args.serial_resnet_batch or batch
            counts, med, step = measure(network, preset, batch, args.rounds, args.warmup)
            rows.append((network, preset, batch, counts, med))
            print(f"  {network} {preset} batch {batch}: "
                  + ", ".join(f"{k} {v:.1f} ms" for k, v in med.items()), flush=True)
            if not args.no_profile:
                profiles.append((network, preset, profile(step, 8 if args.quick else 12)))
    print(f"\nmachine: {cpu_name()} ({platform.machine()}), "
          f"{os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"torch threads {torch.get_num_threads()}; medians of {args.rounds} alternating rounds")
    print(f"{'network':17} {'preset':13} {'batch':>5} {'cycles x slices':>16} {'step ms':>9} "
          f"{'floor ms':>9} {'step/floor':>10} {'float ms':>9} {'step/float':>10}")
    for network, preset, batch, counts, med in rows:
        print(f"{network:17} {preset:13} {batch:5d} {counts:>16} {med['step']:9.1f} "
              f"{med['floor']:9.1f} {med['step'] / med['floor']:10.2f} {med['float']:9.1f} "
              f"{med['step'] / med['float']:10.1f}")
    for network, preset, table in profiles:
        print(f"\nprofile: one PIM-QAT step, {network} {preset} (top by self CPU time)")
        print(table)


if __name__ == "__main__":
    main()
