"""Torch models as workloads: the zoo's MAC counts, fx vs recording, naming and errors."""

from __future__ import annotations

import networkx as nx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pimsim.errors import WorkloadError
from pimsim.workload._torch import from_torch
from pimsim.workload._zoo import ZOO, zoo_model
from tests.test_workload_yaml import EXPECTED_MACS as YAML_MACS

# Zoo networks without a YAML twin (the graph kinds YAML does not spell: attention, RNNs...):
# MACs from torch's FLOP counter / 2 and, for the LSTM, T x (I + H) x 4H per layer plus the head
# (tests/test_zoo_modern.py checks each against those independent counts).
TORCH_ONLY_MACS = {
    "vit_tiny_cifar10": 182_849_664,
    "bert_tiny": 27_279_616,
    "lstm_mnist": 28 * (28 + 128) * 512 + 28 * (128 + 128) * 512 + 128 * 10,
    "mobilenetv3_small_imagenet": 56_510_400,
    "efficientnet_b0_imagenet": 385_814_752,
}
EXPECTED_MACS = YAML_MACS | TORCH_ONLY_MACS

METHODS = ("fx", "record")


# (zoo name, layer, MACs, weights) counted by hand: out_h * out_w * out_c * (in_c/groups * k * k).
LAYER_COUNTS = [
    ("lenet5_mnist", "conv1", 28 * 28 * 6 * 25, 6 * 25),
    ("lenet5_mnist", "conv2", 10 * 10 * 16 * 6 * 25, 16 * 6 * 25),
    ("lenet5_mnist", "fc1", 400 * 120, 400 * 120),
    ("vgg8_cifar10", "conv2", 32 * 32 * 128 * 128 * 9, 128 * 128 * 9),
    ("vgg8_cifar10", "fc1", 8192 * 1024, 8192 * 1024),
    ("resnet20_cifar10", "layer2.0.conv1", 16 * 16 * 32 * 16 * 9, 32 * 16 * 9),
    ("resnet20_cifar10", "layer2.0.downsample.0", 16 * 16 * 32 * 16, 32 * 16),
    ("resnet18_imagenet", "conv1", 112 * 112 * 64 * 3 * 49, 64 * 3 * 49),
    ("resnet18_imagenet", "fc", 512 * 1000, 512 * 1000),
    ("mobilenetv2_imagenet", "blocks.1.dw_conv", 56 * 56 * 96 * 9, 96 * 9),
    ("mobilenetv2_imagenet", "blocks.1.expand_conv", 112 * 112 * 96 * 16, 96 * 16),
    ("mobilenetv2_imagenet", "classifier", 1280 * 1000, 1280 * 1000),
]


@pytest.fixture(scope="module", params=list(ZOO))
def zoo_pair(request):
    """(name, fx workload, recorded workload) for one zoo network, built once per module."""
    name = request.param
    model = zoo_model(name)
    shape = (1, *ZOO[name][1])
    return (
        name,
        from_torch(model, shape, name=name, method="fx"),
        from_torch(model, shape, name=name, method="record"),
    )


@pytest.fixture(scope="module")
def zoo_workloads():
    """Every zoo network traced with the default method, keyed by zoo name."""
    return {n: from_torch(zoo_model(n), (1, *ZOO[n][1]), name=n) for n in ZOO}


def test_zoo_names_and_unknown_name():
    assert set(ZOO) == set(EXPECTED_MACS)
    with pytest.raises(WorkloadError, match="did you mean 'resnet20_cifar10'"):
        zoo_model("resnet20_cifar")
    with pytest.raises(WorkloadError, match="num_clases"):
        zoo_model("mlp_mnist", num_clases=3)
    assert zoo_model("mlp_mnist", num_classes=3).fc3.out_features == 3


def test_zoo_total_macs(zoo_pair):
    name, fx_wl, _ = zoo_pair
    assert fx_wl.macs == EXPECTED_MACS[name]
    assert fx_wl.name == name
    assert fx_wl.input_shape == ZOO[name][1]
    assert fx_wl.source == "torch:fx"


