"""NeuroSim-style models: subarray bounding box against independent reference numbers read from
DNN+NeuroSim V1.4, the split of the box over classes, and energy/area properties."""

import math
from pathlib import Path

import pytest

import pimsim
from pimsim.cost import instances, level_reports, lookup
from pimsim.cost._neurosim_area import subarray_geometry
from pimsim.cost._neurosim_energy import row_drive_energy, sense_amp, shift_add_energy
from pimsim.errors import SpecError
from pimsim.spec._fields import ComponentSpec

ROOT = Path(__file__).resolve().parents[1]
RRAM = ROOT / "arch_specs" / "neurosim_rram_22nm.yaml"
SRAM = ROOT / "arch_specs" / "neurosim_sram_22nm.yaml"


def arch(path, **overrides):
    return pimsim.load_arch(path, overrides)


def uses_neurosim(spec) -> bool:
    comps = [c for level in ("pe", "tile", "chip") for c in getattr(spec, level).components]
    blocks = [spec.array, spec.adc, spec.dac, *comps]
    return any(b.model == "neurosim" for b in blocks)


NEUROSIM_SPECS = [
    p for p in sorted((ROOT / "arch_specs").glob("*.yaml")) if uses_neurosim(pimsim.load_arch(p))
]


def variants(path):
    for rpr in (8, 32, 64, 128):
        for bits in (1, 3, 4, 5, 8):
            for cpa in (1, 4, 8, 16):
                yield arch(
                    path,
                    **{"array.rows_per_adc_read": rpr, "adc.bits": bits, "adc.cols_per_adc": cpa},
                )


# Reference numbers from reading NeuroSim V1.4 (SubArray.cpp, LevelShifter.cpp,
# MultilevelSenseAmp.cpp at 22 nm, 128x128, 1 bit/cell, 8 columns per ADC), not fits.


def test_rram_subarray_matches_neurosim_reference():
    g = subarray_geometry(arch(RRAM, **{"adc.bits": 5, "array.rows_per_adc_read": 32}))
    assert g.area_um2 == pytest.approx(36447, rel=0.01)
    assert g.width == pytest.approx(288.1, rel=0.01)
    assert g.level_shifter_um2 == pytest.approx(10.01, rel=0.01)
    assert g.level_shifters == 384


def test_sram_subarray_matches_neurosim_reference():
    g = subarray_geometry(arch(SRAM, **{"adc.bits": 5, "array.rows_per_adc_read": 32}))
    assert g.area_um2 == pytest.approx(6813, rel=0.01)


def test_sense_amp_area_at_16_levels():
    g = subarray_geometry(arch(RRAM, **{"adc.bits": 4, "array.rows_per_adc_read": 32}))
    assert g.sense_amp_um2 == pytest.approx(369.9, rel=0.02)


@pytest.mark.parametrize("path", [RRAM, SRAM], ids=lambda p: p.stem)
def test_shares_sum_to_the_bounding_box(path):
    for spec in variants(path):
        g = subarray_geometry(spec)
        assert sum(g.shares().values()) == pytest.approx(g.area_um2, rel=1e-12)
        assert all(v >= 0 for v in g.shares().values())
        assert g.area_um2 >= g.used_um2 * (1 - 1e-12) > 0


@pytest.mark.parametrize("path", [RRAM, SRAM], ids=lambda p: p.stem)
def test_instances_of_one_array_add_up_to_its_bounding_box(path):
    spec = arch(path, **{"array.rows_per_adc_read": 32})
    per_array = 0.0
    for inst in instances(spec):
        if inst.level == "array":
            per_array += inst.count * inst.estimate.area_um2
        elif inst.level == "pe" and inst.component_class in ("shift_add", "level_shifter"):
            per_array += inst.count * inst.estimate.area_um2 / spec.pe.arrays
    shares = subarray_geometry(spec).shares()
    assert per_array + shares["accumulator"] == pytest.approx(subarray_geometry(spec).area_um2)


def test_level_shifters_only_above_1p5_volts():
    for volts, expected in ((2.0, 384), (1.6, 384), (1.5, 0), (1.2, 0), (None, 0)):
        g = subarray_geometry(arch(RRAM, **{"cell.write_voltage_v": volts}))
        assert g.level_shifters == expected
        assert (g.shares()["level_shifter"] > 0) == (expected > 0)
    assert subarray_geometry(arch(SRAM)).level_shifters == 0


