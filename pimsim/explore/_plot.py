"""Plots of a results table: the Pareto front (a scatter for two objectives, a pairwise grid for
more), parallel coordinates of the objectives, and the sensitivity of a metric to a parameter.

Axis labels carry the metric's unit and which way is better; an axis turns logarithmic when its
positive values span more than two decades. The artists that draw the front carry
``gid="pareto-front"``, so the front drawn can be read back from the figure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pimsim.errors import PimsimError
from pimsim.explore._pareto import as_objectives, feasible, listing, pareto
from pimsim.spec._metrics import METRICS, ObjectiveError
from pimsim.spec._sweep import CHECKPOINT_PARAMETER

FRONT_GID = "pareto-front"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label(metric: str, direction: str | None = None) -> str:
    m = METRICS.get(metric)
    text = m.axis_label if m else metric
    if direction:
        text += " (lower is better)" if direction == "min" else " (higher is better)"
    return text


def _spans_decades(values) -> bool:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return len(v) > 1 and v.max() / v.min() > 100


#: Columns that label a design like a parameter does (a sensitivity plot's x axis or hue).
_DESIGN_LABELS = ("arch", "workload")


def _is_parameter(column: str) -> bool:
    """Whether ``column`` holds a parameter: a field path, or the checkpoint label."""
    return "." in column or column == CHECKPOINT_PARAMETER


def _varying(frame, columns=None) -> list[str]:
    if columns is not None:
        return list(columns)
    return [
        c
        for c in frame.columns
        if _is_parameter(c) and frame[c].astype(str).nunique(dropna=False) > 1
    ]


def _text(row, columns) -> str:
    return ", ".join(str(row[c]) for c in columns)


#: Image formats a plot may be written as (by the file's suffix): matplotlib's, PNG first.
IMAGE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".eps")


def check_image_path(path) -> None:
    """Raise :class:`PimsimError` unless ``path`` names an image file that a plot can be
    written as (``.png``, or another format matplotlib writes: ``.pdf``, ``.svg``...)."""
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return
    what = f"'{suffix}' is not an image format" if suffix else "it has no suffix"
    raise PimsimError(
        f"{path}: cannot draw a plot into this file ({what}): give a FILE.png "
        f"(or {', '.join(IMAGE_SUFFIXES[1:4])}, ...)"
    )


def _save(fig, path):
    fig.tight_layout()
    if path is not None:
        check_image_path(path)
        fig.savefig(path, dpi=120)
    return fig


def plot_pareto(
    frame, objectives, constraints=(), path=None, *, label_columns=None, max_labels: int = 20
):
    """Draw the front of ``frame`` (two objectives: a labelled scatter; three or more: a pairwise
    grid) and save it to ``path`` when given; returns the matplotlib Figure."""
    plt = _pyplot()
    objectives = as_objectives(objectives)
    if len(objectives) < 2:
        raise ObjectiveError("a Pareto plot needs two or more objectives")
    front = pareto(frame, objectives, constraints)
    ok = frame[feasible(frame)]
    meets = feasible(ok, constraints)
    k = len(objectives)
    if k == 2:
        fig, ax = plt.subplots(figsize=(7.5, 5.5))
        axes = {(0, 1): ax}
    else:
        fig, grid = plt.subplots(
            k - 1, k - 1, figsize=(3.4 * (k - 1), 3.2 * (k - 1)), squeeze=False
        )
        axes = {}
        for r in range(1, k):
            for c in range(k - 1):
                if c < r:
                    axes[(c, r)] = grid[r - 1][c]
                else:
                    grid[r - 1][c].set_visible(False)
    for (i, j), ax in axes.items():
        xo, yo = objectives[i], objectives[j]
        ax.scatter(
            ok[xo.metric][meets],
            ok[yo.metric][meets],
            s=14,
            c="0.6",
            alpha=0.6,
            label=f"feasible designs ({int(meets.sum())})",
        )
        if (~meets).any():
            ax.scatter(
                ok[xo.metric][~meets],
                ok[yo.metric][~meets],
                s=14,
                c="0.8",
                marker="x",
                label=f"violate a constraint ({int((~meets).sum())})",
            )
        ax.scatter(
            front[xo.metric],
            front[yo.metric],
            s=40,
            c="tab:red",
            edgecolors="k",
            zorder=3,
            gid=FRONT_GID,
            label=f"Pareto front ({len(front)})",
        )
        if k == 2 and len(front):
            ax.plot(
                front[xo.metric],
                front[yo.metric],
                c="tab:red",
                lw=1,
                zorder=2,
                drawstyle="steps-post",
            )
        ax.set_xlabel(_label(xo.metric, xo.direction))
        ax.set_ylabel(_label(yo.metric, yo.direction))
        if _spans_decades(ok[xo.metric]):
            ax.set_xscale("log")
        if _spans_decades(ok[yo.metric]):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    first = next(iter(axes.values()))
    first.legend(fontsize=8, loc="best")
    title = "Pareto front: " + ", ".join(map(str, objectives))
    if constraints:
        title += "; " + ", ".join(map(str, constraints))
    if k == 2 and len(front):
        columns = _varying(frame, label_columns)
        picks = np.unique(np.linspace(0, len(front) - 1, min(max_labels, len(front))).astype(int))
        for n in picks:
            row = front.iloc[n]
            first.annotate(
                _text(row, columns),
                (row[objectives[0].metric], row[objectives[1].metric]),
                fontsize=7,
                xytext=(5, 4) if n % 2 == 0 else (5, -11),  # alternate: less overlap
                textcoords="offset points",
            )
        if columns:
            title += f"\nlabels: {', '.join(columns)}"
        if len(picks) < len(front):
            title += f" ({len(picks)} of {len(front)} front designs labelled)"
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_parallel(frame, objectives, constraints=(), path=None):
    """Parallel coordinates of the objectives (each axis scaled to [0, 1], better upward, its
    range annotated in real units): feasible designs faint, the front bold."""
    plt = _pyplot()
    objectives = as_objectives(objectives)
    front = pareto(frame, objectives, constraints)
    ok = frame[feasible(frame, constraints)]
    fig, ax = plt.subplots(figsize=(max(6, 2 * len(objectives)), 4.5))
    x = np.arange(len(objectives))

    def scaled(rows):
        cols = []
        for o in objectives:
            v = ok[o.metric].astype(float)
            lo, hi = v.min(), v.max()
            s = (
                (rows[o.metric].astype(float) - lo) / (hi - lo)
                if hi > lo
                else 0.5 + 0 * rows[o.metric].astype(float)
            )
            cols.append(1 - s if o.direction == "min" else s)
        return np.column_stack(cols) if cols else np.empty((0, 0))

    for line in scaled(ok):
        ax.plot(x, line, c="0.7", lw=0.6, alpha=0.5)
    for line in scaled(front):
        ax.plot(x, line, c="tab:red", lw=1.8, gid=FRONT_GID)
    for i, o in enumerate(objectives):
        v = ok[o.metric].astype(float)
        best, worst = (v.min(), v.max()) if o.direction == "min" else (v.max(), v.min())
        ax.annotate(
            f"{best:.3g}",
            (i, 1.0),
            xytext=(0, 4),
            textcoords="offset points",
            ha="center",
            fontsize=7,
        )
        ax.annotate(
            f"{worst:.3g}",
            (i, 0.0),
            xytext=(0, -10),
            textcoords="offset points",
            ha="center",
            fontsize=7,
        )
    ax.set_xticks(x, [_label(o.metric) for o in objectives], fontsize=8, rotation=10)
    ax.set_yticks([0, 1], ["worst", "best"])
    ax.set_ylim(-0.1, 1.1)
    ax.set_title(f"{len(front)} Pareto designs (red) of {len(ok)} feasible", fontsize=10)
    return _save(fig, path)


def plot_sensitivity(frame, parameter, metric, path=None, *, hue=None):
    """``metric`` against ``parameter`` over the ``ok`` rows: the median over every other
    parameter with its min-max band, one line per value of ``hue``."""
    import pandas as pd

    if path is not None:
        check_image_path(path)
    params = [c for c in frame.columns if _is_parameter(c) or c in _DESIGN_LABELS]
    metrics = [c for c in frame.columns if c in METRICS]
    for column, kind in ((parameter, "parameter"), (hue, "parameter"), (metric, "metric")):
        if column is None:
            continue
        known = params if kind == "parameter" else metrics
        if column not in frame:
            raise ObjectiveError(f"no {kind} column {column!r} (have: {listing(known)})")
        if kind == "parameter" and column not in params:
            raise ObjectiveError(
                f"{column!r} is not a parameter column (parameters: {listing(params)})"
            )
    ok = frame[frame["status"] == "ok"] if "status" in frame else frame
    present = ok[metric].dropna()
    values = pd.to_numeric(present, errors="coerce")
    if (pd.api.types.is_bool_dtype(present) or values.isna().any()) and len(present):
        example = present[values.isna()].iloc[0] if values.isna().any() else present.iloc[0]
        raise ObjectiveError(
            f"metric {metric!r} is not numeric (values such as {example!r}): give a numeric "
            f"one (metrics: {listing(metrics, 6)})"
        )
    if not len(present):
        raise ObjectiveError(
            f"metric {metric!r} has no values among the {len(ok)} feasible (status ok) designs: "
            "nothing to plot"
        )
    ok = ok.assign(**{metric: values.reindex(ok.index)})
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))

    numeric = pd.api.types.is_numeric_dtype(ok[parameter]) and not pd.api.types.is_bool_dtype(
        ok[parameter]
    )
    categories = list(dict.fromkeys(ok[parameter])) if not numeric else None
    groups = [(None, ok)] if hue is None else list(ok.groupby(hue, sort=False))
    for value, rows in groups:
        stats = rows.groupby(parameter, sort=numeric)[metric].agg(["median", "min", "max"])
        if categories is not None:
            stats = stats.reindex([c for c in categories if c in stats.index])
            xs = [categories.index(c) for c in stats.index]
        else:
            xs = stats.index.to_numpy(float)
        label = f"{hue} = {value}" if hue else "median"
        (line,) = ax.plot(xs, stats["median"], marker="o", label=label)
        ax.fill_between(xs, stats["min"], stats["max"], color=line.get_color(), alpha=0.15)
    if categories is not None:
        ax.set_xticks(range(len(categories)), [str(c) for c in categories])
    elif _spans_decades(ok[parameter]):
        ax.set_xscale("log")
    if _spans_decades(ok[metric]):
        ax.set_yscale("log")
    ax.set_xlabel(parameter)
    ax.set_ylabel(_label(metric))
    ax.set_title(
        f"{_label(metric)} vs {parameter} (median, band: min-max over the other parameters)",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)
