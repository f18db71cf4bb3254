"""Commands of the cost model: evaluate, inspect."""

from __future__ import annotations

import json

import click

from pimsim.cli._common import (
    emit_table,
    format_options,
    latency_label,
    latency_options,
    main,
    set_option,
    user_errors,
    workload_argument,
    write,
)


@main.command()
@click.argument("arch")
@workload_argument
@set_option
@format_options
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    help="Save per-layer energy and the area breakdown as a PNG.",
)
@latency_options
@click.option(
    "--timeline",
    type=click.Path(dir_okay=False),
    help="Save a Gantt chart of layers and resource utilisation over time (event model).",
)
@click.option(
    "--training",
    type=click.Choice(["backprop", "dfa"]),
    help="Also cost on-chip training with this learning rule (a 'training' section).",
)
@click.option(
    "--update",
    type=click.Choice(["exact", "pulsed", "mixed_precision"]),
    help="Weight-update scheme of --training (default: the spec's training.update).",
)
@click.option("--batch-size", type=click.IntRange(min=1),
              help="Samples per training step (default: the spec's training.batch_size).")
@click.option("--train-samples", type=click.IntRange(min=1),
              help="Training samples per epoch (default: the MNIST training split, 8000).")
@click.option(
    "--writes-from",
    type=click.Path(exists=True, dir_okay=False),
    help="JSON summary of 'pimsim train --rule ... --summary': its measured device writes and "
    "pulses per step, update scheme, batch and epoch size (else every weight is assumed "
    "rewritten every step).",
)
@user_errors
def evaluate(
    arch, workload, overrides, fmt, output, plot, latency_model, granularity, samples, timeline,
    training, update, batch_size, train_samples, writes_from,
) -> None:
    """Energy, latency and area of WORKLOAD (zoo name or YAML) on ARCH, per layer and in total;
    with --training, also per training step and epoch."""
    from pimsim.cost import evaluate as run
    from pimsim.spec import load_arch
    from pimsim.workload import load_workload

    if timeline and latency_model != "event":
        raise click.UsageError("--timeline needs --latency-model event")
    if not training and (update or batch_size or train_samples or writes_from):
        raise click.UsageError("--update, --batch-size, --train-samples and --writes-from "
                               "need --training")
    spec = load_arch(arch, overrides)
    wl = load_workload(workload)
    report = run(
        spec,
        wl,
        latency_model=latency_model,
        granularity=granularity,
        samples=samples,
    )
    train_report = None
    if training:
        train_report = _training_report(spec, wl, training, update, batch_size, train_samples,
                                        writes_from)
    if fmt == "json":
        data = report.to_dict()
        if train_report is not None:
            data["training"] = train_report.to_dict()
        write(json.dumps(data, indent=2, default=float) + "\n", output)
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
        if report.totals["cell_writes"]:  # reprogrammed in passes: each layer's writes
            cols[-2:-2] = ["cell_writes", "energy_write_pj"]
        extra = dict(report.totals)
        flow = report.dataflow
        if flow is not None:
            extra["latency_model"] = latency_label(report)
            extra["bottleneck"] = (
                f"{flow.bottleneck['resource']} ({flow.bottleneck['class']}, "
                f"{flow.bottleneck['busy_ns']:.6g} ns per input)"
            )
            extra["events"] = flow.events
        else:
            extra["latency_model"] = "analytical"
        if train_report is not None:
            t = train_report
            extra["training"] = (f"{t.rule}, {t.update} updates, batch {t.batch_size}, "
                                 f"{t.steps_per_epoch} steps/epoch")
            extra["training_energy_per_step_pj"] = t.energy_per_step_pj
            extra["training_energy_per_epoch_pj"] = t.energy_per_epoch_pj
            extra["training_latency_per_step_ns"] = t.latency_per_step_ns
            extra["training_latency_per_epoch_ns"] = t.latency_per_epoch_ns
            extra["training_error_latency_ns"] = t.error_latency_ns
            extra["training_writes_per_epoch"] = (
                f"{t.writes_per_step * t.steps_per_epoch:.6g}"
                + ("" if t.writes_measured else " (assumed: every weight every step)"))
            extra["training_extra_area_mm2"] = t.extra_area_mm2
        if fmt == "csv":
            emit_table(_csv_frame(report), fmt, output)
        else:
            emit_table(report.layers[cols], fmt, output, extra)
    if timeline:
        from pimsim.dataflow import plot_timeline

        plot_timeline(report.dataflow, timeline, title=f"{report.mapping.workload.name} on "
                      f"{report.mapping.arch.name}")
        click.echo(f"wrote {timeline}", err=True)
    if plot:
        from pimsim.cost._plot import plot_report

        plot_report(report, plot)
        click.echo(f"wrote {plot}", err=True)


