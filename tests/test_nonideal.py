"""Statistical tests of every non-ideality, each drawn from an explicit seed."""

import math
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import pimsim  # noqa: E402
import pimsim.oracle  # noqa: E402
from pimsim.oracle import _nonideal as NI  # noqa: E402


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_within_chip_variation_is_lognormal_with_the_spec_sigma(small_path):
    arch = pimsim.load_arch(small_path, {"cell.variation.within_chip": 0.1})
    levels = torch.full((100_000,), 5.0)
    g = NI.perturb_cells(arch, levels, 0.0, gen())
    log_ratio = torch.log(g / 5.0)
    assert abs(float(log_ratio.std()) / 0.1 - 1) < 0.01  # standard error 0.22%
    assert abs(float(log_ratio.mean())) < 0.005


def test_between_chip_factor_is_shared_within_a_chip_and_independent_across(small_path):
    arch = pimsim.load_arch(small_path, {"cell.variation.between_chip": 0.2})
    draws = [NI.draw_chip(arch, ["a", "b"], s) for s in np.random.SeedSequence(7).spawn(4000)]
    e = np.array([d.e_chip for d in draws])
    assert abs(e.std() / 0.2 - 1) < 0.05
    assert abs(np.corrcoef(e[:-1], e[1:])[0, 1]) < 0.05  # independent across chips
    # within one chip: every device of every layer carries the same factor
    levels = torch.full((1000,), 3.0)
    chip = draws[0]
    g_a = NI.perturb_cells(arch, levels, chip.e_chip, gen(chip.layer_seeds["a"]))
    g_b = NI.perturb_cells(arch, levels, chip.e_chip, gen(chip.layer_seeds["b"]))
    assert torch.allclose(g_a, torch.full_like(g_a, 3.0 * math.exp(chip.e_chip)))
    assert torch.equal(g_a, g_b)


def test_stuck_at_fractions(small_path):
    arch = pimsim.load_arch(
        small_path,
        {"cell.variation.stuck_at_on": 0.01, "cell.variation.stuck_at_off": 0.03, "cell.bits": 2},
    )
    levels = torch.full((200_000,), 1.0)
    g = NI.perturb_cells(arch, levels, 0.0, gen(3))
    n = levels.numel()
    on, off = float((g == 3.0).sum()) / n, float((g == 0.0).sum()) / n
    for got, p in ((on, 0.01), (off, 0.03)):
        assert abs(got - p) < 4 * math.sqrt(p * (1 - p) / n)


def test_drift_follows_power_law(small_path):
    arch = pimsim.load_arch(
        small_path,
        {
            "cell.variation.drift_nu": 0.05,
            "cell.variation.drift_t0_s": 1.0,
            "cell.variation.drift_time_s": 3600.0,
        },
    )
    g = NI.perturb_cells(arch, torch.arange(0.0, 16.0), 0.0, gen())
    assert torch.allclose(g, torch.arange(0.0, 16.0, dtype=torch.float64) * 3600.0**-0.05)


def test_finite_on_off_ratio_adds_off_conductance(small_path):
    arch = pimsim.load_arch(
        small_path,
        {"cell.on_off_ratio": 16.0, "cell.bits": 2, "cell.variation.off_current": True},
    )
    g = NI.perturb_cells(arch, torch.tensor([0.0, 3.0]), 0.0, gen())
    g_off = 3 / 15
    assert torch.allclose(g, torch.tensor([g_off, 3 + g_off], dtype=torch.float64))
    assert float(g[1] / g[0]) == pytest.approx(16.0)


def test_read_noise_column_equivalent_matches_per_cell_reference(small_path):
    arch = pimsim.load_arch(small_path, {"cell.variation.read_noise": 0.05})
    g = torch.rand(1, 16, 1, dtype=torch.float64, generator=gen(1)) * 15
    x = torch.randint(0, 2, (1, 1, 16), generator=gen(2)).to(torch.float64)
    sigma = float(NI.read_noise_sigma(arch, x.square(), g.square()))
    # per-cell reference: every read draws each cell's noise independently
    cells = torch.randn(100_000, 16, dtype=torch.float64, generator=gen(3)) * 0.05 * g.view(16)
    per_cell = (cells * x.view(16)).sum(dim=1)
    assert abs(float(per_cell.std()) / sigma - 1) < 0.01


