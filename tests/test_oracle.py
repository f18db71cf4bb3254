"""Accuracy oracle: bit-exactness against an int64 reference, agreement with a deliberately simple
loop reference (which counts its own ADC calls), and conversions equal to the cost model's."""

import itertools
import platform
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import pimsim  # noqa: E402
import pimsim.oracle  # noqa: E402
from pimsim.errors import MappingError  # noqa: E402
from tests.conftest import LARGE_TRACED  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


CONFIGS = {
    "native": {},
    "differential": {"decomposition.scheme": "differential"},
    "bit_serial": {"decomposition.scheme": "bit_serial"},
    "differential_digital": {
        "decomposition.signed_encoding": "differential_digital",
        "cell.bits": 2,
    },
    "offset_2bit_cells_2bit_dac": {"cell.bits": 2, "dac.bits": 2},
    "bit_serial_offset": {
        "decomposition.scheme": "bit_serial",
        "decomposition.signed_encoding": "offset",
    },
    "signed_inputs_1bit_dac": {
        "decomposition.scheme": "bit_serial",
        "decomposition.signed_inputs": "signed",
    },
    "signed_inputs_offset_dac": {"decomposition.signed_inputs": "signed"},
    "block_diagonal": {"mapping.pack_groups": "block_diagonal"},
    "offset_digital": {"decomposition.offset_reference": "digital"},
    "block_diagonal_offset_digital": {
        "mapping.pack_groups": "block_diagonal",
        "decomposition.offset_reference": "digital",
    },
}


class TinyConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(6, 4, 3, stride=2, padding=1)  # K = 54: not a multiple of 32
        self.grouped = nn.Conv2d(4, 6, 3, padding=1, groups=2)
        self.depthwise = nn.Conv2d(6, 6, 3, padding=1, groups=6, bias=False)
        self.fc = nn.Linear(6 * 4 * 4, 5)  # K = 96

    def forward(self, x):
        x = self.depthwise(self.grouped(self.conv(x)))
        return self.fc(torch.flatten(x, 1))