def test_subarray_area_is_independent_of_the_workload():
    spec = arch(RRAM)
    reports = []
    for name in ("lenet5_mnist", "vgg8_cifar10"):
        mapping = pimsim.map_network(spec, pimsim.load_workload(name))
        reports.append(level_reports(spec, mapping.chip_tiles)[0])
    assert reports[0].area_mm2 == reports[1].area_mm2
    assert reports[0].area_mm2 * 1e6 < subarray_geometry(spec).area_um2


@pytest.mark.parametrize("path", [RRAM, SRAM], ids=lambda p: p.stem)
def test_conversion_energy_and_adc_area_increase_with_bits(path):
    energies, areas = [], []
    for bits in range(1, 9):
        spec = arch(path, **{"adc.bits": bits})
        est = lookup("adc", "neurosim")(spec, spec.adc)
        energies.append(est.energy_pj)
        areas.append(est.area_um2)
    assert all(a < b for a, b in zip(energies, energies[1:], strict=False))
    assert all(a < b for a, b in zip(areas, areas[1:], strict=False))


def test_partial_sums_cost_more_with_fewer_rows_per_read():
    # Per conversion the recombination is shared by more conversions; per array read (4 row
    # groups at 32 rows, 1 at 128) the partial-sum adders add work.
    e32 = shift_add_energy(arch(RRAM, **{"array.rows_per_adc_read": 32}))
    e128 = shift_add_energy(arch(RRAM, **{"array.rows_per_adc_read": 128}))
    assert 4 * e32 > e128 > 0


@pytest.mark.parametrize("path", NEUROSIM_SPECS, ids=lambda p: p.stem)
def test_every_neurosim_spec_is_finite_and_positive(path):
    spec = pimsim.load_arch(path)
    for node in (spec.technology.node_nm, 7, 14, 45, 130):
        variant = pimsim.with_overrides(spec, {"technology.node_nm": node})
        g = subarray_geometry(variant)
        assert math.isfinite(g.area_um2) and g.area_um2 > 0
        energy, t_col = sense_amp(variant)
        # 4-5-bit MLSAs sense in about 1 ns; the 8-bit MLSA of rram_onchip_22nm takes 9-83 ns
        # over these nodes (255 references): finite, positive, below 100 ns per column
        assert math.isfinite(energy) and energy > 0 and 0 < t_col < 1e-7
        assert row_drive_energy(variant) > 0 and shift_add_energy(variant) > 0
        for inst in instances(variant):
            est = inst.estimate
            assert math.isfinite(est.energy_pj) and est.energy_pj >= 0, inst.name
            assert math.isfinite(est.area_um2) and est.area_um2 >= 0, inst.name
            # level shifters are write-only; the PE bus is routed over the subarrays (Bus.cpp)
            pe_bus = inst.component_class == "interconnect" and inst.level == "pe"
            if inst.component_class not in ("level_shifter",) and not pe_bus:
                assert est.area_um2 > 0, inst.name


def test_energy_scales_down_with_the_node():
    small = sense_amp(arch(RRAM, **{"technology.node_nm": 14}))[0]
    large = sense_amp(arch(RRAM, **{"technology.node_nm": 45}))[0]
    assert small < large


def test_unknown_component_class_is_an_error():
    spec = arch(RRAM)
    comp = ComponentSpec(name="sh", component_class="sample_hold", model="neurosim")
    with pytest.raises(SpecError, match="no neurosim model"):
        lookup("component", "neurosim")(spec, comp)


# ----------------------------------------------------------------------------- NeuroSim V1.4 rules


def _vgg8_layers():
    """VGG-8 as NeuroSim's network table: (Cin, kh, kw, Cout), FC layers as 1x1 kernels."""
    out = []
    for layer in pimsim.load_workload("vgg8_cifar10").layers:
        if layer.kind == "conv":
            out.append((layer.in_channels, *layer.kernel, layer.out_channels))
        elif layer.kind == "linear":
            out.append((layer.in_channels, 1, 1, layer.out_channels))
    return out


def test_floorplan_reproduces_neurosim_vgg8_structure_at_128():
    # runs.csv (all three runs): tile_NM 9x512x512, PE_CM 512x512, tile_CM 1024x1024
    from pimsim.cost._neurosim_tech import floorplan

    plan = floorplan(_vgg8_layers(), rows=128, cols_per_weight=8)
    assert (plan.pes_per_tile_nm, plan.pe_size_nm) == (9, 512)
    assert (plan.tile_size_cm, plan.pe_size_cm, plan.pes_per_tile_cm) == (1024, 512, 4)
    for path in (RRAM, SRAM):  # the specs' hard-coded structure is the rule's output
        spec = arch(path)
        assert spec.pe.arrays == plan.arrays_per_pe(spec.array.rows)
        assert spec.tile.pes == plan.pes_per_tile_nm


