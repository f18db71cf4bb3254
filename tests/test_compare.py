"""Energy and area by component class in ``evaluate --format csv`` and in the results store, and
``pimsim compare`` / :func:`pimsim.cost.compare`: two designs side by side with ratios B/A."""

from __future__ import annotations

import io
import json
import shutil
import sqlite3

import pandas as pd
import pytest
from click.testing import CliRunner

import pimsim
from pimsim.cli import main as cli
from pimsim.cost import compare, evaluate
from pimsim.cost._compare import SECTIONS, TOTALS, ratio
from pimsim.explore import read_results, sweep
from pimsim.spec._fields import AREA_CLASSES, ENERGY_CLASSES
from tests._cli import ROOT, run_cli
from tests.test_explore import write_sweep

RRAM = ROOT / "arch_specs" / "neurosim_rram_22nm.yaml"
ISAAC = ROOT / "arch_specs" / "isaac.yaml"
WORKLOAD = "lenet5_mnist"


def _classes(frame: pd.DataFrame, kind: str) -> list[str]:
    unit = "pj" if kind == "energy" else "mm2"
    return [c for c in frame if c.startswith(f"{kind}_") and c.endswith(f"_{unit}")
            and c not in ("energy_pj", "area_mm2")]  # fmt: skip


@pytest.fixture(scope="module")
def rram_report():
    return evaluate(pimsim.load_arch(RRAM), pimsim.load_workload(WORKLOAD))


# -- breakdown columns ---------------------------------------------------------------------------


def test_breakdown_columns_are_stable_and_conserve(rram_report):
    columns = rram_report.breakdown_columns()
    assert list(columns) == [f"energy_{c}_pj" for c in ENERGY_CLASSES] + [
        f"area_{c}_mm2" for c in AREA_CLASSES
    ]
    energy = sum(v for k, v in columns.items() if k.startswith("energy_"))
    area = sum(v for k, v in columns.items() if k.startswith("area_"))
    assert energy == pytest.approx(rram_report.totals["energy_pj"], rel=1e-9)
    assert area == pytest.approx(rram_report.totals["area_mm2"], rel=1e-9)


@pytest.mark.parametrize("arch", [RRAM, ISAAC], ids=lambda p: p.stem)
def test_evaluate_csv_has_breakdowns_that_sum_to_the_totals(arch):
    res = CliRunner().invoke(cli, ["evaluate", str(arch), WORKLOAD, "--format", "csv"])
    assert res.exit_code == 0, res.output
    frame = pd.read_csv(io.StringIO(res.output))
    energy, area = _classes(frame, "energy"), _classes(frame, "area")
    # one column per class, units in the names, in the classes' fixed order (no writes here)
    assert energy == [f"energy_{c}_pj" for c in ENERGY_CLASSES if c != "write"]
    assert area == [f"area_{c}_mm2" for c in AREA_CLASSES]
    layers, total = frame.iloc[:-1], frame.iloc[-1]
    assert total["name"] == "(total)" and list(layers["name"]) == [
        layer.name for layer in pimsim.load_workload(WORKLOAD).layers
    ]
    # every row's classes sum to its energy; the total's to the report's energy and area
    sums = frame[energy].fillna(0.0).sum(axis=1)
    assert sums.to_numpy() == pytest.approx(frame["energy_pj"].to_numpy(), rel=1e-9)
    report = evaluate(pimsim.load_arch(arch), pimsim.load_workload(WORKLOAD))
    assert total["energy_pj"] == pytest.approx(report.totals["energy_pj"], rel=1e-9)
    assert total[area].sum() == pytest.approx(total["area_mm2"], rel=1e-9)
    assert total["area_mm2"] == pytest.approx(report.totals["area_mm2"], rel=1e-9)
    # the layers' classes add up to the total's (leakage is the chip's, not a layer's)
    per_layer = [c for c in energy if c != "energy_leakage_pj"]
    assert layers[per_layer].sum().to_numpy() == pytest.approx(
        total[per_layer].to_numpy(dtype=float), rel=1e-9
    )
    assert layers["energy_leakage_pj"].isna().all() and layers[area].isna().all().all()


# -- the results store ---------------------------------------------------------------------------

TINY = """\
kind: sweep
name: tiny
arch: unit.yaml
workload: mlp_mnist
parameters:
  adc.bits: [4, 8]
objectives: [energy_pj:min]
"""


