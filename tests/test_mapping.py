"""Mapping: tiling, conversions (checked against an explicit loop over the array layout),
duplication, allocation and errors."""

import math
from pathlib import Path

import pytest

import pimsim
from pimsim.errors import MappingError
from pimsim.mapping import map_layer, map_network
from pimsim.workload import _layer as L

ROOT = Path(__file__).resolve().parents[1]


SCHEMES = [
    {"decomposition.scheme": "bit_serial"},
    {"decomposition.scheme": "native"},
    {"decomposition.scheme": "differential"},
    {
        "decomposition.scheme": "native",
        "decomposition.signed_encoding": "differential_digital",
        "cell.bits": 7,
    },
    {"decomposition.scheme": "native", "cell.bits": 2, "dac.bits": 2},
    {"decomposition.scheme": "bit_serial", "decomposition.signed_encoding": "offset"},
    {
        "decomposition.scheme": "bit_serial",
        "decomposition.signed_encoding": "offset",
        "decomposition.offset_reference": "digital",
    },
    {"decomposition.scheme": "native", "decomposition.offset_reference": "digital"},
]


def layer_geometry(layer) -> tuple[int, int, int, int]:
    """(groups, rows K and columns N of one group's matrix, output positions) of a conv or
    linear layer, from its shapes alone."""
    if layer.kind == "conv":
        groups = layer.groups
        k = layer.in_channels // groups * layer.kernel[0] * layer.kernel[1]
        positions = layer.output_shape[1] * layer.output_shape[2]
        return groups, k, layer.out_channels // groups, positions
    return 1, layer.in_channels, layer.out_channels, 1


def small_layers():
    return [
        L.linear("fc", ("input",), (300,), 10),
        L.conv("conv", ("input",), (5, 9, 9), 7, 3, stride=2, padding=1),
        L.conv("grouped", ("input",), (8, 6, 6), 12, 3, padding=1, groups=4),
        L.conv("depthwise", ("input",), (16, 5, 5), 16, 3, padding=1, groups=16),
    ]