def test_floorplan_at_256_rows_doubles_pe_size_keeps_4x4_subarrays():
    # ChipFloorPlan only searches PE sizes above 2 x rows: 512 is excluded at 256 rows, so the
    # PE is 1024 cells, again 4 x 4 subarrays; the conventional tile must exceed 4 x rows (2048).
    from pimsim.cost._neurosim_tech import floorplan

    plan = floorplan(_vgg8_layers(), rows=256, cols_per_weight=8)
    assert plan.pe_size_nm == 1024 and plan.arrays_per_pe(256) == 16
    assert (plan.tile_size_cm, plan.pe_size_cm) == (2048, 1024)
    assert plan.pe_size_nm > 2 * 256 and plan.tile_size_cm > 4 * 256


def test_sram_column_resistance_is_access_plus_wire_in_series():
    # ProcessingUnit.cpp GetColumnResistance (SRAM): each active row adds 1 / (R_access + R_wire)
    from pimsim.cost._neurosim_area import cell_dims, tech
    from pimsim.cost._neurosim_energy import INPUT_ACTIVITY, column_resistance

    spec = arch(SRAM)
    t = tech(spec)
    r_wire = t.wire_res_per_m * t.wire_nm * 1e-9 * cell_dims(spec)[1]
    expected = (t.r_on(1) + r_wire) / (INPUT_ACTIVITY * spec.array.rows)
    assert column_resistance(spec, t) == pytest.approx(expected)
    assert 1e3 < column_resistance(spec, t) < 1e4  # kOhm range, not a shorted column


def test_7nm_uses_finfet_device_and_cell_rules():
    from pimsim.cost._neurosim_area import cell_dims, tech

    t7 = tech(arch(SRAM, **{"technology.node_nm": 7, "technology.vdd_v": 0.7}))
    t22 = tech(arch(SRAM))
    assert t22.fin is None and t7.fin is not None
    # Technology.cpp 7 nm LSTP: Ion 562.048 uA/um over a 107 nm effective fin, R multiplier 2.05;
    # formula.cpp: a 2F device is one fin, 3F two fins
    assert t7.r_on(2) == pytest.approx(2.05 * 0.7 / (562.048 * 107e-9))
    assert t7.r_on(3) == pytest.approx(t7.r_on(2) / 2)
    assert t7.gate_cap(2) == pytest.approx(100.497e-18)
    assert t7.pn == 1.0 and t22.pn == pytest.approx(791.9 / 600.2)
    # Param.cpp: 7 nm SRAM cell 16F x 34.43F, read voltage 0.264 V, word lines on Metal1 (28.5 nm)
    assert cell_dims(arch(SRAM, **{"technology.node_nm": 7})) == (16.0, 34.43)
    assert cell_dims(arch(SRAM)) == (10.0, 28.0)
    assert t7.vread == pytest.approx(0.264) and t22.vread == pytest.approx(0.55)
    assert t7.row_res_per_m < t7.wire_res_per_m  # wider Metal1


def test_sense_amp_fits_are_per_node():
    # MultilevelSenseAmp.cpp: the 7 nm column-power fit is NeuroSim's own, far below a linear
    # node scaling of the 22 nm fit (about 20x lower at 40 kOhm)
    from pimsim.cost._neurosim_tech import mlsa_column_latency, mlsa_column_power

    p22, p7 = (mlsa_column_power(n, 40e3, 16) for n in (22, 7))
    assert p7 < p22 / 10
    assert p22 == pytest.approx((-1.63133e-07 * math.log(40e3) + 2.1687e-06) * 15)
    assert mlsa_column_power(22, math.inf, 16) == 1e-6
    assert mlsa_column_latency(7, 1e3, 1e-15) < mlsa_column_latency(22, 1e3, 1e-15)


# ----------------------------------------------------------------------------- FinFET layout
# formula.cpp CalculateGateArea / CalculateGateCapacitance / EnlargeSize below 22 nm, with
# constant.h's 7 nm rules: cell 34.285F, CPP 8.1428F, poly 3.14F; Technology.cpp: 2 fins per
# device at the standard height, fin 7 nm wide, capJunction 0.0137 F/m2.
CPP7, H7 = 8.1428, 34.285


def _t7():
    from pimsim.cost._neurosim_area import tech

    return tech(arch(SRAM, **{"technology.node_nm": 7, "technology.vdd_v": 0.7}))