def test_read_noise_reaches_the_outputs_with_the_spec_sigma(small_path):
    """End to end: one linear layer, 2-bit inputs (two 1-bit cycles) and weights (two 1-bit
    slices), an ADC that resolves unit levels; the output's spread over 20,000 reads equals the
    analytic sigma within 5%: sum over (cycle, slice) of (cycle weight x slice weight)^2 x
    (read-noise variance of the column sum + 1/12 for the ADC's rounding)."""
    sigma = 0.5
    arch = pimsim.load_arch(
        small_path,
        {
            "decomposition.scheme": "bit_serial",
            "decomposition.input_bits": 2,
            "decomposition.weight_bits": 2,
            "cell.variation.read_noise": sigma,
            "array.rows_per_adc_read": 16,
            "adc.bits": 16,
        },
    )
    model = nn.Sequential(nn.Linear(16, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -1.0, 1.0, 0.5] * 4]))  # codes 1, -1, 1, 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pim = pimsim.oracle.convert(model, arch, (1, 16), calibration=[torch.ones(1, 16)])
    layer = pim[0]
    x_int, _ = layer.quantize_input(torch.ones(20_000, 16))  # 3: both input bits set
    y = layer.integer_matmul(x_int).view(-1)
    w = layer.weight_int[0].to(torch.int64)
    bits = [((w % 4) >> s) & 1 for s in range(2)]  # two's complement slices, weights 1 and -2
    var = sum(
        (cw * sw) ** 2 * (sigma**2 * float(bits[i].sum()) + 1 / 12)
        for cw in (1, 2)
        for i, sw in enumerate((1, -2))
    )
    ideal = float(x_int[0].to(torch.int64) @ w)
    assert abs(float(y.mean()) - ideal) < 4 * math.sqrt(var / y.numel())
    assert abs(float(y.std()) / math.sqrt(var) - 1) < 0.015  # standard error 0.5%


