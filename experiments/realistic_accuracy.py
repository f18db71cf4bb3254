"""Accuracy as chips deliver it: Table A (digital QAT vs conventional QAT on PIM at full scale, with
a calibrated or learned ADC range, and PIM-QAT with trained ranges), the PIM-QAT loss curves,
Table B (device variability with a reference column) and Table C (ADC non-idealities).

Setup: the bundled MNIST split (train on the first 8,000 images of the shipped test set, test on
its last 2,000), LeNet-5 and the MLP, W8A8 and W4A4 (weights and inputs), 128 rows per ADC read,
``arch_specs/sram_charge_domain_28nm.yaml`` with each preset's knobs set explicitly and the spec's
defaults otherwise (one ADC range per layer, ``learned`` unless a column says otherwise; offset
weights with a reference column). Data-driven ranges calibrate on the first 256 training images.
Per seed (0, 1, 2): a conventional QAT model trained from scratch with the recipe at the table's
precision (cached under ``results/tmp``); PIM-QAT fine-tunes it (``pimsim.training.train`` with
``init=``: cosine from ``FINETUNE_LR``, trained ADC ranges) for ``--steps`` steps of 64 images
(default 125: one epoch over the 8,000 training images) on the table's design, and deploys with
``adc.range: trained``. A cell is the mean over seeds (and >= 10 chips where anything is random)
with its spread.

Compute bounds (2-core CPU): bit-serial W8A8 PIM-QAT (64 conversions per row group) costs about
2 s per step on LeNet-5, so it is run at the ADC precisions where conventional QAT with a learned
range is more than 0.5 points below digital QAT (``--bit-serial-w8-bits``, default 3 4 5); the other
cells say 'not run'.

Each finished cell is appended to ``results/realistic_accuracy_runs.jsonl`` (an interrupted run
continues where it stopped); ``--report`` writes ``results/realistic_accuracy.md``, the CSV tables
and the plots.

    python experiments/realistic_accuracy.py --part qat          # the QAT models (once)
    python experiments/realistic_accuracy.py --part a --network lenet5_mnist --bits 4
    python experiments/realistic_accuracy.py --part loss
    python experiments/realistic_accuracy.py --part b
    python experiments/realistic_accuracy.py --part c
    python experiments/realistic_accuracy.py --part why         # native vs differential, per layer
    python experiments/realistic_accuracy.py --report
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from _runlog import RunLog, add_run_options
from _runlog import start as start_run
from pim_training import ADC_BITS, BASE, CHIPS, PRESETS, ROOT, SEEDS

import pimsim
import pimsim.oracle
from pimsim.spec import preset_overrides, with_overrides
from pimsim.training import (
    PimQatOptions,
    chip_tuning,
    evaluate_accuracy,
    load_checkpoint,
    load_mnist,
    save_checkpoint,
    train,
)

RUNS = ROOT / "results" / "realistic_accuracy_runs.jsonl"
NETWORKS = ("lenet5_mnist", "mlp_mnist")
PRECISIONS = (8, 4)
CALIBRATION = 256
#: Table A's conventional columns: the ADC range policy of each.
POLICIES = ("full_scale", "calibrated", "learned")
#: Table B: device variation (lognormal sigmas) on the native preset (offset weights, so a
#: reference column), W8A8, 8-bit ADC.
VARIATION = ("native", 8, 8)
SIGMAS = (0.05, 0.1, 0.2)
SELF_TUNE_IMAGES = 128
#: Table C: ADC non-idealities on the differential preset, W8A8, 6-bit ADC.
NONIDEAL = ("differential", 8, 6)
INL = (0.5, 1.0, 2.0)
DNL = 0.25  # random DNL (LSB) that comes with each INL level
THERMAL = (0.25, 0.5, 1.0)
BN_IMAGES = 256

_LOG = RunLog(RUNS)
done_keys, record = _LOG.done_keys, _LOG.record


def arch_for(preset: str, bits: int, adc_bits: int, extra: dict | None = None):
    return pimsim.load_arch(
        BASE,
        {
            **preset_overrides(preset, bits, bits),
            "adc.bits": adc_bits,
            "array.rows_per_adc_read": 128,
            **(extra or {}),
        },
    )


def qat_model(network: str, bits: int, seed: int):
    """Conventional QAT model (``bits`` weights and inputs), trained once and cached on disk."""
    path = ROOT / "results" / "tmp" / f"{network}_w{bits}a{bits}_qat_seed{seed}.pt"
    if path.exists():
        return load_checkpoint(path)[0]
    model, meta = train(network, "qat", seed=seed, weight_bits=bits, input_bits=bits,
                        progress=False)
    save_checkpoint(path, model, {k: v for k, v in meta.items() if k != "log"})
    return model


def _data():
    x, y = load_mnist(split="test")
    test = list(zip(torch.split(x, 500), torch.split(y, 500), strict=True))
    x_train = load_mnist(split="train")[0]
    return test, [x_train[:CALIBRATION]], x_train


TEST, CALIB, X_TRAIN = _data()


def pim_accuracy(model, arch, chips: int = 1, tune=None) -> list[float]:
    data_driven = arch.adc.range in ("calibrated", "learned")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = pimsim.oracle.accuracy(
            model, arch, TEST, n_chips=chips, tune=tune,
            calibration=CALIB if data_driven else None,
        )
    return [float(a) for a in result.per_chip]


def pimqat(network, bits, seed, arch, steps, options=None, epochs=1, init=None):
    """PIM-QAT fine-tuning of the seed's QAT model on ``arch`` (its ranges trained)."""
    options = options or PimQatOptions()
    init = init if init is not None else qat_model(network, bits, seed)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, meta = train(network, "pimqat", arch=arch, options=options, init=init,
                            epochs=epochs, train_samples=steps * 64, seed=seed, progress=False)
    return model, meta, time.perf_counter() - start


