"""PIM-QAT's faster training step gives the same bits as before.

``_through_adc`` (the straight-through terms of every ADC conversion, and LSQ's step gradient)
now takes the forward's own partial sums (:func:`pimsim.oracle._engine.watching_partials`) and
computes its terms in one fused pass (:func:`pimsim.training._pimqat.ste_terms`) instead of
computing the partial sums a second time and running a dozen torch passes over them. The
reference below is the computation as it was (kept verbatim); every test asserts exact equality
(``torch.equal``) of forward outputs and of every gradient, for every preset."""

from __future__ import annotations

import copy
import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from pimsim.oracle import _engine as E  # noqa: E402
from pimsim.training import _pimqat as PQ  # noqa: E402
from pimsim.training import attach_pim, quantize_model  # noqa: E402
from pimsim.training._pimqat import pimqat_layers  # noqa: E402
from tests.test_pim_training import _quiet, arch  # noqa: E402,F401 (_quiet: autouse fixture)


def reference_through_adc(self, x_q, w_q, step, like):
    """``_PimQatMixin._through_adc`` before the change (the partial sums computed again, the
    terms with torch operations)."""
    pim = self.engine.pim
    plan = pim.plan
    m, n = plan.matrices, plan.n_cols
    g_rows = plan.row_index
    samples = x_q.shape[0]
    rows = pim.input_rows(x_q)
    b = rows.shape[0]
    xm = rows.reshape(b, m, plan.k_rows)
    xg = torch.cat([xm, xm.new_zeros(b, m, 1)], dim=2)[:, :, g_rows]  # [rows, M, G, R]
    wm = pim._matrices(w_q)[0].to(xm.dtype)  # [M, K, N]
    wg = torch.cat([wm, wm.new_zeros(m, 1, n)], dim=1)[:, g_rows]  # [M, G, R, N]
    d = torch.einsum("bmgr,mgrn->bmgn", xg, wg)
    digital = d.detach().sum(dim=2)
    with torch.no_grad():
        x_int, _ = pim.quantize_input(rows.detach())
        xl = E.layout_inputs(plan, E.input_cycles(plan, x_int))
        partial = E.column_partials(plan, xl, pim.w_layout, pim.noise, read_noise=False)
        shape = E.group_shape(plan)
        fine = plan.adc_steps is not None
        current = plan.adc_steps.to(torch.float32) if fine else torch.tensor(plan.step)
        u = E._view7(plan, partial.to(torch.float32), b)  # [M, G, C, B, P, S, N']
        u = u / (current.view(shape) if fine else current)
        del partial
        lo, hi = plan.code_range
        inside = ((u >= lo) & (u <= hi)).to(torch.float32)
        s_weights, c_weights = plan.shift_add
        a = (
            torch.tensor(c_weights).abs().view(1, 1, -1, 1, 1, 1, 1)
            * torch.tensor(s_weights).abs().view(1, 1, 1, 1, 1, -1, 1)
        ).to(torch.float32)
        a = a.expand(1, 1, plan.cycles, 1, plan.polarities, plan.slices, 1)
        mask = (inside * a).sum(dim=(2, 4, 5)) / a.sum()  # [M, G, B, N']
        mask = mask[..., :n].permute(2, 0, 1, 3)  # [rows, M, G, N]
    masked = (d * mask).sum(dim=2)  # [rows, M, N]
    term = None
    if step is not None:
        grad = torch.where(u < lo, float(lo), torch.where(u > hi, float(hi), u.round() - u))
        del u
        groups = math.prod(shape)
        scale = 1.0 / math.sqrt(grad.numel() / (samples * groups) * hi)
        s = step.to(torch.float32).view(shape if step.numel() > 1 else [1] * 7)
        signs = E.polarity_signs(plan)
        y = torch.einsum(
            "mgcbpsn,c,p,s->bmn",
            grad * ((s - s.detach()) * scale),
            torch.tensor(c_weights, dtype=torch.float32),
            torch.tensor(signs, dtype=torch.float32),
            torch.tensor(s_weights, dtype=torch.float32),
        )
        y = E.subtract_reference(plan, y)  # [rows, M, N]
        out_scale = (pim.weight_scale.to(torch.float64) * pim.input_scale).to(torch.float32)
        term = y * out_scale.view(1, m, n)

    def as_output(t):
        if like.dim() == 4:
            return t.reshape(samples, -1, m * n).transpose(1, 2).reshape(like.shape)
        return t.reshape(like.shape)

    return as_output(masked), as_output(digital), None if term is None else as_output(term)


