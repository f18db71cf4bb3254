"""The fused CPU kernels give the numbers of the torch expressions they replace (which remain the
implementation on other devices): exactly for integers and ADC codes, to float rounding for the
rescaled outputs; and the layers count the same conversions and activity either way."""

import pytest

torch = pytest.importorskip("torch")

import pimsim  # noqa: E402
import pimsim.oracle  # noqa: E402
from pimsim.oracle import _engine as E  # noqa: E402
from pimsim.oracle import _kernels as K  # noqa: E402
from tests.test_oracle import CONFIGS, layer_rows, run_tiny  # noqa: E402


def torch_quantize(x, scale, lo, hi):
    return torch.div(x, scale).round_().clamp_(lo, hi)


@pytest.mark.parametrize("lo, hi", [(0, 63), (-127, 127)])
def test_quantize_rows_matches_torch_with_ties(lo, hi):
    """Exact halves (x / s = j + 1/2 with s a power of two) round to even like torch.round;
    values beyond the range clip; the sums per matrix and the non-zeros are exact."""
    s, m, k = 0.25, 3, 40
    j = torch.arange(-2 * hi - 20, 2 * hi + 20, dtype=torch.float32)
    x = (j * 0.125)[torch.randperm(j.numel(), generator=torch.Generator().manual_seed(0))]
    x = x.repeat(5 * m * k // x.numel() + 1)[: 5 * m * k].view(5, m * k)
    got, sums, nonzeros = K.quantize_rows(x, s, lo, hi, k)
    want = torch_quantize(x, s, lo, hi)
    assert ((x / s) % 1 == 0.5).any(), "some inputs must be exact halves"
    assert torch.equal(got, want)
    assert torch.equal(sums, want.view(5, m, k).sum(2))
    assert nonzeros == int(torch.count_nonzero(want))


def test_quantize_rows_with_an_arbitrary_scale_and_float64_sums():
    """A scale that is not a power of two is rounded to float32 and divided by, as torch.div
    does (inputs next to ties tell division from a reciprocal multiplication); a matrix too wide
    for exact float32 sums (k x top >= 2^24) is summed in float64."""
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(4, 2 * 70_000, generator=gen) * 1.3
    scale = 1.0 / 255  # a float64 whose float32 rounding matters
    s32 = torch.tensor(scale, dtype=torch.float32)
    ties = (torch.arange(256.0) + 0.5) * s32  # x / s at or next to a tie...
    near = torch.cat([ties.nextafter(torch.zeros(1)), ties, ties.nextafter(torch.full((1,), 2.0))])
    x[0, : near.numel()] = near
    # ... where a reciprocal multiplication would round otherwise than the division
    assert not torch.equal((near * (1 / s32)).round(), (near / s32).round())
    got, sums, nonzeros = K.quantize_rows(x, scale, 0, 255, 70_000)
    want = torch_quantize(x, torch.tensor(scale, dtype=torch.float64), 0, 255)
    assert torch.equal(got, want)
    assert sums.dtype == torch.float64
    assert torch.equal(sums, want.view(4, 2, -1).sum(2, dtype=torch.float64))
    assert nonzeros == int(torch.count_nonzero(want))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adc_codes_equal_float64_division_over_every_partial_sum(dtype):
    """Every integer partial sum of a 512-row, 6-bit native array (full scale 2,032,128, step
    7969.13...) gets the code of round_half_even(p / step) in float64, ties included, and
    out-of-range values clip."""
    fs = 512 * 63 * 63
    step = fs / 255
    p = torch.arange(-1000, fs + 9000, dtype=torch.float64)
    exact = p / step
    assert ((exact % 1) == 0.5).any(), "the range must contain exact ties"
    want = exact.round().clamp(0, 255)
    got = K.adc_codes_(p.to(dtype).view(-1, 16), step, 0, 255).reshape(-1)
    assert got.dtype == dtype
    assert torch.equal(got.to(torch.float64), want)


def test_finish_equals_the_formula_in_float64():
    gen = torch.Generator().manual_seed(2)
    values = torch.randint(-300, 300, (6, 2, 5), generator=gen).float()
    sums = torch.randint(0, 100, (6, 2), generator=gen).float()
    cols = torch.randn(2, 5, dtype=torch.float64, generator=gen)
    w = torch.rand(10, dtype=torch.float64, generator=gen)
    bias = torch.randn(10, generator=gen)
    step, coef, shift, scale = 3.7, -7, 16, 0.031
    got = K.finish(
        values, (-100, 100), step, (sums, coef, shift), cols, scale, w, bias, torch.float64
    )
    codes = (values.double() / step).round().clamp(-100, 100)
    want = (codes * step + coef * (sums.double()[:, :, None] + shift) + cols) * (
        scale * w.view(2, 5)
    ) + bias.double().view(2, 5)
    assert torch.equal(got, want.view(6, 10))
    plain = K.finish(values, None, step, None, None, scale, w, None, torch.float32)
    assert torch.equal(plain, (values.double() * step * (scale * w.view(2, 5))).float().view(6, 10))


def layer_results(arch, config):
    """For each layer of the tiny network: integer results, float outputs and counters."""
    out = {}
    for name, layer, inputs in run_tiny(arch, config, seed=4, batch=3):
        rows = layer_rows(layer, inputs)
        x_int, _ = layer.quantize_input(rows)
        layer.reset_counts()
        exact = layer.integer_matmul(x_int)
        y = layer.matmul(rows, layer.bias)
        c = layer.counters
        counts = (c.conversions, c.active_bits, c.input_bit_total, c.zero_inputs, c.input_total)
        out[name] = x_int, exact, y, counts
    return out


def spy(monkeypatch, names=("quantize_rows", "finish")) -> dict:
    """Count the calls of the named kernels."""
    calls = dict.fromkeys(names, 0)
    for name in names:
        real = getattr(K, name)

        def counted(*args, _real=real, _name=name, **kw):
            calls[_name] += 1
            return _real(*args, **kw)

        monkeypatch.setattr(K, name, counted)
    return calls


def assert_same_outputs(y, y_ref, name):
    """Both paths compute in float64 and round once: at most one float32 step apart (the order
    of the float64 additions differs), most outputs identical, NaN where the other has NaN."""
    assert torch.equal(y.isnan(), y_ref.isnan()), name
    y, y_ref = y.nan_to_num(), y_ref.nan_to_num()
    tol = y_ref.abs() * 2**-23 + 1e-9 * y_ref.abs().max()
    assert ((y - y_ref).abs() <= tol).all(), (name, (y - y_ref).abs().max())
    assert (y == y_ref).float().mean() > 0.99, name


@pytest.mark.parametrize("adc_bits", [4, 16])
@pytest.mark.parametrize("config", CONFIGS, ids=list(CONFIGS))
def test_layers_compute_the_same_with_and_without_kernels(
    small_path, config, adc_bits, monkeypatch
):
    """Every preset and encoding, conv (grouped, depthwise, packed) and linear: the same integer
    inputs and integer results (exact), the same float outputs to one float32 rounding step, the
    same conversions and activity, with the kernels and with the torch expressions alone."""
    arch = pimsim.load_arch(small_path, {**CONFIGS[config], "adc.bits": adc_bits})
    calls = spy(monkeypatch)
    fused = layer_results(arch, config)
    assert calls["quantize_rows"] >= 4 and calls["finish"] >= 4, calls  # the kernels ran
    monkeypatch.setattr(K, "ENABLED", False)
    calls.update(quantize_rows=0, finish=0)
    plain = layer_results(arch, config)
    assert calls == {"quantize_rows": 0, "finish": 0}  # and here they did not
    for name, (x_int, exact, y, counts) in fused.items():
        x_ref, exact_ref, y_ref, counts_ref = plain[name]
        assert torch.equal(x_int, x_ref), name
        assert torch.equal(exact, exact_ref), name
        assert counts == counts_ref, name
        assert_same_outputs(y, y_ref, name)


def linear_pim(arch, k, n, dtype=None):
    torch.manual_seed(5)
    model = torch.nn.Sequential(torch.nn.Linear(k, n))
    pim = pimsim.oracle.convert(model, arch, (1, k), calibration=[torch.rand(16, k)])
    return pim if dtype is None else pim.to(dtype)


def forward_both_ways(pim, x, monkeypatch):
    """Outputs and counters of ``pim`` on ``x`` with the kernels, then with torch alone."""
    out = []
    for enabled in (True, False):
        monkeypatch.setattr(K, "ENABLED", enabled)
        pimsim.oracle.reset_counts(pim)
        y = pim(x)
        out.append((y, pim[0].counters))
    return out


def test_direct_path_equals_the_general_and_torch_paths(small_path, monkeypatch):
    """A native layer whose every output is one conversion (K = 24 rows in one 32-row read)
    takes the short path (one product between two kernels); the general path computes the same
    outputs and counts, and so do the torch operations."""
    arch = pimsim.load_arch(small_path, {"adc.bits": 5, "array.rows_per_adc_read": 32})
    layer = linear_pim(arch, 24, 7)[0]
    assert layer.plan.direct
    x = torch.rand(9, 24)
    direct = layer._direct(x, layer.bias)
    assert direct is not None
    counts = layer.counters
    layer.reset_counts()
    monkeypatch.setattr(E.EnginePlan, "direct", property(lambda self: False))
    assert layer._direct(x, layer.bias) is None
    general = layer.matmul(x, layer.bias)
    assert torch.equal(direct, general)
    assert counts == layer.counters
    layer.reset_counts()
    monkeypatch.setattr(K, "ENABLED", False)
    assert_same_outputs(direct, layer.matmul(x, layer.bias), "torch")
    assert counts == layer.counters


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_kernels_take_models_cast_to_other_dtypes(small_path, dtype, monkeypatch):
    """A converted model cast with .float(), .double() or .half() and fed float32 inputs: the
    kernels read its buffers in float64 (or leave the direct path) and match torch."""
    arch = pimsim.load_arch(small_path, {"adc.bits": 5, "array.rows_per_adc_read": 32})
    pim = linear_pim(arch, 24, 7, dtype)
    (y, counts), (y_ref, counts_ref) = forward_both_ways(pim, torch.rand(9, 24), monkeypatch)
    assert y.dtype == y_ref.dtype == torch.float32
    assert counts == counts_ref
    assert_same_outputs(y, y_ref, str(dtype))


def test_nan_inputs_count_and_propagate_as_in_torch(small_path, monkeypatch):
    """NaN inputs stay NaN through the kernels (as through torch's clamp) and count as zero
    inputs (as torch's sign does), on the direct and on the general path."""
    for rows in (32, 16):  # one row group (direct path), two (general path)
        arch = pimsim.load_arch(small_path, {"adc.bits": 5, "array.rows_per_adc_read": rows})
        pim = linear_pim(arch, 24, 7)
        x = torch.rand(4, 24)
        x[1, 3] = float("nan")
        (y, counts), (y_ref, counts_ref) = forward_both_ways(pim, x, monkeypatch)
        assert y[1].isnan().all() and not y[[0, 2, 3]].isnan().any()
        assert counts == counts_ref, rows
        assert_same_outputs(y, y_ref, rows)


def test_full_scale_beyond_float32_leaves_the_direct_path(small_path, monkeypatch):
    """A native 8-bit layer with 500 rows in one read has a full scale of 2^24 or more: its
    partial sums are float64 (DESIGN.md 'exactness'), so it takes the general path, and the
    kernels and torch give the same results. Positive weights and large inputs put the partial
    sums above 2^24, where a float32 product would round them and move some codes."""
    wide = {"array.rows": 512, "array.rows_per_adc_read": 512, "adc.bits": 16}
    bits = {"decomposition.input_bits": 8, "decomposition.weight_bits": 8}
    arch = pimsim.load_arch(small_path, {**wide, **bits})
    torch.manual_seed(7)
    model = torch.nn.Sequential(torch.nn.Linear(500, 64))
    model[0].weight.data.abs_()
    pim = pimsim.oracle.convert(model, arch, (1, 500), calibration=[torch.rand(16, 500)])
    assert pim[0].plan.full_scale >= 2**24 and not pim[0].plan.direct
    x = 0.8 + 0.2 * torch.rand(256, 500)
    x_int = pim[0].quantize_input(x)[0].double()
    stored = pim[0].weight_int.t().double() + 127  # offset encoding: cells hold w + 127
    assert (x_int @ stored).max() > 2**24  # the partial sums the ADC sees
    (y, counts), (y_ref, counts_ref) = forward_both_ways(pim, x, monkeypatch)
    assert counts == counts_ref
    assert_same_outputs(y, y_ref, "wide")


@pytest.mark.parametrize("kernel", ["quantize", "adc", "finish"])
def test_parallel_loops_equal_serial_loops(kernel):
    """The parallel loop of each kernel (taken from 2^20 elements) gives the serial results."""
    gen = torch.Generator().manual_seed(6)
    if kernel == "quantize":
        x = torch.rand(300, 2 * 64, generator=gen).numpy()
        outs = []
        for fn in (K._quantize_serial, K._quantize_parallel):
            out, sums = x.copy(), x[:, :2].copy()
            outs.append((fn(x, 64, 0.01, 0, 63, out, sums, K.np.float32(0)), out, sums))
        assert outs[0][0] == outs[1][0]
        assert all((a == b).all() for a, b in zip(outs[0][1:], outs[1][1:], strict=True))
    elif kernel == "adc":
        p = (torch.rand(300, 128, generator=gen) * 5000).numpy()
        a, b = p.copy(), p.copy()
        K._adc_serial(a, 19.6, 0.0, 255.0)
        K._adc_parallel(b, 19.6, 0.0, 255.0)
        assert (a == b).all()
    else:
        v = (torch.rand(300, 2, 64, generator=gen) * 5000).numpy()
        sums = torch.rand(300, 2, generator=gen).numpy()
        mats = [torch.rand(2, 64, generator=gen).double().numpy() for _ in range(3)]
        outs = []
        for fn in (K._finish_serial, K._finish_parallel):
            out = v.copy()
            fn(v, True, 0.0, 255.0, 19.6, sums, -7.0, 3.0, mats[0], 0.1, mats[1], mats[2], out)
            outs.append(out)
        assert (outs[0] == outs[1]).all()


def test_without_numba_the_oracle_falls_back_to_torch(small_path, monkeypatch):
    """Where the kernels cannot load (here: their import fails), a warning says so once and the
    layers compute with torch operations; PIMSIM_KERNELS=0 does not even try."""
    import sys

    arch = pimsim.load_arch(small_path, {"adc.bits": 5, "array.rows_per_adc_read": 32})
    pim = linear_pim(arch, 24, 7)
    x = torch.rand(5, 24)
    want = pim(x)
    monkeypatch.setattr(E, "_KERNELS", None)
    monkeypatch.delattr(pimsim.oracle, "_kernels")
    monkeypatch.setitem(sys.modules, "pimsim.oracle._kernels", None)  # import raises
    with pytest.warns(RuntimeWarning, match="kernels are unavailable"):
        assert E.kernels() is None
    assert_same_outputs(pim(x), want, "fallback")
    monkeypatch.setattr(E, "_KERNELS", None)
    monkeypatch.setenv("PIMSIM_KERNELS", "0")
    assert E.kernels() is None  # no import attempted, no warning (warnings are errors here)
