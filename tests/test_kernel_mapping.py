"""``mapping.kernel_rows: per_position``: DNN+NeuroSim V1.4's novel mapping (Chip.cpp), each kernel
position's input-channel rows on arrays of their own, one PE per position, whole tiles per layer."""

import math
from pathlib import Path

import pytest

import pimsim
from pimsim.mapping import map_layer, map_network
from pimsim.oracle._engine import make_plan
from pimsim.workload import _layer as L

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "neurosim_vgg8"
RRAM = ROOT / "arch_specs" / "neurosim_rram_22nm.yaml"
NOVEL = {"mapping.kernel_rows": "per_position", "array.rows_per_adc_read": 32}


def arch(size: int = 128, **overrides):
    return pimsim.load_arch(RRAM, {**NOVEL, "array.rows": size, "array.cols": size, **overrides})


@pytest.mark.skipif(not (DATA / "layers.csv").exists(), reason=f"no NeuroSim runs at {DATA}")
def test_novel_layers_match_neurosim_subarrays_pes_and_tiles():
    """At 128x128 with NeuroSim's speed-up rule, every novel-mapped VGG-8 layer has the
    subarrays (copies included), PEs and tiles that NeuroSim's floorplan derives."""
    import pandas as pd

    ref = pd.read_csv(DATA / "layers.csv")
    work = pimsim.load_workload("vgg8_cifar10")
    for cfg, rows in ref.groupby("config"):
        spec = arch(
            **{
                "mapping.duplication": "speedup",
                "array.rows_per_adc_read": int(rows.iloc[0]["name"].split("PR")[1][:2]),
            }
        )
        mapping = map_network(spec, work)
        names = list(mapping.layers)
        novel = rows[rows["mapping"] == "novel(NM)"]
        assert len(novel) == 5, cfg
        for r in novel.itertuples():
            m = mapping.layers[names[r.layer - 1]]
            assert m.kernel_positions == 9, m.name
            assert m.arrays_total == r.subarrays_derived, m.name
            assert m.copies == r.speedup, m.name
            assert mapping.pes[m.name] == r.PEs_derived, m.name
            first, last = mapping.tile_span(m.name)
            assert last - first + 1 == r.tiles, m.name
        for r in rows[rows["mapping"] != "novel(NM)"].itertuples():
            assert mapping.layers[names[r.layer - 1]].kernel_positions == 1


def test_cin_128_on_256_rows_uses_half_of_each_array():
    spec = arch(256)
    layer = L.conv("c", ("input",), (128, 8, 8), 64, 3, padding=1)
    m = map_layer(spec, layer)
    cols_per_weight = spec.weight_slices  # 1-bit cells, offset encoding: 8 columns per weight
    assert m.kernel_positions == 9
    assert m.row_tiles == (128,) * 9  # packed: 256, 256, 256, 256, 128
    assert m.arrays == 9 * math.ceil(64 * cols_per_weight / 256)
    assert m.utilization == pytest.approx(0.5)
    # DESIGN.md Counting with the per-position row tiles: 9 x ceil(128 / 32) row groups
    expected = 64 * 64 * spec.weight_slices * spec.input_cycles * 9 * math.ceil(128 / 32)
    assert m.adc_conversions == expected
    assert m.row_activations == 64 * spec.input_cycles * 128 * 9 * len(m.col_tiles)
    packed = map_layer(pimsim.with_overrides(spec, {"mapping.kernel_rows": "packed"}), layer)
    assert packed.row_tiles == (256, 256, 256, 256, 128)
    assert packed.adc_conversions == 64 * 64 * 8 * 8 * (4 * 8 + 4)


