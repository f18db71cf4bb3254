"""Datasets for the accuracy oracle: the shipped MNIST test set and user-supplied CIFAR batches.

MNIST: only the official 10,000-image *test* set is available (``pimsim/data/mnist``, IDX files
with published md5 checksums). Training and evaluation therefore use a fixed, documented split of
those 10,000 images, :data:`MNIST_SPLIT`: the first 8,000 are ``"train"``, the last 2,000 are
``"test"``. Every accuracy reported on MNIST by pimsim is on those last 2,000 images.

CIFAR-10/100: users bring the standard "python version" batch files. They are pickles, so they are
read with an unpickler that refuses every global except the four numpy names an ndarray needs
(:data:`CIFAR_ALLOWED_GLOBALS`): a pickle that tries to call anything else is an error, never run.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from pimsim.errors import PimsimError

#: The shipped MNIST copy (the official test set; see its README.md and NOTICE).
MNIST_ROOT = Path(__file__).resolve().parent.parent / "data" / "mnist"

#: File names and published md5 checksums of the MNIST test set.
MNIST_FILES = {
    "images": ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
    "labels": ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
}

#: Fixed split of the 10,000 MNIST test images: the first 8,000 train, the last 2,000 evaluate.
MNIST_SPLIT = (8000, 2000)

#: One-line description of the split, stored with checkpoints and printed with accuracies.
MNIST_SPLIT_DESCRIPTION = (
    "MNIST official test set (10,000 images): first 8,000 = train, last 2,000 = test"
)

#: IDX magic numbers accepted: unsigned-byte labels (1 dimension) and images (3 dimensions).
IDX_MAGICS = {2049: 1, 2051: 3}

#: The only globals a CIFAR pickle may reference (what a pickled numpy ndarray needs; the first
#: is the name numpy 1.x writes, the second numpy 2.x).
CIFAR_ALLOWED_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }
)

SPLITS = ("train", "test", "all")
DATASETS = ("mnist", "cifar10", "cifar100")


class DatasetError(PimsimError, ValueError):
    """A dataset file is missing, malformed, unsafe or does not match its checksum."""


# --------------------------------------------------------------------------- IDX / MNIST


def _open(path: Path):
    """A binary file object, transparently gunzipped when the file starts with the gzip magic."""
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def read_idx(path: str | Path) -> np.ndarray:
    """Read an unsigned-byte IDX file (gzip-compressed or plain) into a uint8 array.

    Accepts the two MNIST formats: magic 2049 (labels, shape ``[N]``) and 2051 (images, shape
    ``[N, rows, cols]``). The header's dimensions must be positive and the payload must hold
    exactly their product of bytes; anything else raises :class:`DatasetError` naming the file.
    Only the bytes the header announces are read, so a compressed file cannot expand beyond them.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    try:
        with _open(path) as f:
            header = f.read(4)
            if len(header) < 4:
                raise DatasetError(f"{path}: too short for an IDX header")
            magic = int.from_bytes(header, "big")
            if magic not in IDX_MAGICS:
                raise DatasetError(
                    f"{path}: IDX magic number {magic} is not 2049 (labels) or 2051 (images)"
                )
            ndim = IDX_MAGICS[magic]
            raw = f.read(4 * ndim)
            if len(raw) < 4 * ndim:
                raise DatasetError(f"{path}: truncated header ({ndim} dimensions expected)")
            dims = tuple(int.from_bytes(raw[4 * i : 4 * i + 4], "big") for i in range(ndim))
            if min(dims) < 1:
                raise DatasetError(f"{path}: dimensions {dims} must be positive")
            size = int(np.prod(dims, dtype=np.int64))
            payload = f.read(size)
            if len(payload) != size:
                raise DatasetError(
                    f"{path}: {len(payload)} data bytes, expected {size} for dimensions {dims}"
                )
            if f.read(1):
                raise DatasetError(f"{path}: data beyond the {size} bytes of dimensions {dims}")
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc
    return np.frombuffer(payload, dtype=np.uint8).reshape(dims).copy()


