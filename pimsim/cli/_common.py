"""Conventions shared by every command: user errors as one line and exit status 2,
``--format``/``--output`` for tables, ``--set`` for arch overrides, and the ``main`` group."""

from __future__ import annotations

import functools
import json
import math
import sys
from pathlib import Path

import click

from pimsim.dataflow._model import DEFAULT_GRANULARITY
from pimsim.errors import PimsimError

EXIT_USER_ERROR = 2
#: Inputs the event model streams at most (throughput settles within a few; every sample is a
#: copy of the whole job graph).
MAX_SAMPLES = 256
#: Images a command draws from a dataset at most (CIFAR-10's training split).
MAX_IMAGES = 50_000


def user_errors(func):
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


def workload_argument(func):
    """WORKLOAD (a zoo name, a workload YAML file, an ONNX file or package.module:factory) as an
    argument, or a torch model as ``--model package.module:factory[:shape]``: one of the two."""

    @functools.wraps(func)
    def wrapper(*args, workload=None, model=None, **kwargs):
        if (workload is None) == (model is None):
            raise click.UsageError(
                "give WORKLOAD (a zoo name or a workload file) or --model "
                "package.module:factory[:input shape], "
                + ("not both" if workload is not None else "one of them")
            )
        return func(*args, workload=workload or model, **kwargs)

    wrapper = click.option(
        "--model",
        metavar="PKG.MODULE:FACTORY[:SHAPE]",
        help="A torch model instead of WORKLOAD: the nn.Module FACTORY() returns, traced on an "
        "input of SHAPE (batch excluded, e.g. 3,32,32; default: FACTORY.input_shape).",
    )(wrapper)
    return click.argument("workload", required=False)(wrapper)


def set_option(func):
    return click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="FIELD=VALUE",
        help="Override an arch field, e.g. --set adc.bits=5 (repeatable).",
    )(func)


def write(text: str, output: str | None) -> None:
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
    write(text, output)


class PositiveFloat(click.ParamType):
    """A finite number > 0 (click's FloatRange lets NaN and infinity through)."""

    name = "number > 0"

    def convert(self, value, param, ctx):
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number) or number <= 0:
            self.fail(f"{value!r} is not a finite number > 0", param, ctx)
        return number


_NO_ARGS = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click >= 8.2


class _OneLineErrors(click.Group):
    """The command group: a usage error (an unknown option, a value out of range, a missing
    argument) is one ``error:`` line naming the command's ``--help``, exit status 2, like every
    other user error; Ctrl-C or an end of input at a prompt is one line too."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except _NO_ARGS as exc:  # a bare group: its help
            click.echo(exc.ctx.get_help())
            sys.exit(0)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "pimsim"
            click.echo(f"error: {exc.format_message()} (see '{where} --help')", err=True)
            sys.exit(EXIT_USER_ERROR)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(EXIT_USER_ERROR)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pimsim")
def main() -> None:
    """pimsim: energy, area, latency and accuracy of neural networks on processing-in-memory
    accelerators described in YAML."""


def latency_label(report) -> str:
    """How a report's latency was computed: ``analytical``, or the event model with the
    granularity and samples it ran (a chip that is not pipelined runs whole layers)."""
    flow = report.dataflow
    if flow is None:
        return "analytical"
    return f"event ({flow.granularity} granularity, {flow.samples} samples)"


def latency_options(func):
    """``--latency-model``, ``--granularity`` and ``--samples``: how ``evaluate`` and
    ``compare`` time a design (the event model's settings)."""
    options = (
        click.option(
            "--latency-model",
            type=click.Choice(["event", "analytical"]),
            default="event",
            show_default=True,
            help="Latency from the event-driven dataflow model, or from per-layer sums.",
        ),
        click.option(
            "--granularity",
            type=click.Choice(["row", "layer"]),
            default=DEFAULT_GRANULARITY,
            show_default=True,
            help="Chunks of the event model: one per output row, or one per layer.",
        ),
        click.option(
            "--samples",
            type=click.IntRange(min=1, max=MAX_SAMPLES),
            default=2,
            show_default=True,
            help="Inputs streamed back to back by the event model (throughput needs >= 2).",
        ),
    )
    for option in reversed(options):
        func = option(func)
    return func
