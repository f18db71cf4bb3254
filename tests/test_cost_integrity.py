"""Integrity of cost reports: per-layer energies that add up to the totals (reprogramming writes
included), and measured training writes that are checked before they are costed."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

import pimsim
from pimsim.cli import main as cli
from pimsim.cost import evaluate, training_cost
from pimsim.cost._actions import ACTION_CLASSES
from pimsim.errors import PimsimError

ROOT = Path(__file__).resolve().parents[1]
HERMES = ROOT / "arch_specs" / "hermes_pcm_14nm.yaml"
PCM = ROOT / "arch_specs" / "pcm_onchip_14nm.yaml"
REPROGRAM = {
    "mapping.reprogram": True,
    "chip.tiles": 2,
    "cell.write_energy_pj": 10.0,
    "cell.write_pulses": 3,
}
CLASSES = (*ACTION_CLASSES, "write")


# ------------------------------------------------------------------ reprogramming by layer


@pytest.fixture(scope="module")
def reprogrammed():
    arch = pimsim.load_arch(HERMES, REPROGRAM)
    return evaluate(arch, pimsim.load_workload("lenet5_mnist"), latency_model="analytical")


def test_reprogramming_energy_is_in_the_layers_whose_weights_are_written(reprogrammed):
    report = reprogrammed
    assert report.totals["passes"] > 1
    write = report.energy_breakdown_pj["write"]
    assert write > 0.5 * report.totals["energy_pj"]  # the bulk of the energy: not to be lost
    assert report.energy_breakdown_pj["leakage"] == 0.0
    layers = report.layers.set_index("name")
    assert layers["energy_pj"].sum() == pytest.approx(report.totals["energy_pj"], rel=1e-9)
    for cls in CLASSES:  # every class of the breakdown is the sum of its layer column
        assert layers[f"energy_{cls}_pj"].sum() == pytest.approx(
            report.energy_breakdown_pj[cls], rel=1e-9, abs=1e-12
        ), cls
    assert sum(report.energy_breakdown_pj.values()) == pytest.approx(
        report.totals["energy_pj"], rel=1e-9
    )
    for name, row in layers.iterrows():  # each layer's share: its own cells written
        m = report.mapping.layers.get(name)
        cells = m.used_cells * m.copies * 3 if m is not None else 0
        assert row["cell_writes"] == cells, name
        assert row["energy_write_pj"] == pytest.approx(cells * 10.0), name
        dynamic = sum(row[f"energy_{c}_pj"] for c in CLASSES)
        assert row["energy_pj"] == pytest.approx(dynamic, rel=1e-12), name
    assert layers["cell_writes"].sum() == report.totals["cell_writes"]
    assert layers.loc["conv1", "energy_write_pj"] > 0 and layers.loc["relu1", "cell_writes"] == 0


def test_a_single_pass_writes_nothing_in_any_layer():
    arch = pimsim.load_arch(HERMES, {"cell.write_energy_pj": 10.0})
    report = evaluate(arch, pimsim.load_workload("lenet5_mnist"), latency_model="analytical")
    assert report.totals["passes"] == 1 and report.totals["cell_writes"] == 0
    assert (report.layers["energy_write_pj"] == 0).all()
    assert report.layers["energy_pj"].sum() == pytest.approx(report.totals["energy_pj"], rel=1e-9)


def test_cli_evaluate_shows_reprogramming_per_layer(reprogrammed):
    sets = [arg for key, value in REPROGRAM.items() for arg in ("--set", f"{key}={value}")]
    sets = [s.replace("=True", "=true") for s in sets]
    base = ["evaluate", str(HERMES), "lenet5_mnist", *sets, "--latency-model", "analytical"]
    runner = CliRunner()
    res = runner.invoke(cli, [*base, "--format", "json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert sum(rec["energy_pj"] for rec in data["layers"]) == pytest.approx(
        data["totals"]["energy_pj"], rel=1e-9
    )
    conv1 = next(rec for rec in data["layers"] if rec["name"] == "conv1")
    expected = reprogrammed.layers.set_index("name").loc["conv1", "energy_write_pj"]
    assert conv1["energy_breakdown_pj"]["write"] == pytest.approx(expected)
    assert sum(rec["energy_breakdown_pj"].get("write", 0.0) for rec in data["layers"]) == (
        pytest.approx(data["energy_breakdown_pj"]["write"], rel=1e-9)
    )
    res = runner.invoke(cli, [*base, "--format", "csv"])
    assert res.exit_code == 0, res.output
    header = res.output.splitlines()[0].split(",")
    assert "energy_write_pj" in header and "cell_writes" in header
    res = runner.invoke(cli, ["evaluate", str(HERMES), "lenet5_mnist", "--format", "csv",
                              "--latency-model", "analytical"])
    assert res.exit_code == 0 and "energy_write_pj" not in res.output  # nothing reprogrammed


# ------------------------------------------------------------------ measured training writes


def summary(**changes) -> dict:
    """A 'pimsim train --summary' of mlp_mnist trained on chip with backprop."""
    data = {
        "rule": "backprop",
        "update": "pulsed",
        "arch": "pcm_onchip_14nm",
        "workload": "mlp_mnist",
        "batch_size": 32,
        "samples_per_epoch": 256,
        "writes_per_step": {"fc1": 120.0, "fc2": 30.5, "fc3": 4.0},
        "pulses_per_step": {"fc1": 240.0, "fc2": 61.0, "fc3": 8.0},
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def evaluate_with(tmp_path, data, *extra: str):
    path = tmp_path / "summary.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    res = CliRunner().invoke(cli, ["evaluate", str(PCM), "mlp_mnist", "--training", "backprop",
                                   "--writes-from", str(path), "--format", "json", *extra])
    return path, res


def error_line(res) -> str:
    lines = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, res.output
    return lines[0]


def test_a_matching_summary_is_costed(tmp_path):
    _, res = evaluate_with(tmp_path, summary())
    assert res.exit_code == 0, res.output
    t = json.loads(res.output)["training"]
    assert t["writes_measured"] and t["writes_per_step"] == pytest.approx(154.5)
    assert t["update"] == "pulsed" and t["batch_size"] == 32 and t["steps_per_epoch"] == 8
    assert t["energy_breakdown_pj"]["write"] > 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("writes_per_step", -5.0),
        ("writes_per_step", "NaN"),
        ("writes_per_step", "Infinity"),
        ("writes_per_step", "12"),
        ("writes_per_step", True),
        ("pulses_per_step", -1),
    ],
)
def test_negative_or_non_numeric_counts_are_refused(tmp_path, field, value):
    data = summary()
    data[field]["fc2"] = value
    text = json.dumps(data)
    if value in ("NaN", "Infinity"):  # JSON as Python writes non-finite floats
        text = text.replace(f'"{value}"', value)
    path, res = evaluate_with(tmp_path, text)
    assert res.exit_code == 2, res.output
    line = error_line(res)
    assert str(path) in line and f"{field}.fc2" in line


def test_negative_writes_never_make_negative_energy():
    arch = pimsim.load_arch(PCM)
    wl = pimsim.load_workload("mlp_mnist")
    with pytest.raises(ValueError, match="fc1"):
        training_cost(arch, wl, rule="backprop", writes_per_step={"fc1": -1e6, "fc2": 0, "fc3": 0})
    with pytest.raises(ValueError, match="conv1"):
        training_cost(arch, wl, rule="backprop", writes_per_step={"conv1": 5.0})
    with pytest.raises(ValueError, match="fc3"):
        training_cost(arch, wl, rule="backprop", writes_per_step={"fc1": 1, "fc2": 1, "fc3": 1},
                      pulses_per_step={"fc1": 1, "fc2": 1, "fc3": math.nan})


def test_a_summary_of_another_network_is_refused(tmp_path):
    lenet = summary(
        workload="lenet5_mnist",
        writes_per_step={"conv1": 3.0, "conv2": 9.0, "fc1": 12.0, "fc2": 4.0, "fc3": 1.0},
        pulses_per_step=None,
    )
    path, res = evaluate_with(tmp_path, lenet)
    assert res.exit_code == 2, res.output
    line = error_line(res)
    assert str(path) in line and "workload" in line and "lenet5_mnist" in line
    # without its name, the layers give it away
    path, res = evaluate_with(tmp_path, {k: v for k, v in lenet.items() if k != "workload"})
    assert res.exit_code == 2, res.output
    line = error_line(res)
    assert str(path) in line and "writes_per_step" in line and "conv1" in line
    # a layer of the network without a count
    partial = summary(writes_per_step={"fc1": 1.0, "fc2": 1.0}, pulses_per_step=None)
    path, res = evaluate_with(tmp_path, partial)
    assert res.exit_code == 2 and "fc3" in error_line(res)


@pytest.mark.parametrize(
    ("changes", "extra", "field"),
    [
        ({"rule": "dfa"}, (), "rule"),
        ({}, ("--update", "exact"), "update"),
        ({"update": "sgd"}, (), "update"),
        ({"batch_size": -4}, (), "batch_size"),
        ({"samples_per_epoch": 2.5}, (), "samples_per_epoch"),
        ({"writes_per_step": [1, 2, 3]}, (), "writes_per_step"),
    ],
)
def test_summary_fields_must_fit_the_evaluation(tmp_path, changes, extra, field):
    path, res = evaluate_with(tmp_path, summary(**changes), *extra)
    assert res.exit_code == 2, res.output
    line = error_line(res)
    assert str(path) in line and field in line


def test_summary_reader_names_file_and_field(tmp_path):
    from pimsim.cost._training import read_writes_summary

    path = tmp_path / "s.json"
    path.write_text(json.dumps(summary(writes_per_step={"fc1": 1, "fc2": -2, "fc3": 0})))
    wl = pimsim.load_workload("mlp_mnist")
    with pytest.raises(PimsimError, match=r"s\.json: writes_per_step\.fc2"):
        read_writes_summary(path, wl, rule="backprop")
    path.write_text("[1, 2]")
    with pytest.raises(PimsimError, match=r"s\.json"):
        read_writes_summary(path, wl, rule="backprop")
