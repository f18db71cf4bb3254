"""Design sweeps: sweep files, design points, the results store, resumption after a kill, the
accuracy cache, the executors and the search strategies."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest

import pimsim
from pimsim.errors import SpecError
from pimsim.explore import ResultStore, read_results, sweep
from pimsim.explore._points import KeyMaker, grid_points, random_points
from pimsim.explore._store import TIMING_COLUMNS
from pimsim.spec import ORACLE_FIELDS, load_sweep, oracle_fields
from tests._cli import ROOT, run_cli
from tests.conftest import SMALL_ARCH, UNIT_ARCH

CHECKPOINT = ROOT / "results" / "checkpoints" / "lenet5_mnist_qat.pt"


def write_sweep(folder: Path, body: str, name: str = "s.yaml") -> Path:
    """A sweep file beside the unit and small arch files."""
    (folder / "unit.yaml").write_text(UNIT_ARCH)
    (folder / "small.yaml").write_text(SMALL_ARCH)
    path = folder / name
    path.write_text(body)
    return path


GRID = """\
kind: sweep
name: grid
arch: unit.yaml
workload: mlp_mnist
parameters:
  adc.bits: {range: [4, 8], step: 2}
  technology.clock_hz: {range: [1.0e8, 1.0e10], count: 3, scale: log}
linked:
  - {array.rows: [64, 128], array.rows_per_adc_read: [16, 32]}
objectives: [energy_pj:min, latency_ns:min]
"""


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """A store's table without the columns that differ between runs (timings)."""
    out = frame.drop(columns=[c for c in TIMING_COLUMNS if c in frame])
    return out.sort_values("key").reset_index(drop=True)


# -- sweep files ------------------------------------------------------------------------------


def test_grid_is_the_product_with_linked_fields_zipped(tmp_path):
    spec = load_sweep(write_sweep(tmp_path, GRID))
    points = grid_points(spec, KeyMaker.of(spec))
    assert len(points) == spec.grid_size == 3 * 3 * 2
    values = {tuple(sorted(p.values)) for p in points}
    assert len(values) == 18
    assert {p.overrides["adc.bits"] for p in points} == {4, 6, 8}
    assert sorted({p.overrides["technology.clock_hz"] for p in points}) == [1e8, 1e9, 1e10]
    assert {
        (p.overrides["array.rows"], p.overrides["array.rows_per_adc_read"]) for p in points
    } == {
        (64, 16),
        (128, 32),
    }
    assert [p.index for p in points] == list(range(18))
    assert len({p.request for p in points}) == 18


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("{range: [3, 7]}", [3, 4, 5, 6, 7]),
        ("{range: [16, 256], count: 5, scale: log}", [16, 32, 64, 128, 256]),
        ("{range: [0.5, 2.0], step: 0.5}", [0.5, 1.0, 1.5, 2.0]),
        ("{range: [1, 10], count: 4}", [1, 4, 7, 10]),
        ("{range: [1, 3], count: 7}", [1, 2, 3]),  # rounded to integers, duplicates dropped
        ("{values: [x, y]}", ["x", "y"]),
    ],
)
def test_range_values(tmp_path, spec, expected):
    body = GRID.split("parameters:")[0] + f"parameters:\n  adc.bits: {spec}\n"
    sweep_spec = load_sweep(write_sweep(tmp_path, body))
    assert [v[0] for v in sweep_spec.dimensions[0].values] == expected


def test_random_points_are_distinct_and_repeatable(tmp_path):
    body = GRID.replace("objectives", "strategy: {kind: random, n: 7, seed: 3}\nobjectives")
    spec = load_sweep(write_sweep(tmp_path, body))
    keys = KeyMaker.of(spec)
    first = random_points(spec, keys, 7, 3)
    assert len(first) == 7 and len({p.request for p in first}) == 7
    assert [p.request for p in random_points(spec, keys, 7, 3)] == [p.request for p in first]
    assert [p.request for p in random_points(spec, keys, 7, 4)] != [p.request for p in first]
    assert len(random_points(spec, keys, 100, 0)) == 18  # the whole grid when it is smaller


