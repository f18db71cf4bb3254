"""PIM-aware training: PIM-QAT layers (value = the oracle, rescaling), training arch, BN
calibration, self-tuning, variability-aware chips, training any network, logs and resuming."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import pimsim  # noqa: E402
import pimsim.oracle  # noqa: E402
from pimsim.spec import preset_overrides  # noqa: E402
from pimsim.training import (  # noqa: E402
    PimQatOptions,
    attach_pim,
    bn_calibrate,
    calibrate_output_scales,
    chip_tuning,
    detach_pim,
    draw_training_chip,
    layer_statistics,
    quantize_model,
    self_tune,
    train,
    train_model,
    training_arch,
    untune,
)
from pimsim.training._pimqat import pimqat_layers  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "arch_specs" / "sram_charge_domain_28nm.yaml"
def arch(preset="differential", bits=6, rows=128, policy="full_scale", **extra):
    """The SRAM macro with ``preset``'s knobs explicit. Full scale by default: these tests hold
    PIM-QAT's fixed-range forward against the oracle (trained ranges: test_pimqat_ranges.py)."""
    return pimsim.load_arch(
        SPEC,
        {
            **preset_overrides(preset, 8, 8),
            "adc.bits": bits,
            "array.rows_per_adc_read": rows,
            "adc.range": policy,
            **extra,
        },
    )


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def sparse_layer(seed=0, rows=512, density=0.2):
    """A quantized 256 -> 64 linear layer (no bias) and ``rows`` sparse non-negative random
    inputs (a fraction ``density`` non-zero)."""
    gen = torch.Generator().manual_seed(seed)
    linear = nn.Linear(256, 64, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(64, 256, generator=gen) * 0.05)
    x = torch.rand(rows, 256, generator=gen) * (torch.rand(rows, 256, generator=gen) < density)
    model = quantize_model(nn.Sequential(linear), input_shape=(1, 256))
    model.train()
    model(x)  # calibrates the input scale
    return model, x


def magnitudes(model, x):
    """(rms of the output, norm of the weight gradient for one fixed upstream error r, i.e. of
    the loss <out, r>: the layer's backward map, independent of its forward value)."""
    model.train()
    model.zero_grad()
    out = model(x)
    r = torch.randn(out.shape, generator=torch.Generator().manual_seed(9))
    (out * r).sum().backward()
    return float(out.detach().square().mean().sqrt()), float(model[0].weight.grad.norm())


# The layer's eta = sqrt(<y_d,y_d> / <y_p,y_p>) is 1.79 (differential, 5-bit ADC: most partial
# sums fall in the dead zone) and 0.43 (bit-serial, 3-bit ADC: quantization noise dominates).
@pytest.mark.parametrize("preset, bits", [("differential", 5), ("bit_serial", 3)])
def test_rescaling_matches_digital_magnitudes(preset, bits):
    """With forward and backward rescaling, the PIM-QAT layer's output and gradient magnitudes
    match the digital QAT layer's (to 1e-6: eta is measured on this batch); without forward
    rescaling the output does not, and with forward rescaling alone the gradient does not (both
    off by more than 40%)."""
    digital, x = sparse_layer()
    out_d, grad_d = magnitudes(digital, x)
    spec = arch(preset, bits)
    ratios = {}
    for fwd, bwd in ((True, True), (False, False), (True, False)):
        pim = attach_pim(digital, spec, (1, 256), PimQatOptions(fwd, bwd))
        out_p, grad_p = magnitudes(pim, x)
        ratios[(fwd, bwd)] = (out_p / out_d, grad_p / grad_d)
    eta = pimqat_layers(pim)["0"].engine.last[1]
    assert abs(eta - 1) > 0.4  # the case is one where rescaling matters
    out_ok, grad_ok = ratios[(True, True)]
    assert out_ok == pytest.approx(1, abs=1e-6)  # eta matches the magnitude exactly
    assert grad_ok == pytest.approx(1, abs=1e-6)
    assert abs(ratios[(False, False)][0] - 1) > 0.4
    assert abs(ratios[(True, False)][1] - 1) > 0.4


