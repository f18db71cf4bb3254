"""Workload YAML files: the zoo files load, their MAC counts match published values and an
independent count, block/repeat naming follows the torch module names, and the graph is sound."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import networkx as nx
import pytest

from pimsim.errors import SpecError, WorkloadError
from pimsim.workload import INPUT, Workload, load_workload, zoo_names
from pimsim.workload._yaml import load_workload_file

ROOT = Path(__file__).resolve().parents[1]
WORKLOAD_FILES = sorted((ROOT / "workloads").glob("*.yaml"))

#: Published (or hand-derived) MAC counts for one input sample.
EXPECTED_MACS = {
    "resnet18_imagenet": 1_814_073_344,
    "resnet20_cifar10": 40_813_184,
    "vgg8_cifar10": 615_917_568,
    "mobilenetv2_imagenet": 300_774_272,
    "lenet5_mnist": 416_520,
    "lenet5_bn_mnist": 416_520,  # LeNet-5's convolutions and linears; BN adds no MACs
    "mlp_mnist": 784 * 256 + 256 * 128 + 128 * 10,
    "mlp4_mnist": 784 * 256 + 2 * 256 * 256 + 256 * 10,
}


@pytest.fixture(scope="module")
def zoo() -> dict[str, Workload]:
    return {path.stem: load_workload_file(path) for path in WORKLOAD_FILES}


# --------------------------------------------------------------------- independent counter


def _out(size: int, kernel: int, stride: int, pad: int, dilation: int) -> int:
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


def independent_count(workload: Workload) -> tuple[int, int]:
    """(MACs, weights) recomputed from the input shape and each layer's hyper-parameters only.

    Shapes are propagated here, not read from pimsim (except the channel/feature counts the YAML
    gives and adaptive pooling's output size), and every layer's output shape is checked on the
    way. Conv MACs = Hout * Wout * Cout * Cin / groups * kh * kw; linear MACs = fin * fout.
    """
    shapes = {INPUT: tuple(workload.input_shape)}
    macs = weights = 0
    for layer in workload.layers:
        ins = [shapes[name] for name in layer.inputs]
        shape = ins[0]
        if layer.kind == "conv":
            cin, h, w = shape
            (kh, kw), (sh, sw) = layer.kernel, layer.stride
            (ph, pw), (dh, dw) = layer.padding, layer.dilation
            cout, groups = layer.output_shape[0], layer.groups
            hout, wout = _out(h, kh, sh, ph, dh), _out(w, kw, sw, pw, dw)
            per_out = cin // groups * kh * kw
            layer_macs, layer_weights = hout * wout * cout * per_out, cout * per_out
            out = (cout, hout, wout)
        elif layer.kind == "linear":
            fin, fout = shape[-1], layer.output_shape[-1]
            layer_macs, layer_weights = math.prod(shape[:-1]) * fin * fout, fin * fout
            out = shape[:-1] + (fout,)
        else:
            layer_macs = layer_weights = 0
            if layer.kind == "pool" and layer.op.startswith("adaptive"):
                out = (shape[0],) + tuple(layer.output_shape[1:])
            elif layer.kind == "pool":
                c, h, w = shape
                (kh, kw), (sh, sw) = layer.kernel, layer.stride
                (ph, pw), (dh, dw) = layer.padding, layer.dilation
                out = (c, _out(h, kh, sh, ph, dh), _out(w, kw, sw, pw, dw))
            elif layer.kind == "add":
                assert len(set(ins)) == 1, f"{layer.name}: add of shapes {ins}"
                out = shape
            elif layer.kind == "concat":
                dim = layer.dim
                out = shape[:dim] + (sum(s[dim] for s in ins),) + shape[dim + 1 :]
            elif layer.kind == "flatten":
                out = shape[: layer.dim] + (math.prod(shape[layer.dim :]),)
            else:  # act, bn
                out = shape
        assert tuple(out) == tuple(layer.output_shape), layer.name
        assert layer.macs == layer_macs, layer.name
        assert layer.weights == layer_weights, layer.name
        shapes[layer.name] = tuple(out)
        macs += layer_macs
        weights += layer_weights
    return macs, weights


# -------------------------------------------------------------------------------- loading


def test_zoo_names_match_the_folder():
    # every YAML file is a zoo name; the other zoo names are torch networks traced on demand
    from pimsim.workload._zoo import ZOO

    assert set(p.stem for p in WORKLOAD_FILES) <= set(zoo_names())
    assert set(zoo_names()) - {p.stem for p in WORKLOAD_FILES} <= set(ZOO)
    assert set(EXPECTED_MACS) <= set(zoo_names())


@pytest.mark.parametrize("path", WORKLOAD_FILES, ids=lambda p: p.stem)
def test_workload_file_loads(path: Path, zoo: dict[str, Workload]):
    workload = zoo[path.stem]
    assert workload.name == path.stem
    assert workload.layers
    assert load_workload(path.stem) == workload  # by zoo name
    assert load_workload(str(path)) == workload  # by path
    macs, weights = independent_count(workload)
    assert workload.macs == macs
    assert workload.weights == weights


@pytest.mark.parametrize(("name", "macs"), sorted(EXPECTED_MACS.items()))
def test_total_macs(name: str, macs: int, zoo: dict[str, Workload]):
    workload = zoo[name]
    assert workload.macs == macs
    assert independent_count(workload)[0] == macs
    assert sum(layer.macs for layer in workload.layers) == macs


# -------------------------------------------------------------------------------- graph


@pytest.mark.parametrize("path", WORKLOAD_FILES, ids=lambda p: p.stem)
def test_graph_is_a_sound_dag(path: Path, zoo: dict[str, Workload]):
    workload = zoo[path.stem]
    names = [layer.name for layer in workload.layers]
    assert len(set(names)) == len(names), "layer names must be unique"
    assert INPUT not in names
    graph = workload.graph
    assert nx.is_directed_acyclic_graph(graph)
    assert set(graph.nodes) == set(names) | {INPUT}
    assert graph.in_degree(INPUT) == 0
    assert nx.descendants(graph, INPUT) == set(names)
    assert sorted(graph.edges) == sorted(workload.edges)
    seen = {INPUT}
    for layer in workload.layers:  # listed in topological order
        assert set(layer.inputs) <= seen, layer.name
        seen.add(layer.name)
        if layer.kind == "add":
            assert len(layer.inputs) == 2, layer.name
            assert len(set(layer.input_shapes)) == 1, layer.name
        else:
            assert len(layer.inputs) == (len(layer.input_shapes)), layer.name


@pytest.mark.parametrize("path", WORKLOAD_FILES, ids=lambda p: p.stem)
def test_weights_exclude_bias_and_bn(path: Path, zoo: dict[str, Workload]):
    workload = zoo[path.stem]
    for layer in workload.layers:
        if layer.kind == "conv":
            kh, kw = layer.kernel
            assert layer.weights == layer.out_channels * layer.in_channels // layer.groups * kh * kw
        elif layer.kind == "linear":
            assert layer.weights == layer.in_channels * layer.out_channels
        else:
            assert layer.weights == 0 and layer.macs == 0, layer.name


def test_resnet18_weights_match_torchvision_without_bias_and_bn(zoo: dict[str, Workload]):
    # torchvision resnet18 has 11,689,512 parameters: minus the fc bias (1000) and the batch-norm
    # scale and shift of 4800 channels (64 + 4x64 + 5x128 + 5x256 + 5x512).
    assert zoo["resnet18_imagenet"].weights == 11_689_512 - 1000 - 2 * 4800


def test_lenet5_weights_exclude_its_biases(zoo: dict[str, Workload]):
    # conv 1*6*25, conv 6*16*25, fc 400*120, 120*84, 84*10; every layer has a bias, not counted.
    lenet = zoo["lenet5_mnist"]
    assert lenet.weights == 150 + 2400 + 48000 + 10080 + 840
    assert all(layer.bias for layer in lenet.layers if layer.kind in ("conv", "linear"))


# ------------------------------------------------------------------------- block naming


def test_resnet18_block_names(zoo: dict[str, Workload]):
    net = zoo["resnet18_imagenet"]
    names = {layer.name for layer in net.layers}
    assert {"layer1.0.conv1", "layer1.1.conv2", "layer2.1.conv1", "layer4.1.relu2"} <= names
    down = net.layer("layer2.0.downsample.0")
    assert down.kind == "conv"
    assert down.stride == (2, 2) and down.kernel == (1, 1)
    assert down.inputs == ("layer1.1.relu2",)  # the block input, not the previous layer
    assert down.output_shape == (128, 28, 28)
    assert net.layer("layer2.0.add").inputs == ("layer2.0.bn2", "layer2.0.downsample.1")
    assert net.layer("layer2.0.conv1").stride == (2, 2)
    assert "layer1.0.downsample.0" not in names
    assert net.layer("fc").inputs == ("flatten",)


def test_resnet20_repeat_naming(zoo: dict[str, Workload]):
    net = zoo["resnet20_cifar10"]
    names = {layer.name for layer in net.layers}
    for stage in (1, 2, 3):
        for block in (0, 1, 2):
            assert f"layer{stage}.{block}.conv1" in names
        assert f"layer{stage}.3.conv1" not in names
    # an identity shortcut reads the block input: the stem's relu for the very first block
    assert net.layer("layer1.0.add").inputs == ("layer1.0.bn2", "relu")
    assert net.layer("layer2.1.add").inputs == ("layer2.1.bn2", "layer2.0.relu2")
    assert net.layer("layer3.0.downsample.0").stride == (2, 2)
    assert sum(layer.kind == "conv" for layer in net.layers) == 19 + 2  # 19 + two projections


def test_mobilenetv2_repeat_with_start(zoo: dict[str, Workload]):
    net = zoo["mobilenetv2_imagenet"]
    names = {layer.name for layer in net.layers}
    blocks = {name.split(".")[1] for name in names if name.startswith("blocks.")}
    assert blocks == {str(i) for i in range(17)}
    assert {"blocks.4.add", "blocks.5.add", "blocks.15.add"} <= names
    assert "blocks.6.add" not in names  # stride 2: no residual
    dw = net.layer("blocks.1.dw_conv")
    assert dw.groups == dw.in_channels == dw.out_channels == 96
    assert dw.weights == 96 * 9
    assert net.layer("classifier").output_shape == (1000,)


# ------------------------------------------------------------------- builder behaviour


def write(folder: Path, text: str, name: str = "net.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def test_block_output_feeds_the_next_entry(tmp_path: Path):
    path = write(
        tmp_path,
        """\
        kind: workload
        name: tiny
        input_shape: [3, 8, 8]
        blocks:
          pair:
            params: [ch]
            layers:
              - {name: a, kind: conv, out_channels: $ch, kernel: 3, padding: 1}
              - {name: b, kind: act, op: relu}
        layers:
          - {name: "s.{i}", block: pair, repeat: 2, start: 3, params: {ch: 4}}
          - {name: head, kind: conv, out_channels: 2, kernel: 1}
        """,
    )
    net = load_workload_file(path)
    assert [layer.name for layer in net.layers] == ["s.3.a", "s.3.b", "s.4.a", "s.4.b", "head"]
    assert net.layer("s.4.a").inputs == ("s.3.b",)
    assert net.layer("head").inputs == ("s.4.b",)
    assert net.macs == 8 * 8 * 4 * 3 * 9 + 8 * 8 * 4 * 4 * 9 + 8 * 8 * 2 * 4


def test_workload_errors_have_positions():
    path = ROOT / "tests" / "malformed" / "wl_unknown_block.yaml"
    with pytest.raises(SpecError) as info:
        load_workload_file(path)
    assert info.value.field == "layers[2].block"
    assert info.value.location.line == 15
    assert "basic" in info.value.message  # lists the blocks that exist


def test_unknown_zoo_name():
    with pytest.raises(WorkloadError, match="did you mean 'lenet5_mnist'"):
        load_workload("lenet5_mnst")


def test_float_block_param_is_not_a_channel_count(tmp_path: Path):
    path = write(
        tmp_path,
        """\
        kind: workload
        name: float_param
        input_shape: [3, 8, 8]
        blocks:
          one:
            params: [ch]
            layers:
              - {name: conv, kind: conv, out_channels: $ch, kernel: 3, padding: 1}
        layers:
          - {name: b, block: one, params: {ch: 16.0}}
        """,
    )
    with pytest.raises(SpecError) as info:
        load_workload_file(path)
    assert info.value.field == "blocks.one.layers[0].out_channels"
    assert info.value.location.line == 8
    assert "16.0" in info.value.message and "as b" in info.value.message