def test_adc_gain_offset_inl_and_thermal_noise(small_path):
    arch = pimsim.load_arch(
        small_path,
        {"adc.bits": 8, "adc.nonideal.gain_error": 0.02, "adc.nonideal.offset_lsb": 0.5},
    )
    model = nn.Sequential(nn.Linear(16, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = pimsim.oracle.convert(model, arch, (1, 16))[0].plan
    p = torch.linspace(0, plan.full_scale, 101, dtype=torch.float64)
    codes = NI.adc_convert(arch, plan, p.clone(), None, gen())
    expected = torch.round((p * 1.02 + 0.5 * plan.step) / plan.step).clamp(*plan.code_range)
    assert torch.equal(codes, expected)
    inl = pimsim.with_overrides(
        arch,
        {
            "adc.nonideal.inl_lsb": 2.0,
            "adc.nonideal.gain_error": 0.0,
            "adc.nonideal.offset_lsb": 0.0,
        },
    )
    mid = torch.tensor([plan.full_scale / 2], dtype=torch.float64)
    bowed = NI.adc_convert(inl, plan, mid.clone(), None, gen())
    assert float(bowed[0]) == round(plan.full_scale / 2 / plan.step + 2.0)
    noisy = pimsim.with_overrides(
        arch,
        {
            "adc.nonideal.thermal_noise_lsb": 3.0,
            "adc.nonideal.gain_error": 0.0,
            "adc.nonideal.offset_lsb": 0.0,
        },
    )
    centre = torch.full((100_000,), plan.full_scale / 2, dtype=torch.float64)
    codes = NI.adc_convert(noisy, plan, centre, None, gen(5))
    # rounding adds 1/12 LSB^2 of variance to the 9 LSB^2 of noise
    assert abs(float(codes.std()) / math.sqrt(9 + 1 / 12) - 1) < 0.01


def test_bipolar_inl_is_an_odd_bow_zero_at_zero_and_the_ends(small_path):
    """A differential (bipolar) ADC's INL bends codes by up to inl_lsb steps at |p| = FS/sqrt(3),
    in opposite directions for opposite inputs, and leaves zero and the ends alone: it is not
    an offset of the codes around zero, where most partial sums of a differential pair fall."""
    arch = pimsim.load_arch(
        small_path,
        {"adc.bits": 8, "decomposition.scheme": "differential", "adc.nonideal.inl_lsb": 2.0},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = pimsim.oracle.convert(nn.Sequential(nn.Linear(16, 2)), arch, (1, 16))[0].plan
    assert plan.bipolar
    fs = plan.adc_full_scale
    p = torch.tensor([-fs, -fs / math.sqrt(3), 0.0, fs / math.sqrt(3), fs], dtype=torch.float64)
    codes = NI.adc_convert(arch, plan, p.clone(), None, gen())
    ideal = torch.round(p / plan.step)
    assert (codes - ideal).tolist() == [0.0, -2.0, 0.0, 2.0, 0.0]


def test_dnl_shifts_thresholds_per_chip(small_path):
    """DNL: each decision threshold moves by a Normal(0, dnl_lsb) draw, fixed per chip (seed),
    and the conversion follows the moved thresholds."""
    arch = pimsim.load_arch(small_path, {"adc.bits": 10, "adc.nonideal.dnl_lsb": 0.1})
    model = nn.Sequential(nn.Linear(16, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = pimsim.oracle.convert(model, arch, (1, 16))[0].plan
    lo, hi = plan.code_range
    centres = torch.arange(lo, hi, dtype=torch.float64) + 0.5
    t1 = NI.dnl_thresholds(plan, 0.1, gen(1))
    assert torch.equal(t1, NI.dnl_thresholds(plan, 0.1, gen(1)))  # fixed per chip (same seed)
    assert not torch.equal(t1, NI.dnl_thresholds(plan, 0.1, gen(2)))  # another chip differs
    shifts = t1 - centres
    assert t1.numel() == hi - lo == 1023
    assert abs(float(shifts.std()) / 0.1 - 1) < 0.1  # standard error of the std: 2.2%
    assert abs(float(shifts.mean())) < 0.01
    # the conversion uses the thresholds: every threshold moved up by 0.4 LSB turns a partial
    # sum at k + 0.7 steps into code k (the ideal ADC gives k + 1)
    arch4 = pimsim.load_arch(small_path, {"adc.bits": 4, "adc.nonideal.dnl_lsb": 0.1})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan4 = pimsim.oracle.convert(model, arch4, (1, 16))[0].plan
    lo4, hi4 = plan4.code_range
    moved = torch.arange(lo4, hi4, dtype=torch.float64) + 0.9
    k = torch.arange(lo4, hi4 - 1, dtype=torch.float64)
    codes = NI.adc_convert(arch4, plan4, (k + 0.7) * plan4.step, moved, gen())
    assert torch.equal(codes, k)


def test_same_seed_same_chip_and_accuracy_distribution(small_path):
    arch = pimsim.load_arch(
        small_path, {"cell.variation.within_chip": 0.2, "cell.variation.between_chip": 0.1}
    )
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 4))
    x = torch.rand(64, 16)
    labels = model(x).argmax(dim=1)
    data = [(x, labels)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = pimsim.oracle.accuracy(model, arch, data, n_chips=5, seed=3)
        b = pimsim.oracle.accuracy(model, arch, data, n_chips=5, seed=3)
        c = pimsim.oracle.accuracy(model, arch, data, n_chips=5, seed=4)
    assert a.per_chip == b.per_chip
    assert a.per_chip != c.per_chip
    assert len(a.per_chip) == 5 and len(set(a.per_chip)) > 1  # the chips do differ


def test_monte_carlo_rechips_one_conversion_as_separate_conversions_would(small_path):
    """accuracy() converts once and redraws each further chip (cells, ADC, calibrated range):
    every chip's accuracy equals a fresh conversion with that chip's spawned seed, and a
    one-shot generator of calibration batches serves every chip."""
    arch = pimsim.load_arch(
        small_path,
        {
            "cell.variation.within_chip": 0.3,
            "cell.variation.between_chip": 0.2,
            "adc.bits": 4,
            "adc.range": "calibrated",
        },
    )
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
    x = torch.rand(128, 16)
    data = [(x, model(x).argmax(dim=1))]
    calib = [torch.rand(32, 16)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = pimsim.oracle.accuracy(
            model, arch, data, n_chips=4, seed=5, calibration=(c for c in calib)
        )
        want = []
        for chip in np.random.SeedSequence(5).spawn(4):
            pim = pimsim.oracle.convert(model, arch, (1, 16), seed=chip, calibration=calib)
            with torch.no_grad():
                want.append(float((pim(x).argmax(1) == data[0][1]).float().mean()))
    assert got.per_chip == pytest.approx(want, abs=1e-12)
    assert len(set(want)) > 1  # the chips do differ
