"""The spec API: loading arch files, presets, overrides, inheritance and error positions."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pimsim.errors import PimsimError, SpecError, SpecErrors
from pimsim.spec import ArchSpec, load_arch, preset_defaults, with_overrides
from pimsim.spec._load import load_any

ROOT = Path(__file__).resolve().parents[1]
ARCH_FILES = sorted((ROOT / "arch_specs").glob("*.yaml"))

#: A small valid spec; ``{decomposition}`` is filled in by the tests. Line numbers matter below.
TINY = """\
kind: arch
name: tiny
technology:
  node_nm: 32
  clock_hz: 1.0e9
cell:
  device: rram
array:
  rows: 128
  cols: 128
adc:
  bits: 8
pe:
  arrays: 8
tile:
  pes: 12
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def tiny(folder: Path, extra: str = "", name: str = "tiny.yaml") -> Path:
    """TINY plus ``extra`` YAML appended (top-level sections)."""
    return write(folder, name, TINY + textwrap.dedent(extra))


def errors_of(exc: SpecError) -> list[SpecError]:
    return exc.errors if isinstance(exc, SpecErrors) else [exc]


def error_at(exc: SpecError, field: str) -> SpecError:
    """The error of ``exc`` that names ``field``."""
    found = [e for e in errors_of(exc) if e.field == field]
    assert found, f"no error names {field!r}: {exc}"
    return found[0]


@pytest.fixture(scope="module")
def isaac() -> ArchSpec:
    return load_arch(ROOT / "arch_specs" / "isaac.yaml")


# ------------------------------------------------------------------------ shipped specs


def test_arch_folder_is_not_empty():
    assert len(ARCH_FILES) >= 5


@pytest.mark.parametrize("path", ARCH_FILES, ids=lambda p: p.name)
def test_shipped_arch_loads(path: Path):
    spec = load_arch(path)
    assert isinstance(spec, ArchSpec)
    assert spec.name == path.stem
    # Presets are always resolved on a loaded spec.
    assert spec.dac.bits is not None and spec.dac.bits >= 1
    assert spec.cell.bits is not None and spec.cell.bits >= 1
    assert spec.decomposition.signed_encoding is not None
    assert spec.weight_slices >= 1 and spec.input_cycles >= 1
    if spec.array.rows_per_adc_read is not None:
        assert spec.array.rows_per_adc_read <= spec.array.rows
    assert spec.adc.cols_per_adc <= spec.array.cols
    kind, again = load_any(path)
    assert kind == "arch"
    assert again.model_dump() == spec.model_dump()


def test_isaac_decomposition(isaac: ArchSpec):
    # ISAAC: 16-bit weights on 2-bit cells -> 8 slices; 16-bit inputs on 1-bit DACs -> 16 cycles.
    assert isaac.weight_slices == 8
    assert isaac.input_cycles == 16
    assert isaac.decomposition.signed_encoding == "offset"
    assert isaac.adc.bits == 8
    assert (isaac.array.rows, isaac.array.cols) == (128, 128)
    assert isaac.chip.tiles == 168
    router = next(c for c in isaac.tile.components if c.name == "router")
    assert router.shared_by == 4
    assert router.component_class == "interconnect"


# ------------------------------------------------------------------------------ presets

#: DESIGN.md Conventions, 'presets', for input_bits = 8 and weight_bits = 6:
#: (dac.bits, cell.bits, signed_encoding, weight_slices, input_cycles).
PRESETS = {
    "native": (8, 6, "offset", 1, 1),
    "differential": (8, 5, "differential_analog", 1, 1),
    "bit_serial": (1, 1, "twos_complement", 6, 8),
}


@pytest.mark.parametrize("scheme", sorted(PRESETS))
def test_preset_resolution(tmp_path: Path, scheme: str):
    path = tiny(
        tmp_path,
        f"""\
        decomposition:
          scheme: {scheme}
          input_bits: 8
          weight_bits: 6
        """,
    )
    spec = load_arch(path)
    dac_bits, cell_bits, encoding, slices, cycles = PRESETS[scheme]
    assert spec.dac.bits == dac_bits
    assert spec.cell.bits == cell_bits
    assert spec.decomposition.signed_encoding == encoding
    assert spec.weight_slices == slices
    assert spec.input_cycles == cycles
    assert preset_defaults(scheme, 8, 6) == {
        ("dac", "bits"): dac_bits,
        ("cell", "bits"): cell_bits,
        ("decomposition", "signed_encoding"): encoding,
    }