def trained(arch):
    """``arch`` deploying the ADC ranges PIM-QAT trained."""
    return with_overrides(arch, {"adc.range": "trained"})


def table_a(network: str, bits: int, presets, adc_bits, steps: int, bs_w8_bits) -> None:
    done = done_keys()
    for seed in SEEDS:
        key = f"a/{network}/w{bits}/digital/{seed}"
        if key not in done:
            acc = evaluate_accuracy(qat_model(network, bits, seed), TEST)
            record(key, table="a", network=network, bits=bits, method="digital_qat", seed=seed,
                   acc=acc)
    for preset in presets:
        for adc in adc_bits:
            for seed in SEEDS:
                model = qat_model(network, bits, seed)
                for policy in POLICIES:
                    key = f"a/{network}/w{bits}/{preset}/{adc}/{policy}/{seed}"
                    if key not in done:
                        spec = arch_for(preset, bits, adc, {"adc.range": policy})
                        acc = pim_accuracy(model, spec)
                        record(key, table="a", network=network, bits=bits, preset=preset,
                               adc_bits=adc, method=policy, seed=seed, acc=acc[0])
                if preset == "bit_serial" and bits == 8 and adc not in bs_w8_bits:
                    continue
                key = f"a/{network}/w{bits}/{preset}/{adc}/pimqat/{seed}"
                if key not in done:
                    arch = arch_for(preset, bits, adc)
                    net, meta, seconds = pimqat(network, bits, seed, arch, steps)
                    acc = pim_accuracy(net, trained(arch))
                    record(key, table="a", network=network, bits=bits, preset=preset,
                           adc_bits=adc, method="pimqat", seed=seed, acc=acc[0],
                           train_s=seconds, steps=steps, losses=meta["epoch_losses"])


