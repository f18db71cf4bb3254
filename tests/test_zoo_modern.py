"""The modern zoo networks (ViT-tiny, BERT-tiny, LSTM, MobileNetV3-small, EfficientNet-B0):
forward shapes, traced MAC counts against independent counts, published sizes, layer kinds."""

from __future__ import annotations

import subprocess
import sys

import pytest

import pimsim

torch = pytest.importorskip("torch")

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from pimsim.workload._zoo import ZOO, zoo_model  # noqa: E402
from pimsim.workload._zoo_modern import (  # noqa: E402
    BertTiny,
    EfficientNetB0,
    LSTMClassifier,
    MobileNetV3Small,
    ViTTiny,
)

#: zoo name -> (constructor, input shape, default number of classes).
MODERN = {
    "vit_tiny_cifar10": (ViTTiny, (3, 32, 32), 10),
    "bert_tiny": (BertTiny, (64,), 2),
    "lstm_mnist": (LSTMClassifier, (1, 28, 28), 10),
    "mobilenetv3_small_imagenet": (MobileNetV3Small, (3, 224, 224), 1000),
    "efficientnet_b0_imagenet": (EfficientNetB0, (3, 224, 224), 1000),
}
#: Networks whose every matrix product FlopCounterMode counts (it does not count aten.lstm).
FLOP_COUNTED = [n for n in MODERN if n != "lstm_mnist"]


def _input(name: str) -> torch.Tensor:
    shape = (1, *MODERN[name][1])
    return torch.zeros(shape, dtype=torch.long) if name == "bert_tiny" else torch.zeros(shape)


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def models():
    """One seeded instance of each network, in eval mode."""
    torch.manual_seed(0)
    return {name: zoo_model(name).eval() for name in MODERN}


@pytest.fixture(scope="module")
def workloads(models):
    """Each network traced with the default method."""
    return {n: pimsim.from_torch(m, (1, *MODERN[n][1]), name=n) for n, m in models.items()}


def test_registered_in_zoo_with_input_shapes():
    for name, (ctor, shape, _) in MODERN.items():
        assert ZOO[name] == (ctor, shape)


@pytest.mark.parametrize("name", list(MODERN))
def test_forward_gives_one_row_of_logits(models, name):
    with torch.no_grad():
        out = models[name](_input(name))
    assert out.shape == (1, MODERN[name][2])
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list(MODERN))
def test_num_classes_argument(name):
    model = zoo_model(name, num_classes=7).eval()
    with torch.no_grad():
        assert model(_input(name)).shape == (1, 7)


@pytest.mark.parametrize("name", FLOP_COUNTED)
def test_traced_macs_equal_flop_counter(models, workloads, name):
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        models[name](_input(name))
    assert workloads[name].macs == counter.get_total_flops() // 2
    assert workloads[name].input_shape == MODERN[name][1]


def test_lstm_macs_closed_form(workloads):
    # T x (I + H) x 4H per layer (W_ih and W_hh applied at every step), plus the 128 x 10 head.
    t, h = 28, 128
    expected = t * (28 + h) * 4 * h + t * (h + h) * 4 * h + h * 10
    assert expected == 5_907_712
    assert workloads["lstm_mnist"].macs == expected
    kinds = {layer.name: layer.kind for layer in workloads["lstm_mnist"].layers}
    assert kinds["lstm.l0"] == kinds["lstm.l1"] == "rnn"
    assert kinds["fc"] == "linear"


@pytest.mark.parametrize(
    "name, params_m, macs_m",
    [
        # torchvision's reference figures: mobilenet_v3_small 2.54 M params, 0.06 GFLOPS
        # (56.5 M MACs); efficientnet_b0 5.29 M params, 0.39 GFLOPS (386 M MACs).
        ("mobilenetv3_small_imagenet", 2.54, 56.5),
        ("efficientnet_b0_imagenet", 5.29, 386.0),
    ],
)
def test_published_sizes(models, workloads, name, params_m, macs_m):
    assert _params(models[name]) == pytest.approx(params_m * 1e6, rel=0.03)
    assert workloads[name].macs == pytest.approx(macs_m * 1e6, rel=0.05)


def test_mobilenetv3_small_structure(models):
    model = models["mobilenetv3_small_imagenet"]
    blocks = list(model.blocks)
    assert len(blocks) == 11
    # The first bneck has expansion 16 == its input channels: no expansion conv.
    assert not hasattr(blocks[0], "expand")
    assert [hasattr(b, "se") for b in blocks] == [True, False, False] + [True] * 8
    assert blocks[0].se.reduce.out_channels == 8  # make_divisible(16 / 4, 8)
    assert blocks[4].se.reduce.out_channels == 64  # make_divisible(240 / 4, 8)
    assert [b.residual for b in blocks] == [False, False, True, False, True, True, False, True,
                                            False, True, True]  # fmt: skip


def test_efficientnet_b0_structure(models):
    blocks = list(models["efficientnet_b0_imagenet"].blocks)
    assert len(blocks) == 16
    assert not hasattr(blocks[0], "expand")  # expansion ratio 1
    assert blocks[0].se.reduce.out_channels == 8  # 32 // 4
    assert blocks[1].se.reduce.out_channels == 4  # 16 // 4 on a 96-channel block
    assert blocks[-1].project.conv.out_channels == 320


def test_vit_tiny_layers(workloads):
    layers = workloads["vit_tiny_cifar10"].layers
    matmuls = [layer.name for layer in layers if layer.kind == "matmul"]
    expected = [f"blocks.{i}.attn.{op}" for i in range(6) for op in ("scores", "context")]
    assert matmuls == expected
    norms = [layer.name for layer in layers if layer.kind == "norm"]
    assert len(norms) == 6 * 2 + 1 and norms[-1] == "norm"
    by_name = {layer.name: layer for layer in layers}
    assert by_name["patch_embed"].kind == "conv"
    assert by_name["patch_embed"].output_shape == (192, 8, 8)
    # scores: 3 heads of (65 x 64) @ (64 x 65).
    assert by_name["blocks.0.attn.scores"].macs == 3 * 65 * 65 * 64
    assert by_name["head"].kind == "linear"


def test_bert_tiny_layers(workloads):
    layers = workloads["bert_tiny"].layers
    by_name = {layer.name: layer for layer in layers}
    assert by_name["embed"].kind == "embedding"
    matmuls = [layer.name for layer in layers if layer.kind == "matmul"]
    assert matmuls == [f"layers.{i}.attn.{op}" for i in range(2) for op in ("scores", "context")]
    # scores: 2 heads of (64 x 64) @ (64 x 64).
    assert by_name["layers.0.attn.scores"].macs == 2 * 64 * 64 * 64
    assert by_name["classifier"].kind == "linear"


@pytest.mark.parametrize("name", ["vit_tiny_cifar10", "lstm_mnist", "mobilenetv3_small_imagenet"])
def test_fx_and_recording_agree(models, name):
    shape = (1, *MODERN[name][1])
    fx = pimsim.from_torch(models[name], shape, method="fx")
    rec = pimsim.from_torch(models[name], shape, method="record")
    assert [x.name for x in fx.layers] == [x.name for x in rec.layers]
    assert (fx.macs, fx.weights) == (rec.macs, rec.weights)


def test_zoo_modern_imports_alone():
    # _zoo imports _zoo_modern, so _zoo_modern must import without _zoo (no cycle).
    code = (
        "import sys; import pimsim.workload._zoo_modern as m; "
        "assert 'pimsim.workload._zoo' not in sys.modules; print(m.ViTTiny.__name__)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ViTTiny"
