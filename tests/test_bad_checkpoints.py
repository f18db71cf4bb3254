"""Hostile or damaged checkpoints, sidecars, resume files and ``--writes-from`` summaries: every
one is refused with one ``error:`` line naming the file, exit status 2 and no traceback, and the
Python API raises a typed :class:`~pimsim.errors.PimsimError`. Every hostile file is written
into ``tmp_path`` by the test itself."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

import pimsim  # noqa: E402
from pimsim.cli import main  # noqa: E402
from pimsim.cost._training import SummaryError, read_writes_summary  # noqa: E402
from pimsim.errors import PimsimError  # noqa: E402
from pimsim.training import CheckpointError, load_checkpoint  # noqa: E402
from pimsim.training._train import ResumeError, load_resume, save_resume  # noqa: E402
from tests._cli import ROOT, refusal, run_cli  # noqa: E402

ARCH = str(ROOT / "arch_specs" / "isaac.yaml")
ONCHIP = str(ROOT / "arch_specs" / "rram_onchip_22nm.yaml")
SHIPPED = ROOT / "results" / "checkpoints"


class Marker:
    """Unpickling this writes ``path``: what a crafted file could do if it were unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __reduce__(self):
        return (Path.write_text, (self.path, "code from a crafted file ran"))


def refused(args: list[str], name: str) -> str:
    """Run the CLI in-process; assert one ``error:`` line naming ``name``, exit status 2, no
    traceback; return the line (how long refusals take: ``bench/refusal_speed.py``)."""
    line = refusal(args)
    assert name in line, line
    return line


def copy_checkpoint(folder: Path, name: str = "ckpt", source: str = "lenet5_mnist_qat"):
    """A copy of a shipped checkpoint: ``(pt, sidecar)`` in ``folder``."""
    pt, sidecar = folder / f"{name}.pt", folder / f"{name}.json"
    shutil.copy(SHIPPED / f"{source}.pt", pt)
    shutil.copy(SHIPPED / f"{source}.json", sidecar)
    return pt, sidecar


def edit_sidecar(sidecar: Path, keep_digest: bool = True, **changes) -> None:
    meta = json.loads(sidecar.read_text())
    if not keep_digest:
        meta.pop("state_dict_sha256")
    meta.update(changes)
    sidecar.write_text(json.dumps(meta))


def replace_pt(pt: Path, data: bytes) -> None:
    """New ``.pt`` bytes; the sidecar's digest is dropped so that the content itself is read."""
    pt.write_bytes(data)
    edit_sidecar(pt.with_suffix(".json"), keep_digest=False)


def _nonzip(pt, sidecar, tmp):
    replace_pt(pt, b"hello, not a zip archive at all")