def test_finfet_inv_and_nand_layout_at_7nm():
    from pimsim.cost._neurosim_area import gate_layout

    t = _t7()
    # minimum INV: one fin each, unfolded: two poly pitches wide, the 7 nm cell tall
    assert gate_layout(t, "INV", 1, 2, 2) == pytest.approx((2 * CPP7, H7))
    # NAND2 of N 4F (2 fins), P 2F (1 fin): 4 fins split 3 N / 1 P, unfolded, shared diffusion
    assert gate_layout(t, "NAND", 2, 4, 2) == pytest.approx((3 * CPP7, H7))
    # a lone 10-fin NMOS holds 4 fins per fold: floor(10 / 4) = 2 folds (formula.cpp's integer
    # division), 3 poly pitches
    assert gate_layout(t, "INV", 1, 20, 0)[0] == pytest.approx(3 * CPP7)
    # a non-default height (here 2.5 x 28F) scales by 34.285 / 28 and fits fins by pitch
    w, h = gate_layout(t, "INV", 1, 60, 80, 70.0)
    assert h == pytest.approx(70 * H7 / 28)
    assert w == pytest.approx(7 * CPP7)  # N: 30 fins over 5 per fold = 6 folds


def test_finfet_drain_cap_is_the_bottom_junction():
    from pimsim.cost._neurosim_area import drain_cap

    t = _t7()
    per_fin = (CPP7 - 3.14) * 7e-9 * 7e-9 * 0.0137
    assert drain_cap(t, "INV", 1, 2, 2) == pytest.approx(2 * per_fin)
    assert drain_cap(t, "INV", 1, 4, 0) == pytest.approx(2 * per_fin)  # 2 fins, one drain


def test_finfet_enlarge_fills_max_fins():
    from pimsim.cost._neurosim_area import enlarge

    t = _t7()
    assert enlarge(t, 2, 2) == (4.0, 4.0)  # 1 + 1 fin grow to 2 + 2 (ratio 0.5)
    assert enlarge(t, 2, 0) == (4.0, 0.0)


def test_bulk_gates_unchanged_at_22nm():
    from pimsim.cost._neurosim_area import drain_cap, gate_layout, tech

    t = tech(arch(SRAM))
    assert t.cell_h == 28.0 and t.cpp == 3.8
    assert gate_layout(t, "INV", 1, 2, 2 * t.pn) == pytest.approx((7.6, 28.0))
    assert drain_cap(t, "INV", 1, 2, 0) > 0


@pytest.mark.parametrize("path", [RRAM, SRAM])
def test_7nm_periphery_no_longer_shrinks_as_f_squared(path):
    g22 = subarray_geometry(arch(path))
    g7 = subarray_geometry(arch(path, **{"technology.node_nm": 7, "technology.vdd_v": 0.7}))
    f2 = (7 / 22) ** 2
    for band in ("sense_amp", "encoder", "shift_add_input"):
        # band heights are (area / array width): in F they grow with the FinFET cell and CPP
        assert g7.band(band) / 7 > 1.2 * g22.band(band) / 22
    assert g7.area_um2 > 1.5 * f2 * g22.area_um2


def test_finfet_supply_from_the_node_unless_the_spec_sets_one():
    from pimsim.cost._neurosim_area import tech

    spec = arch(SRAM, **{"technology.node_nm": 7})
    assert tech(spec).vdd == pytest.approx(0.85)  # the spec's explicit vdd_v is kept
    unset = spec.model_copy(
        update={"technology": spec.technology.model_construct(node_nm=7, clock_hz=1e9)}
    )
    assert tech(unset).vdd == pytest.approx(0.7)  # Technology.cpp 7 nm LSTP


# ----------------------------------------------------------------------------- every row group


def test_empty_row_group_conversion_draws_no_cell_current():
    """A row group without weights converts at the sense amplifier's no-current energy
    (GetColumnPower's flat 1 uW): its switching, mux and scan-chain work remain."""
    from pimsim.cost._neurosim_energy import mux_energy, scan_chain_energy

    for path in (RRAM, SRAM):
        spec = arch(path, **{"array.rows_per_adc_read": 32})
        full = lookup("adc", "neurosim")(spec, spec.adc)
        empty = lookup("adc_empty", "neurosim")(spec, spec.adc)
        assert 0 < empty.energy_pj < full.energy_pj
        expect = sense_amp(spec, math.inf)[0] + scan_chain_energy(spec) + mux_energy(spec)
        assert empty.energy_pj == pytest.approx(expect)
        assert empty.rate_hz == full.rate_hz


