"""Checkpoints of zoo networks: a torch ``state_dict`` (``.pt``) plus a JSON sidecar (``.json``).

The sidecar says what the weights are: the zoo ``workload``, the training ``method`` (``float``,
``qat`` or ``pimqat``), the bit widths and, for quantized models, each quantized layer's input
scale and signed flag (what the PIM oracle reads; a PIM-QAT model's output scales and trained ADC
ranges, ``adc_range``, read under ``adc.range: trained``, are in the state dict), the data split,
the seed, the accuracy, the pimsim version and the sha256 of the ``.pt`` file.
:func:`load_checkpoint` rebuilds the model from the zoo and refuses a ``.pt`` whose digest does
not match. State dicts are loaded with ``torch.load(weights_only=True)``,
which cannot run code; a file it refuses is a :class:`CheckpointError`.

Both files are written atomically (:func:`pimsim._atomic.atomic_write`), the sidecar inside the
state dict's write: a failed write (a full disk, a file-size limit) leaves the previous checkpoint
whole, its two files still matching.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch import nn

from pimsim._atomic import atomic_write
from pimsim._files import file_problem, read_json_object
from pimsim.errors import PimsimError
from pimsim.training._data import MNIST_SPLIT_DESCRIPTION
from pimsim.training._qat import quant_layers, quantize_model
from pimsim.training._train import (
    METHODS,
    _first_sentence,
    load_failure,
    state_mismatch,
    validation_problem,
)
from pimsim.workload import zoo_model
from pimsim.workload._zoo import input_shape_of

#: Version of the sidecar format.
FORMAT_VERSION = 1


class CheckpointError(PimsimError, ValueError):
    """A checkpoint is missing, inconsistent with its sidecar, or describes an unknown model."""


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """``(state_dict path, sidecar path)`` for ``path`` given with or without ``.pt``/``.json``."""
    path = Path(path)
    if path.suffix in (".pt", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".pt"), path.with_name(path.name + ".json")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def quant_summary(model: nn.Module) -> dict[str, dict]:
    """``{layer: {input_scale, signed_input, weight_bits, input_bits}}`` of a quantized model."""
    return {
        name: {
            "input_scale": float(m.input_scale),
            "signed_input": m.signed_input,
            "weight_bits": m.weight_bits,
            "input_bits": m.input_bits,
        }
        for name, m in quant_layers(model).items()
    }


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict) -> tuple[Path, Path]:
    """Write ``model``'s state dict to ``<path>.pt`` and its description to ``<path>.json``.

    ``meta`` must name the zoo ``workload`` and the ``method``; it may give ``seed``, ``accuracy``
    (test accuracy, fraction), ``split`` (default: the MNIST split description) and any other
    JSON-serialisable fields, which are kept. ``weight_bits``, ``input_bits``, ``layers`` (input
    scales and signed flags) and ``pimsim_version`` are filled in from the model. Returns the two
    paths written. Both are replaced atomically: the state dict is written to a temporary file,
    then the sidecar is written and renamed, then the state dict renamed, so a write that fails
    leaves both previous files as they were.
    """
    import pimsim

    for key in ("workload", "method"):
        if key not in meta:
            raise CheckpointError(f"meta must give {key!r}")
    if meta["method"] not in METHODS:
        raise CheckpointError(f"method {meta['method']!r} is not one of {METHODS}")
    layers = quant_summary(model)
    if (meta["method"] in ("qat", "pimqat")) != bool(layers):
        raise CheckpointError(
            f"method {meta['method']!r} but the model has {len(layers)} quantized layers"
        )
    bits = {}
    for key in ("weight_bits", "input_bits"):
        values = {layer[key] for layer in layers.values()}
        if len(values) > 1:
            raise CheckpointError(f"layers use different {key} {sorted(values)}; not supported")
        bits[key] = values.pop() if values else None
    pt, sidecar = checkpoint_paths(path)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    record = {
        "format_version": FORMAT_VERSION,
        "seed": None,
        "accuracy": None,
        "split": MNIST_SPLIT_DESCRIPTION,
        **meta,
        **bits,
        "layers": layers,
        "pimsim_version": pimsim.__version__,
        "state_dict": pt.name,
        "state_dict_sha256": hashlib.sha256(data).hexdigest(),
    }
    try:
        text = json.dumps(record, indent=2, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"meta is not JSON-serialisable: {exc}") from exc
    with atomic_write(pt) as f_pt:
        f_pt.write(data)
        f_pt.flush()  # the .pt is whole on disk before the sidecar replaces its old one
        os.fsync(f_pt.fileno())
        with atomic_write(sidecar, "w", encoding="utf-8") as f_json:
            f_json.write(text + "\n")
    return pt, sidecar


class LayerRecord(BaseModel):
    """One quantized layer in a sidecar's ``layers``."""

    model_config = ConfigDict(strict=True, extra="allow")

    input_scale: float | None = Field(None, ge=0, allow_inf_nan=False)
    """Calibrated input scale (the state dict holds the one loaded)."""
    signed_input: bool | None = None
    """Whether the layer quantizes its input as signed integers."""
    weight_bits: int | None = Field(None, ge=2, le=32)
    input_bits: int | None = Field(None, ge=1, le=32)


