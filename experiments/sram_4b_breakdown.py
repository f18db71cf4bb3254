"""Why the 28 nm charge-domain SRAM design at 4-bit inputs and weights lands where it does,
component by component, next to a published 28 nm 4b/4b SRAM macro.

The design is ``arch_specs/sram_charge_domain_28nm.yaml`` (1-bit cells, bit-serial inputs, one
ADC per column, 256 rows summed per conversion) at 4-bit inputs and weights, evaluated on one
fully connected layer that fills an array (256 inputs, 64 outputs), as macros are measured.
Energy per 4b x 4b MAC (fJ) by component, for:

* the shipped design (8-bit SAR at 100 MS/s) under the previous ADC model (E = 0.201 b +
  3.76e-7 4^b pJ at 32 nm, fitted at ISAAC's 1.2 GS/s and charged at every rate) and under the
  survey model by type (``pimsim/cost/_adc.py``);
* a 4-bit SAR (the macro's output precision);
* a 4-bit flash ADC;
* a 4-bit flash with the four weight bits combined on the column in the charge domain (one
  conversion per 4-bit weight instead of one per weight bit: ``cell.bits: 4``, offset weights
  with the offset removed digitally), which is how the published macro reads a 4-bit weight.

Published: Xiao et al., "A 28nm 32Kb SRAM computing-in-memory macro with hierarchical capacity
attenuator and input sparsity-optimized ADC for 4b MAC operation", IEEE TCAS-II 2023 (abstract):
646.6 TOPS/W normalised to 4b/4b, 1638.4 GOPS, flash ADCs, 9T1C charge-domain cells, the
hierarchical capacity attenuator accumulating the 4 weight bits. Only its total is published in
the abstract; the per-component split is ours.

    python experiments/sram_4b_breakdown.py     # writes results/sram_4b_breakdown.md
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pimsim
from pimsim.cost import evaluate

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "arch_specs" / "sram_charge_domain_28nm.yaml"
BASE = {"decomposition.input_bits": 4, "decomposition.weight_bits": 4}
VARIANTS = {
    "shipped: 8-bit SAR": {},
    "4-bit SAR": {"adc.bits": 4},
    "4-bit flash": {"adc.bits": 4, "adc.type": "flash"},
    "4-bit flash, weight bits combined in charge": {
        "adc.bits": 4, "adc.type": "flash", "cell.bits": 4,
        "decomposition.signed_encoding": "offset", "decomposition.offset_reference": "digital",
    },
}
PUBLISHED = ("Xiao et al., TCAS-II 2023 (28 nm, 4b/4b, flash)", 646.6)
GROUPS = {
    "ADC": ("adc",),
    "array": ("array",),
    "drivers": ("dac",),
    "shift-add": ("shift_add", "accumulator"),
    "buffers + NoC": ("buffer", "interconnect", "activation", "pooling"),
}
MACRO = ("ADC", "array", "drivers", "shift-add")  # what a macro measurement includes


def previous_adc_pj(bits: int, node_nm: float) -> float:
    """The survey fit the cost model used before the model by type (pJ per conversion)."""
    return (0.201194718 * bits + 3.76395474e-07 * 4.0**bits) * node_nm / 32


def rows() -> list[dict]:
    """One row per variant (and the previous model's shipped row): fJ per MAC by group."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fc.yaml"
        path.write_text("kind: workload\nname: fc256x64\ninput_shape: [256]\nlayers:\n"
                        "  - {name: fc, kind: linear, out_features: 64}\n")
        work = pimsim.load_workload(path)
    out = []
    for name, extra in VARIANTS.items():
        arch = pimsim.load_arch(SPEC, {**BASE, **extra})
        rep = evaluate(arch, work)
        macs, energy = rep.totals["macs"], rep.energy_breakdown_pj
        row = {"design": name, "ADC energy / conversion (pJ)": energy["adc"]
               / rep.totals["adc_conversions"],
               "conversions / MAC": rep.totals["adc_conversions"] / macs}
        for group, classes in GROUPS.items():
            row[group] = sum(energy.get(c, 0.0) for c in classes) / macs * 1e3
        if not extra:
            old = dict(row, design="shipped: 8-bit SAR, previous ADC model")
            old["ADC energy / conversion (pJ)"] = previous_adc_pj(arch.adc.bits,
                                                                 arch.technology.node_nm)
            old["ADC"] = old["ADC energy / conversion (pJ)"] * old["conversions / MAC"] * 1e3
            out.append(old)
        out.append(row)
    for row in out:
        row["total fJ/MAC"] = sum(row[g] for g in GROUPS)
        row["TOPS/W (chip)"] = 2 / row["total fJ/MAC"] * 1e3
        row["TOPS/W (macro)"] = 2 / sum(row[g] for g in MACRO) * 1e3
    return out


def main() -> None:
    table = rows()
    cols = list(table[0])
    lines = [
        "# 28 nm SRAM charge-domain design at 4b/4b, component by component",
        "",
        "Written by `python experiments/sram_4b_breakdown.py`. Energy per 4b x 4b MAC (fJ) on "
        "one 256 x 64 layer; TOPS/W counts 2 ops per MAC; \"macro\" leaves out the buffers and "
        "NoC a macro measurement does not include.",
        "",
        "| " + " | ".join(cols) + " |",
        "|---|" + "---:|" * (len(cols) - 1),
    ]
    for r in table:
        cells = [r["design"]] + [f"{r[c]:.4g}" for c in cols[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    name, tops = PUBLISHED
    lines += [
        f"| {name} | | | | | | | | {2 / tops * 1e3:.3g} | | {tops} |",
        "",
    ]
    text = "\n".join(lines)
    (ROOT / "results" / "sram_4b_breakdown.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
