"""Which torch device the oracle and training run on (``--device cpu|cuda|auto``), and the
exactness rules on CUDA (integer partial sums exact in float32 below 2^24, float64 above; no
TF32).

:func:`resolve_device` is the one place a device name becomes a :class:`torch.device`: the
Python API (``device=`` of :func:`pimsim.oracle.accuracy`, :func:`pimsim.training.train`, ...)
and the ``--device`` option of the commands all pass through it. :func:`cuda_exactness` turns
TF32 off for cuBLAS products (``torch.backends.cuda.matmul``) and cuDNN convolutions and RNNs
(``torch.backends.cudnn``) for as long as oracle or training work runs, and restores the flags
afterwards: with TF32 a float32 product rounds its operands to 10 mantissa bits, so integer
partial sums would no longer be exact.
"""

from __future__ import annotations

import contextlib
import re

import torch

from pimsim.errors import PimsimError

#: What ``--device`` accepts (``cuda:N`` picks the N-th visible GPU).
DEVICE_CHOICES = ("cpu", "cuda", "cuda:N", "auto")

_CUDA = re.compile(r"cuda(?::(\d+))?")


class DeviceError(PimsimError, ValueError):
    """A device that cannot be used: an unknown name, or CUDA where torch sees no GPU."""


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The :class:`torch.device` that ``device`` names: ``"cpu"`` (also None, the default),
    ``"cuda"`` or ``"cuda:N"``, or ``"auto"`` (CUDA when ``torch.cuda.is_available()``, else
    the CPU); a :class:`torch.device` of type cpu or cuda is taken as it is.

    Raises :class:`DeviceError` for any other name, and for CUDA when no CUDA device is
    visible (or ``cuda:N`` beyond the visible ones), saying what to use instead."""
    if device is None:
        return torch.device("cpu")
    if isinstance(device, torch.device):
        dev = device
    else:
        text = str(device).strip().lower()
        if text == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        match = _CUDA.fullmatch(text)
        if text == "cpu":
            dev = torch.device("cpu")
        elif match:
            dev = torch.device("cuda", int(match.group(1))) if match.group(1) else torch.device(
                "cuda"
            )
        else:
            raise DeviceError(
                f"unknown device {str(device)!r}: use cpu, cuda, cuda:N (the N-th visible GPU) "
                "or auto (cuda when a GPU is visible, else cpu)"
            )
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type != "cuda":
        raise DeviceError(
            f"device {str(dev)!r} is not supported: use cpu, cuda, cuda:N or auto"
        )
    if not torch.cuda.is_available():
        raise DeviceError(
            f"device {str(device)!r}: no CUDA device is visible to torch "
            "(torch.cuda.is_available() is False: a CPU-only build of torch, no GPU or driver, "
            "or CUDA_VISIBLE_DEVICES hides it); use --device cpu, or --device auto to take a GPU "
            "only where there is one (device='cpu' or 'auto' in Python)"
        )
    count = torch.cuda.device_count()
    if dev.index is not None and dev.index >= count:
        raise DeviceError(
            f"device {str(device)!r}: torch sees {count} CUDA device(s), cuda:0 to "
            f"cuda:{count - 1}"
        )
    return dev


def device_name(device: torch.device) -> str:
    """A readable name of ``device``: the GPU's name for CUDA, ``cpu`` otherwise."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"


def _tf32_flags() -> list[tuple[object, str, object]]:
    """(object, attribute, exact value) of every TF32 switch: the per-backend
    ``fp32_precision`` where torch has it (``ieee``: no TF32), else the older ``allow_tf32``
    flags. Torch refuses to read the older flags once the newer ones were set to disagree, so
    the newer ones are used wherever they exist."""
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    if hasattr(matmul, "fp32_precision") and hasattr(cudnn, "conv"):
        return [
            (matmul, "fp32_precision", "ieee"),
            (cudnn.conv, "fp32_precision", "ieee"),
            (cudnn.rnn, "fp32_precision", "ieee"),
        ]
    return [(matmul, "allow_tf32", False), (cudnn, "allow_tf32", False)]  # pragma: no cover


@contextlib.contextmanager
def cuda_exactness(device: str | torch.device | None = "cuda"):
    """A context in which CUDA computes as the oracle's exactness rule says: no TF32 in
    cuBLAS products (``torch.backends.cuda.matmul.allow_tf32 = False``) nor in cuDNN
    convolutions and RNNs (``torch.backends.cudnn.allow_tf32 = False``); the previous settings
    are restored on exit, also after an error. Nothing changes when ``device`` is not a CUDA
    device (on CPU there is no TF32). Nests.

    Where torch has per-operator ``fp32_precision`` settings, each of cuBLAS matmul, cuDNN conv
    and cuDNN RNN is set to ``"ieee"`` itself, so that no parent setting can bring TF32 back;
    inside the context torch's legacy getter ``torch.backends.cudnn.allow_tf32`` then refuses
    to answer (it takes per-operator settings for a mix of the two interfaces): read
    ``torch.backends.cudnn.conv.fp32_precision`` instead."""
    if device is None or torch.device(device).type != "cuda":
        yield
        return
    flags = _tf32_flags()
    saved = [getattr(obj, name) for obj, name, _ in flags]
    try:
        for obj, name, exact in flags:
            setattr(obj, name, exact)
        yield
    finally:
        for (obj, name, _), value in zip(flags, saved, strict=True):
            setattr(obj, name, value)


def to_device(batch, device: torch.device):
    """``batch`` (a tensor, or a tuple/list of tensors and other values) with its tensors on
    ``device``; the same objects when they are there already (the CPU path copies nothing)."""
    if isinstance(batch, torch.Tensor):
        return batch if batch.device == device else batch.to(device)
    if isinstance(batch, list | tuple):
        return type(batch)(to_device(b, device) for b in batch)
    return batch
