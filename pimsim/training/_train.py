"""Train any network in float, with conventional digital QAT or with PIM-QAT, reproducibly, with a
progress bar, a per-epoch CSV log and resumable checkpoints (:func:`train_model`); the zoo
networks on their datasets with default recipes (:func:`train`).

MNIST data: the fixed split of the shipped MNIST test set
(:data:`~pimsim.training._data.MNIST_SPLIT`): train on its first 8,000 images, report accuracy on
its last 2,000. With so few training images the recipe adds a random translation of up to
``shift`` pixels per image (zero fill): in our runs the float MLP reached 96.35% without it
(15 epochs) and 97.65% with a 1-pixel shift (20 epochs).

Default recipes (:data:`RECIPES`, seed 0, 2-core x86_64 CPU), test accuracy and wall time:
LeNet-5 float 98.85% (24 s), QAT 8/8 bits 98.70% (28 s); MLP float 97.65% (11 s), QAT 8/8 bits
98.05% (17 s). QAT trains the quantized network from scratch: that beat the targets (97% and
96%) with the same recipe, so no float pre-training stage is needed.

Reproducibility: nothing touches the global torch RNG. The model is initialised under
:func:`torch.random.fork_rng` seeded with ``seed`` (the global state is restored afterwards), and
shuffling and augmentation draw from one :class:`torch.Generator` seeded with ``seed``, so the same
seed gives bit-identical weights on the same machine and thread count.

Files: every file is written atomically (:func:`pimsim._atomic.atomic_write`), so an interrupted
write (a full disk, a file-size limit, a kill) keeps the previous file whole. A resume file is a
``torch.save`` of tensors and plain Python values only (:func:`save_resume`): it is read with
``torch.load(weights_only=True)``, which cannot run code, and it records the hyperparameters of
its run, so a run is continued only with the same ones (:func:`load_resume`).
"""

from __future__ import annotations

import csv
import hashlib
import math
import pickle
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn
from tqdm.auto import tqdm

from pimsim._atomic import atomic_write
from pimsim._files import file_problem
from pimsim.errors import PimsimError
from pimsim.oracle._device import cuda_exactness, resolve_device, to_device
from pimsim.training._data import MNIST_SPLIT_DESCRIPTION, load_dataset
from pimsim.training._qat import quantize_model
from pimsim.workload import zoo_model
from pimsim.workload._zoo import ZOO, input_shape_of, is_model_spec

METHODS = ("float", "qat", "pimqat")
#: Training images that set the ADC ranges of a PIM accuracy measured after training.
CALIBRATION_IMAGES = 256

#: Marker and version of the resume-file format (:func:`save_resume`).
RESUME_FORMAT = "pimsim-resume"
RESUME_VERSION = 2

#: How a user starts over, named by every resume error.
_START_OVER = "delete it, or start over with pimsim train --fresh (resume=False in Python)"


class ResumeError(PimsimError, ValueError):
    """A resume file cannot be continued from: it is not a valid pimsim resume file, or its run
    had other hyperparameters than the ones asked for."""


@dataclass(frozen=True)
class Recipe:
    """Default hyperparameters of one workload (measured to reach the documented accuracy)."""

    epochs: int
    """Passes over the 8,000 training images."""
    batch_size: int
    """Images per Adam step."""
    lr: float
    """Initial learning rate; a cosine schedule takes it to 0 over the run."""
    shift: int
    """Largest random translation in pixels (augmentation); 0 disables it."""


#: Default recipe per trainable workload.
RECIPES = {
    "mlp_mnist": Recipe(epochs=20, batch_size=64, lr=1e-3, shift=1),
    "lenet5_mnist": Recipe(epochs=15, batch_size=64, lr=2e-3, shift=1),
    "lenet5_bn_mnist": Recipe(epochs=15, batch_size=64, lr=2e-3, shift=1),
}

#: Recipe of the zoo networks without a measured one (CIFAR/ImageNet networks): not tuned here
#: (no such data ships); users pass their own hyperparameters.
DEFAULT_RECIPE = Recipe(epochs=30, batch_size=128, lr=1e-3, shift=4)

