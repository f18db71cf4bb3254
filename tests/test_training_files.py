"""The files training writes and reads: atomic writes (an interrupted write keeps the previous
file), resume files that cannot run code, and resuming only with the hyperparameters a resume
file was made with."""

from __future__ import annotations

import csv
import errno
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import pimsim  # noqa: E402
from pimsim._atomic import atomic_write  # noqa: E402
from pimsim.errors import PimsimError  # noqa: E402
from pimsim.spec import preset_overrides  # noqa: E402
from pimsim.training import _train as train_module  # noqa: E402
from pimsim.training import load_checkpoint, save_checkpoint, train  # noqa: E402
from pimsim.training._train import build_model  # noqa: E402
from tests._cli import ROOT, run_cli  # noqa: E402

SPEC = ROOT / "arch_specs" / "sram_charge_domain_28nm.yaml"

#: A tiny QAT run of the MLP: 64 training images, 2 steps an epoch.
TINY = dict(train_samples=64, batch_size=32, seed=1, progress=False)


@pytest.fixture(autouse=True)
def small_test_split(monkeypatch):
    """Training evaluates on the first 256 test images only (the files are what is tested)."""
    real = train_module.load_dataset

    def load(name, root=None, split="test"):
        x, y = real(name, root, split)
        return (x[:256], y[:256]) if split == "test" else (x, y)

    monkeypatch.setattr(train_module, "load_dataset", load)


def tiny_train(folder: Path, method: str = "qat", epochs: int = 1, **kwargs):
    """Train the MLP in ``folder`` (checkpoint ``run.pt``, resume file ``run.resume.pt``, log
    ``run.csv``); ``kwargs`` override :data:`TINY` and add options."""
    return train(
        "mlp_mnist",
        method,
        epochs=epochs,
        checkpoint=folder / "run.pt",
        log_csv=folder / "run.csv",
        **{**TINY, **kwargs},
    )


