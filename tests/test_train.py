"""QAT quantizers and modules, reproducible training on the MNIST split, checkpoints."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import pimsim
from pimsim.training._checkpoint import (
    CheckpointError,
    checkpoint_paths,
    load_checkpoint,
    save_checkpoint,
)
from pimsim.training._data import load_mnist
from pimsim.training._qat import (
    QuantConv2d,
    QuantLinear,
    dequantize_model,
    fake_quantize_input,
    fake_quantize_weight,
    input_signedness,
    quant_layers,
    quantize_model,
)
from pimsim.training._train import evaluate_accuracy, random_shift, train

MNIST_SHAPE = (1, 1, 28, 28)


def seeded(shape, seed=0, scale=1.0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * scale


# --------------------------------------------------------------------------- quantizers


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_fake_quantized_weights_lie_on_the_per_channel_grid(bits):
    w = seeded((6, 3, 3, 3), seed=bits)
    w[2] *= 100  # channels with very different ranges get their own scales
    w[4] = 0  # an all-zero channel stays zero
    fq = fake_quantize_weight(w, bits).detach().numpy()
    # Independent reference in numpy: t = max|w| / (2^(b-1) - 1), np.round is half-to-even.
    qmax = 2 ** (bits - 1) - 1
    wn = w.numpy()
    t = np.abs(wn).reshape(6, -1).max(axis=1) / np.float32(qmax)
    t[t == 0] = 1
    q = np.round(wn / t[:, None, None, None])
    assert np.abs(q).max() == qmax
    np.testing.assert_array_equal(fq, q * t[:, None, None, None])
    assert np.all(fq[4] == 0)


def test_rounding_is_half_to_even():
    w = torch.tensor([[3.0, 0.5, 1.5, 2.5, -0.5, -1.5]])  # 3 bits: qmax 3, so t = 1
    np.testing.assert_array_equal(fake_quantize_weight(w, 3).numpy(), [[3, 0, 2, 2, 0, -2]])


@pytest.mark.parametrize("signed, lo, hi", [(False, 0, 15), (True, -7, 7)])
def test_input_quantization_formula_and_ste(signed, lo, hi):
    s = 0.05
    x = seeded((1000,), seed=1, scale=0.6).requires_grad_(True)
    y = fake_quantize_input(x, s, 4, signed)
    expected = np.clip(np.round(x.detach().numpy() / np.float32(s)), lo, hi) * np.float32(s)
    np.testing.assert_array_equal(y.detach().numpy(), expected)
    y.sum().backward()
    inside = (x.detach() >= lo * s) & (x.detach() <= hi * s)
    assert 0 < int(inside.sum()) < len(x)
    assert torch.equal(x.grad, inside.float())  # identity inside the range, zero outside


def test_weight_ste_gradient_is_identity():
    layer = QuantLinear(5, 3, weight_bits=3, signed_input=True)
    with torch.no_grad():
        layer.input_scale.fill_(0.01)
    layer.eval()
    x = seeded((4, 5), seed=2, scale=0.01)
    layer(x).sum().backward()
    # d/dW sum(x_q W_q^T) with an identity STE is x_q summed over the batch, for every row.
    x_q = fake_quantize_input(x, 0.01, 8, True)
    assert torch.allclose(layer.weight.grad, x_q.sum(0).expand(3, 5))


def test_module_forward_and_input_scale_ema():
    conv = QuantConv2d(2, 3, 3, padding=1, weight_bits=4, input_bits=4, signed_input=False)
    a, b = seeded((2, 2, 5, 5), 3).abs(), seeded((2, 2, 5, 5), 4).abs() * 3
    conv.train()
    conv(a)
    first = float(a.max()) / 15
    assert float(conv.input_scale) == pytest.approx(first, rel=1e-6)
    conv(b)
    ema = 0.9 * first + 0.1 * float(b.max()) / 15
    assert float(conv.input_scale) == pytest.approx(ema, rel=1e-6)
    conv.eval()
    out = conv(b)
    assert float(conv.input_scale) == pytest.approx(ema, rel=1e-6)  # frozen in eval
    s = conv.input_scale
    reference = nn.functional.conv2d(
        fake_quantize_input(b, s, 4, False), fake_quantize_weight(conv.weight, 4), conv.bias, 1, 1
    )
    assert torch.equal(out, reference)
    q, t = conv.integer_weight()
    assert torch.equal(q, q.round()) and q.abs().max() <= 7 and t.shape == (3,)


def test_bad_bit_widths():
    with pytest.raises(ValueError, match="weight_bits"):
        QuantLinear(2, 2, weight_bits=1)
    with pytest.raises(ValueError, match="input_bits"):
        QuantLinear(2, 2, input_bits=1, signed_input=True)


# --------------------------------------------------------------------------- quantize_model


def test_lenet5_inputs_are_all_unsigned():
    model = pimsim.zoo_model("lenet5_mnist")
    quantized = quantize_model(model, 6, 5, input_shape=MNIST_SHAPE)
    layers = quant_layers(quantized)
    assert list(layers) == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert isinstance(layers["conv1"], QuantConv2d) and isinstance(layers["fc1"], QuantLinear)
    assert not any(m.signed_input for m in layers.values())
    assert all((m.weight_bits, m.input_bits) == (6, 5) for m in layers.values())
    assert torch.equal(layers["conv2"].weight, model.conv2.weight)  # copied, not shared
    assert layers["conv2"].weight is not model.conv2.weight
    assert type(model.conv1) is nn.Conv2d  # the original is untouched
    assert input_signedness(model, MNIST_SHAPE, input_nonnegative=False)["conv1"] is True


def test_layers_fed_by_non_relu_are_signed():
    model = nn.Sequential(
        nn.Linear(8, 8),  # network input: unsigned (images)
        nn.Tanh(),
        nn.Linear(8, 8),  # after tanh: signed
        nn.ReLU6(),
        nn.Linear(8, 8),  # after relu6: unsigned
        nn.Linear(8, 4),  # after a linear layer: signed
    )
    signs = input_signedness(model, (1, 8))
    assert signs == {"0": False, "2": True, "4": False, "5": True}
    quantized = quantize_model(model, input_shape=(1, 8))
    assert [m.signed_input for m in quant_layers(quantized).values()] == [False, True, False, True]
    assert quantize_model(quantized, input_shape=(1, 8)) is not quantized  # requantizable
    plain = dequantize_model(quantized)
    assert not quant_layers(plain) and type(plain[2]) is nn.Linear
    assert torch.equal(plain[2].weight, model[2].weight)


# --------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def tiny_runs():
    """Two identical tiny LeNet-5 runs and one tiny QAT run (2 epochs on 512 images)."""
    kwargs = dict(epochs=2, batch_size=16, train_samples=512, seed=7, progress=False)
    state = torch.get_rng_state()
    first = train("lenet5_mnist", **kwargs)
    second = train("lenet5_mnist", **kwargs)
    qat = train("lenet5_mnist", "qat", weight_bits=6, input_bits=6, **kwargs)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG was not used
    return first, second, qat


def test_training_reduces_loss_and_is_deterministic(tiny_runs):
    (model, metrics), (again, _), _ = tiny_runs
    losses = metrics["epoch_losses"]
    assert len(losses) == 2 and losses[1] < losses[0]
    assert metrics["test_accuracy"] > 0.4  # far above chance (0.1) after 2 tiny epochs
    assert metrics["train_samples"] == 512 and "first 8,000" in metrics["split"]
    for (name, p), q in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    other, _ = train("lenet5_mnist", epochs=1, train_samples=64, seed=8, progress=False)
    assert not torch.equal(other.conv1.weight, model.conv1.weight)


def test_qat_training_learns_input_scales(tiny_runs):
    _, _, (model, metrics) = tiny_runs
    layers = quant_layers(model)
    assert metrics["method"] == "qat" and (metrics["weight_bits"], metrics["input_bits"]) == (6, 6)
    assert all(float(m.input_scale) > 0 for m in layers.values())
    # The first layer sees pixels in [0, 1]: max / (2^6 - 1), up to the EMA.
    assert float(layers["conv1"].input_scale) == pytest.approx(1 / 63, rel=1e-3)
    assert metrics["epoch_losses"][1] < metrics["epoch_losses"][0]


def test_random_shift_and_evaluate_accuracy():
    x = torch.zeros(4, 1, 5, 5)
    x[:, :, 2, 2] = 1
    shifted = random_shift(x, 1, torch.Generator().manual_seed(0))
    assert torch.equal(shifted.sum((1, 2, 3)), torch.ones(4))
    assert shifted[:, :, 1:4, 1:4].sum() == 4  # every pixel moved by at most one
    model = nn.Sequential(nn.Flatten(), nn.Linear(25, 2))
    model.train()
    assert evaluate_accuracy(model, [(x, torch.zeros(4, dtype=torch.int64))]) in (0, 1)
    assert model.training  # mode restored
    with pytest.raises(ValueError, match="no samples"):
        evaluate_accuracy(model, [])
    with pytest.raises(ValueError, match="no training recipe"):
        train("resnet18_imagenet", progress=False)


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip(tmp_path, tiny_runs):
    (model, metrics), _, (qat, qat_metrics) = tiny_runs
    x = load_mnist(split="test")[0][:64]
    for net, m in ((model, metrics), (qat, qat_metrics)):
        meta = {"workload": "lenet5_mnist", "method": m["method"], "seed": 7}
        meta["accuracy"] = m["test_accuracy"]
        pt, sidecar = save_checkpoint(tmp_path / f"lenet_{m['method']}", net, meta)
        assert (pt, sidecar) == checkpoint_paths(tmp_path / f"lenet_{m['method']}.pt")
        loaded, loaded_meta = load_checkpoint(sidecar)
        with torch.no_grad():
            assert torch.equal(loaded(x), net.eval()(x))
        assert loaded_meta["accuracy"] == m["test_accuracy"]
        assert loaded_meta["pimsim_version"] == pimsim.__version__
        assert "first 8,000" in loaded_meta["split"]
    record = json.loads(sidecar.read_text())
    assert (record["weight_bits"], record["input_bits"]) == (6, 6)
    conv1 = record["layers"]["conv1"]
    assert conv1["signed_input"] is False
    assert conv1["input_scale"] == float(qat.conv1.input_scale)


def test_checkpoint_requantization_warns(tmp_path, tiny_runs):
    _, _, (qat, _) = tiny_runs
    save_checkpoint(tmp_path / "q", qat, {"workload": "lenet5_mnist", "method": "qat"})
    with pytest.warns(UserWarning, match="trained with weight_bits=6, input_bits=6; requantizing"):
        model, meta = load_checkpoint(tmp_path / "q", weight_bits=4)
    layers = quant_layers(model)
    assert {(m.weight_bits, m.input_bits) for m in layers.values()} == {(4, 6)}
    assert meta["requantized_from"] == {"weight_bits": 6, "input_bits": 6}
    with pytest.warns(UserWarning, match="requantizing"):
        model, _ = load_checkpoint(tmp_path / "q", input_bits=4)
    # The calibrated range max|x| = s (2^b - 1) is kept: s scales by 63 / 15.
    expected = float(qat.conv1.input_scale) * 63 / 15
    assert float(model.conv1.input_scale) == pytest.approx(expected, rel=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_checkpoint(tmp_path / "q", weight_bits=6, input_bits=6)  # same bits: no warning


def test_checkpoint_errors(tmp_path, tiny_runs):
    (model, _), _, _ = tiny_runs
    with pytest.raises(CheckpointError, match="quantized layers"):
        save_checkpoint(tmp_path / "f", model, {"workload": "lenet5_mnist", "method": "qat"})
    with pytest.raises(CheckpointError, match="'workload'"):
        save_checkpoint(tmp_path / "f", model, {"method": "float"})
    pt, _ = save_checkpoint(tmp_path / "f", model, {"workload": "lenet5_mnist", "method": "float"})
    pt.write_bytes(pt.read_bytes() + b"x")
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(pt)
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "absent")
