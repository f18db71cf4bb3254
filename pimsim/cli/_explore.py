"""Commands of design-space exploration: sweep, results, pareto, plot."""

from __future__ import annotations

from pathlib import Path

import click

from pimsim.cli._common import emit_table, format_options, main, user_errors, write
from pimsim.cli._oracle import device_option
from pimsim.errors import PimsimError

#: Columns the ``results`` and ``pareto`` tables show by default (with the parameters).
SHOWN_METRICS = (
    "energy_pj",
    "latency_ns",
    "area_mm2",
    "tops_per_w",
    "edp",
    "accuracy",
    "accuracy_worst",
)


def _shown(frame, roles: dict, metrics=()) -> list[str]:
    params = [c for c, r in roles.items() if r == "parameter" and c in frame]
    if frame["arch"].nunique() > 1:
        params.insert(0, "arch")
    if frame["workload"].nunique() > 1:
        params.insert(0, "workload")
    wanted = list(dict.fromkeys([*metrics, *SHOWN_METRICS]))
    shown = [c for c in wanted if c in frame and frame[c].notna().any()]
    return ["point", "status", *params, *shown]


def _store_frame(store: str, sweep: str | None = None):
    """The store's rows (of ``sweep``), column roles and sweeps, read read-only: the file is
    left exactly as it is, and one that is not a pimsim store is refused."""
    import sqlite3

    from pimsim.explore import ResultStore

    try:
        with ResultStore(store, readonly=True) as db:
            return db.frame(sweep), db.roles(), db.sweeps()
    except sqlite3.DatabaseError as exc:
        raise PimsimError(f"{store}: not a pimsim results store ({exc})") from None


def _sweep_info(sweeps: dict, name: str | None, store: str) -> dict:
    if name:
        if name not in sweeps:
            raise PimsimError(f"{store} holds no sweep {name!r} (it has: {', '.join(sweeps)})")
        return sweeps[name]
    if len(sweeps) == 1:
        return next(iter(sweeps.values()))
    return {}


def _write_front(front, columns, fmt, output) -> None:
    if fmt == "parquet":
        if not output:
            raise PimsimError("--format parquet needs --output FILE.parquet")
        _to_parquet(front, output)
        return
    emit_table(front[columns] if fmt == "table" else front, fmt, output)


def _to_parquet(frame, output: str) -> None:
    try:
        frame.to_parquet(output, index=False)
    except ImportError:
        raise PimsimError(
            'parquet export needs pyarrow: pip install -e ".[parquet]" (or pip install pyarrow)'
        ) from None
    click.echo(f"wrote {output}", err=True)


@main.command()
@click.argument("sweep_file", required=False)
@click.option(
    "--store",
    type=click.Path(dir_okay=False),
    help="Results store (default results/<sweep name>.sqlite).",
)
@click.option("--workers", type=click.IntRange(min=0, max=1024),
              help="Worker processes (default: every core; 0 = inline).")
