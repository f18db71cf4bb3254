"""Reference columns for ``offset`` weights (``decomposition.offset_reference: column``): exactness
against the digital correction with ideal cells and an exact ADC, conversion counts (oracle ==
cost model == an explicit loop over the arrays), cancellation of a between-chip conductance
shift, and the default."""

import itertools
import math
import warnings

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import pimsim  # noqa: E402
import pimsim.oracle  # noqa: E402
from pimsim.errors import MappingError  # noqa: E402
from pimsim.mapping import map_layer  # noqa: E402
from pimsim.oracle import _kernels as K  # noqa: E402
from pimsim.workload import _layer as L  # noqa: E402
from tests.test_mapping import layer_geometry  # noqa: E402
from tests.test_oracle import cost_model_conversions, zoo_input  # noqa: E402

# 128 x 64 arrays, 32 rows per read: a 300-row layer takes row tiles 128, 128, 44 (4, 4, 2 row
# groups); with native 4-bit cells (one slice) an array holds 63 columns and its reference
SMALL = {"array.rows": 128, "array.cols": 64, "array.rows_per_adc_read": 32}
OFFSET_CONFIGS = {
    "native": {},
    "native_signed_inputs": {"decomposition.signed_inputs": "signed"},
    "offset_2bit_cells_2bit_dac": {"cell.bits": 2, "dac.bits": 2},
    "bit_serial_offset": {
        "decomposition.scheme": "bit_serial",
        "decomposition.signed_encoding": "offset",
    },
    "bit_serial_offset_signed": {
        "decomposition.scheme": "bit_serial",
        "decomposition.signed_encoding": "offset",
        "decomposition.signed_inputs": "signed",
    },
    "block_diagonal": {"mapping.pack_groups": "block_diagonal"},
    "one_group_per_read": {"array.rows_per_adc_read": 128},  # the direct (fused) CPU path
}