class Sidecar(BaseModel):
    """The JSON sidecar of a checkpoint, as :func:`load_checkpoint` reads it: the fields it
    uses are checked, any others are kept as they are."""

    model_config = ConfigDict(strict=True, extra="allow")

    workload: str = Field(min_length=1, max_length=1000)
    """The zoo network (or ``package.module:factory[:shape]``) the weights belong to."""
    method: Literal["float", "qat", "pimqat"]
    """How the network was trained."""
    format_version: int | None = Field(None, ge=1, le=FORMAT_VERSION)
    weight_bits: int | None = Field(None, ge=2, le=32)
    """Weight bits of every quantized layer (``qat``/``pimqat``; None for ``float``)."""
    input_bits: int | None = Field(None, ge=1, le=32)
    """Input bits of every quantized layer (``qat``/``pimqat``; None for ``float``)."""
    layers: dict[str, LayerRecord] = Field(default_factory=dict)
    """Input scale and signed flag of each quantized layer."""
    state_dict_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    """sha256 of the ``.pt`` file, checked on load."""
    accuracy: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    """Test accuracy (fraction)."""

    @model_validator(mode="after")
    def _bits_fit_method(self) -> Sidecar:
        if self.method != "float":
            for key in ("weight_bits", "input_bits"):
                if getattr(self, key) is None:
                    raise ValueError(f"{key}: a {self.method} checkpoint needs its bit width")
            if self.input_bits < 2:
                for name, layer in self.layers.items():
                    if layer.signed_input:
                        raise ValueError(f"layers.{name}.signed_input: a signed input needs "
                                         f"input_bits >= 2, not {self.input_bits}")
        return self


#: Largest sidecar read (a real one is a few kB).
MAX_SIDECAR_BYTES = 16 * 2**20

#: What a user does about a checkpoint that cannot be loaded.
_REDO = "write it again with pimsim train (pimsim.training.save_checkpoint in Python)"


def read_sidecar(sidecar: Path) -> tuple[Sidecar, dict]:
    """The sidecar ``sidecar``, validated and as read: ``(Sidecar, dict)``; a
    :class:`CheckpointError` naming the file and the field when it is not a regular file, is
    too large, not JSON or holds wrong values."""
    record = read_json_object(sidecar, MAX_SIDECAR_BYTES, CheckpointError,
                              "a pimsim checkpoint sidecar", _REDO)
    try:
        return Sidecar.model_validate(record), record
    except ValidationError as exc:
        raise CheckpointError(f"{sidecar}: {validation_problem(exc)}") from None


def _state_signature(model: nn.Module) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _fits(state: dict, signature: dict[str, tuple]) -> bool:
    """Whether ``state`` holds every entry of a network's float ``signature`` with its shape,
    and nothing else but buffers of its layers (input scales, ADC ranges of quantized ones)."""
    owners = {k.rpartition(".")[0] for k in signature}
    return all(
        k in state and tuple(getattr(state[k], "shape", ())) == shape
        for k, shape in signature.items()
    ) and all(k in signature or k.rpartition(".")[0] in owners for k in state)


def network_of(state: dict) -> str | None:
    """The zoo network whose weights ``state`` holds, or None: every zoo network is built on
    torch's meta device (shapes only, no memory or time for weights) and compared."""
    from pimsim.workload._zoo import ZOO

    for name in ZOO:
        try:
            with warnings.catch_warnings(), torch.device("meta"):
                warnings.simplefilter("ignore")
                signature = _state_signature(zoo_model(name))
        except Exception:  # a network that cannot be built here (a missing extra): not it
            continue
        if _fits(state, signature):
            return name
    return None