def md5_of(path: str | Path) -> str:
    """Hex md5 digest of a file's bytes."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_mnist(root: str | Path | None = None) -> dict[str, str]:
    """Check the MNIST test-set files under ``root`` (default: the shipped copy) against their
    published md5 checksums (:data:`MNIST_FILES`); return ``{file name: md5}``.

    Raises :class:`DatasetError` for a missing file or a mismatching checksum.
    """
    root = MNIST_ROOT if root is None else Path(root)
    digests = {}
    for name, expected in MNIST_FILES.values():
        path = root / name
        if not path.is_file():
            raise DatasetError(f"{path}: no such file (the MNIST test set is expected here)")
        digests[name] = md5_of(path)
        if digests[name] != expected:
            raise DatasetError(f"{path}: md5 {digests[name]} does not match {expected}")
    return digests


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DatasetError(f"split {split!r} is not one of {SPLITS}")


def load_mnist(
    root: str | Path | None = None, split: str = "test", verify: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """The MNIST test set, or one side of its fixed split, as ``(images, labels)``.

    ``images`` is float32 ``[N, 1, 28, 28]`` with pixels scaled to [0, 1] (no mean/std
    normalisation, so the first layer's inputs are unsigned); ``labels`` is int64 ``[N]``.
    ``root`` holds ``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz`` (default: the
    copy shipped in ``pimsim/data/mnist``). ``split`` is ``"train"`` (the first 8,000 images),
    ``"test"`` (the last 2,000) or ``"all"`` (10,000); see :data:`MNIST_SPLIT`. With ``verify``
    the files' md5 checksums are checked first (:func:`verify_mnist`).
    """
    _check_split(split)
    root = MNIST_ROOT if root is None else Path(root)
    if verify:
        verify_mnist(root)
    images = read_idx(root / MNIST_FILES["images"][0])
    labels = read_idx(root / MNIST_FILES["labels"][0])
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DatasetError(f"{root}: MNIST images must be 28x28, got {images.shape[1:]}")
    if len(images) != len(labels):
        raise DatasetError(f"{root}: {len(images)} images but {len(labels)} labels")
    if labels.max() > 9:
        raise DatasetError(f"{root}: MNIST labels must lie in 0..9, found {labels.max()}")
    n_train, n_test = MNIST_SPLIT
    if split != "all" and len(images) != n_train + n_test:
        raise DatasetError(
            f"{root}: the fixed split needs {n_train + n_test} images, found {len(images)}"
        )
    part = {"train": slice(0, n_train), "test": slice(n_train, None), "all": slice(None)}[split]
    x = torch.from_numpy(images[part]).to(torch.float32).div_(255.0).unsqueeze(1)
    y = torch.from_numpy(labels[part]).to(torch.int64)
    return x, y


# --------------------------------------------------------------------------- CIFAR


def _allowed_global(module: str, name: str):
    """The object behind an allowed global, resolved without importing deprecated modules."""
    if (module, name) == ("numpy", "ndarray"):
        return np.ndarray
    if (module, name) == ("numpy", "dtype"):
        return np.dtype
    # numpy 2 keeps ``_reconstruct`` in ``numpy._core``; importing the old ``numpy.core`` warns.
    core = getattr(np, "_core", None) or np.core
    return core.multiarray._reconstruct


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler that resolves only :data:`CIFAR_ALLOWED_GLOBALS` and refuses everything else."""

    def __init__(self, file, source: Path) -> None:
        super().__init__(file, encoding="bytes")
        self.source = source

    def find_class(self, module: str, name: str):
        if (module, name) not in CIFAR_ALLOWED_GLOBALS:
            raise DatasetError(
                f"{self.source}: refusing to load: the pickle references {module}.{name}, and "
                "only plain values and numpy arrays are allowed in a CIFAR batch"
            )
        return _allowed_global(module, name)


def _read_batch(path: Path) -> dict:
    if not path.is_file():
        raise DatasetError(f"{path}: no such file (a CIFAR python batch is expected here)")
    try:
        with open(path, "rb") as f:
            batch = _SafeUnpickler(f, path).load()
    except DatasetError:
        raise
    except Exception as exc:  # any malformed pickle: a clear error, not a traceback
        raise DatasetError(f"{path}: not a readable CIFAR batch ({exc})") from exc
    if not isinstance(batch, dict):
        raise DatasetError(f"{path}: expected a dict, got {type(batch).__name__}")
    # Python 2 pickles decode with bytes keys; accept str keys from re-pickled files too.
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}


