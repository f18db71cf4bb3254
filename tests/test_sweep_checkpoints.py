"""Several trained checkpoints of one network as a sweep parameter (``accuracy.checkpoints``):
one design per label, the label as a column and in every key, the oracle's result per checkpoint,
re-runs, every strategy, plots, and the errors of a bad label or path."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

import pimsim
import pimsim.explore._worker as worker
from pimsim.cli import main
from pimsim.errors import SpecError
from pimsim.explore import ResultStore, plot_pareto, plot_sensitivity, read_results, sweep
from pimsim.explore._points import KeyMaker, grid_points, random_points
from pimsim.spec import load_sweep
from tests._cli import ROOT
from tests.conftest import SMALL_ARCH

CHECKPOINTS = ROOT / "results" / "checkpoints"
QAT = CHECKPOINTS / "lenet5_mnist_qat.pt"
FLOAT = CHECKPOINTS / "lenet5_mnist_float.pt"
MLP = CHECKPOINTS / "mlp_mnist_qat.pt"
IMAGES = 50

HEAD = """\
kind: sweep
name: {name}
arch: small.yaml
workload: lenet5_mnist
set: {{decomposition.input_bits: 8, decomposition.weight_bits: 8, array.rows: 128,
      array.rows_per_adc_read: 128}}
parameters:
  adc.bits: {bits}
