"""Learning rules on chip (backprop through transposed PIM reads, DFA through feedback arrays),
device update models, training cost and latency, and their CLI and sweep front ends."""

from __future__ import annotations

import json
import warnings
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch import nn

import pimsim
from pimsim.cli import main as cli
from pimsim.cost import training_cost
from pimsim.spec import with_overrides
from pimsim.training import DeviceWeights, OnChipNetwork, apply_pulses, train_onchip
from pimsim.workload._zoo import DeepMLP

ROOT = Path(__file__).resolve().parents[1]
RRAM = ROOT / "arch_specs" / "rram_onchip_22nm.yaml"
PCM = ROOT / "arch_specs" / "pcm_onchip_14nm.yaml"


@pytest.fixture(scope="module")
def rram():
    return pimsim.load_arch(RRAM)


@pytest.fixture(scope="module")
def exact_arch(rram):
    """Bit-serial inputs, 1-bit cells, an 8-bit ADC over 64 rows: every partial sum is
    resolved (step 1), so the PIM products are the integer products."""
    return with_overrides(
        rram,
        {"decomposition.scheme": "bit_serial", "cell.bits": 1, "dac.bits": 1,
         "decomposition.signed_encoding": "offset", "array.rows_per_adc_read": 64},
    )


def small_mlp(seed=0, sizes=(20, 16, 12, 3)):
    torch.manual_seed(seed)
    layers = OrderedDict()
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True), start=1):
        layers[f"fc{i}"] = nn.Linear(a, b)
        if i < len(sizes) - 1:
            layers[f"relu{i}"] = nn.ReLU()
    return nn.Sequential(layers)


def batch(n=8, features=20, classes=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, features, generator=g), torch.randint(0, classes, (n,), generator=g)


