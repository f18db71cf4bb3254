"""The results store: one sqlite file in WAL mode, one row per design point.

Tables:

- ``points``: primary key ``key`` (the design key: a hash of the fully resolved spec, the
  workload and the oracle budget); ``point`` (index in the sweep), ``sweep``, ``status`` (``ok``,
  ``infeasible`` with the ``error`` that made it so, or ``failed``: an internal error, with its
  message), ``arch``, ``workload``, every parameter (column named by its field path) and every
  metric (``energy_pj``, ..., ``edp``, ``accuracy``) as a column, ``finished_at`` and ``eval_ms``;
- ``requests``: every request key answered (what a re-run skips), with its design key;
- ``accuracy``: the oracle's results by accuracy key (the cache);
- ``columns``: each column's role (``parameter`` or ``metric``) in first-seen order;
- ``meta``: the sweeps written (name, source file, digest, objectives, constraints).

Only the process that runs the sweep writes, one transaction per finished batch, so a kill loses
at most the batches in flight and never leaves half a batch. ``pandas.read_sql`` works on the
file (``read_results`` does just that, in a stable order).
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

INFO_COLUMNS = (
    "key",
    "point",
    "sweep",
    "status",
    "error",
    "arch",
    "workload",
    "request",
    "accuracy_key",
    "finished_at",
    "eval_ms",
)
#: Columns that differ between two runs of the same sweep (ignored when comparing runs).
TIMING_COLUMNS = ("finished_at", "eval_ms")
ACCURACY_COLUMNS = (
    "accuracy", "accuracy_worst", "accuracy_std", "per_chip", "eval_s", "training"
)
"""``training``: JSON of an on-chip training run (its measured writes per step), else null."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    key TEXT PRIMARY KEY, point INTEGER, sweep TEXT, status TEXT, error TEXT, arch TEXT,
    workload TEXT, request TEXT, accuracy_key TEXT, finished_at TEXT, eval_ms REAL);
CREATE TABLE IF NOT EXISTS requests (request TEXT PRIMARY KEY, key TEXT);
CREATE TABLE IF NOT EXISTS accuracy (
    key TEXT PRIMARY KEY, accuracy REAL, accuracy_worst REAL, accuracy_std REAL,
    per_chip TEXT, eval_s REAL, finished_at TEXT);
CREATE TABLE IF NOT EXISTS columns (name TEXT PRIMARY KEY, role TEXT, position INTEGER);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT);
"""


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _plain(value):
    """sqlite-bindable: numpy scalars to Python; lists/dicts to JSON text."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return value


