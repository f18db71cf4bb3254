"""Results stores that are damaged, foreign, of a newer format or unwritable: every command
refuses them in one ``error:`` line naming the file (exit status 2, no traceback) and leaves
their bytes exactly as they were; write failures (a full disk, a read-only file, a device) lose
nothing already committed. Also the empty answers and bad outputs of ``pareto`` and ``plot``.

Every hostile file is made here, in ``tmp_path``, from one small store swept once per module.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from pimsim.cli import main
from pimsim.errors import PimsimError, StoreError
from pimsim.explore import ResultStore, read_results, sweep
from pimsim.explore._store import APPLICATION_ID, STORE_VERSION
from tests._cli import error_line
from tests.test_explore import write_sweep

OBJECTIVES = "[energy_pj:min, latency_ns:min]"


def sweep_body(bits: str = "[4, 5]") -> str:
    """A cost-only sweep of the unit arch over ADC bits (milliseconds a design)."""
    return (
        "kind: sweep\nname: good\narch: unit.yaml\nworkload: mlp_mnist\n"
        f"parameters:\n  adc.bits: {bits}\nobjectives: {OBJECTIVES}\n"
    )


@pytest.fixture(scope="module")
def good_bytes(tmp_path_factory) -> bytes:
    """The bytes of a valid two-design store, in rollback-journal mode (one file, no -wal)."""
    folder = tmp_path_factory.mktemp("good")
    store = folder / "good.sqlite"
    sweep(write_sweep(folder, sweep_body()), store, workers=0, progress=False)
    db = sqlite3.connect(store)
    db.execute("PRAGMA journal_mode=DELETE")
    db.close()
    return store.read_bytes()


def _edit(path: Path, *statements: str) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    for statement in statements:
        db.execute(statement)
    db.close()


def _corrupt(data: bytes) -> bytes:
    """Every page but the first overwritten with random bytes."""
    rng = random.Random(1)
    return data[:4096] + rng.randbytes(len(data) - 4096)


#: kind -> (how to make it from the good store's bytes at a path, text the error must hold)
HOSTILE = {
    "text": (lambda p, good: p.write_bytes(b"design,energy_pj\n4,1.5e7\n" * 40),
             "not a pimsim results store (it is a text file"),
    "random_bytes": (lambda p, good: p.write_bytes(random.Random(0).randbytes(8192)),
                     "not a pimsim results store (it is not an sqlite database"),
    "truncated": (lambda p, good: p.write_bytes(good[: len(good) // 2]),
                  "damaged results store"),
    "cut_in_header": (lambda p, good: p.write_bytes(good[:9]), "damaged results store"),
    "corrupted": (lambda p, good: p.write_bytes(_corrupt(good)), "damaged results store"),
    "foreign_sqlite": (
        lambda p, good: _edit(p, "CREATE TABLE notes (text TEXT)",
                              "INSERT INTO notes VALUES ('keep me')"),
        "not a pimsim results store (an sqlite database of another program, with the tables "
        "notes)",
    ),
    "foreign_application": (
        lambda p, good: _edit(p, "PRAGMA application_id = 1234", "CREATE TABLE t (x)"),
        "another application, id 0x4d2",
    ),
    "newer_format": (
        lambda p, good: (p.write_bytes(good), _edit(p, "PRAGMA user_version = 99")),
        f"results store of format 99, newer than this pimsim reads (up to {STORE_VERSION})",
    ),
    "bad_meta_json": (
        lambda p, good: (p.write_bytes(good),
                         _edit(p, "UPDATE meta SET value = '{nope' WHERE name = 'sweep:good'")),
        "damaged results store (its meta row 'sweep:good' is not valid JSON",
    ),
    "meta_not_an_object": (
        lambda p, good: (p.write_bytes(good),
                         _edit(p, "UPDATE meta SET value = '[1, 2]' WHERE name = 'sweep:good'")),
        "its meta row 'sweep:good' is not a JSON object",
    ),
}


def hostile(folder: Path, kind: str, good: bytes) -> Path:
    path = folder / f"{kind}.sqlite"
    HOSTILE[kind][0](path, good)
    return path


def invoke(args):
    """``pimsim ARGS`` in this process; asserts no traceback."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result