class _Reference:
    """Within the block, PIM-QAT layers compute ``_through_adc`` as before the change."""

    def __enter__(self):
        self.saved = (PQ._PimQatMixin._through_adc, PQ._PimQatMixin._tap_partials)
        PQ._PimQatMixin._through_adc = reference_through_adc
        PQ._PimQatMixin._tap_partials = lambda self, calibrating: False

    def __exit__(self, *exc):
        PQ._PimQatMixin._through_adc, PQ._PimQatMixin._tap_partials = self.saved


@pytest.fixture(params=["kernels", "torch"])
def kernels(request, monkeypatch):
    """Both CPU implementations: the fused kernels, and the torch operations."""
    if request.param == "torch":
        monkeypatch.setattr(E, "_KERNELS", False)
    else:
        if E.kernels() is None:
            pytest.skip("numba kernels unavailable")
    return request.param


def small_net(seed: int, signed: bool):
    """conv (3 -> 6, 3x3) - ReLU - conv (6 -> 8, 3x3) [- nothing: signed inputs next] -
    flatten - linear (8*4*4 -> 10), quantized, input scales calibrated on one batch."""
    gen = torch.Generator().manual_seed(seed)
    layers = [nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Conv2d(6, 8, 3)]
    if not signed:
        layers.append(nn.ReLU())
    net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    x = torch.rand(6, 3, 8, 8, generator=gen)
    model = quantize_model(net, input_shape=(1, 3, 8, 8))
    model.train()
    model(x)
    return model, x


CASES = {  # name -> (preset, arch overrides, signed inputs into the linear layer)
    "native": ("native", {}, False),
    "differential": ("differential", {}, False),
    "bit_serial": ("bit_serial", {}, False),
    "bit_serial_signed": ("bit_serial", {}, True),
    "native_signed": ("native", {}, True),
    "differential_digital": (
        "differential", {"decomposition.signed_encoding": "differential_digital"}, False
    ),
    "native_column_significance": ("native", {"adc.range_granularity": "column"}, False),
    "bit_serial_significance": ("bit_serial", {"adc.range_granularity": "significance"}, False),
    "bit_serial_fine": ("bit_serial", {"adc.range_granularity": "column_significance"}, True),
    "native_reference_column": (
        "native", {"decomposition.offset_reference": "column"}, False
    ),
}


def _run(pim_model, x, r, steps):
    """``steps`` SGD steps: (outputs, [(name, grad) of every parameter and the input])."""
    opt = torch.optim.SGD(pim_model.parameters(), lr=0.05)
    outs, grads = [], []
    for _ in range(steps):
        xi = x.clone().requires_grad_(True)
        out = pim_model(xi)
        opt.zero_grad()
        (out * r).sum().backward()
        outs.append(out.detach().clone())
        grads.append([("input", xi.grad.clone())] + [
            (n, p.grad.clone()) for n, p in pim_model.named_parameters() if p.grad is not None
        ])
        opt.step()
    return outs, grads


