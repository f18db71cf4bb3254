"""ADC ranges set from data (policies, granularities), signed inputs decided from data, what a
programmable range costs, and the command line's calibration images."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import pimsim
from pimsim.cli import main
from pimsim.oracle import accuracy, convert
from pimsim.oracle._convert import _pim_layers

ROOT = Path(__file__).resolve().parents[1]
BIT_SERIAL = {
    "decomposition.scheme": "bit_serial",
    "decomposition.signed_inputs": "unsigned",
    "adc.bits": 3,
    "array.rows_per_adc_read": 16,
}


def _reference(layer, x_int: torch.Tensor) -> torch.Tensor:
    """The recombined column values of a bit-serial layer (unsigned inputs, two's complement
    weights), one ADC conversion at a time in loops: partial sum of a row group, cycle, slice and
    column; divided by its group's step, rounded half to even, clipped; times the step; weighted
    by the shift-and-add weights of its cycle and slice."""
    plan = layer.plan
    w = layer.weight_int.t().to(torch.int64)  # [K, N]
    x = x_int.to(torch.int64)
    bits, top = plan.weight_bits, plan.code_range[1]
    steps = plan.adc_steps.expand(
        plan.matrices, 1, plan.cycles, 1, plan.polarities, plan.slices, plan.n_cols
    )
    out = torch.zeros(x.shape[0], plan.n_cols, dtype=torch.float64)
    rows = [[r for r in group if r < plan.k_rows] for group in plan.row_index.tolist()]
    for c in range(plan.cycles):
        xb = (x >> c) & 1
        for s in range(plan.slices):
            wb = (torch.remainder(w, 2**bits) >> s) & 1
            s_weight = -(2.0 ** (bits - 1)) if s == plan.slices - 1 else 2.0**s
            for n in range(plan.n_cols):
                step = float(steps[0, 0, c, 0, 0, s, n])
                for group in rows:
                    p = (xb[:, group] * wb[group, n]).sum(dim=1).to(torch.float64)
                    code = torch.round(p / step).clamp(0, top)  # torch.round: half to even
                    out[:, n] += code * step * (2.0**c) * s_weight
    return out


@pytest.mark.parametrize("granularity", ["column", "significance", "column_significance"])
def test_grouped_ranges_compute_every_conversion_with_its_own_step(small_path, granularity):
    """With a range per column, per significance or both, each (row group, cycle, slice, column)
    partial sum is converted with its own group's step: the engine equals a loop reference, and
    the groups really differ."""
    torch.manual_seed(0)
    arch = pimsim.load_arch(
        small_path, {**BIT_SERIAL, "adc.range": "learned", "adc.range_granularity": granularity}
    )
    lin = nn.Linear(40, 6)
    cal = [torch.rand(64, 40)]
    pim = convert(lin, arch, (1, 40), calibration=cal)
    layer = next(iter(_pim_layers(pim).values()))
    assert layer.plan.adc_steps is not None
    assert layer.plan.adc_steps.unique().numel() > 1  # not one range in disguise
    x_int, _ = layer.quantize_input(torch.rand(5, 40))
    got = layer.integer_matmul(x_int)[:, 0, :]
    # codes are exact; the sums of code x step differ only in the order of float64 additions
    torch.testing.assert_close(got, _reference(layer, x_int), rtol=1e-12, atol=1e-9)


def test_layer_granularity_is_one_step_for_every_conversion(small_path):
    """With one range per layer the same loop reference holds with one step everywhere."""
    torch.manual_seed(1)
    arch = pimsim.load_arch(small_path, {**BIT_SERIAL, "adc.range": "learned"})
    pim = convert(nn.Linear(40, 6), arch, (1, 40), calibration=[torch.rand(64, 40)])
    layer = next(iter(_pim_layers(pim).values()))
    assert layer.plan.adc_steps is None and layer.plan.step > 1  # a range below full scale
    x_int, _ = layer.quantize_input(torch.rand(5, 40))
    import dataclasses

    shape = (1, 1, layer.plan.cycles, 1, 1, layer.plan.slices, layer.plan.n_cols)
    as_groups = dataclasses.replace(
        layer.plan, adc_steps=torch.full(shape, layer.plan.step, dtype=torch.float64)
    )
    ref_layer = type("L", (), {"plan": as_groups, "weight_int": layer.weight_int})()
    torch.testing.assert_close(
        layer.integer_matmul(x_int)[:, 0, :], _reference(ref_layer, x_int), rtol=1e-12, atol=1e-9
    )


def test_ranges_are_calibrated_layer_by_layer_through_the_calibrated_layers_before(small_path):
    """Sequential calibration: the second layer's range is set on what it receives through the
    first layer's calibrated ADCs (as a chip calibrates), so re-running the calibration on the
    calibrated model gives the same ranges."""
    torch.manual_seed(2)
    arch = pimsim.load_arch(small_path, {**BIT_SERIAL, "adc.range": "calibrated"})
    model = nn.Sequential(nn.Linear(40, 30), nn.ReLU(), nn.Linear(30, 5))
    cal = [torch.rand(64, 40)]
    pim = convert(model, arch, (1, 40), calibration=cal)
    first = {n: layer.plan.adc_full_scale for n, layer in _pim_layers(pim).items()}
    pimsim.oracle.set_chip(pim, arch, 0, cal)
    again = {n: layer.plan.adc_full_scale for n, layer in _pim_layers(pim).items()}
    assert first == again
    assert all(fs < layer.plan.full_scale for fs, layer in zip(
        first.values(), _pim_layers(pim).values(), strict=True))


def test_default_policy_is_data_driven_and_needs_calibration_batches(small_path):
    """The schema's default range is ``learned`` (what chips with a programmable reference do);
    without calibration batches convert() says what to pass."""
    arch = pimsim.load_arch(small_path)
    assert type(arch.adc).model_fields["range"].default == "learned"
    learned = pimsim.with_overrides(arch, {"adc.range": "learned"})
    with pytest.raises(pimsim.SpecError, match="calibration"):
        convert(nn.Linear(8, 4), learned, (1, 8))


def _rel_error(spec: str, extra: dict) -> tuple[float, bool]:
    torch.manual_seed(0)
    lin = nn.Linear(64, 64)
    arch = pimsim.load_arch(
        ROOT / "arch_specs" / f"{spec}.yaml",
        {"decomposition.input_bits": 8, "decomposition.weight_bits": 8, "adc.bits": 8, **extra},
    )
    pim = convert(lin, arch, (1, 64), calibration=[torch.randn(256, 64)])
    x = torch.randn(512, 64)
    with torch.no_grad():
        ref, out = lin(x), pim(x)
    layer = next(iter(_pim_layers(pim).values()))
    return float((out - ref).norm() / ref.norm()), layer.plan.signed_inputs


@pytest.mark.parametrize(
    "spec, extra",
    [
        ("sram_charge_domain_28nm", {}),  # bit-serial, the schema's default range
        ("isaac", {"adc.range": "learned"}),  # the published spec pins full scale
    ],
)
def test_randn_inputs_into_linear_are_signed_and_accurate_with_the_default_range(spec, extra):
    """signed_inputs: auto looks at the calibration data: randn inputs make the layer signed,
    and with the default (data-driven) ADC range the 8b/8b layer with an 8-bit ADC stays within
    2% relative error (the 8-bit quantization of inputs and weights alone gives about 1%; ISAAC
    at full scale gives 20%)."""
    err, signed = _rel_error(spec, extra)
    assert signed
    assert err < 0.02


def test_unsigned_layer_fed_negative_values_warns_instead_of_clipping_silently(small_path):
    """Without calibration data the network input is taken as image pixels; when negative
    values do arrive, the layer says it clipped them."""
    arch = pimsim.load_arch(small_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scales measured on every batch: optimistic
        pim = convert(nn.Linear(16, 4), arch, (1, 16))
    with pytest.warns(RuntimeWarning, match="negative values, clipped"):
        pim(torch.randn(8, 16))


def test_accuracy_reports_signed_layers_and_ranges(small_path):
    """accuracy() names the signed-input layers and each layer's range (fraction of full
    scale)."""
    torch.manual_seed(3)
    arch = pimsim.load_arch(small_path, {"adc.range": "learned", "adc.bits": 4})
    model = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    data = [(torch.randn(32, 16), torch.randint(0, 3, (32,)))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = accuracy(model, arch, data, calibration=[torch.randn(64, 16)])
    assert result.signed_layers == ("0",)  # randn into the first layer; the second after ReLU
    assert set(result.adc_ranges) == {"0", "2"}
    assert all(0 < f <= 1 for f in result.adc_ranges.values())


def test_programmable_range_costs_one_reference_per_adc(small_path):
    """A data-driven range needs a programmable reference in every ADC: its area is in the
    report (one per ADC), and a full-scale design has none."""
    net = pimsim.load_workload("mlp_mnist")
    fixed = pimsim.evaluate(pimsim.load_arch(small_path, {"adc.range": "full_scale"}), net)
    tuned = pimsim.evaluate(pimsim.load_arch(small_path, {"adc.range": "learned"}), net)
    assert "adc_reference" not in fixed.area_breakdown_mm2
    ref = tuned.area_breakdown_mm2["adc_reference"]
    arch = pimsim.load_arch(small_path)
    adcs = math.ceil(arch.array.cols / arch.adc.cols_per_adc)
    from pimsim.cost._components import adc_reference

    arrays = fixed.area_breakdown_mm2["array"] / (
        pimsim.cost._hierarchy.estimate(arch, "array").area_um2 * 1e-6
    )
    assert ref == pytest.approx(round(arrays) * adcs * adc_reference(arch).area_um2 * 1e-6)
    others = {k: v for k, v in tuned.area_breakdown_mm2.items() if k != "adc_reference"}
    assert others == pytest.approx(fixed.area_breakdown_mm2)


def test_cli_accuracy_takes_calibration_images_from_the_training_split():
    """pimsim accuracy --set adc.range=calibrated runs without extra flags: the ranges come from
    256 training images by default (--calibration changes it)."""
    ckpt = ROOT / "results" / "checkpoints" / "lenet5_mnist_qat.pt"
    args = [
        "accuracy", str(ROOT / "arch_specs" / "neurosim_rram_22nm.yaml"), "lenet5_mnist",
        "--checkpoint", str(ckpt), "--limit", "100", "--set", "adc.range=calibrated",
        "--format", "json",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["adc_range"] == "calibrated"
    assert payload["calibration_images"] == 256
    assert payload["mean"] > 0.9
    small = CliRunner().invoke(main, [*args, "--calibration", "16"])
    assert small.exit_code == 0, small.output
    assert json.loads(small.output)["calibration_images"] == 16


def test_sweep_with_a_learned_range_runs_the_oracle_without_extra_fields(tmp_path):
    """A sweep over adc.range with an accuracy objective needs nothing more than its checkpoint:
    the calibration images come from the training split (the budget's ``calibration``)."""
    from pimsim.explore import sweep

    text = f"""\
kind: sweep
name: ranges
arch: {ROOT / "arch_specs" / "neurosim_rram_22nm.yaml"}
workload: lenet5_mnist
set:
  decomposition.scheme: native
  cell.bits: null
  dac.bits: null
  decomposition.signed_encoding: null
  adc.bits: 5
  array.rows_per_adc_read: 128
parameters:
  adc.range: [full_scale, learned]
objectives: [energy_pj:min, accuracy:max]
accuracy:
  checkpoint: {ROOT / "results" / "checkpoints" / "lenet5_mnist_qat.pt"}
  images: 100
  calibration: 64
"""
    path = tmp_path / "ranges.yaml"
    path.write_text(text)
    result = sweep(path, tmp_path / "ranges.sqlite", workers=0, progress=False)
    frame = result.frame().set_index("adc.range")
    assert list(frame["status"]) == ["ok", "ok"]
    assert frame.loc["learned", "accuracy"] > frame.loc["full_scale", "accuracy"] + 0.5


def test_inspect_names_the_signed_input_layers():
    """pimsim inspect --workload says which layers take signed inputs: in MobileNetV2 the convs
    after a linear bottleneck (BN, no ReLU: every expand conv and the head) are signed; in
    LeNet-5 none is."""
    base = ["inspect", str(ROOT / "arch_specs" / "sram_charge_domain_28nm.yaml"), "--workload"]
    mobile = CliRunner().invoke(main, [*base, "mobilenetv2_imagenet", "--format", "json"])
    assert mobile.exit_code == 0, mobile.output
    signed = json.loads(mobile.output)["signed_input_layers"]
    assert "blocks.2.expand_conv" in signed and "stem.conv" not in signed
    assert all(name.endswith("expand_conv") or name == "head.conv" for name in signed)
    assert "head.conv" in signed
    lenet = CliRunner().invoke(main, [*base, "lenet5_mnist"])
    assert lenet.exit_code == 0 and "signed inputs: none" in lenet.output
