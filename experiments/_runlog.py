"""The experiments' run log: one JSON object per finished run in a ``.jsonl`` file, keyed, so
that an interrupted experiment continues where it stopped."""

from __future__ import annotations

import json
from pathlib import Path


class RunLog:
    """Append-only keyed records in ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def done_keys(self) -> set:
        """Keys of the runs already recorded."""
        if not self.path.exists():
            return set()
        lines = self.path.read_text().splitlines()
        return {json.loads(line)["key"] for line in lines if line.strip()}

    def record(self, key: str, **fields) -> None:
        """Append one run and print its scalar fields."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps({"key": key, **fields}, default=float) + "\n")
        print(key, {k: v for k, v in fields.items() if not isinstance(v, (dict, list))},
              flush=True)


def add_run_options(parser) -> None:
    """The options every training experiment takes: fine-tuning steps, torch threads, report."""
    parser.add_argument("--steps", type=int, default=125, help="PIM-QAT fine-tuning steps")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--report", action="store_true")


def start(args) -> None:
    """Apply the run options before any work: torch threads and the CPU allocator."""
    import torch

    import pimsim.oracle

    if args.threads:
        torch.set_num_threads(args.threads)
    pimsim.oracle.tune_cpu_allocator()