def _truncated(pt, sidecar, tmp):
    data = pt.read_bytes()
    replace_pt(pt, data[: len(data) // 2])


def _empty(pt, sidecar, tmp):
    replace_pt(pt, b"")


def _crafted(pt, sidecar, tmp):
    torch.save({"conv1.weight": Marker(tmp / "marker.txt")}, pt)
    edit_sidecar(sidecar, keep_digest=False)


def _raw_pickle(pt, sidecar, tmp):
    replace_pt(pt, pickle.dumps(Marker(tmp / "marker.txt")))


def _list_of_tensors(pt, sidecar, tmp):
    torch.save([torch.zeros(3)], pt)
    edit_sidecar(sidecar, keep_digest=False)


def _other_network(pt, sidecar, tmp):
    shutil.copy(SHIPPED / "mlp_mnist_float.pt", pt)
    edit_sidecar(sidecar, keep_digest=False, method="float", weight_bits=None, input_bits=None,
                 layers={})


def _foreign_dict(pt, sidecar, tmp):
    torch.save({"a": torch.zeros(2)}, pt)
    edit_sidecar(sidecar, keep_digest=False)


def _pt_directory(pt, sidecar, tmp):
    pt.unlink()
    pt.mkdir()


def _pt_fifo(pt, sidecar, tmp):
    pt.unlink()
    os.mkfifo(pt)


def _pt_device(pt, sidecar, tmp):
    pt.unlink()
    pt.symlink_to("/dev/zero")


def _sidecar_fifo(pt, sidecar, tmp):
    sidecar.unlink()
    os.mkfifo(sidecar)


def _sidecar_huge(pt, sidecar, tmp):
    with sidecar.open("r+b") as f:
        f.truncate(17 * 2**20)  # sparse: no time or disk


def _sidecar_missing(pt, sidecar, tmp):
    sidecar.unlink()


def _sidecar_text(text: str):
    def change(pt, sidecar, tmp):
        sidecar.write_text(text)

    return change


def _sidecar_bytes(pt, sidecar, tmp):
    sidecar.write_bytes(b"\xff\xfe\x00 not utf-8")


def _sidecar_field(**changes):
    def change(pt, sidecar, tmp):
        edit_sidecar(sidecar, **changes)

    return change


#: (id, how to spoil a copy of the LeNet-5 QAT checkpoint, file at fault, words of the message)
CHECKPOINT_CASES = [
    ("pt-not-zip", _nonzip, "ckpt.pt", "not a pimsim checkpoint or a damaged one"),
    ("pt-truncated", _truncated, "ckpt.pt", "not a pimsim checkpoint or a damaged one"),
    ("pt-empty", _empty, "ckpt.pt", "empty or cut short"),
    ("pt-crafted-pickle", _crafted, "ckpt.pt", "could run code"),
    ("pt-raw-pickle", _raw_pickle, "ckpt.pt", "not a pimsim checkpoint"),
    ("pt-list", _list_of_tensors, "ckpt.pt", "not a mapping of names to tensors"),
    ("pt-other-network", _other_network, "ckpt.pt", "it holds the weights of mlp_mnist"),
    ("pt-foreign-dict", _foreign_dict, "ckpt.pt", "unexpected: a"),
    ("pt-directory", _pt_directory, "ckpt.pt", "a directory"),
    ("pt-fifo", _pt_fifo, "ckpt.pt", "not a regular file"),
    ("pt-device", _pt_device, "ckpt.pt", "not a regular file"),
    ("sidecar-fifo", _sidecar_fifo, "ckpt.json", "not a regular file"),
    ("sidecar-huge", _sidecar_huge, "ckpt.json", "larger than 16 MiB"),
    ("sidecar-missing", _sidecar_missing, "ckpt.json", "no such file"),
    ("sidecar-empty", _sidecar_text(""), "ckpt.json", "not valid JSON"),
    ("sidecar-list", _sidecar_text("[1, 2]"), "ckpt.json", "not a list"),
    ("sidecar-not-utf8", _sidecar_bytes, "ckpt.json", "not valid JSON"),
    ("layers-list", _sidecar_field(layers=[1]), "ckpt.json", "layers: input should be"),
    ("layer-string", _sidecar_field(layers={"conv1": "x"}), "ckpt.json", "layers.conv1"),
    ("layer-bits", _sidecar_field(layers={"fc1": {"weight_bits": "8"}}), "ckpt.json",
     "layers.fc1.weight_bits"),
    ("workload-int", _sidecar_field(workload=5), "ckpt.json", "workload: input should be"),
    ("workload-list", _sidecar_field(workload=["a"]), "ckpt.json", "workload"),
    ("workload-unknown", _sidecar_field(workload="nope"), "ckpt.json", "unknown zoo network"),
    ("weight-bits-string", _sidecar_field(weight_bits="8"), "ckpt.json", "weight_bits"),
    ("weight-bits-zero", _sidecar_field(weight_bits=0), "ckpt.json", "weight_bits: must be >= 2"),
    ("weight-bits-huge", _sidecar_field(weight_bits=10**6), "ckpt.json", "must be <= 32"),
    ("weight-bits-float", _sidecar_field(weight_bits=8.5), "ckpt.json", "weight_bits"),
    ("input-bits-null", _sidecar_field(input_bits=None), "ckpt.json", "input_bits"),
    ("method-unknown", _sidecar_field(method="sgd"), "ckpt.json", "method"),
    ("digest-int", _sidecar_field(state_dict_sha256=5), "ckpt.json", "state_dict_sha256"),
    ("accuracy-nan", _sidecar_text('{"workload": "lenet5_mnist", "method": "float", '
                                   '"accuracy": NaN}'), "ckpt.json", "accuracy"),
]


@pytest.mark.parametrize(("spoil", "name", "words"), [c[1:] for c in CHECKPOINT_CASES],
                         ids=[c[0] for c in CHECKPOINT_CASES])
def test_accuracy_refuses_a_bad_checkpoint(tmp_path, spoil, name, words):
    pt, sidecar = copy_checkpoint(tmp_path)
    spoil(pt, sidecar, tmp_path)
    line = refused(["accuracy", ARCH, "lenet5_mnist", "--checkpoint", str(pt), "--chips", "1"],
                   name)
    assert words in line
    assert not (tmp_path / "marker.txt").exists()


@pytest.mark.parametrize("spoil", [_nonzip, _sidecar_text("[1]"), _other_network,
                                   _sidecar_field(weight_bits="8"), _crafted],
                         ids=["not-zip", "sidecar-list", "other-network", "bits", "crafted"])
@pytest.mark.parametrize("how", [["--method", "qat"], ["--rule", "backprop"]],
                         ids=["qat", "backprop"])
def test_train_init_refuses_a_bad_checkpoint(tmp_path, spoil, how):
    pt, sidecar = copy_checkpoint(tmp_path)
    spoil(pt, sidecar, tmp_path)
    arch = ONCHIP if how[0] == "--rule" else ARCH
    refused(["train", arch, "lenet5_mnist", *how, "--init", str(pt), "--epochs", "1",
             "--checkpoint", str(tmp_path / "out.pt")], "ckpt.")
    assert not (tmp_path / "marker.txt").exists() and not (tmp_path / "out.pt").exists()


# ------------------------------------------------------------------------------ resume files

TRAIN = ["train", ARCH, "lenet5_mnist", "--method", "float", "--epochs", "1",
         "--train-samples", "32", "--batch-size", "32"]


@pytest.fixture(scope="module")
def lenet_resume(tmp_path_factory) -> dict:
    """A real resume file of a tiny LeNet-5 float run of :data:`TRAIN` (its entries)."""
    folder = tmp_path_factory.mktemp("resume")
    res = CliRunner().invoke(main, [*TRAIN, "--checkpoint", str(folder / "run.pt")])
    assert res.exit_code == 0, res.output
    return torch.load(folder / "run.resume.pt", weights_only=True)


def _resume_bytes(data: bytes):
    def write(path: Path, saved: dict, tmp: Path) -> None:
        path.write_bytes(data)

    return write


def _resume_changed(**changes):
    def write(path: Path, saved: dict, tmp: Path) -> None:
        save_resume(path, {k: v for k, v in {**saved, **changes}.items()
                           if k not in ("format", "version")})

    return write


def _resume_crafted(path, saved, tmp):
    torch.save({"format": "pimsim-resume", "model": Marker(tmp / "marker.txt")}, path)


def _resume_unmarked(path, saved, tmp):
    torch.save({"epoch": 1}, path)


def _resume_mlp_weights(path, saved, tmp):
    model = torch.load(SHIPPED / "mlp_mnist_float.pt", weights_only=True)
    _resume_changed(model=model)(path, saved, tmp)


def _resume_directory(path, saved, tmp):
    path.mkdir()


def _resume_fifo(path, saved, tmp):
    os.mkfifo(path)


RESUME_CASES = [
    ("empty", _resume_bytes(b""), "the file is empty or cut short"),
    ("not-zip", _resume_bytes(b"PK\x03\x04 not a zip archive"), "not a valid pimsim resume"),
    ("crafted", _resume_crafted, "could run code"),
    ("no-marker", _resume_unmarked, "no pimsim resume marker"),
    ("log-row", _resume_changed(log=[{"epoch": 1, "train_loss": "low", "test_accuracy": None,
                                      "lr": 0.0, "wall_time_s": 1.0}]), "log row 1: train_loss"),
    ("log-row-keys", _resume_changed(log=[{"epoch": 1}]), "log row 1"),
    ("epoch-type", _resume_changed(epoch="1"), "'epoch' is missing or not a int"),
    ("other-network", _resume_mlp_weights, "it holds the weights of mlp_mnist"),
    ("optimizer", _resume_changed(optimizer={"state": [], "param_groups": [1]}),
     "does not fit this run"),
    ("directory", _resume_directory, "a directory"),
    ("fifo", _resume_fifo, "not a regular file"),
]


@pytest.mark.parametrize(("spoil", "words"), [c[1:] for c in RESUME_CASES],
                         ids=[c[0] for c in RESUME_CASES])
def test_train_refuses_a_bad_resume_file(tmp_path, lenet_resume, spoil, words):
    spoil(tmp_path / "run.resume.pt", lenet_resume, tmp_path)
    line = refused([*TRAIN, "--checkpoint", str(tmp_path / "run.pt")], "run.resume.pt")
    assert words in line and "--fresh" in line
    assert not (tmp_path / "marker.txt").exists()


# ------------------------------------------------------------------------- --writes-from


def summary(**changes) -> dict:
    """A ``pimsim train --rule backprop --summary`` of LeNet-5."""
    layers = ("conv1", "conv2", "fc1", "fc2", "fc3")
    data = {"workload": "lenet5_mnist", "rule": "backprop", "update": "exact",
            "batch_size": 16, "samples_per_epoch": 8000,
            "writes_per_step": dict.fromkeys(layers, 100.0),
            "pulses_per_step": dict.fromkeys(layers, 200.0)}
    data.update(changes)
    return data


def _counts(value) -> dict:
    return {**summary()["writes_per_step"], "fc1": value}


SUMMARY_CASES = [
    ("nan", json.dumps(summary(writes_per_step=_counts(float("nan")))), "writes_per_step.fc1"),
    ("inf", json.dumps(summary(pulses_per_step=_counts(float("inf")))), "pulses_per_step.fc1"),
    ("string", json.dumps(summary(writes_per_step=_counts("10"))), "writes_per_step.fc1"),
    ("bool", json.dumps(summary(writes_per_step=_counts(True))), "writes_per_step.fc1"),
    ("huge-int", json.dumps(summary(writes_per_step=_counts(10**400))), "writes_per_step.fc1"),
    ("negative", json.dumps(summary(writes_per_step=_counts(-1))), "must be >= 0"),
    ("list", json.dumps(summary(writes_per_step=[1, 2])), "writes_per_step"),
    ("missing", json.dumps({"batch_size": 4}), "writes_per_step: missing"),
    ("batch-negative", json.dumps(summary(batch_size=-3)), "batch_size: must be >= 1"),
    ("batch-float", json.dumps(summary(batch_size=2.5)), "batch_size"),
    ("batch-string", json.dumps(summary(batch_size="16")), "batch_size"),
    ("batch-nan", json.dumps(summary()).replace('"batch_size": 16', '"batch_size": NaN'),
     "batch_size"),
    ("samples-zero", json.dumps(summary(samples_per_epoch=0)), "samples_per_epoch"),
    ("workload-list", json.dumps(summary(workload=["x"])), "workload"),
    ("update-dict", json.dumps(summary(update={"a": 1})), "update"),
    ("top-list", "[1, 2]", "a JSON object expected"),
    ("not-json", "{", "not a 'pimsim train --summary' file"),
]


@pytest.mark.parametrize(("text", "words"), [c[1:] for c in SUMMARY_CASES],
                         ids=[c[0] for c in SUMMARY_CASES])
def test_evaluate_refuses_a_bad_writes_summary(tmp_path, text, words):
    path = tmp_path / "summary.json"
    path.write_text(text)
    line = refused(["evaluate", ONCHIP, "lenet5_mnist", "--training", "backprop",
                    "--writes-from", str(path)], "summary.json")
    assert words in line


@pytest.mark.parametrize("kind", ["fifo", "huge"])
def test_evaluate_refuses_a_summary_that_is_no_regular_file(tmp_path, kind):
    path = tmp_path / "summary.json"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        with path.open("wb") as f:
            f.truncate(17 * 2**20)
    line = refused(["evaluate", ONCHIP, "lenet5_mnist", "--training", "backprop",
                    "--writes-from", str(path)], "summary.json")
    assert ("not a regular file" if kind == "fifo" else "larger than 16 MiB") in line


def test_a_good_summary_is_still_read(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(summary()))
    got = read_writes_summary(path, pimsim.load_workload("lenet5_mnist"), rule="backprop")
    assert got["batch_size"] == 16 and got["writes_per_step"]["fc1"] == 100.0


# ------------------------------------------------------------------------------ Python API


def test_empty_checkpoint_in_a_real_process(tmp_path):
    """The command as users run it: one line, status 2, no 'Aborted!'."""
    pt, sidecar = copy_checkpoint(tmp_path)
    _empty(pt, sidecar, tmp_path)
    res = run_cli("accuracy", ARCH, "lenet5_mnist", "--checkpoint", str(pt), timeout=60)
    assert res.returncode == 2 and "Traceback" not in res.stderr and "Aborted" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "ckpt.pt" in lines[0]


@pytest.mark.parametrize(("spoil", "words"), [(c[1], c[3]) for c in CHECKPOINT_CASES[::3]],
                         ids=[c[0] for c in CHECKPOINT_CASES[::3]])
def test_load_checkpoint_raises_checkpoint_error(tmp_path, spoil, words):
    pt, sidecar = copy_checkpoint(tmp_path)
    spoil(pt, sidecar, tmp_path)
    with pytest.raises(CheckpointError, match=words.replace(".", r"\.")) as info:
        load_checkpoint(pt)
    assert isinstance(info.value, PimsimError) and "\n" not in str(info.value)


def test_load_resume_raises_resume_error(tmp_path, lenet_resume):
    """Every resume case but the two that fit the format and not the model (the model and
    optimizer checks of train_model refuse those, in the CLI cases above)."""
    for case_id, spoil, words in RESUME_CASES:
        if case_id in ("other-network", "optimizer"):
            continue
        path = tmp_path / case_id / "run.resume.pt"
        path.parent.mkdir()
        spoil(path, lenet_resume, tmp_path)
        with pytest.raises(ResumeError, match=words) as info:
            load_resume(path, lenet_resume["hyperparameters"])
        assert "\n" not in str(info.value)
    assert not (tmp_path / "marker.txt").exists()


def test_train_model_names_the_parameters_that_do_not_fit(tmp_path):
    from torch import nn

    from pimsim.training import train_model

    gen = torch.Generator().manual_seed(0)
    data = torch.rand(16, 1, 4, 4, generator=gen), torch.randint(0, 3, (16,), generator=gen)
    run = dict(checkpoint=tmp_path / "m.pt", batch_size=8, progress=False)
    train_model(nn.Sequential(nn.Flatten(), nn.Linear(16, 3)), data, **run)
    with pytest.raises(ResumeError, match=r"1\.weight \[3, 16\] in the file, \[4, 16\] in the"):
        train_model(nn.Sequential(nn.Flatten(), nn.Linear(16, 4)), data, **run)


def test_read_writes_summary_raises_summary_error(tmp_path):
    wl = pimsim.load_workload("lenet5_mnist")
    path = tmp_path / "s.json"
    for text, _ in [(c[1], c[2]) for c in SUMMARY_CASES]:
        path.write_text(text)
        with pytest.raises(SummaryError, match=r"s\.json: "):
            read_writes_summary(path, wl, rule="backprop")
    with pytest.raises(SummaryError, match="a directory"):
        read_writes_summary(tmp_path, wl, rule="backprop")
    with pytest.raises(SummaryError, match="no such file"):
        read_writes_summary(tmp_path / "absent.json", wl, rule="backprop")
