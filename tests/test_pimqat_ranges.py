"""PIM-QAT with trainable ADC ranges: the LSQ step gradient, ``adc.range: trained`` in the oracle,
checkpoints that carry the ranges, and the accuracy ``pimsim train`` reports agreeing with
``pimsim accuracy`` on the saved checkpoint."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from click.testing import CliRunner  # noqa: E402

from pimsim.cli import main  # noqa: E402
from pimsim.errors import SpecError  # noqa: E402
from pimsim.oracle import convert  # noqa: E402
from pimsim.oracle._convert import _pim_layers  # noqa: E402
from pimsim.spec import preset_overrides  # noqa: E402
from pimsim.training import (  # noqa: E402
    attach_pim,
    detach_pim,
    load_checkpoint,
    load_mnist,
    train_model,
)
from pimsim.training._pimqat import SCALE_WARMUP_STEPS, pimqat_layers  # noqa: E402
from pimsim.training._train import FINETUNE_EPOCHS, FINETUNE_LR, build_model  # noqa: E402
from tests.test_pim_training import SPEC, _quiet  # noqa: E402,F401 (_quiet: autouse fixture)
from tests.test_pim_training import arch as pim_arch  # noqa: E402
from tests.test_pim_training import sparse_layer as pim_sparse_layer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def arch(preset="differential", bits=4, rows=128, policy="learned", **extra):
    return pim_arch(preset, bits, rows, policy, **extra)


def sparse_layer(seed=0):
    """A quantized 256 -> 64 linear layer and 256 inputs, 30% non-zero."""
    return pim_sparse_layer(seed, rows=256, density=0.3)


def test_step_gradient_is_lsq_over_every_partial_sum():
    """Differential (one slice, one input cycle, two row groups of 128 rows, 4-bit bipolar
    ADC): the gradient of <out, r> w.r.t. the log-step equals step x eta x the LSQ gradient
    scale x sum r (sum over row groups of q - p / step in range, the clip bound outside),
    computed here from the integers directly."""
    model, x = sparse_layer()
    pim_model = attach_pim(model, arch(), (1, 256))
    layer = pimqat_layers(pim_model)["0"]
    pim_model.train()
    pim_model(x)  # first batch: the ranges start from the learned calibration
    assert layer.adc_range.numel() == 1 and layer.adc_log_step.requires_grad
    with torch.no_grad():  # move the step off the calibrated one so that some sums clip
        layer.adc_log_step.sub_(0.7)
    pim_model.zero_grad()
    out = pim_model(x)
    r = torch.randn(out.shape, generator=torch.Generator().manual_seed(3))
    (out * r).sum().backward()
    got = float(layer.adc_log_step.grad)

    pim = layer.engine.pim
    plan = pim.plan
    step = plan.step
    eta = layer.engine.last[1]
    lo, hi = plan.code_range
    x_int = torch.round(x / pim.input_scale).clamp(0, 255).to(torch.float64)
    w_int = pim.weight_int.to(torch.float64).t()  # [in, out]
    dy = torch.zeros(x.shape[0], 64, dtype=torch.float64)
    groups = 0
    for rows in plan.row_index.tolist():
        rows = [i for i in rows if i < plan.k_rows]
        p = x_int[:, rows] @ w_int[rows]
        u = p / step
        dy += torch.where(u < lo, lo, torch.where(u > hi, hi, torch.round(u) - u))
        groups += 1
    assert groups == 2
    dy *= pim.weight_scale.to(torch.float64) * float(pim.input_scale)
    grad_scale = 1.0 / math.sqrt(groups * 64 * hi)
    want = step * eta * grad_scale * float((dy * r.to(torch.float64)).sum())
    assert got == pytest.approx(want, rel=2e-3)
    # the value converts with the current (moved) step: exactly the oracle at that range
    assert float(layer.adc_range[0]) == pytest.approx(step * hi)


def test_trained_policy_needs_trained_ranges():
    """adc.range: trained on a model without trained ranges is refused, naming the layers."""
    model, _ = sparse_layer()
    with pytest.raises(SpecError, match="trained"):
        convert(model, arch(policy="trained"), (1, 256))


def test_trained_ranges_survive_detach_checkpoint_and_convert(tmp_path):
    """detach_pim stores the ranges the last step used; convert under 'trained' builds its
    plans from them (no calibration batches needed); a state dict without them still loads."""
    model, x = sparse_layer()
    pim_model = attach_pim(model, arch(), (1, 256))
    pim_model.train()
    pim_model(x)
    layer = pimqat_layers(pim_model)["0"]
    with torch.no_grad():
        layer.adc_log_step.sub_(0.3)
    plain = detach_pim(pim_model)
    stored = plain[0].adc_range
    assert "0.adc_log_step" not in plain.state_dict()
    assert float(stored[0]) == pytest.approx(float(layer.adc_log_step.exp()) * 7)
    oracle = convert(plain, arch(policy="trained"), (1, 256))
    pim = _pim_layers(oracle)["0"]
    assert pim.plan.adc_full_scale == float(stored[0])
    # the state dict round trip (weights_only) keeps them; an old one without them loads
    torch.save(plain.state_dict(), tmp_path / "s.pt")
    fresh, _ = sparse_layer(1)
    fresh.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    assert torch.equal(fresh[0].adc_range, stored)
    old = {k: v for k, v in plain.state_dict().items() if not k.endswith("adc_range")}
    fresh.load_state_dict(old)
    assert fresh[0].adc_range.numel() == 0


def test_pimqat_loss_falls_with_trained_ranges():
    """The MLP from scratch through a 4-bit ADC with 64 rows per read (native: offset weights,
    where a full-scale ADC leaves nothing) at batch 64: the PIM training loss falls every
    epoch, and the ranges moved from their calibrated start."""
    x, y = load_mnist(split="train")
    data = (x[:512], y[:512])
    model = build_model("mlp_mnist", "pimqat", seed=0)
    spec = arch("native", rows=64)
    trained, metrics = train_model(
        model, data, method="pimqat", arch=spec, epochs=3, batch_size=64, lr=1e-3,
        progress=False,
    )
    losses = metrics["epoch_losses"]
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False)), losses
    ranges = [m.adc_range for m in trained.modules() if hasattr(m, "adc_range")]
    assert ranges and all(r.numel() == 1 and float(r[0]) > 0 for r in ranges)


def test_cli_train_report_matches_accuracy_on_the_checkpoint(tmp_path):
    """pimsim train --method pimqat reports the test accuracy of the deployed model with its
    trained ranges; pimsim accuracy on the saved checkpoint with adc.range=trained gives the
    same number. The .pt holds the ranges (read with weights_only=True)."""
    ckpt = tmp_path / "mlp.pt"
    sets = ["--set", "adc.bits=4", "--set", "array.rows_per_adc_read=128"]
    for key, value in preset_overrides("differential", 8, 8).items():
        sets += ["--set", f"{key}={value}"]
    result = CliRunner().invoke(main, [
        "train", str(SPEC), "mlp_mnist", "--method", "pimqat", "--train-samples", "128",
        "--epochs", "1", "--checkpoint", str(ckpt), *sets,
    ])
    assert result.exit_code == 0, result.output
    reported = json.loads(ckpt.with_suffix(".json").read_text())["accuracy"]
    state = torch.load(ckpt, weights_only=True)
    assert all(state[f"{n}.adc_range"].numel() == 1 for n in ("fc1", "fc2", "fc3"))
    assert "adc.range=trained" in result.output
    out = CliRunner().invoke(main, [
        "accuracy", str(SPEC), "mlp_mnist", "--checkpoint", str(ckpt), "--format", "json",
        *sets, "--set", "adc.range=trained",
    ])
    assert out.exit_code == 0, out.output
    payload = json.loads(out.output)
    assert payload["adc_range"] == "trained"
    assert payload["mean"] == pytest.approx(reported, abs=1.5e-3)  # at most 3 of 2,000 images
    model, _ = load_checkpoint(ckpt)
    assert float(model.fc1.adc_range[0]) == float(state["fc1.adc_range"][0])


def test_init_help_says_what_fine_tuning_runs():
    """The --init help text names the fine-tuning recipe the code runs."""
    result = CliRunner().invoke(main, ["train", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert f"{FINETUNE_EPOCHS} epochs" in text and f"{FINETUNE_LR:g}" in text


def test_ranges_per_column_train_and_deploy():
    """adc.range_granularity: column: one trained step per column, each with a gradient; the
    oracle under 'trained' computes exactly what the PIM-QAT layer computes in eval."""
    model, x = sparse_layer()
    spec = arch(**{"adc.range_granularity": "column"})
    pim_model = attach_pim(model, spec, (1, 256))
    layer = pimqat_layers(pim_model)["0"]
    assert layer.adc_log_step.numel() == 64
    pim_model.train()
    pim_model(x)  # calibrates
    pim_model.zero_grad()
    pim_model(x).square().sum().backward()
    assert int((layer.adc_log_step.grad != 0).sum()) > 32
    with torch.no_grad():
        layer.adc_log_step.sub_(0.01 * layer.adc_log_step.grad.sign())
    pim_model.eval()
    with torch.no_grad():
        want = pim_model(x)
    plain = detach_pim(pim_model)
    assert plain[0].adc_range.numel() == 64
    oracle = convert(plain, arch(policy="trained", **{"adc.range_granularity": "column"}), (1, 256))
    with torch.no_grad():
        got = oracle(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(SpecError, match="granularity"):
        convert(plain, arch(policy="trained"), (1, 256))


def test_gradient_passes_only_through_partial_sums_the_adc_did_not_clip():
    """Straight-through gradient of every partial-sum quantizer: differential (one conversion
    per row group and column), two row groups, the step moved so that part of the partial sums
    clip. The weight gradient of <out, r> equals that of sum_g m_g (x_q[g] @ w_q[g]) with m_g = 1
    where the group's integer partial sum is within the ADC's range and 0 where it clipped,
    computed here from the integers; it differs from the plain digital gradient."""
    model, x = sparse_layer()
    pim_model = attach_pim(model, arch(), (1, 256))
    layer = pimqat_layers(pim_model)["0"]
    pim_model.train()
    pim_model(x)  # the ranges start from the learned calibration
    with torch.no_grad():
        layer.adc_log_step.sub_(0.7)
    pim_model.zero_grad()
    out = pim_model(x)
    r = torch.randn(out.shape, generator=torch.Generator().manual_seed(5))
    (out * r).sum().backward()
    got = layer.weight.grad.clone()
    eta = layer.engine.last[1]
    slope = 1.0  # forward and backward rescaling together: the digital backward map

    pim = layer.engine.pim
    plan = pim.plan
    lo, hi = plan.code_range
    scale = float(pim.input_scale)
    x_int = torch.round(x / scale).clamp(0, 255).to(torch.float64)
    w_int = pim.weight_int.to(torch.float64).t()  # [in, out]
    w = layer.weight.detach().clone().requires_grad_(True)
    from pimsim.training._qat import fake_quantize_weight

    w_q = fake_quantize_weight(w, layer.weight_bits).t()  # [in, out], STE to w
    x_q = (x_int * scale).to(torch.float32)
    want_out = 0.0
    clipped = total = 0
    for rows in plan.row_index.tolist():
        rows = [i for i in rows if i < plan.k_rows]
        u = (x_int[:, rows] @ w_int[rows]) / plan.step
        inside = ((u >= lo) & (u <= hi)).to(torch.float32)
        clipped += int((inside == 0).sum())
        total += inside.numel()
        want_out = want_out + (x_q[:, rows] @ w_q[rows]) * inside
    assert 0 < clipped < total  # the test sees both cases
    (want_out * r * slope).sum().backward()
    want = w.grad
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-6 * float(want.abs().max()))
    # the plain digital gradient (no clipping) is another one
    w2 = layer.weight.detach().clone().requires_grad_(True)
    ((x_q @ fake_quantize_weight(w2, layer.weight_bits).t()) * r).sum().backward()
    assert not torch.allclose(got, w2.grad, rtol=1e-2)
    assert eta > 0


def test_input_scales_hold_from_a_trained_model_and_follow_from_scratch():
    """From a QAT model the input scale (the DAC's range, for which the ADC ranges are trained)
    holds while PIM-QAT trains, whatever the batches; from scratch (no scale yet) it follows the
    batches as QAT's moving average does, for its first SCALE_WARMUP_STEPS batches."""
    model, x = sparse_layer()
    before = float(model[0].input_scale)
    pim_model = attach_pim(model, arch(), (1, 256))
    pim_model.train()
    pim_model(x * 3.0)
    assert float(pimqat_layers(pim_model)["0"].input_scale) == before

    fresh, _ = sparse_layer()
    with torch.no_grad():
        fresh[0].input_scale.zero_()
    pim_fresh = attach_pim(fresh, arch(), (1, 256))
    layer = pimqat_layers(pim_fresh)["0"]
    pim_fresh.train()
    pim_fresh(x)
    first = float(layer.input_scale)
    assert first == pytest.approx(before, rel=1e-6)  # the first batch's own scale
    pim_fresh(x * 3.0)
    assert float(layer.input_scale) == pytest.approx(first * (1 + 2 * 0.1), rel=1e-6)
    # ... for its first SCALE_WARMUP_STEPS training batches, then it holds
    layer.engine.tracked = SCALE_WARMUP_STEPS
    held = float(layer.input_scale)
    pim_fresh(x * 9.0)
    assert float(layer.input_scale) == held


def test_self_tuning_re_ranges_the_adcs_it_corrects():
    """With a data-driven ADC range, self-tuning sets each layer's ranges again on its inputs as
    the layers before it corrected them. On a chip whose between-chip gain g is 1.5 sigma off,
    the second layer's partial sums are g^2 the nominal ones before tuning (its inputs carry the
    first layer's gain, its cells their own) and g after (the inputs corrected): the range
    follows them, and the tuned chip's outputs match the nominal chip's."""
    import numpy as np

    from pimsim.oracle._convert import set_chip
    from pimsim.oracle._nonideal import draw_chip
    from pimsim.training import chip_tuning, quantize_model
    from pimsim.training._pimqat import training_arch

    gen = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    model = quantize_model(net, input_shape=(1, 64))
    x = torch.rand(256, 64, generator=gen)
    model.train()
    model(x)
    model.eval()
    spec = pim_arch("native", 8, 64, "learned", **{"cell.variation.between_chip": 0.2})
    names = ["0", "2"]
    seed = next(s for s in range(200) if abs(draw_chip(spec, names, s).e_chip) > 0.3)
    gain = float(np.exp(draw_chip(spec, names, seed).e_chip))
    nominal = convert(model, training_arch(spec), (1, 64), calibration=[x])
    pim = convert(model, spec, (1, 64), calibration=[x])
    set_chip(pim, spec, seed, [x])
    before = _pim_layers(pim)["2"].plan.adc_full_scale
    want = _pim_layers(nominal)["2"].plan.adc_full_scale
    assert before / want == pytest.approx(gain**2, rel=0.1)  # the uncorrected chip's
    chip_tuning(model, spec, (1, 64), [x], self_tuning=True)(pim)
    assert _pim_layers(pim)["2"].plan.adc_full_scale / want == pytest.approx(gain, rel=0.1)
    with torch.no_grad():
        ref, out = nominal(x), pim(x)
    assert float((out - ref).norm() / ref.norm()) < 0.05


def test_bn_calibration_re_ranges_the_adcs_after_it():
    """BN calibration with a data-driven range: after the BatchNorm statistics move, a pass
    sets every layer's ranges again on the corrected activations (none is left pending), and
    the layer after the BatchNorm gets the range that calibrating that chip afresh gives."""
    from pimsim.oracle._convert import _calibrate_adc_ranges
    from pimsim.training import chip_tuning, quantize_model

    gen = torch.Generator().manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.BatchNorm1d(64),
                              torch.nn.ReLU(), torch.nn.Linear(64, 10))
    model = quantize_model(net, input_shape=(1, 64))
    x = torch.rand(256, 64, generator=gen)
    model.train()
    model(x)
    model.eval()
    with torch.no_grad():  # statistics that BN calibration will change
        net_bn = model[1]
        net_bn.running_mean.add_(0.5)
        net_bn.running_var.mul_(4.0)
    spec = pim_arch("native", 8, 64, "learned")
    pim = convert(model, spec, (1, 64), calibration=[x])
    chip_tuning(model, spec, (1, 64), [x], bn_calibration=True)(pim)
    layers = _pim_layers(pim)
    assert all(layer.calibrating is None for layer in layers.values())
    tuned = layers["3"].plan.adc_full_scale
    _calibrate_adc_ranges(pim, [x], "learned", spec.adc.range_percentile)
    assert layers["3"].plan.adc_full_scale == pytest.approx(tuned, rel=1e-6)
