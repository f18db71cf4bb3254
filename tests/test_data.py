"""Datasets: the IDX reader, the shipped MNIST copy and its fixed split, safe CIFAR loading."""

from __future__ import annotations

import gzip
import os
import pickle

import numpy as np
import pytest
import torch

from pimsim.training._data import (
    MNIST_FILES,
    MNIST_ROOT,
    MNIST_SPLIT,
    DatasetError,
    dataset_loader,
    load_cifar,
    load_mnist,
    read_idx,
    verify_mnist,
)


def idx_bytes(magic: int, array: np.ndarray) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.fixture(scope="module")
def mnist_all():
    return load_mnist(split="all")


# --------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("magic, shape", [(2051, (3, 4, 5)), (2049, (7,))])
def test_read_idx_round_trip(tmp_path, compress, magic, shape):
    array = np.arange(np.prod(shape), dtype=np.uint8).reshape(shape)
    data = idx_bytes(magic, array)
    path = tmp_path / ("x.idx.gz" if compress else "x.idx")
    path.write_bytes(gzip.compress(data) if compress else data)
    out = read_idx(path)
    assert out.dtype == np.uint8 and out.shape == shape
    np.testing.assert_array_equal(out, array)


@pytest.mark.parametrize(
    "data, message",
    [
        (idx_bytes(2050, np.zeros((2, 2, 2))), "magic number 2050"),
        (idx_bytes(2049, np.zeros((2, 2))), "data beyond"),  # labels header, image payload
        (idx_bytes(2051, np.zeros((2, 3, 4)))[:-1], "expected 24"),
        (idx_bytes(2051, np.zeros((2, 3, 4)))[:10], "truncated header"),
        ((2051).to_bytes(4, "big") + bytes(12), "must be positive"),
        (b"\x00\x00", "too short"),
    ],
)
def test_read_idx_rejects_malformed(tmp_path, data, message):
    path = tmp_path / "bad.idx"
    path.write_bytes(data)
    with pytest.raises(DatasetError, match=message) as info:
        read_idx(path)
    assert "bad.idx" in str(info.value)


