"""Commands of the accuracy oracle: train, accuracy."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click

from pimsim.cli._common import (
    MAX_IMAGES,
    PositiveFloat,
    format_options,
    main,
    set_option,
    user_errors,
    workload_argument,
    write,
)


def device_option(func=None, *, default: str | None = "cpu", help_extra: str = ""):
    """``--device cpu|cuda|cuda:N|auto``: where the oracle or training runs (checked by
    :func:`pimsim.oracle.resolve_device` when the command runs, so that this module imports no
    torch)."""

    def decorate(func):
        return click.option(
            "--device",
            metavar="cpu|cuda|cuda:N|auto",
            default=default,
            show_default=default is not None,
            help="Where the oracle and training compute: cpu, cuda (a GPU, with TF32 off so "
            "that the PIM products stay exact), cuda:N, or auto (cuda when a GPU is visible, "
            "else cpu)." + help_extra,
        )(func)

    return decorate if func is None else decorate(func)


@main.command()
@click.argument("arch")
@workload_argument
@click.option(
    "--method",
    type=click.Choice(["float", "qat", "pimqat"]),
    default="qat",
    show_default=True,
    help="float; conventional digital QAT; or PIM-QAT through ARCH's PIM quantization.",
)
@click.option("--init", type=click.Path(dir_okay=False), help="Start from this checkpoint "
              "(PIM-QAT then fine-tunes: 5 epochs from a learning rate of 0.0001 on the cosine "
              "schedule, FINETUNE_EPOCHS and FINETUNE_LR of pimsim.training._train, unless "
              "--epochs/--lr say otherwise).")
@click.option("--epochs", type=click.IntRange(min=1),
              help="Training epochs (default: the recipe's).")
@click.option("--lr", type=PositiveFloat(),
              help="Initial learning rate (default: the recipe's; PIM-QAT from scratch: a "
              "quarter of it, SCRATCH_LR_FACTOR).")
@click.option("--batch-size", type=click.IntRange(min=1, max=MAX_IMAGES),
              help="Images per step (default: the recipe's).")
@click.option("--train-samples", type=click.IntRange(min=1),
              help="Train on the first N training images only.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--weight-bits", type=click.IntRange(min=2, max=32),
              help="Default: ARCH's decomposition.weight_bits.")
@click.option("--input-bits", type=click.IntRange(min=1, max=32),
              help="Default: ARCH's decomposition.input_bits.")
@click.option("--no-forward-rescale", is_flag=True, help="PIM-QAT without forward rescaling.")
@click.option("--no-backward-rescale", is_flag=True, help="PIM-QAT without backward rescaling.")
@click.option(
    "--adjusted-precision",
    type=click.IntRange(min=0, max=31),
    default=0,
    show_default=True,
    help="PIM-QAT: train with this many ADC bits fewer than ARCH deploys.",
)
@click.option("--noise-injection", is_flag=True,
              help="PIM-QAT: keep ARCH's ADC non-idealities on while training.")
@click.option("--variability-aware", is_flag=True,
              help="PIM-QAT: keep ARCH's device variation on, a new chip every step.")
@click.option("--bn-calibration", "bn_images", type=click.IntRange(min=0, max=MAX_IMAGES),
              default=0,
              show_default=True,
              help="After training, re-estimate BatchNorm statistics on ARCH's PIM model (all "
              "its non-idealities, chip 0) from N training images.")
@click.option(
    "--data",
    "data_root",
    type=click.Path(file_okay=False),
    help="Dataset folder: MNIST IDX files (default: the shipped copy) or CIFAR python batches.",
)
@click.option(
    "--checkpoint",
    "-o",
    "checkpoint",
    type=click.Path(dir_okay=False),
    help="Where to write the checkpoint (default results/checkpoints/WORKLOAD_METHOD.pt); a "
    "resume file beside it is written every epoch and continued from, with the same "
    "hyperparameters only.",
)
@click.option("--log", "log_csv", type=click.Path(dir_okay=False),
              help="Per-epoch CSV log (default: the checkpoint's name with .csv).")
@click.option("--fresh", is_flag=True,
              help="Start over: ignore an existing resume file and replace it.")
@click.option(
    "--rule",
    type=click.Choice(["backprop", "dfa"]),
    help="Train ON CHIP with this learning rule: every forward and backward product on ARCH's "
    "arrays, updates through --update (replaces --method).",
)
@click.option(
    "--update",
    type=click.Choice(["exact", "pulsed", "mixed_precision"]),
    help="On-chip weight updates (default: ARCH's training.update).",
)
@click.option("--threshold", type=click.FloatRange(min=0, min_open=True),
              help="Mixed precision: program a device when its accumulated update reaches this "
              "many nominal steps (default: ARCH's training.threshold).")
@click.option("--chip", "chip_seed", type=click.IntRange(min=0),
              help="On-chip training: the chip drawn for ARCH's device variation (default 0).")
@click.option("--summary", type=click.Path(dir_okay=False),
              help="On-chip training: write accuracy, writes and training cost as JSON (input "
              "of pimsim evaluate --writes-from).")
@device_option(help_extra=" On-chip training (--rule) runs on the CPU only (auto: cpu).")
@set_option
@user_errors
def train(arch, workload, method, init, epochs, lr, batch_size, train_samples, seed, weight_bits,
          input_bits, no_forward_rescale, no_backward_rescale, adjusted_precision,
          noise_injection, variability_aware, bn_images, data_root, checkpoint, log_csv, fresh,
          rule, update, threshold, chip_seed, summary, device, overrides) -> None:
    """Train the zoo network WORKLOAD for ARCH: float, QAT or PIM-QAT, with a per-epoch CSV
    log and resumable checkpoints; or, with --rule, on chip (backprop or direct feedback
    alignment, exact, pulsed or mixed-precision updates), reporting device writes and the
    training cost."""
    from pimsim.oracle import resolve_device
    from pimsim.oracle._memory import tune_cpu_allocator
    from pimsim.spec import load_arch
    from pimsim.training import PimQatOptions, save_checkpoint
    from pimsim.training import train as run
    from pimsim.training._rules import onchip_device

    dev = onchip_device(device) if rule is not None else resolve_device(device)
    tune_cpu_allocator()  # this process only: keep freed tensors' memory for reuse
    spec = load_arch(arch, overrides)
    name = model_name(workload)
    if rule is None and (update or threshold or chip_seed is not None or summary):
        raise click.UsageError("--update, --threshold, --chip and --summary need --rule")
    if rule is not None:
        _train_onchip(spec, name, rule, update, threshold, init, epochs, lr, batch_size,
                      train_samples, seed, chip_seed, data_root, checkpoint, log_csv, summary,
                      dev)
        return
    start = None
    if init:
        start = _init_model(init, name)
    options = PimQatOptions(
        forward_rescale=not no_forward_rescale,
        backward_rescale=not no_backward_rescale,
        adjusted_precision=adjusted_precision,
        noise_injection=noise_injection,
        variability_aware=variability_aware,
    )
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", name)  # a model spec holds ':' and ','
    path = Path(checkpoint or f"results/checkpoints/{stem}_{method}.pt")
    log_csv = log_csv or path.with_suffix(".csv")
    model, metrics = run(
        name,
        method,
        arch=spec,
        options=options,
        init=start,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        train_samples=train_samples,
        seed=seed,
        weight_bits=weight_bits,
        input_bits=input_bits,
        bn_calibration=bn_images,
        data_root=data_root,
        log_csv=log_csv,
        checkpoint=path,
        resume=not fresh,
        device=dev,
    )
    meta = {k: v for k, v in metrics.items() if k not in ("epoch_losses", "log")}
    meta.update(
        workload=name, method=method, seed=seed, accuracy=metrics["test_accuracy"], arch=spec.name
    )
    save_checkpoint(path, model, meta)
    where = f"on {spec.name} (PIM)" if method == "pimqat" else "(digital)"
    if dev.type != "cpu":
        where += f", trained on {dev} ({_device_label(dev)})"
    if method == "pimqat" and spec.adc.range != "full_scale":
        where += ", with its trained ADC ranges: pimsim accuracy --set adc.range=trained"
    click.echo(
        f"test accuracy {metrics['test_accuracy']:.4f} {where}; wrote {path} and log {log_csv}"
    )
    if bn_images:
        click.echo(
            f"BN statistics re-estimated on {spec.name} (chip 0) from {bn_images} images: "
            f"test accuracy there {metrics['bn_calibrated_accuracy']:.4f}"
        )


def model_name(workload: str) -> str:
    """The model a training or accuracy WORKLOAD names: a zoo name, a workload file's stem (a
    zoo name) or its ``model:``, or ``package.module:factory[:shape]``."""
    from pimsim.workload._zoo import is_model_spec

    if is_model_spec(workload) and not Path(workload).exists():
        return workload
    path = Path(workload)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        from pimsim.spec._yaml import read_document

        doc = read_document(path, ("workload",))
        model = doc.data.get("model") if isinstance(doc.data, dict) else None
        if isinstance(model, str):
            shape = doc.data.get("input_shape")
            if ":" in model and isinstance(shape, list) and model.count(":") == 1:
                model += ":" + ",".join(str(d) for d in shape)
            return model
    return path.stem


def _init_model(init, name: str):
    """The model of the ``--init`` checkpoint, which must hold the zoo network ``name``."""
    from pimsim.errors import WorkloadError
    from pimsim.training import load_checkpoint

    model, meta = load_checkpoint(init)
    if meta.get("workload") != name:
        raise WorkloadError(f"--init {init} holds {meta.get('workload')!r}, not {name!r}")
    return model


def _device_label(dev) -> str:
    from pimsim.oracle import device_name

    return device_name(dev)


def _train_onchip(spec, name, rule, update, threshold, init, epochs, lr, batch_size,
                  train_samples, seed, chip_seed, data_root, checkpoint, log_csv, summary,
                  device="cpu"):
    import json

    from pimsim.cost import training_cost
    from pimsim.training import save_checkpoint, train_onchip
    from pimsim.training._data import load_dataset
    from pimsim.training._train import _write_log, build_model, dataset_of
    from pimsim.workload import load_workload

    model = _init_model(init, name) if init else build_model(name, "float", seed)
    dataset = dataset_of(name)
    train_data = load_dataset(dataset, data_root, "train")
    if train_samples:
        train_data = (train_data[0][:train_samples], train_data[1][:train_samples])
    test_data = load_dataset(dataset, data_root, "test")
    path = Path(checkpoint or f"results/checkpoints/{name}_onchip_{rule}.pt")
    log_csv = Path(log_csv or path.with_suffix(".csv"))
    rows: list[dict] = []

    def log(rec):
        rows.append(rec)
        _write_log(log_csv, rows)
        click.echo(f"epoch {rec['epoch']}: loss {rec['loss']:.4f}, test accuracy "
                   f"{rec['accuracy']:.4f}, {rec['writes']} device writes", err=True)

    res = train_onchip(model, spec, train_data, test_data, rule=rule, update=update,
                       threshold=threshold, lr=lr, epochs=epochs, batch_size=batch_size,
                       seed=seed, chip_seed=chip_seed, progress=True, log=log, device=device)
    cost = training_cost(spec, load_workload(name), rule=res.rule, update=res.update,
                         batch_size=res.batch_size, train_samples=len(train_data[0]),
                         writes_per_step=res.writes_per_step, pulses_per_step=res.pulses_per_step)
    meta = dict(workload=name, method="float", trained_on_chip=True, rule=res.rule,
                update=res.update, threshold=res.threshold, seed=seed, arch=spec.name,
                accuracy=res.accuracy, chip=chip_seed)
    save_checkpoint(path, res.network.float_model(), meta)
    out = res.to_dict()
    out.update(arch=spec.name, workload=name, writes_per_step=res.writes_per_step,
               pulses_per_step=res.pulses_per_step, training_cost=cost.to_dict())
    if summary:
        write(json.dumps(out, indent=2, default=float) + "\n", summary)
    click.echo(
        f"on-chip {res.rule} ({res.update} updates) on {spec.name}: test accuracy "
        f"{res.accuracy:.4f}; device writes/epoch {res.writes_per_epoch:.4g}; training energy/"
        f"epoch {cost.energy_per_epoch_pj:.4g} pJ, latency/step {cost.latency_per_step_ns:.4g} "
        f"ns, extra area {cost.extra_area_mm2:.4g} mm2; wrote {path} and log {log_csv}"
        + (f" and {summary}" if summary else "")
    )


@main.command()
@click.argument("arch")
@workload_argument
@click.option(
    "--checkpoint",
    required=True,
    type=click.Path(dir_okay=False),
    help="A checkpoint written by pimsim train.",
)
@click.option(
    "--data",
    "data_root",
    type=click.Path(file_okay=False),
    help="Dataset folder (MNIST IDX files or CIFAR python batches; MNIST defaults to "
    "the shipped copy).",
)
@click.option("--chips", type=click.IntRange(min=1, max=10_000), default=1, show_default=True,
              help="Chips to sample.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--limit", type=click.IntRange(min=1), help="Evaluate only the first N test images.")
@click.option("--self-tune", "self_tune", type=click.IntRange(min=0, max=MAX_IMAGES), default=0,
              show_default=True,
              help="Self-tune each chip on N calibration (training) images: per-channel "
              "output statistics mapped onto the nominal chip's, no weight reprogrammed.")
@click.option("--bn-calibration", "bn_images", type=click.IntRange(min=0, max=MAX_IMAGES),
              default=0,
              show_default=True,
              help="Re-estimate BatchNorm statistics on each chip from N training images.")
@click.option("--calibration", "cal_images", type=click.IntRange(min=1, max=MAX_IMAGES),
              default=256,
              show_default=True,
              help="Training images that set each chip's ADC ranges (adc.range calibrated or "
              "learned), the input scales of a float checkpoint and which layers take signed "
              "inputs (signed_inputs: auto).")
@device_option
@set_option
@format_options(choices=("table", "json"))
@user_errors
def accuracy(
    arch, workload, checkpoint, data_root, chips, seed, limit, self_tune, bn_images, cal_images,
    device, overrides, fmt, output
) -> None:
    """Accuracy of a trained WORKLOAD on ARCH (mean and spread over chips) and the measured ADC
    conversions per layer."""
    import copy
    import warnings

    import torch

    from pimsim.errors import WorkloadError
    from pimsim.oracle import accuracy as run
    from pimsim.oracle import resolve_device
    from pimsim.oracle._device import to_device
    from pimsim.oracle._memory import tune_cpu_allocator
    from pimsim.spec import load_arch
    from pimsim.training import chip_tuning
    from pimsim.training._checkpoint import load_checkpoint
    from pimsim.training._data import load_dataset
    from pimsim.training._train import dataset_of

    dev = resolve_device(device)
    tune_cpu_allocator()  # this process only: keep freed tensors' memory for reuse
    spec = load_arch(arch, overrides)
    dec = spec.decomposition
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, meta = load_checkpoint(checkpoint, dec.weight_bits, dec.input_bits)
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    name = model_name(workload)
    if meta.get("workload") != name:
        raise WorkloadError(f"checkpoint {checkpoint} holds {meta.get('workload')!r}, not {name!r}")
    dataset = dataset_of(name)
    x, y = load_dataset(dataset, data_root, "test")
    if limit:
        x, y = x[:limit], y[:limit]
    batches = list(zip(torch.split(x, 250), torch.split(y, 250), strict=True))
    x_train = load_dataset(dataset, data_root, "train")[0]
    calibration = list(torch.split(x_train[:cal_images], 250))
    tune = None
    if self_tune or bn_images:
        x_cal = x_train
        # the tuning runs on each chip where the chips compute: its model and images there too
        tuned = model if dev.type == "cpu" else copy.deepcopy(model).to(dev)
        tune = chip_tuning(
            tuned,
            spec,
            (1, *x.shape[1:]),
            [to_device(x_cal[: max(self_tune, bn_images)], dev)],
            bn_calibration=bool(bn_images),
            self_tuning=bool(self_tune),
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run(
            model,
            spec,
            batches,
            n_chips=chips,
            seed=seed,
            progress=chips > 1,
            tune=tune,
            calibration=calibration,
            device=dev,
        )
    payload = {
        "arch": spec.name,
        "workload": name,
        "checkpoint": str(checkpoint),
        "images": int(y.numel()),
        "chips": chips,
        "self_tune_images": self_tune,
        "bn_calibration_images": bn_images,
        "calibration_images": min(cal_images, len(x_train)),
        "adc_range": spec.adc.range,
        "adc_range_granularity": spec.adc.range_granularity,
        **result.to_dict(),
    }
    if dev.type != "cpu":  # the CPU's output is as it always was
        payload["device"] = f"{dev} ({_device_label(dev)})"
    if fmt == "json":
        write(json.dumps(payload, indent=2) + "\n", output)
        return
    where = f"PIM, {meta.get('arch')}" if meta.get("method") == "pimqat" else "digital"
    lines = [
        f"{name} on {spec.name}: {y.numel()} test images, {chips} chip(s)",
        f"accuracy mean {result.mean:.4f}  std {result.std:.4f}  worst {result.worst:.4f}",
        f"checkpoint accuracy ({where}): {meta.get('accuracy')}",
        f"ADC range: {spec.adc.range} per {spec.adc.range_granularity} "
        f"({payload['calibration_images']} calibration images)",
        "signed-input layers: " + (", ".join(result.signed_layers) or "none"),
        "ADC conversions per layer:",
    ]
    lines += [f"  {k}: {v}" for k, v in result.conversions.items()]
    if dev.type != "cpu":
        lines.append(f"device: {payload['device']}")
    write("\n".join(lines) + "\n", output)