def _cifar_arrays(path: Path, label_key: str, classes: int) -> tuple[np.ndarray, np.ndarray]:
    batch = _read_batch(path)
    for key in ("data", label_key):
        if key not in batch:
            raise DatasetError(f"{path}: missing key {key!r} (found {sorted(batch)})")
    data, labels = batch["data"], np.asarray(batch[label_key])
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2):
        raise DatasetError(f"{path}: 'data' must be a uint8 array [N, 3072]")
    if data.shape[1] != 3 * 32 * 32:
        raise DatasetError(f"{path}: 'data' has {data.shape[1]} columns, expected 3072")
    if labels.shape != (len(data),) or labels.dtype.kind not in "iu":
        raise DatasetError(f"{path}: {label_key!r} must hold one integer label per image")
    if len(labels) and (labels.min() < 0 or labels.max() >= classes):
        raise DatasetError(f"{path}: labels must lie in 0..{classes - 1}")
    return data, labels


def load_cifar(
    root: str | Path, split: str = "test", variant: int = 10
) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 or CIFAR-100 from the standard python batch files, as ``(images, labels)``.

    ``root`` is the extracted folder (``cifar-10-batches-py`` / ``cifar-100-python``) or its parent.
    CIFAR-10 reads ``data_batch_1`` .. ``data_batch_5`` (``"train"``) and ``test_batch``
    (``"test"``), labels from ``b'labels'``; CIFAR-100 reads ``train`` and ``test`` with the 100
    ``b'fine_labels'``. ``"all"`` concatenates train then test. ``images`` is float32
    ``[N, 3, 32, 32]`` in [0, 1] (rows of 3072 bytes: red, green, blue planes); ``labels`` is int64.
    The pickles are read with a restricted unpickler (see the module docstring): the official
    files and pickles of protocol 3 or higher load; a batch re-pickled by Python 3 with protocol 2
    is refused (it stores bytes through the global ``_codecs.encode``).
    """
    _check_split(split)
    if variant not in (10, 100):
        raise DatasetError(f"CIFAR variant must be 10 or 100, got {variant!r}")
    root = Path(root)
    folder = "cifar-10-batches-py" if variant == 10 else "cifar-100-python"
    if (root / folder).is_dir():
        root = root / folder
    if variant == 10:
        files = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
        label_key = "labels"
    else:
        files = {"train": ["train"], "test": ["test"]}
        label_key = "fine_labels"
    names = files["train"] + files["test"] if split == "all" else files[split]
    parts = [_cifar_arrays(root / name, label_key, variant) for name in names]
    data = np.concatenate([d for d, _ in parts])
    labels = np.concatenate([lab for _, lab in parts])
    x = torch.from_numpy(data).reshape(-1, 3, 32, 32).to(torch.float32).div_(255.0)
    return x, torch.from_numpy(labels.astype(np.int64))


# --------------------------------------------------------------------------- loaders


def load_dataset(
    name: str, root: str | Path | None = None, split: str = "test"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, labels)`` of ``name`` (``"mnist"``, ``"cifar10"`` or ``"cifar100"``).

    MNIST defaults to the shipped copy and its fixed split; CIFAR needs ``root``.
    """
    if name == "mnist":
        return load_mnist(root, split)
    if name in ("cifar10", "cifar100"):
        if root is None:
            raise DatasetError(f"{name}: pass root=, the folder holding the python batch files")
        return load_cifar(root, split, variant=int(name[5:]))
    raise DatasetError(f"unknown dataset {name!r} (known: {', '.join(DATASETS)})")


def dataset_loader(
    name: str,
    root: str | Path | None = None,
    split: str = "test",
    batch_size: int = 128,
    shuffle: bool = False,
    seed: int = 0,
) -> DataLoader:
    """A :class:`~torch.utils.data.DataLoader` over :func:`load_dataset` ``(name, root, split)``.

    When shuffling, the order comes from a :class:`torch.Generator` seeded with ``seed`` (the
    global torch RNG is neither read nor changed), so the same seed gives the same batches.
    """
    x, y = load_dataset(name, root, split)
    generator = None
    if shuffle:
        generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle, generator=generator
    )