def load_checkpoint(
    path: str | Path, weight_bits: int | None = None, input_bits: int | None = None
) -> tuple[nn.Module, dict]:
    """Rebuild the model saved by :func:`save_checkpoint` and return ``(model, meta)``.

    The zoo network is rebuilt, quantized like the saved one for a ``qat`` checkpoint, and its
    parameters and buffers (input scales included) are restored; the model is in eval mode. Asking
    for other ``weight_bits``/``input_bits`` than the checkpoint's requantizes the model (the
    calibrated input ranges are kept) with a warning; asking for bit widths from a ``float``
    checkpoint quantizes it, with uncalibrated input scales.

    Both files must be regular files; the sidecar (at most :data:`MAX_SIDECAR_BYTES`) is
    validated as a :class:`Sidecar`, the state dict is read with ``torch.load(weights_only=True)``
    and must hold exactly the network's entries with their shapes. Anything else raises
    :class:`CheckpointError`, one line naming the file (and the field or parameters at fault).
    """
    pt, sidecar = checkpoint_paths(path)
    problem = file_problem(pt)
    if problem is not None:
        raise CheckpointError(f"{pt}: {problem}")
    record, meta = read_sidecar(sidecar)
    method, workload = record.method, record.workload
    digest = record.state_dict_sha256
    if digest is not None and digest != _sha256(pt):
        raise CheckpointError(f"{pt}: sha256 differs from the one recorded in {sidecar.name}: "
                              f"the file was changed or damaged after it was written; {_REDO}")
    try:
        model = zoo_model(workload)
        shape = (1, *input_shape_of(workload))
    except PimsimError as exc:
        raise CheckpointError(f"{sidecar}: workload: {exc}") from exc
    saved_bits = {"weight_bits": record.weight_bits, "input_bits": record.input_bits}
    if method in ("qat", "pimqat"):
        model = quantize_model(model, **saved_bits, input_shape=shape)
        for name, layer in quant_layers(model).items():
            saved = record.layers.get(name)
            if saved is not None and saved.signed_input is not None:
                layer.signed_input = saved.signed_input
    try:
        state = torch.load(pt, map_location="cpu", weights_only=True)
    except Exception as exc:  # refused globals, a damaged archive: a clear error, no traceback
        raise CheckpointError(
            f"{pt}: not a valid state dict, so not a pimsim checkpoint or a damaged one "
            f"({load_failure(exc)}); {_REDO}"
        ) from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CheckpointError(f"{pt}: not a valid state dict, so not a pimsim checkpoint (not "
                              f"a mapping of names to tensors); {_REDO}")
    as_saved = dict(state)
    for name in quant_layers(model):  # checkpoints from before PIM-QAT: no output rescaling
        state.setdefault(f"{name}.output_scale", torch.ones(()))
        # no trained ADC ranges (digital QAT, PIM-QAT at full scale, older checkpoints)
        state.setdefault(f"{name}.adc_range", torch.zeros(0, dtype=torch.float64))
    mismatch = state_mismatch(state, model)
    if mismatch is not None:
        held = network_of(as_saved)
        held = (f"; it holds the weights of {held}" if held and held != workload
                else "")
        raise CheckpointError(
            f"{pt}: does not fit {workload!r}, the network {sidecar.name} names ({mismatch})"
            f"{held}; give the checkpoint of {workload}, or {_REDO}"
        )
    try:
        model.load_state_dict(state)
    except Exception as exc:  # a dtype torch cannot copy: still one line
        raise CheckpointError(f"{pt}: does not fit {workload!r} ({_first_sentence(exc)})") from exc
    model.eval()

    wanted = {"weight_bits": weight_bits, "input_bits": input_bits}
    wanted = {k: v for k, v in wanted.items() if v is not None and v != saved_bits[k]}
    if wanted:
        new_bits = {k: wanted.get(k, saved_bits[k]) for k in saved_bits}
        if method == "float":
            new_bits = {k: v if v is not None else 8 for k, v in new_bits.items()}
        requested = ", ".join(f"{k}={v}" for k, v in new_bits.items())
        if method != "float":
            stored = ", ".join(f"{k}={v}" for k, v in saved_bits.items())
            note = f"was trained with {stored}; requantizing to {requested}"
        else:
            note = f"holds float weights; quantizing to {requested} with uncalibrated input scales"
        warnings.warn(f"{pt.name} {note}", UserWarning, stacklevel=2)
        model = quantize_model(model, **new_bits, input_shape=shape)
        model.eval()
        meta = {**meta, **new_bits, "requantized_from": saved_bits, "layers": quant_summary(model)}
    return model, meta