class Net(nn.Module):
    """Several row tiles (K = 300), several column tiles (N = 150 > 63), a grouped conv."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(6, 20, 3, padding=1)
        self.grouped = nn.Conv2d(20, 12, 3, padding=1, groups=4)
        self.fc1 = nn.Linear(12 * 5 * 5, 150)
        self.fc2 = nn.Linear(150, 70)

    def forward(self, x):
        x = self.grouped(self.conv(x))
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


def convert(model, arch, shape, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # per-batch scales: fine for these checks
        return pimsim.oracle.convert(model, arch, shape, **kw)


def pim_layers(pim):
    kinds = (pimsim.oracle.PimLinear, pimsim.oracle.PimConv2d)
    return {n: m for n, m in pim.named_modules() if isinstance(m, kinds)}


def arch_for(small_path, config, reference, **extra):
    return pimsim.load_arch(
        small_path,
        {**SMALL, **OFFSET_CONFIGS[config], "decomposition.offset_reference": reference, **extra},
    )


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "torch"])
@pytest.mark.parametrize("config", OFFSET_CONFIGS, ids=list(OFFSET_CONFIGS))
def test_reference_column_equals_digital_correction_when_exact(small_path, config, kernels):
    """(a) Ideal cells and an ADC that resolves every level (the small arch's 16 bits): the
    reference column's converted value is exactly offset x the applied inputs' sum, so the
    outputs of ``column`` and ``digital`` are equal, bit for bit, on the fused CPU kernels and
    on the torch operations."""
    torch.manual_seed(0)
    net = Net()
    x = torch.rand(3, 6, 5, 5) - (0.3 if "signed" in config else 0.0)
    outs, direct = {}, False
    old = K.ENABLED
    K.ENABLED = kernels
    try:
        for reference in ("column", "digital"):
            arch = arch_for(small_path, config, reference)
            pim = convert(net, arch, (1, 6, 5, 5), calibration=[x])
            layers = pim_layers(pim)
            assert all(layer.plan.step == 1.0 for layer in layers.values())
            if reference == "column":
                assert all(layer.plan.references >= 1 for layer in layers.values())
                direct = any(layer.plan.direct for layer in layers.values())
            outs[reference] = pim(x)
    finally:
        K.ENABLED = old
    assert torch.equal(outs["column"], outs["digital"])
    if config == "one_group_per_read":
        assert direct, "this config must exercise the direct fast path"


def loop_conversions(arch, layer) -> int:
    """Independent count for one input sample: lay every group's K x N matrix on arrays (row
    tiles of ``array.rows``; each array takes weights of ``slices`` physical columns left to
    right while they fit beside its reference weight) and count one conversion per (output
    position, row group, input cycle, slice) of every weight column and every reference."""
    dec = arch.decomposition
    slices = math.ceil(dec.weight_bits / arch.cell.bits)
    cycles = math.ceil(dec.input_bits / arch.dac.bits)
    rows, cols, rpr = arch.array.rows, arch.array.cols, arch.array.rows_per_adc_read
    reference = dec.signed_encoding == "offset" and dec.offset_reference == "column"
    groups, k, n, positions = layer_geometry(layer)
    count = 0
    for _group in range(groups):
        for r0 in range(0, k, rows):  # row tiles
            used_rows = min(rows, k - r0)
            placed = 0
            while placed < n:  # the arrays of this row tile
                free = cols - (slices if reference else 0)
                columns = 0
                while placed < n and free >= slices:
                    free, columns, placed = free - slices, columns + 1, placed + 1
                columns += 1 if reference else 0
                for _pos in range(positions):
                    for _g0 in range(0, used_rows, rpr):  # row groups
                        for _cycle in range(cycles):
                            for _col in range(columns):
                                for _slice in range(slices):
                                    count += 1
    return count


@pytest.mark.parametrize("config", ["native", "bit_serial_offset", "offset_2bit_cells_2bit_dac"])
def test_conversions_oracle_equal_cost_model_and_loop(small_path, config):
    """(b) For a network whose layers have several row and column tiles: the oracle's counter
    equals the cost model's conversions (read from the mapping) x batch, which equal the loop
    count over an explicit array layout; the reference adds conversions over ``digital``."""
    torch.manual_seed(1)
    net, batch = Net(), 2
    workload = pimsim.from_torch(net, (1, 6, 5, 5))
    counts = {}
    for reference in ("column", "digital"):
        arch = arch_for(small_path, config, reference)
        pim = convert(net, arch, (1, 6, 5, 5))
        pimsim.oracle.reset_counts(pim)
        pim(torch.rand(batch, 6, 5, 5))
        report = pimsim.evaluate(arch, workload, pim.pim_mapping)
        cost = {
            r["name"]: r["adc_conversions"] * batch
            for r in report.layers.to_dict("records")
            if r["adc_conversions"]
        }
        loop = {
            layer.name: loop_conversions(arch, layer) * batch
            for layer in workload.layers
            if layer.kind in ("conv", "linear")
        }
        assert pimsim.oracle.counts(pim) == cost == loop, reference
        counts[reference] = cost
    m = pim.pim_mapping.layers["fc1"]
    assert len(m.row_tiles) == 3  # K = 300 on 128 rows: several row tiles
    for name in counts["column"]:
        assert counts["column"][name] > counts["digital"][name], name


def test_counting_rule_and_mapping_of_one_layer(small_path):
    """(b) The rule itself on one layer: K = 300, N = 150, native 4-bit cells on 128 x 64 arrays:
    63 columns + 1 reference per array, 3 column tiles, row groups 4 + 4 + 2;
    conversions = (150 + 3) x 10 per sample; reference cells are used cells and cell reads."""
    layer = L.linear("fc", ("input",), (300,), 150)
    col = map_layer(arch_for(small_path, "native", "column"), layer)
    dig = map_layer(arch_for(small_path, "native", "digital"), layer)
    assert col.col_tiles == (63, 63, 24) and dig.col_tiles == (64, 64, 22)
    assert (col.references, col.reference_cols, dig.references) == (1, 3, 0)
    assert col.row_groups == (4, 4, 2)
    assert col.adc_conversions == (150 + 3) * 10
    assert dig.adc_conversions == 150 * 10
    assert col.arrays == dig.arrays == 9
    assert col.used_cells == 300 * 150 + 300 * 3
    assert col.cell_reads == 300 * (150 + 3)
    # 64 columns hold 64 weights without a reference, 63 and the reference with one
    wide = L.linear("fc", ("input",), (10,), 64)
    assert map_layer(arch_for(small_path, "native", "column"), wide).arrays == 2
    assert map_layer(arch_for(small_path, "native", "digital"), wide).arrays == 1


def test_array_too_narrow_for_weight_and_reference(small_path):
    arch = arch_for(small_path, "bit_serial_offset", "column", **{"array.cols": 7})
    with pytest.raises(MappingError, match="reference"):
        map_layer(arch, L.linear("fc", ("input",), (10,), 10))
    digital = arch_for(small_path, "bit_serial_offset", "digital", **{"array.cols": 7})
    assert map_layer(digital, L.linear("fc", ("input",), (10,), 10)).col_tiles == (1,) * 10


def output_error(small_path, reference, e_chip, adc_bits):
    """Relative error (Frobenius) of a 200 x 40 linear layer's outputs on a chip whose every
    cell's conductance is scaled by exp(e_chip) (between-chip variation only), against the ideal
    chip with the same ADC."""
    torch.manual_seed(0)
    lin = nn.Linear(200, 40)
    x = torch.rand(64, 200)
    over = {"adc.bits": adc_bits, "decomposition.offset_reference": reference}
    ideal = pimsim.load_arch(small_path, over)
    varied = pimsim.load_arch(small_path, {**over, "cell.variation.between_chip": 0.1})
    pim = convert(lin, ideal, (1, 200), calibration=[x])
    y0 = pim(x)
    layer = pim[0]
    layer.set_chip(varied, e_chip, seed=5)  # a forced e_chip; within_chip is 0
    y1 = pim(x)
    return float((y1 - y0).norm() / y0.norm())


@pytest.mark.parametrize("adc_bits", [16, 8])
@pytest.mark.parametrize("e_chip", [0.1, -0.1])
def test_reference_column_cancels_between_chip_shift(small_path, e_chip, adc_bits):
    """(c) A between-chip gain alone: the exact digital correction leaves (exp(e) - 1) x offset x
    input sum in every column (about twice the signal here: error ~2); the reference column sees
    the same gain, so only the gain on the weights themselves remains (error ~|exp(e) - 1|).
    Measured: ratio 0.048 (16-bit ADC) and 0.054-0.056 (8-bit) for e = +-0.1."""
    column = output_error(small_path, "column", e_chip, adc_bits)
    digital = output_error(small_path, "digital", e_chip, adc_bits)
    assert column < 0.1 * digital, (column, digital)
    assert digital > 1.5
    if adc_bits == 16:  # an exact ADC: what remains is the gain itself
        assert column == pytest.approx(abs(math.expm1(e_chip)), rel=0.05)


def test_reference_cells_share_the_chip_factor_and_draw_their_own(small_path):
    """Device variation reaches the reference cells: the chip's e_chip and their own within-chip
    draws (their conductances differ from one another, their log-mean is e_chip)."""
    lin = nn.Linear(200, 40)
    over = {"cell.variation.between_chip": 0.1}
    for within, e_chip in itertools.product((0.0, 0.05), (0.2,)):
        arch = pimsim.load_arch(small_path, {**over, "cell.variation.within_chip": within})
        pim = convert(lin, arch, (1, 200))
        layer = pim[0]
        layer.set_chip(arch, e_chip, seed=3)
        plan = layer.plan
        assert plan.references == 1
        n = plan.n_cols
        levels = layer.w_layout[:, :, n].to(torch.float64)  # [groups, rows per read]
        g = layer.noise.g_layout[:, :, n].to(torch.float64)
        real = levels > 0  # padding rows hold nothing
        off = 2 ** (plan.weight_bits - 1) - 1
        assert torch.equal(levels[real], torch.full_like(levels[real], off))
        assert bool((g[~real] == 0).all())
        ratio = torch.log(g[real] / levels[real])
        if within == 0:
            assert torch.allclose(ratio, torch.full_like(ratio, e_chip), atol=1e-6)
        else:
            assert float(ratio.std()) > 0.03
            assert float(ratio.mean()) == pytest.approx(e_chip, abs=0.02)


def test_offset_reference_defaults_to_column(small_path):
    """(d) Offset chips are built with a reference column: the default; other encodings have
    none, whatever the knob says."""
    arch = pimsim.load_arch(small_path)
    assert arch.decomposition.signed_encoding == "offset"
    assert arch.decomposition.offset_reference == "column"
    assert arch.decomposition.reference_column
    layer = L.linear("fc", ("input",), (100,), 10)
    assert map_layer(arch, layer).references == 1
    for over in (
        {"decomposition.scheme": "differential"},
        {"decomposition.scheme": "bit_serial"},
        {"decomposition.signed_encoding": "differential_digital"},
    ):
        other = pimsim.load_arch(small_path, over)
        assert other.decomposition.offset_reference == "column"
        assert not other.decomposition.reference_column
        assert map_layer(other, layer).references == 0
    assert "decomposition" in pimsim.spec.ORACLE_FIELDS  # the knob changes the oracle's output


@pytest.mark.parametrize("name", pimsim.zoo_names())
def test_zoo_conversions_with_reference_columns_equal_cost_model(name):
    """(b) Every zoo network on the SRAM macro with the ``native`` preset (offset weights,
    reference columns): the oracle's counts equal the cost model's x batch (as
    ``tests/test_oracle.py`` checks for the shipped specs, whose offset designs use ``digital``)."""
    from pathlib import Path

    from pimsim.spec import preset_overrides

    root = Path(__file__).resolve().parents[1]
    arch = pimsim.load_arch(
        root / "arch_specs" / "sram_charge_domain_28nm.yaml",
        {**preset_overrides("native"), "adc.range": "full_scale"},
    )
    assert arch.decomposition.reference_column
    net = pimsim.load_workload(name)
    mapping = pimsim.map_network(arch, net)
    real = name in ("mlp_mnist", "lenet5_mnist")  # the others run on the meta device
    device = "cpu" if real else "meta"
    pim = convert(pimsim.zoo_model(name).to(device), arch, (1, *net.input_shape), mapping=mapping)
    batch = 2
    pim(zoo_input(name, batch, device))
    assert pimsim.oracle.counts(pim) == cost_model_conversions(arch, net, mapping, batch)
    assert all(m.references == 1 for m in mapping.layers.values())
