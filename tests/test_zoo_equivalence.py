"""The hand-written zoo YAML files and from_torch of the independently written torch zoo modules
must describe the same networks: layer tables, full layer records and graph edges."""

import networkx as nx
import pytest

import pimsim

torch = pytest.importorskip("torch")

from pimsim.workload._load import ZOO_DIR  # noqa: E402

# The networks with a hand-written YAML twin (the others are traced from torch only).
ZOO = sorted(p.stem for p in ZOO_DIR.glob("*.yaml"))
TRACED_ONLY = ["bert_tiny", "efficientnet_b0_imagenet", "lstm_mnist",
               "mobilenetv3_small_imagenet", "vit_tiny_cifar10"]  # fmt: skip


@pytest.fixture(scope="module", params=ZOO)
def pair(request):
    name = request.param
    from_yaml = pimsim.load_workload(name)
    model = pimsim.zoo_model(name)
    traced = pimsim.from_torch(model, (1, *from_yaml.input_shape), name=name)
    return from_yaml, traced


def test_zoo_lists_all_eight_networks():
    assert pimsim.zoo_names() == sorted(ZOO + TRACED_ONLY)
    assert ZOO == sorted(
        [
            "lenet5_bn_mnist",
            "lenet5_mnist",
            "mlp4_mnist",
            "mlp_mnist",
            "mobilenetv2_imagenet",
            "resnet18_imagenet",
            "resnet20_cifar10",
            "vgg8_cifar10",
        ]
    )


def test_layer_tables_identical(pair):
    from_yaml, traced = pair
    a = from_yaml.table().set_index("name").sort_index()
    b = traced.table().set_index("name").sort_index()
    assert list(a.index) == list(b.index)
    assert a.equals(b), a.compare(b)


def test_layer_records_identical(pair):
    from_yaml, traced = pair
    # Every field (shapes, kernel, stride, padding, dilation, groups, bias, op, inputs, counts).
    assert {x.name: x for x in from_yaml.layers} == {x.name: x for x in traced.layers}


def test_graph_edges_identical(pair):
    from_yaml, traced = pair
    assert set(from_yaml.edges) == set(traced.edges)
    assert nx.is_directed_acyclic_graph(traced.graph)
    # Both orders are topological orders of the same graph.
    for w in (from_yaml, traced):
        pos = {x.name: i for i, x in enumerate(w.layers)}
        pos["input"] = -1
        assert all(pos[s] < pos[d] for s, d in w.edges)


def test_totals_identical(pair):
    from_yaml, traced = pair
    assert (from_yaml.macs, from_yaml.weights) == (traced.macs, traced.weights)
    assert from_yaml.input_shape == traced.input_shape
