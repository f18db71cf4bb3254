"""Commands on spec and workload files: validate, schema, workloads, show."""

from __future__ import annotations

import json
import sys

import click

from pimsim.cli._common import (
    EXIT_USER_ERROR,
    emit_table,
    format_options,
    main,
    set_option,
    user_errors,
)
from pimsim.errors import PimsimError, SpecError, SpecErrors


@main.command()
@click.argument("files", nargs=-1, required=True)
@set_option
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
@click.argument("kind", type=click.Choice(["arch", "workload", "sweep"]), default="arch")
@user_errors
def schema(kind: str) -> None:
    """Print the JSON Schema of a file kind (for editor completion)."""
    if kind == "arch":
        from pimsim.spec import ArchSpec as model
    elif kind == "sweep":
        from pimsim.spec._sweep import SweepFile as model
    else:
        from pimsim.workload._yaml import WorkloadFile as model
    click.echo(json.dumps(model.model_json_schema(by_alias=True), indent=2))


@main.command()
@format_options
@user_errors
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
@user_errors
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
