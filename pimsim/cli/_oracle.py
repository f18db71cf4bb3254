"""Commands of the accuracy oracle: train, accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pimsim.cli._common import format_options, main, set_option, user_errors, write


@main.command()
@click.argument("arch")
@click.argument("workload")
@click.option(
    "--method",
    type=click.Choice(["float", "qat", "pimqat"]),
    default="qat",
    show_default=True,
    help="float; conventional digital QAT; or PIM-QAT through ARCH's PIM quantization.",
)
@click.option("--init", type=click.Path(dir_okay=False), help="Start from this checkpoint "
              "(PIM-QAT then fine-tunes: 2 epochs at half the recipe's learning rate).")
@click.option("--epochs", type=int, help="Training epochs (default: the recipe's).")
@click.option("--lr", type=float, help="Initial learning rate (default: the recipe's).")
@click.option("--batch-size", type=int, help="Images per step (default: the recipe's).")
@click.option("--train-samples", type=int, help="Train on the first N training images only.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--weight-bits", type=int, help="Default: ARCH's decomposition.weight_bits.")
@click.option("--input-bits", type=int, help="Default: ARCH's decomposition.input_bits.")
@click.option("--no-forward-rescale", is_flag=True, help="PIM-QAT without forward rescaling.")
@click.option("--no-backward-rescale", is_flag=True, help="PIM-QAT without backward rescaling.")
@click.option(
    "--adjusted-precision",
    type=int,
    default=0,
    show_default=True,
    help="PIM-QAT: train with this many ADC bits fewer than ARCH deploys.",
)
@click.option("--noise-injection", is_flag=True,
              help="PIM-QAT: keep ARCH's ADC non-idealities on while training.")
@click.option("--variability-aware", is_flag=True,
              help="PIM-QAT: keep ARCH's device variation on, a new chip every step.")
@click.option("--bn-calibration", "bn_images", type=int, default=0, show_default=True,
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
    "resume file beside it is written every epoch and continued from.",
)
@click.option("--log", "log_csv", type=click.Path(dir_okay=False),
              help="Per-epoch CSV log (default: the checkpoint's name with .csv).")
@click.option("--fresh", is_flag=True, help="Ignore an existing resume file.")
@set_option
@user_errors
def train(arch, workload, method, init, epochs, lr, batch_size, train_samples, seed, weight_bits,
          input_bits, no_forward_rescale, no_backward_rescale, adjusted_precision,
          noise_injection, variability_aware, bn_images, data_root, checkpoint, log_csv, fresh,
          overrides) -> None:
    """Train the zoo network WORKLOAD for ARCH: float, QAT or PIM-QAT, with a per-epoch CSV
    log and resumable checkpoints."""
    from pimsim.oracle._memory import tune_cpu_allocator
    from pimsim.spec import load_arch
    from pimsim.training import PimQatOptions, load_checkpoint, save_checkpoint
    from pimsim.training import train as run

    tune_cpu_allocator()  # this process only: keep freed tensors' memory for reuse
    spec = load_arch(arch, overrides)
    name = Path(workload).stem
    start = None
    if init:
        start, start_meta = load_checkpoint(init)
        if start_meta.get("workload") != name:
            from pimsim.errors import WorkloadError

            raise WorkloadError(f"--init {init} holds {start_meta.get('workload')!r}, not {name!r}")
    options = PimQatOptions(
        forward_rescale=not no_forward_rescale,
        backward_rescale=not no_backward_rescale,
        adjusted_precision=adjusted_precision,
        noise_injection=noise_injection,
        variability_aware=variability_aware,
    )
    path = Path(checkpoint or f"results/checkpoints/{name}_{method}.pt")
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
    )
    meta = {k: v for k, v in metrics.items() if k not in ("epoch_losses", "log")}
    meta.update(
        workload=name, method=method, seed=seed, accuracy=metrics["test_accuracy"], arch=spec.name
    )
    save_checkpoint(path, model, meta)
    where = f"on {spec.name} (PIM)" if method == "pimqat" else "(digital)"
    click.echo(
        f"test accuracy {metrics['test_accuracy']:.4f} {where}; wrote {path} and log {log_csv}"
    )
    if bn_images:
        click.echo(
            f"BN statistics re-estimated on {spec.name} (chip 0) from {bn_images} images: "
            f"test accuracy there {metrics['bn_calibrated_accuracy']:.4f}"
        )


@main.command()
@click.argument("arch")
@click.argument("workload")
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
@click.option("--chips", type=int, default=1, show_default=True, help="Chips to sample.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--limit", type=int, help="Evaluate only the first N test images.")
@click.option("--self-tune", "self_tune", type=int, default=0, show_default=True,
              help="Self-tune each chip on N calibration (training) images: per-channel "
              "output statistics mapped onto the nominal chip's, no weight reprogrammed.")
@click.option("--bn-calibration", "bn_images", type=int, default=0, show_default=True,
              help="Re-estimate BatchNorm statistics on each chip from N training images.")
@set_option
@format_options(choices=("table", "json"))
@user_errors
def accuracy(
    arch, workload, checkpoint, data_root, chips, seed, limit, self_tune, bn_images, overrides,
    fmt, output
) -> None:
    """Accuracy of a trained WORKLOAD on ARCH (mean and spread over chips) and the measured ADC
    conversions per layer."""
    import warnings

    import torch

    from pimsim.errors import WorkloadError
    from pimsim.oracle import accuracy as run
    from pimsim.training import chip_tuning
    from pimsim.training._checkpoint import load_checkpoint
    from pimsim.training._data import load_dataset
    from pimsim.oracle._memory import tune_cpu_allocator
    from pimsim.spec import load_arch

    tune_cpu_allocator()  # this process only: keep freed tensors' memory for reuse
    spec = load_arch(arch, overrides)
    dec = spec.decomposition
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, meta = load_checkpoint(checkpoint, dec.weight_bits, dec.input_bits)
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    name = Path(workload).stem
    if meta.get("workload") != name:
        raise WorkloadError(f"checkpoint {checkpoint} holds {meta.get('workload')!r}, not {name!r}")
    dataset = name.rsplit("_", 1)[-1]  # zoo names end in their dataset: lenet5_mnist
    x, y = load_dataset(dataset, data_root, "test")
    if limit:
        x, y = x[:limit], y[:limit]
    batches = list(zip(torch.split(x, 250), torch.split(y, 250), strict=True))
    tune = None
    if self_tune or bn_images:
        x_cal = load_dataset(dataset, data_root, "train")[0]
        tune = chip_tuning(
            model,
            spec,
            (1, *x.shape[1:]),
            [x_cal[: max(self_tune, bn_images)]],
            bn_calibration=bool(bn_images),
            self_tuning=bool(self_tune),
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run(
            model, spec, batches, n_chips=chips, seed=seed, progress=chips > 1, tune=tune
        )
    payload = {
        "arch": spec.name,
        "workload": name,
        "checkpoint": str(checkpoint),
        "images": int(y.numel()),
        "chips": chips,
        "self_tune_images": self_tune,
        "bn_calibration_images": bn_images,
        **result.to_dict(),
    }
    if fmt == "json":
        write(json.dumps(payload, indent=2) + "\n", output)
        return
    where = f"PIM, {meta.get('arch')}" if meta.get("method") == "pimqat" else "digital"
    lines = [
        f"{name} on {spec.name}: {y.numel()} test images, {chips} chip(s)",
        f"accuracy mean {result.mean:.4f}  std {result.std:.4f}  worst {result.worst:.4f}",
        f"checkpoint accuracy ({where}): {meta.get('accuracy')}",
        "ADC conversions per layer:",
    ]
    lines += [f"  {k}: {v}" for k, v in result.conversions.items()]
    write("\n".join(lines) + "\n", output)
