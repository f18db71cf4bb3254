"""Property-based fuzzing of the cost model: random designs within the spec's schema (shipped
arch specs with random knob values, :mod:`tests._fuzz`) x zoo workloads either are refused with
a PimsimError or evaluate with every property of :func:`tests._fuzz.check_design` (energies
non-negative and summing to the total, latency positive and finite, MACs the workload's, ADC
energy monotone in ADC bits). Hypothesis draws the seeds (derandomized, so a run is
repeatable); ``bench/fuzz_specs.py`` runs thousands."""

from __future__ import annotations

import collections

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tests._fuzz import REFUSED, check_design, random_design


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_random_designs_are_refused_cleanly_or_hold_every_property(seed):
    design = random_design(np.random.default_rng(seed))
    result = check_design(*design)
    assert result in (None, REFUSED), (design, result)


def test_the_fuzzing_evaluates_designs_not_only_refusals():
    """Most random designs evaluate (a generator whose designs were all refused would check
    nothing)."""
    outcome = collections.Counter()
    for seed in range(16):
        result = check_design(*random_design(np.random.default_rng(10_000 + seed)))
        outcome["ok" if result is None else "refused" if result == REFUSED else "bad"] += 1
    assert outcome["bad"] == 0
    assert outcome["ok"] >= 6, outcome
