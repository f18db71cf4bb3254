"""Timeline of a dataflow simulation: a Gantt chart of layers and resource utilisation over time."""

from __future__ import annotations

from collections import defaultdict

from pimsim.dataflow._kernel import PS_PER_NS
from pimsim.dataflow._model import CLASSES, DataflowResult

COLORS = {
    "compute": "#4c72b0",
    "adc": "#dd8452",
    "buffer": "#55a868",
    "interconnect": "#c44e52",
    "digital": "#8172b3",
}


def _unit(span_ns: float) -> tuple[float, str]:
    if span_ns >= 1e6:
        return 1e6, "ms"
    if span_ns >= 1e3:
        return 1e3, "us"
    return 1.0, "ns"


def plot_timeline(result: DataflowResult, path=None, title: str | None = None, bins: int = 200):
    """Draw ``result``'s trace: top, one row per layer with its jobs coloured by class (every
    streamed sample, later samples lighter); bottom, per resource class, the busy fraction of its
    busiest resource over time (legend: resources of the class). Saves a PNG when ``path`` is
    given; returns the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    tr = result.trace
    rows = tr.rows()
    end = max(f for *_, f in rows) if rows else 1
    scale, unit = _unit(end / PS_PER_NS)
    to_x = 1.0 / (PS_PER_NS * scale)
    layers = list(dict.fromkeys(tr.layer))
    fig, (ax, ax2) = plt.subplots(
        2, 1, figsize=(11, 2.2 + 0.22 * len(layers) + 2.2), sharex=True,
        gridspec_kw={"height_ratios": [max(2.0, 0.22 * len(layers)), 2.2]},
    )
    bars: dict[tuple[int, str, int], list] = defaultdict(list)
    for layer, cls, _stage, sample, _res, s, f in rows:
        if f > s:
            bars[(layers.index(layer), cls, sample)].append(((s * to_x), (f - s) * to_x))
    for (y, cls, sample), spans in bars.items():
        alpha = 0.9 if sample == 0 else 0.35
        ax.broken_barh(spans, (y - 0.4, 0.8), facecolors=COLORS.get(cls, "#999999"),
                       alpha=alpha, linewidth=0)
    ax.set_yticks(range(len(layers)))
    ax.set_yticklabels(layers, fontsize=7)
    ax.invert_yaxis()
    ax.set_ylabel("layer")
    ax.legend(
        handles=[Patch(color=COLORS[c], label=c) for c in CLASSES if any(k[1] == c for k in bars)],
        loc="upper right", fontsize=8, ncol=5,
    )
    ax.set_title(title or (
        f"{result.samples} sample(s), {result.granularity} granularity: latency "
        f"{result.latency_ns / scale:.3g} {unit}, {result.throughput_fps:,.0f} inputs/s, "
        f"{result.events:,} events"
    ))
    # utilisation: per time bin, the busy fraction of the busiest resource of each class
    width = end / bins
    per_res: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0] * bins)
    for _layer, cls, _stage, _sample, res, s, f in rows:
        if not res or f <= s:
            continue
        acc = per_res[(cls, res)]
        b0, b1 = int(s // width), min(bins - 1, int((f - 1) // width))
        for b in range(b0, b1 + 1):
            lo, hi = max(s, b * width), min(f, (b + 1) * width)
            acc[b] += (hi - lo) / width
    xs = [(b + 0.5) * width * to_x for b in range(bins)]
    for cls in CLASSES:
        series = [v for (c, _), v in per_res.items() if c == cls]
        if series:
            peak = [max(v[b] for v in series) for b in range(bins)]
            ax2.plot(xs, peak, color=COLORS[cls], label=f"{cls} ({len(series)})")
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel("busiest resource\nbusy fraction")
    ax2.set_xlabel(f"time ({unit})")
    ax2.legend(fontsize=8, ncol=5, loc="upper right", title="class (resources)",
               title_fontsize=8)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return fig