@click.option(
    "--executor",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="Local process pool, or Dask.",
)
@click.option(
    "--scheduler", metavar="ADDRESS", help="Dask scheduler address (default: start a LocalCluster)."
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the sweep recorded in --store (no "
    "SWEEP_FILE needed); finished points are always skipped.",
)
@click.option("--fresh", is_flag=True, help="Delete the store first and evaluate everything.")
@click.option(
    "--plot/--no-plot",
    default=True,
    show_default=True,
    help="Draw the Pareto front beside the store (<store>_pareto.png).",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--max-points", type=click.IntRange(min=1), default=None,
              help="Refuse a sweep of more designs than this, before anything runs "
              "[default: 1,000,000].")
@device_option(default=None, help_extra=" Default: the sweep file's accuracy.device, else cpu. "
               "Every worker uses it (several workers may share one GPU); on-chip training "
               "sweeps run on the CPU.")
@user_errors
def sweep(sweep_file, store, workers, executor, scheduler, resume, fresh, plot, quiet,
          max_points, device) -> None:
    """Evaluate every design of SWEEP_FILE (a kind: sweep file) into a results store, then print
    the Pareto front of its objectives and write it as CSV (and a plot) beside the store."""
    from pimsim.explore import ResultStore
    from pimsim.explore import sweep as run

    if sweep_file is None:
        if not (resume and store):
            raise PimsimError("give a SWEEP_FILE, or --resume --store STORE")
        if not Path(store).is_file():
            raise PimsimError(f"{store}: no such results store")
        with ResultStore(store, readonly=True) as db:
            sweeps = db.sweeps()
        if len(sweeps) != 1:
            raise PimsimError(f"{store} holds {len(sweeps)} sweeps: give the SWEEP_FILE")
        sweep_file = next(iter(sweeps.values()))["source"]
    sweep_file = _on_device(sweep_file, device)
    result = run(
        sweep_file,
        store,
        workers=workers,
        executor=executor,
        scheduler=scheduler,
        progress=not quiet,
        fresh=fresh,
        max_points=max_points,
    )
    spec = result.sweep
    lines = [
        f"sweep {spec.name}: {result.evaluated} designs evaluated, {result.skipped} already in "
        f"the store, {result.infeasible} infeasible, {result.failed} failed; "
        f"{result.wall_s:.1f} s ({result.rate_per_min:,.0f} designs/min)",
    ]
    if spec.needs_accuracy:
        lines.append(f"oracle runs: {result.oracle_runs}")
    lines.append(f"store: {result.store}")
    click.echo("\n".join(lines), err=True)
    for error in result.errors[:3]:
        click.echo(f"warning: a design failed: {error}", err=True)
    if not spec.objectives:
        return
    front = result.pareto()
    frame = result.frame()
    base = result.store.with_suffix("")
    table = Path(f"{base}_pareto.csv")
    front.to_csv(table, index=False)
    with ResultStore(result.store, readonly=True) as db:
        roles = db.roles()
    columns = _shown(frame, roles, [o.metric for o in spec.objectives])
    objectives = ", ".join(map(str, spec.objectives))
    click.echo(f"Pareto front ({objectives}): {len(front)} of {len(frame)} designs")
    click.echo(front[columns].to_string(index=False))
    click.echo(f"wrote {table}", err=True)
    if plot:
        from pimsim.explore import plot_pareto

        image = Path(f"{base}_pareto.png")
        fig = plot_pareto(frame, spec.objectives, spec.constraints, image)
        import matplotlib.pyplot as plt

        plt.close(fig)
        click.echo(f"wrote {image}", err=True)


def _on_device(sweep_file, device: str | None):
    """The loaded sweep of ``sweep_file`` whose oracle or training runs on ``device`` (None: the
    file's ``accuracy.device``), checked here, before any design is evaluated: a GPU that is
    not there is one error, not one per design. The device enters no key: stored results stay
    valid across devices."""
    import dataclasses

    from pimsim.spec._sweep import TrainingBudget, load_sweep

    spec = load_sweep(sweep_file)
    budget = spec.accuracy
    if budget is None:
        return spec
    wanted = device or budget.device
    if wanted != "cpu" and isinstance(budget, TrainingBudget):
        from pimsim.training._rules import onchip_device

        onchip_device(wanted)  # refuses cuda: on-chip training runs on the CPU (auto: cpu)
        wanted = "cpu"
    elif wanted != "cpu":
        from pimsim.oracle import resolve_device

        resolve_device(wanted)
    if wanted == budget.device:
        return spec
    return dataclasses.replace(spec, accuracy=dataclasses.replace(budget, device=wanted))


@main.command()
@click.argument("store", type=click.Path(dir_okay=False))
@click.option("--sweep", "sweep_name", help="Only this sweep's rows (a store may hold several).")
@format_options(choices=("table", "csv", "json", "parquet"))
@click.option("--all-columns", is_flag=True, help="Every column in the table format too.")
@user_errors
def results(store, sweep_name, fmt, output, all_columns) -> None:
    """Print or export the designs stored in STORE (one row per design point)."""
    frame, roles, _ = _store_frame(store, sweep_name)
    columns = list(frame.columns) if all_columns else _shown(frame, roles) + ["error"]
    _write_front(frame, columns, fmt, output)


@main.command()
@click.argument("store", type=click.Path(dir_okay=False))
@click.option("--objectives", help="metric:min|max,... (default: the sweep's objectives).")
@click.option(
    "--constraint",
    "constraints",
    multiple=True,
    metavar="'METRIC OP NUMBER'",
    help="e.g. 'area_mm2 <= 50' (repeatable; default: the sweep's constraints).",
)
@click.option("--sweep", "sweep_name", help="Only this sweep's rows.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Draw the front to FILE.png.")
@click.option(
    "--parallel",
    type=click.Path(dir_okay=False),
    help="Draw parallel coordinates of the objectives to FILE.png.",
)
@format_options(choices=("table", "csv", "json", "parquet"))
@user_errors
def pareto(store, objectives, constraints, sweep_name, plot, parallel, fmt, output) -> None:
    """The non-dominated designs of STORE for the given objectives and constraints."""
    import matplotlib.pyplot as plt

    from pimsim.explore import pareto as front_of
    from pimsim.explore import plot_parallel, plot_pareto
    from pimsim.explore._pareto import why_empty
    from pimsim.explore._plot import check_image_path
    from pimsim.spec._metrics import parse_objectives

    for path in (plot, parallel):
        if path:
            check_image_path(path)
    frame, roles, sweeps = _store_frame(store, sweep_name)
    info = _sweep_info(sweeps, sweep_name, store)
    objectives = parse_objectives(objectives or info.get("objectives") or [])
    constraints = list(constraints) or list(info.get("constraints") or [])
    front = front_of(frame, objectives, constraints)
    columns = _shown(frame, roles, [o.metric for o in objectives])
    if not len(front):  # an answer, not an error: one line, and an empty table if one is asked
        line = f"{store}: {why_empty(frame, objectives, constraints)}"
        if fmt == "table":
            write(line + "\n", output)
        else:
            click.echo(line, err=True)
            _write_front(front, columns, fmt, output)
    else:
        if fmt == "table":
            head = f"Pareto front ({', '.join(map(str, objectives))}"
            head += f"; {', '.join(constraints)}" if constraints else ""
            click.echo(f"{head}): {len(front)} of {len(frame)} designs", err=bool(output))
        _write_front(front, columns, fmt, output)
    for path, draw in ((plot, plot_pareto), (parallel, plot_parallel)):
        if path:
            fig = draw(frame, objectives, constraints, path)
            plt.close(fig)
            click.echo(f"wrote {path}", err=True)


@main.command()
@click.argument("store", type=click.Path(dir_okay=False))
@click.option("--parameter", required=True, help="Parameter column (a field path, e.g. adc.bits).")
@click.option("--metric", required=True, help="Metric column (e.g. energy_pj).")
@click.option(
    "--hue", help="Another parameter (e.g. checkpoint, with several): one line per value."
)
@click.option("--sweep", "sweep_name", help="Only this sweep's rows.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    help="PNG to write (default <store>_<parameter>_<metric>.png).",
)
@user_errors
def plot(store, parameter, metric, hue, sweep_name, output) -> None:
    """Sensitivity plot: how METRIC varies with PARAMETER over the designs of STORE."""
    import matplotlib.pyplot as plt

    from pimsim.explore import plot_sensitivity
    from pimsim.explore._plot import check_image_path

    output = output or f"{Path(store).with_suffix('')}_{parameter}_{metric}.png"
    check_image_path(output)
    frame, _, _ = _store_frame(store, sweep_name)
    fig = plot_sensitivity(frame, parameter, metric, output, hue=hue)
    plt.close(fig)
    click.echo(f"wrote {output}", err=True)
