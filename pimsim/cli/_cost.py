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
@user_errors
def evaluate(arch, workload, overrides, fmt, output, plot) -> None:
    """Energy, latency and area of WORKLOAD (zoo name or YAML) on ARCH, per layer and in total."""
    from pimsim.cost import evaluate as run
    from pimsim.spec import load_arch
    from pimsim.workload import load_workload

    report = run(load_arch(arch, overrides), load_workload(workload))
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
        emit_table(report.layers[cols], fmt, output, report.totals if fmt == "table" else None)
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