def loss_curves() -> None:
    """PIM training loss per epoch, W4A4, 4-bit ADC: from scratch (the recipe) and fine-tuning
    the QAT model (5 epochs), seed 0, differential and native."""
    done = done_keys()
    for network in NETWORKS:
        for preset in ("differential", "native"):
            arch = arch_for(preset, 4, 4)
            for start in ("scratch", "finetune"):
                key = f"loss/{network}/{preset}/{start}"
                if key in done:
                    continue
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    init = qat_model(network, 4, 0) if start == "finetune" else None
                    model, meta = train(network, "pimqat", arch=arch, init=init, seed=0,
                                        progress=False)
                acc = pim_accuracy(model, trained(arch))[0]
                record(key, table="loss", network=network, preset=preset, start=start,
                       losses=meta["epoch_losses"],
                       test=[row["test_accuracy"] for row in meta["log"]], acc=acc,
                       train_s=time.perf_counter() - t0)


def table_b(steps: int) -> None:
    done = done_keys()
    preset, bits, adc = VARIATION
    for kind in ("between_chip", "within_chip"):
        for sigma in SIGMAS:
            arch = arch_for(preset, bits, adc, {f"cell.variation.{kind}": sigma})
            for seed in SEEDS:
                qat = qat_model("lenet5_mnist", bits, seed)
                vat = None
                for method in ("qat", "qat+self-tune", "vat", "vat+self-tune"):
                    key = f"b/{kind}/{sigma}/{method}/{seed}"
                    if key in done:
                        continue
                    seconds = 0.0
                    if method.startswith("vat") and vat is None:
                        options = PimQatOptions(variability_aware=True)
                        vat, _, seconds = pimqat("lenet5_mnist", bits, seed, arch, steps, options)
                    model = vat if method.startswith("vat") else qat
                    tune = None
                    if method.endswith("self-tune"):
                        tune = chip_tuning(model, arch, (1, 1, 28, 28),
                                           [X_TRAIN[-SELF_TUNE_IMAGES:]], self_tuning=True)
                    per_chip = pim_accuracy(model, arch, CHIPS, tune)
                    record(key, table="b", variation=kind, sigma=sigma, method=method, seed=seed,
                           acc=float(np.mean(per_chip)), per_chip=per_chip, train_s=seconds)


def table_c(steps: int) -> None:
    done = done_keys()
    preset, bits, adc = NONIDEAL
    models: dict = {}

    def model_for(network, seed, options, arch):
        k = (network, seed, options)
        if k not in models:
            models[k] = pimqat(network, bits, seed, arch, steps, options)[0]
        return models[k]

    rows = []
    for inl in INL:
        extra = {"adc.nonideal.inl_lsb": inl, "adc.nonideal.dnl_lsb": DNL}
        rows += [
            (f"inl {inl}", "conventional", "lenet5_bn_mnist", extra, None, False),
            (f"inl {inl}", "pimqat", "lenet5_bn_mnist", extra, PimQatOptions(), False),
            (f"inl {inl}", "pimqat + BN calibration", "lenet5_bn_mnist", extra,
             PimQatOptions(), True),
        ]
    for noise in THERMAL:
        extra = {"adc.nonideal.thermal_noise_lsb": noise}
        rows += [
            (f"thermal {noise}", "conventional", "lenet5_mnist", extra, None, False),
            (f"thermal {noise}", "pimqat", "lenet5_mnist", extra, PimQatOptions(), False),
            (f"thermal {noise}", "pimqat + adjusted precision 1 bit", "lenet5_mnist", extra,
             PimQatOptions(adjusted_precision=1), False),
            (f"thermal {noise}", "pimqat + noise injection", "lenet5_mnist", extra,
             PimQatOptions(noise_injection=True), False),
        ]
    for level, method, network, extra, options, bn in rows:
        arch = arch_for(preset, bits, adc, extra)
        for seed in SEEDS:
            key = f"c/{level}/{method}/{seed}"
            if key in done:
                continue
            if options is None:
                model, deploy = qat_model(network, bits, seed), arch
            else:
                # ideal training is the same model at every level: train it once
                train_arch = arch if options.noise_injection else arch_for(preset, bits, adc)
                model, deploy = model_for(network, seed, options, train_arch), trained(arch)
            tune = None
            if bn:
                tune = chip_tuning(model, deploy, (1, 1, 28, 28), [X_TRAIN[:BN_IMAGES]],
                                   bn_calibration=True)
            per_chip = pim_accuracy(model, deploy, CHIPS, tune)
            record(key, table="c", level=level, method=method, network=network, seed=seed,
                   acc=float(np.mean(per_chip)), per_chip=per_chip)