def test_reading_every_row_group_costs_conv1_its_empty_groups():
    """VGG-8's conv1 (27 rows) on the NeuroSim spec at 32 rows per read: every array read takes
    all 4 row groups (SubArray.cpp numAdd), as many cycles as conv2's full arrays; the 3 empty
    groups' conversions cost the no-current energy, their shift-adds a full one."""
    from pimsim.cost import evaluate
    from pimsim.workload import Workload
    from pimsim.workload import _layer as L

    layer = L.conv("conv1", ("input",), (3, 32, 32), 128, 3, padding=1)
    work = Workload("conv1", layer.input_shape, (layer,))
    rows = {}
    for every in (False, True):
        spec = arch(RRAM, **{"array.rows_per_adc_read": 32, "array.read_all_row_groups": every})
        rows[every] = evaluate(spec, work, latency_model="analytical").layers.iloc[0]
    e_full = lookup("adc", "neurosim")(spec, spec.adc).energy_pj
    e_empty = lookup("adc_empty", "neurosim")(spec, spec.adc).energy_pj
    conv = rows[False]["adc_conversions"]
    assert rows[True]["adc_conversions"] == conv  # the data-carrying conversions
    assert rows[True]["energy_adc_pj"] == pytest.approx(conv * e_full + 3 * conv * e_empty)
    shift_add = rows[False]["energy_shift_add_pj"]
    assert rows[True]["energy_shift_add_pj"] == pytest.approx(4 * shift_add)
    assert rows[True]["latency_ns"] == pytest.approx(4 * rows[False]["latency_ns"])


def test_models_without_an_empty_conversion_charge_it_in_full(unit_path):
    from pimsim.cost._actions import empty_conversion_weight

    assert empty_conversion_weight(pimsim.load_arch(unit_path)) == 1.0


# ----------------------------------------------------------------------------- level shifters

# LevelShifter.cpp CalculateArea (validated): three INV stages (N, P) = (15, 20), (32, 10),
# (64, 82) x the minimum device x 2, asked for at 2.5 x MAX_TRANSISTOR_HEIGHT; width = low +
# 2.5 x (2 latch + high) (IO devices), times alpha 1.44. formula.cpp at 7 nm: any height but
# 28F is a special layout, scaled by 34.285 / 28 (85.71F) with floor(((85.71 - 11.85 - 12.28) x
# 7 nm + 30 nm) / 2 / 37 nm) = 6 fins per device, 12 split N/P by the width ratio; pnSizeRatio 1.
LS_7NM_WIDTHS_F = {
    "low": 7 * CPP7,  # N 30 fins over 5 per fold: 6 folds (P 40 over 7: 5)
    "latch": 11 * CPP7,  # P 20 fins over 2: 10 folds (N 64 over 10: 6)
    "high": 26 * CPP7,  # N 128 fins over 5: 25 folds (P 164 over 7: 23)
}


def test_7nm_level_shifter_follows_levelshifter_cpp_and_formula_cpp():
    from pimsim.cost._neurosim_area import level_shifter_area

    t = _t7()
    w = LS_7NM_WIDTHS_F
    expect = 70 * H7 / 28 * (w["low"] + 2.5 * (2 * w["latch"] + w["high"])) * 1.44
    assert level_shifter_area(t) == pytest.approx(expect)
    assert level_shifter_area(t) * 0.007**2 == pytest.approx(6.25, rel=0.01)  # um2


@pytest.mark.parametrize("node", [22, 7])
def test_level_shifters_are_laid_beside_the_array_and_charged_as_its_bounding_box(node):
    """SubArray.cpp CalculateArea (conventionalParallel, writeVoltage 2 V > 1.5 V at every node,
    Param.cpp): WL and BL shifters (numRow each) as columns of the array's height beside it,
    SL shifters (numCol) as a band of its width; the subarray is height x width."""
    over = {"technology.node_nm": node} | ({"technology.vdd_v": 0.7} if node == 7 else {})
    g = subarray_geometry(arch(RRAM, **over))
    assert g.level_shifters == 3 * 128
    assert g.level_shifter_cols_w == pytest.approx(2 * 128 * g.level_shifter_um2 / g.array_h)
    assert g.band("sl_level_shifter") == pytest.approx(128 * g.level_shifter_um2 / g.array_w)
    assert g.area_um2 == pytest.approx(g.width * g.height)
    assert g.width > g.level_shifter_cols_w + g.array_w
