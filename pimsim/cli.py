"""The ``pimsim`` command line. User errors print one line and exit with status 2."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from pimsim.errors import PimsimError, SpecError, SpecErrors

EXIT_USER_ERROR = 2


def _user_errors(func):
    """Turn pimsim's error types into one clear line on stderr and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except PimsimError as exc:
            for line in str(exc).splitlines():
                click.echo(f"error: {line}", err=True)
            sys.exit(EXIT_USER_ERROR)
        except OSError as exc:
            click.echo(f"error: {exc.filename or ''}: {exc.strerror}", err=True)
            sys.exit(EXIT_USER_ERROR)

    return wrapper


def format_options(func=None, *, choices=("table", "json", "csv")):
    """``--format table|json|csv`` and ``--output FILE``: the convention for table output
    (``choices`` narrows the formats a command offers)."""

    def decorate(func):
        func = click.option(
            "--output",
            "-o",
            type=click.Path(dir_okay=False, writable=True),
            help="Write to FILE instead of standard output.",
        )(func)
        return click.option(
            "--format",
            "fmt",
            type=click.Choice(list(choices)),
            default="table",
            show_default=True,
            help="Output format.",
        )(func)

    return decorate if func is None else decorate(func)


def _set_option(func):
    return click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="FIELD=VALUE",
        help="Override an arch field, e.g. --set adc.bits=5 (repeatable).",
    )(func)


def _write(text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


def emit_table(frame, fmt: str, output: str | None, extra: dict | None = None) -> None:
    """Print or write a pandas DataFrame as an aligned table, JSON (records) or CSV."""
    if fmt == "json":
        payload = {"rows": json.loads(frame.to_json(orient="records"))}
        payload.update(extra or {})
        text = json.dumps(payload, indent=2) + "\n"
    elif fmt == "csv":
        text = frame.to_csv(index=False)
    else:
        text = frame.to_string(index=False) + "\n"
        for key, value in (extra or {}).items():
            text += f"{key}: {value}\n"
    _write(text, output)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pimsim")
def main() -> None:
    """pimsim: energy, area, latency and accuracy of neural networks on processing-in-memory
    accelerators described in YAML."""


@main.command()
@click.argument("files", nargs=-1, required=True)
@_set_option
def validate(files: tuple[str, ...], overrides: tuple[str, ...]) -> None:
    """Check arch and workload YAML files; one line per error as file:line:col: field: message."""
    from pimsim.spec._load import load_any

    failed = False
    for name in files:
        try:
            kind, obj = load_any(name, overrides)
            click.echo(f"{name}: ok ({kind} {obj.name!r})")
        except SpecErrors as exc:
            failed = True
            for err in exc.errors:
                click.echo(str(err) if err.field or err.location else f"{name}: {err}", err=True)
        except SpecError as exc:
            failed = True
            click.echo(str(exc), err=True)
        except PimsimError as exc:
            failed = True
            click.echo(f"{name}: {exc}", err=True)
    sys.exit(EXIT_USER_ERROR if failed else 0)


@main.command()
@click.argument("kind", type=click.Choice(["arch", "workload"]), default="arch")
@_user_errors
def schema(kind: str) -> None:
    """Print the JSON Schema of a file kind (for editor completion)."""
    if kind == "arch":
        from pimsim.spec import ArchSpec as model
    else:
        from pimsim.workload._yaml import WorkloadFile as model
    click.echo(json.dumps(model.model_json_schema(by_alias=True), indent=2))


@main.command()
@format_options
@_user_errors
def workloads(fmt: str, output: str | None) -> None:
    """List the built-in networks."""
    import pandas as pd

    from pimsim.workload import load_workload, zoo_names

    rows = []
    for name in zoo_names():
        w = load_workload(name)
        rows.append(
            {
                "name": name,
                "input shape": "x".join(map(str, w.input_shape)),
                "layers": len(w.layers),
                "macs": w.macs,
                "weights": w.weights,
            }
        )
    emit_table(pd.DataFrame(rows), fmt, output)


@main.command()
@click.argument("workload")
@format_options
@_user_errors
def show(workload: str, fmt: str, output: str | None) -> None:
    """Print the layer table of WORKLOAD (a zoo name or a YAML file)."""
    from pimsim.workload import load_workload

    w = load_workload(workload)
    extra = {
        "workload": w.name,
        "input_shape": list(w.input_shape),
        "macs": w.macs,
        "weights": w.weights,
    }
    if fmt == "json":
        extra["edges"] = [list(e) for e in w.edges]
    emit_table(w.table(), fmt, output, extra if fmt != "csv" else None)


@main.command()
@click.argument("arch")
@click.argument("workload")
@_set_option
@format_options
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    help="Save per-layer energy and the area breakdown as a PNG.",
)
@_user_errors
def evaluate(arch, workload, overrides, fmt, output, plot) -> None:
    """Energy, latency and area of WORKLOAD (zoo name or YAML) on ARCH, per layer and in total."""
    from pimsim.cost import evaluate as run
    from pimsim.spec import load_arch
    from pimsim.workload import load_workload

    report = run(load_arch(arch, overrides), load_workload(workload))
    if fmt == "json":
        _write(report.to_json() + "\n", output)
    else:
        cols = [
            "name",
            "kind",
            "macs",
            "arrays",
            "copies",
            "adc_conversions",
            "energy_pj",
            "latency_ns",
        ]
        emit_table(report.layers[cols], fmt, output, report.totals if fmt == "table" else None)
    if plot:
        from pimsim.cost._plot import plot_report

        plot_report(report, plot)
        click.echo(f"wrote {plot}", err=True)


