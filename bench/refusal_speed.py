"""How long pimsim takes to refuse bad input (``python bench/refusal_speed.py [--repeats 3]``).

A refusal reads no data and trains nothing, so it should cost about what a cheap valid command
costs, never seconds more (the goal of the bad-input work: each case well under 5 s, nothing
hangs). Runs every numeric-option and usage case of ``tests/test_bad_inputs.py`` in this process
through the command line, alternating with a valid ``pimsim validate`` of a shipped spec, and
prints each case's median time as a ratio to that reference measured side by side, with the
slowest case and the reference's own time for scale.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from click.testing import CliRunner  # noqa: E402

from pimsim.cli import main  # noqa: E402
from tests.test_bad_inputs import NUMERIC  # noqa: E402

REFERENCE = ["validate", str(ROOT / "arch_specs" / "isaac.yaml")]
USAGE = [
    ["evaluate", str(ROOT / "arch_specs" / "isaac.yaml")],
    ["evaluate", str(ROOT / "arch_specs" / "isaac.yaml"), "lenet5_mnist", "--no-such-option"],
    ["validate", "/dev/zero"],
]


def timed(args: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    result = CliRunner().invoke(main, args)
    return time.perf_counter() - start, result.exit_code


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="Runs per case (median).")
    args = parser.parse_args()
    cases = [a for a, _ in NUMERIC] + USAGE
    timed(REFERENCE)  # imports and caches warm
    rows = []
    for case in cases:
        ratios, times = [], []
        for _ in range(args.repeats):
            t_ref, code_ref = timed(REFERENCE)
            t_case, code = timed(case)
            assert code_ref == 0 and code == 2, (case, code_ref, code)
            ratios.append(t_case / t_ref)
            times.append(t_case)
        rows.append((" ".join([case[0], *case[1:][-2:]]), statistics.median(ratios),
                     statistics.median(times)))
    t_ref = statistics.median(timed(REFERENCE)[0] for _ in range(args.repeats))
    print(f"reference: pimsim {' '.join(REFERENCE[:1])} isaac.yaml, median {t_ref * 1e3:.0f} ms")
    print("| case | refusal / reference | refusal ms |")
    print("| --- | ---: | ---: |")
    for name, ratio, t in rows:
        print(f"| {name} | {ratio:.2f} | {t * 1e3:.0f} |")
    worst = max(rows, key=lambda r: r[2])
    print(f"\n{len(rows)} cases; slowest: {worst[0]} at {worst[2] * 1e3:.0f} ms "
          f"({worst[1]:.2f}x the reference); median ratio "
          f"{statistics.median(r[1] for r in rows):.2f}")


if __name__ == "__main__":
    main_()