def test_default_scheme_is_native(tmp_path: Path):
    spec = load_arch(tiny(tmp_path))
    assert spec.decomposition.scheme == "native"
    assert (spec.decomposition.input_bits, spec.decomposition.weight_bits) == (8, 8)
    assert (spec.dac.bits, spec.cell.bits) == (8, 8)
    assert spec.decomposition.signed_encoding == "offset"


@pytest.mark.parametrize("scheme", sorted(PRESETS))
def test_explicit_knobs_override_presets(tmp_path: Path, scheme: str):
    text = TINY.replace("cell:\n  device: rram\n", "cell:\n  device: rram\n  bits: 2\n")
    text += textwrap.dedent(
        f"""\
        dac:
          bits: 2
        decomposition:
          scheme: {scheme}
          input_bits: 8
          weight_bits: 6
          signed_encoding: differential_digital
        """
    )
    spec = load_arch(write(tmp_path, "explicit.yaml", text))
    assert spec.dac.bits == 2
    assert spec.cell.bits == 2
    assert spec.decomposition.signed_encoding == "differential_digital"
    assert spec.input_cycles == 4  # ceil(8 / 2)
    assert spec.weight_slices == 3  # magnitude 5 bits on 2-bit cells


def test_partly_explicit_knobs(tmp_path: Path):
    """Explicit knobs win one by one; the others still come from the preset."""
    spec = load_arch(
        tiny(
            tmp_path,
            """\
            dac:
              bits: 4
            decomposition:
              scheme: bit_serial
            """,
        )
    )
    assert spec.dac.bits == 4
    assert spec.cell.bits == 1
    assert spec.decomposition.signed_encoding == "twos_complement"
    assert spec.input_cycles == 2


# ---------------------------------------------------------------------------- overrides


def test_override_forms_agree():
    path = ROOT / "arch_specs" / "isaac.yaml"
    as_dict = load_arch(path, {"adc.bits": 5})
    as_list = load_arch(path, ["adc.bits=5"])
    assert as_dict.adc.bits == as_list.adc.bits == 5
    assert as_dict.model_dump() == as_list.model_dump()
    assert load_arch(path).adc.bits == 8  # the file itself is untouched


def test_override_forms_give_equal_specs():
    path = ROOT / "arch_specs" / "isaac.yaml"
    assert load_arch(path, {"adc.bits": 5}) == load_arch(path, ["adc.bits=5"])


def test_override_of_nested_list_item(isaac: ArchSpec):
    spec = with_overrides(isaac, ["pe.components[1].count=2"])
    assert spec.pe.components[1].name == "shift_add"
    assert spec.pe.components[1].count == 2
    assert isaac.pe.components[1].count == 4


def test_invalid_override_is_reported_as_the_override(isaac: ArchSpec):
    with pytest.raises(SpecError) as info:
        with_overrides(isaac, ["adc.bits=0"])
    err = error_at(info.value, "adc.bits")
    assert err.location is not None and err.location.source == "--set adc.bits=0"
    with pytest.raises(SpecError) as info:
        load_arch(ROOT / "arch_specs" / "isaac.yaml", {"adc.bits": 0})
    err = error_at(info.value, "adc.bits")
    assert "adc.bits" in str(err.location)


@pytest.fixture
def native_with_explicit_dac(tmp_path: Path) -> ArchSpec:
    """native, 8/6 bits, an explicit dac.bits = 4; cell.bits and the encoding from the preset."""
    return load_arch(
        tiny(
            tmp_path,
            """\
            dac:
              bits: 4
            decomposition:
              scheme: native
              input_bits: 8
              weight_bits: 6
            """,
        )
    )


def test_with_overrides_re_resolves_presets(native_with_explicit_dac: ArchSpec):
    spec = native_with_explicit_dac
    assert (spec.dac.bits, spec.cell.bits, spec.decomposition.signed_encoding) == (4, 6, "offset")

    serial = with_overrides(spec, {"decomposition.scheme": "bit_serial"})
    assert serial.decomposition.scheme == "bit_serial"
    assert serial.dac.bits == 4  # explicit: kept
    assert serial.cell.bits == 1  # preset-derived: re-resolved
    assert serial.decomposition.signed_encoding == "twos_complement"

    diff = with_overrides(spec, ["decomposition.scheme=differential"])
    assert (diff.dac.bits, diff.cell.bits) == (4, 5)
    assert diff.decomposition.signed_encoding == "differential_analog"

    back = with_overrides(serial, {"decomposition.scheme": "native"})
    assert back.model_dump() == spec.model_dump()

    narrower = with_overrides(spec, {"decomposition.weight_bits": 4})
    assert narrower.cell.bits == 4

    # The original is never changed.
    assert (spec.dac.bits, spec.cell.bits, spec.decomposition.scheme) == (4, 6, "native")


