"""Cost model: exact unit-cost action counts, properties over every spec x zoo network, ISAAC's
Table I aggregation, report structure and CLI errors."""

import json
import math
from pathlib import Path

import pytest

import pimsim
from pimsim.cost import evaluate, level_reports
from pimsim.errors import MappingError
from pimsim.workload import Workload
from tests._cli import run_cli
from tests.conftest import swept_zoo
from tests.test_mapping import SCHEMES, small_layers

ROOT = Path(__file__).resolve().parents[1]
ARCHS = sorted((ROOT / "arch_specs").glob("*.yaml"))
ZOO = swept_zoo()


def hand_count(arch, layer) -> int:
    """Every action of one mapped layer, counted over an explicit list of arrays (with a
    reference column, each array holds one weight fewer and reads and converts its reference
    like one more weight)."""
    dec = arch.decomposition
    diff = dec.signed_encoding in ("differential_analog", "differential_digital")
    slices = -(-(dec.weight_bits - diff) // arch.cell.bits)
    cpw = slices * (2 if diff else 1)
    cycles = -(-dec.input_bits // arch.dac.bits)
    rows, cols, rpr = arch.array.rows, arch.array.cols, arch.array.rows_per_adc_read
    per_col = 2 if dec.signed_encoding == "differential_digital" else 1
    ref = int(dec.signed_encoding == "offset" and dec.offset_reference == "column")
    per_array = cols // cpw - ref
    if layer.kind == "conv":
        g = layer.groups
        k, n = layer.in_channels // g * layer.kernel[0] * layer.kernel[1], layer.out_channels // g
        positions = layer.output_shape[1] * layer.output_shape[2]
    else:
        g, k, n, positions = 1, layer.in_channels, layer.out_channels, 1
    arrays = []  # (rows used, weights held) of every array
    for _ in range(g):
        for r0 in range(0, k, rows):
            for c0 in range(0, n, per_array):
                arrays.append((min(rows, k - r0), min(per_array, n - c0) + ref))
    conversions = dac = cells = 0
    for used_rows, weights in arrays:
        conversions += positions * cycles * math.ceil(used_rows / rpr) * weights * slices * per_col
        dac += positions * cycles * used_rows
        cells += positions * cycles * used_rows * weights * cpw
    row_tiles = -(-k // rows)
    outputs = positions * n * g
    corrections = outputs if dec.signed_encoding in ("offset", "differential_digital") else 0
    accumulate = outputs * (row_tiles - 1) + corrections
    out_elems = math.prod(layer.output_shape)
    buffer_bits = (positions * k * g + out_elems) * dec.input_bits
    # the tile's local interconnect carries the unrolled inputs in and the results out; the one
    # consumer (none: itself, 0 hops away) receives them over it
    link_bits = buffer_bits
    # adc + sample-hold + shift-add (one each per conversion), dac, array, the rest
    return 3 * conversions + dac + cells + accumulate + buffer_bits + link_bits


@pytest.mark.parametrize("overrides", SCHEMES, ids=lambda o: "-".join(map(str, o.values())))
def test_unit_cost_energy_equals_hand_count(unit_path, overrides):
    arch = pimsim.load_arch(unit_path, overrides)
    for layer in small_layers():
        report = evaluate(arch, Workload("one", layer.input_shape, (layer,)))
        row = report.layers.iloc[0]
        assert row["energy_pj"] == hand_count(arch, layer), layer.name
        assert report.totals["energy_pj"] == row["energy_pj"]
        assert report.totals["macs"] == layer.macs


def test_unit_cost_digital_layers(unit_path):
    arch = pimsim.load_arch(unit_path)
    net = pimsim.load_workload("lenet5_mnist")
    report = evaluate(arch, net)
    rows = report.layers.set_index("name")
    # relu1: 6x28x28 activations + moving them on the link at 8 bits each
    assert rows.loc["relu1", "energy_pj"] == 6 * 28 * 28 * (1 + 8)
    # pool1: 6x14x14 outputs x 2x2 window, plus the link
    assert rows.loc["pool1", "energy_pj"] == 6 * 14 * 14 * (4 + 8)
    assert rows.loc["flatten", "energy_pj"] == 0


@pytest.fixture(scope="module")
def reports():
    out = {}
    for path in ARCHS:
        arch = pimsim.load_arch(path)
        for name in ZOO:
            net = pimsim.load_workload(name)
            try:
                out[path.stem, name] = (arch, net, evaluate(arch, net))
            except MappingError:
                assert arch.chip.tiles != "auto"
                auto = pimsim.with_overrides(arch, {"chip.tiles": "auto"})
                out[path.stem, name] = (auto, net, evaluate(auto, net))
    return out


def test_reports_are_finite_and_consistent(reports):
    assert len(reports) == len(ARCHS) * len(ZOO)
    for key, (arch, net, report) in reports.items():
        t = report.totals
        values = [v for v in t.values() if isinstance(v, float | int)]
        values += list(report.energy_breakdown_pj.values())
        values += list(report.layers.select_dtypes("number").to_numpy().ravel())
        assert all(math.isfinite(v) and v >= 0 for v in values), key
        assert 0 < t["utilization"] <= 1, key
        assert t["macs"] == net.macs, key
        assert report.layers["macs"].sum() == net.macs
        # the action count of the cost model agrees with the mapping's own conversion count
        assert t["adc_conversions"] == pimsim.map_network(arch, net).adc_conversions, key


@pytest.mark.parametrize("path", ARCHS, ids=lambda p: p.stem)
def test_energy_and_adc_area_non_decreasing_in_adc_bits(reports, path):
    for name in ZOO:
        arch, net, _ = reports[path.stem, name]
        energies, areas = [], []
        for bits in range(4, 9):
            variant = pimsim.with_overrides(arch, {"adc.bits": bits})
            report = evaluate(variant, net)
            energies.append(report.totals["energy_pj"])
            areas.append(report.area_breakdown_mm2["adc"])
        assert energies == sorted(energies), (name, energies)
        assert energies[0] < energies[-1], (name, energies)  # the ADC bits do cost energy
        assert areas == sorted(areas), (name, areas)
        assert areas[0] < areas[-1]


@pytest.mark.parametrize("path", ARCHS, ids=lambda p: p.stem)
def test_conversions_non_increasing_in_rows_per_read(reports, path):
    for name in ("lenet5_mnist", "resnet20_cifar10", "mobilenetv2_imagenet"):
        arch, net, _ = reports[path.stem, name]
        counts = []
        for rpr in (1, 2, 8, 16, 32, arch.array.rows):
            variant = pimsim.with_overrides(arch, {"array.rows_per_adc_read": rpr})
            counts.append(pimsim.map_network(variant, net).adc_conversions)
        assert counts == sorted(counts, reverse=True), (name, counts)
        assert counts[0] > counts[-1], (name, counts)


def test_isaac_table_one_aggregation():
    """ISAAC (ISCA'16) Table I totals from per-instance values, sharing and rated rates."""
    arch = pimsim.load_arch(ROOT / "arch_specs" / "isaac.yaml")
    levels = {lv.name: lv for lv in level_reports(arch, arch.chip.tiles)}
    tile, chip = levels["tile"], levels["chip"]
    assert tile.peak_power_mw == pytest.approx(330, rel=0.02)
    assert tile.area_mm2 == pytest.approx(0.372, rel=0.02)
    assert chip.peak_power_mw == pytest.approx(65.8e3, rel=0.05)
    assert chip.area_mm2 == pytest.approx(85.4, rel=0.05)
    adc = tile.breakdown["adc"]
    assert adc["peak_power_mw"] / tile.peak_power_mw == pytest.approx(0.58, abs=0.01)
    assert adc["area_mm2"] / tile.area_mm2 == pytest.approx(0.31, abs=0.01)
    # the tile carries a quarter of the shared router; the chip holds 168 / 4 routers
    router = next(c for c in arch.tile.components if c.name == "router")
    assert router.shared_by == 4
    ic_tile = tile.breakdown["interconnect"]["area_mm2"]
    assert ic_tile == pytest.approx(0.090 + 0.151 / 4)
    assert chip.breakdown["interconnect"]["area_mm2"] == pytest.approx(168 * 0.090 + 42 * 0.151)


def test_evaluate_json_keys():
    result = run_cli("evaluate", "arch_specs/isaac.yaml", "lenet5_mnist", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    for key in (
        "macs",
        "adc_conversions",
        "energy_pj",
        "latency_ns",
        "throughput_fps",
        "area_mm2",
        "tops_per_w",
        "tops_per_mm2",
        "arrays_used",
        "utilization",
    ):
        assert key in data["totals"]
    assert {
        "name",
        "macs",
        "arrays",
        "adc_conversions",
        "energy_pj",
        "latency_ns",
        "energy_breakdown_pj",
    } <= set(data["layers"][0])
    assert data["layers"][0]["name"] == "conv1"


def test_inspect_json_levels():
    result = run_cli("inspect", "arch_specs/isaac.yaml", "--format", "json")
    assert result.returncode == 0, result.stderr
    levels = json.loads(result.stdout)["levels"]
    assert [lv["name"] for lv in levels] == ["array", "pe", "tile", "chip"]
    assert set(levels[2]["breakdown"]["adc"]) == {"area_mm2", "peak_power_mw"}


@pytest.mark.parametrize(
    "args, needle",
    [
        (["evaluate", "arch_specs/hermes_pcm_14nm.yaml", "vgg8_cifar10"], "chip.tiles = 64"),
        (
            [
                "evaluate",
                "arch_specs/isaac.yaml",
                "lenet5",
            ],
            "did you mean 'lenet5_mnist'",
        ),
        (["evaluate", "arch_specs/isaac.yaml", "mlp_mnist", "--set", "array.rows=0"], "array.rows"),
        (["evaluate", "arch_specs/isaac.yaml", "mlp_mnist", "--set", "adc.bits=0"], "adc.bits"),
        (["evaluate", "arch_specs/isaac.yaml", "mlp_mnist", "--set", "adc.bits=12"], "4..10"),
    ],
)
def test_bad_input_exits_2(args, needle):
    result = run_cli(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


def test_interconnect_follows_placement(unit_path):
    """fc1 (300->256, bit-serial) fills 96 arrays = 24 PEs = tiles 0..11; fc2 sits on tile 12.
    On a 4-wide mesh of 13 tiles fc1's centre is row 1, column 1.5 and fc2's is (3, 0)."""
    from pimsim.workload import _layer as L

    fc1 = L.linear("fc1", ("input",), (300,), 256)
    fc2 = L.linear("fc2", ("fc1",), (256,), 10)
    arch = pimsim.load_arch(unit_path)
    report = evaluate(arch, Workload("two", (300,), (fc1, fc2)))
    m = report.mapping
    assert (m.tile_span("fc1"), m.tile_span("fc2"), m.chip_tiles) == ((0, 11), (12, 12), 13)
    assert m.hops("fc1", "fc2") == m.hops("fc2", "fc1") == 3.5
    # unrolled inputs in and results out on the tile's local interconnect, 3.5 hops to fc2
    local = (300 + 256) * 8
    assert report.layers.set_index("name").loc["fc1", "energy_interconnect_pj"] == (
        local + 256 * 8 * 3.5
    )


def test_reprogramming_counts_and_costs_writes():
    arch = pimsim.load_arch(
        ROOT / "arch_specs" / "hermes_pcm_14nm.yaml",
        {"mapping.reprogram": True, "cell.write_energy_pj": 10.0, "cell.write_pulses": 3},
    )
    report = evaluate(arch, pimsim.load_workload("vgg8_cifar10"))
    used = sum(m.used_cells * m.copies for m in report.mapping.layers.values())
    assert report.totals["passes"] == 7
    assert report.totals["cell_writes"] == 3 * used
    assert report.energy_breakdown_pj["write"] == pytest.approx(30.0 * used)


def test_activity_scales_row_and_cell_energy_only(unit_path):
    from pimsim.workload import _layer as L

    fc = L.linear("fc", ("input",), (300,), 10)
    arch = pimsim.load_arch(unit_path)
    full = evaluate(arch, Workload("one", (300,), (fc,))).layers.iloc[0]
    quarter = evaluate(arch, Workload("one", (300,), (fc,)), activity=0.25).layers.iloc[0]
    per_layer = evaluate(
        arch, Workload("one", (300,), (fc,)), activity=pimsim.Activity({"fc": 0.25})
    ).layers.iloc[0]
    for cls in ("dac", "array"):
        assert quarter[f"energy_{cls}_pj"] == full[f"energy_{cls}_pj"] / 4
        assert per_layer[f"energy_{cls}_pj"] == quarter[f"energy_{cls}_pj"]
    for cls in ("adc", "shift_add", "buffer"):
        assert quarter[f"energy_{cls}_pj"] == full[f"energy_{cls}_pj"]
    with pytest.raises(ValueError):
        pimsim.Activity(default=1.5)


def test_spec_model_names_match_the_registry():
    from pimsim.cost import models
    from pimsim.spec import _arch

    for section, names in (
        ("adc", _arch.ADC_MODELS),
        ("dac", _arch.DAC_MODELS),
        ("array", _arch.ARRAY_MODELS),
        ("component", _arch.COMPONENT_MODELS),
    ):
        assert sorted(names) == sorted(n for _, n in models(section)), section