def test_read_idx_missing_and_corrupt_gzip(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        read_idx(tmp_path / "absent.gz")
    path = tmp_path / "broken.gz"
    path.write_bytes(gzip.compress(idx_bytes(2049, np.zeros(100)))[:30])
    with pytest.raises(DatasetError, match="broken.gz"):
        read_idx(path)


# --------------------------------------------------------------------------- MNIST


def test_shipped_mnist_matches_published_checksums():
    digests = verify_mnist()
    assert digests == {name: md5 for name, md5 in MNIST_FILES.values()}
    assert digests["t10k-images-idx3-ubyte.gz"] == "9fb629c4189551a2d022fa330f9573f3"
    assert digests["t10k-labels-idx1-ubyte.gz"] == "ec29112dd5afa0611ce80d1b7f02629c"
    assert (MNIST_ROOT / "NOTICE").is_file() and (MNIST_ROOT / "README.md").is_file()


def test_verify_mnist_detects_a_changed_file(tmp_path):
    for name, _ in MNIST_FILES.values():
        (tmp_path / name).write_bytes((MNIST_ROOT / name).read_bytes())
    labels = tmp_path / MNIST_FILES["labels"][0]
    labels.write_bytes(labels.read_bytes() + b"\x00")
    with pytest.raises(DatasetError, match="does not match"):
        verify_mnist(tmp_path)


def test_mnist_split_is_fixed_and_disjoint(mnist_all):
    x_all, y_all = mnist_all
    assert x_all.shape == (10000, 1, 28, 28) and x_all.dtype == torch.float32
    assert y_all.shape == (10000,) and y_all.dtype == torch.int64
    assert float(x_all.min()) == 0.0 and float(x_all.max()) == 1.0
    assert set(y_all.tolist()) == set(range(10))
    x_train, y_train = load_mnist(split="train")
    x_test, y_test = load_mnist(split="test")
    assert (len(x_train), len(x_test)) == MNIST_SPLIT == (8000, 2000)
    # The two sides are the first 8,000 and the last 2,000 images, so they cannot overlap.
    assert torch.equal(torch.cat([x_train, x_test]), x_all)
    assert torch.equal(torch.cat([y_train, y_test]), y_all)


def test_mnist_bad_split():
    with pytest.raises(DatasetError, match="split"):
        load_mnist(split="validation")


def test_dataset_loader_is_seeded_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    first = [y for _, y in dataset_loader("mnist", batch_size=500, shuffle=True, seed=3)]
    again = [y for _, y in dataset_loader("mnist", batch_size=500, shuffle=True, seed=3)]
    other = [y for _, y in dataset_loader("mnist", batch_size=500, shuffle=True, seed=4)]
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(torch.cat(first), torch.cat(other))
    ordered = torch.cat([y for _, y in dataset_loader("mnist", batch_size=500)])
    assert torch.equal(ordered, load_mnist(split="test")[1])
    with pytest.raises(DatasetError, match="root"):
        dataset_loader("cifar10")
    with pytest.raises(DatasetError, match="unknown dataset"):
        dataset_loader("imagenet")


# --------------------------------------------------------------------------- CIFAR


def write_batch(path, n, label_key, classes, seed, numpy1_names=False):
    """A batch in the layout of the official python files (bytes keys, uint8 [N, 3072])."""
    rng = np.random.default_rng(seed)
    batch = {
        b"batch_label": b"testing batch",
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        label_key: [int(v) for v in rng.integers(0, classes, n)],
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }
    data = pickle.dumps(batch, protocol=3)
    if numpy1_names:  # the name numpy 1.x (and the official files) use for _reconstruct
        data = data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
        assert b"numpy.core.multiarray" in data
    path.write_bytes(data)
    return batch


def test_cifar10_all_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = [
        write_batch(folder / f"data_batch_{i}", 3, b"labels", 10, i, numpy1_names=i % 2 == 0)
        for i in range(1, 6)
    ]
    test = write_batch(folder / "test_batch", 4, b"labels", 10, 9)
    x, y = load_cifar(tmp_path, "test")  # the parent folder works too
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert y.tolist() == test[b"labels"]
    pixels = test[b"data"][1]  # red plane, then green, then blue, each row-major 32x32
    expected = pixels.astype(np.float32) / np.float32(255)
    assert x[1, 0, 0, 1].item() == expected[1]
    assert x[1, 1, 0, 0].item() == expected[1024]
    assert x[1, 2, 31, 31].item() == expected[3071]
    x_train, y_train = load_cifar(folder, "train", variant=10)
    assert len(x_train) == 15
    assert y_train.tolist() == sum((b[b"labels"] for b in batches), [])
    assert len(load_cifar(folder, "all")[0]) == 19
    loader = dataset_loader("cifar10", root=folder, batch_size=2)
    assert [len(yb) for _, yb in loader] == [2, 2]


def test_cifar100_fine_labels(tmp_path):
    train = write_batch(tmp_path / "train", 5, b"fine_labels", 100, 1)
    write_batch(tmp_path / "test", 2, b"fine_labels", 100, 2)
    x, y = load_cifar(tmp_path, "train", variant=100)
    assert x.shape == (5, 3, 32, 32)
    assert y.tolist() == train[b"fine_labels"]
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


class _Exploit:
    """Unpickling this would run a shell command that creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar_refuses_code_in_pickles(tmp_path):
    marker = tmp_path / "pwned"
    evil = {b"data": _Exploit(marker), b"labels": [0]}
    (tmp_path / "test_batch").write_bytes(pickle.dumps(evil, protocol=3))
    with pytest.raises(DatasetError, match=r"refusing to load.*(posix|os|nt)\.system"):
        load_cifar(tmp_path, "test")
    assert not marker.exists()
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": print}, protocol=4))
    with pytest.raises(DatasetError, match="builtins.print"):
        load_cifar(tmp_path, "test")


@pytest.mark.parametrize(
    "batch, message",
    [
        ([1, 2], "expected a dict"),
        ({b"labels": [0]}, "missing key 'data'"),
        ({b"data": np.zeros((1, 100), np.uint8), b"labels": [0]}, "3072"),
        ({b"data": np.zeros((1, 3072), np.float32), b"labels": [0]}, "uint8"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "one integer label"),
        ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}, r"0\.\.9"),
    ],
)
def test_cifar_rejects_malformed_batches(tmp_path, batch, message):
    (tmp_path / "test_batch").write_bytes(pickle.dumps(batch, protocol=3))
    with pytest.raises(DatasetError, match=message):
        load_cifar(tmp_path, "test")


def test_cifar_missing_files(tmp_path):
    with pytest.raises(DatasetError, match="data_batch_1: no such file"):
        load_cifar(tmp_path, "train")
    (tmp_path / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match="not a readable CIFAR batch"):
        load_cifar(tmp_path, "test")
    with pytest.raises(DatasetError, match="variant"):
        load_cifar(tmp_path, "test", variant=20)
