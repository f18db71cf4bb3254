"""Command comparing two designs on one workload: compare."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pimsim.cli._common import (
    format_options,
    latency_label,
    latency_options,
    main,
    set_option,
    user_errors,
    workload_argument,
    write,
)


def _side_option(side: str):
    return click.option(
        f"--set-{side}",
        f"overrides_{side}",
        multiple=True,
        metavar="FIELD=VALUE",
        help=f"Override an arch field of {side.upper()} only, after --set (repeatable).",
    )


@main.command()
@click.argument("arch_a")
@click.argument("arch_b")
@workload_argument
@set_option
@_side_option("a")
@_side_option("b")
@format_options
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    help="Save grouped bars of A and B as a PNG: energy and area by class, energy per layer.",
)
@latency_options
@user_errors
def compare(
    arch_a,
    arch_b,
    workload,
    overrides,
    overrides_a,
    overrides_b,
    fmt,
    output,
    plot,
    latency_model,
    granularity,
    samples,
) -> None:
    """Evaluate ARCH_A and ARCH_B on WORKLOAD and set them side by side with the ratio B/A:
    totals, energy and area by component class, energy and latency per layer."""
    from pimsim.cost import compare as side_by_side
    from pimsim.cost import evaluate
    from pimsim.spec import load_arch
    from pimsim.workload import load_workload

    spec_a = load_arch(arch_a, [*overrides, *overrides_a])
    spec_b = load_arch(arch_b, [*overrides, *overrides_b])
    wl = load_workload(workload)
    options = {"latency_model": latency_model, "granularity": granularity, "samples": samples}
    reports = [evaluate(spec, wl, **options) for spec in (spec_a, spec_b)]
    labels = _labels((spec_a.name, spec_b.name), (arch_a, arch_b), (overrides_a, overrides_b))
    result = side_by_side(*reports, labels=labels)
    if fmt == "json":
        write(json.dumps(result.to_dict(), indent=2) + "\n", output)
    elif fmt == "csv":
        write(result.frame().to_csv(index=False), output)
    else:
        model_a, model_b = (latency_label(r) for r in reports)
        model = model_a if model_a == model_b else f"A: {model_a}; B: {model_b}"
        write(_table(result, (arch_a, arch_b), model), output)
    if plot:
        from pimsim.cost._compare import plot_comparison

        plot_comparison(result, plot)
        click.echo(f"wrote {plot}", err=True)


def _labels(names, paths, side_overrides) -> tuple[str, str]:
    """The arch names; their file stems when the names are equal; the stem with each side's
    overrides (or A and B) when those are equal too."""
    if names[0] != names[1]:
        return names[0], names[1]
    stems = tuple(Path(p).stem for p in paths)
    if stems[0] != stems[1]:
        return stems
    labels = tuple(
        " ".join([stem, *sets]) if sets else stem
        for stem, sets in zip(stems, side_overrides, strict=True)
    )
    return labels if labels[0] != labels[1] else (f"{labels[0]} (A)", f"{labels[1]} (B)")


def _table(result, paths, latency_model: str) -> str:
    """The text form: a legend, then one aligned table per section with columns A, B, B/A."""
    sections = [
        ("totals", result.totals.rename(columns={"metric": ""})),
        ("energy by component class (pJ per sample)",
         result.energy_breakdown_pj.rename(columns={"class": ""})),
        ("area by component class (mm2)",
         result.area_breakdown_mm2.rename(columns={"class": ""})),
    ]  # fmt: skip
    layers = result.layers.rename(
        columns={
            "energy_pj_a": "energy_pj A",
            "energy_pj_b": "energy_pj B",
            "energy_ratio": "energy B/A",
            "latency_ns_a": "latency_ns A",
            "latency_ns_b": "latency_ns B",
            "latency_ratio": "latency B/A",
        }
    )
    lines = [
        f"A: {result.labels[0]} ({paths[0]})",
        f"B: {result.labels[1]} ({paths[1]})",
        f"workload: {result.workload}; latency model: {latency_model}",
    ]
    for title, frame in sections:
        frame = frame.rename(columns={"a": "A", "b": "B", "ratio": "B/A"})
        lines += ["", title, frame.to_string(index=False, float_format="{:.6g}".format)]
    lines += ["", "per layer", layers.to_string(index=False, float_format="{:.6g}".format)]
    return "\n".join(lines) + "\n"