ENCODINGS = [
    ("native", {}),
    ("differential", {}),
    ("differential", {"decomposition.signed_encoding": "differential_digital"}),
    ("bit_serial", {}),
]


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("preset, extra", ENCODINGS)
def test_pimqat_value_is_the_oracle(preset, extra, signed):
    """In eval, a PIM-QAT layer returns what pimsim.oracle.convert computes, times its output
    scale (and convert folds a trained output scale into the digital epilogue), for every
    signed-weight encoding and for unsigned and signed inputs."""
    model, x = sparse_layer(1)
    if signed:
        model = quantize_model(model, input_shape=(1, 256), input_nonnegative=False)
        x = x - 0.3
        model.train()
        model(x)
        assert model[0].signed_input
    spec = arch(preset, 5, **extra)
    pim = attach_pim(model, spec, (1, 256))
    pim[0].output_scale.fill_(1.0)
    pim.eval()
    deployed = pimsim.oracle.convert(detach_pim(pim), spec, (1, 256))
    with torch.no_grad():
        assert torch.equal(pim(x), deployed(x))
        pim[0].output_scale.fill_(1.5)
        scaled = pimsim.oracle.convert(detach_pim(pim), spec, (1, 256))
        torch.testing.assert_close(pim(x), scaled(x), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(scaled(x), 1.5 * deployed(x), rtol=1e-6, atol=1e-6)


def test_calibrated_output_scale_and_detach():
    model, x = sparse_layer(2)
    pim = attach_pim(model, arch("differential", 5), (1, 256))
    gains = calibrate_output_scales(pim, [x])
    with torch.no_grad():
        pim.eval()
        out = pim(x)
        ref = detach_pim(pim)(x)  # the digital QAT forward of the same weights
    assert set(gains) == {"0"}
    assert float(out.square().sum()) == pytest.approx(float(ref.square().sum()), rel=1e-6)
    plain = detach_pim(pim)
    assert not pimqat_layers(plain) and float(plain[0].output_scale) != 1.0


def test_training_arch():
    spec = arch(
        "differential",
        6,
        **{
            "cell.variation.within_chip": 0.1,
            "cell.variation.between_chip": 0.2,
            "cell.variation.read_noise": 0.01,
            "adc.nonideal.thermal_noise_lsb": 0.5,
        },
    )
    ideal = training_arch(spec)
    assert ideal.adc.bits == 6 and ideal.adc.nonideal.thermal_noise_lsb == 0
    assert ideal.cell.variation.within_chip == 0 and ideal.cell.variation.read_noise == 0
    aware = training_arch(
        spec, PimQatOptions(adjusted_precision=1, noise_injection=True, variability_aware=True)
    )
    assert aware.adc.bits == 5 and aware.adc.nonideal.thermal_noise_lsb == 0.5
    assert (aware.cell.variation.within_chip, aware.cell.variation.between_chip) == (0.1, 0.2)
    assert aware.cell.variation.read_noise == 0
    with pytest.raises(ValueError, match="leaves"):
        training_arch(spec, PimQatOptions(adjusted_precision=6))


def test_variability_aware_draws_a_new_chip_each_step():
    import numpy as np

    model, x = sparse_layer(3)
    spec = arch("differential", 8, **{"cell.variation.within_chip": 0.1})
    pim = attach_pim(model, spec, (1, 256), PimQatOptions(variability_aware=True))
    rng = np.random.default_rng(0)
    pim.eval()
    outs = []
    with torch.no_grad():
        for _ in range(2):
            draw_training_chip(pim, rng)
            outs.append(pim(x))
        same = pim(x)
    assert not torch.equal(outs[0], outs[1])  # two chips
    assert torch.equal(outs[1], same)  # the same chip computes the same


# --------------------------------------------------------------------------- deployment tuning


def _mlp(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    return quantize_model(model, input_shape=(1, 1, 8, 8))


def test_self_tuning_changes_only_activation_statistics():
    model = _mlp()
    x = torch.rand(96, 1, 8, 8)
    model.train()
    model(x)
    spec = arch("native", 8, **{"cell.variation.between_chip": 0.3,
                               "cell.variation.within_chip": 0.1})
    nominal = pimsim.oracle.convert(model, training_arch(spec), (1, 1, 8, 8))
    reference = layer_statistics(nominal, [x])
    pim = pimsim.oracle.convert(model, spec, (1, 1, 8, 8), seed=4)
    layers = {m.name: m for m in pim.modules() if isinstance(m, pimsim.oracle.PimLinear)}
    frozen = {
        n: (m.w_layout.clone(), m.noise.g_layout.clone(), m.weight_int.clone(), m.plan,
            m.input_scale.clone())
        for n, m in layers.items()
    }
    before = {n: (m.weight_scale.clone(), m.bias.detach().clone()) for n, m in layers.items()}
    with torch.no_grad():
        untuned_out = pim(x)
    self_tune(pim, [x], reference)
    for n, m in layers.items():
        w, g, wi, plan, s = frozen[n]
        assert torch.equal(m.w_layout, w) and torch.equal(m.noise.g_layout, g)
        assert torch.equal(m.weight_int, wi) and m.plan is plan and torch.equal(m.input_scale, s)
        assert not torch.equal(m.weight_scale, before[n][0])
    tuned = layer_statistics(pim, [x])
    for name in layers:  # the chip's statistics now are the nominal chip's
        torch.testing.assert_close(tuned[name][0], reference[name][0], rtol=1e-3, atol=1e-4)
        torch.testing.assert_close(tuned[name][1], reference[name][1], rtol=1e-3, atol=1e-4)
    untune(pim)
    with torch.no_grad():
        assert torch.equal(pim(x), untuned_out)
    for n, m in layers.items():
        assert torch.equal(m.weight_scale, before[n][0]) and torch.equal(m.bias, before[n][1])


def _bn_lenet(seed: int):
    """A quantized LeNet-5 with BatchNorm whose statistics saw one random batch (returned)."""
    torch.manual_seed(seed)
    model = quantize_model(pimsim.zoo_model("lenet5_bn_mnist"), input_shape=(1, 1, 28, 28))
    x = torch.rand(32, 1, 28, 28)
    model.train()
    model(x)
    return model, x


def test_bn_calibration_reestimates_statistics_on_the_chip():
    model, x = _bn_lenet(0)
    spec = arch("differential", 5, **{"cell.variation.within_chip": 0.2})
    pim = pimsim.oracle.convert(model, spec, (1, 1, 28, 28))
    seen = []
    hook = pim.bn1.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    old = pim.bn1.running_mean.clone()
    assert bn_calibrate(pim, [x]) == 2
    hook.remove()
    expected = seen[0].mean(dim=(0, 2, 3))
    assert not torch.allclose(old, pim.bn1.running_mean)
    torch.testing.assert_close(pim.bn1.running_mean, expected, rtol=1e-5, atol=1e-6)
    assert not pim.bn1.training and pim.bn1.momentum == 0.1
    assert bn_calibrate(pimsim.oracle.convert(_mlp(), spec, (1, 1, 8, 8)), [x[:, :, :8, :8]]) == 0


def test_accuracy_tunes_every_chip_and_self_tuning_restores_statistics():
    model = _mlp(1)
    x = torch.rand(64, 1, 8, 8)
    model.train()
    model(x)
    spec = arch("native", 8, **{"cell.variation.within_chip": 0.2})
    assert chip_tuning(model, spec, (1, 1, 8, 8), [x]) is None
    tune = chip_tuning(model, spec, (1, 1, 8, 8), [x], self_tuning=True)
    seen = []

    def counted(pim):
        tune(pim)
        seen.append(layer_statistics(pim, [x])["3"])

    batches = [(x, torch.zeros(64, dtype=torch.int64))]
    pimsim.oracle.accuracy(model, spec, batches, n_chips=3, tune=counted)
    assert len(seen) == 3
    nominal = layer_statistics(pimsim.oracle.convert(model, training_arch(spec), (1, 1, 8, 8)), [x])
    for mean, std in seen:  # every chip's last layer now has the nominal chip's statistics
        torch.testing.assert_close(mean, nominal["3"][0], rtol=1e-3, atol=1e-4)
        torch.testing.assert_close(std, nominal["3"][1], rtol=1e-3, atol=1e-4)


# --------------------------------------------------------------------------- training


def test_pimqat_training_reduces_loss_log_and_resume(tmp_path):
    spec = arch("differential", 6)
    # the recipe's rate (PIM-QAT from scratch takes a quarter of it by default: slower to start)
    kwargs = dict(arch=spec, train_samples=256, batch_size=32, seed=3, lr=1e-3, progress=False)
    ckpt = tmp_path / "run.pt"
    log = tmp_path / "run.csv"
    model, metrics = train("mlp_mnist", "pimqat", epochs=2, log_csv=log, checkpoint=ckpt, **kwargs)
    losses = metrics["epoch_losses"]
    assert losses[1] < losses[0]
    rows = list(csv.DictReader(log.open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2] and float(rows[1]["test_accuracy"]) > 0.2
    assert ckpt.with_suffix(".resume.pt").is_file()
    assert set(metrics["pimqat"]["gains"]) == {"fc1", "fc2", "fc3"}
    # resuming at epoch 2 of 3 continues the same run: the logged epochs are kept
    again, more = train("mlp_mnist", "pimqat", epochs=3, log_csv=log, checkpoint=ckpt, **kwargs)
    assert [r["train_loss"] for r in more["log"][:2]] == losses
    assert len(more["log"]) == 3 and len(list(csv.DictReader(log.open()))) == 3


def test_convert_accepts_a_bare_layer():
    linear = nn.Linear(300, 7)
    spec = arch("bit_serial", 8)
    x = torch.rand(5, 300)
    bare = pimsim.oracle.convert(linear, spec, (1, 300), calibration=[x])
    held = pimsim.oracle.convert(nn.Sequential(linear), spec, (1, 300), calibration=[x])
    with torch.no_grad():
        assert torch.equal(bare(x), held(x))


def _fake_cifar(folder: Path, n=8):
    import pickle

    import numpy as np

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, n)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=3))
    return folder


