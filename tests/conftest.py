"""Arch files shared by the test modules: ``unit_path`` (every action costs 1: exact counts) and
``small_path`` (a small RRAM design for the oracle)."""

from pathlib import Path

import pytest

#: Zoo networks the every-network sweeps of the cost, dataflow and oracle tests leave out on all
#: but one spec: EfficientNet-B0 and MobileNetV3-small have 156-239 layers, their operations
#: (depthwise convs, squeeze-excite gating, hardswish) are MobileNetV2's plus kinds the smaller
#: traced networks exercise, and tests/test_zoo_modern.py and tests/test_any_network.py check
#: their MACs, parameters and cost; the sweeps over every spec keep the default run short.
LARGE_TRACED = ("efficientnet_b0_imagenet", "mobilenetv3_small_imagenet")


def swept_zoo() -> list[str]:
    """The zoo names the every-network x every-spec tests run."""
    import pimsim

    return [n for n in pimsim.zoo_names() if n not in LARGE_TRACED]

UNIT_ARCH = """\
kind: arch
name: unit
technology: {node_nm: 32, clock_hz: 1.0e9}
cell: {device: rram}
array: {model: unit, rows: 128, cols: 64, rows_per_adc_read: 32, read_time_ns: 10}
adc: {model: unit, bits: 8, cols_per_adc: 8, sample_rate_hz: 1.0e9, range: full_scale}
dac: {model: unit}
decomposition: {scheme: bit_serial, input_bits: 8, weight_bits: 8}
pe:
  arrays: 4
  components:
    - {name: sh, class: sample_hold, model: unit}
    - {name: sa, class: shift_add, model: unit}
    - {name: acc, class: accumulator, model: unit}
    - {name: buf, class: buffer, model: unit, width_bits: 1}
tile:
  pes: 2
  components:
    - {name: noc, class: interconnect, model: unit, width_bits: 1}
    - {name: act, class: activation, model: unit}
    - {name: pool, class: pooling, model: unit}
    - {name: dig, class: digital, model: unit}
chip: {tiles: auto}
"""

SMALL_ARCH = """\
kind: arch
name: small
technology: {node_nm: 32, clock_hz: 1.0e9}
cell: {device: rram}
array: {rows: 32, cols: 64, rows_per_adc_read: 16}
adc: {model: survey, bits: 16, cols_per_adc: 1, range: full_scale}
decomposition: {scheme: native, input_bits: 4, weight_bits: 4}
pe: {arrays: 4}
tile: {pes: 4}
chip: {tiles: auto}
"""


@pytest.fixture(scope="session")
def unit_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("arch") / "unit.yaml"
    path.write_text(UNIT_ARCH)
    return path


@pytest.fixture(scope="session")
def small_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("arch") / "small.yaml"
    path.write_text(SMALL_ARCH)
    return path