MALFORMED = {
    "unknown_path": ("  adc.bitz: [4, 5]\n", "parameters.adc.bitz", "did you mean 'bits'"),
    "unknown_section": ("  adcc.bits: [4, 5]\n", "parameters.adcc.bits", "unknown field 'adcc'"),
    "empty_range": ("  adc.bits: {range: [8, 3]}\n", "parameters.adc.bits.range", "empty range"),
    "empty_list": ("  adc.bits: []\n", "parameters.adc.bits", "empty list"),
    "component_index": (
        "  pe.components[9].count: [1, 2]\n",
        "parameters.pe.components[9].count",
        "no [9]",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_parameters_exit_2_with_position(tmp_path, case):
    lines, field, message = MALFORMED[case]
    body = "kind: sweep\nname: bad\narch: unit.yaml\nworkload: mlp_mnist\nparameters:\n" + lines
    path = write_sweep(tmp_path, body)
    result = run_cli("sweep", str(path), "--store", str(tmp_path / "s.sqlite"))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{path}:6:" in result.stderr and field in result.stderr and message in result.stderr
    assert not (tmp_path / "s.sqlite").exists()


HEAD = "kind: sweep\nname: bad\narch: unit.yaml\nworkload: mlp_mnist\n"
MALFORMED_OTHER = {
    "objective": (
        "parameters: {adc.bits: [4]}\nobjectives: [energy_pj:min, enrgy_pj:min]\n",
        6,
        "objectives[1]",
        "did you mean 'energy_pj'",
    ),
    "direction": ("objectives: [energy_pj:up]\n", 5, "objectives[0]", "min or max"),
    "contradictory": (
        "constraints: ['area_mm2 <= 10', 'area_mm2 >= 50']\n",
        5,
        "constraints",
        "contradict",
    ),
    "twice_linked": (
        "parameters: {adc.bits: [4, 5]}\nlinked:\n  - {adc.bits: [4, 5], array.rows: [64, 128]}\n",
        7,
        "linked[0].adc.bits",
        "given twice (first at line 5)",
    ),
    "twice_set": (
        "set: {adc: {bits: 5}}\nparameters: {adc.bits: [4, 5]}\n",
        6,
        "parameters.adc.bits",
        "overlaps adc",
    ),
    "twice_yaml": (
        "parameters:\n  adc.bits: [4]\n  adc.bits: [5]\n",
        7,
        "parameters.adc.bits",
        "duplicate key",
    ),
    "linked_lengths": (
        "linked:\n  - {array.rows: [64, 128], array.rows_per_adc_read: [16]}\n",
        6,
        "linked[0]",
        "one length",
    ),
    "accuracy_without_budget": (
        "objectives: [accuracy:max]\n",
        5,
        "objectives",
        "add an 'accuracy:' section",
    ),
    "grid_continuous": (
        "parameters: {technology.clock_hz: {range: [1.0e8, 1.0e9]}}\n",
        5,
        "parameters.technology.clock_hz.range",
        "give 'step' or 'count'",
    ),
    "search_without_n": (
        "strategy: {kind: nsga2}\nobjectives: [energy_pj:min]\n",
        5,
        "strategy",
        "needs 'n'",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_OTHER))
def test_malformed_sweeps_name_line_and_field(tmp_path, case):
    lines, line, field, message = MALFORMED_OTHER[case]
    path = write_sweep(tmp_path, HEAD + lines)
    with pytest.raises(SpecError) as info:
        load_sweep(path)
    text = str(info.value)
    assert f"{path}:{line}:" in text and field in text and message in text, text
    result = run_cli("validate", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{path}:{line}:" in result.stderr


def test_missing_arch_and_checkpoint_are_errors(tmp_path):
    path = write_sweep(tmp_path, HEAD.replace("unit.yaml", "nope.yaml"))
    with pytest.raises(SpecError, match="arch file nope.yaml not found"):
        load_sweep(path)
    body = HEAD + "accuracy: {checkpoint: missing.pt}\n"
    with pytest.raises(SpecError, match=r"s\.yaml:5:.*accuracy.checkpoint.*not found"):
        load_sweep(write_sweep(tmp_path, body))
    body = HEAD + f"accuracy: {{checkpoint: {CHECKPOINT}}}\n"  # a LeNet-5 checkpoint for an MLP
    with pytest.raises(SpecError, match="holds 'lenet5_mnist', not 'mlp_mnist'"):
        load_sweep(write_sweep(tmp_path, body))


def test_schema_sweep_lists_fields():
    result = run_cli("schema", "sweep")
    assert result.returncode == 0
    for name in ("parameters", "linked", "objectives", "constraints", "strategy", "accuracy"):
        assert f'"{name}"' in result.stdout


# -- running and storing ----------------------------------------------------------------------


def test_sweep_stores_every_point_and_skips_them_on_rerun(tmp_path):
    path = write_sweep(tmp_path, GRID)
    store = tmp_path / "grid.sqlite"
    first = sweep(path, store, workers=0, progress=False)
    assert (first.evaluated, first.skipped, first.infeasible, first.failed) == (18, 0, 0, 0)
    frame = read_results(store)
    assert len(frame) == 18 and frame["key"].is_unique and (frame["status"] == "ok").all()
    # the costs are the cost model's, point by point
    row = frame.iloc[5]
    spec = pimsim.load_arch(
        tmp_path / "unit.yaml",
        {
            k: row[k].item()
            for k in ("adc.bits", "technology.clock_hz", "array.rows", "array.rows_per_adc_read")
        },
    )
    totals = pimsim.evaluate(spec, pimsim.load_workload("mlp_mnist")).totals
    assert (
        row["energy_pj"] == totals["energy_pj"]
        and row["adc_conversions"] == totals["adc_conversions"]
    )
    assert row["edp"] == pytest.approx(totals["energy_pj"] * totals["latency_ns"], rel=1e-12)
    again = sweep(path, store, workers=2, progress=False)
    assert (again.evaluated, again.skipped) == (0, 18)
    assert comparable(read_results(store)).equals(comparable(frame))
    with sqlite3.connect(store) as db:  # pandas.read_sql works on the store as it is
        assert len(pd.read_sql("SELECT * FROM points", db)) == 18
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_pool_and_inline_give_the_same_table(tmp_path):
    path = write_sweep(tmp_path, GRID)
    sweep(path, tmp_path / "a.sqlite", workers=0, progress=False)
    sweep(path, tmp_path / "b.sqlite", workers=2, progress=False)
    assert comparable(read_results(tmp_path / "a.sqlite")).equals(
        comparable(read_results(tmp_path / "b.sqlite"))
    )


def test_invalid_combinations_become_infeasible_points(tmp_path):
    # 256 rows per read on 128-row arrays is a spec error; so is native (8-bit cells) with the
    # twos_complement encoding that the fixed overrides force.
    body = HEAD + (
        "parameters:\n"
        "  array.rows_per_adc_read: [32, 256]\n"
        "  decomposition.scheme: [bit_serial, native]\n"
        "set: {decomposition.signed_encoding: twos_complement}\n"
    )
    path = write_sweep(tmp_path, body)
    result = sweep(path, tmp_path / "s.sqlite", workers=0, progress=False)
    frame = read_results(tmp_path / "s.sqlite")
    assert result.evaluated == 4 and result.infeasible == 3
    ok = frame[frame.status == "ok"]
    assert len(ok) == 1 and ok.iloc[0]["decomposition.scheme"] == "bit_serial"
    errors = frame.set_index(["array.rows_per_adc_read", "decomposition.scheme"])["error"]
    assert "exceeds array.rows = 128" in errors[(256, "bit_serial")]
    assert "twos_complement needs cell.bits = 1" in errors[(32, "native")]
    assert frame["energy_pj"][frame.status == "infeasible"].isna().all()


def test_unmappable_chip_is_infeasible(tmp_path):
    body = HEAD + "parameters:\n  chip.tiles: [1, 64]\n"
    result = sweep(write_sweep(tmp_path, body), tmp_path / "s.sqlite", workers=0, progress=False)
    frame = read_results(tmp_path / "s.sqlite").set_index("chip.tiles")
    assert result.infeasible == 1
    assert frame.loc[1, "status"] == "infeasible" and "tile" in frame.loc[1, "error"]
    assert frame.loc[64, "status"] == "ok"


KILL_SWEEP = """\
kind: sweep
name: kill
arch: unit.yaml
workload: resnet20_cifar10
parameters:
  adc.bits: {range: [1, 16]}
  technology.clock_hz: {range: [1.0e8, 1.0e9], count: 10}
  array.rows_per_adc_read: [8, 16, 32, 64]
  decomposition.input_bits: [4, 8]
"""


def _rows(store: Path) -> int:
    try:
        with sqlite3.connect(store, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM points").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_sigkill_then_rerun_loses_and_duplicates_nothing(tmp_path):
    path = write_sweep(tmp_path, KILL_SWEEP)
    total = 16 * 10 * 4 * 2
    store = tmp_path / "killed.sqlite"
    target = random.Random().randint(total // 10, total // 2)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pimsim.cli",
            "sweep",
            str(path),
            "--store",
            str(store),
            "--workers",
            "2",
            "--quiet",
            "--no-plot",
        ],
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while _rows(store) < target and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its workers, mid-run
    proc.wait()
    stored = _rows(store)
    assert 0 < stored < total, f"the kill came at {stored} of {total} points"
    resumed = sweep(path, store, workers=2, progress=False)
    assert resumed.skipped == stored and resumed.evaluated == total - stored
    clean = tmp_path / "clean.sqlite"
    sweep(path, clean, workers=2, progress=False)
    killed, reference = read_results(store), read_results(clean)
    assert len(killed) == total and killed["key"].is_unique and killed["point"].is_unique
    assert comparable(killed).equals(comparable(reference))


# -- accuracy -----------------------------------------------------------------------------------


ACCURACY_SWEEP = f"""\
kind: sweep
name: acc
arch: small.yaml
workload: lenet5_mnist
set: {{decomposition.input_bits: 8, decomposition.weight_bits: 8, array.rows: 128,
      array.rows_per_adc_read: 128, adc.bits: 6}}
parameters:
  technology.clock_hz: [1.0e8, 5.0e8, 1.0e9]
  technology.node_nm: [22, 32]
  decomposition.scheme: [native, bit_serial]
objectives: [energy_pj:min, accuracy:max]
accuracy: {{checkpoint: {CHECKPOINT}, images: 40, batch: 20}}
"""


def test_oracle_runs_once_per_accuracy_key(tmp_path):
    path = write_sweep(tmp_path, ACCURACY_SWEEP)
    store = tmp_path / "acc.sqlite"
    result = sweep(path, store, workers=2, progress=False)
    assert result.evaluated == 12 and result.oracle_runs == 2  # one per scheme
    frame = read_results(store)
    assert (frame.status == "ok").all() and frame["accuracy"].notna().all()
    by_scheme = frame.groupby("decomposition.scheme")
    assert (by_scheme["accuracy"].nunique() == 1).all()
    assert (by_scheme["accuracy_key"].nunique() == 1).all()
    assert frame["energy_pj"].nunique() > 2  # the clock and the node do change the cost
    # the cached accuracy is the oracle's, computed directly
    from pimsim.oracle import accuracy
    from pimsim.training._checkpoint import load_checkpoint
    from pimsim.training._data import load_mnist

    row = frame[frame["decomposition.scheme"] == "native"].iloc[0]
    spec = load_sweep(path)
    arch = pimsim.with_overrides(spec.archs[0], {**spec.fixed, "decomposition.scheme": "native"})
    x, y = load_mnist(split="test")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load_checkpoint(CHECKPOINT, 8, 8)[0]
        direct = accuracy(model, arch, [(x[:20], y[:20]), (x[20:40], y[20:40])])
    assert row["accuracy"] == direct.mean
    # a re-run, or a new cost-only value, runs no oracle
    assert sweep(path, store, workers=0, progress=False).oracle_runs == 0
    more = path.read_text().replace("[1.0e8, 5.0e8, 1.0e9]", "[1.0e8, 5.0e8, 1.0e9, 2.0e9]")
    path.write_text(more)
    extra = sweep(path, store, workers=0, progress=False)
    assert (extra.evaluated, extra.oracle_runs) == (4, 0)


def test_fields_outside_oracle_fields_leave_the_oracle_unchanged(small_path):
    """ORACLE_FIELDS is what the spec declares; every other field only changes cost."""
    import torch

    from pimsim.oracle import convert

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(40, 24), torch.nn.ReLU(), torch.nn.Linear(24, 5))
    x = torch.rand(16, 40)
    base = pimsim.load_arch(small_path, {"adc.bits": 5, "cell.variation.within_chip": 0.1})
    cost_only = {
        "technology.clock_hz": 3.0e8,
        "technology.node_nm": 7,
        "technology.vdd_v": 0.7,
        "adc.model": "isaac_scaling",
        "adc.cols_per_adc": 4,
        "adc.sample_rate_hz": 1.0e8,
        "pe.arrays": 2,
        "tile.pes": 2,
        "chip.tiles": 64,
        "mapping.duplication": "balance",
        "cell.r_on_ohm": 5.0e4,
        "cell.device": "pcm",
    }
    variant = pimsim.with_overrides(base, cost_only)
    assert oracle_fields(variant) == oracle_fields(base)

    def run(arch):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pim = convert(model, arch, (1, 40), seed=3, calibration=[x])
        with torch.no_grad():
            return pim(x)

    assert torch.equal(run(base), run(variant))
    changed = pimsim.with_overrides(base, {"adc.bits": 3})
    assert oracle_fields(changed) != oracle_fields(base)
    assert not torch.equal(run(base), run(changed))
    for path in ORACLE_FIELDS:  # every declared field exists in the spec
        value = base.model_dump()
        for part in path.split("."):
            value = value[part]


# -- executors and search -----------------------------------------------------------------------


def test_dask_local_cluster_gives_the_same_table(tmp_path):
    pytest.importorskip("dask.distributed", reason="dask is an extra: pip install -e '.[dask]'")
    path = write_sweep(tmp_path, GRID)
    sweep(path, tmp_path / "pool.sqlite", workers=2, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = sweep(path, tmp_path / "dask.sqlite", workers=2, executor="dask", progress=False)
    assert result.evaluated == 18
    assert comparable(read_results(tmp_path / "dask.sqlite")).equals(
        comparable(read_results(tmp_path / "pool.sqlite"))
    )


@pytest.mark.parametrize("kind", ["nsga2", "tpe"])
def test_search_is_repeatable_and_resumes(tmp_path, kind):
    body = GRID.replace(
        "objectives", f"strategy: {{kind: {kind}, n: 12, seed: 1, population: 4}}\nobjectives"
    ).replace("{range: [4, 8], step: 2}", "{range: [2, 12]}")
    path = write_sweep(tmp_path, body)
    first = sweep(path, tmp_path / "a.sqlite", workers=0, progress=False)
    assert first.evaluated + first.skipped == 12 and first.evaluated >= 4
    second = sweep(path, tmp_path / "b.sqlite", workers=2, progress=False)
    a, b = read_results(tmp_path / "a.sqlite"), read_results(tmp_path / "b.sqlite")
    assert comparable(a).equals(comparable(b))
    replay = sweep(path, tmp_path / "a.sqlite", workers=0, progress=False)
    assert replay.evaluated == 0 and second.evaluated == first.evaluated


# -- command line -------------------------------------------------------------------------------


def test_cli_sweep_results_pareto_plot(tmp_path):
    path = write_sweep(tmp_path, GRID)
    store = tmp_path / "grid.sqlite"
    out = run_cli("sweep", str(path), "--store", str(store), "--workers", "2", "--quiet")
    assert out.returncode == 0, out.stderr
    assert "18 designs evaluated" in out.stderr and "Pareto front" in out.stdout
    assert (tmp_path / "grid_pareto.csv").is_file() and (tmp_path / "grid_pareto.png").is_file()
    csv = tmp_path / "all.csv"
    out = run_cli("results", str(store), "--format", "csv", "--output", str(csv))
    assert out.returncode == 0 and len(pd.read_csv(csv)) == 18
    parquet = tmp_path / "all.parquet"
    out = run_cli("results", str(store), "--format", "parquet", "--output", str(parquet))
    assert out.returncode == 0, out.stderr
    assert comparable(pd.read_parquet(parquet)).equals(comparable(read_results(store)))
    front_csv = tmp_path / "front.csv"
    out = run_cli(
        "pareto",
        str(store),
        "--objectives",
        "energy_pj:min,latency_ns:min",
        "--format",
        "csv",
        "--output",
        str(front_csv),
        "--plot",
        str(tmp_path / "front.png"),
    )
    assert out.returncode == 0, out.stderr
    from pimsim.explore import pareto

    expected = pareto(read_results(store), "energy_pj:min,latency_ns:min")
    assert sorted(pd.read_csv(front_csv)["key"]) == sorted(expected["key"])
    out = run_cli("plot", str(store), "--parameter", "adc.bits", "--metric", "energy_pj")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "grid_adc.bits_energy_pj.png").stat().st_size > 0
    out = run_cli("pareto", str(store), "--objectives", "energy:min")
    assert out.returncode == 2 and "unknown metric 'energy'" in out.stderr
    out = run_cli("results", str(tmp_path / "none.sqlite"))
    assert out.returncode == 2 and "no such results store" in out.stderr


def test_store_keeps_roles_and_sweeps(tmp_path):
    path = write_sweep(tmp_path, GRID)
    store = tmp_path / "grid.sqlite"
    sweep(path, store, workers=0, progress=False)
    with ResultStore(store) as db:
        roles = db.roles()
        assert [c for c, r in roles.items() if r == "parameter"] == [
            "adc.bits",
            "technology.clock_hz",
            "array.rows",
            "array.rows_per_adc_read",
        ]
        assert {"energy_pj", "edp", "latency_ns"} <= {c for c, r in roles.items() if r == "metric"}
        info = db.sweeps()["grid"]
        assert info["objectives"] == ["energy_pj:min", "latency_ns:min"]
        assert Path(info["source"]) == path.resolve()


def test_sweep_and_evaluate_report_the_same_latency(tmp_path):
    """One default latency model: a sweep's stored latency of a design is what ``pimsim
    evaluate`` prints for it (event model, the same granularity), on a network where row and
    layer granularity differ."""
    from pimsim.cost import evaluate
    from pimsim.dataflow import DEFAULT_GRANULARITY

    body = f"""\
kind: sweep
name: same_latency
arch: {ROOT / "arch_specs" / "neurosim_rram_22nm.yaml"}
workload: lenet5_mnist
parameters:
  adc.bits: [4, 6]
objectives: [latency_ns:min]
"""
    path = write_sweep(tmp_path, body)
    sweep(path, tmp_path / "s.sqlite", workers=0, progress=False)
    frame = read_results(tmp_path / "s.sqlite").set_index("adc.bits")
    work = pimsim.load_workload("lenet5_mnist")
    for bits in (4, 6):
        arch = pimsim.load_arch(ROOT / "arch_specs" / "neurosim_rram_22nm.yaml",
                                {"adc.bits": bits})
        default = evaluate(arch, work).totals["latency_ns"]
        layer = evaluate(arch, work, granularity="layer").totals["latency_ns"]
        assert layer != pytest.approx(default, rel=1e-3)  # the granularity matters here
        assert frame.loc[bits, "latency_ns"] == default
        result = run_cli("evaluate", str(ROOT / "arch_specs" / "neurosim_rram_22nm.yaml"),
                         "lenet5_mnist", "--set", f"adc.bits={bits}", "--format", "json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["totals"]["latency_ns"] == default
    assert DEFAULT_GRANULARITY == "row"
