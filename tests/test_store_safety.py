"""The results store under misuse and sharing: sweep names that would escape ``results/``,
``--fresh`` on a store other sweeps wrote, two sweeps writing one new store at once, a changed
checkpoint, failed designs, sweeps sharing designs, and read-only commands on foreign files."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import pimsim.explore._worker as worker
from pimsim.cli import main
from pimsim.errors import PimsimError, SpecError
from pimsim.explore import ResultStore, pareto, read_results, sweep
from pimsim.spec import load_sweep
from tests._cli import ROOT
from tests.test_explore import write_sweep

SHIPPED_MLP = ROOT / "results" / "checkpoints" / "mlp_mnist_float"


def cost_sweep(name: str, parameters: str, **extra: str) -> str:
    """A cost-only sweep of the unit arch on the MLP."""
    body = f"kind: sweep\nname: {name}\narch: unit.yaml\nworkload: mlp_mnist\n"
    body += "parameters:\n" + parameters
    for key, value in extra.items():
        body += f"{key}: {value}\n"
    return body


def snapshot(path: Path) -> bytes:
    """The file's bytes (to show that it was left alone)."""
    return path.read_bytes()


# -- 1. sweep names and --fresh ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["../x", "/tmp/x", "../../other/important", "a/b", "..", ".hidden", "a\\b", "a..b"]
)
def test_sweep_name_must_be_a_plain_identifier(tmp_path, name):
    body = cost_sweep("PLACEHOLDER", "  adc.bits: [4, 5]\n").replace("PLACEHOLDER", f"'{name}'")
    path = write_sweep(tmp_path, body)
    with pytest.raises(SpecError) as info:
        load_sweep(path)
    text = str(info.value)
    assert f"{path}:2:" in text and ": name: " in text and "plain name" in text, text


@pytest.mark.parametrize("name", ["grid", "adc_vs_scheme-2", "v1.2", "A9"])
def test_plain_sweep_names_load(tmp_path, name):
    path = write_sweep(tmp_path, cost_sweep(name, "  adc.bits: [4, 5]\n"))
    assert load_sweep(path).name == name


def test_fresh_refuses_a_store_another_sweep_wrote(tmp_path):
    store = tmp_path / "shared.sqlite"
    first = write_sweep(tmp_path, cost_sweep("first", "  adc.bits: [4, 5, 6]\n"), "a.yaml")
    second = write_sweep(tmp_path, cost_sweep("second", "  adc.bits: [7]\n"), "b.yaml")
    sweep(first, store, workers=0, progress=False)
    before = snapshot(store)
    with pytest.raises(PimsimError, match=r"'first'") as info:
        sweep(second, store, workers=0, progress=False, fresh=True)
    assert "second" in str(info.value) and str(store) in str(info.value)
    assert snapshot(store) == before
    assert len(read_results(store)) == 3
    # the sweep's own store may be started afresh
    again = sweep(first, store, workers=0, progress=False, fresh=True)
    assert (again.evaluated, again.skipped) == (3, 0)


def test_fresh_never_deletes_a_file_that_is_not_a_store(tmp_path):
    path = write_sweep(tmp_path, cost_sweep("mine", "  adc.bits: [4]\n"))
    for content in (b"precious text, not a database\n" * 20, None):
        target = tmp_path / "other.sqlite"
        target.unlink(missing_ok=True)
        if content is None:  # a sqlite file of someone else's
            with sqlite3.connect(target) as db:
                db.execute("CREATE TABLE notes (text TEXT)")
                db.execute("INSERT INTO notes VALUES ('keep me')")
            db.close()
        else:
            target.write_bytes(content)
        before = snapshot(target)
        with pytest.raises(PimsimError, match="not a pimsim results store"):
            sweep(path, target, workers=0, progress=False, fresh=True)
        assert snapshot(target) == before
        with pytest.raises(PimsimError, match="not a pimsim results store"):
            sweep(path, target, workers=0, progress=False)  # nor written into
        assert snapshot(target) == before


# -- 2. two sweeps into one new store at once --------------------------------------------------

CHILD = """\
import sys, time
from pathlib import Path
from pimsim.explore import sweep
from pimsim.spec import load_sweep
spec_path, store, ready, go = sys.argv[1:5]
spec = load_sweep(spec_path)
Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.0005)
result = sweep(spec, store, workers=0, progress=False)
print(result.evaluated, result.failed)
"""


