"""The event-driven dataflow model: kernel order and determinism, closed forms in degenerate
cases, monotonicity and bounds on every shipped arch x zoo pair, buffer stalls, reports and CLI."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

import pimsim
from pimsim.cli import main
from pimsim.cost import chip_timing, evaluate
from pimsim.dataflow import PS_PER_NS, max_plus_chain, run, simulate, to_ps
from pimsim.errors import MappingError
from pimsim.mapping import map_network
from pimsim.workload import Workload
from pimsim.workload._layer import add, conv
from tests.conftest import swept_zoo

ROOT = Path(__file__).resolve().parent.parent
ARCHS = sorted(p.stem for p in (ROOT / "arch_specs").glob("*.yaml"))


def _arch(name, overrides=None):
    return pimsim.load_arch(ROOT / "arch_specs" / f"{name}.yaml", overrides or {})


# --- the kernel -----------------------------------------------------------------------------


def test_simultaneous_events_leave_in_job_order():
    """Three jobs ready at t=0 on one resource run in job order, whatever their durations."""
    trace = run([5, 1, 3], [0, 0, 0], [[], [], []], 1)
    assert trace.start == [0, 5, 6]
    assert trace.finish == [5, 6, 9]
    # a job released by a finishing predecessor at the same instant as another queued job
    trace = run([2, 2, 1, 1], [0, -1, 0, 0], [[], [], [1], []], 1)
    assert trace.start[3] == 2 and trace.start[2] == 3  # job 3 was queued first (t=0)


def test_event_loop_equals_max_plus_recurrence_on_random_chains():
    """A linear chain with one resource per layer: the event loop gives the max-plus closed form
    exactly, for random durations and random (monotone) receptive fields."""
    rng = random.Random(7)
    for _ in range(30):
        layers = rng.randint(1, 6)
        sizes = [rng.randint(1, 12) for _ in range(layers)]
        durations = [[rng.randint(0, 50) for _ in range(n)] for n in sizes]
        needs = [[0] * sizes[0]]
        for i in range(1, layers):
            k = rng.randint(0, 3)
            needs.append([min(sizes[i - 1] - 1, (j * sizes[i - 1]) // sizes[i] + k)
                          for j in range(sizes[i])])
        dur, res, preds, ids = [], [], [], []
        for i, ds in enumerate(durations):
            row = []
            for j, d in enumerate(ds):
                row.append(len(dur))
                dur.append(d)
                res.append(i)
                preds.append([ids[i - 1][needs[i][j]]] if i else [])
            ids.append(row)
        trace = run(dur, res, preds, layers)
        closed = max_plus_chain(durations, needs)
        assert [[trace.finish[j] for j in row] for row in ids] == closed


def test_two_runs_give_identical_traces():
    arch, work = _arch("neurosim_rram_22nm"), pimsim.load_workload("resnet20_cifar10")
    a = evaluate(arch, work).dataflow.trace.rows()
    b = evaluate(arch, work).dataflow.trace.rows()
    assert a == b and len(a) > 1000


# --- closed forms in degenerate cases -----------------------------------------------------


def _chain(name="chain"):
    x = (3, 16, 16)
    c1 = conv("c1", ("input",), x, 8, 3, padding=1)
    c2 = conv("c2", ("c1",), c1.output_shape, 8, 3, padding=1)
    c3 = conv("c3", ("c2",), c2.output_shape, 4, 3, stride=2, padding=1)
    return Workload(name, x, (c1, c2, c3))


def _analytical(arch, work):
    return evaluate(arch, work, latency_model="analytical").layers.set_index("name")["latency_ns"]


def test_unlimited_resources_without_pipelining_is_the_sum_of_layer_latencies():
    for arch_name in ("isaac", "neurosim_rram_22nm"):
        arch = _arch(arch_name)
        for work in (pimsim.load_workload("vgg8_cifar10"), pimsim.load_workload("lenet5_mnist")):
            mapping = map_network(arch, work)
            flow = simulate(mapping, chip_timing(arch, mapping), pipelined=False,
                            data_movement=False, samples=1)
            expected = _analytical(arch, work).sum()
            assert flow.latency_ns == pytest.approx(expected, abs=len(work.layers) / PS_PER_NS)


def test_linear_chain_equals_the_max_plus_recurrence():
    arch = _arch("neurosim_rram_22nm", {"mapping.duplication": "none"})
    work = _chain()
    mapping = map_network(arch, work)
    timing = chip_timing(arch, mapping)
    flow = simulate(mapping, timing, data_movement=False, samples=1)
    durations, needs = [], []
    for i, layer in enumerate(work.layers):
        h, w = layer.output_shape[1], layer.output_shape[2]
        durations.append([to_ps(timing.position_ns[layer.name] * w)] * h)
        if i == 0:
            needs.append([0] * h)
        else:
            n_prev = work.layers[i - 1].output_shape[1]
            s, p = layer.stride[0], layer.padding[0]
            needs.append([min(n_prev - 1, r * s - p + 2) for r in range(h)])
    closed = max_plus_chain(durations, needs)
    assert flow.latency_ns * PS_PER_NS == closed[-1][-1]
    # pipelining helps: the recurrence is below the sum of the layers
    assert closed[-1][-1] < sum(map(sum, durations))


def test_one_layer_network_is_its_analytical_latency():
    x = (16, 12, 12)
    work = Workload("one", x, (conv("c", ("input",), x, 32, 3, padding=1),))
    for arch_name in ARCHS:
        arch = _arch(arch_name, {"mapping.duplication": "none"})
        try:
            mapping = map_network(arch, work)
        except MappingError:
            continue
        flow = simulate(mapping, chip_timing(arch, mapping), data_movement=False, samples=1)
        expected = _analytical(arch, work)["c"]
        assert flow.latency_ns == pytest.approx(expected, abs=12 / PS_PER_NS), arch_name


def test_residual_block_is_its_longest_branch_plus_the_add():
    x = (8, 8, 8)
    a = conv("a", ("input",), x, 8, 3, padding=1)
    b = conv("b", ("a",), a.output_shape, 8, 3, padding=1)
    s = conv("s", ("input",), x, 8, 1)
    out = add("add", ("b", "s"), (b.output_shape, s.output_shape))
    work = Workload("res", x, (a, b, s, out))
    arch = _arch("isaac", {"mapping.duplication": "none"})
    mapping = map_network(arch, work)
    flow = simulate(mapping, chip_timing(arch, mapping), pipelined=False, data_movement=False,
                    samples=1)
    lat = _analytical(arch, work)
    assert lat["a"] + lat["b"] > lat["s"]
    expected = max(lat["a"] + lat["b"], lat["s"]) + lat["add"]
    assert flow.latency_ns == pytest.approx(expected, abs=4 / PS_PER_NS)


# --- bounds and monotonicity on every arch x zoo pair ---------------------------------------


def _widened(arch, classes):
    """``arch`` with every tile/chip component of ``classes`` twice as wide (None if none)."""
    from pimsim.cost._registry import BUFFER_ACCESS_BITS

    update, found = {}, False
    for level in ("tile", "chip"):
        block = getattr(arch, level)
        comps = []
        for comp in block.components:
            if comp.component_class in classes:
                found = True
                comp = comp.model_copy(
                    update={"width_bits": 2 * (comp.width_bits or BUFFER_ACCESS_BITS)}
                )
            comps.append(comp)
        update[level] = block.model_copy(update={"components": tuple(comps)})
    return arch.model_copy(update=update) if found else None


def _pairs():
    for a in ARCHS:
        for w in swept_zoo():
            yield a, w


def _hop_allowance_ns(mapping, timing) -> float:
    """The most row granularity can add over layer granularity: each extra chunk of a row-
    chunked layer pays its transfers' hop clocks (receive and send) again (pimsim.dataflow's
    Granularity), which pipelining hides unless the consumer needs every row at once."""
    nets = [p for p in timing.ports if p.role == "network"]
    if not nets:
        return 0.0
    mapped = mapping.layers
    pairs = [(a, b) for a, b in mapping.workload.edges if a in mapped and b in mapped]
    hops = max([p.hops or 0.0 for p in nets] + [mapping.hops(a, b) for a, b in pairs] + [1.0])
    extra = sum(
        layer.output_shape[1] - 1
        for layer in mapping.workload.layers
        if layer.name in mapped and layer.kind in ("conv", "pool") and len(layer.output_shape) == 3
    )
    return 2 * extra * hops * timing.period_ns


def _latency(arch, work, granularity="layer"):
    try:
        rep = evaluate(arch, work, granularity=granularity)
    except MappingError:
        return None
    return rep


@pytest.mark.parametrize("granularity", ["layer", "row"])
@pytest.mark.parametrize("arch_name", ARCHS)
def test_bounds_and_monotonicity_on_every_zoo_network(arch_name, granularity):
    """Pipelined latency <= layer-by-layer latency; throughput <= 1 / slowest stage; more ADCs,
    wider buffers or interconnect, or more duplication never increase latency."""
    checked = 0
    for work_name in swept_zoo():
        work = pimsim.load_workload(work_name)
        base = _latency(_arch(arch_name), work, granularity)
        if base is None:
            continue
        checked += 1
        flow = base.dataflow
        mapping = base.mapping
        timing = chip_timing(mapping.arch, mapping)
        serial = simulate(mapping, timing, pipelined=False, samples=1)
        slack = 0.0
        if granularity == "row":  # plus at most 1 ps of rounding per job
            slack = _hop_allowance_ns(mapping, timing) + flow.jobs * 1e-3
        assert flow.latency_ns <= serial.latency_ns * (1 + 1e-12) + slack, work_name
        assert flow.throughput_fps <= 1e9 / flow.bottleneck["busy_ns"] * (1 + 1e-9)
        arch = mapping.arch
        variants = {
            "adc": _arch(arch_name, {"adc.cols_per_adc": max(1, arch.adc.cols_per_adc // 2)}),
            "buffer": _widened(arch, ("buffer",)),
            "interconnect": _widened(arch, ("interconnect",)),
        }
        for what, other_arch in variants.items():
            if other_arch is None:
                continue
            other = _latency(other_arch, work, granularity)
            assert other.totals["latency_ns"] <= base.totals["latency_ns"] * (1 + 1e-9), (
                work_name, what)
        # more duplication: the same mapping with every layer's copies doubled (within limits)
        from dataclasses import replace
        from types import MappingProxyType

        more = {n: replace(m, copies=min(m.output_positions, 2 * m.copies))
                for n, m in mapping.layers.items()}
        pes = {n: -(-m.arrays_total // arch.pe.arrays) for n, m in more.items()}
        first, run_ = {}, 0
        for n in more:
            first[n] = run_
            run_ += pes[n]
        dup = replace(mapping, layers=MappingProxyType(more), pes=MappingProxyType(pes),
                      first_pe=MappingProxyType(first),
                      tiles_used=-(-run_ // arch.tile.pes),
                      chip_tiles=max(mapping.chip_tiles, -(-run_ // arch.tile.pes)))
        dflow = simulate(dup, chip_timing(arch, dup), granularity=granularity)
        assert dflow.latency_ns <= flow.latency_ns * (1 + 1e-9), (work_name, "duplication")
    assert checked > 0


def test_a_full_output_buffer_stalls_the_producer():
    """ISAAC's eDRAM holding one row, a few rows, or everything: a smaller buffer stalls the
    producing layers (compute waits for rows to leave), so latency falls as it grows."""
    arch = _arch("isaac")
    work = pimsim.load_workload("vgg8_cifar10")

    def sized(size):
        comps = tuple(
            c.model_copy(update={"size_bytes": size}) if c.name == "edram" else c
            for c in arch.tile.components
        )
        return arch.model_copy(update={"tile": arch.tile.model_copy(update={"components": comps})})

    lat = [evaluate(sized(size), work).dataflow.latency_ns for size in (16, 1024, 1 << 24)]
    assert lat[0] > lat[1] > lat[2]


# --- reports and CLI ---------------------------------------------------------------------------


def test_report_has_a_dataflow_section_and_layer_breakdowns():
    rep = evaluate(_arch("isaac"), pimsim.load_workload("resnet20_cifar10"))
    data = rep.to_dict()
    assert data["latency_model"] == "event"
    flow = data["dataflow"]
    for key in ("latency_ns", "throughput_fps", "events", "bottleneck", "utilization",
                "critical_path"):
        assert key in flow
    assert flow["latency_ns"] == rep.totals["latency_ns"]
    mapped = [rec for rec in data["layers"] if rec["arrays"]]
    assert all(rec["latency_breakdown_ns"].get("compute", 0) + rec["latency_breakdown_ns"].get(
        "adc", 0) > 0 for rec in mapped)
    # the critical path ends at the last layer and its durations do not exceed the latency
    path = flow["critical_path"]
    assert path[-1]["layer"] == rep.mapping.workload.layers[-1].name
    assert sum(seg["ns"] for seg in path) <= flow["latency_ns"] + 1e-6
    # analytical model kept for comparison
    ana = evaluate(_arch("isaac"), pimsim.load_workload("resnet20_cifar10"),
                   latency_model="analytical")
    assert ana.dataflow is None and "dataflow" not in ana.to_dict()


def test_cli_evaluate_event_model_and_timeline(tmp_path):
    runner = CliRunner()
    png = tmp_path / "t.png"
    res = runner.invoke(main, ["evaluate", str(ROOT / "arch_specs" / "isaac.yaml"),
                               "lenet5_mnist", "--timeline", str(png), "--format", "json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["dataflow"]["granularity"] == "row" and png.stat().st_size > 10_000
    res = runner.invoke(main, ["evaluate", str(ROOT / "arch_specs" / "isaac.yaml"),
                               "lenet5_mnist", "--latency-model", "analytical", "--timeline",
                               str(png)])
    assert res.exit_code == 2 and "--timeline needs" in res.output


# --- the one-pass kernel -----------------------------------------------------------------------


def test_static_kernel_equals_the_event_queue_on_random_graphs():
    """``run_static`` (one pass in service order) gives the heap kernel's trace: starts,
    finishes, causes and event count, on random job graphs with zero durations, shared
    resources, pure delays and streams."""
    from pimsim.dataflow._kernel import run_static

    rng = random.Random(7)
    for trial in range(400):
        n, n_res = rng.randint(1, 80), rng.randint(1, 5)
        duration = [rng.choice([0, 0, 1, 2, 3, 5, 8, 13]) for _ in range(n)]
        resource = [rng.choice([-1, *range(n_res)]) for _ in range(n)]
        preds = [sorted(rng.sample(range(j), k=min(j, rng.randint(0, 3)))) for j in range(n)]
        stream = [rng.randint(0, 3) for _ in range(n)] if trial % 2 else None
        a = run(duration, resource, preds, n_res, stream)
        b = run_static(duration, resource, preds, n_res, stream)
        assert (a.start, a.finish, a.cause, a.events) == (b.start, b.finish, b.cause, b.events)


@pytest.mark.parametrize("granularity", ["layer", "row"])
@pytest.mark.parametrize("arch_name", ARCHS)
def test_static_kernel_equals_the_event_queue_on_every_zoo_network(arch_name, granularity):
    """The default kernel reproduces the reference heap kernel to the picosecond on every
    shipped arch x zoo network x granularity: the whole dataflow result is identical."""
    checked = 0
    for work_name in swept_zoo():
        try:
            mapping = map_network(_arch(arch_name), pimsim.load_workload(work_name))
        except MappingError:
            continue
        timing = chip_timing(mapping.arch, mapping)
        fast = simulate(mapping, timing, granularity=granularity)
        ref = simulate(mapping, timing, granularity=granularity, kernel="heap")
        assert fast.to_dict() == ref.to_dict(), work_name
        checked += 1
    assert checked > 0


def test_compiled_kernel_spans_samples_and_groups_equal_the_event_queue():
    """The compiled kernel's compact inputs (predecessor spans, samples repeated with links
    between them, edges dropped between groups) give the heap kernel's trace on the same
    graph written out job by job, on random graphs."""
    import numpy as np

    from pimsim.dataflow._compiled import run_arrays

    rng = random.Random(11)
    for trial in range(300):
        n, n_res, samples = rng.randint(1, 40), rng.randint(1, 4), rng.randint(1, 3)
        duration = [rng.choice([0, 1, 2, 3, 5, 8]) for _ in range(n)]
        resource = [rng.choice([-1, *range(n_res)]) for _ in range(n)]
        group = sorted(rng.randint(0, 3) for _ in range(n))  # contiguous groups
        preds = [sorted(rng.sample(range(j), k=min(j, rng.randint(0, 2)))) for j in range(n)]
        spans = []
        for j in range(n):
            lo = rng.randint(0, j)
            hi = rng.randint(lo, j)
            while lo < hi and group[lo] != group[j]:
                lo += 1
            spans.append((lo, hi) if rng.random() < 0.5 else (0, 0))
        links = [(d, s) for d in range(n) for s in range(n) if rng.random() < 0.02]
        grouped = trial % 3 == 0
        stream = group if trial % 2 else None
        # the same graph written out: every sample's jobs, spans as edges, links from sample 1
        full_preds, full_stream = [], []
        for b in range(samples):
            for j in range(n):
                ps = [p for p in preds[j] if not grouped or group[p] == group[j]]
                ps += list(range(*spans[j]))
                ps = [p + b * n for p in ps]
                if b:
                    ps += [s + (b - 1) * n for d, s in links if d == j]
                full_preds.append(ps)
                full_stream.append(b * 10 + group[j])
        ref = run(duration * samples, resource * samples, full_preds, n_res,
                  full_stream if stream is not None and not grouped else None)
        dst = np.array([j for j in range(n) for _ in preds[j]], np.int64)
        src = np.array([p for j in range(n) for p in preds[j]], np.int64)
        got = run_arrays(
            np.array(duration), np.array(resource), dst, src, n_res,
            None if stream is None or grouped else np.array(stream),
            samples=samples,
            links=(np.array([d for d, _ in links], np.int64),
                   np.array([s for _, s in links], np.int64)),
            group=np.array(group) if grouped else None,
            spans=(np.array([s[0] for s in spans]), np.array([s[1] for s in spans])),
        )
        assert got.start.tolist() == ref.start, trial
        assert got.finish.tolist() == ref.finish, trial
        assert got.cause.tolist() == ref.cause, trial


def test_sparse_busy_table_gives_the_dense_breakdowns(monkeypatch):
    """The per-layer busy time by class comes from a dense (layer, class, resource) table, or
    for large networks from the triples that occur: both give the same result."""
    import pimsim.dataflow._model as model

    for arch_name, work_name in (("isaac", "resnet20_cifar10"), ("hermes_pcm_14nm", "bert_tiny")):
        mapping = map_network(_arch(arch_name), pimsim.load_workload(work_name))
        timing = chip_timing(mapping.arch, mapping)
        dense = simulate(mapping, timing)
        monkeypatch.setattr(model, "DENSE", 0)
        sparse = simulate(mapping, timing)
        monkeypatch.setattr(model, "DENSE", 1)
        assert sparse.to_dict() == dense.to_dict()
        assert any(v["latency_breakdown_ns"] for v in dense.layers.values())