def log_epochs(path: Path) -> list[int]:
    """The epochs a CSV log claims."""
    with path.open(newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def leftovers(folder: Path) -> list[str]:
    """Temporary files left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


class WritesMarker:
    """Unpickling this object writes ``path``: what a crafted resume file could do."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __reduce__(self):
        return (Path.write_text, (self.path, "code from a resume file ran"))


def crafted_resume_file(path: Path, marker: Path) -> None:
    """A resume file whose unpickling writes ``marker``, where the model's state would be."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": WritesMarker(marker), "epoch": 0, "log": []}, path)


def half_save(real_save):
    """A ``torch.save`` that writes half of the bytes, then fails like a full disk."""

    def save(obj, f, *args, **kwargs):
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        data = buffer.getvalue()[: len(buffer.getvalue()) // 2]
        if isinstance(f, str | os.PathLike):
            Path(f).write_bytes(data)
        else:
            f.write(data)
        raise OSError(errno.ENOSPC, "No space left on device (simulated)")

    return save


# --------------------------------------------------------------------------- atomic writes


def test_atomic_write_replaces_the_file_and_keeps_its_permissions(tmp_path):
    target = tmp_path / "sub" / "file.txt"
    with atomic_write(target, "w", encoding="utf-8") as f:
        f.write("first\n")
    assert target.read_text() == "first\n"  # the missing folder was created
    target.chmod(0o640)
    with atomic_write(target) as f:
        f.write(b"second\n")
    assert target.read_bytes() == b"second\n"
    assert target.stat().st_mode & 0o777 == 0o640
    assert leftovers(target.parent) == []
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(target, "a"):
            pass


def test_atomic_write_that_fails_leaves_the_old_file_and_no_temporary_file(tmp_path):
    target = tmp_path / "file.bin"
    target.write_bytes(b"good content")
    with pytest.raises(OSError, match="simulated"):
        with atomic_write(target) as f:
            f.write(b"half of the new")
            raise OSError(errno.EFBIG, "File too large (simulated)")
    assert target.read_bytes() == b"good content"
    fresh = tmp_path / "new.bin"
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(fresh) as f:
            f.write(b"partial")
            raise KeyboardInterrupt
    assert not fresh.exists()
    assert leftovers(tmp_path) == []


# --------------------------------------------------------------------------- resume files


def test_crafted_resume_file_runs_no_code_and_is_refused_clearly(tmp_path):
    marker = tmp_path / "marker.txt"
    resume = tmp_path / "run.resume.pt"
    crafted_resume_file(resume, marker)
    with pytest.raises(PimsimError) as caught:
        tiny_train(tmp_path)
    assert not marker.exists()
    message = str(caught.value)
    assert "not a valid pimsim resume file" in message and str(resume) in message
    assert "could run code: it was not loaded" in message
    assert "--fresh" in message and "delete it" in message and "\n" not in message
    # Starting over replaces it with a valid resume file, which then loads (weights only).
    tiny_train(tmp_path, resume=False)
    saved = torch.load(resume, map_location="cpu", weights_only=True)
    assert saved["epoch"] == 1 and saved["hyperparameters"]["lr"] == 1e-3
    _, metrics = tiny_train(tmp_path)  # nothing left to train: the run is continued, not redone
    assert len(metrics["log"]) == 1
    assert not marker.exists()


def test_damaged_resume_file_is_refused_clearly(tmp_path):
    (tmp_path / "run.resume.pt").write_bytes(b"PK\x03\x04 not a zip archive")
    with pytest.raises(PimsimError, match="not a valid pimsim resume file"):
        tiny_train(tmp_path)
    (tmp_path / "run.resume.pt").write_bytes(b"")
    with pytest.raises(PimsimError, match="not a valid pimsim resume file .the file is empty"):
        tiny_train(tmp_path)
    torch.save({"epoch": 1, "log": []}, tmp_path / "run.resume.pt")  # no format marker
    with pytest.raises(PimsimError, match="not a valid pimsim resume file .no pimsim resume"):
        tiny_train(tmp_path)


def test_crafted_checkpoint_runs_no_code_and_is_refused_clearly(tmp_path):
    marker = tmp_path / "marker.txt"
    pt, sidecar = save_checkpoint(
        tmp_path / "net", build_model("mlp_mnist"), {"workload": "mlp_mnist", "method": "float"}
    )
    torch.save({"fc1.weight": WritesMarker(marker)}, pt)
    sidecar.write_text(sidecar.read_text().replace('"state_dict_sha256"', '"old_sha256"'))
    with pytest.raises(PimsimError, match="not a valid state dict"):
        load_checkpoint(pt)
    assert not marker.exists()


def test_cli_train_refuses_a_crafted_default_resume_file_in_one_line(tmp_path, unit_path):
    """``pimsim train`` without --checkpoint continues results/checkpoints/NET_METHOD.resume.pt:
    a crafted one runs no code, gives one error line and exit status 2; --fresh replaces it."""
    marker = tmp_path / "marker.txt"
    resume = tmp_path / "results" / "checkpoints" / "mlp_mnist_qat.resume.pt"
    crafted_resume_file(resume, marker)
    args = ["train", str(unit_path), "mlp_mnist", "--epochs", "1", "--train-samples", "64",
            "--batch-size", "32"]
    refused = run_cli(*args, cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert "Traceback" not in refused.stderr and not marker.exists()
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "not a valid pimsim resume file" in lines[0] and "--fresh" in lines[0]
    fresh = run_cli(*args, "--fresh", cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    assert torch.load(resume, weights_only=True)["epoch"] == 1 and not marker.exists()
    other = run_cli(*args, "--lr", "0.01", cwd=tmp_path)
    assert other.returncode == 2 and "Traceback" not in other.stderr
    lines = other.stderr.strip().splitlines()
    assert len(lines) == 1 and "lr 0.001 in the resume file, 0.01 now" in lines[0]


# --------------------------------------------------------------------------- interrupted writes


def test_interrupted_resume_write_keeps_the_previous_resume_file_and_log(tmp_path, monkeypatch):
    tiny_train(tmp_path, epochs=1)
    resume, log = tmp_path / "run.resume.pt", tmp_path / "run.csv"
    before = resume.read_bytes(), log.read_bytes()
    monkeypatch.setattr(torch, "save", half_save(torch.save))
    with pytest.raises(OSError, match="simulated"):
        tiny_train(tmp_path, epochs=2)
    monkeypatch.undo()
    assert (resume.read_bytes(), log.read_bytes()) == before
    assert log_epochs(log) == [1]  # the log does not claim the epoch that was not saved
    assert torch.load(resume, weights_only=True)["epoch"] == 1
    assert leftovers(tmp_path) == []
    _, metrics = tiny_train(tmp_path, epochs=2)  # and the run continues from it
    assert [row["epoch"] for row in metrics["log"]] == [1, 2] and log_epochs(log) == [1, 2]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE semantics")
def test_file_size_limit_keeps_the_previous_resume_file_and_log(tmp_path):
    """Under a file-size limit smaller than the resume file (Python ignores SIGXFSZ, so writes
    fail with EFBIG), the previous resume file stays whole and the log unchanged."""
    tiny_train(tmp_path, epochs=1)
    resume, log = tmp_path / "run.resume.pt", tmp_path / "run.csv"
    before = resume.read_bytes(), log.read_bytes()
    script = f"""
import errno, resource, sys
from pathlib import Path
from pimsim.training import train
resource.setrlimit(resource.RLIMIT_FSIZE, ({len(before[0]) // 3}, resource.RLIM_INFINITY))
folder = Path({str(tmp_path)!r})
try:
    train("mlp_mnist", "qat", epochs=2, checkpoint=folder / "run.pt", log_csv=folder / "run.csv",
          **{TINY!r})
except OSError as exc:
    sys.exit(3 if exc.errno == errno.EFBIG else 4)
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 3, done.stderr
    assert (resume.read_bytes(), log.read_bytes()) == before
    assert log_epochs(log) == [1] and leftovers(tmp_path) == []
    assert torch.load(resume, weights_only=True)["epoch"] == 1


def test_interrupted_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    meta = {"workload": "mlp_mnist", "method": "float"}
    pt, sidecar = save_checkpoint(tmp_path / "net", build_model("mlp_mnist", seed=0), meta)
    before = pt.read_bytes(), sidecar.read_bytes()
    other = build_model("mlp_mnist", seed=1)
    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", half_save(torch.save))
        with pytest.raises(OSError, match="simulated"):
            save_checkpoint(tmp_path / "net", other, meta)
    assert (pt.read_bytes(), sidecar.read_bytes()) == before and leftovers(tmp_path) == []

    # The sidecar's write fails after the state dict was written: neither file changes.
    from pimsim.training import _checkpoint

    real = _checkpoint.atomic_write

    def failing_sidecar(path, mode="wb", **kwargs):
        if str(path).endswith(".json"):
            raise OSError(errno.EFBIG, "File too large (simulated)")
        return real(path, mode, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(_checkpoint, "atomic_write", failing_sidecar)
        with pytest.raises(OSError, match="simulated"):
            save_checkpoint(tmp_path / "net", other, meta)
    assert (pt.read_bytes(), sidecar.read_bytes()) == before and leftovers(tmp_path) == []
    model, _ = load_checkpoint(pt)
    assert torch.equal(model.state_dict()["fc1.weight"], build_model("mlp_mnist").fc1.weight)


# --------------------------------------------------------------------------- hyperparameters


def test_resume_with_other_hyperparameters_is_refused(tmp_path):
    tiny_train(tmp_path, epochs=1)
    resume = tmp_path / "run.resume.pt"
    before = resume.read_bytes()
    with pytest.raises(PimsimError) as caught:
        tiny_train(tmp_path, epochs=1, lr=2e-3, batch_size=16)
    message = str(caught.value)
    assert str(resume) in message and "\n" not in message
    assert "batch_size 32 in the resume file, 16 now" in message
    assert "lr 0.001 in the resume file, 0.002 now" in message
    assert "delete it" in message and "--fresh" in message and "resume=False" in message
    for change, field in [
        (dict(seed=2), "seed 1 in the resume file, 2 now"),
        (dict(shift=0), "shift 1 in the resume file, 0 now"),
        (dict(weight_bits=6), "weight_bits 8 in the resume file, 6 now"),
        (dict(input_bits=4), "input_bits 8 in the resume file, 4 now"),
        (dict(train_samples=32), "train_samples 64 in the resume file, 32 now"),
        (dict(epochs=0), "epochs 1 in the resume file, 0 now"),  # epochs may only grow
    ]:
        with pytest.raises(PimsimError, match=field):
            tiny_train(tmp_path, **{"epochs": 1, **change})
    with pytest.raises(PimsimError, match="method 'qat' in the resume file, 'float' now"):
        tiny_train(tmp_path, "float")
    assert resume.read_bytes() == before  # a refusal changes nothing
    # Starting over with the new hyperparameters replaces the resume file.
    tiny_train(tmp_path, lr=2e-3, resume=False)
    assert torch.load(resume, weights_only=True)["hyperparameters"]["lr"] == 2e-3
    tiny_train(tmp_path, lr=2e-3)


def test_pimqat_resume_with_other_options_or_arch_is_refused(tmp_path):
    over = {**preset_overrides("differential", 8, 8), "adc.bits": 6,
            "array.rows_per_adc_read": 128}
    arch = pimsim.load_arch(SPEC, over)
    tiny_train(tmp_path, "pimqat", arch=arch)
    with pytest.raises(PimsimError, match="adc.bits 6 in the resume file, 5 now"):
        tiny_train(tmp_path, "pimqat", arch=pimsim.load_arch(SPEC, {**over, "adc.bits": 5}))
    from pimsim.training import PimQatOptions

    with pytest.raises(PimsimError, match="noise_injection False in the resume file, True now"):
        tiny_train(tmp_path, "pimqat", arch=arch, options=PimQatOptions(noise_injection=True))
    _, metrics = tiny_train(tmp_path, "pimqat", arch=pimsim.load_arch(SPEC, over))
    assert len(metrics["log"]) == 1  # the same arch, loaded again: continued


def test_resume_with_the_same_hyperparameters_continues_the_run_exactly(tmp_path, monkeypatch):
    whole, whole_metrics = tiny_train(tmp_path / "whole", epochs=2)
    calls = []
    real = train_module.evaluate_accuracy

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("interrupted after epoch 1")
        return real(*args, **kwargs)

    part = tmp_path / "part"
    with monkeypatch.context() as patch:
        patch.setattr(train_module, "evaluate_accuracy", interrupted)
        with pytest.raises(RuntimeError, match="interrupted"):
            tiny_train(part, epochs=2)
    assert log_epochs(part / "run.csv") == [1]
    resumed, metrics = tiny_train(part, epochs=2)
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert metrics["epoch_losses"] == whole_metrics["epoch_losses"]
    # epochs may grow: the run goes on from where it stopped
    _, longer = tiny_train(part, epochs=3)
    assert longer["epoch_losses"][:2] == whole_metrics["epoch_losses"]
    assert log_epochs(part / "run.csv") == [1, 2, 3]
    assert torch.load(part / "run.resume.pt", weights_only=True)["hyperparameters"]["epochs"] == 3


def test_train_model_resume_checks_the_callers_fields_and_the_model(tmp_path):
    """``train_model`` compares the fields the caller adds, and refuses a resume file whose
    state does not fit the model, with the same clear error."""
    from torch import nn

    from pimsim.training import train_model

    gen = torch.Generator().manual_seed(0)
    data = torch.rand(16, 1, 4, 4, generator=gen), torch.randint(0, 3, (16,), generator=gen)

    def run(model, **kwargs):
        return train_model(model, data, checkpoint=tmp_path / "m.pt", batch_size=8,
                           progress=False, **kwargs)

    run(nn.Sequential(nn.Flatten(), nn.Linear(16, 3)), hyperparameters={"dataset": "a"})
    with pytest.raises(PimsimError, match="dataset 'a' in the resume file, 'b' now"):
        run(nn.Sequential(nn.Flatten(), nn.Linear(16, 3)), hyperparameters={"dataset": "b"})
    with pytest.raises(PimsimError, match="dataset 'a' in the resume file, unset now"):
        run(nn.Sequential(nn.Flatten(), nn.Linear(16, 3)))
    with pytest.raises(PimsimError, match="m.resume.pt: does not fit this model .*--fresh"):
        run(nn.Sequential(nn.Flatten(), nn.Linear(16, 4)), hyperparameters={"dataset": "a"})
