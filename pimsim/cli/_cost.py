"""Commands of the cost model: evaluate, inspect."""

from __future__ import annotations

import json

import click

from pimsim.cli._common import emit_table, format_options, main, set_option, user_errors, write


@main.command()
@click.argument("arch")
@click.argument("workload")
@set_option
@format_options
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    help="Save per-layer energy and the area breakdown as a PNG.",
)
@click.option(
    "--latency-model",
    type=click.Choice(["event", "analytical"]),
    default="event",
    show_default=True,
    help="Latency from the event-driven dataflow model, or from per-layer sums.",
)
@click.option(
    "--granularity",
    type=click.Choice(["row", "layer"]),
    default="row",
    show_default=True,
    help="Chunks of the event model: one per output row, or one per layer.",
)
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Inputs streamed back to back by the event model (throughput needs >= 2).",
)
@click.option(
    "--timeline",
    type=click.Path(dir_okay=False),
    help="Save a Gantt chart of layers and resource utilisation over time (event model).",
)
@user_errors
def evaluate(
    arch, workload, overrides, fmt, output, plot, latency_model, granularity, samples, timeline
) -> None:
    """Energy, latency and area of WORKLOAD (zoo name or YAML) on ARCH, per layer and in total."""
    from pimsim.cost import evaluate as run
    from pimsim.spec import load_arch
    from pimsim.workload import load_workload

    if timeline and latency_model != "event":
        raise click.UsageError("--timeline needs --latency-model event")
    report = run(
        load_arch(arch, overrides),
        load_workload(workload),
        latency_model=latency_model,
        granularity=granularity,
        samples=samples,
    )
    if fmt == "json":
        write(report.to_json() + "\n", output)
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
        extra = dict(report.totals)
        flow = report.dataflow
        if flow is not None:
            extra["latency_model"] = f"event ({flow.granularity} granularity, {flow.samples} samples)"
            extra["bottleneck"] = (
                f"{flow.bottleneck['resource']} ({flow.bottleneck['class']}, "
                f"{flow.bottleneck['busy_ns']:.6g} ns per input)"
            )
            extra["events"] = flow.events
        else:
            extra["latency_model"] = "analytical"
        emit_table(report.layers[cols], fmt, output, extra if fmt == "table" else None)
    if timeline:
        from pimsim.dataflow import plot_timeline

        plot_timeline(report.dataflow, timeline, title=f"{report.mapping.workload.name} on "
                      f"{report.mapping.arch.name}")
        click.echo(f"wrote {timeline}", err=True)
    if plot:
        from pimsim.cost._plot import plot_report

        plot_report(report, plot)
        click.echo(f"wrote {plot}", err=True)


@main.command()
@click.argument("arch")
@click.option("--workload", help="Size an auto chip (chip.tiles: auto) for this network.")
@set_option
@format_options
@user_errors
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
        write(json.dumps(payload, indent=2) + "\n", output)
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