@pytest.mark.parametrize("method", ["qat", "pimqat"])
def test_resnet20_trains_on_cifar_batches_from_python(tmp_path, method):
    data = _fake_cifar(tmp_path / "cifar-10-batches-py")
    model, metrics = train(
        "resnet20_cifar10",
        method,
        arch=arch("native", 8) if method == "pimqat" else None,
        data_root=data,
        epochs=1,
        batch_size=8,
        train_samples=16,
        progress=False,
    )
    assert len(metrics["epoch_losses"]) == 1 and 0 <= metrics["test_accuracy"] <= 1
    assert metrics["split"].startswith("cifar10")


def test_cli_train_resnet20_pimqat_and_self_tuned_accuracy(tmp_path):
    from tests._cli import run_cli

    data = _fake_cifar(tmp_path / "cifar-10-batches-py")
    ckpt = tmp_path / "r20.pt"
    args = ["train", str(SPEC), "resnet20_cifar10", "--method", "pimqat", "--data", str(data),
            "--epochs", "1", "--batch-size", "8", "--checkpoint", str(ckpt),
            "--set", "decomposition.scheme=native", "--set", "dac.bits=8", "--set",
            "cell.bits=8", "--set", "decomposition.signed_encoding=offset"]
    run = run_cli(*args, timeout=600)
    assert run.returncode == 0, run.stderr
    meta = json.loads(ckpt.with_suffix(".json").read_text())
    assert meta["method"] == "pimqat" and meta["pimqat"]["forward_rescale"] is True
    assert len(list(csv.DictReader(ckpt.with_suffix(".csv").open()))) == 1
    acc = run_cli("accuracy", str(SPEC), "resnet20_cifar10", "--checkpoint", str(ckpt), "--data",
                  str(data), "--self-tune", "8", "--chips", "2", "--format", "json", "--set",
                  "cell.variation.between_chip=0.2", timeout=600)
    assert acc.returncode == 0, acc.stderr
    out = json.loads(acc.stdout)
    assert out["self_tune_images"] == 8 and len(out["per_chip"]) == 2
    bad = run_cli("train", str(SPEC), "lenet5_mnist", "--method", "pimqat", "--init", str(ckpt))
    assert bad.returncode == 2 and "holds 'resnet20_cifar10'" in bad.stderr