def test_two_sweeps_at_once_into_a_new_store(tmp_path):
    a = write_sweep(
        tmp_path, cost_sweep("left", "  adc.bits: [3, 4, 5, 6, 7]\n  technology.clock_hz: "
                             "[1.0e8, 2.0e8]\n"), "a.yaml")
    b = write_sweep(
        tmp_path, cost_sweep("right", "  array.rows_per_adc_read: [8, 16, 64]\n"
                             "  technology.clock_hz: [1.0e8, 2.0e8, 3.0e8]\n"), "b.yaml")
    for attempt in range(3):
        store = tmp_path / f"race{attempt}.sqlite"
        go = tmp_path / f"go{attempt}"
        ready = [tmp_path / f"ready{attempt}{side}" for side in "ab"]
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", CHILD, str(spec), str(store), str(flag), str(go)],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            for spec, flag in zip((a, b), ready, strict=True)
        ]
        deadline = time.monotonic() + 120
        while not all(f.exists() for f in ready) and time.monotonic() < deadline:
            time.sleep(0.005)
        go.touch()
        outs = [p.communicate(timeout=120) for p in procs]
        for proc, (_, err) in zip(procs, outs, strict=True):
            assert proc.returncode == 0, err
        assert [out.split() for out, _ in outs] == [["10", "0"], ["9", "0"]]
        frame = read_results(store)
        assert len(frame) == 19 and frame["key"].is_unique and (frame.status == "ok").all()
        assert len(read_results(store, "left")) == 10 and len(read_results(store, "right")) == 9


def test_two_handles_add_the_same_columns(tmp_path):
    """A store's column cache may be stale: another writer added the columns meanwhile."""
    path = tmp_path / "s.sqlite"
    one, two = ResultStore(path), ResultStore(path)
    row = {"key": "k1", "point": 0, "sweep": "x", "status": "ok", "request": "r1",
           "energy_pj": 1.0, "adc.bits": 4}
    one.commit([row], roles={"adc.bits": "parameter"})
    two.commit([{**row, "key": "k2", "request": "r2", "point": 1}], roles={"adc.bits": "parameter"})
    one.close()
    two.close()
    with ResultStore(path) as db:
        assert db.roles() == {"adc.bits": "parameter", "energy_pj": "metric"}
        assert len(db.frame()) == 2


# -- 3a. a changed checkpoint ------------------------------------------------------------------

CHECKPOINT_SWEEP = """\
kind: sweep
name: ckpt
arch: small.yaml
workload: mlp_mnist
parameters:
  technology.clock_hz: [1.0e8, 1.0e9]
objectives: [energy_pj:min, accuracy:max]
accuracy: {checkpoint: ck.pt, images: 40, batch: 20}
"""


def test_a_changed_checkpoint_runs_the_oracle_again(tmp_path):
    import torch

    from pimsim.training import save_checkpoint
    from pimsim.workload import zoo_model

    for suffix in (".pt", ".json"):
        shutil.copyfile(SHIPPED_MLP.with_suffix(suffix), tmp_path / f"ck{suffix}")
    path = write_sweep(tmp_path, CHECKPOINT_SWEEP)
    store = tmp_path / "ck.sqlite"
    first = sweep(path, store, workers=0, progress=False)
    assert (first.evaluated, first.oracle_runs) == (2, 1)
    assert sweep(path, store, workers=0, progress=False).oracle_runs == 0
    old = read_results(store, "ckpt")
    torch.manual_seed(0)
    untrained = zoo_model("mlp_mnist")
    save_checkpoint(tmp_path / "ck", untrained, {"workload": "mlp_mnist", "method": "float"})
    second = sweep(path, store, workers=0, progress=False)
    assert (second.evaluated, second.skipped, second.oracle_runs) == (2, 0, 1)
    new = read_results(store, "ckpt")
    assert len(new) == 2 and (new.status == "ok").all()
    assert set(new["accuracy_key"]).isdisjoint(old["accuracy_key"])
    assert old["accuracy"].iloc[0] > 0.5 > new["accuracy"].iloc[0]  # trained vs untrained


# -- 3b. failed designs are retried ------------------------------------------------------------