def _csv_frame(report):
    """The CSV of ``evaluate``: one row per layer and a last ``(total)`` row, each with the
    energy breakdown by class (``energy_<class>_pj``; leakage in the total only, writes only
    when cells are written) and the total also with the chip area by class
    (``area_<class>_mm2``). Each row's classes sum to its ``energy_pj`` (and ``area_mm2``)."""
    import pandas as pd

    totals = report.totals
    breakdown = report.breakdown_columns()
    if not totals["cell_writes"]:
        breakdown.pop("energy_write_pj")
    energy = [c for c in breakdown if c.startswith("energy_")]
    area = [c for c in breakdown if c.startswith("area_")]
    head = ["name", "kind", "macs", "arrays", "copies", "adc_conversions"]
    head += ["cell_writes"] if totals["cell_writes"] else []
    head += ["energy_pj", "latency_ns"]
    total = {
        "name": "(total)",
        "macs": totals["macs"],
        "arrays": totals["arrays_used"],
        "adc_conversions": totals["adc_conversions"],
        "cell_writes": totals["cell_writes"],
        "energy_pj": totals["energy_pj"],
        "latency_ns": totals["latency_ns"],
        "area_mm2": totals["area_mm2"],
        **breakdown,
    }
    frame = report.layers.reindex(columns=[*head, *energy, "area_mm2", *area])
    frame = pd.concat([frame, pd.DataFrame([total], columns=frame.columns)], ignore_index=True)
    # integer counts stay integers beside the empty cells of the total row
    ints = ["macs", "arrays", "copies", "adc_conversions"]
    ints += ["cell_writes"] if "cell_writes" in frame else []
    return frame.astype({c: "Int64" for c in ints})


def _training_report(spec, wl, rule, update, batch_size, train_samples, writes_from):
    from pimsim.cost import training_cost
    from pimsim.cost._training import read_writes_summary

    writes = pulses = None
    if writes_from:
        measured = read_writes_summary(writes_from, wl, rule=rule, update=update)
        writes, pulses = measured["writes_per_step"], measured["pulses_per_step"]
        update = update or measured["update"]
        batch_size = batch_size or measured["batch_size"]
        train_samples = train_samples or measured["train_samples"]
    return training_cost(spec, wl, rule=rule, update=update, batch_size=batch_size,
                         train_samples=train_samples, writes_per_step=writes,
                         pulses_per_step=pulses)


def _signed_layers(spec, net, mapping) -> list[str]:
    """Mapped layers whose inputs the oracle quantizes as signed, by the graph alone (the
    oracle's rule without calibration data: image pixels as the network input)."""
    from pimsim.oracle._convert import _signed
    from pimsim.oracle._layers import non_negative_inputs

    nonneg = non_negative_inputs(net)
    return [n for n in mapping.layers if _signed(spec, n, nonneg, None, None)]


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
    signed_layers = None
    if workload:
        from pimsim.mapping import map_network
        from pimsim.workload import load_workload

        net = load_workload(workload)
        mapping = map_network(spec, net)
        tiles = mapping.chip_tiles
        signed_layers = _signed_layers(spec, net, mapping)
    levels = level_reports(spec, tiles)
    dec = spec.decomposition
    resolved = {
        "scheme": dec.scheme,
        "input_bits": dec.input_bits,
        "weight_bits": dec.weight_bits,
        "signed_encoding": dec.signed_encoding,
        "offset_reference": dec.offset_reference if dec.signed_encoding == "offset" else None,
        "signed_inputs": dec.signed_inputs,
        "dac.bits": spec.dac.bits,
        "cell.bits": spec.cell.bits,
        "weight_slices": spec.weight_slices,
        "input_cycles": spec.input_cycles,
        "adc.range": spec.adc.range,
        "adc.range_granularity": spec.adc.range_granularity,
    }
    if fmt == "json":
        payload = {
            "arch": spec.name,
            "decomposition": resolved,
            "levels": [lv.to_dict() for lv in levels],
        }
        if signed_layers is not None:
            payload["signed_input_layers"] = signed_layers
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
    if signed_layers is not None:
        extra["signed inputs"] = (", ".join(signed_layers) or "none") + (
            " (from the graph, image pixels as input; the oracle also looks at its calibration "
            "data)" if dec.signed_inputs == "auto" else ""
        )
    if tiles is None:
        extra["chip"] = "chip.tiles is auto: give --workload for the chip level"
    emit_table(pd.DataFrame(rows), fmt, output, extra if fmt == "table" else None)