objectives: [energy_pj:min, accuracy:max]
"""


def write(folder: Path, body: str, name: str = "s.yaml") -> Path:
    (folder / "small.yaml").write_text(SMALL_ARCH)
    path = folder / name
    path.write_text(body)
    return path


def labelled(folder: Path, name: str = "ckpts", bits: str = "[6, 8]", extra: str = "",
             strategy: str = "") -> str:
    """A sweep of LeNet-5 with the shipped QAT checkpoint (given relative to the sweep file) and
    the float one (absolute) as alternatives."""
    qat = os.path.relpath(QAT, folder)
    return (
        HEAD.format(name=name, bits=bits)
        + strategy
        + f"accuracy:\n  checkpoints:\n    qat: {qat}\n    float: {FLOAT}\n{extra}"
        + f"  images: {IMAGES}\n  batch: {IMAGES}\n"
    )


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """The two-checkpoint sweep, run once: (sweep file, store, result, frame)."""
    folder = tmp_path_factory.mktemp("ckpts")
    path = write(folder, labelled(folder))
    store = folder / "ckpts.sqlite"
    result = sweep(path, store, workers=0, progress=False)
    return path, store, result, read_results(store, "ckpts")


# -- loading ----------------------------------------------------------------------------------


def test_checkpoints_are_the_first_dimension(tmp_path):
    spec = load_sweep(write(tmp_path, labelled(tmp_path)))
    assert spec.parameters == ("checkpoint", "adc.bits")
    assert spec.dimensions[0].values == (("qat",), ("float",)) and spec.grid_size == 4
    assert spec.accuracy.labels == ("qat", "float")
    assert spec.accuracy.ref("lenet5_mnist", "qat").path.resolve() == QAT.resolve()
    assert spec.accuracy.ref("lenet5_mnist", "float").path == FLOAT
    keys = KeyMaker.of(spec)
    points = grid_points(spec, keys)
    assert [(p.checkpoint, p.overrides) for p in points] == [
        ("qat", {"adc.bits": 6}),
        ("qat", {"adc.bits": 8}),
        ("float", {"adc.bits": 6}),
        ("float", {"adc.bits": 8}),
    ]
    assert len({p.request for p in points}) == 4
    # the label and the file's digest are both in the keys: one file under two labels is two
    # requests and two designs, but one accuracy key
    spec2 = load_sweep(
        write(tmp_path, labelled(tmp_path).replace(str(FLOAT), str(QAT)), "same.yaml")
    )
    keys2 = KeyMaker.of(spec2)
    a, b = grid_points(spec2, keys2)[1], grid_points(spec2, keys2)[3]
    assert a.overrides == b.overrides and a.request != b.request
    assert keys2.design({"x": 1}, 0, "qat") != keys2.design({"x": 1}, 0, "float")
    assert keys2.accuracy({"x": 1}, 0, "qat") == keys2.accuracy({"x": 1}, 0, "float")
    assert keys.accuracy({"x": 1}, 0, "qat") != keys.accuracy({"x": 1}, 0, "float")


def test_validate_accepts_the_file(tmp_path):
    path = write(tmp_path, labelled(tmp_path))
    out = CliRunner().invoke(main, ["validate", str(path)])
    assert out.exit_code == 0, out.output
    assert "ok (sweep 'ckpts')" in out.output


def _case(folder: Path, case: str) -> str:
    head = HEAD.format(name="bad", bits="[6, 8]")
    return {
        "label": head + f"accuracy:\n  checkpoints:\n    qat: {QAT}\n    bad label: {FLOAT}\n",
        "path": head + f"accuracy:\n  checkpoints:\n    qat: {QAT}\n    float: nope.pt\n",
        "network": head + f"accuracy:\n  checkpoints:\n    qat: {QAT}\n    mlp: {MLP}\n",
        "both": head + f"accuracy:\n  checkpoint: {QAT}\n  checkpoints:\n    float: {FLOAT}\n",
        "empty": head + "accuracy:\n  checkpoints: {}\n",
        "per-workload": head
        + f"accuracy:\n  checkpoints:\n    qat: {{lenet5_mnist: {QAT}}}\n"
        "    float: {mlp_mnist: x.pt}\n",
        "parameter": head.replace("adc.bits: [6, 8]", "checkpoint: [qat]")
        + f"accuracy:\n  checkpoints:\n    qat: {QAT}\n",
    }[case]


# case: (line, field path, message)
BAD = {
    "label": (13, "accuracy.checkpoints.bad label", "is not a plain name"),
    "path": (13, "accuracy.checkpoints.float", "checkpoint nope.pt not found"),
    "network": (13, "accuracy.checkpoints.mlp", "holds 'mlp_mnist', not 'lenet5_mnist'"),
    "both": (12, "accuracy.checkpoints", "not both"),
    "empty": (11, "accuracy.checkpoints", "no checkpoint given"),
    "per-workload": (13, "accuracy.checkpoints.float", "no checkpoint for workload"),
    "parameter": (8, "parameters.checkpoint", "not an arch field"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_label_or_path_names_file_line_and_field(tmp_path, case):
    line, field, message = BAD[case]
    path = write(tmp_path, _case(tmp_path, case))
    with pytest.raises(SpecError) as info:
        load_sweep(path)
    text = str(info.value)
    assert f"{path}:{line}:" in text and f"{field}: " in text and message in text, text
    out = CliRunner().invoke(main, ["validate", str(path)])
    assert out.exit_code == 2 and f"{path}:{line}:" in out.output, out.output


def test_a_single_checkpoint_sweep_has_no_label_dimension(tmp_path):
    """A sweep with ``checkpoint:`` has no label dimension: its points carry no label, only spec
    fields as overrides, and one point per design."""
    body = HEAD.format(name="one", bits="[6, 8]") + f"accuracy: {{checkpoint: {QAT}}}\n"
    spec = load_sweep(write(tmp_path, body))
    assert "checkpoint" not in spec.parameters and spec.accuracy.labels == ()
    points = grid_points(spec, KeyMaker.of(spec))
    assert [p.checkpoint for p in points] == [None, None]
    assert [p.overrides for p in points] == [{"adc.bits": 6}, {"adc.bits": 8}]


# -- running ----------------------------------------------------------------------------------


def test_every_design_once_per_checkpoint(ran):
    _, store, result, frame = ran
    assert (result.evaluated, result.skipped, result.failed, result.infeasible) == (4, 0, 0, 0)
    assert result.oracle_runs == 4  # two designs x two checkpoints
    assert len(frame) == 4 and frame["key"].is_unique and (frame["status"] == "ok").all()
    assert list(frame["checkpoint"]) == ["qat", "qat", "float", "float"]
    assert list(frame["adc.bits"]) == [6, 8, 6, 8]
    with ResultStore(store, readonly=True) as db:
        assert db.roles()["checkpoint"] == "parameter"
    qat, flt = frame[frame.checkpoint == "qat"], frame[frame.checkpoint == "float"]
    # same designs, same cost; another checkpoint, another accuracy and accuracy key
    assert list(qat["energy_pj"]) == list(flt["energy_pj"])
    assert list(qat["accuracy"]) != list(flt["accuracy"])
    assert set(qat["accuracy_key"]).isdisjoint(flt["accuracy_key"])
    assert set(qat["request"]).isdisjoint(flt["request"])


@pytest.mark.parametrize("label, checkpoint", [("qat", QAT), ("float", FLOAT)])
def test_accuracy_is_the_oracle_s_for_each_checkpoint(ran, label, checkpoint):
    import torch

    from pimsim.oracle import accuracy
    from pimsim.training import load_mnist
    from pimsim.training._checkpoint import load_checkpoint

    path, _, _, frame = ran
    spec = load_sweep(path)
    row = frame[(frame.checkpoint == label) & (frame["adc.bits"] == 8)].iloc[0]
    arch = pimsim.with_overrides(spec.archs[0], {**spec.fixed, "adc.bits": 8})
    x, y = load_mnist(split="test")
    calibration = load_mnist(split="train")[0][: spec.accuracy.calibration]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a float checkpoint is quantized on load, with a warning
        model = load_checkpoint(checkpoint, 8, 8)[0]
        direct = accuracy(
            model,
            arch,
            [(x[:IMAGES], y[:IMAGES])],
            calibration=list(torch.split(calibration, IMAGES)),
        )
    assert row["accuracy"] == direct.mean


def test_rerun_skips_everything(ran):
    path, store, _, frame = ran
    again = sweep(path, store, workers=0, progress=False)
    assert (again.evaluated, again.skipped, again.oracle_runs) == (0, 4, 0)
    assert list(read_results(store, "ckpts")["key"]) == list(frame["key"])


def test_a_checkpoint_s_result_is_shared_by_its_content(ran):
    """A new label of a file already run, or a single-checkpoint sweep of it, runs no oracle."""
    path, store, _, frame = ran
    more = path.read_text().replace("name: ckpts", "name: more").replace(
        "  images:", f"    again: {QAT}\n  images:"
    )
    result = sweep(write(path.parent, more, "more.yaml"), store, workers=0, progress=False)
    assert (result.evaluated, result.skipped, result.oracle_runs) == (2, 4, 0)
    rows = read_results(store, "more")
    assert list(rows["checkpoint"]) == ["qat", "qat", "float", "float", "again", "again"]
    assert list(rows[rows.checkpoint == "again"]["accuracy"]) == list(
        frame[frame.checkpoint == "qat"]["accuracy"]
    )
    single = HEAD.format(name="single", bits="[6, 8]") + (
        f"accuracy: {{checkpoint: {QAT}, images: {IMAGES}, batch: {IMAGES}}}\n"
    )
    result = sweep(write(path.parent, single, "single.yaml"), store, workers=0, progress=False)
    assert (result.evaluated, result.oracle_runs) == (2, 0)
    rows = read_results(store, "single")
    assert rows["checkpoint"].isna().all()
    assert list(rows["accuracy"]) == list(frame[frame.checkpoint == "qat"]["accuracy"])


def test_plots_and_tables_show_the_label(ran, tmp_path):
    import matplotlib.pyplot as plt

    _, store, _, frame = ran
    fig = plot_sensitivity(frame, "adc.bits", "accuracy", hue="checkpoint")
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["checkpoint = qat", "checkpoint = float"]
    plt.close(fig)
    fig = plot_pareto(frame, "energy_pj:min,accuracy:max")
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert labels and all(t.split(", ")[0] in ("qat", "float") for t in labels), labels
    assert "labels: checkpoint, adc.bits" in fig._suptitle.get_text()
    plt.close(fig)
    runner = CliRunner()
    png = tmp_path / "hue.png"
    out = runner.invoke(
        main,
        ["plot", str(store), "--sweep", "ckpts", "--parameter", "adc.bits", "--metric",
         "accuracy", "--hue", "checkpoint", "--output", str(png)],
    )
    assert out.exit_code == 0 and png.stat().st_size > 0, out.output
    out = runner.invoke(main, ["pareto", str(store), "--sweep", "ckpts", "--format", "csv"])
    assert out.exit_code == 0, out.output
    header = out.output.splitlines()[0].split(",")
    assert header.index("checkpoint") < header.index("adc.bits")
    out = runner.invoke(main, ["results", str(store), "--sweep", "ckpts"])
    assert out.exit_code == 0 and "checkpoint" in out.output.splitlines()[0], out.output


# -- strategies (with a stand-in oracle: what is tested is which points are asked for) --------


def _fake_oracle(ctx, spec, workload, checkpoint=None):
    acc = {"qat": 0.9, "float": 0.8}[checkpoint] + spec.adc.bits / 1000
    return {"accuracy": acc, "accuracy_worst": acc, "accuracy_std": 0.0, "per_chip": "[]",
            "eval_s": 0.0}


def test_random_draws_checkpoints_like_any_parameter(tmp_path, monkeypatch):
    monkeypatch.setattr(worker, "_oracle", _fake_oracle)
    body = labelled(tmp_path, bits="[4, 5, 6, 7, 8]", strategy="strategy: {kind: random, n: 6}\n")
    path = write(tmp_path, body)
    spec = load_sweep(path)
    points = random_points(spec, KeyMaker.of(spec), 6, 0)
    assert {p.checkpoint for p in points} == {"qat", "float"}  # at most 5 per label
    result = sweep(path, tmp_path / "r.sqlite", workers=0, progress=False)
    frame = read_results(tmp_path / "r.sqlite")
    assert result.evaluated == 6 and (frame.status == "ok").all()
    assert len(set(zip(frame.checkpoint, frame["adc.bits"], strict=True))) == 6
    assert (frame.accuracy > 0.85).eq(frame.checkpoint == "qat").all()


@pytest.mark.parametrize("kind", ["nsga2", "tpe"])
def test_search_takes_the_checkpoint_as_a_categorical(tmp_path, monkeypatch, kind):
    monkeypatch.setattr(worker, "_oracle", _fake_oracle)
    strategy = f"strategy: {{kind: {kind}, n: 8, seed: 1, population: 4}}\n"
    path = write(tmp_path, labelled(tmp_path, bits="{range: [3, 8]}", strategy=strategy))
    store = tmp_path / "s.sqlite"
    first = sweep(path, store, workers=0, progress=False)
    assert first.evaluated + first.skipped == 8 and first.failed == 0
    frame = read_results(store)
    assert set(frame.checkpoint) <= {"qat", "float"} and frame.checkpoint.notna().all()
    assert (frame.accuracy > 0.85).eq(frame.checkpoint == "qat").all()
    replay = sweep(path, store, workers=0, progress=False)
    assert replay.evaluated == 0