def test_failed_designs_are_retried_and_infeasible_ones_are_not(tmp_path, monkeypatch):
    body = cost_sweep("flaky", "  adc.bits: [4, 5, 6]\n  array.rows_per_adc_read: [32, 256]\n")
    path = write_sweep(tmp_path, body)
    store = tmp_path / "flaky.sqlite"
    cost, resolve = worker._cost, worker.resolve

    def broken_cost(spec, *args, **kwargs):
        if spec.adc.bits == 5:
            raise RuntimeError("transient fault in the cost model")
        return cost(spec, *args, **kwargs)

    def broken_resolve(ctx, point):
        if point.overrides == {"adc.bits": 6, "array.rows_per_adc_read": 32}:
            raise RuntimeError("transient fault before the design key")
        return resolve(ctx, point)

    monkeypatch.setattr(worker, "_cost", broken_cost)
    monkeypatch.setattr(worker, "resolve", broken_resolve)
    first = sweep(path, store, workers=0, progress=False)
    assert (first.evaluated, first.infeasible, first.failed) == (6, 3, 2)
    monkeypatch.undo()
    second = sweep(path, store, workers=0, progress=False)
    assert (second.evaluated, second.skipped, second.infeasible, second.failed) == (2, 4, 0, 0)
    frame = read_results(store)
    assert len(frame) == 6 and frame["key"].is_unique
    assert sorted(frame.status) == ["infeasible"] * 3 + ["ok"] * 3
    third = sweep(path, store, workers=0, progress=False)
    assert (third.evaluated, third.skipped) == (0, 6)


# -- 3c. sweeps sharing a store ----------------------------------------------------------------


def test_a_sweep_sees_every_design_it_asked_for(tmp_path):
    store = tmp_path / "shared.sqlite"
    objectives = "[energy_pj:min, latency_ns:min]"
    a = write_sweep(
        tmp_path, cost_sweep("a", "  adc.bits: [4, 5, 6]\n", objectives=objectives), "a.yaml")
    b = write_sweep(
        tmp_path, cost_sweep("b", "  adc.bits: [5, 6, 7, 8]\n", objectives=objectives), "b.yaml")
    sweep(a, store, workers=0, progress=False)
    second = sweep(b, store, workers=0, progress=False)
    assert (second.evaluated, second.skipped) == (2, 2)
    frame = second.frame()
    assert sorted(frame["adc.bits"]) == [5, 6, 7, 8]
    assert (frame["sweep"] == "b").all() and sorted(frame["point"]) == [0, 1, 2, 3]
    expected = pareto(frame, "energy_pj:min,latency_ns:min")
    assert len(second.pareto()) == len(expected)
    assert set(second.pareto()["key"]) == set(expected["key"])
    assert sorted(read_results(store, "a")["adc.bits"]) == [4, 5, 6]
    assert (read_results(store, "a")["sweep"] == "a").all()
    assert len(read_results(store)) == 5
    runner = CliRunner()
    out = runner.invoke(main, ["pareto", str(store), "--sweep", "b"])
    assert out.exit_code == 0, out.output
    assert "of 4 designs" in out.output


# -- 3d. read-only commands --------------------------------------------------------------------


def test_read_only_commands_leave_a_foreign_file_alone(tmp_path):
    foreign = tmp_path / "notes.sqlite"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
        db.execute("INSERT INTO notes VALUES ('keep me')")
    db.close()
    before = snapshot(foreign)
    runner = CliRunner()
    for args in (
        ["results", str(foreign)],
        ["pareto", str(foreign), "--objectives", "energy_pj:min"],
        ["plot", str(foreign), "--parameter", "adc.bits", "--metric", "energy_pj"],
    ):
        out = runner.invoke(main, args)
        assert out.exit_code == 2, out.output
        lines = [line for line in out.output.splitlines() if line.strip()]
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"error: {foreign}: not a pimsim results store"), lines
    with pytest.raises(PimsimError, match="not a pimsim results store"):
        read_results(foreign)
    assert snapshot(foreign) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.sqlite"]
    with sqlite3.connect(foreign) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    db.close()


def test_read_only_commands_do_not_write_a_store(tmp_path):
    path = write_sweep(tmp_path, cost_sweep("ro", "  adc.bits: [4, 5]\n"))
    store = tmp_path / "ro.sqlite"
    sweep(path, store, workers=0, progress=False)
    before = snapshot(store)
    runner = CliRunner()
    out = runner.invoke(main, ["results", str(store), "--format", "csv"])
    assert out.exit_code == 0, out.output
    assert len(out.output.strip().splitlines()) == 3
    assert len(read_results(store, "ro")) == 2
    assert snapshot(store) == before