#: PIM-QAT started from a trained checkpoint (``init``): 5 epochs from a rate of 1e-4 on the
#: cosine schedule (``pimsim train --init`` says the same). At a constant 1e-3 the PIM training
#: loss grew after the first epoch (the straight-through gradient does not see the PIM error,
#: and steps that large move the quantized weights by more than that error lets them): LeNet-5
#: from its QAT checkpoint, native, 4-bit ADC, 64 rows per read, trained ADC ranges, 1,000
#: images: 0.63, 0.92, 1.10, 1.35 over 4 epochs. With 128 rows per read, constant 1e-4:
#: 1.46, 1.28, 1.17, 1.28, 1.15; cosine from 1e-4 with the ranges at RANGE_LR_FACTOR x the rate:
#: 1.38, 1.24, 1.17, 1.16, 1.15 (``docs/pim_qat.md``).
FINETUNE_EPOCHS = 5
FINETUNE_LR = 1e-4

#: Trained ADC ranges (``adc_log_step``) learn at this multiple of the weights' rate: Adam moves a
#: parameter by about its rate per step whatever its gradient, so at the weights' 1e-4 a range
#: could move by 1.6% over 160 steps while the weights moved the partial sums further. Measured
#: as above (128 rows, constant 1e-4, last epoch): test accuracy 64.6% at 1x, 70.5% at 10x, 71.5%
#: at 100x with a noisier loss (1.05 then 1.18).
RANGE_LR_FACTOR = 10.0


#: PIM-QAT from scratch trains at this multiple of the recipe's rate. LeNet-5, W4A4, differential,
#: 4-bit ADC, 128 rows per read, learned ranges, 5 epochs (cosine): at the recipe's 2e-3 the
#: training loss went 1.24, 0.31, 0.48, 0.47, 0.43 (88.5%); at 5e-4 it fell every epoch, 1.90,
#: 0.53, 0.35, 0.29, 0.27 (96.7%): the partial-sum quantizers make the loss surface rougher than
#: digital QAT's.
SCRATCH_LR_FACTOR = 0.25

