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


def _from_factory(text: str) -> Workload:
    """``package.module:factory[:d1,d2,...]``: trace the nn.Module that ``factory()`` returns on
    an input of shape (1, d1, d2, ...) (default: the factory's ``input_shape`` attribute)."""
    import importlib

    from pimsim.workload._torch import from_torch

    module_name, factory_name, *shape_text = text.split(":")
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except (ImportError, AttributeError) as exc:
        raise WorkloadError(f"model {text!r}: cannot import {factory_name!r} from "
                            f"{module_name!r}: {exc}") from exc  # fmt: skip
    shape = getattr(factory, "input_shape", None)
    if shape_text:
        try:
            shape = tuple(int(d) for d in shape_text[0].split(","))
        except ValueError as exc:
            raise WorkloadError(f"model {text!r}: the input shape must be integers separated "
                                "by commas, e.g. pkg.mod:make:3,32,32") from exc  # fmt: skip
    if shape is None:
        raise WorkloadError(f"model {text!r}: give the input shape without the batch, e.g. "
                            f"{module_name}:{factory_name}:3,32,32")  # fmt: skip
    return from_torch(factory(), (1, *shape), name=factory_name)


def load_workload(path_or_zoo_name: str | os.PathLike) -> Workload:
    """Load a network from a ``kind: workload`` YAML file, by zoo name (``resnet20_cifar10``),
    or from any torch model: ``package.module:factory[:d1,d2,...]`` traces ``factory()`` on an
    input of shape (1, d1, d2, ...).

    Raises :class:`~pimsim.errors.SpecError` for an invalid file and
    :class:`~pimsim.errors.WorkloadError` for an unknown zoo name.
    """
    text = str(path_or_zoo_name)
    if ":" in text and not Path(text).exists():
        return _from_factory(text)
    path = Path(text)
    looks_like_file = path.suffix in (".yaml", ".yml") or os.sep in text or path.exists()
    if looks_like_file:
        return load_workload_file(path)
    names = zoo_names()
    if not (ZOO_DIR / f"{text}.yaml").exists() and text in names:
        from pimsim.workload._torch import from_torch
        from pimsim.workload._zoo import ZOO, zoo_model

        return from_torch(zoo_model(text), (1, *ZOO[text][1]), name=text)
    if text not in names:
        hint = did_you_mean(text, names)
        raise WorkloadError(
            f"unknown workload {text!r}{hint} (zoo: {', '.join(names)}; or give "
            "a path to a kind: workload YAML file)"
        )
    return load_workload_file(ZOO_DIR / f"{text}.yaml")