def _check_breakdowns(rows: pd.DataFrame) -> None:
    energy, area = _classes(rows, "energy"), _classes(rows, "area")
    assert energy == [f"energy_{c}_pj" for c in ENERGY_CLASSES]
    assert area == [f"area_{c}_mm2" for c in AREA_CLASSES]
    assert rows[energy].sum(axis=1).to_numpy() == pytest.approx(
        rows["energy_pj"].to_numpy(), rel=1e-9
    )
    assert rows[area].sum(axis=1).to_numpy() == pytest.approx(rows["area_mm2"].to_numpy(), rel=1e-9)


def test_sweep_store_rows_carry_the_breakdowns(tmp_path):
    store = tmp_path / "tiny.sqlite"
    sweep(write_sweep(tmp_path, TINY), store, workers=0, progress=False)
    frame = read_results(store)
    assert len(frame) == 2 and (frame["status"] == "ok").all()
    _check_breakdowns(frame)
    csv = tmp_path / "all.csv"
    res = CliRunner().invoke(cli, ["results", str(store), "--format", "csv", "-o", str(csv)])
    assert res.exit_code == 0, res.output
    _check_breakdowns(pd.read_csv(csv))


def test_store_without_breakdown_columns_gains_them(tmp_path):
    """A store written before the breakdowns existed: its rows read them as null, and the new
    designs a later sweep stores carry them."""
    store = tmp_path / "tiny.sqlite"
    path = write_sweep(tmp_path, TINY)
    sweep(path, store, workers=0, progress=False)
    with sqlite3.connect(store) as db:  # make it an old store
        old = [c for c in read_results(store) if c.startswith(("energy_", "area_"))]
        old = [c for c in old if c not in ("energy_pj", "area_mm2")]
        for column in old:
            db.execute(f'ALTER TABLE points DROP COLUMN "{column}"')
        db.executemany("DELETE FROM columns WHERE name = ?", [(c,) for c in old])
    assert not _classes(read_results(store), "energy")
    path.write_text(TINY.replace("[4, 8]", "[4, 6, 8]"))
    result = sweep(path, store, workers=0, progress=False)
    assert (result.evaluated, result.skipped) == (1, 2)
    frame = read_results(store).set_index("adc.bits")
    _check_breakdowns(frame.loc[[6]])
    assert frame.loc[[4, 8], "energy_adc_pj"].isna().all()


# -- compare -------------------------------------------------------------------------------------


def test_ratio_of_equal_values_is_one():
    assert ratio(0.0, 0.0) == ratio(3.0, 3.0) == 1.0
    assert ratio(2.0, 3.0) == 1.5 and ratio(0.0, 1.0) == float("inf")


def test_a_design_compared_with_itself_gives_one_everywhere(rram_report):
    again = evaluate(pimsim.load_arch(RRAM), pimsim.load_workload(WORKLOAD))
    result = compare(rram_report, again)
    assert result.labels == ("neurosim_rram_22nm", "neurosim_rram_22nm")
    assert list(result.totals["metric"]) == list(TOTALS)
    frame = result.frame()
    assert list(dict.fromkeys(frame["section"])) == list(SECTIONS)
    assert (frame["ratio"] == 1.0).all() and (frame["a"] == frame["b"]).all()
    assert (result.layers[["energy_ratio", "latency_ratio"]] == 1.0).all().all()
    # classes with no energy (area) in either design are left out
    assert (result.energy_breakdown_pj["a"] > 0).all()
    assert (result.area_breakdown_mm2["a"] > 0).all()


def test_compare_needs_one_workload(rram_report):
    other = evaluate(pimsim.load_arch(RRAM), pimsim.load_workload("mlp_mnist"))
    with pytest.raises(ValueError, match="one workload"):
        compare(rram_report, other)


