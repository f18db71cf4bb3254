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
    """Names of the built-in networks (one YAML file each in ``workloads/``)."""
    return sorted(p.stem for p in ZOO_DIR.glob("*.yaml"))


def load_workload(path_or_zoo_name: str | os.PathLike) -> Workload:
    """Load a network from a ``kind: workload`` YAML file or by zoo name (``resnet20_cifar10``).

    Raises :class:`~pimsim.errors.SpecError` for an invalid file and
    :class:`~pimsim.errors.WorkloadError` for an unknown zoo name.
    """
    text = str(path_or_zoo_name)
    path = Path(text)
    looks_like_file = path.suffix in (".yaml", ".yml") or os.sep in text or path.exists()
    if looks_like_file:
        return load_workload_file(path)
    names = zoo_names()
    if text not in names:
        hint = did_you_mean(text, names)
        raise WorkloadError(
            f"unknown workload {text!r}{hint} (zoo: {', '.join(names)}; or give "
            "a path to a kind: workload YAML file)"
        )
    return load_workload_file(ZOO_DIR / f"{text}.yaml")
