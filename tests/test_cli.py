"""The ``pimsim`` command line, run as a user runs it: in a subprocess, reading real files.

Every file in ``tests/malformed/`` is a realistic mistake (or a hostile input). Its first line says
where the error must be reported::

    # expect: LINE FIELD [TEXT...]     error at FILE:LINE: naming FIELD ("-": any field), and TEXT
    # expect: OTHER.yaml:LINE FIELD    the error is in another file (e.g. an inheritance cycle)
    # expect: * FIELD                  any line of FILE
    # expect: file [TEXT...]           only the file and a reason (no position)

A file without that first line (the empty file) expects ``file``. Whatever the mistake, ``pimsim
validate`` must exit with status 2, say where and what, and never show a traceback.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import _cli

ROOT = Path(__file__).resolve().parents[1]
MALFORMED = Path(__file__).resolve().parent / "malformed"
TIMEOUT_S = 60

#: Malformed files that expose a pimsim bug today (see the reasons); strict, so a fix shows up.
KNOWN_BUGS: dict[str, str] = {}  # file name -> reason, for strict xfail markers


@dataclass(frozen=True)
class Expectation:
    """What the first line of a malformed file promises about its error message."""

    source: Path | None  # file the position is in (None: no position expected)
    line: int | None  # None with a source: any line
    field: str  # "-": no particular field
    text: str  # must also appear (case-insensitive)


def expectation(path: Path) -> Expectation:
    first = path.read_text(encoding="utf-8").partition("\n")[0] if path.stat().st_size else ""
    match = re.match(r"#\s*expect:\s*(.*)$", first)
    if match is None:
        return Expectation(None, None, "-", "")
    words = match.group(1).split()
    if words[0] == "file":
        return Expectation(None, None, "-", " ".join(words[1:]))
    where, field, text = words[0], words[1], " ".join(words[2:])
    source = path
    if ":" in where:
        other, _, where = where.rpartition(":")
        source = path.parent / other
    line = None if where == "*" else int(where)
    return Expectation(source, line, field, text)


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return _cli.run_cli(*args, cwd=cwd, timeout=TIMEOUT_S)


def assert_user_error(result: subprocess.CompletedProcess) -> None:
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == 2, output
    assert result.stderr.strip(), "an error must be explained on stderr"


def _malformed_params() -> list:
    params = []
    for path in sorted(MALFORMED.iterdir()):
        marks = []
        if path.name in KNOWN_BUGS:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[path.name]))
        params.append(pytest.param(path, id=path.name, marks=marks))
    return params


def as_typed(path: Path) -> str:
    """``path`` as a user types it, relative to the repository root."""
    return path.relative_to(ROOT).as_posix()


@pytest.fixture(scope="module")
def malformed_results() -> dict[Path, subprocess.CompletedProcess]:
    """``pimsim validate FILE`` for every malformed file, one process each, run side by side."""
    paths = sorted(MALFORMED.iterdir())
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {path: pool.submit(run_cli, "validate", as_typed(path)) for path in paths}
        return {path: future.result() for path, future in futures.items()}


def test_malformed_folder_covers_enough_mistakes():
    assert len(list(MALFORMED.iterdir())) >= 30


@pytest.mark.parametrize("path", _malformed_params())
def test_validate_malformed_file(path: Path, malformed_results):
    given = as_typed(path)
    result = malformed_results[path]
    assert_user_error(result)
    err = result.stderr
    want = expectation(path)
    if want.source is None:
        # No position: the file name, then a reason.
        assert re.search(re.escape(given) + r": \S", err), err
    else:
        shown = given if want.source == path else str(want.source.resolve())
        line = r"\d+" if want.line is None else str(want.line)
        field = r"" if want.field == "-" else re.escape(want.field) + ": "
        pattern = re.escape(shown) + ":" + line + r":\d+: " + field
        assert re.search(pattern, err), f"expected /{pattern}/ in:\n{err}"
    if want.text:
        assert want.text.lower() in err.lower(), err


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("weights.yaml", b"kind: arch\n\x00\x01\x02\xff\xfe" * 64, "binary"),
        ("latin1.yaml", "kind: arch\nname: caf\u00e9\n".encode("latin-1"), "UTF-8"),
        ("huge.yaml", b"kind: arch\n" + b"# padding\n" * 500_000, "limit"),
    ],
)
def test_validate_non_text_files(tmp_path: Path, name: str, content: bytes, reason: str):
    path = tmp_path / name
    path.write_bytes(content)
    result = run_cli("validate", str(path))
    assert_user_error(result)
    assert str(path) in result.stderr
    assert reason.lower() in result.stderr.lower()


def test_validate_directory(tmp_path: Path):
    result = run_cli("validate", str(tmp_path))
    assert_user_error(result)
    assert str(tmp_path) in result.stderr
    assert "directory" in result.stderr


def test_validate_missing_file(tmp_path: Path):
    result = run_cli("validate", str(tmp_path / "nope.yaml"))
    assert_user_error(result)
    assert "nope.yaml" in result.stderr


def test_validate_all_shipped_files():
    files = sorted(
        as_typed(p)
        for folder in ("arch_specs", "workloads")
        for p in (ROOT / folder).glob("*.yaml")
    )
    result = run_cli("validate", *files)
    assert result.returncode == 0, result.stderr
    for name in files:
        assert f"{name}: ok" in result.stdout


def test_validate_reports_every_file(tmp_path: Path):
    """One bad file among good ones: all are checked, the bad one makes the exit status 2."""
    result = run_cli(
        "validate",
        "arch_specs/isaac.yaml",
        "tests/malformed/arch_rows_zero.yaml",
        "workloads/lenet5_mnist.yaml",
    )
    assert_user_error(result)
    assert "arch_specs/isaac.yaml: ok" in result.stdout
    assert "workloads/lenet5_mnist.yaml: ok" in result.stdout
    assert "tests/malformed/arch_rows_zero.yaml:10:" in result.stderr


# ------------------------------------------------------------------------------------ --set


def test_set_invalid_value_names_the_override():
    result = run_cli("validate", "--set", "adc.bits=0", "arch_specs/isaac.yaml")
    assert_user_error(result)
    assert "--set adc.bits=0" in result.stderr
    assert "adc.bits" in result.stderr.replace("--set adc.bits=0", "")


def test_set_valid_value_is_accepted():
    result = run_cli("validate", "--set", "adc.bits=5", "arch_specs/isaac.yaml")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("adc.bitz=5", "did you mean 'bits'"),
        ("adc.bits", "FIELD=VALUE"),
        ("adc.bits=[1", "invalid YAML"),
        ("pe.components[99].count=2", "pe.components[99]"),
        ("adc.bits=!!python/object/apply:os.system [ls]", "not allowed"),
        ("Adc.bits=3", "did you mean 'adc'"),
    ],
)
def test_set_mistakes(override: str, needle: str):
    result = run_cli("validate", "--set", override, "arch_specs/isaac.yaml")
    assert_user_error(result)
    assert f"--set {override}" in result.stderr
    assert needle in result.stderr


# ------------------------------------------------------------------------- show and schema


def test_show_json():
    result = run_cli("show", "resnet20_cifar10", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert len(data["rows"]) == 73
    assert data["macs"] == 40_813_184
    assert sum(row["macs"] for row in data["rows"]) == 40_813_184
    assert data["input_shape"] == [3, 32, 32]


def test_show_csv_to_file(tmp_path: Path):
    from pimsim.workload import TABLE_COLUMNS

    out = tmp_path / "resnet20.csv"
    result = run_cli("show", "resnet20_cifar10", "--format", "csv", "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == TABLE_COLUMNS
    assert len(rows) == 73
    assert rows[0]["name"] == "conv1"
    assert sum(int(r["macs"]) for r in rows) == 40_813_184


def test_show_unknown_workload_suggests():
    result = run_cli("show", "resnet20_cifar")
    assert_user_error(result)
    assert "did you mean 'resnet20_cifar10'" in result.stderr


def test_show_malformed_workload_file():
    result = run_cli("show", "tests/malformed/wl_unknown_block.yaml")
    assert_user_error(result)
    assert "tests/malformed/wl_unknown_block.yaml:15:" in result.stderr


def test_schema_arch():
    result = run_cli("schema", "arch")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert "adc" in schema["properties"]
    assert "technology" in schema["required"]


def test_schema_workload():
    result = run_cli("schema", "workload")
    assert result.returncode == 0, result.stderr
    assert "layers" in json.loads(result.stdout)["properties"]


# --------------------------------------------------------------------------- import weight

_TORCH_PROBE = """
import sys
from pimsim.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print("TORCH" if "torch" in sys.modules else "NO-TORCH", code, file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["validate", "arch_specs/isaac.yaml"],
        ["validate", "workloads/lenet5_mnist.yaml"],
    ],
    ids=["help", "validate-arch", "validate-workload"],
)
def test_cli_does_not_import_torch(args: list[str]):
    result = subprocess.run(
        [sys.executable, "-c", _TORCH_PROBE, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.split() == ["NO-TORCH", "0"], result.stderr
