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


def format_options(func):
    """``--format table|json|csv`` and ``--output FILE``: the convention for table output."""
    func = click.option(
        "--output",
        "-o",
        type=click.Path(dir_okay=False, writable=True),
        help="Write to FILE instead of standard output.",
    )(func)
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "json", "csv"]),
        default="table",
        show_default=True,
        help="Output format.",
    )(func)


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
    if output:
        Path(output).write_text(text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pimsim")
def main() -> None:
    """pimsim: energy, area, latency and accuracy of neural networks on processing-in-memory
    accelerators described in YAML."""


@main.command()
@click.argument("files", nargs=-1, required=True)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="FIELD=VALUE",
    help="Override an arch field, e.g. --set adc.bits=5 (repeatable).",
)
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


if __name__ == "__main__":  # pragma: no cover
    main()
