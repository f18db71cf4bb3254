"""Any network: attention, RNNs and Conv1d traced, mapped, costed and run through the oracle;
block-diagonal packing; torchvision's classification models against torch's FLOP counter."""

from __future__ import annotations

import copy
import math
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import pimsim
from pimsim import oracle
from pimsim.workload import from_torch, load_workload
from pimsim.workload._modules import MatMul, decompose

ROOT = Path(__file__).resolve().parents[1]
RRAM = ROOT / "arch_specs" / "rram_onchip_22nm.yaml"


class Mixed(nn.Module):
    """A transformer layer, a Conv1d, an LSTM and a bidirectional GRU on one sequence."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True, dropout=0.0)
        self.conv = nn.Conv1d(32, 32, 3, padding=1)
        self.lstm = nn.LSTM(32, 24, batch_first=True)
        self.gru = nn.GRU(24, 16, batch_first=True, bidirectional=True)
        self.head = nn.Linear(32, 5)

    def forward(self, x):
        x = self.enc(x)
        x = self.conv(x.transpose(1, 2)).transpose(1, 2)
        y, _ = self.lstm(x)
        y, _ = self.gru(y)
        return self.head(y[:, -1])


T, E = 10, 32


def _expected_macs() -> int:
    """Closed-form MACs of :class:`Mixed` for one sequence of T x E."""
    attention = 4 * T * E * E + 2 * T * T * E  # q, k, v, out projections; scores and context
    ffn = 2 * T * E * 64
    conv = T * 32 * 32 * 3
    lstm = T * (32 + 24) * 4 * 24
    gru = 2 * T * (24 + 16) * 3 * 16
    return attention + ffn + conv + lstm + gru + 32 * 5


@pytest.mark.parametrize("method", ("auto", "record"))
def test_mixed_network_macs_and_kinds(method):
    wl = from_torch(Mixed().eval(), (1, T, E), method=method)
    assert wl.macs == _expected_macs()
    kinds = {la.name: la.kind for la in wl.layers}
    assert kinds["enc.self_attn.scores"] == kinds["enc.self_attn.context"] == "matmul"
    assert kinds["enc.norm1"] == "norm" and kinds["conv"] == "conv"
    assert kinds["lstm.l0"] == kinds["gru.l0_reverse"] == "rnn"
    scores = wl.layer("enc.self_attn.scores")
    assert (scores.groups, scores.inner, scores.output_shape) == (4, 8, (4, T, T))


def _mixed(n: int):
    """A seeded :class:`Mixed`, ``n`` random sequences and its float outputs on them."""
    torch.manual_seed(0)
    model = Mixed().eval()
    x = torch.randn(n, T, E)
    with torch.no_grad():
        return model, x, model(x)


def test_decomposed_modules_compute_what_torch_does():
    model, x, ref = _mixed(3)
    twin = decompose(copy.deepcopy(model))
    with torch.no_grad():
        got = twin(x)
    assert torch.allclose(got, ref, atol=1e-5, rtol=1e-4)
    # the decomposed model traces to the same layers and MACs
    assert from_torch(twin, (1, T, E)).macs == _expected_macs()


def test_activation_matmul_targets_cost_what_they_should():
    wl = from_torch(Mixed().eval(), (1, T, E))
    digital = pimsim.evaluate(pimsim.load_arch(RRAM), wl, latency_model="analytical")
    arch = pimsim.load_arch(RRAM, {"mapping.activation_matmul": "rewrite"})
    rewrite = pimsim.evaluate(arch, wl, latency_model="analytical")
    d = digital.layers.set_index("name")
    r = rewrite.layers.set_index("name")
    name = "enc.self_attn.scores"
    # digital units: its MACs on the mac class, no arrays, no conversions
    assert d.loc[name, "arrays"] == 0 and d.loc[name, "adc_conversions"] == 0
    assert d.loc[name, "energy_mac_pj"] > 0
    # rewritten arrays: K^T (8 x 10 per head, 4 heads) written for every input, then read
    m = rewrite.mapping.layers[name]
    assert (m.matrices, m.k_rows, m.n_cols) == (4, 8, T)
    assert r.loc[name, "cell_writes"] == m.used_cells * arch.cell.write_pulses
    assert r.loc[name, "energy_write_pj"] == pytest.approx(
        r.loc[name, "cell_writes"] * arch.cell.write_energy_pj
    )
    assert r.loc[name, "energy_mac_pj"] == 0 and r.loc[name, "adc_conversions"] > 0
    assert rewrite.totals["macs"] == digital.totals["macs"] == _expected_macs()


def test_block_diagonal_mobilenetv2_never_costs_more_than_separate():
    wl = load_workload("mobilenetv2_imagenet")
    base = pimsim.load_arch(ROOT / "arch_specs" / "neurosim_rram_22nm.yaml")
    packed = base.replace(mapping=dict(base.mapping.model_dump(), pack_groups="block_diagonal"))
    sep = pimsim.map_network(base, wl)
    blk = pimsim.map_network(packed, wl)
    depthwise = [la.name for la in wl.layers if la.kind == "conv" and la.groups > 1]
    assert depthwise
    for name in depthwise:
        assert blk.layers[name].arrays <= sep.layers[name].arrays
        assert blk.layers[name].adc_conversions == sep.layers[name].adc_conversions
    assert blk.arrays_used < sep.arrays_used


def test_oracle_on_attention_rnn_and_conv1d_tracks_float():
    model, x, ref = _mixed(16)
    for target in ("digital", "rewrite"):
        arch = pimsim.load_arch(RRAM, {
            "adc.bits": 12, "adc.range": "calibrated", "mapping.activation_matmul": target,
            "cell.on_off_ratio": None,  # ideal cells: what is left is quantization
        })  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pim = oracle.convert(model, arch, (1, T, E), calibration=[x[:8]])
        with torch.no_grad():
            out = pim(x)
        err = float((out - ref).norm() / ref.norm())
        assert err < 0.02, (target, err)
        counted = oracle.counts(pim)
        mapped = pim.pim_mapping.layers
        assert set(counted) == set(mapped)
        for name, m in mapped.items():  # conversions of 16 inputs, as the mapper counts them
            assert counted[name] == 16 * m.adc_conversions, name


def test_factory_and_torch_zoo_names_load():
    wl = load_workload("torch.nn:Identity:4")
    assert wl.layers == () and wl.input_shape == (4,)
    with pytest.raises(pimsim.WorkloadError, match="input shape"):
        load_workload("torch.nn:Identity")
    with pytest.raises(pimsim.WorkloadError, match="cannot import"):
        load_workload("no_such_package:make:3")
    wl = load_workload("vit_tiny_cifar10")
    assert any(la.kind == "matmul" for la in wl.layers) and wl.macs > 0


TORCHVISION = (
    "resnet18 mobilenet_v2 mobilenet_v3_small efficientnet_b0 shufflenet_v2_x1_0 squeezenet1_0 "
    "densenet121 googlenet regnet_x_400mf convnext_tiny vit_b_16 swin_t"
).split()


def _torchvision():
    try:
        import torchvision.models as tvm
    except Exception as exc:  # noqa: BLE001 - a wheel built for another torch fails to import
        pytest.skip(f"torchvision is not importable here ({type(exc).__name__}: {exc})")
    return tvm


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_models_trace_and_count_like_torch(name):
    tvm = _torchvision()
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    kw = {"aux_logits": False, "init_weights": False} if name == "googlenet" else {}
    model = getattr(tvm, name)(weights=None, **kw).eval()
    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused MHA kernel has no FLOP formula
    try:
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
            model(torch.zeros(1, 3, 224, 224))
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)
    wl = from_torch(model, (1, 3, 224, 224), name=name)
    assert wl.macs == fc.get_total_flops() // 2
    report = pimsim.evaluate(pimsim.load_arch(ROOT / "arch_specs" / "neurosim_rram_22nm.yaml"), wl)
    assert math.isfinite(report.totals["energy_pj"]) and report.totals["energy_pj"] > 0


ONNX_NETS = ("resnet20_cifar10", "mobilenetv2_imagenet", "vit_tiny_cifar10", "bert_tiny",
             "lstm_mnist")  # fmt: skip


@pytest.mark.parametrize("name", ONNX_NETS)
def test_onnx_import_counts_what_the_torch_tracer_counts(name, tmp_path):
    pytest.importorskip("onnx", reason="the [onnx] extra is not installed")
    from pimsim.workload import from_onnx
    from pimsim.workload._zoo import ZOO, zoo_model

    model = zoo_model(name).eval()
    shape = (1, *ZOO[name][1])
    x = torch.zeros(shape, dtype=torch.long if name == "bert_tiny" else torch.float32)
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=False)
    wl = from_onnx(path)
    traced = from_torch(model, shape)
    assert wl.macs == traced.macs
    assert sorted(la.macs for la in wl.layers if la.macs) == sorted(
        la.macs for la in traced.layers if la.macs
    )
    assert load_workload(path).macs == traced.macs  # a .onnx path is a workload


def test_onnx_unsupported_node_is_named(tmp_path):
    onnx = pytest.importorskip("onnx", reason="the [onnx] extra is not installed")
    from onnx import TensorProto, helper

    node = helper.make_node("TopK", ["x", "k"], ["v", "i"], name="topk0")
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("v", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor("k", TensorProto.INT64, [1], [2])],
    )  # fmt: skip
    path = tmp_path / "topk.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(pimsim.WorkloadError, match="'topk0' \\(TopK\\): this operation"):
        load_workload(path)


def test_workload_file_naming_a_model(tmp_path):
    path = tmp_path / "vit.yaml"
    path.write_text("kind: workload\nname: my_vit\nmodel: vit_tiny_cifar10\n"
                    "input_shape: [3, 32, 32]\n")  # fmt: skip
    wl = load_workload(path)
    assert wl.name == "my_vit" and wl.macs == load_workload("vit_tiny_cifar10").macs
    path.write_text("kind: workload\nname: x\ninput_shape: [4]\n")
    with pytest.raises(pimsim.SpecError, match="either 'layers' or 'model'"):
        load_workload(path)
    path.write_text("kind: workload\nname: x\nmodel: nowhere:make\ninput_shape: [4]\n")
    with pytest.raises(pimsim.SpecError, match="cannot import"):
        load_workload(path)


class _Scores(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(16, 16)
        self.mm = MatMul()

    def forward(self, x):
        q = self.proj(x)
        return self.mm(q, q.transpose(-2, -1))


def test_rewritten_product_is_the_linear_layer_of_its_operand():
    """Each product on rewritten arrays computes exactly what a PIM linear layer holding the
    second operand as weights computes (same plan, same input scale)."""
    from pimsim.oracle._engine import make_plan
    from pimsim.oracle._layers import PimLinear

    torch.manual_seed(1)
    model = _Scores().eval()
    x = torch.randn(3, 10, 16)
    arch = pimsim.load_arch(RRAM, {"adc.bits": 8, "mapping.activation_matmul": "rewrite"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pim = oracle.convert(model, arch, (1, 10, 16), calibration=[x])
    q = model.proj(x).detach()
    array = pim.mm.array
    with torch.no_grad():
        got = pim.mm(q, q.transpose(-2, -1))
        for i in range(3):
            weights = nn.Linear(16, 10, bias=False)
            weights.weight.data = q[i].clone()
            plan = make_plan(arch, pim.pim_mapping.layers["mm"].__class__(
                **{**pim.pim_mapping.layers["mm"].__dict__, "matrices": 1}), True)
            ref = PimLinear("mm", plan, weights, float(array.input_scale))(q[i])
            assert torch.equal(got[i], ref)
    assert oracle.counts(pim)["mm"] > 0


def _hf_models():
    transformers = pytest.importorskip("transformers", reason="transformers is not installed")
    bert = transformers.BertForSequenceClassification(transformers.BertConfig(
        vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=128, max_position_embeddings=64))  # fmt: skip
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=500, n_positions=64, n_embd=64, n_layer=2, n_head=2,
        bos_token_id=0, eos_token_id=0))  # fmt: skip
    vit = transformers.ViTForImageClassification(transformers.ViTConfig(
        image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=128))  # fmt: skip
    return [(bert, (1, 16), torch.long), (gpt2, (1, 16), torch.long), (vit, (1, 3, 32, 32), None)]


def test_huggingface_models_trace_and_count_like_torch():
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    for model, shape, dtype in _hf_models():
        model.eval()
        x = torch.zeros(shape, dtype=dtype or torch.float32)
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
            model(x)
        wl = from_torch(model, shape)
        assert wl.macs == fc.get_total_flops() // 2, type(model).__name__
        assert any(la.kind == "matmul" for la in wl.layers)
        pimsim.evaluate(pimsim.load_arch(RRAM), wl, latency_model="analytical")


def test_sweep_over_attention_targets_takes_traced_and_factory_models(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        f"kind: sweep\nname: s\narch: {RRAM}\n"
        'workload: [vit_tiny_cifar10, "pimsim.workload._zoo_modern:BertTiny:64"]\n'
        "parameters:\n  mapping.activation_matmul: [digital, rewrite]\n"
    )
    sweep = pimsim.load_sweep(path)
    assert [w.name for w in sweep.workloads] == ["vit_tiny_cifar10", "BertTiny"]
    assert sweep.grid_size == 4  # 2 workloads x 2 targets
    assert sweep.workloads[1].macs == load_workload("bert_tiny").macs


def test_cli_evaluates_a_model_and_refuses_ambiguity(tmp_path):
    import json

    from tests._cli import run_cli

    model = "pimsim.workload._zoo_modern:BertTiny:64"
    out = run_cli("evaluate", str(RRAM), "--model", model, "--set",
                  "mapping.activation_matmul=rewrite", "--format", "json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["totals"]["macs"] == load_workload("bert_tiny").macs
    rows = {r["name"]: r for r in data["layers"]}
    assert rows["layers.0.attn.scores"]["cell_writes"] > 0
    both = run_cli("evaluate", str(RRAM), "bert_tiny", "--model", model)
    assert both.returncode == 2 and "not both" in both.stderr
    bad = run_cli("evaluate", str(RRAM), "--model", "nowhere:make:4")
    assert bad.returncode == 2 and "cannot import" in bad.stderr