@pytest.mark.parametrize(("net", "layer", "macs", "weights"), LAYER_COUNTS)
def test_zoo_layer_counts(zoo_workloads, net, layer, macs, weights):
    got = zoo_workloads[net].layer(layer)
    assert (got.macs, got.weights) == (macs, weights)


def test_fx_and_record_agree(zoo_pair):
    _, fx_wl, rec_wl = zoo_pair
    assert rec_wl.source == "torch:record"
    assert [layer.name for layer in fx_wl.layers] == [layer.name for layer in rec_wl.layers]
    assert fx_wl.layers == rec_wl.layers
    assert nx.is_directed_acyclic_graph(fx_wl.graph)


def test_zoo_matches_yaml_files(zoo_pair):
    # The hand-written workloads/*.yaml describe the same networks, layer for layer.
    from pimsim.workload import load_workload

    name, fx_wl, _ = zoo_pair
    if name in TORCH_ONLY_MACS:
        pytest.skip(f"{name} has no YAML twin")
    assert load_workload(name).layers == fx_wl.layers


def test_zoo_layer_names(zoo_workloads):
    names = [layer.name for layer in zoo_workloads["lenet5_mnist"].layers]
    assert names == "conv1 relu1 pool1 conv2 relu2 pool2 flatten fc1 relu3 fc2 relu4 fc3".split()
    block = [
        layer.name for layer in zoo_workloads["resnet20_cifar10"].layers if "2.0." in layer.name
    ]
    assert block == [
        f"layer2.0.{n}"
        for n in "conv1 bn1 relu1 conv2 bn2 downsample.0 downsample.1 add relu2".split()
    ]
    mobile = zoo_workloads["mobilenetv2_imagenet"]
    assert mobile.layer("blocks.2.add").inputs == ("blocks.1.project_bn", "blocks.2.project_bn")
    assert [layer.name for layer in mobile.layers[-5:]] == [
        "head.bn",
        "head.act",
        "avgpool",
        "flatten",
        "classifier",
    ]
    # Dropout is a pass-through: the classifier reads the flatten layer directly.
    assert mobile.layer("classifier").inputs == ("flatten",)


def test_resnet20_residual_adds(zoo_workloads):
    wl = zoo_workloads["resnet20_cifar10"]
    adds = [layer for layer in wl.layers if layer.kind == "add"]
    assert len(adds) == 9
    assert all(len(layer.inputs) == 2 for layer in adds)
    assert wl.layer("layer1.0.add").inputs == ("layer1.0.bn2", "relu")
    assert wl.layer("layer2.0.add").inputs == ("layer2.0.bn2", "layer2.0.downsample.1")
    assert wl.layer("layer2.1.add").inputs == ("layer2.1.bn2", "layer2.0.relu2")
    assert nx.is_directed_acyclic_graph(wl.graph)


# --------------------------------------------------------------------------- small models


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.block = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4))

    def forward(self, x):
        y = F.relu(self.conv(x))
        return torch.sigmoid(self.block(y) + y)