def test_adjusted_precision_and_noise_injection_train_on_their_arch():
    """Training computes on the adjusted, noisy arch; without those options on the deployed
    precision with an ideal ADC."""
    model, x = sparse_layer(5)
    spec = arch("bit_serial", 5, **{"adc.nonideal.thermal_noise_lsb": 0.5})
    options = PimQatOptions(adjusted_precision=1, noise_injection=True)
    pim = attach_pim(model, spec, (1, 256), options)
    engine = pimqat_layers(pim)["0"].engine
    assert engine.arch.adc.bits == 4 and engine.stochastic
    pim.eval()
    with torch.no_grad():
        assert not torch.equal(pim(x), pim(x))  # thermal noise is drawn on every read
    quiet = attach_pim(model, spec, (1, 256))
    assert pimqat_layers(quiet)["0"].engine.arch.adc.bits == 5
    assert not pimqat_layers(quiet)["0"].engine.stochastic


class TinyNet(nn.Module):
    """A network from outside the zoo (own forward, functional ReLU and pooling)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.head(x.flatten(1))


def test_any_module_trains_with_pimqat_and_deploys():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(96, 1, 8, 8, generator=gen)
    y = (x[:, 0, :4].mean((1, 2)) > x[:, 0, 4:].mean((1, 2))).long() + (x.mean((1, 2, 3)) > 0.5)
    torch.manual_seed(0)
    model = quantize_model(TinyNet(), input_shape=(1, 1, 8, 8))
    spec = arch("bit_serial", 4)
    trained, metrics = train_model(model, (x, y), (x, y), method="pimqat", arch=spec, epochs=2,
                                   batch_size=16, progress=False)
    assert len(metrics["log"]) == 2 and set(metrics["pimqat"]["gains"]) == {"conv", "head"}
    assert not pimqat_layers(trained)
    deployed = pimsim.oracle.convert(trained, spec, (1, 1, 8, 8))
    with torch.no_grad():
        acc = float((deployed(x).argmax(1) == y).float().mean())
    assert acc == pytest.approx(metrics["test_accuracy"])  # the reported accuracy is the chip's


def test_bn_calibration_after_training_writes_the_chips_statistics():
    from pimsim.training import calibrate_bn_for_chip

    model, x = _bn_lenet(1)
    model.eval()
    spec = arch("differential", 5, **{"adc.nonideal.inl_lsb": 1.0, "adc.nonideal.dnl_lsb": 0.3})
    reference = pimsim.oracle.convert(model, spec, (1, 1, 28, 28), seed=0)
    bn_calibrate(reference, [x])
    before = model.bn2.running_var.clone()
    assert calibrate_bn_for_chip(model, spec, (1, 1, 28, 28), [x]) == 2
    assert not torch.equal(model.bn2.running_var, before)
    for name in ("bn1", "bn2"):
        got, want = getattr(model, name), getattr(reference, name)
        assert torch.equal(got.running_mean, want.running_mean)
        assert torch.equal(got.running_var, want.running_var)


def test_all_zero_input_gives_the_bias():
    linear = nn.Linear(16, 4)
    model = quantize_model(nn.Sequential(linear), input_shape=(1, 16))
    pim = attach_pim(model, arch("bit_serial", 6), (1, 16))
    pim.train()
    out = pim(torch.zeros(3, 16))
    assert torch.equal(out, linear.bias.detach().expand(3, 4))
