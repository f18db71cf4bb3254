"""Finding workloads by file path or zoo name."""

from __future__ import annotations

import os
from pathlib import Path

from pimsim.errors import WorkloadError, did_you_mean
from pimsim.workload._layer import Workload
from pimsim.workload._yaml import load_workload_file

#: Folder of the hand-written zoo YAML files (the repository's ``workloads/``).
ZOO_DIR = Path(__file__).resolve().parents[2] / "workloads"


def zoo_names() -> list[str]:
    """Names of the built-in networks: one YAML file each in ``workloads/``, or a torch model of
    the zoo traced on its input shape (the transformers, RNNs and modern CNNs)."""
    from pimsim.workload._zoo import ZOO

    return sorted({p.stem for p in ZOO_DIR.glob("*.yaml")} | set(ZOO))


def load_workload(path_or_zoo_name: str | os.PathLike) -> Workload:
    """Load a network from a ``kind: workload`` YAML file, by zoo name (``resnet20_cifar10``),
    from an ONNX file (``.onnx``, the ``[onnx]`` extra), or from any torch model:
    ``package.module:factory[:d1,d2,...]`` traces ``factory()`` on an input of shape
    (1, d1, d2, ...).

    Raises :class:`~pimsim.errors.SpecError` for an invalid file and
    :class:`~pimsim.errors.WorkloadError` for an unknown zoo name.
    """
    text = str(path_or_zoo_name)
    if ":" in text and not Path(text).exists():
        from pimsim.workload._zoo import traced_workload

        return traced_workload(text)
    path = Path(text)
    if path.suffix == ".onnx":
        from pimsim.workload._onnx import from_onnx

        return from_onnx(path, name=path.stem)
    looks_like_file = path.suffix in (".yaml", ".yml") or os.sep in text or path.exists()
    if looks_like_file:
        return load_workload_file(path)
    names = zoo_names()
    if not (ZOO_DIR / f"{text}.yaml").exists() and text in names:
        from pimsim.workload._zoo import traced_workload

        return traced_workload(text)
    if text not in names:
        hint = did_you_mean(text, names)
        raise WorkloadError(
            f"unknown workload {text!r}{hint} (zoo: {', '.join(names)}; or give "
            "a path to a kind: workload YAML file)"
        )
    return load_workload_file(ZOO_DIR / f"{text}.yaml")
