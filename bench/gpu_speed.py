"""Speed of the accuracy oracle and of PIM-QAT on one device (a GPU, or the CPU), each against
float on the same device, measured side by side in one run.

(a) oracle inference, images/s, per decomposition preset (native, differential, bit_serial:
    ``pimsim.spec.preset_overrides``, 8-bit inputs and weights, on bench/training_speed.py's spec:
    sram_charge_domain_28nm.yaml with a 6-bit ADC and 128 rows per ADC read, ``chip.tiles: auto``)
    for ResNet-18 at 224x224 (ImageNet shape) and ResNet-20 at 32x32 (CIFAR-10 shape), against
    float inference of the same model. The spec's ADC ranges (``learned``) are set on the device
    from 16 calibration images, as ``pimsim accuracy --device`` does. Times come from
    bench/oracle_speed.py's ``timed_pair``: alternating blocks of the PIM model and the float
    model, the ratio the median of the per-round ratios.
(b) one PIM-QAT epoch of ResNet-20 per preset, against float training: seconds per Adam step of
    128 images, timed over ``--steps`` steps after one warm-up step and scaled to the 391 steps of
    a CIFAR-10 epoch (the table says so); models from bench/training_speed.py's ``model_for``.

Random data of the right shapes (no dataset is read); weights are the zoo's random
initialisation, which does not change the work done. TF32 is off on CUDA (``cuda_exactness``), as
in every oracle and training run.

    python bench/gpu_speed.py [--device cuda|cpu|auto] [--repeats 5] [--steps 5]
    python bench/gpu_speed.py --quick --device cpu      # a smoke run at tiny sizes (about
                                                        # 3 minutes on 2 CPU cores)
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmarks' helpers

import training_speed  # noqa: E402
from oracle_speed import timed_pair  # noqa: E402
from training_speed import arch as _preset_arch  # noqa: E402
from training_speed import model_for  # noqa: E402

import pimsim  # noqa: E402
import pimsim.oracle  # noqa: E402
from pimsim.errors import PimsimError  # noqa: E402
from pimsim.oracle import cuda_exactness, device_name, resolve_device, set_chip  # noqa: E402
from pimsim.spec import with_overrides  # noqa: E402
from pimsim.training._train import _move_model  # noqa: E402

PRESETS = ("native", "differential", "bit_serial")
STEPS_PER_EPOCH = 391  # CIFAR-10: 50,000 images in batches of 128
CHUNK_BYTES = 2 * 2**30  # largest partial-sum tensor per layer (peak memory)


def spec(preset: str, adc_range: str | None):
    """training_speed.py's spec for ``preset``, on as many tiles as a network needs."""
    over = {"chip.tiles": "auto"}
    if adc_range:
        over["adc.range"] = adc_range
    return with_overrides(_preset_arch(preset), over)