def one_error(result, *parts: str) -> str:
    """The single ``error:`` line of a failed command (exit status 2), holding ``parts``."""
    line = error_line(result)
    for part in parts:
        assert part in line, line
    return line


def commands(path: Path, spec: Path) -> list[list]:
    return [
        ["results", path],
        ["results", path, "--format", "json"],
        ["pareto", path, "--objectives", "energy_pj:min,latency_ns:min"],
        ["plot", path, "--parameter", "adc.bits", "--metric", "energy_pj",
         "-o", path.parent / "p.png"],
        ["sweep", spec, "--store", path, "--workers", "0", "--quiet", "--no-plot"],
        ["sweep", spec, "--store", path, "--workers", "0", "--quiet", "--no-plot", "--fresh"],
        ["sweep", "--resume", "--store", path, "--workers", "0", "--quiet", "--no-plot"],
    ]


# -- files that are not (usable) pimsim stores -------------------------------------------------


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_every_command_refuses_a_hostile_store_and_leaves_it_alone(tmp_path, good_bytes, kind):
    spec = write_sweep(tmp_path, sweep_body())
    path = hostile(tmp_path, kind, good_bytes)
    before, listing = path.read_bytes(), sorted(tmp_path.iterdir())
    for args in commands(path, spec):
        one_error(invoke(args), f"error: {path}: ", HOSTILE[kind][1])
        assert path.read_bytes() == before, args
    assert sorted(tmp_path.iterdir()) == listing  # no -wal, -shm, csv or png left beside it


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_the_python_api_raises_store_error(tmp_path, good_bytes, kind):
    spec = write_sweep(tmp_path, sweep_body())
    path = hostile(tmp_path, kind, good_bytes)
    before = path.read_bytes()
    for attempt in (
        lambda: ResultStore(path),
        lambda: ResultStore(path, readonly=True),
        lambda: read_results(path),
        lambda: sweep(spec, path, workers=0, progress=False),
        lambda: sweep(spec, path, workers=0, progress=False, fresh=True),
    ):
        with pytest.raises(StoreError) as info:
            attempt()
        assert isinstance(info.value, PimsimError)
        assert str(info.value).startswith(f"{path}: ") and HOSTILE[kind][1] in str(info.value)
        assert "\n" not in str(info.value)
    assert path.read_bytes() == before


def test_advice_fits_the_command(tmp_path, good_bytes):
    spec = write_sweep(tmp_path, sweep_body())
    path = hostile(tmp_path, "text", good_bytes)
    read = one_error(invoke(["results", path]))
    assert read.endswith("give the path of a store that pimsim sweep wrote")
    write = one_error(invoke(["sweep", spec, "--store", path, "--quiet", "--workers", "0"]))
    assert write.endswith("choose another --store path")
    fresh = one_error(invoke(["sweep", spec, "--store", path, "--fresh", "--workers", "0"]))
    assert "choose another --store path" in fresh and "--fresh deletes only a pimsim store" in fresh


# -- the format version -----------------------------------------------------------------------


