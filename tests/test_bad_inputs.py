"""Bad values at the command line and hostile files: each refused with one ``error:`` line and
exit status 2, before any work, never a traceback and never a hang (numeric options out of
range, usage mistakes, devices and FIFOs given as files, recursive YAML aliases, sweeps too
large to enumerate)."""

from __future__ import annotations

import os
import re
import sys

import pytest
from click.testing import CliRunner

from pimsim.cli import main
from pimsim.errors import PimsimError
from tests._cli import ROOT, refusal

ARCH = str(ROOT / "arch_specs" / "isaac.yaml")
CKPT = str(ROOT / "results" / "checkpoints" / "lenet5_mnist_qat.pt")


#: A refusal line: ``error: ...``, or a spec error's ``FILE[:LINE:COL]: ...``.
REFUSAL = r"error: |.+?:\d+:\d+: |\S+: "


def refuse(*args: str, contains: str = "") -> str:
    """Run ``pimsim ARGS`` in process; assert one refusal line holding ``contains``, exit
    status 2 (how long refusals take: ``bench/refusal_speed.py``)."""
    line = refusal(args, REFUSAL)
    assert contains in line, line
    return line


NUMERIC = [
    (["accuracy", ARCH, "lenet5_mnist", "--checkpoint", CKPT, "--chips", "0"], "--chips"),
    (["accuracy", ARCH, "lenet5_mnist", "--checkpoint", CKPT, "--chips", "-1"], "--chips"),
    (["accuracy", ARCH, "lenet5_mnist", "--checkpoint", CKPT, "--self-tune", "-5"],
     "--self-tune"),
    (["accuracy", ARCH, "lenet5_mnist", "--checkpoint", CKPT, "--self-tune", "100000"],
     "--self-tune"),
    (["accuracy", ARCH, "lenet5_mnist", "--checkpoint", CKPT, "--limit", "0"], "--limit"),
    (["accuracy", ARCH, "lenet5_mnist", "--checkpoint", CKPT, "--seed", "-3"], "--seed"),
    (["accuracy", ARCH, "lenet5_mnist", "--checkpoint", CKPT, "--calibration", "0"],
     "--calibration"),
    (["train", ARCH, "lenet5_mnist", "--method", "qat", "--batch-size", "0"], "--batch-size"),
    (["train", ARCH, "lenet5_mnist", "--method", "qat", "--train-samples", "0"],
     "--train-samples"),
    (["train", ARCH, "lenet5_mnist", "--method", "qat", "--lr", "nan"], "--lr"),
    (["train", ARCH, "lenet5_mnist", "--method", "qat", "--lr", "-1"], "--lr"),
    (["train", ARCH, "lenet5_mnist", "--method", "qat", "--lr", "inf"], "--lr"),
    (["train", ARCH, "lenet5_mnist", "--method", "qat", "--lr", "fast"], "--lr"),
    (["train", ARCH, "lenet5_mnist", "--method", "qat", "--epochs", "0"], "--epochs"),
    (["train", ARCH, "lenet5_mnist", "--method", "qat", "--weight-bits", "1"], "--weight-bits"),
    (["train", ARCH, "lenet5_mnist", "--method", "qat", "--input-bits", "0"], "--input-bits"),
    (["train", ARCH, "lenet5_mnist", "--method", "pimqat", "--adjusted-precision", "100"],
     "--adjusted-precision"),
    (["train", ARCH, "lenet5_mnist", "--rule", "backprop", "--chip", "-1"], "--chip"),
    (["evaluate", ARCH, "lenet5_mnist", "--samples", "1000000000"], "--samples"),
    (["evaluate", ARCH, "lenet5_mnist", "--samples", "0"], "--samples"),
    (["sweep", str(ROOT / "arch_specs" / "sweeps" / "quickstart.yaml"), "--workers", "-2"],
     "--workers"),
]


@pytest.mark.parametrize("args, option", NUMERIC, ids=[" ".join(a[-2:]) for a, _ in NUMERIC])
def test_numeric_options_out_of_range_are_one_line(args, option):
    line = refuse(*args, contains=option)
    assert "--help" in line  # says where to look


@pytest.mark.parametrize("args, contains", [
    (["evaluate", ARCH], "give WORKLOAD"),
    (["results"], "Missing argument"),
    (["evaluate", ARCH, "lenet5_mnist", "--no-such-option"], "No such option"),
    (["nosuchcommand"], "No such command"),
    (["evaluate", ARCH, "lenet5_mnist", "--latency-model", "magic"], "--latency-model"),
])
def test_usage_mistakes_are_one_line(args, contains):
    refuse(*args, contains=contains)