# ---------------------------------------------------------------------------- immutability


def test_specs_are_immutable(isaac: ArchSpec):
    with pytest.raises(ValueError):
        isaac.adc.bits = 5
    with pytest.raises(ValueError):
        isaac.name = "other"
    with pytest.raises(ValueError):
        isaac.adc = isaac.adc.replace(bits=5)
    assert isaac.adc.bits == 8
    assert isaac.name == "isaac"
    variant = isaac.adc.replace(bits=5)
    assert variant.bits == 5 and isaac.adc.bits == 8


def test_component_lists_are_immutable():
    isaac = load_arch(ROOT / "arch_specs" / "isaac.yaml")  # not the shared fixture: may change
    before = len(isaac.pe.components)
    try:
        isaac.pe.components.append(isaac.pe.components[0])
    except (TypeError, AttributeError, ValueError):
        pass
    assert len(isaac.pe.components) == before


# ---------------------------------------------------------------------------- inheritance

PARENT = """\
kind: arch
name: parent
technology:
  node_nm: 32
  clock_hz: 1.0e9
cell:
  device: rram
  bits: 2
array:
  rows: 128
  cols: 128
  rows_per_adc_read: 64
adc:
  model: survey
  bits: 8
  cols_per_adc: 8
pe:
  arrays: 8
  components:
    - {name: shift_add, class: shift_add, count: 4}
    - {name: input_register, class: buffer, size_bytes: 2048}
tile:
  pes: 12
"""


def test_base_merges_mappings_and_replaces_lists(tmp_path: Path):
    write(tmp_path, "parent.yaml", PARENT)
    child = write(
        tmp_path,
        "variants/child.yaml",
        """\
        kind: arch
        base: ../parent.yaml
        name: child
        technology:
          clock_hz: 2.0e9
        adc:
          bits: 5
        pe:
          components:
            - {name: only, class: shift_add}
        """,
    )
    spec = load_arch(child)
    assert spec.name == "child"
    assert spec.technology.clock_hz == 2.0e9
    assert spec.technology.node_nm == 32  # merged, not replaced
    assert spec.adc.bits == 5
    assert spec.adc.model == "survey" and spec.adc.cols_per_adc == 8
    assert spec.array.rows_per_adc_read == 64
    assert spec.pe.arrays == 8
    assert [c.name for c in spec.pe.components] == ["only"]  # lists replace
    parent = load_arch(tmp_path / "parent.yaml")
    assert parent.adc.bits == 8 and len(parent.pe.components) == 2


def test_base_chain(tmp_path: Path):
    write(tmp_path, "parent.yaml", PARENT)
    write(tmp_path, "child.yaml", "kind: arch\nbase: parent.yaml\nname: child\nadc: {bits: 6}\n")
    grandchild = write(
        tmp_path, "grandchild.yaml", "kind: arch\nbase: child.yaml\nname: grandchild\n"
    )
    spec = load_arch(grandchild)
    assert (spec.name, spec.adc.bits, spec.cell.bits) == ("grandchild", 6, 2)


@pytest.mark.parametrize(
    ("section", "field", "message"),
    [
        ("array:\n  rows_per_adc_read: 256", "array.rows_per_adc_read", "exceeds array.rows"),
        ("adc:\n  bits: eight", "adc.bits", "expected an integer"),
    ],
    ids=["cross-field", "type"],
)
def test_error_in_child_names_child_file_and_line(
    tmp_path: Path, section: str, field: str, message: str
):
    write(tmp_path, "parent.yaml", PARENT)
    child = write(
        tmp_path, "child.yaml", f"kind: arch\nbase: parent.yaml\nname: child\n{section}\n"
    )
    with pytest.raises(SpecError) as info:
        load_arch(child)
    err = error_at(info.value, field)
    assert err.location.source == str(child)
    assert err.location.line == 5
    assert message in err.message
    assert str(info.value).startswith(f"{child}:5:")


def test_error_in_parent_names_parent_file(tmp_path: Path):
    parent = write(tmp_path, "parent.yaml", PARENT.replace("cols_per_adc: 8", "cols_per_adc: 0"))
    child = write(tmp_path, "child.yaml", "kind: arch\nbase: parent.yaml\nname: child\n")
    with pytest.raises(SpecError) as info:
        load_arch(child)
    err = error_at(info.value, "adc.cols_per_adc")
    assert Path(err.location.source).resolve() == parent.resolve()
    assert err.location.line == 16


