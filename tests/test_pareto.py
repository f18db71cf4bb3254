"""Pareto fronts against a brute-force dominance check, and the plots against the table."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from pimsim.explore import non_dominated, pareto, plot_parallel, plot_pareto, plot_sensitivity  # noqa: E402
from pimsim.spec._metrics import ObjectiveError  # noqa: E402

METRIC_NAMES = ["energy_pj", "latency_ns", "area_mm2", "accuracy"]


def brute_front(values: np.ndarray) -> set[int]:
    """O(n^2): rows (minimised, no NaN rows) that no other row dominates."""
    out = set()
    for i, a in enumerate(values):
        if np.isnan(a).any():
            continue
        dominated = False
        for j, b in enumerate(values):
            if j != i and not np.isnan(b).any() and (b <= a).all() and (b < a).any():
                dominated = True
                break
        if not dominated:
            out.add(i)
    return out


def random_frame(rng, n: int, k: int):
    data = {name: rng.integers(0, 6, n).astype(float) for name in METRIC_NAMES[:k]}
    data["tops_per_w"] = rng.integers(0, 4, n).astype(float)  # a constrained extra column
    data["status"] = rng.choice(["ok", "ok", "ok", "infeasible"], n)
    return pd.DataFrame(data)


@pytest.mark.parametrize("seed", range(30))
def test_front_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(1, 300)), int(rng.integers(2, 5))
    frame = random_frame(rng, n, k)
    directions = rng.choice(["min", "max"], k)
    objectives = [f"{m}:{d}" for m, d in zip(METRIC_NAMES[:k], directions, strict=True)]
    bound = float(rng.integers(0, 4))
    constraint = f"tops_per_w >= {bound}"
    front = pareto(frame, objectives, [constraint])
    signs = np.array([1.0 if d == "min" else -1.0 for d in directions])
    ok = (frame["status"] == "ok") & (frame["tops_per_w"] >= bound)
    idx = np.flatnonzero(ok.to_numpy())
    values = frame[METRIC_NAMES[:k]].to_numpy(float)[idx] * signs
    expected = {int(idx[i]) for i in brute_front(values)}
    assert set(front.index) == expected
    assert frame.loc[front.index, "status"].eq("ok").all()
    first = front[METRIC_NAMES[0]].to_numpy()  # sorted by the first objective, best first
    assert (np.diff(first * signs[0]) >= 0).all()


@pytest.mark.parametrize("seed", range(10))
def test_non_dominated_with_nan_and_duplicates(seed):
    rng = np.random.default_rng(100 + seed)
    values = rng.integers(0, 4, (60, 3)).astype(float)
    values[rng.integers(0, 60, 5), rng.integers(0, 3, 5)] = np.nan
    values[10] = values[11]  # a duplicated row
    mask = non_dominated(values)
    assert set(np.flatnonzero(mask)) == brute_front(values)
    assert not mask[np.isnan(values).any(axis=1)].any()


def test_edge_cases():
    empty = pd.DataFrame({"energy_pj": [], "area_mm2": [], "status": []})
    assert pareto(empty, "energy_pj:min,area_mm2:min").empty
    none_ok = pd.DataFrame(
        {"energy_pj": [1.0, 2.0], "area_mm2": [2.0, 1.0], "status": ["infeasible", "failed"]}
    )
    assert pareto(none_ok, "energy_pj,area_mm2").empty
    one = pd.DataFrame({"energy_pj": [3.0], "area_mm2": [4.0]})
    assert list(pareto(one, "energy_pj,area_mm2").index) == [0]
    same = pd.DataFrame({"energy_pj": [1.0] * 4, "area_mm2": [2.0] * 4})
    assert len(pareto(same, "energy_pj,area_mm2")) == 4
    assert non_dominated(np.empty((0, 2))).shape == (0,)


def test_errors_name_the_columns():
    frame = pd.DataFrame({"energy_pj": [1.0], "area_mm2": [1.0]})
    with pytest.raises(ObjectiveError, match="unknown metric 'energi_pj'; did you mean"):
        pareto(frame, "energi_pj:min,area_mm2:min")
    with pytest.raises(ObjectiveError, match="objective 'accuracy'.*metrics: energy_pj, area_mm2"):
        pareto(frame, "energy_pj:min,accuracy:max")
    with pytest.raises(ObjectiveError, match="constraint on 'latency_ns'"):
        pareto(frame, "energy_pj,area_mm2", ["latency_ns <= 3"])


def sweep_like(rng, n=80):
    return pd.DataFrame(
        {
            "status": ["ok"] * (n - 5) + ["infeasible"] * 5,
            "adc.bits": rng.integers(3, 9, n),
            "decomposition.scheme": rng.choice(["native", "bit_serial"], n),
            "energy_pj": rng.lognormal(8, 2, n),
            "accuracy": rng.uniform(0.1, 0.99, n),
            "area_mm2": rng.uniform(5, 50, n),
        }
    )


def test_plotted_front_is_the_table_front(tmp_path):
    frame = sweep_like(np.random.default_rng(1))
    objectives = "energy_pj:min,accuracy:max"
    front = pareto(frame, objectives, ["area_mm2 <= 40"])
    fig = plot_pareto(frame, objectives, ["area_mm2 <= 40"], tmp_path / "f.png")
    drawn = [c for ax in fig.axes for c in ax.collections if c.get_gid() == "pareto-front"]
    assert len(drawn) == 1
    points = {tuple(p) for p in np.asarray(drawn[0].get_offsets())}
    assert points == set(zip(front["energy_pj"], front["accuracy"], strict=True))
    assert fig.axes[0].get_xscale() == "log"  # energy spans decades
    assert (tmp_path / "f.png").stat().st_size > 0
    plt.close(fig)
    fig = plot_pareto(frame, "energy_pj:min,accuracy:max,area_mm2:min", path=tmp_path / "g.png")
    front3 = pareto(frame, "energy_pj:min,accuracy:max,area_mm2:min")
    drawn = [c for ax in fig.axes for c in ax.collections if c.get_gid() == "pareto-front"]
    assert len(drawn) == 3 and all(len(c.get_offsets()) == len(front3) for c in drawn)
    plt.close(fig)
    fig = plot_parallel(frame, "energy_pj:min,accuracy:max,area_mm2:min", path=tmp_path / "p.png")
    lines = [ln for ax in fig.axes for ln in ax.lines if ln.get_gid() == "pareto-front"]
    assert len(lines) == len(front3)
    plt.close(fig)


def test_sensitivity_plot(tmp_path):
    frame = sweep_like(np.random.default_rng(2))
    fig = plot_sensitivity(
        frame, "adc.bits", "energy_pj", tmp_path / "s.png", hue="decomposition.scheme"
    )
    assert len(fig.axes[0].lines) == 2 and (tmp_path / "s.png").stat().st_size > 0
    plt.close(fig)
    fig = plot_sensitivity(frame, "decomposition.scheme", "accuracy")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == list(
        dict.fromkeys(frame.loc[frame.status == "ok", "decomposition.scheme"])
    )
    plt.close(fig)
    with pytest.raises(ObjectiveError, match="no parameter column 'adc.bitz'"):
        plot_sensitivity(frame, "adc.bitz", "energy_pj")