def test_a_bare_command_prints_its_help():
    result = CliRunner().invoke(main, [])
    assert result.exit_code == 0 and "Usage:" in result.output


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero on this system")
def test_a_device_is_not_read_as_a_spec_or_workload():
    refuse("validate", "/dev/zero", contains="not a regular file")
    refuse("evaluate", "/dev/zero", "lenet5_mnist", contains="not a regular file")
    refuse("evaluate", ARCH, "/dev/zero", contains="not a regular file")


@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs are POSIX")
def test_a_fifo_does_not_block(tmp_path):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    refuse("validate", str(fifo), contains="not a regular file")


@pytest.mark.parametrize("text", [
    "kind: arch\nname: x\nadc: &a {bits: *a}\n",
    "kind: arch\nname: x\nlist: &l [1, [2, *l]]\n",
])
def test_recursive_aliases_name_the_line(tmp_path, text):
    path = tmp_path / "loop.yaml"
    path.write_text(text)
    line = refuse("validate", str(path), contains="recursive alias")
    assert f"{path}:3:" in line


def test_recursive_alias_in_a_set_value():
    refuse("validate", ARCH, "--set", "adc.bits=&x [*x]", contains="recursive alias")


SWEEP = """\
kind: sweep
name: big
arch: {arch}
workload: lenet5_mnist
parameters:
  {parameters}
objectives: [energy_pj:min]
"""


@pytest.mark.parametrize("parameters, contains", [
    ("adc.bits: {range: [1, 1000000000000]}", "1,000,000,000,001 values"),
    ("technology.clock_hz: {range: [1.0e8, 1.0e9], count: 1000000000000}",
     "1,000,000,000,000 values"),
    ("technology.clock_hz: {range: [1.0e8, 1.0e9], step: 1.0e-3}", "900,000,000,001 values"),
])
def test_a_parameter_with_too_many_values_is_refused_before_any_is_made(tmp_path, parameters,
                                                                         contains):
    path = tmp_path / "big.yaml"
    path.write_text(SWEEP.format(arch=ARCH, parameters=parameters))
    line = refuse("validate", str(path), contains=contains)
    assert f"{path}:6:" in line


def test_a_grid_over_the_limit_is_refused_before_the_store_exists(tmp_path):
    """90,000 x 90,000 values: counted, not enumerated (the values were once deduplicated in
    quadratic time, which hung), and refused with the way out."""
    path = tmp_path / "big.yaml"
    path.write_text(SWEEP.format(
        arch=ARCH,
        parameters="adc.bits: {range: [1, 90000]}\n  array.rows_per_adc_read: {range: [1, 90000]}",
    ))
    store = tmp_path / "big.sqlite"
    line = refuse("sweep", str(path), "--store", str(store), contains="8,100,000,000 designs")
    assert "--max-points" in line
    assert re.search(r"at [\d,]+ designs/min \(measured on 5 of its designs here, \d+ of them "
                     r"feasible.*\) it would take about [\d,.]+ (days|hours|minutes)", line), line
    assert not store.exists()


def test_python_api_gets_a_typed_error(tmp_path):
    from pimsim.explore._points import KeyMaker, SweepSizeError, grid_points
    from pimsim.spec import load_sweep

    path = tmp_path / "big.yaml"
    path.write_text(SWEEP.format(arch=ARCH, parameters="adc.bits: {range: [1, 2000]}"))
    spec = load_sweep(path)
    with pytest.raises(SweepSizeError) as err:
        grid_points(spec, KeyMaker.of(spec), max_points=1000)
    assert isinstance(err.value, PimsimError) and "2,000 designs" in str(err.value)
    assert len(grid_points(spec, KeyMaker.of(spec), max_points=2000)) == 2000


@pytest.mark.parametrize("setting, field", [
    ("technology.vdd_v=1e-6", "technology.vdd_v"),  # was a ZeroDivisionError in NeuroSim's models
    ("technology.node_nm=1e4", "technology.node_nm"),
])
def test_unphysical_technology_values_are_refused(setting, field):
    refuse("evaluate", str(ROOT / "arch_specs" / "neurosim_rram_22nm.yaml"), "lenet5_mnist",
           "--set", setting, contains=field)


def test_max_points_refuses_before_fresh_deletes_and_raises_the_limit(tmp_path):
    path = tmp_path / "mid.yaml"
    path.write_text(SWEEP.format(arch=ARCH, parameters="adc.bits: {range: [4, 8]}"))
    store = tmp_path / "mid.sqlite"
    ok = CliRunner().invoke(main, ["sweep", str(path), "--store", str(store), "--workers", "0",
                                   "--quiet", "--no-plot", "--max-points", "5"])
    assert ok.exit_code == 0, ok.output
    before = store.read_bytes()
    refuse("sweep", str(path), "--store", str(store), "--fresh", "--max-points", "4",
           contains="5 designs, over the limit of 4")
    assert store.read_bytes() == before  # --fresh did not delete the store of a refused sweep