def chunk_for(arch, model, shape) -> int:
    """Rows (samples x output positions) per pass such that no layer's partial sums exceed
    :data:`CHUNK_BYTES` (float32)."""
    mapping = pimsim.map_network(arch, pimsim.from_torch(model, shape))
    per_row = max(
        sum(m.row_groups) * m.input_cycles * m.weight_slices * m.n_cols * m.matrices * 4
        for m in mapping.layers.values()
    )
    return max(1, CHUNK_BYTES // per_row)


def pim_model(model, arch, shape, dev, calibration):
    """``model`` converted on the CPU and moved to ``dev``, its chip drawn there (ADC ranges
    from ``calibration``), as ``pimsim.oracle.accuracy`` does off the CPU."""
    host = arch
    if arch.adc.range in ("calibrated", "learned"):
        host = with_overrides(arch, {"adc.range": "full_scale"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pim = pimsim.oracle.convert(
            model, host, shape, calibration=[calibration.cpu()], chunk=chunk_for(arch, model, shape)
        ).to(dev)
        set_chip(pim, arch, 0, [calibration])
    return pim


def oracle_rows(networks, batch, repeats, dev, adc_range, block=2):
    """(network, preset, PIM images/s, float images/s, ratio of times) per network and preset."""
    rows = []
    gen = torch.Generator().manual_seed(0)
    for network, hw in networks:
        shape = (1, 3, hw, hw)
        model = pimsim.zoo_model(network).eval()
        x = torch.rand(batch, 3, hw, hw, generator=gen).to(dev)
        calibration = torch.rand(min(16, batch), 3, hw, hw, generator=gen).to(dev)
        floating = copy.deepcopy(model).to(dev)
        for preset in PRESETS:
            try:
                pim = pim_model(model, spec(preset, adc_range), shape, dev, calibration)
                with torch.no_grad():
                    t_pim, t_float, ratio = timed_pair(
                        lambda p=pim, x=x: p(x), lambda f=floating, x=x: f(x), repeats, dev.type,
                        block=block,
                    )
                rows.append((network, preset, batch / t_pim, batch / t_float, ratio))
            except (RuntimeError, PimsimError) as exc:  # report it, time the rest
                rows.append((network, preset, None, None, f"failed: {_first_line(exc)}"))
            finally:
                pim = None
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
    return rows


def seconds_per_step(model, x, y, batch, steps, dev) -> float:
    """Seconds per Adam step of ``batch`` images over ``steps`` steps after one warm-up step
    (the device synchronised before each clock reading)."""
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    model.train()

    def step(i):
        start = (i * batch) % len(x)
        loss = F.cross_entropy(model(x[start : start + batch]), y[start : start + batch])
        opt.zero_grad()
        loss.backward()
        opt.step()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    step(0)
    sync()
    begin = time.perf_counter()
    for i in range(1, steps + 1):
        step(i)
    sync()
    return (time.perf_counter() - begin) / steps


def training_rows(batch, steps, dev, adc_range):
    """(method, seconds per epoch, ratio to float) for float and PIM-QAT per preset."""
    gen = torch.Generator().manual_seed(0)
    x = (torch.randint(0, 256, (batch * (steps + 1), 3, 32, 32), generator=gen) / 255.0).to(dev)
    y = torch.randint(0, 10, (len(x),), generator=gen).to(dev)
    rows = []
    for method in ("float", *(f"pimqat:{p}" for p in PRESETS)):
        try:
            with warnings.catch_warnings(), _specs_of_this_run(adc_range):
                warnings.simplefilter("ignore")
                model = _move_model(model_for("resnet20_cifar10", method, (1, 3, 32, 32)), dev)
                rows.append((method, seconds_per_step(model, x, y, batch, steps, dev)))
        except (RuntimeError, PimsimError) as exc:
            rows.append((method, f"failed: {_first_line(exc)}"))
    return rows


@contextlib.contextmanager
def _specs_of_this_run(adc_range):
    """training_speed.py's ``model_for`` attaching PIM-QAT with :func:`spec` (its own spec, on
    auto tiles, ``--adc-range`` applied)."""
    saved = training_speed.arch
    training_speed.arch = lambda preset: spec(preset, adc_range)
    try:
        yield
    finally:
        training_speed.arch = saved


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 90 else text[:87] + "..."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds of the oracle")
    parser.add_argument("--batch", type=int, default=64, help="oracle images per forward pass")
    parser.add_argument("--steps", type=int, default=5, help="timed PIM-QAT steps per method")
    parser.add_argument("--adc-range", choices=("full_scale", "learned", "calibrated"),
                        help="override the spec's adc.range (default: its own, learned)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: ResNet-20 only at batch 4, 1 round, 1 PIM-QAT step of "
                        "8 images (the numbers are not a measurement)")
    args = parser.parse_args()
    dev = resolve_device(args.device)
    networks = [("resnet18_imagenet", 224), ("resnet20_cifar10", 32)]
    batch, train_batch, steps, repeats = args.batch, 128, args.steps, args.repeats
    if args.quick:
        networks, batch, train_batch, steps, repeats = [("resnet20_cifar10", 32)], 4, 8, 1, 1
    print(
        f"device: {dev} ({device_name(dev)}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads, TF32 off"
        + (" -- QUICK SMOKE RUN: tiny sizes, not a measurement" if args.quick else "")
    )
    with cuda_exactness(dev):
        oracle = oracle_rows(networks, batch, repeats, dev, args.adc_range,
                             block=1 if args.quick else 2)
        training = training_rows(train_batch, steps, dev, args.adc_range)
    print(f"\n(a) oracle inference, batch {batch}, median of {repeats} rounds "
          "(PIM and float alternating)")
    print(f"{'network':20}{'preset':14}{'PIM img/s':>12}{'float img/s':>13}{'x float':>9}")
    for network, preset, pim, flt, ratio in oracle:
        if pim is None:
            print(f"{network:20}{preset:14}  {ratio}")
        else:
            print(f"{network:20}{preset:14}{pim:12.1f}{flt:13.1f}{ratio:9.1f}")
    base = dict(training).get("float")
    print(f"\n(b) ResNet-20 training epoch: {steps} step(s) of {train_batch} images timed after "
          f"one warm-up step, scaled to {STEPS_PER_EPOCH} steps")
    print(f"{'method':24}{'s/epoch':>10}{'x float':>9}")
    for method, per_step in training:
        if isinstance(per_step, str):
            print(f"{method:24}  {per_step}")
            continue
        ratio = per_step / base if isinstance(base, float) else float("nan")
        print(f"{method:24}{per_step * STEPS_PER_EPOCH:10.1f}{ratio:9.1f}")


if __name__ == "__main__":
    main()
