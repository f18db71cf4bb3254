"""Design points: the designs a sweep asks for, as overrides of a base spec, and their keys.

A point is (base arch, workload, field values). Its *request key* hashes exactly that, with the
base spec's YAML content, so a re-run can tell finished requests from new ones without resolving
any spec; its *design key* (made where the point is evaluated) hashes the fully resolved spec, the
workload and the oracle budget, and is the results store's primary key. With an accuracy oracle
both keys also hold the sha256 of the workload's checkpoint file, so replacing a checkpoint makes
every design of it a new request (and a new oracle run). With several checkpoints
(``accuracy.checkpoints``) a point's ``checkpoint`` value is the label of the one it runs, and
both keys hold that label with its file's sha256; the oracle's result (its accuracy key) depends
on the file's content only.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pimsim.errors import PimsimError
from pimsim.spec._sweep import (
    CHECKPOINT_PARAMETER,
    AccuracyBudget,
    SweepSpec,
    workload_digest,
)


@dataclass(frozen=True)
class DesignPoint:
    """One design of a sweep: ``values`` maps field paths to values (applied with ``--set``
    semantics to base arch ``arch`` of the sweep), evaluated on workload ``workload``."""

    index: int
    arch: int
    workload: int
    values: tuple  # ((path, value), ...)
    request: str = ""

    @property
    def overrides(self) -> dict:
        """``{path: value}`` of the spec fields (the checkpoint label is no field)."""
        return {p: v for p, v in self.values if p != CHECKPOINT_PARAMETER}

    @property
    def checkpoint(self) -> str | None:
        """The label of the checkpoint this point runs (``accuracy.checkpoints``), else None."""
        return dict(self.values).get(CHECKPOINT_PARAMETER)


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


_FILE_DIGESTS: dict[tuple, str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, remembered in this process for as long as the file's path,
    inode, size and modification times stay the same (a checkpoint is read once per sweep)."""
    path = Path(path).resolve()
    st = path.stat()
    ident = (str(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    digest = _FILE_DIGESTS.get(ident)
    if digest is None:
        sha = hashlib.sha256()
        with path.open("rb") as file:
            for chunk in iter(lambda: file.read(1 << 20), b""):
                sha.update(chunk)
        digest = _FILE_DIGESTS[ident] = sha.hexdigest()
    return digest


@dataclass(frozen=True)
class KeyMaker:
    """Request and design keys for one sweep (digests of its bases and workloads made once)."""

    arch_digests: tuple[str, ...]
    workload_digests: tuple[str, ...]
    budget: dict | None
    latency: dict | None = None
    weights: tuple[str, ...] = ()
    """sha256 of each workload's checkpoint file (``()`` without an accuracy oracle, or with
    several checkpoints)."""
    labelled: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """With ``accuracy.checkpoints``: ``(label, sha256 of each workload's checkpoint file)``."""

    @classmethod
    def of(cls, sweep: SweepSpec) -> KeyMaker:
        """Digest the sweep's base specs (their YAML after ``set:``), workloads and checkpoint
        files."""
        archs = tuple(
            _digest(
                [
                    a._source.data if a._source is not None else a.model_dump(mode="json"),
                    sweep.fixed,
                ]
            )
            for a in sweep.archs
        )
        works = tuple(workload_digest(w) for w in sweep.workloads)
        weights, labelled = (), ()
        budget = sweep.accuracy
        if isinstance(budget, AccuracyBudget) and budget.alternatives:
            labelled = tuple(
                (label, tuple(file_sha256(refs[w.name].path) for w in sweep.workloads))
                for label, refs in budget.alternatives.items()
            )
        elif isinstance(budget, AccuracyBudget):
            weights = tuple(file_sha256(budget.checkpoints[w.name].path) for w in sweep.workloads)
        return cls(
            archs,
            works,
            budget.key() if budget else None,
            dict(sweep.latency),
            weights,
            labelled,
        )

    def checkpoint(self, workload: int, label: str | None = None) -> str | None:
        """sha256 of workload ``workload``'s checkpoint file (of the one labelled ``label``, with
        several checkpoints); None without an oracle."""
        if self.labelled:
            if label is None:
                raise KeyError("this sweep has several checkpoints: give the point's label")
            return dict(self.labelled)[label][workload]
        return self.weights[workload] if self.weights else None

    def _weights(self, workload: int, label: str | None) -> list:
        # absent without a checkpoint, so that the keys of cost-only stores stay as they were;
        # with several checkpoints the label is there too (two labels are two designs)
        digest = self.checkpoint(workload, label)
        if digest is None:
            return []
        return [{"checkpoint": label, "sha256": digest}] if self.labelled else [digest]

    def _key(self, head, workload: int, tail: list) -> str:
        return _digest(
            [head, self.workload_digests[workload], self.budget, self.latency, *tail]
        )[:32]

    def request(self, arch: int, workload: int, values: tuple) -> str:
        """Key of a request: base content + workload + overrides + oracle budget + latency
        model (+ the checkpoint file's digest, and its label when there are several)."""
        label = dict(values).get(CHECKPOINT_PARAMETER) if self.labelled else None
        return _digest(
            [
                self.arch_digests[arch],
                self.workload_digests[workload],
                list(values),
                self.budget,
                self.latency,
                *self._weights(workload, label),
            ]
        )[:32]

    def design(self, resolved: dict, workload: int, checkpoint: str | None = None) -> str:
        """Key of a resolved design: the spec's every field + workload + oracle budget +
        latency model (+ the checkpoint file's digest, and label ``checkpoint`` when the sweep
        has several)."""
        return self._key(resolved, workload, self._weights(workload, checkpoint))

    def accuracy(self, fields: dict, workload: int, checkpoint: str | None = None) -> str:
        """Key of an oracle result: ``fields`` (what of the spec it depends on) + workload +
        oracle budget + latency model + the digest of the checkpoint file it runs (not the
        label: two labels of one file, or a sweep with that one checkpoint, share the result)."""
        digest = self.checkpoint(workload, checkpoint)
        return self._key(fields, workload, [digest] if digest is not None else [])

    def point(self, index: int, arch: int, workload: int, values: tuple) -> DesignPoint:
        """A :class:`DesignPoint` with its request key."""
        return DesignPoint(index, arch, workload, values, self.request(arch, workload, values))


#: Designs a sweep evaluates at most unless told otherwise (``pimsim sweep --max-points``).
MAX_POINTS = 1_000_000


class SweepSizeError(PimsimError, ValueError):
    """A sweep with more designs than its limit (counted before any design is made)."""


def check_size(sweep: SweepSpec, designs: float, max_points: int | None) -> None:
    """Refuse ``designs`` designs over ``max_points`` (default :data:`MAX_POINTS`), saying how
    to narrow the sweep or raise the limit."""
    limit = MAX_POINTS if max_points is None else max_points
    if designs > limit:
        size = "an unbounded number of" if math.isinf(designs) else f"{designs:,.0f}"
        raise SweepSizeError(
            f"sweep {sweep.name!r} has {size} designs, over the limit of {limit:,}: narrow its "
            "ranges, sample it (strategy: {kind: random, n: N}), or raise the limit with "
            "--max-points (max_points= in Python)"
        )


def grid_points(sweep: SweepSpec, keys: KeyMaker, max_points: int | None = None
                ) -> list[DesignPoint]:
    """Every combination: archs x workloads x each dimension's choices (linked groups zipped),
    in file order with the last parameter varying fastest; :class:`SweepSizeError` (before any
    design is made) beyond ``max_points`` (default :data:`MAX_POINTS`)."""
    check_size(sweep, sweep.grid_size, max_points)
    axes = [range(len(sweep.archs)), range(len(sweep.workloads))]
    axes += [d.values for d in sweep.dimensions]
    points = []
    for i, combo in enumerate(itertools.product(*axes)):
        arch, work, *choices = combo
        values = tuple(
            (p, v)
            for d, c in zip(sweep.dimensions, choices, strict=True)
            for p, v in zip(d.paths, c, strict=True)
        )
        points.append(keys.point(i, arch, work, values))
    return points


def random_points(sweep: SweepSpec, keys: KeyMaker, n: int, seed: int,
                  max_points: int | None = None) -> list[DesignPoint]:
    """``n`` distinct designs drawn uniformly (log-uniformly on log ranges) with ``seed``; the
    whole grid when it has ``n`` designs or fewer (at most ``max_points``)."""
    check_size(sweep, min(n, sweep.grid_size), max_points)
    if sweep.grid_size <= n:
        return grid_points(sweep, keys, max_points)
    rng = np.random.default_rng(seed)
    sizes = [len(sweep.archs), len(sweep.workloads)]
    seen, points = set(), []
    attempts = 0
    while len(points) < n and attempts < 100 * n:
        attempts += 1
        arch, work = (int(rng.integers(s)) for s in sizes)
        values = []
        for d in sweep.dimensions:
            if d.values is None:
                u = rng.random()
                v = (
                    math.exp(math.log(d.low) + u * math.log(d.high / d.low))
                    if d.log
                    else (d.low + u * (d.high - d.low))
                )
                values.append((d.paths[0], float(f"{v:.12g}")))
            else:
                choice = d.values[int(rng.integers(len(d.values)))]
                values += list(zip(d.paths, choice, strict=True))
        ident = (arch, work, json.dumps(values, default=str))
        if ident in seen:
            continue
        seen.add(ident)
        points.append(keys.point(len(points), arch, work, tuple(values)))
    return points