@pytest.mark.parametrize("case", sorted(CASES))
def test_step_is_bit_identical_to_the_reference(case, kernels):
    """Three training steps (the first calibrates the ADC ranges; the step is moved so that
    part of the partial sums clip, rows per read small so that layers have several row groups):
    outputs and every gradient (weights, biases, ADC log-steps, input) equal the reference's
    exactly."""
    preset, extra, signed = CASES[case]
    try:
        spec = arch(preset, 4, 16, "learned", **extra)
    except Exception as err:  # a combination the spec refuses
        pytest.skip(f"{case}: {err}")
    model, x = small_net(0, signed)
    pim_model = attach_pim(model, spec, (1, 3, 8, 8))
    pim_model.train()
    pim_model(x)  # first batch: the ADC ranges calibrate
    with torch.no_grad():
        for layer in pimqat_layers(pim_model).values():
            layer.adc_log_step.sub_(0.5)
    ref_model = copy.deepcopy(pim_model)
    r = torch.randn(6, 10, generator=torch.Generator().manual_seed(1))
    got_out, got_grads = _run(pim_model, x, r, 3)
    tapped = [layer.engine.tapped for layer in pimqat_layers(pim_model).values()]
    assert all(t is None for t in tapped)  # consumed by the backward's step
    with _Reference():
        want_out, want_grads = _run(ref_model, x, r, 3)
    for got, want in zip(got_out, want_out, strict=True):
        assert torch.equal(got, want)
    for got, want in zip(got_grads, want_grads, strict=True):
        assert [n for n, _ in got] == [n for n, _ in want]
        assert any(n.endswith("adc_log_step") for n, _ in got)
        for (name, g), (_, w) in zip(got, want, strict=True):
            assert torch.equal(g, w), name


def test_forward_hands_its_partial_sums_to_the_backward_terms(kernels):
    """The layers whose oracle pass goes through the engine's partial sums (several row groups:
    every layer here) take their terms from the forward: ``_through_adc`` computes no partial
    sums of its own (no second call of ``column_partials``)."""
    model, x = small_net(2, False)
    pim_model = attach_pim(model, arch("bit_serial", 4, 16, "learned"), (1, 3, 8, 8))
    pim_model.train()
    pim_model(x)
    calls = []
    original = E.column_partials

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    E.column_partials = counting
    try:
        pim_model(x).sum().backward()
    finally:
        E.column_partials = original
    assert len(calls) == len(pimqat_layers(pim_model))  # the forward's, once per layer


@pytest.mark.parametrize("granularity", ["layer", "column", "significance",
                                         "column_significance"])
def test_fused_terms_equal_the_torch_terms(granularity):
    """:func:`ste_terms` with the kernel equals its torch operations on partial sums that hit
    the range bounds and round-half ties exactly (integers over a step of 2, 0.5 off the
    bounds)."""
    if E.kernels() is None:
        pytest.skip("numba kernels unavailable")
    spec = arch("bit_serial", 4, 16, "learned", **{"adc.range_granularity": granularity})
    model, x = small_net(3, True)
    pim_model = attach_pim(model, spec, (1, 3, 8, 8))
    pim_model.train()
    pim_model(x)
    for layer in pimqat_layers(pim_model).values():
        plan = layer.engine.pim.plan
        b = 37
        size = (plan.matrices * plan.row_groups, plan.cycles * b,
                plan.polarities * plan.slices * plan.columns)
        gen = torch.Generator().manual_seed(4)
        partial = torch.randint(-40, 41, size, generator=gen).to(plan.sum_dtype)
        before = partial.clone()
        fused = PQ.ste_terms(plan, partial, b, True)
        saved = E._KERNELS
        E._KERNELS = False
        try:
            plain = PQ.ste_terms(plan, partial, b, True)
        finally:
            E._KERNELS = saved
        assert torch.equal(partial, before)  # left unchanged
        assert torch.equal(fused[0], plain[0]) and fused[0].stride() == plain[0].stride()
        assert torch.equal(fused[1], plain[1]) and fused[1].stride() == plain[1].stride()
        assert PQ.ste_terms(plan, partial, b, False)[1] is None