def build_model(workload_name: str, method: str = "float", seed: int = 0, **bits) -> nn.Module:
    """A freshly initialised zoo network (weights drawn under a forked RNG seeded with
    ``seed``), quantized with :func:`~pimsim.training._qat.quantize_model` for ``method="qat"``
    (``bits``: ``weight_bits``, ``input_bits``)."""
    if method not in METHODS:
        raise ValueError(f"method {method!r} is not one of {METHODS}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = zoo_model(workload_name, **_classes(workload_name))
    if method in ("qat", "pimqat"):
        model = quantize_model(model, **bits, input_shape=(1, *input_shape_of(workload_name)))
    return model


def random_shift(x: torch.Tensor, shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image of ``x`` ``[N, C, H, W]`` by its own random offset in
    [-shift, shift]^2 pixels, filling with zeros."""
    if shift <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (shift, shift, shift, shift))
    offsets = torch.randint(0, 2 * shift + 1, (n, 2), generator=generator)
    out = torch.empty_like(x)
    for dy in range(2 * shift + 1):
        for dx in range(2 * shift + 1):
            sel = (offsets[:, 0] == dy) & (offsets[:, 1] == dx)
            out[sel] = padded[sel, :, dy : dy + h, dx : dx + w]
    return out


def evaluate_accuracy(model: nn.Module, loader: Iterable, device=None) -> float:
    """Top-1 accuracy (fraction in [0, 1]) of ``model`` over ``loader``'s ``(images, labels)``
    batches, in eval mode without gradients; the model's train/eval flags are restored.
    Batches are moved to ``device`` (default: where the model's first parameter or buffer is;
    the CPU for a model without any)."""
    dev = model_device(model) if device is None else resolve_device(device)
    modes = {m: m.training for m in model.modules()}
    model.eval()
    correct = total = 0
    try:
        with torch.no_grad():
            for x, y in loader:
                pred = model(to_device(x, dev)).argmax(dim=1)
                correct += int((pred == to_device(y, dev)).sum())
                total += len(y)
    finally:
        for module, training in modes.items():
            module.training = training
    if total == 0:
        raise ValueError("evaluate_accuracy: the loader yielded no samples")
    return correct / total


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (or buffer); the CPU when it has none."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _move_model(model: nn.Module, dev: torch.device) -> nn.Module:
    """``model`` on ``dev``, with the oracle layers PIM-QAT layers compute through (held in
    their ``engine``, not as submodules) moved along; nothing moves when all is there."""
    from pimsim.training._pimqat import pimqat_layers

    model.to(dev)
    for layer in pimqat_layers(model).values():
        layer.engine.pim.to(dev)
    return model


def _batches(x: torch.Tensor, y: torch.Tensor, batch_size: int):
    return [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(x), batch_size)]


def _classes(workload_name: str) -> dict:
    return {"num_classes": 100} if workload_name.endswith("_cifar100") else {}


#: The dataset a ``package.module:factory`` model trains on, by its input shape.
DATASET_BY_SHAPE = {(1, 28, 28): "mnist", (3, 32, 32): "cifar10"}


def dataset_of(workload_name: str) -> str:
    """The dataset a zoo network is named after (``lenet5_mnist`` -> ``mnist``); for a
    ``package.module:factory`` model, the one whose images fit its input shape."""
    if is_model_spec(workload_name):
        shape = input_shape_of(workload_name)
        if shape not in DATASET_BY_SHAPE:
            raise ValueError(
                f"model {workload_name!r}: no training set has inputs of shape {shape} "
                f"(trainable shapes: {', '.join(map(str, DATASET_BY_SHAPE))}); train it in "
                "Python with pimsim.training.train_model on your own data"
            )
        return DATASET_BY_SHAPE[shape]
    return workload_name.rsplit("_", 1)[-1]


@dataclass
class TrainState:
    """What a resumable checkpoint holds besides the model: where training stands."""

    epoch: int = 0
    log: list = field(default_factory=list)


def _resume_path(checkpoint) -> Path | None:
    return None if checkpoint is None else Path(str(checkpoint)).with_suffix(".resume.pt")


def _first_sentence(exc: BaseException) -> str:
    """The first sentence of an exception's message on one line (torch's run to many lines,
    some with terminal colour codes), shortened; the exception's type when it has no message."""
    text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).split())
    text = text.split(". ")[0].rstrip(".") or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def load_failure(exc: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in a few words for an error
    message."""
    if isinstance(exc, pickle.UnpicklingError):
        return (
            "it holds objects other than tensors and plain values, which could run code: it "
            "was not loaded"
        )
    if isinstance(exc, EOFError):
        return "the file is empty or cut short"
    return f"damaged or not written by torch.save: {_first_sentence(exc)}"


def _shape(tensor) -> str:
    return "[" + ", ".join(str(d) for d in tensor.shape) + "]" if hasattr(tensor, "shape") else (
        type(tensor).__name__
    )


def state_mismatch(state: dict, model: nn.Module, shown: int = 3) -> str | None:
    """How the state dict ``state`` fails to fit ``model``, in one line naming the first
    ``shown`` parameters of each kind (shapes that differ, with both shapes; entries the model
    lacks; entries the file lacks), or None when every entry fits. An empty buffer of the model
    (a trained ADC range not trained yet) takes the file's shape on load: any shape fits it."""
    wanted = model.state_dict()
    problems = []
    differ = [
        f"{k} {_shape(v)} in the file, {_shape(wanted[k])} in the model"
        for k, v in state.items()
        if k in wanted and (not isinstance(v, torch.Tensor) or (
            v.shape != wanted[k].shape and wanted[k].numel() > 0
        ))
    ]
    missing = [k for k in wanted if k not in state]
    unexpected = [k for k in state if k not in wanted]
    for label, names in (("shapes differ", differ), ("missing", missing),
                         ("unexpected", unexpected)):
        if names:
            more = f" and {len(names) - shown} more" if len(names) > shown else ""
            problems.append(f"{label}: {', '.join(names[:shown])}{more}")
    return "; ".join(problems) or None


def _flatten(record: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: nested hyperparameters as dotted fields."""
    flat = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _arch_record(arch) -> dict:
    """The accelerator spec as plain values (every field, so that any difference is named)."""
    dump = getattr(arch, "model_dump", None)
    if dump is None:
        return {"name": getattr(arch, "name", str(arch))}
    return dump(mode="json", by_alias=True)


def state_digest(model: nn.Module) -> str:
    """A short sha256 of ``model``'s state dict (names, dtypes, shapes and values)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def save_resume(path: Path, payload: dict) -> None:
    """Write a resume file atomically: ``payload`` (tensors, state dicts and plain values only)
    with the format marker."""
    with atomic_write(path) as f:
        torch.save({"format": RESUME_FORMAT, "version": RESUME_VERSION, **payload}, f)


class LogRow(BaseModel):
    """One epoch of a training log (a row of the CSV log, an entry of a resume file's log)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    epoch: int = Field(ge=1)
    """The epoch this row closes, from 1."""
    train_loss: float
    """Mean training loss of the epoch (NaN or infinite when the run diverged)."""
    test_accuracy: float | None = Field(ge=0, le=1, allow_inf_nan=False)
    """Test accuracy after the epoch (fraction), None without test data."""
    lr: float = Field(ge=0, allow_inf_nan=False)
    """Learning rate at the end of the epoch."""
    wall_time_s: float = Field(ge=0, allow_inf_nan=False)
    """Seconds the epoch took."""


def validation_problem(exc: ValidationError) -> str:
    """The first problem pydantic found, in a few words naming the field (dotted path) and the
    value: ``"layers.fc1.weight_bits: must be >= 2, got 0"``."""
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"])
    kind, ctx = err["type"], err.get("ctx") or {}
    value = err.get("input")
    shown = "a mapping" if isinstance(value, dict) else "a list" if isinstance(value, list) else (
        repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    )
    if kind == "missing":
        message = "required field is missing"
    elif kind == "extra_forbidden":
        message = "unknown field"
    elif kind == "value_error":
        message = str(ctx.get("error", err["msg"]))
    elif kind in _BOUNDS:
        message = f"must be {_BOUNDS[kind]} {next(iter(ctx.values()), '')}, got {shown}"
    else:
        text = re.sub(r" or instance of \w+", "", str(err["msg"]))
        message = f"{text[:1].lower()}{text[1:]}, got {shown}"
    return f"{loc}: {message}" if loc else message


_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<",
           "less_than_equal": "<=", "string_too_short": "at least", "string_too_long": "at most"}


#: The entries of a resume file and their types.
_RESUME_FIELDS = {
    "hyperparameters": dict,
    "epoch": int,
    "log": list,
    "model": dict,
    "optimizer": dict,
    "schedule": dict,
    "generator": torch.Tensor,
    "chips": dict,
}


def load_resume(path: Path, hyperparameters: dict) -> dict:
    """Read the resume file ``path`` with ``torch.load(weights_only=True)`` (no code can run)
    and check it against the run asked for; returns its entries.

    Raises :class:`ResumeError` when the file is not a valid resume file of this format, or when
    its hyperparameters differ from ``hyperparameters`` (``epochs`` may grow: the run then goes
    on past its planned end), naming each differing field with both values.
    """

    def invalid(reason: str) -> ResumeError:
        return ResumeError(f"{path}: not a valid pimsim resume file ({reason}); {_START_OVER}")

    problem = file_problem(path)
    if problem is not None:
        raise ResumeError(f"{path}: {problem}; {_START_OVER}")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # refused globals, a damaged archive: a clear error, no traceback
        raise invalid(load_failure(exc)) from exc
    if not isinstance(saved, dict) or saved.get("format") != RESUME_FORMAT:
        raise invalid("no pimsim resume marker: another program or an older pimsim wrote it")
    if saved.get("version") != RESUME_VERSION:
        raise invalid(f"format version {saved.get('version')!r}, this pimsim reads "
                      f"{RESUME_VERSION}")
    for key, kind in _RESUME_FIELDS.items():
        if not isinstance(saved.get(key), kind) or isinstance(saved.get(key), bool):
            raise invalid(f"{key!r} is missing or not a {kind.__name__}")
    if not all(isinstance(row, dict) for row in saved["log"]) or not (
        0 <= saved["epoch"] == len(saved["log"])
    ):
        raise invalid(f"its log of {len(saved['log'])} rows does not match epoch "
                      f"{saved['epoch']}")
    for number, row in enumerate(saved["log"], 1):
        try:
            LogRow.model_validate(row)
        except ValidationError as exc:
            raise invalid(f"log row {number}: {validation_problem(exc)}") from None
        if row["epoch"] != number:
            raise invalid(f"log row {number}: epoch {row['epoch']}, {number} expected")
    if not all(isinstance(k, str) for k in saved["model"]):
        raise invalid("'model' is not a mapping of names to tensors")
    then, now = _flatten(saved["hyperparameters"]), _flatten(hyperparameters)
    missing = object()
    differ = []
    for key in [*now, *(k for k in then if k not in now)]:
        old, new = then.get(key, missing), now.get(key, missing)
        shown = f"{key} {_shown(old, missing)} in the resume file, {_shown(new, missing)} now"
        if key == "epochs" and isinstance(old, int) and isinstance(new, int):
            if new < old:
                differ.append(f"{shown} (epochs may only grow)")
        elif old != new and repr(old) != repr(new):  # repr: a NaN equals itself
            differ.append(shown)
    if differ:
        more = f"; and {len(differ) - 8} more" if len(differ) > 8 else ""
        raise ResumeError(
            f"{path} continues a run with other hyperparameters: {'; '.join(differ[:8])}{more}. "
            f"Ask for the resume file's values to continue it, or {_START_OVER}"
        )
    return saved


def _shown(value, missing) -> str:
    """A hyperparameter's value in an error message (``unset`` where a run had none)."""
    return "unset" if value is missing else repr(value)


def train_model(
    model: nn.Module,
    train_data: tuple[torch.Tensor, torch.Tensor],
    test_data: tuple[torch.Tensor, torch.Tensor] | None = None,
    *,
    method: str = "float",
    arch=None,
    options=None,
    epochs: int = 1,
    batch_size: int = 64,
    lr: float = 1e-3,
    shift: int = 0,
    seed: int = 0,
    schedule: str = "cosine",
    log_csv=None,
    checkpoint=None,
    resume: bool = True,
    progress: bool = True,
    desc: str = "train",
    hyperparameters: dict | None = None,
    device: str | torch.device | None = "cpu",
) -> tuple[nn.Module, dict]:
    """Train any ``model`` on ``train_data`` = (images [N, C, H, W], labels).

    ``method``: ``"float"`` and ``"qat"`` train ``model`` as it is (quantize it first with
    :func:`~pimsim.training.quantize_model` for QAT); ``"pimqat"`` trains the quantized ``model``
    through ``arch``'s PIM quantization (:func:`~pimsim.training.attach_pim` with ``options``, a
    :class:`~pimsim.training.PimQatOptions`), draws a new chip every step when
    ``options.variability_aware``, and at the end sets the output scales on the deployed
    precision from 512 training images (:func:`~pimsim.training.calibrate_output_scales`); the
    returned model is a plain QAT model (:func:`~pimsim.training.detach_pim`) that
    :func:`pimsim.oracle.convert` deploys.

    Adam with a cosine schedule over all steps (``schedule="constant"``: a fixed rate; a PIM-QAT
    model's trained ADC ranges, ``adc_log_step``, at :data:`RANGE_LR_FACTOR` times the rate),
    cross-entropy loss, a random translation of up to
    ``shift`` pixels. After every epoch: the test accuracy (PIM accuracy on the training arch for
    ``pimqat``), with ``checkpoint`` a resume file ``<checkpoint>.resume.pt`` (model, optimizer,
    schedule, random generators, log, hyperparameters), then a row in ``log_csv`` (epoch,
    train_loss, test_accuracy, lr, wall_time_s); each is replaced atomically, the log only once
    the resume file holds the epoch. Nothing touches the global torch RNG.

    With ``resume`` an existing resume file is continued from (``resume=False`` ignores it and
    replaces it after the first epoch). It must have been made with the same hyperparameters:
    ``method``, ``batch_size``, ``lr``, ``shift``, ``seed``, ``schedule``, the number of training
    images, for ``pimqat`` the ``options`` and every field of ``arch``, and the fields of
    ``hyperparameters`` (what the caller adds, e.g. the network and bit widths); else
    :class:`ResumeError` names the differences. ``epochs`` may grow: the run goes on past its
    planned end with the schedule it started with (the cosine's period is kept: past its end the
    rate climbs back from 0 towards ``lr``). A file that is not a valid resume file is refused
    with :class:`ResumeError` too, never unpickled with code. ``hyperparameters`` holds plain
    values only (str, int, float, bool, None, lists, dicts).
    ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``,
    :func:`pimsim.oracle.resolve_device`): where the model trains (TF32 off on CUDA,
    :func:`pimsim.oracle.cuda_exactness`). The data stay on the CPU, where the shuffling and the
    augmentation draw from the seeded generator (so every device sees the same batches); each
    batch is moved on its own. The device is no hyperparameter: a run may be resumed on another
    one. The returned model is on the CPU.
    Returns ``(model in eval mode, metrics)``.
    """
    dev = resolve_device(device)
    with cuda_exactness(dev):
        model, metrics = _train_model(
            model, train_data, test_data, method=method, arch=arch, options=options,
            epochs=epochs, batch_size=batch_size, lr=lr, shift=shift, seed=seed,
            schedule=schedule, log_csv=log_csv, checkpoint=checkpoint, resume=resume,
            progress=progress, desc=desc, hyperparameters=hyperparameters, dev=dev,
        )  # fmt: skip
    if dev.type != "cpu":
        metrics["device"] = str(dev)
    return model.to("cpu"), metrics


def _train_model(
    model, train_data, test_data, *, method, arch, options, epochs, batch_size, lr, shift, seed,
    schedule, log_csv, checkpoint, resume, progress, desc, hyperparameters, dev,
) -> tuple[nn.Module, dict]:
    """:func:`train_model` on the device ``dev``."""
    from pimsim.training._pimqat import (
        PimQatOptions,
        attach_pim,
        calibrate_output_scales,
        deployment_options,
        detach_pim,
        draw_training_chip,
    )

    if method not in METHODS:
        raise ValueError(f"method {method!r} is not one of {METHODS}")
    x_train, y_train = train_data
    input_shape = (1, *x_train.shape[1:])
    options = options or PimQatOptions()
    if method == "pimqat":
        if arch is None:
            raise ValueError("method 'pimqat' needs arch= (the accelerator spec)")
        model = attach_pim(model, arch, input_shape, options)
    if dev.type != "cpu":
        model = _move_model(model, dev)
    generator = torch.Generator().manual_seed(seed)
    chips = np.random.default_rng(seed)
    steps_per_epoch = math.ceil(len(x_train) / batch_size)
    ranges = [p for n, p in model.named_parameters() if n.endswith("adc_log_step")]
    others = [p for n, p in model.named_parameters() if not n.endswith("adc_log_step")]
    groups = [{"params": others}]
    if ranges:  # trained ADC ranges: their own (larger) rate, see RANGE_LR_FACTOR
        groups.append({"params": ranges, "lr": lr * RANGE_LR_FACTOR})
    optimizer = torch.optim.Adam(groups, lr=lr)
    if schedule not in ("cosine", "constant"):
        raise ValueError(f"schedule {schedule!r} is not 'cosine' or 'constant'")
    total_steps = max(1, epochs * steps_per_epoch)
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total_steps)
        if schedule == "cosine"
        else torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    )
    run = {
        "method": method,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "shift": shift,
        "seed": seed,
        "schedule": schedule,
        "train_samples": len(x_train),
    }
    if method == "pimqat":
        run.update(pimqat=options.describe(), arch=_arch_record(arch))
    run.update(hyperparameters or {})
    state = TrainState()
    resume_file = _resume_path(checkpoint)
    if resume and resume_file is not None and (resume_file.exists() or resume_file.is_symlink()):
        saved = load_resume(resume_file, run)
        problem = state_mismatch(saved["model"], model)
        if problem is not None:
            from pimsim.training._checkpoint import network_of

            held = network_of(saved["model"])
            held = f"; it holds the weights of {held}" if held else ""
            raise ResumeError(
                f"{resume_file}: does not fit this model ({problem}){held}; {_START_OVER}"
            )
        try:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["schedule"])
            generator.set_state(saved["generator"])
            chips.bit_generator.state = saved["chips"]
        except Exception as exc:  # a crafted optimizer or RNG state: one clear line
            raise ResumeError(
                f"{resume_file}: its optimizer, schedule or RNG state does not fit this run ("
                f"{_first_sentence(exc)}); {_START_OVER}"
            ) from exc
        state = TrainState(saved["epoch"], saved["log"])
    start = time.perf_counter()
    test_batches = None if test_data is None else _batches(*test_data, 500)
    bar = tqdm(
        total=epochs * steps_per_epoch,
        initial=state.epoch * steps_per_epoch,
        desc=desc,
        disable=not progress,
        leave=False,
    )
    with bar:
        for epoch in range(state.epoch, epochs):
            model.train()
            order = torch.randperm(len(x_train), generator=generator)
            total = 0.0
            t0 = time.perf_counter()
            for xb, yb in _batches(x_train[order], y_train[order], batch_size):
                if method == "pimqat" and options.variability_aware:
                    draw_training_chip(model, chips)
                xb = to_device(random_shift(xb, shift, generator), dev)
                yb = to_device(yb, dev)
                loss = F.cross_entropy(model(xb), yb)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                scheduler.step()
                total += loss.item() * len(yb)
                bar.update()
                bar.set_postfix(loss=f"{loss.item():.4f}")
            accuracy = None if test_batches is None else evaluate_accuracy(model, test_batches)
            state.log.append(
                {
                    "epoch": epoch + 1,
                    "train_loss": total / len(x_train),
                    "test_accuracy": accuracy,
                    "lr": scheduler.get_last_lr()[0],
                    "wall_time_s": time.perf_counter() - t0,
                }
            )
            state.epoch = epoch + 1
            if resume_file is not None:  # first the resume file, then the log claims the epoch
                save_resume(
                    resume_file,
                    {
                        "hyperparameters": run,
                        "epoch": state.epoch,
                        "log": state.log,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "schedule": scheduler.state_dict(),
                        "generator": generator.get_state(),
                        "chips": chips.bit_generator.state,
                    },
                )
            if log_csv is not None:
                _write_log(log_csv, state.log)
    gains = None
    if method == "pimqat":
        deployed = attach_pim(detach_pim(model), arch, input_shape, deployment_options(options))
        if dev.type != "cpu":
            deployed = _move_model(deployed, dev)
        gains = calibrate_output_scales(deployed, [to_device(x_train[:512], dev)])
        model = deployed
    model.eval()
    metrics = {
        "method": method,
        "epoch_losses": [row["train_loss"] for row in state.log],
        "log": state.log,
        "wall_time_s": time.perf_counter() - start,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "shift": shift,
        "seed": seed,
        "train_samples": len(x_train),
    }
    if test_batches is not None:  # pimqat: on the deployed precision, ideal ADC and cells
        metrics["test_accuracy"] = evaluate_accuracy(model, test_batches)
    if method == "pimqat":
        metrics["pimqat"] = {**options.describe(), "arch": arch.name, "gains": gains}
        model = detach_pim(model).eval()
    return model, metrics


