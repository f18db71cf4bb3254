"""Commands of the accuracy oracle: train, accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pimsim.cli._common import format_options, main, set_option, user_errors, write


@main.command()
@click.argument("workload")
@click.option("--method", type=click.Choice(["float", "qat"]), default="qat", show_default=True)
@click.option("--epochs", type=int, help="Training epochs (default: the recipe's).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--weight-bits", type=int, default=8, show_default=True)
@click.option("--input-bits", type=int, default=8, show_default=True)
@click.option(
    "--data",
    "data_root",
    type=click.Path(file_okay=False),
    help="MNIST-format folder (default: the shipped copy).",
)
@click.option(
    "--checkpoint",
    "-o",
    "checkpoint",
    type=click.Path(dir_okay=False),
    help="Where to write the checkpoint (default results/checkpoints/WORKLOAD_METHOD.pt).",
)
@user_errors
def train(workload, method, epochs, seed, weight_bits, input_bits, data_root, checkpoint) -> None:
    """Train WORKLOAD (mlp_mnist or lenet5_mnist) on the fixed MNIST split, float or QAT."""
    from pimsim.training._checkpoint import save_checkpoint
    from pimsim.oracle._memory import tune_cpu_allocator
    from pimsim.training._train import train as run

    tune_cpu_allocator()  # this process only: keep freed tensors' memory for reuse
    model, metrics = run(
        workload,
        method,
        epochs=epochs,
        seed=seed,
        weight_bits=weight_bits,
        input_bits=input_bits,
        data_root=data_root,
    )
    path = checkpoint or f"results/checkpoints/{workload}_{method}.pt"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    meta = {k: v for k, v in metrics.items() if k != "epoch_losses"}
    meta.update(
        {
            "workload": workload,
            "method": method,
            "weight_bits": weight_bits,
            "input_bits": input_bits,
            "seed": seed,
            "accuracy": metrics["test_accuracy"],
        }
    )
    save_checkpoint(path, model, meta)
    click.echo(f"test accuracy {metrics['test_accuracy']:.4f}; wrote {path}")


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
@set_option
@format_options(choices=("table", "json"))
@user_errors
def accuracy(
    arch, workload, checkpoint, data_root, chips, seed, limit, overrides, fmt, output
) -> None:
    """Accuracy of a trained WORKLOAD on ARCH (mean and spread over chips) and the measured ADC
    conversions per layer."""
    import warnings

    import torch

    from pimsim.errors import WorkloadError
    from pimsim.oracle import accuracy as run
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run(model, spec, batches, n_chips=chips, seed=seed, progress=chips > 1)
    payload = {
        "arch": spec.name,
        "workload": name,
        "checkpoint": str(checkpoint),
        "images": int(y.numel()),
        "chips": chips,
        **result.to_dict(),
    }
    if fmt == "json":
        write(json.dumps(payload, indent=2) + "\n", output)
        return
    lines = [
        f"{name} on {spec.name}: {y.numel()} test images, {chips} chip(s)",
        f"accuracy mean {result.mean:.4f}  std {result.std:.4f}  worst {result.worst:.4f}",
        f"checkpoint accuracy (digital): {meta.get('accuracy')}",
        "ADC conversions per layer:",
    ]
    lines += [f"  {k}: {v}" for k, v in result.conversions.items()]
    write("\n".join(lines) + "\n", output)
