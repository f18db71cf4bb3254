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

import torch
from torch import nn

from pimsim._atomic import atomic_write
from pimsim.errors import PimsimError
from pimsim.training._data import MNIST_SPLIT_DESCRIPTION
from pimsim.training._qat import quant_layers, quantize_model
from pimsim.training._train import METHODS, load_failure
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


def load_checkpoint(
    path: str | Path, weight_bits: int | None = None, input_bits: int | None = None
) -> tuple[nn.Module, dict]:
    """Rebuild the model saved by :func:`save_checkpoint` and return ``(model, meta)``.

    The zoo network is rebuilt, quantized like the saved one for a ``qat`` checkpoint, and its
    parameters and buffers (input scales included) are restored; the model is in eval mode. Asking
    for other ``weight_bits``/``input_bits`` than the checkpoint's requantizes the model (the
    calibrated input ranges are kept) with a warning; asking for bit widths from a ``float``
    checkpoint quantizes it, with uncalibrated input scales.
    """
    pt, sidecar = checkpoint_paths(path)
    for file in (pt, sidecar):
        if not file.is_file():
            raise CheckpointError(f"{file}: no such file")
    try:
        meta = json.loads(sidecar.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{sidecar}: not valid JSON ({exc})") from exc
    method = meta.get("method")
    if method not in METHODS or "workload" not in meta:
        raise CheckpointError(f"{sidecar}: needs 'workload' and a 'method' in {METHODS}")
    digest = meta.get("state_dict_sha256")
    if digest is not None and digest != _sha256(pt):
        raise CheckpointError(f"{pt}: sha256 differs from the one recorded in {sidecar.name}")
    try:
        model = zoo_model(meta["workload"])
    except PimsimError as exc:
        raise CheckpointError(f"{sidecar}: {exc}") from exc
    shape = (1, *input_shape_of(meta["workload"]))
    saved_bits = {"weight_bits": meta.get("weight_bits"), "input_bits": meta.get("input_bits")}
    if method in ("qat", "pimqat"):
        model = quantize_model(model, **saved_bits, input_shape=shape)
        for name, layer in quant_layers(model).items():
            saved = meta.get("layers", {}).get(name, {})
            layer.signed_input = bool(saved.get("signed_input", layer.signed_input))
    try:
        state = torch.load(pt, map_location="cpu", weights_only=True)
    except Exception as exc:  # refused globals, a damaged archive: a clear error, no traceback
        raise CheckpointError(f"{pt}: not a valid state dict ({load_failure(exc)})") from exc
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CheckpointError(f"{pt}: not a valid state dict (not a mapping of names to tensors)")
    for name in quant_layers(model):  # checkpoints from before PIM-QAT: no output rescaling
        state.setdefault(f"{name}.output_scale", torch.ones(()))
        # no trained ADC ranges (digital QAT, PIM-QAT at full scale, older checkpoints)
        state.setdefault(f"{name}.adc_range", torch.zeros(0, dtype=torch.float64))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{pt}: does not fit {meta['workload']!r} ({exc})") from exc
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