def test_tile_rows_follow_unfold_order_per_position():
    m = map_layer(arch(128), L.conv("c", ("input",), (200, 4, 4), 8, 3, padding=1))
    assert m.row_tiles == (128, 72) * 9
    tiles = m.tile_rows()
    assert [len(t) for t in tiles] == list(m.row_tiles)
    assert sorted(r for t in tiles for r in t) == list(range(m.k_rows))  # every row once
    for i, tile in enumerate(tiles):  # unfold order: row = channel x 9 + position
        assert {r % 9 for r in tile} == {i // 2}
    plan = make_plan(arch(128), m, False)
    assert plan.row_groups == sum(m.row_groups)
    for group in plan.row_index.tolist():  # an ADC read never mixes kernel positions
        assert len({r % 9 for r in group if r < m.k_rows}) == 1


def test_which_layers_are_mapped_per_position():
    spec = arch(128)
    small = L.conv("c1", ("input",), (3, 32, 32), 128, 3, padding=1)  # 27 rows < 128: packed
    pointwise = L.conv("pw", ("input",), (256, 8, 8), 64, 1)
    fc = L.linear("fc", ("input",), (8192,), 10)
    assert map_layer(spec, small).kernel_positions == 1
    assert map_layer(spec, pointwise).kernel_positions == 1
    assert map_layer(spec, fc).kernel_positions == 1
    five = L.conv("c5", ("input",), (64, 8, 8), 64, 5, padding=2)
    assert map_layer(spec, five).kernel_positions == 25
    assert map_layer(spec, five, network_kernel=9).kernel_positions == 1  # not the tile's kernel


def test_packed_default_is_unchanged():
    spec = pimsim.load_arch(RRAM, {"mapping.kernel_rows": "packed"})
    layer = L.conv("c", ("input",), (128, 8, 8), 64, 3, padding=1)
    m = map_layer(spec, layer)
    assert m.kernel_positions == 1
    assert m.row_tiles == (128,) * 9
    assert m.tile_rows() == tuple(tuple(range(i * 128, (i + 1) * 128)) for i in range(9))
    default = pimsim.load_arch(ROOT / "arch_specs" / "isaac.yaml")
    assert default.mapping.kernel_rows == "packed"


def test_oracle_counts_and_exact_result_per_position():
    """The oracle reads the per-position row groups: its conversions equal the mapping's, and
    with an ADC that resolves every level the result is the exact integer product."""
    torch = pytest.importorskip("torch")
    from pimsim.oracle import convert, counts

    spec = arch(64, **{"adc.bits": 8, "adc.range": "full_scale", "array.rows_per_adc_read": 16})
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(24, 4, 3, padding=1, bias=False))
    net = pimsim.from_torch(model, (1, 24, 5, 5))
    mapping = map_network(spec, net)
    (m,) = mapping.layers.values()
    assert m.kernel_positions == 9 and m.row_tiles == (24,) * 9
    x = torch.rand(2, 24, 5, 5)
    pim = convert(model, spec, (1, 24, 5, 5), mapping=mapping, calibration=[x])
    y = pim(x)
    assert counts(pim) == {m.name: 2 * m.adc_conversions}
    layer = next(mod for mod in pim.modules() if hasattr(mod, "integer_matmul"))
    rows = torch.nn.functional.unfold(x, 3, padding=1).transpose(1, 2).reshape(-1, 216)
    x_int, _ = layer.quantize_input(rows)
    got = layer.integer_matmul(x_int)
    w_int = layer.program(model[0].weight)  # the same integers, [M, K, N]
    want = x_int.to(torch.float64) @ w_int[0].to(torch.float64)
    assert torch.equal(got.reshape(want.shape), want)
    assert y.shape == (2, 4, 5, 5)


def test_read_all_row_groups_reads_every_group_of_the_array():
    """``array.read_all_row_groups`` (NeuroSim's SubArray: numAdd = rows / rows read together
    sensing cycles per input bit, whatever the rows hold): a 27-row conv on 128-row arrays at 32
    rows per read takes 4 groups per array read, not 1; the data-carrying conversions (the
    oracle's) are unchanged and the other 3 groups' conversions are counted apart."""
    layer = L.conv("c1", ("input",), (3, 8, 8), 16, 3, padding=1)
    packed = {"mapping.kernel_rows": "packed"}
    one = map_layer(arch(128, **packed, **{"array.read_all_row_groups": False}), layer)
    every = map_layer(arch(128, **packed, **{"array.read_all_row_groups": True}), layer)
    assert one.row_tiles == every.row_tiles == (27,)
    assert one.read_row_groups == (1,) and every.read_row_groups == (4,)
    assert every.position_steps == 4 * one.position_steps
    assert every.adc_conversions == one.adc_conversions
    assert one.empty_conversions == 0
    assert every.empty_conversions == 3 * every.adc_conversions


def test_read_all_row_groups_per_position_at_256_rows():
    """Per-position rows of a 128-channel conv fill half of a 256-row array: with every row
    group read, a position takes 8 groups (NeuroSim's numAdd) instead of 4."""
    layer = L.conv("c", ("input",), (128, 8, 8), 64, 3, padding=1)
    half = map_layer(arch(256, **{"array.read_all_row_groups": False}), layer)
    every = map_layer(arch(256, **{"array.read_all_row_groups": True}), layer)
    assert every.row_tiles == (128,) * 9
    assert every.read_row_groups == (8,) * 9 and half.read_row_groups == (4,) * 9
    assert every.position_steps == 2 * half.position_steps
    assert every.empty_conversions == every.adc_conversions == half.adc_conversions
    full = map_layer(arch(128, **{"array.read_all_row_groups": True}), layer)
    assert full.empty_conversions == 0  # full arrays: nothing changes