def _write_log(path, rows: list[dict]) -> None:
    """Replace the CSV log ``path`` atomically with ``rows`` (a header, then one row each)."""
    with atomic_write(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def train(
    workload_name: str,
    method: str = "float",
    *,
    arch=None,
    options=None,
    init: nn.Module | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    shift: int | None = None,
    seed: int = 0,
    weight_bits: int | None = None,
    input_bits: int | None = None,
    data_root=None,
    train_samples: int | None = None,
    bn_calibration: int = 0,
    log_csv=None,
    checkpoint=None,
    resume: bool = True,
    progress: bool = True,
    device: str | torch.device | None = "cpu",
) -> tuple[nn.Module, dict]:
    """Train the zoo network ``workload_name`` with :func:`train_model` on its dataset.

    MNIST networks use the fixed split of the shipped MNIST test set (train on its first 8,000
    images, test on its last 2,000); CIFAR networks read the python batches under ``data_root``.
    Bit widths default to ``arch``'s decomposition, else 8. ``method="pimqat"`` needs ``arch``;
    with ``init`` (a trained QAT or float model of the same network) it fine-tunes that model
    (default :data:`FINETUNE_EPOCHS` epochs from the rate :data:`FINETUNE_LR`), else it
    trains from scratch with the recipe (at :data:`SCRATCH_LR_FACTOR` x its rate). Unset
    hyperparameters come from :data:`RECIPES` (or :data:`DEFAULT_RECIPE`). ``train_samples``
    keeps only the first that many training images.
    ``bn_calibration`` > 0 (needs ``arch``): after training, re-estimate the BatchNorm statistics
    on the PIM model of ``arch`` (chip 0, all its non-idealities) from that many training images
    (:func:`~pimsim.training.calibrate_bn_for_chip`); ``metrics["bn_calibrated_accuracy"]`` is
    the test accuracy on that chip after it (per-chip calibration at deployment is
    ``pimsim accuracy --bn-calibration``).
    ``checkpoint``, ``resume`` and ``log_csv`` are :func:`train_model`'s; a resume file is
    continued only with the same hyperparameters, these included: the network, the bit widths
    and ``init`` (compared by a digest of its weights). ``device`` is :func:`train_model`'s (the
    accuracy after ``bn_calibration`` is measured there too; the BN statistics themselves are
    re-estimated on the CPU).
    Returns ``(model, metrics)``; ``metrics`` has ``test_accuracy`` and ``epoch_losses``.
    """
    dev = resolve_device(device)
    if not is_model_spec(workload_name) and workload_name not in ZOO:
        raise ValueError(f"unknown zoo network {workload_name!r} (known: {', '.join(ZOO)}; or "
                         "a torch model as package.module:factory[:input shape])")  # fmt: skip
    if workload_name not in RECIPES and dataset_of(workload_name) == "imagenet":
        raise ValueError(
            f"no training recipe for {workload_name!r} (trainable: {', '.join(RECIPES)} and "
            "the CIFAR networks)"
        )
    recipe = RECIPES.get(workload_name, DEFAULT_RECIPE)
    finetune = method == "pimqat" and init is not None
    epochs = epochs if epochs is not None else (FINETUNE_EPOCHS if finetune else recipe.epochs)
    batch_size = recipe.batch_size if batch_size is None else batch_size
    if lr is None:
        lr = FINETUNE_LR if finetune else recipe.lr
        if method == "pimqat" and not finetune:
            lr *= SCRATCH_LR_FACTOR
    shift = recipe.shift if shift is None else shift
    dec = arch.decomposition if arch is not None else None
    bits = {
        "weight_bits": weight_bits or (dec.weight_bits if dec else 8),
        "input_bits": input_bits or (dec.input_bits if dec else 8),
    }
    dataset = dataset_of(workload_name)
    x_train, y_train = load_dataset(dataset, data_root, "train")
    test = load_dataset(dataset, data_root, "test")
    if train_samples is not None:
        x_train, y_train = x_train[:train_samples], y_train[:train_samples]
    if init is not None:
        model = quantize_model(init, **bits, input_shape=(1, *input_shape_of(workload_name)))
        if method == "float":
            raise ValueError("init= continues a quantized model: use method 'qat' or 'pimqat'")
    else:
        model = build_model(workload_name, method, seed, **bits)
    model, metrics = train_model(
        model,
        (x_train, y_train),
        test,
        method=method,
        arch=arch,
        options=options,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        shift=shift,
        seed=seed,
        schedule="cosine",
        log_csv=log_csv,
        checkpoint=checkpoint,
        resume=resume,
        progress=progress,
        device=dev,
        desc=f"{workload_name} {method}",
        hyperparameters={
            "workload": workload_name,
            "weight_bits": None if method == "float" else bits["weight_bits"],
            "input_bits": None if method == "float" else bits["input_bits"],
            "init": None if init is None else state_digest(init),
        },
    )
    metrics.update(workload=workload_name, split=_split(dataset))
    if method != "float":
        metrics.update(bits)
    if bn_calibration:
        if arch is None or method == "float":
            raise ValueError("bn_calibration needs a quantized method and arch=")
        from pimsim.oracle import accuracy
        from pimsim.training._tuning import calibrate_bn_for_chip

        shape = (1, *x_train.shape[1:])
        layers = calibrate_bn_for_chip(model, arch, shape, [x_train[:bn_calibration]])
        if not layers:
            raise ValueError(f"{workload_name} has no BatchNorm layer to calibrate")
        chip = accuracy(
            model, arch, _batches(*test, 500), input_shape=shape,
            calibration=[x_train[:CALIBRATION_IMAGES]], device=dev,
        )
        metrics.update(bn_calibration=bn_calibration, bn_calibrated_accuracy=chip.mean)
    return model, metrics


def _split(dataset: str) -> str:
    if dataset == "mnist":
        return MNIST_SPLIT_DESCRIPTION
    return f"{dataset}: the standard train and test batches"