def signal_per_step() -> None:
    """Why native stays short at 4 ADC bits: per layer of the seed-0 LeNet-5 W4A4 QAT model, 4-bit
    ADC with learned ranges, the spread of what the ADC converts against the spread of the
    signal x . w it carries (after the reference column), in ADC steps, on 64 training images."""
    from pimsim.oracle import _engine as E
    from pimsim.oracle import convert
    from pimsim.oracle._convert import _pim_layers

    done = done_keys()
    model = qat_model("lenet5_mnist", 4, 0)
    for preset in ("native", "differential"):
        if f"why/{preset}" in done:
            continue
        pim = convert(model, arch_for(preset, 4, 4), (1, 1, 28, 28), calibration=CALIB)
        layers = _pim_layers(pim)
        seen: dict = {}
        hooks = [layer.register_forward_hook(
            lambda mod, inp, out, n=n, s=seen: s.__setitem__(n, inp[0]))
            for n, layer in layers.items()]
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pim(X_TRAIN[:64])
        for h in hooks:
            h.remove()
        rows = []
        for name, layer in layers.items():
            plan = layer.plan
            x_rows = layer.input_rows(seen[name])
            x_int, _ = layer.quantize_input(x_rows)
            xl = E.layout_inputs(plan, E.input_cycles(plan, x_int))
            view = E._view7(plan, E.column_partials(plan, xl, layer.w_layout), x_rows.shape[0])
            signal = view[..., : plan.n_cols]
            if plan.references:
                refs = view[..., plan.n_cols :].repeat_interleave(plan.tile_cols, -1)
                signal = signal - refs[..., : plan.n_cols]
            rows.append({"layer": name, "step": plan.step, "converted_std": float(view.std()),
                         "signal_std": float(signal.std())})
        record(f"why/{preset}", table="why", preset=preset, layers=rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("qat", "a", "loss", "b", "c", "why"))
    parser.add_argument("--network", nargs="+", default=NETWORKS, choices=NETWORKS)
    parser.add_argument("--bits", nargs="+", type=int, default=PRECISIONS, choices=PRECISIONS)
    parser.add_argument("--presets", nargs="+", default=PRESETS, choices=PRESETS)
    parser.add_argument("--adc-bits", nargs="+", type=int, default=ADC_BITS)
    parser.add_argument("--bit-serial-w8-bits", nargs="+", type=int, default=(3, 4, 5))
    add_run_options(parser)
    args = parser.parse_args()
    start_run(args)
    if args.part == "qat":
        for network in (*NETWORKS, "lenet5_bn_mnist"):
            for bits in PRECISIONS if network != "lenet5_bn_mnist" else (8,):
                for seed in SEEDS:
                    qat_model(network, bits, seed)
    elif args.part == "a":
        for network in args.network:
            for bits in args.bits:
                table_a(network, bits, args.presets, args.adc_bits, args.steps,
                        args.bit_serial_w8_bits)
    elif args.part == "loss":
        loss_curves()
    elif args.part == "b":
        table_b(args.steps)
    elif args.part == "c":
        table_c(args.steps)
    elif args.part == "why":
        signal_per_step()
    if args.report:
        from realistic_accuracy_report import report

        report(RUNS, ROOT / "results")


if __name__ == "__main__":
    main()
