"""Random accelerator designs within the spec's schema, and the properties every evaluation of
one must have (used by ``tests/test_fuzz.py`` under hypothesis and by ``bench/fuzz_specs.py``).

A design is a shipped arch spec with random values for the knobs a designer turns (ADC bits,
sharing and type; array size and rows per read; decomposition preset and precisions; cell bits;
technology node, supply and clock; duplication; latency model). Invalid combinations are the
spec's to refuse: a :class:`~pimsim.errors.PimsimError` is a refusal, any other exception a
violation.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

import pimsim
from pimsim.errors import PimsimError

ROOT = Path(__file__).resolve().parent.parent
ARCHS = sorted(p.stem for p in (ROOT / "arch_specs").glob("*.yaml"))
#: Zoo networks small enough to evaluate thousands of times.
WORKLOADS = ("lenet5_mnist", "lenet5_bn_mnist", "mlp_mnist", "mlp4_mnist", "resnet20_cifar10",
             "vgg8_cifar10", "lstm_mnist", "vit_tiny_cifar10")


def random_design(rng: np.random.Generator) -> tuple[str, dict, str, str]:
    """``(arch name, overrides, workload, latency model)`` drawn from ``rng``."""
    arch = ARCHS[rng.integers(len(ARCHS))]
    rows = int(2 ** rng.integers(5, 10))
    o: dict = {}
    if rng.random() < 0.5:
        o["array.rows"] = rows
        o["array.cols"] = int(2 ** rng.integers(5, 10))
    if rng.random() < 0.7:
        o["array.rows_per_adc_read"] = int(2 ** rng.integers(2, 10))
    if rng.random() < 0.8:
        o["adc.bits"] = int(rng.integers(1, 13))
    if rng.random() < 0.4:
        o["adc.cols_per_adc"] = int(2 ** rng.integers(0, 8))
    if rng.random() < 0.3:
        o["adc.type"] = str(rng.choice(["sar", "flash", "ramp", "sense_amp"]))
    if rng.random() < 0.5:
        o["decomposition.scheme"] = str(rng.choice(
            ["native", "differential", "bit_serial", "differential_digital"]))
        o["cell.bits"] = None
        o["dac.bits"] = None
        o["decomposition.signed_encoding"] = None
    if rng.random() < 0.5:
        o["decomposition.input_bits"] = int(rng.integers(1, 9))
        o["decomposition.weight_bits"] = int(rng.integers(2, 9))
    if rng.random() < 0.3:
        o["technology.clock_hz"] = float(10 ** rng.uniform(8, 9.5))
    if rng.random() < 0.2:
        o["technology.vdd_v"] = float(rng.uniform(0.5, 1.2))
    if rng.random() < 0.2:
        o["mapping.duplication"] = str(rng.choice(["none", "balance"]))
        o["mapping.max_duplication"] = int(2 ** rng.integers(0, 4))
    workload = WORKLOADS[rng.integers(len(WORKLOADS))]
    latency = "analytical" if rng.random() < 0.25 else "event"
    return arch, o, workload, latency


REFUSED = "refused"


def check_design(arch_name: str, overrides: dict, workload: str, latency: str) -> str | None:
    """Evaluate one design; None when it holds every property, :data:`REFUSED` when the spec
    or the mapper refuses it with a PimsimError, else what was violated. Properties: no
    exception other than a PimsimError; energy finite and >= 0; the layers' energies plus
    leakage sum to the total; every class's energy >= 0; latency finite and > 0; MACs equal the
    workload's; one more ADC bit never lowers the ADC energy nor changes the conversions."""
    from pimsim.cost import evaluate

    work = pimsim.load_workload(workload)
    try:
        arch = pimsim.load_arch(ROOT / "arch_specs" / f"{arch_name}.yaml", overrides)
        report = evaluate(arch, work, latency_model=latency)
    except PimsimError:
        return REFUSED
    except Exception as exc:  # noqa: BLE001 - anything else is what the fuzzing looks for
        return f"{type(exc).__name__}: {exc}"
    t, e = report.totals, report.energy_breakdown_pj
    problems = []
    if not (math.isfinite(t["energy_pj"]) and t["energy_pj"] >= 0):
        problems.append(f"energy {t['energy_pj']}")
    if any(v < 0 or not math.isfinite(v) for v in e.values()):
        problems.append(f"negative or non-finite class energy {e}")
    layers = float(report.layers["energy_pj"].sum()) + e.get("leakage", 0.0)
    if not math.isclose(layers, t["energy_pj"], rel_tol=1e-9, abs_tol=1e-9):
        problems.append(f"layers + leakage {layers} != total {t['energy_pj']}")
    if not (math.isfinite(t["latency_ns"]) and t["latency_ns"] > 0):
        problems.append(f"latency {t['latency_ns']}")
    if t["macs"] != work.macs:
        problems.append(f"macs {t['macs']} != {work.macs}")
    bits = arch.adc.bits
    if bits < 16:
        try:
            more = evaluate(pimsim.load_arch(ROOT / "arch_specs" / f"{arch_name}.yaml",
                                             {**overrides, "adc.bits": bits + 1}),
                            work, latency_model="analytical")
        except PimsimError:
            more = None
        if more is not None:
            a, b = e.get("adc", 0.0), more.energy_breakdown_pj.get("adc", 0.0)
            if b < a * (1 - 1e-9):
                problems.append(f"ADC energy fell from {a} to {b} with {bits + 1} bits")
            if more.totals["adc_conversions"] != t["adc_conversions"]:
                problems.append("conversions changed with ADC bits")
    return "; ".join(problems) or None