class Branchy(nn.Module):
    """Data-dependent Python control flow: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        y = self.conv(x)
        y = torch.relu(y) if x.sum() > 0 else torch.tanh(y)
        y = F.adaptive_avg_pool2d(y, 1)
        return self.fc(y.view(y.size(0), -1))


class TwiceReLU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        self.fc = nn.Linear(6, 6)

    def forward(self, x):
        return self.relu(self.fc(self.relu(x)))


@pytest.mark.parametrize("method", METHODS)
def test_residual_add_and_functional_acts(method):
    wl = from_torch(Residual(), (1, 4, 8, 8), method=method)
    assert [layer.name for layer in wl.layers] == [
        "conv",
        "relu",
        "block.0",
        "block.1",
        "add",
        "sigmoid",
    ]
    add = wl.layer("add")
    assert add.kind == "add" and add.inputs == ("block.1", "relu")
    assert add.input_shapes == ((4, 8, 8), (4, 8, 8))
    assert (wl.layer("relu").kind, wl.layer("relu").op) == ("act", "relu")
    assert (wl.layer("sigmoid").kind, wl.layer("sigmoid").op) == ("act", "sigmoid")
    assert wl.layer("conv").bias and wl.layer("block.0").bias
    assert wl.name == "Residual"


def test_data_dependent_branch_falls_back():
    with pytest.raises(WorkloadError, match="torch.fx cannot trace"):
        from_torch(Branchy(), (1, 3, 6, 6), method="fx")
    wl = from_torch(Branchy(), (1, 3, 6, 6), name="branchy")
    assert wl.source == "torch:record" and wl.name == "branchy"
    # A zeros input has sum 0, so the tanh branch ran; x.sum() and `>` left no layers.
    assert [(layer.name, layer.kind, layer.op) for layer in wl.layers] == [
        ("conv", "conv", ""),
        ("tanh", "act", "tanh"),
        ("adaptive_avg_pool2d", "pool", "adaptive_avg"),
        ("flatten", "flatten", ""),
        ("fc", "linear", ""),
    ]
    assert wl.layer("fc").inputs == ("flatten",)


@pytest.mark.parametrize("method", METHODS)
def test_depthwise_and_grouped_conv(method):
    model = nn.Sequential(
        nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),
        nn.Conv2d(8, 16, 3, padding=1, groups=2),
        nn.Conv2d(16, 16, 3, padding="same", dilation=2),
    )
    wl = from_torch(model, (1, 8, 16, 16), method=method)
    dw, grouped, dilated = wl.layers
    assert (dw.groups, dw.macs, dw.weights, dw.bias) == (8, 16 * 16 * 8 * 9, 8 * 9, False)
    assert (grouped.groups, grouped.macs, grouped.weights) == (2, 16 * 16 * 16 * 36, 16 * 36)
    assert (dilated.padding, dilated.output_shape) == ((2, 2), (16, 16, 16))


@pytest.mark.parametrize("method", METHODS)
def test_same_module_twice(method):
    wl = from_torch(TwiceReLU(), (1, 6), method=method)
    assert [(layer.name, layer.inputs) for layer in wl.layers] == [
        ("relu", ("input",)),
        ("fc", ("relu",)),
        ("relu_1", ("fc",)),
    ]


@pytest.mark.parametrize("method", ("auto", "record"))
@pytest.mark.parametrize(
    ("model", "shape", "named"),
    [
        (nn.Sequential(nn.Conv3d(3, 4, 3)), (1, 3, 5, 5, 5), "'conv3d' (in '0')"),
        (nn.Sequential(nn.Linear(4, 4), nn.LSTM(4, 4)), (1, 4), "'1' (LSTM)"),
    ],
)
def test_unsupported_module(model, shape, named, method):
    with pytest.raises(WorkloadError, match=named.replace("(", r"\(").replace(")", r"\)")):
        from_torch(model, shape, method=method)


class ScalarAdd(nn.Module):
    def forward(self, x):
        return x + 1


class Unflatten(nn.Module):
    def forward(self, x):
        return x.view(x.size(0), 2, -1)


class Outer(nn.Module):
    def forward(self, x):
        return torch.einsum("bi,bj->bij", x, x)


@pytest.mark.parametrize("method", METHODS)
def test_scalar_arithmetic_and_reshapes_are_layers(method):
    wl = from_torch(ScalarAdd(), (1, 4), method=method)
    assert [(la.kind, la.op, la.output_shape) for la in wl.layers] == [("eltwise", "add", (4,))]
    wl = from_torch(Unflatten(), (1, 4, 3), method=method)
    assert [(la.kind, la.op, la.output_shape) for la in wl.layers] == [("move", "reshape", (2, 6))]


@pytest.mark.parametrize("method", METHODS)
def test_unsupported_operations(method):
    with pytest.raises(WorkloadError, match="operation 'einsum' .* is not supported"):
        from_torch(Outer(), (1, 4), method=method)


def test_train_mode_restored_and_bad_arguments():
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5), nn.Linear(3, 2))
    model.train()
    model[2].eval()
    wl = from_torch(model, (1, 3))
    assert [layer.name for layer in wl.layers] == ["0", "2"]
    assert model.training and model[0].training and not model[2].training
    with pytest.raises(WorkloadError, match="batch dimension of 1"):
        from_torch(model, (3,))
    with pytest.raises(WorkloadError, match="method"):
        from_torch(model, (1, 3), method="jit")