def network(model, arch, shape, rule, update="exact", **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return OnChipNetwork(model, arch, shape, rule, update, **kw)


# ------------------------------------------------------------------------- device models


def test_write_counter_equals_threshold_crossings_hand_checked():
    """w_max 1 and 5 levels: a nominal step of 0.5; threshold 1 step. Step 1 accumulates
    [[0.3, -0.2], [0.6, 0]]: only 0.6 crosses 0.5 (1 write, 1 pulse, 0.1 left). Step 2 adds
    [[0.3, -0.4], [0, 0]]: 0.6 and -0.6 cross (2 writes); 0.1 stays below. Total 3."""
    update = pimsim.load_arch(RRAM).cell.update.model_copy(
        update={"levels": 5, "nonlinearity_ltp": 0.0, "nonlinearity_ltd": 0.0, "c2c_noise": 0.0}
    )
    dev = DeviceWeights(torch.zeros(2, 2), "mixed_precision", update, w_max=1.0, threshold=1.0)
    assert dev.step == 0.5
    assert dev.apply(torch.tensor([[0.3, -0.2], [0.6, 0.0]])) == (1, 1)
    assert torch.allclose(dev.acc, torch.tensor([[0.3, -0.2], [0.1, 0.0]], dtype=torch.float64))
    assert torch.allclose(dev.weight, torch.tensor([[0.0, 0.0], [0.5, 0.0]], dtype=torch.float64))
    assert dev.apply(torch.tensor([[0.3, -0.4], [0.0, 0.0]])) == (2, 2)
    assert dev.counter.writes == 3 and dev.counter.pulses == 3
    assert torch.allclose(dev.weight, torch.tensor([[0.5, -0.5], [0.5, 0.0]], dtype=torch.float64))
    # a threshold of 2 steps (1.0): 0.375, 0.75, 1.125 -> fires with round(2.25) = 2 pulses,
    # 0.125 left; 0.5, 0.875 stay below (binary-exact values)
    dev2 = DeviceWeights(torch.zeros(1), "mixed_precision", update, w_max=1.0, threshold=2.0)
    counts = [dev2.apply(torch.tensor([0.375]))[0] for _ in range(5)]
    assert counts == [0, 0, 1, 0, 0]
    assert dev2.counter.pulses == 2 and float(dev2.acc) == 0.875


def test_exact_updates_write_every_weight_every_step():
    update = pimsim.load_arch(RRAM).cell.update.model_copy(update={"levels": 255})
    dev = DeviceWeights(torch.zeros(3, 4), "exact", update, w_max=1.0)
    for _ in range(3):
        dev.apply(torch.full((3, 4), 1e-4))
    assert dev.counter.writes == 36
    assert torch.allclose(dev.weight, torch.full((3, 4), 3e-4, dtype=torch.float64))


def test_pulse_model_linear_nonlinear_and_asymmetric():
    base = pimsim.load_arch(RRAM).cell.update
    linear = base.model_copy(update={"levels": 11, "nonlinearity_ltp": 0.0,
                                     "nonlinearity_ltd": 0.0, "c2c_noise": 0.0})
    f64 = torch.float64
    g = torch.zeros(1, dtype=f64)
    three = apply_pulses(g, torch.tensor([3]), linear)
    assert torch.allclose(three, torch.tensor([0.3], dtype=f64))
    curved = linear.model_copy(update={"nonlinearity_ltp": 3.0, "nonlinearity_ltd": 1.0})
    # the full range in levels - 1 pulses, whatever the non-linearity
    assert torch.allclose(apply_pulses(g, torch.tensor([10]), curved), torch.ones(1, dtype=f64))
    # potentiating steps shrink as the state rises (saturating), one pulse at a time
    states = [g]
    for _ in range(10):
        states.append(apply_pulses(states[-1], torch.tensor([1]), curved))
    steps = [float(b - a) for a, b in zip(states[:-1], states[1:], strict=True)]
    assert all(s1 > s2 > 0 for s1, s2 in zip(steps[:-1], steps[1:], strict=True))
    # n pulses at once = n single pulses (closed form composes)
    assert torch.allclose(apply_pulses(g, torch.tensor([4]), curved), states[4])
    # asymmetry: from mid-range, one LTP pulse and one LTD pulse move by different amounts
    mid = torch.full((1,), 0.5, dtype=torch.float64)
    up = float(apply_pulses(mid, torch.tensor([1]), curved) - mid)
    down = float(mid - apply_pulses(mid, torch.tensor([-1]), curved))
    assert up > 0 and down > 0 and abs(up - down) > 0.01
    # write noise: spread grows with the pulses, mean stays near the nominal change
    noisy = linear.model_copy(update={"c2c_noise": 0.5})
    gen = torch.Generator().manual_seed(0)
    many = apply_pulses(torch.full((20000,), 0.5, dtype=torch.float64),
                        torch.full((20000,), 2), noisy, gen)
    assert abs(float(many.mean()) - 0.7) < 0.002
    assert abs(float(many.std()) - 0.5 * 2**0.5 / 10) < 0.003


# ------------------------------------------------------------------------- learning rules


def _signed_8bit(t):
    """The oracle's per-batch signed input quantization at 8 bits: (integers, scale)."""
    scale = t.abs().max().to(torch.float64) / 127
    return torch.round(t.to(torch.float64) / scale).clamp(-127, 127), scale


def test_transposed_read_is_the_integer_product_of_quantized_errors(exact_arch):
    """Where the ADC resolves every partial sum, a transposed read is exactly the quantized
    error (times the per-channel weight scale, then 8-bit signed) through the forward layer's
    integer weights, for a linear layer and (folded back onto the input) a conv layer."""
    torch.manual_seed(0)
    net = network(pimsim.zoo_model("lenet5_mnist"), exact_arch, (1, 1, 28, 28), "backprop")
    g = torch.Generator().manual_seed(3)
    fc = net.layers["fc2"]
    grad = torch.randn(5, 84, generator=g)
    q, s = _signed_8bit(grad * fc.pim.weight_scale.to(grad.dtype))
    expected = (q @ fc.pim.weight_int.to(torch.float64)) * s  # [5, 84] x [84, 120]
    got = fc.transposed_read(grad, (5, 120))
    assert torch.allclose(got.to(torch.float64), expected, rtol=1e-6, atol=1e-9)
    conv = net.layers["conv2"]
    grad = torch.randn(2, 16, 10, 10, generator=g)
    rows = grad.permute(0, 2, 3, 1).reshape(-1, 16) * conv.pim.weight_scale.to(grad.dtype)
    q, s = _signed_8bit(rows)
    cols = (q @ conv.pim.weight_int.reshape(16, -1).to(torch.float64)) * s  # [200, 150]
    assert torch.allclose(conv.transposed(rows).to(torch.float64), cols, rtol=1e-6, atol=1e-9)
    expected = F.fold(cols.view(2, 100, 150).transpose(1, 2), (14, 14), kernel_size=5)
    got = conv.transposed_read(grad, (2, 6, 14, 14))
    # the fold adds up to 25 float32 column values: float32 rounding of such sums
    eps = 25 * torch.finfo(torch.float32).eps * float(cols.abs().max())
    assert torch.allclose(got.to(torch.float64), expected, rtol=0, atol=eps)


def test_backprop_gradients_match_float_autograd(exact_arch):
    """With every partial sum resolved, the on-chip gradients (forward on the arrays, errors
    through the transposed arrays, 8-bit quantized) point where float autograd's do. The bound
    is empirical (conv1, four layers of 8-bit errors deep, gave cosine 0.974); the exact
    transposed product is checked by the test above."""
    torch.manual_seed(0)
    model = pimsim.zoo_model("lenet5_mnist")
    net = network(model, exact_arch, (1, 1, 28, 28), "backprop")
    x = torch.rand(16, 1, 28, 28)
    y = torch.randint(0, 10, (16,))
    F.cross_entropy(net.model(x), y).backward()
    F.cross_entropy(model(x), y).backward()
    ref = dict(model.named_modules())
    for name, layer in net.layers.items():
        a = layer.module.weight.grad.flatten()
        b = ref[name].weight.grad.flatten()
        assert F.cosine_similarity(a, b, dim=0) > 0.95, name  # 8-bit errors, 4 layers deep
        assert 0.85 < float(a.norm() / b.norm()) < 1.15, name
    counts = net.conversions()
    assert "transposed" not in counts["conv1"]  # the first layer needs no input error
    assert all(counts[n]["transposed"] > 0 for n in list(net.layers)[1:])


def test_dfa_feedback_matrices_stay_fixed_across_steps(rram):
    net = network(small_mlp(), rram, (1, 20), "dfa", "exact", seed=3)
    fixed = {n: layer.feedback.w_layout.clone() for n, layer in net.layers.items()
             if layer.feedback is not None}
    assert set(fixed) == {"fc1", "fc2"}
    before = {n: layer.pim.w_layout.clone() for n, layer in net.layers.items()}
    x, y = batch()
    for _ in range(3):
        net.step(x, y, lr=0.5)
    for n, layout in fixed.items():
        assert torch.equal(net.layers[n].feedback.w_layout, layout), n
    assert all(not torch.equal(net.layers[n].pim.w_layout, before[n]) for n in before)


def test_dfa_step_updates_every_layer_from_the_output_error_alone(exact_arch):
    """One DFA step changes every layer; each hidden layer's update is exactly what its
    feedback array makes of the output error e (times the ReLU derivative and the layer input),
    recomputed here independently; no transposed read exists or runs."""
    net = network(small_mlp(), exact_arch, (1, 20), "dfa", "exact", seed=5)
    assert all(layer.transposed is None for layer in net.layers.values())
    x, y = batch(n=6)
    # the forward values each layer sees, from the oracle layers directly
    acts, h = {}, x
    with torch.no_grad():
        for name, layer in net.layers.items():
            a = layer.pim(h) + layer.bias
            acts[name] = (h, a)
            h = torch.relu(a)
        logits = a
    e = (F.softmax(logits, 1) - F.one_hot(y, 3).float()) / len(y)
    lr = 0.5
    before = {n: layer.devices.weight.clone() for n, layer in net.layers.items()}
    fb = {n: layer.feedback for n, layer in net.layers.items() if layer.feedback is not None}
    with torch.no_grad():
        expected_err = {n: f(e) for n, f in fb.items()}  # read before the step (same arrays)
    net.step(x, y, lr)
    for name, layer in net.layers.items():
        delta = layer.devices.weight - before[name]
        assert delta.abs().sum() > 0, name
        xin, a = acts[name]
        err = e if name == "fc3" else expected_err[name] * (a > 0)
        expected = -lr * (err.t() @ xin).to(torch.float64)
        assert torch.allclose(delta, expected, rtol=1e-4, atol=1e-7), name
    assert torch.allclose(net.last_error, e, atol=1e-7)


def test_dfa_error_enters_conv_layers_after_activation_and_pooling(rram):
    torch.manual_seed(0)
    net = network(pimsim.zoo_model("lenet5_mnist"), rram, (1, 1, 28, 28), "dfa")
    assert net.layers["conv1"].block_shape == (6, 14, 14)  # after relu1 and pool1
    assert net.layers["conv2"].block_shape == (400,)  # after relu2, pool2 and flatten
    assert net.layers["fc3"].feedback is None  # the last layer learns from e itself
    assert net.layers["conv1"].feedback.plan.k_rows == 10  # n_classes rows drive the array


def test_onchip_training_learns_and_mixed_precision_writes_less(rram):
    x, y = batch(n=256, seed=2)
    w = torch.randn(20, 3, generator=torch.Generator().manual_seed(4))
    y = (x @ w).argmax(1)  # a learnable rule
    data = ((x[:192], y[:192]), (x[192:], y[192:]))
    runs = {}
    for update in ("exact", "mixed_precision"):
        runs[update] = train_onchip(small_mlp(), rram, *data, rule="backprop", update=update,
                                    lr=0.5, epochs=4, batch_size=16, threshold=1.0)
    assert runs["exact"].accuracy > 0.6
    assert runs["mixed_precision"].accuracy > 0.6
    weights = sum(layer.module.weight.numel() for layer in runs["exact"].network.layers.values())
    # exact SGD rewrites every weight whose update is non-zero (dead ReLUs give zeros)
    assert 0.5 * weights * 12 < runs["exact"].writes_per_epoch <= weights * 12
    assert runs["mixed_precision"].writes_per_epoch < runs["exact"].writes_per_epoch / 5


# ------------------------------------------------------------------------- training cost


def test_training_cost_breakdown_area_and_measured_writes(rram):
    wl = pimsim.load_workload("mlp4_mnist")
    bp = training_cost(rram, wl, rule="backprop", update="exact", batch_size=4)
    dfa = training_cost(rram, wl, rule="dfa", update="exact", batch_size=4)
    for rep in (bp, dfa):
        assert rep.energy_per_step_pj == pytest.approx(sum(rep.energy_breakdown_pj.values()))
        assert rep.energy_per_epoch_pj == pytest.approx(rep.energy_per_step_pj * 2000)
        assert not rep.writes_measured
        assert rep.writes_per_step == 784 * 256 + 2 * 256 * 256 + 256 * 10
    assert bp.energy_breakdown_pj["feedback"] == 0 < bp.energy_breakdown_pj["backward"]
    assert dfa.energy_breakdown_pj["backward"] == 0 < dfa.energy_breakdown_pj["feedback"]
    assert bp.area_breakdown_mm2["feedback_arrays"] == 0 < dfa.area_breakdown_mm2["feedback_arrays"]
    # measured writes: fewer writes, less write energy, nothing else changes
    few = {"fc1": 100.0, "fc2": 10.0, "fc3": 10.0, "fc4": 1.0}
    mp = training_cost(rram, wl, rule="backprop", update="mixed_precision", batch_size=4,
                       writes_per_step=few, pulses_per_step=few)
    assert mp.writes_measured and mp.writes_per_step == 121
    assert mp.energy_breakdown_pj["write"] == pytest.approx(121 * rram.cell.write_energy_pj)
    assert mp.energy_breakdown_pj["forward"] == bp.energy_breakdown_pj["forward"]


def test_backprop_error_latency_grows_with_depth_dfa_does_not(rram):
    """From the task-graph simulation: backprop's errors arrive layer after layer, DFA's at
    once, so the ratio of their error-delivery times grows with the number of layers."""
    ratios, dfa_times = [], []
    for n in range(2, 6):
        wl = pimsim.from_torch(DeepMLP(hidden=(64,) * (n - 1)), (1, 1, 28, 28), name=f"m{n}")
        bp = training_cost(rram, wl, rule="backprop", batch_size=1)
        dfa = training_cost(rram, wl, rule="dfa", batch_size=1)
        ratios.append(bp.error_latency_ns / dfa.error_latency_ns)
        dfa_times.append(dfa.error_latency_ns)
        assert bp.forward_latency_ns == pytest.approx(dfa.forward_latency_ns)
        assert bp.latency_per_step_ns >= bp.forward_latency_ns + bp.error_latency_ns - 1e-6
    assert all(b > a for a, b in zip(ratios[:-1], ratios[1:], strict=True))
    assert ratios[-1] > 3
    assert max(dfa_times) < 1.5 * min(dfa_times)


def test_task_graph_serialises_a_shared_resource():
    from pimsim.dataflow._tasks import TaskGraph

    g = TaskGraph()
    g.add("a", 10.0, "r")
    g.add("b", 5.0, "r")  # waits for the resource
    g.add("c", 3.0, None, ["a"])
    g.add("d", 1.0, "s", ["b", "c"])
    t = g.simulate()
    assert t.finish_ns == {"a": 10.0, "b": 15.0, "c": 13.0, "d": 16.0}
    assert t.busy_ns() == {"r": 15.0, "s": 1.0}
    with pytest.raises(ValueError, match="not \\(yet\\) a task"):
        g.add("e", 1.0, None, ["zzz"])


# ------------------------------------------------------------------------- CLI and sweeps


def test_cli_train_rule_and_evaluate_training(tmp_path):
    runner = CliRunner()
    summary = tmp_path / "s.json"
    res = runner.invoke(cli, ["train", str(PCM), "mlp_mnist", "--rule", "dfa", "--update",
                              "mixed_precision", "--epochs", "1", "--train-samples", "256",
                              "--batch-size", "32", "--summary", str(summary), "-o",
                              str(tmp_path / "m.pt")])
    assert res.exit_code == 0, res.output
    data = json.loads(summary.read_text())
    assert data["rule"] == "dfa" and data["update"] == "mixed_precision"
    assert set(data["writes_per_step"]) == {"fc1", "fc2", "fc3"}
    assert data["training_cost"]["writes_measured"]
    assert (tmp_path / "m.csv").exists()
    res = runner.invoke(cli, ["evaluate", str(PCM), "mlp_mnist", "--training", "dfa",
                              "--writes-from", str(summary), "--format", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    t = out["training"]
    assert t["rule"] == "dfa" and t["update"] == "mixed_precision" and t["writes_measured"]
    assert t["steps_per_epoch"] == 8 and t["batch_size"] == 32
    assert t["writes_per_step"] == pytest.approx(sum(data["writes_per_step"].values()))
    assert t["energy_per_epoch_pj"] == pytest.approx(8 * t["energy_per_step_pj"])
    res = runner.invoke(cli, ["evaluate", str(PCM), "mlp_mnist", "--update", "pulsed"])
    assert res.exit_code != 0 and "--training" in res.output


def test_training_sweep_records_accuracy_and_training_cost(tmp_path):
    sweep = tmp_path / "s.yaml"
    sweep.write_text(
        f"kind: sweep\nname: rules\narch: {PCM}\nworkload: mlp_mnist\n"
        "set: {training.epochs: 1, training.batch_size: 32}\n"
        "parameters:\n  training.rule: [backprop, dfa]\n"
        "objectives: [training_energy_pj:min, accuracy:max]\n"
        "training: {train_samples: 128, images: 100}\n"
    )
    result = pimsim.sweep(sweep, tmp_path / "s.sqlite", workers=0, progress=False)
    assert result.evaluated == 2 and result.oracle_runs == 2
    frame = result.frame()
    assert set(frame["training.rule"]) == {"backprop", "dfa"}
    for col in ("accuracy", "training_energy_pj", "training_latency_ns", "training_writes",
                "training_area_mm2"):
        assert frame[col].notna().all() and (frame[col] >= 0).all(), col
    dfa = frame[frame["training.rule"] == "dfa"].iloc[0]
    bp = frame[frame["training.rule"] == "backprop"].iloc[0]
    assert dfa["training_area_mm2"] > bp["training_area_mm2"]  # the feedback arrays


def test_training_metric_without_training_section_is_an_error(tmp_path):
    sweep = tmp_path / "s.yaml"
    sweep.write_text(f"kind: sweep\nname: r\narch: {PCM}\nworkload: mlp_mnist\n"
                     "objectives: [training_energy_pj:min]\n")
    with pytest.raises(pimsim.PimsimError, match="training:"):
        pimsim.load_sweep(sweep)