def loop_reference(arch, layer):
    """Independent count: walk an explicit layout of every group's matrix on arrays and count one
    conversion per (position, row group, input cycle, column pair or column, slice); with a
    reference column (``offset`` weights, ``offset_reference: column``) each array also converts
    its reference column (one weight's worth of physical columns) like one more column."""
    dec = arch.decomposition
    diff = dec.signed_encoding in ("differential_analog", "differential_digital")
    m_bits = dec.weight_bits - 1 if diff else dec.weight_bits
    slices = -(-m_bits // arch.cell.bits)
    cycles = -(-dec.input_bits // arch.dac.bits)
    rows, rpr = arch.array.rows, arch.array.rows_per_adc_read
    reference = dec.signed_encoding == "offset" and dec.offset_reference == "column"
    physical = slices * (2 if diff else 1)  # physical columns of one weight
    groups, k, n, positions = layer_geometry(layer)
    # the columns of each array: weights placed left to right while they fit, then the reference
    arrays_cols, placed = [], 0
    while placed < n:
        free, here = arch.array.cols - (physical if reference else 0), 0
        while placed < n and free >= physical:
            free, here, placed = free - physical, here + 1, placed + 1
        arrays_cols.append(here + (1 if reference else 0))
    count = 0
    for _group in range(groups):
        for _pos in range(positions):
            start = 0
            while start < k:  # row tiles, arrays filled first
                used = min(rows, k - start)
                for cols_here in arrays_cols:  # the arrays of this row tile
                    row_start = 0
                    while row_start < used:  # row groups
                        for _cycle in range(cycles):
                            for _col in range(cols_here):
                                for _slice in range(slices):
                                    digital = dec.signed_encoding == "differential_digital"
                                    count += 2 if digital else 1
                        row_start += rpr
                start += rows
    return count


@pytest.mark.parametrize("overrides", SCHEMES, ids=lambda o: "-".join(map(str, o.values())))
@pytest.mark.parametrize("layer", small_layers(), ids=lambda x: x.name)
def test_conversions_match_loop_reference(unit_path, overrides, layer):
    arch = pimsim.load_arch(unit_path, overrides)
    m = map_layer(arch, layer)
    assert m.adc_conversions == loop_reference(arch, layer)


def test_row_tiles_fill_arrays_first(unit_path):
    arch = pimsim.load_arch(unit_path)
    m = map_layer(arch, L.linear("fc", ("input",), (300,), 10))
    assert m.row_tiles == (128, 128, 44)
    assert m.row_groups == (4, 4, 2)
    # bit-serial 8-bit weights: 8 one-bit slices per weight, 64 columns -> 8 weights per array
    assert m.col_tiles == (8, 2)
    assert m.arrays == 6
    assert m.used_cells == 300 * 10 * 8
    assert m.utilization == pytest.approx(300 * 10 * 8 / (6 * 128 * 64))


def test_block_diagonal_packing_shares_arrays_without_reading_zeros(unit_path):
    arch = pimsim.load_arch(unit_path, {"mapping.pack_groups": "block_diagonal"})
    separate = map_layer(pimsim.load_arch(unit_path), L.conv(
        "g", ("input",), (8, 6, 6), 12, 3, padding=1, groups=4))  # fmt: skip
    m = map_layer(arch, L.conv("g", ("input",), (8, 6, 6), 12, 3, padding=1, groups=4))
    # each group is an 18 x 3 matrix; a 128-row array with 64 // 8 = 8 logical columns holds
    # min(128 // 18, 8 // 3) = 2 of them on its diagonal
    assert (m.matrices, m.k_rows, m.n_cols, m.groups_per_array) == (4, 18, 3, 2)
    assert (m.arrays, separate.arrays) == (2, 4)
    assert m.used_cells == separate.used_cells == 4 * 18 * 3 * 8  # the diagonal blocks only
    # 36 positions x 3 columns x 8 slices x 8 cycles x 1 row group x 4 groups, as separately
    assert m.adc_conversions == separate.adc_conversions == 36 * 3 * 8 * 8 * 4
    # the two groups of an array are read one after the other
    assert m.position_steps == 2 * separate.position_steps


def test_weight_too_wide_for_array(unit_path):
    arch = pimsim.load_arch(unit_path, {"array.cols": 4, "adc.cols_per_adc": 1})
    with pytest.raises(MappingError, match="columns"):
        map_layer(arch, L.linear("fc", ("input",), (10,), 10))


def test_fixed_chip_too_small_is_a_clear_error():
    arch = pimsim.load_arch(ROOT / "arch_specs" / "hermes_pcm_14nm.yaml")
    with pytest.raises(MappingError, match="needs 402 tiles .* chip.tiles = 64"):
        map_network(arch, pimsim.load_workload("vgg8_cifar10"))
    passes = map_network(
        pimsim.with_overrides(arch, {"mapping.reprogram": True}),
        pimsim.load_workload("vgg8_cifar10"),
    )
    assert passes.passes == math.ceil(402 / 64)


def test_duplication_balances_and_fits_fixed_chip():
    arch = pimsim.load_arch(ROOT / "arch_specs" / "isaac.yaml")
    m = map_network(arch, pimsim.load_workload("vgg8_cifar10"))
    assert m.tiles_used <= 168
    copies = [lm.copies for lm in m.layers.values()]
    assert copies[0] > 1 and copies[-1] == 1  # early layers are duplicated
    without = map_network(
        pimsim.with_overrides(arch, {"mapping.duplication": "none"}),
        pimsim.load_workload("vgg8_cifar10"),
    )
    assert all(lm.copies == 1 for lm in without.layers.values())
    # conversions per sample do not depend on duplication
    assert m.adc_conversions == without.adc_conversions


def test_speedup_rule_matches_neurosim_vgg8():
    """DNN+NeuroSim V1.4 on VGG-8: speed-up degree 8 is clipped to maxIFM / minIFM = 32 / 8 = 4,
    bound = 8, so conv layers with 32, 32, 16, 16, 8, 8 input rows get 16, 16, 4, 4, 1, 1 copies."""
    arch = pimsim.load_arch(
        ROOT / "arch_specs" / "neurosim_rram_22nm.yaml",
        {"mapping.duplication": "speedup", "mapping.max_duplication": 8},
    )
    m = map_network(arch, pimsim.load_workload("vgg8_cifar10"))
    assert [lm.copies for lm in m.layers.values()] == [16, 16, 4, 4, 1, 1, 1, 1]