def _header(path: Path) -> tuple[int, int]:
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return (db.execute("PRAGMA application_id").fetchone()[0],
                db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def test_a_new_store_records_its_format_and_sweeps(tmp_path, good_bytes):
    path = tmp_path / "good.sqlite"
    path.write_bytes(good_bytes)
    assert _header(path) == (APPLICATION_ID, STORE_VERSION)
    with ResultStore(path, readonly=True) as db:
        assert set(db.sweeps()) == {"good"}
    db = sqlite3.connect(path)
    record = json.loads(db.execute("SELECT value FROM meta WHERE name = 'store'").fetchone()[0])
    db.close()
    assert record["version"] == STORE_VERSION and record["written_by"].startswith("pimsim ")


def test_a_store_from_before_the_format_opens_as_version_1(tmp_path, good_bytes):
    """A store the previous pimsim wrote (its tables, no mark in the header, no ``store`` row)
    is read as it is and upgraded, rows kept, when a sweep next writes it."""
    path = tmp_path / "old.sqlite"
    path.write_bytes(good_bytes)
    _edit(path, "PRAGMA application_id = 0", "PRAGMA user_version = 0",
          "DELETE FROM meta WHERE name = 'store'")
    before = path.read_bytes()
    assert len(read_results(path)) == 2
    result = invoke(["results", path, "--format", "csv"])
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 3
    assert path.read_bytes() == before  # reading upgrades nothing
    spec = write_sweep(tmp_path, sweep_body("[4, 5, 6]"))
    run = sweep(spec, path, workers=0, progress=False)
    assert (run.evaluated, run.skipped) == (1, 2)
    assert _header(path) == (APPLICATION_ID, STORE_VERSION)
    assert len(read_results(path)) == 3


# -- write failures ---------------------------------------------------------------------------


@pytest.fixture
def store_copy(tmp_path, good_bytes) -> Path:
    path = tmp_path / "good.sqlite"
    path.write_bytes(good_bytes)
    return path


def _patched_connect(monkeypatch, path: Path, after_open) -> None:
    """sqlite connections to ``path`` made by pimsim pass through ``after_open(db)`` first."""
    real = sqlite3.connect

    def connect(target, *args, **kwargs):
        if str(target) == str(path):
            db = real(target, *args, **kwargs)
            after_open(db)
            return db
        return real(target, *args, **kwargs)

    monkeypatch.setattr("pimsim.explore._store.sqlite3.connect", connect)


def test_a_full_disk_is_one_line_and_loses_nothing(tmp_path, store_copy, monkeypatch):
    """sqlite's SQLITE_FULL, made by capping the file at the pages it has."""

    def cap(db):
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")

    first_keys = list(read_results(store_copy)["key"])
    _patched_connect(monkeypatch, store_copy, cap)
    spec = write_sweep(tmp_path, sweep_body("{range: [3, 8]}\n  array.rows: [32, 64, 128, 256]"))
    args = ["sweep", spec, "--store", store_copy, "--workers", "0", "--quiet", "--no-plot"]
    one_error(invoke(args), f"error: {store_copy}: cannot write the results store: the disk is "
              "full; everything committed before is kept")
    with pytest.raises(StoreError, match="the disk is full"):
        sweep(spec, store_copy, workers=0, progress=False)
    monkeypatch.undo()
    frame = read_results(store_copy)
    assert (frame.status == "ok").all() and len(frame) < 24
    assert set(first_keys) <= set(frame["key"])  # what was committed before is all there
    again = sweep(spec, store_copy, workers=0, progress=False)  # room again: it carries on
    assert again.evaluated and again.evaluated + again.skipped == 24
    final = read_results(store_copy)
    assert set(frame["key"]) <= set(final["key"]) and (final.status == "ok").all()


def test_a_read_only_file_is_one_line_and_stays_as_it_was(tmp_path, store_copy, monkeypatch):
    """The store opened the way sqlite opens a file it may not write (``mode=ro``)."""
    real = sqlite3.connect
    uri = f"{store_copy.resolve().as_uri()}?mode=ro"

    def connect(target, *args, **kwargs):
        if str(target) == str(store_copy):
            return real(uri, *args, **{**kwargs, "uri": True})
        return real(target, *args, **kwargs)

    monkeypatch.setattr("pimsim.explore._store.sqlite3.connect", connect)
    before = store_copy.read_bytes()
    spec = write_sweep(tmp_path, sweep_body("[4, 5, 6]"))
    one_error(
        invoke(["sweep", spec, "--store", store_copy, "--workers", "0", "--quiet"]),
        f"error: {store_copy}: cannot write the results store: the file or its folder is "
        "read-only",
    )
    assert store_copy.read_bytes() == before
    monkeypatch.undo()
    assert len(read_results(store_copy)) == 2


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_a_read_only_folder(tmp_path, good_bytes):
    folder = tmp_path / "locked"
    folder.mkdir()
    (folder / "good.sqlite").write_bytes(good_bytes)
    spec = write_sweep(tmp_path, sweep_body("[4, 5, 6]"))
    folder.chmod(0o555)
    try:
        for store in (folder / "good.sqlite", folder / "new.sqlite"):
            one_error(invoke(["sweep", spec, "--store", store, "--workers", "0", "--quiet"]),
                      f"error: {store}: cannot")
        assert (folder / "good.sqlite").read_bytes() == good_bytes
    finally:
        folder.chmod(0o755)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
def test_a_device_is_not_a_store(tmp_path):
    spec = write_sweep(tmp_path, sweep_body())
    for device in ("/dev/full", "/dev/null"):
        one_error(invoke(["sweep", spec, "--store", device, "--workers", "0", "--quiet"]),
                  f"error: {device}: cannot be a results store (not a regular file)")
        for args in (["results", device], ["pareto", device, "--objectives", "energy_pj:min"]):
            one_error(invoke(args), f"error: {device}: not a file")
        with pytest.raises(StoreError, match="not a regular file"):
            ResultStore(device)


def test_a_folder_or_a_path_through_a_file_is_not_a_store(tmp_path):
    spec = write_sweep(tmp_path, sweep_body())
    one_error(invoke(["sweep", spec, "--store", tmp_path, "--workers", "0"]), "is a directory")
    with pytest.raises(StoreError, match=r"cannot be a results store \(a folder\)"):
        ResultStore(tmp_path)
    blocked = tmp_path / "s.yaml" / "store.sqlite"  # its folder would be a file
    one_error(invoke(["sweep", spec, "--store", blocked, "--workers", "0", "--quiet"]),
              f"error: {blocked}: cannot create the results store's folder")
    assert spec.read_text() == sweep_body()


# -- pareto: an empty answer; plot: bad columns and outputs -----------------------------------


def test_pareto_with_constraints_no_design_meets(store_copy):
    result = invoke(["pareto", store_copy, "--constraint", "area_mm2 <= 0"])
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"{store_copy}: no design meets the constraint 'area_mm2 <= 0': 2 designs checked, "
        "2 feasible (status ok)\n"
    )
    two = invoke(["pareto", store_copy, "--constraint", "area_mm2 <= 0",
                  "--constraint", "energy_pj >= 0"])
    assert two.exit_code == 0 and len(two.stdout.splitlines()) == 1
    assert "constraints 'area_mm2 <= 0', 'energy_pj >= 0'" in two.stdout
    assert "each alone is met by: 'area_mm2 <= 0' by 0, 'energy_pj >= 0' by 2" in two.stdout
    csv = invoke(["pareto", store_copy, "--constraint", "area_mm2 <= 0", "--format", "csv"])
    assert csv.exit_code == 0 and len(csv.stdout.splitlines()) == 1  # the header: an empty table
    assert "no design meets the constraint" in csv.stderr
    rows = invoke(["pareto", store_copy, "--constraint", "area_mm2 <= 0", "--format", "json"])
    assert rows.exit_code == 0 and json.loads(rows.stdout)["rows"] == []


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--parameter", "adc.bits", "--metric", "status"],
         "metric 'status' is not numeric (values such as 'ok')"),
        (["--parameter", "adc.bits", "--metric", "arch"], "metric 'arch' is not numeric"),
        (["--parameter", "status", "--metric", "energy_pj"],
         "'status' is not a parameter column (parameters: arch, workload, adc.bits)"),
        (["--parameter", "adc.bits", "--metric", "energy_pj", "--hue", "energy_pj"],
         "'energy_pj' is not a parameter column"),
        (["--parameter", "adc.bits", "--metric", "energy_pj", "-o", "OUT/out.txt"],
         "out.txt: cannot draw a plot into this file ('.txt' is not an image format): give a "
         "FILE.png"),
        (["--parameter", "adc.bits", "--metric", "energy_pj", "-o", "OUT/out"],
         "cannot draw a plot into this file (it has no suffix)"),
    ],
)
def test_plot_refuses_what_it_cannot_draw(store_copy, extra, message):
    folder = store_copy.parent
    args = ["plot", store_copy, *[a.replace("OUT", str(folder)) for a in extra]]
    one_error(invoke(args), message)
    assert sorted(p.name for p in folder.iterdir()) == ["good.sqlite"]


def test_pareto_refuses_plot_files_that_are_not_images(store_copy):
    for option in ("--plot", "--parallel"):
        target = store_copy.parent / "front.txt"
        one_error(invoke(["pareto", store_copy, option, target]),
                  f"error: {target}: cannot draw a plot into this file")
        assert not target.exists()


def test_plot_still_draws_numbers_and_categories(store_copy):
    out = store_copy.parent / "s.png"
    result = invoke(["plot", store_copy, "--parameter", "arch", "--metric", "energy_pj",
                     "-o", out])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 0
