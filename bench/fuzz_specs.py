"""Fuzz the cost model with random designs (``python bench/fuzz_specs.py [--n 2000]``).

Draws N designs within the spec's schema (``tests/_fuzz.py``: shipped arch specs with random
ADC, array, decomposition, technology and mapping values, x zoo workloads, event or analytical
latency), evaluates each and checks the properties of ``tests._fuzz.check_design``. Prints the
counts (evaluated, refused with a PimsimError, violations), the time, and every violation with
its design; exits 1 if there is any.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests._fuzz import REFUSED, check_design, random_design  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="Designs to draw.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    outcome: collections.Counter = collections.Counter()
    violations = []
    start = time.perf_counter()
    for i in range(args.n):
        design = random_design(rng)
        result = check_design(*design)
        if result is None:
            outcome["evaluated"] += 1
        elif result == REFUSED:
            outcome["refused"] += 1
        else:
            outcome["violations"] += 1
            violations.append((design, result))
        if (i + 1) % 250 == 0:
            print(f"{i + 1} designs, {dict(outcome)}", flush=True)
    wall = time.perf_counter() - start
    print(f"\n{args.n} designs (seed {args.seed}) in {wall:.0f} s: {outcome['evaluated']} "
          f"evaluated, {outcome['refused']} refused with a PimsimError, "
          f"{outcome['violations']} violations")
    for design, result in violations:
        print(f"  {design}: {result}")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