def test_cli_compare_more_adc_bits(tmp_path, rram_report):
    """5-bit ADCs on the NeuroSim RRAM design: more ADC energy, the same arrays."""
    png = tmp_path / "cmp.png"
    args = ["compare", str(RRAM), str(RRAM), WORKLOAD, "--set-b", "adc.bits=5"]
    res = CliRunner().invoke(cli, [*args, "--format", "json", "--plot", str(png)])
    assert res.exit_code == 0, res.output
    assert png.stat().st_size > 0
    data = json.loads(res.stdout)
    assert data["labels"] == {"a": "neurosim_rram_22nm", "b": "neurosim_rram_22nm adc.bits=5"}
    energy = {r["class"]: r for r in data["energy_breakdown_pj"]}
    area = {r["class"]: r for r in data["area_breakdown_mm2"]}
    assert energy["adc"]["ratio"] > 1 and energy["adc"]["b"] > energy["adc"]["a"]
    assert area["array"]["ratio"] == 1 and area["array"]["a"] == area["array"]["b"]
    totals = {r["metric"]: r for r in data["totals"]}
    assert totals["energy_pj"]["a"] == pytest.approx(rram_report.totals["energy_pj"], rel=1e-12)
    # a copy of the file: the same design, labelled by the file stems
    copy = tmp_path / "copy.yaml"
    shutil.copy(RRAM, copy)
    args = ["compare", str(RRAM), str(copy), WORKLOAD, "--latency-model", "analytical"]
    res = CliRunner().invoke(cli, [*args, "--format", "json"])
    assert json.loads(res.stdout)["labels"] == {"a": "neurosim_rram_22nm", "b": "copy"}
    res = CliRunner().invoke(cli, [*args, "--format", "csv"])
    assert res.exit_code == 0, res.output
    frame = pd.read_csv(io.StringIO(res.output))
    assert list(frame.columns) == ["section", "item", "a", "b", "ratio"]
    assert list(dict.fromkeys(frame["section"])) == list(SECTIONS)
    assert (frame["ratio"] == 1.0).all()


def test_cli_compare_table(tmp_path):
    res = CliRunner().invoke(cli, ["compare", str(RRAM), str(ISAAC), WORKLOAD,
                                   "--latency-model", "analytical"])  # fmt: skip
    assert res.exit_code == 0, res.output
    text = res.stdout
    assert text.startswith("A: neurosim_rram_22nm (") and "\nB: isaac (" in text
    for title in ("totals", "energy by component class (pJ per sample)",
                  "area by component class (mm2)", "per layer"):  # fmt: skip
        assert f"\n{title}\n" in text
    assert "tops_per_w" in text and "conv1" in text and "B/A" in text


def test_cli_compare_bad_input_is_one_line_and_exit_2(tmp_path):
    out = run_cli("compare", str(tmp_path / "none.yaml"), str(RRAM), WORKLOAD)
    assert out.returncode == 2
    assert out.stderr.strip() == f"error: {tmp_path / 'none.yaml'}: no such file"
    out = run_cli("compare", str(RRAM), str(RRAM), WORKLOAD, "--set-b", "adc.bitz=5")
    assert out.returncode == 2 and "did you mean 'bits'" in out.stderr
    assert "Traceback" not in out.stderr


def test_breakdown_columns_are_sweep_objectives(tmp_path):
    """A sweep may minimise one component's energy or area: the Pareto front on ADC energy and
    latency is computed from the stored breakdown column."""
    from pimsim.explore import pareto
    from pimsim.spec._metrics import metric, parse_objectives

    assert metric("energy_adc_pj").unit == "pJ" and metric("area_array_mm2").direction == "min"
    objectives = parse_objectives(["energy_adc_pj:min", "latency_ns:min"])
    store = tmp_path / "tiny.sqlite"
    body = TINY.replace("objectives: [energy_pj:min", "objectives: [energy_adc_pj:min")
    assert body != TINY
    sweep(write_sweep(tmp_path, body), store, workers=0, progress=False)
    frame = read_results(store)
    front = pareto(frame[frame.status == "ok"], objectives)
    assert len(front) >= 1
    best = frame.loc[frame["energy_adc_pj"].idxmin()]
    assert best["key"] in set(front["key"])


def test_the_table_names_the_latency_model_each_design_ran():
    """A chip that is not pipelined runs the event model on whole layers whatever granularity
    was asked for: the table says so per design instead of echoing the option."""
    sram = ROOT / "arch_specs" / "sram_charge_domain_28nm.yaml"
    result = CliRunner().invoke(cli, ["compare", str(ISAAC), str(sram), "lenet5_mnist"])
    assert result.exit_code == 0, result.output
    assert ("latency model: A: event (row granularity, 2 samples); "
            "B: event (layer granularity, 2 samples)") in result.output