@main.command()
@click.argument("arch")
@click.option("--workload", help="Size an auto chip (chip.tiles: auto) for this network.")
@_set_option
@format_options
@_user_errors
def inspect(arch, workload, overrides, fmt, output) -> None:
    """Resolved decomposition, and area and peak power per hierarchy level and component class."""
    import pandas as pd

    from pimsim.cost import level_reports
    from pimsim.spec import load_arch

    spec = load_arch(arch, overrides)
    tiles = spec.chip.tiles if spec.chip.tiles != "auto" else None
    if workload:
        from pimsim.mapping import map_network
        from pimsim.workload import load_workload

        tiles = map_network(spec, load_workload(workload)).chip_tiles
    levels = level_reports(spec, tiles)
    dec = spec.decomposition
    resolved = {
        "scheme": dec.scheme,
        "input_bits": dec.input_bits,
        "weight_bits": dec.weight_bits,
        "signed_encoding": dec.signed_encoding,
        "signed_inputs": dec.signed_inputs,
        "dac.bits": spec.dac.bits,
        "cell.bits": spec.cell.bits,
        "weight_slices": spec.weight_slices,
        "input_cycles": spec.input_cycles,
    }
    if fmt == "json":
        payload = {
            "arch": spec.name,
            "decomposition": resolved,
            "levels": [lv.to_dict() for lv in levels],
        }
        _write(json.dumps(payload, indent=2) + "\n", output)
        return
    rows = []
    for lv in levels:
        rows.append(
            {
                "level": lv.name,
                "class": "(total)",
                "count": lv.count,
                "area_mm2": lv.area_mm2,
                "peak_power_mw": lv.peak_power_mw,
            }
        )
        for cls, v in lv.breakdown.items():
            rows.append(
                {
                    "level": lv.name,
                    "class": cls,
                    "count": lv.count,
                    "area_mm2": v["area_mm2"],
                    "peak_power_mw": v["peak_power_mw"],
                }
            )
    extra = {"decomposition": ", ".join(f"{k}={v}" for k, v in resolved.items())}
    if tiles is None:
        extra["chip"] = "chip.tiles is auto: give --workload for the chip level"
    emit_table(pd.DataFrame(rows), fmt, output, extra if fmt == "table" else None)


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
@_user_errors
def train(workload, method, epochs, seed, weight_bits, input_bits, data_root, checkpoint) -> None:
    """Train WORKLOAD (mlp_mnist or lenet5_mnist) on the fixed MNIST split, float or QAT."""
    from pimsim.oracle._checkpoint import save_checkpoint
    from pimsim.oracle._memory import tune_cpu_allocator
    from pimsim.oracle._train import train as run

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
@_set_option
@format_options(choices=("table", "json"))
@_user_errors
def accuracy(
    arch, workload, checkpoint, data_root, chips, seed, limit, overrides, fmt, output
) -> None:
    """Accuracy of a trained WORKLOAD on ARCH (mean and spread over chips) and the measured ADC
    conversions per layer."""
    import warnings

    import torch

    from pimsim.errors import WorkloadError
    from pimsim.oracle import accuracy as run
    from pimsim.oracle._checkpoint import load_checkpoint
    from pimsim.oracle._data import load_dataset
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
        _write(json.dumps(payload, indent=2) + "\n", output)
        return
    lines = [
        f"{name} on {spec.name}: {y.numel()} test images, {chips} chip(s)",
        f"accuracy mean {result.mean:.4f}  std {result.std:.4f}  worst {result.worst:.4f}",
        f"checkpoint accuracy (digital): {meta.get('accuracy')}",
        "ADC conversions per layer:",
    ]
    lines += [f"  {k}: {v}" for k, v in result.conversions.items()]
    _write("\n".join(lines) + "\n", output)


if __name__ == "__main__":  # pragma: no cover
    main()