def convert(model, arch, shape, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # per-batch scales: fine for these checks
        return pimsim.oracle.convert(model, arch, shape, **kw)


def layer_rows(layer, x):
    """The im2col rows a PIM layer feeds to its arrays."""
    if isinstance(layer, pimsim.oracle.PimConv2d):
        cols = torch.nn.functional.unfold(x, **layer.conv_args)
        return cols.transpose(1, 2).reshape(-1, cols.shape[1])
    return x.reshape(-1, x.shape[-1])


def capture_inputs(pim):
    seen = {}
    for name, mod in pim.named_modules():
        if isinstance(mod, pimsim.oracle.PimConv2d | pimsim.oracle.PimLinear):
            mod.register_forward_pre_hook(lambda m, a, n=name: seen.__setitem__(n, a[0]))
    return seen


def int_reference(layer, x_int):
    """int64 product of quantized inputs and quantized weights, per group."""
    w = layer.weight_int.to(torch.int64)
    x = x_int.to(torch.int64)
    if isinstance(layer, pimsim.oracle.PimLinear):
        return (x @ w.t()).view(x.shape[0], 1, -1)
    g = layer.groups
    w = w.reshape(g, w.shape[0] // g, -1)  # [G, N_g, K_g]
    xs = x.view(x.shape[0], g, -1)
    return torch.einsum("bgk,gnk->bgn", xs, w).reshape(x.shape[0], 1, -1)


def run_tiny(arch, config: str, seed: int, batch: int):
    """Convert and run TinyConvNet; return the PIM layers with the inputs each received."""
    torch.manual_seed(seed)
    pim = convert(TinyConvNet(), arch, (1, 6, 8, 8))
    seen = capture_inputs(pim)
    pim(torch.rand(batch, 6, 8, 8) - (0.3 if "signed" in config else 0.0))
    out = [(n, m, seen[n]) for n, m in pim.named_modules() if n in seen]
    assert len(out) == 4, "every PIM layer of TinyConvNet must be captured"
    return out


@pytest.mark.parametrize("config", CONFIGS, ids=list(CONFIGS))
def test_bit_exact_with_enough_adc_bits(small_path, config):
    arch = pimsim.load_arch(small_path, CONFIGS[config])
    for name, layer, inputs in run_tiny(arch, config, seed=1, batch=3):
        assert layer.plan.step == 1.0, "the ADC must resolve every level for this test"
        x_int, _ = layer.quantize_input(layer_rows(layer, inputs))
        got = layer.integer_matmul(x_int)
        want = int_reference(layer, x_int)
        assert torch.equal(
            got.reshape(want.shape[0], -1), want.to(torch.float64).reshape(want.shape[0], -1)
        ), name


def loop_reference(layer, x_int):
    """Explicit loops over matrices, row groups, input cycles, slices and columns; one ADC call
    per partial sum. With a reference column (``offset`` weights, ``offset_reference: column``)
    each column tile of ``plan.tile_cols`` columns has one, holding the offset in every row (a
    packed matrix's off-diagonal cells then hold the offset too), converted once per row group,
    cycle and slice and subtracted from its tile's columns. Returns (integer outputs [B, M, N],
    number of ADC calls)."""
    plan = layer.plan
    arch_bits = plan.input_bits, plan.dac_bits, plan.weight_bits, plan.cell_bits
    ib, db, wb, cb = arch_bits
    m, k, n = plan.matrices, plan.k_rows, plan.n_cols
    weights = layer._matrices(layer.weight_int.to(torch.int64))[0].tolist()  # [M][K][N]
    mask = layer._matrices(layer.weight_int.to(torch.int64))[1].tolist()
    calls = 0
    lo, hi = plan.code_range

    def adc(p):
        nonlocal calls
        calls += 1
        return min(max(round(p / plan.step), lo), hi)  # Python's round: half to even

    cycles = -(-ib // db)
    enc = plan.encoding
    magnitude = wb - 1 if enc.startswith("differential") else wb
    slices = -(-magnitude // cb)
    groups = [list(r) for r in plan.row_index.tolist()]
    reference = enc == "offset" and plan.references > 0
    off = 2 ** (wb - 1) - 1
    out = []
    for row in x_int.to(torch.int64).tolist():
        y_b = []
        for mi in range(m):
            xs = row[mi * k : (mi + 1) * k]
            if plan.signed_inputs:
                xs = [v + 2 ** (ib - 1) if db > 1 else v % 2**ib for v in xs]
            refs = {}  # (tile, group, cycle, slice) -> code: one conversion per array
            y_m = []
            for col in range(n):
                tile = col // plan.tile_cols if reference else None
                total = 0
                for group in groups:
                    rows = [r for r in group if r < k]
                    for c in range(cycles):
                        cw = 2 ** (c * db)
                        if plan.signed_inputs and db == 1 and c == cycles - 1:
                            cw = -(2 ** (ib - 1))
                        xc = {r: (xs[r] >> (c * db)) & (2**db - 1) for r in rows}
                        for s in range(slices):
                            sw = 2 ** (s * cb)
                            if enc == "twos_complement" and s == slices - 1:
                                sw = -(2 ** (wb - 1))

                            def cell(value, r, s=s):
                                return (value >> (s * cb)) & (2**cb - 1)

                            if enc == "offset":
                                stored = {
                                    r: (weights[mi][r][col] + off)
                                    * (1 if reference else int(mask[mi][r][col]))
                                    for r in rows
                                }
                                p = sum(xc[r] * cell(stored[r], r) for r in rows)
                                total += cw * sw * adc(p)
                                key = (tile, groups.index(group), c, s)
                                if reference and key not in refs:
                                    refs[key] = adc(sum(xc[r] * cell(off, r) for r in rows))
                                if reference:
                                    total -= cw * sw * refs[key]
                            elif enc == "twos_complement":
                                p = sum(xc[r] * cell(weights[mi][r][col] % 2**wb, r) for r in rows)
                                total += cw * sw * adc(p)
                            else:
                                pos = sum(
                                    xc[r] * cell(max(weights[mi][r][col], 0), r) for r in rows
                                )
                                neg = sum(
                                    xc[r] * cell(max(-weights[mi][r][col], 0), r) for r in rows
                                )
                                if enc == "differential_analog":
                                    total += cw * sw * adc(pos - neg)
                                else:
                                    total += cw * sw * (adc(pos) - adc(neg))
                total *= plan.step
                if enc == "offset" and not reference:  # cells hold w + off, applied: xs
                    total -= (2 ** (wb - 1) - 1) * sum(
                        (xs[r] if db > 1 or not plan.signed_inputs else row[mi * k + r])
                        * int(mask[mi][r][col])
                        for r in range(k)
                    )
                if plan.signed_inputs and db > 1:
                    total -= 2 ** (ib - 1) * sum(weights[mi][r][col] for r in range(k))
                y_m.append(total)
            y_b.append(y_m)
        out.append(y_b)
    return torch.tensor(out, dtype=torch.float64), calls


@pytest.mark.parametrize("adc_bits", [3, 5])
@pytest.mark.parametrize("config", CONFIGS, ids=list(CONFIGS))
def test_finite_adc_matches_loop_reference(small_path, config, adc_bits):
    arch = pimsim.load_arch(small_path, {**CONFIGS[config], "adc.bits": adc_bits})
    for name, layer, inputs in run_tiny(arch, config, seed=2, batch=2):
        rows = layer_rows(layer, inputs)[:3]  # a few rows keep the loops quick
        x_int, _ = layer.quantize_input(rows)
        layer.reset_counts()
        got = layer.integer_matmul(x_int)
        want, calls = loop_reference(layer, x_int)
        assert torch.equal(got, want), (name, (got - want).abs().max())
        assert layer.conversions == calls


def assert_forward_is_integer_rescaled(name, layer, inputs):
    """The layer's float forward on ``inputs`` equals its exact integer result x input scale x
    weight scale + bias, to float32 rounding."""
    rows = layer_rows(layer, inputs)
    x_int, scale = layer.quantize_input(rows)
    want = layer.integer_matmul(x_int).reshape(rows.shape[0], -1) * (scale * layer.weight_scale)
    if layer.bias is not None:
        want = want + layer.bias.to(torch.float64)
    got = layer.matmul(rows, layer.bias).to(torch.float64)
    tol = 1e-5 * want.abs().max() + 1e-6
    assert (got - want).abs().max() <= tol, (name, (got - want).abs().max())


@pytest.mark.parametrize("adc_bits", [4, 16])
@pytest.mark.parametrize("config", CONFIGS, ids=list(CONFIGS))
def test_forward_is_the_integer_result_rescaled(small_path, config, adc_bits):
    """The float forward (codes x step - corrections, x input scale x weight scale, + bias, fused
    in two passes) equals the exact integer path rescaled, to float32 rounding."""
    arch = pimsim.load_arch(small_path, {**CONFIGS[config], "adc.bits": adc_bits})
    for name, layer, inputs in run_tiny(arch, config, seed=3, batch=2):
        assert_forward_is_integer_rescaled(name, layer, inputs)


@pytest.mark.parametrize("scheme", ["native", "differential"])
@pytest.mark.parametrize("adc_range", ["full_scale", "calibrated"])
def test_forward_with_fixed_scales_after_calibration(small_path, adc_range, scheme):
    """With input scales fixed from calibration batches (a tensor scale, no per-batch measure) and
    an ADC range set from them, the forward still equals the integer result rescaled."""
    over = {"adc.bits": 5, "adc.range": adc_range, "decomposition.scheme": scheme}
    arch = pimsim.load_arch(small_path, over)
    torch.manual_seed(4)
    calib = [torch.rand(4, 6, 8, 8)]
    pim = convert(TinyConvNet(), arch, (1, 6, 8, 8), calibration=calib)
    seen = capture_inputs(pim)
    pim(torch.rand(2, 6, 8, 8))
    assert len(seen) == 4
    for name, layer in pim.named_modules():
        if name not in seen:
            continue
        assert not layer.dynamic_scale
        assert_forward_is_integer_rescaled(name, layer, seen[name])


def test_in_range_adc_shortcut_is_exact(small_path):
    """Skipping the clip (and, with a step of 1, the rounding) for ideal integer partial sums
    within the full scale gives the same codes as the full ADC, over every such partial sum."""
    from pimsim.oracle import _engine as E

    for over, bits in itertools.product(
        ({}, {"decomposition.signed_encoding": "differential_analog"}), (3, 5, 8, 16)
    ):
        arch = pimsim.load_arch(small_path, {**over, "adc.bits": bits})
        net = pimsim.from_torch(nn.Sequential(nn.Linear(32, 4)), (1, 32))
        lm = next(iter(pimsim.map_network(arch, net).layers.values()))
        plan = E.make_plan(arch, lm, signed_inputs=False)
        fs = int(plan.full_scale)
        lo = -fs if plan.bipolar else 0
        p = torch.arange(lo, fs + 1, dtype=torch.float32)
        fast = E.adc_quantize_(plan, p.clone(), in_range=True)
        full = E.adc_quantize_(plan, p.clone(), in_range=False)
        assert torch.equal(fast, full), (over, bits)
        want = (p.to(torch.float64) / plan.step).round().clamp(*plan.code_range)
        assert torch.equal(full.to(torch.float64), want)


@pytest.mark.parametrize("size", [1000, 2**24 + 5])
def test_count_nonzero_is_exact(size):
    from pimsim.oracle import _engine as E

    gen = torch.Generator().manual_seed(size)
    t = torch.randint(-3, 4, (size // 5, 5), generator=gen).float()
    assert E.count_nonzero(t) == int(torch.count_nonzero(t))
    assert E.count_nonzero(t.abs(), nonnegative=True) == int(torch.count_nonzero(t))


def zoo_cases():
    for path, name in itertools.product(
        sorted((ROOT / "arch_specs").glob("*.yaml")), pimsim.zoo_names()
    ):
        if name in LARGE_TRACED and path.stem != "isaac":
            continue  # one spec is enough for them (tests/conftest.py)
        yield pytest.param(path, name, id=f"{path.stem}-{name}")


def zoo_input(name: str, batch: int, device: str) -> torch.Tensor:
    """A batch for zoo network ``name``: token ids for BERT, else images (values on the CPU,
    shapes alone on the meta device)."""
    shape = (batch, *pimsim.workload._zoo.ZOO[name][1])
    if name == "bert_tiny":
        return torch.zeros(shape, dtype=torch.long, device=device)
    return torch.rand(shape) if device == "cpu" else torch.empty(shape, device="meta")


def cost_model_conversions(arch, net, mapping, batch: int) -> dict:
    """The cost model's ADC conversions per layer for ``batch`` inputs (layers with any)."""
    report = pimsim.evaluate(arch, net, mapping)
    return {
        r["name"]: r["adc_conversions"] * batch
        for r in report.layers.to_dict("records")
        if r["adc_conversions"]
    }


@pytest.mark.parametrize("path, name", list(zoo_cases()))
def test_conversions_equal_cost_model_times_batch(path, name):
    # the count does not depend on the ADC range; full scale needs no calibration data (and
    # most networks here run on the meta device, which has no values to calibrate on)
    arch = pimsim.load_arch(path, {"adc.range": "full_scale"})
    model = pimsim.zoo_model(name)
    net = pimsim.load_workload(name)
    try:
        mapping = pimsim.map_network(arch, net)
    except MappingError:
        arch = pimsim.with_overrides(arch, {"chip.tiles": "auto"})
        mapping = pimsim.map_network(arch, net)
    real = name in ("mlp_mnist", "lenet5_mnist")  # the others run on the meta device
    device = "cpu" if real else "meta"
    pim = convert(model.to(device), arch, (1, *net.input_shape), mapping=mapping)
    batch = 3
    pim(zoo_input(name, batch, device))
    assert pimsim.oracle.counts(pim) == cost_model_conversions(arch, net, mapping, batch)


def test_qat_model_converts_and_matches_its_fake_quantized_forward(small_path):
    """A QAT model's layers are traced as conv/linear leaves; with an ADC that resolves every
    level, the PIM model computes the QAT model's integers (outputs agree to float rounding)."""
    from pimsim.training._qat import quantize_model

    torch.manual_seed(0)
    model = pimsim.zoo_model("lenet5_mnist")
    qat = quantize_model(model, weight_bits=4, input_bits=4, input_shape=(1, 1, 28, 28))
    qat.train()
    with torch.no_grad():
        qat(torch.rand(64, 1, 28, 28))  # calibrate the input scales
    qat.eval()
    arch = pimsim.load_arch(small_path, {"decomposition.scheme": "bit_serial"})
    net = pimsim.from_torch(qat, (1, 1, 28, 28))
    assert net.macs == 416_520 and net.layer("conv1").kind == "conv"
    pim = pimsim.oracle.convert(qat, arch, (1, 1, 28, 28))  # scales from the QAT model
    x = torch.rand(8, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(pim(x), qat(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("bits, sign", [(4, "signed"), (6, "unsigned"), (6, "signed")])
def test_requantized_qat_scale_keeps_the_trained_range(small_path, bits, sign):
    """Evaluating a QAT model under other input bits or a forced input sign keeps each layer's
    trained range: new scale x new largest integer == trained scale x trained largest integer."""
    from pimsim.oracle._layers import input_levels
    from pimsim.training._qat import quant_layers, quantize_model

    torch.manual_seed(0)
    qat = quantize_model(pimsim.zoo_model("mlp_mnist"), 4, 4, input_shape=(1, 1, 28, 28))
    qat.train()
    with torch.no_grad():
        qat(torch.rand(32, 1, 28, 28))
    qat.eval()
    over = {"decomposition.input_bits": bits, "decomposition.signed_inputs": sign}
    arch = pimsim.load_arch(small_path, over)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pim = pimsim.oracle.convert(qat, arch, (1, 1, 28, 28))
    layers = dict(pim.named_modules())
    for name, q in quant_layers(qat).items():
        trained = float(q.input_scale) * input_levels(q.input_bits, q.signed_input)[1]
        layer = layers[name]
        now = float(layer.input_scale) * input_levels(bits, layer.plan.signed_inputs)[1]
        assert now == pytest.approx(trained, rel=1e-12), name


def test_activity_zero_fraction_and_code_histogram(small_path):
    arch = pimsim.load_arch(small_path, {"adc.bits": 4})
    model = nn.Sequential(nn.Linear(40, 6))
    pim = convert(model, arch, (1, 40))
    pimsim.oracle.record_codes(pim)
    x = torch.rand(10, 40)
    x[:, :20] = 0  # half the inputs are zero
    pim(x)
    layer = pim[0]
    hist = pimsim.oracle.code_histograms(pim)["0"]
    assert len(hist) == 2**4 and sum(hist) == layer.conversions == pimsim.oracle.counts(pim)["0"]
    x_int, _ = layer.quantize_input(x)
    zeros = float((x_int == 0).double().mean())
    assert zeros >= 0.5  # the zeroed half, plus any that round to 0
    assert pimsim.oracle.zero_fraction(pim)["0"] == pytest.approx(zeros)
    # native preset, one 4-bit input cycle: an input counts as active when non-zero
    assert pimsim.oracle.activity(pim).for_layer("0") == pytest.approx(1 - zeros)
    pimsim.oracle.reset_counts(pim)
    assert pimsim.oracle.counts(pim)["0"] == 0 and pimsim.oracle.code_histograms(pim) == {}


def test_data_driven_adc_ranges_need_calibration_data(small_path):
    for policy in ("calibrated", "learned"):
        arch = pimsim.load_arch(small_path, {"adc.range": policy})
        with pytest.raises(pimsim.SpecError, match="calibration"):
            pimsim.oracle.convert(nn.Sequential(nn.Linear(4, 2)), arch, (1, 4))


def test_learned_adc_range_minimises_reconstruction_error(small_path):
    """The learned range is no worse, in mean squared ADC error on the calibration partial sums,
    than the full-scale range or the calibrated percentile (an independent recomputation)."""
    overrides = {
        "adc.bits": 3,
        "decomposition.input_bits": 6,
        "decomposition.weight_bits": 6,
        "array.rows_per_adc_read": 32,
    }
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 16))
    data = [torch.rand(128, 32)]
    plans = {}
    for policy in ("full_scale", "calibrated", "learned"):
        arch = pimsim.load_arch(small_path, {**overrides, "adc.range": policy})
        plans[policy] = pimsim.oracle.convert(model, arch, (1, 32), calibration=data)[0].plan
    layer = pimsim.oracle.convert(
        model, pimsim.load_arch(small_path, overrides), (1, 32), calibration=data
    )[0]
    x_int, _ = layer.quantize_input(data[0])
    w = layer._matrices(layer.weight_int.to(torch.int64))[0][0]
    p = (x_int.to(torch.int64) @ (w + 31)).to(torch.float64).reshape(-1)  # offset, one slice

    def mse(plan):
        codes = (p / plan.step).round().clamp(0, 7)
        return float((codes * plan.step - p).square().mean())

    assert mse(plans["learned"]) <= mse(plans["calibrated"]) * 1.01
    assert mse(plans["learned"]) < mse(plans["full_scale"])


def test_calibrated_adc_range_covers_the_percentile(small_path):
    """With adc.range: calibrated the ADC spans the chosen percentile of the partial sums seen on
    the calibration batches: about (100 - percentile)% of them clip, and the step shrinks."""
    overrides = {
        "adc.bits": 4,
        "decomposition.input_bits": 6,
        "decomposition.weight_bits": 6,
        "array.rows_per_adc_read": 32,
    }
    nominal = pimsim.load_arch(small_path, overrides)
    arch = pimsim.load_arch(
        small_path, {**overrides, "adc.range": "calibrated", "adc.range_percentile": 90.0}
    )
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32))
    data = [torch.rand(256, 64)]
    pim = pimsim.oracle.convert(model, arch, (1, 64), calibration=data)
    full = pimsim.oracle.convert(model, nominal, (1, 64), calibration=data)
    layer, ref = pim[0], full[0]
    assert layer.plan.step < ref.plan.step
    assert layer.plan.adc_full_scale < ref.plan.full_scale == layer.plan.full_scale
    # independent check: the partial sums of the same inputs, computed directly
    x_int, _ = layer.quantize_input(data[0])
    w = layer._matrices(layer.weight_int.to(torch.int64))[0][0]  # [K, N]
    stored = w + 2 ** (6 - 1) - 1  # offset encoding, 6-bit cells: one slice, one cycle
    x64 = x_int.to(torch.int64)
    partial = torch.cat([x64[:, g : g + 32] @ stored[g : g + 32] for g in (0, 32)])  # 2 row groups
    above = float((partial.abs() > layer.plan.adc_full_scale).double().mean())
    assert abs(above - 0.10) < 0.005  # all 16,384 partial sums were sampled
    assert pimsim.oracle.counts(pim)["0"] == 0  # calibration passes are not counted


def test_cli_accuracy_and_train(tmp_path):
    import json

    from tests._cli import run_cli

    def cli(*args):
        return run_cli(*args, timeout=600)

    ckpt = tmp_path / "mlp.pt"
    train = cli(
        "train", "arch_specs/isaac.yaml", "mlp_mnist", "--method", "qat", "--epochs", "1",
        "--weight-bits", "8", "--input-bits", "8", "--checkpoint", str(ckpt),
    )
    assert train.returncode == 0, train.stderr
    assert ckpt.exists() and ckpt.with_suffix(".json").exists()
    run = cli(
        "accuracy",
        "arch_specs/isaac.yaml",
        "mlp_mnist",
        "--checkpoint",
        str(ckpt),
        "--limit",
        "200",
        "--chips",
        "2",
        "--format",
        "json",
        "--set",
        "decomposition.input_bits=8",
        "--set",
        "decomposition.weight_bits=8",
        "--set",
        "cell.variation.within_chip=0.05",
    )
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["images"] == 200 and len(data["per_chip"]) == 2
    assert 0.5 < data["mean"] <= 1.0
    net = pimsim.load_workload("mlp_mnist")
    arch = pimsim.load_arch(
        ROOT / "arch_specs" / "isaac.yaml",
        {"decomposition.input_bits": 8, "decomposition.weight_bits": 8},
    )
    per_image = {
        r["name"]: r["adc_conversions"]
        for r in pimsim.evaluate(arch, net).layers.to_dict("records")
        if r["adc_conversions"]
    }
    assert data["adc_conversions"] == {k: v * 200 for k, v in per_image.items()}
    wrong = cli("accuracy", "arch_specs/isaac.yaml", "lenet5_mnist", "--checkpoint", str(ckpt))
    assert wrong.returncode == 2 and "holds 'mlp_mnist'" in wrong.stderr
    assert "Traceback" not in wrong.stderr


FAULTS = """
import resource, sys, warnings, torch
import pimsim, pimsim.oracle
if sys.argv[2] == "tuned":
    assert pimsim.oracle.tune_cpu_allocator()
arch = pimsim.load_arch(sys.argv[1], {"decomposition.scheme": "bit_serial",
    "decomposition.input_bits": 8, "decomposition.weight_bits": 8, "adc.bits": 8,
    "array.rows_per_adc_read": 32})
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    model = torch.nn.Sequential(torch.nn.Linear(256, 256))
    pim = pimsim.oracle.convert(model, arch, (1, 256))
x = torch.rand(128, 256)
with torch.no_grad():
    for _ in range(3):
        pim(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        pim(x)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 3)
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="mallopt thresholds are a glibc feature",
)
def test_tuned_allocator_reuses_freed_memory(small_path):
    """A bit-serial forward pass allocates partial sums of tens of MiB: with glibc's defaults
    every call maps them afresh (a page fault per 4 KiB); after tune_cpu_allocator the freed
    memory is reused and the steady-state calls fault several times fewer pages."""
    runs = {}
    for mode in ("default", "tuned"):
        out = subprocess.run(
            [sys.executable, "-c", FAULTS, str(small_path), mode],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr
        runs[mode] = int(out.stdout.split()[-1])
    assert runs["default"] >= 4000, runs
    assert runs["tuned"] < runs["default"] / 5, runs