def test_base_of_another_kind(tmp_path: Path):
    workload = ROOT / "workloads" / "lenet5_mnist.yaml"  # an absolute base path
    child = write(tmp_path, "child.yaml", f"kind: arch\nbase: {workload}\nname: c\n")
    with pytest.raises(SpecError) as info:
        load_arch(child)
    assert info.value.field == "kind"
    assert "workload" in str(info.value)


# -------------------------------------------------------------------------------- errors


def test_unknown_key_suggests_the_real_one(tmp_path: Path):
    path = write(tmp_path, "typo.yaml", TINY.replace("adc:\n  bits: 8", "adc: {bitz: 5}"))
    with pytest.raises(SpecErrors) as info:
        load_arch(path)
    err = error_at(info.value, "adc.bitz")
    assert "did you mean 'bits'" in err.message
    assert err.location.line == 11
    assert isinstance(info.value, SpecError) and isinstance(info.value, PimsimError)


def test_unknown_key_without_close_match_lists_allowed(tmp_path: Path):
    path = write(tmp_path, "x.yaml", TINY.replace("  cols: 128\n", "  cols: 128\n  zzz: 1\n"))
    with pytest.raises(SpecError) as info:
        load_arch(path)
    err = error_at(info.value, "array.zzz")
    assert "allowed:" in err.message and "rows_per_adc_read" in err.message


def test_error_string_has_position_and_field(tmp_path: Path):
    path = write(tmp_path, "zero.yaml", TINY.replace("rows: 128", "rows: 0"))
    with pytest.raises(SpecError) as info:
        load_arch(path)
    assert str(info.value).startswith(f"{path}:9:9: array.rows: ")


def test_load_arch_refuses_workload_files():
    with pytest.raises(SpecError) as info:
        load_arch(ROOT / "workloads" / "lenet5_mnist.yaml")
    assert info.value.field == "kind"


def test_load_any_dispatches_on_kind():
    kind, workload = load_any(ROOT / "workloads" / "lenet5_mnist.yaml")
    assert kind == "workload" and workload.name == "lenet5_mnist"


ADC_FIXED = """\
adc:
  model: fixed
  bits: 8
  energy_pj: 1.67
  area_um2: 1200
  reference: {source: "ISAAC ISCA'16 Table I", bits: 8}
"""


@pytest.fixture
def fixed_adc_file(tmp_path: Path) -> Path:
    text = TINY.replace("adc:\n  bits: 8\n", ADC_FIXED)
    return write(tmp_path, "fixed_adc.yaml", text)


def test_fixed_adc_at_its_reference_bits_loads(fixed_adc_file: Path):
    spec = load_arch(fixed_adc_file)
    assert spec.adc.model == "fixed" and spec.adc.bits == 8 and spec.adc.energy_pj == 1.67


def test_fixed_adc_cannot_change_bits(fixed_adc_file: Path):
    with pytest.raises(SpecError) as info:
        load_arch(fixed_adc_file, {"adc.bits": 5})
    err = error_at(info.value, "adc.bits")
    assert "adc.bits=5" in err.location.source
    spec = load_arch(fixed_adc_file)
    with pytest.raises(SpecError) as info:
        with_overrides(spec, ["adc.bits=5"])
    assert error_at(info.value, "adc.bits").location.source == "--set adc.bits=5"


def test_scaling_adc_model_may_change_bits(fixed_adc_file: Path):
    spec = load_arch(fixed_adc_file, {"adc.model": "isaac_scaling", "adc.bits": 5})
    assert spec.adc.bits == 5 and spec.adc.reference.bits == 8
    text = fixed_adc_file.read_text().replace("model: fixed", "model: isaac_scaling")
    scaled = load_arch(write(fixed_adc_file.parent, "scaled.yaml", text), ["adc.bits=5"])
    assert scaled.adc.bits == 5


def test_twos_complement_needs_one_bit_cells(tmp_path: Path):
    path = tiny(tmp_path, "decomposition:\n  scheme: bit_serial\n")
    assert load_arch(path).cell.bits == 1
    with pytest.raises(SpecError) as info:
        load_arch(path, {"cell.bits": 2})
    error_at(info.value, "decomposition.signed_encoding")


def test_tab_inside_block_scalar_is_content(tmp_path: Path):
    text = TINY.replace("name: tiny\n", "name: tiny\ndescription: |\n  Table:\n  \tnode\tclock\n")
    spec = load_arch(write(tmp_path, "tabs.yaml", text))
    assert spec.description == "Table:\n\tnode\tclock\n"