class ResultStore:
    """A sweep's results in sqlite (see the module docstring). Use as a context manager."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        have = {row[1] for row in self._db.execute("PRAGMA table_info(accuracy)")}
        if "training" not in have:  # stores written before on-chip training sweeps existed
            self._db.execute("ALTER TABLE accuracy ADD COLUMN training TEXT")
        self._columns = {
            row[0]: row[1]
            for row in self._db.execute("SELECT name, role FROM columns ORDER BY position")
        }
        self._existing = {row[1] for row in self._db.execute("PRAGMA table_info(points)")}

    def close(self) -> None:
        """Close the connection (everything committed is on disk)."""
        self._db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- what is done -------------------------------------------------------------------------
    def answered(self) -> set[str]:
        """Request keys already answered."""
        return {row[0] for row in self._db.execute("SELECT request FROM requests")}

    def accuracy_cache(self) -> dict[str, dict]:
        """The oracle's results by accuracy key."""
        cur = self._db.execute(f"SELECT key, {', '.join(ACCURACY_COLUMNS)} FROM accuracy")
        return {row[0]: dict(zip(ACCURACY_COLUMNS, row[1:], strict=True)) for row in cur}

    def rows_for(self, requests) -> dict[str, dict]:
        """The stored rows answering ``requests`` (request key -> row as a dict)."""
        out = {}
        cur = self._db.execute(
            "SELECT r.request, p.* FROM requests r JOIN points p ON p.key = r.key"
        )
        names = [d[0] for d in cur.description]
        wanted = set(requests)
        for row in cur:
            if row[0] in wanted:
                out[row[0]] = dict(zip(names[1:], row[1:], strict=True))
        return out

    # -- writing --------------------------------------------------------------------------------
    def record_sweep(self, name: str, info: dict) -> None:
        """Remember a sweep (its source, digest, objectives...) under ``sweep:<name>``."""
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"sweep:{name}", json.dumps(info))
            )

    def sweeps(self) -> dict[str, dict]:
        """The sweeps recorded in this store."""
        cur = self._db.execute("SELECT name, value FROM meta WHERE name LIKE 'sweep:%'")
        return {name[6:]: json.loads(value) for name, value in cur}

    def _add_columns(self, rows, roles: dict[str, str]) -> None:
        for row in rows:
            for name in row:
                if name in self._existing:
                    continue
                self._db.execute(f"ALTER TABLE points ADD COLUMN {_q(name)}")
                self._existing.add(name)
                role = roles.get(name, "metric")
                self._db.execute(
                    "INSERT OR IGNORE INTO columns VALUES (?, ?, ?)",
                    (name, role, len(self._columns)),
                )
                self._columns[name] = role

    def commit(self, rows: list[dict], accuracy: dict | None = None, roles=None) -> None:
        """Write finished ``rows`` (and new oracle results ``{accuracy key: record}``) in one
        transaction. A design already stored keeps the row of its lowest point index."""
        with self._db:
            self._add_columns(rows, roles or {})
            for key, rec in (accuracy or {}).items():
                values = [_plain(rec.get(c)) for c in ACCURACY_COLUMNS]
                cols = ", ".join(("key", *ACCURACY_COLUMNS, "finished_at"))
                marks = ", ".join("?" for _ in range(len(ACCURACY_COLUMNS) + 1))
                self._db.execute(
                    f"INSERT OR IGNORE INTO accuracy ({cols}) VALUES ({marks}, datetime('now'))",
                    (key, *values),
                )
            for row in rows:
                names = list(row)
                cols = ", ".join(_q(n) for n in names)
                marks = ", ".join("?" for _ in names)
                update = ", ".join(f"{_q(n)} = excluded.{_q(n)}" for n in names if n != "key")
                self._db.execute(
                    f"INSERT INTO points ({cols}) VALUES ({marks}) ON CONFLICT(key) DO UPDATE "
                    f"SET {update} WHERE excluded.point < points.point",
                    [_plain(row[n]) for n in names],
                )
                self._db.execute(
                    "INSERT OR IGNORE INTO requests VALUES (?, ?)", (row["request"], row["key"])
                )

    # -- reading --------------------------------------------------------------------------------
    def roles(self) -> dict[str, str]:
        """``{column: "parameter" | "metric"}`` in first-seen order."""
        return dict(self._columns)

    def frame(self, sweep: str | None = None):
        """Every stored point as a DataFrame (ordered by sweep, point index, key)."""
        import pandas as pd

        where, args = ("WHERE sweep = ?", (sweep,)) if sweep else ("", ())
        frame = pd.read_sql(
            f"SELECT * FROM points {where} ORDER BY sweep, point, key", self._db, params=args
        )
        params = [c for c, r in self._columns.items() if r == "parameter" and c in frame]
        metrics = [c for c, r in self._columns.items() if r == "metric" and c in frame]
        info = [c for c in INFO_COLUMNS if c in frame]
        return frame[info[:7] + params + metrics + info[7:]]


def read_results(path: str | os.PathLike, sweep: str | None = None):
    """The results store at ``path`` as a pandas DataFrame (see :class:`ResultStore`)."""
    from pimsim.errors import PimsimError

    path = Path(path)
    if not path.is_file():
        raise PimsimError(f"{path}: no such results store (run pimsim sweep first)")
    try:
        with ResultStore(path) as store:
            return store.frame(sweep)
    except sqlite3.DatabaseError as exc:
        raise PimsimError(f"{path}: not a pimsim results store ({exc})") from None
