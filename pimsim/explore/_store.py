"""The results store: one sqlite file in WAL mode, one row per design point.

Tables:

- ``points``: primary key ``key`` (the design key: a hash of the fully resolved spec, the
  workload and the oracle budget); ``point`` (index in the sweep), ``sweep``, ``status`` (``ok``,
  ``infeasible`` with the ``error`` that made it so, or ``failed``: an internal error, with its
  message), ``arch``, ``workload``, every parameter (column named by its field path) and every
  metric (``energy_pj``, ..., ``edp``, the breakdowns ``energy_<class>_pj`` and
  ``area_<class>_mm2``, ``accuracy``) as a column, ``finished_at`` and ``eval_ms``; a column
  first written by a newer pimsim is added on demand (older rows read it as null);
- ``requests``: every request key answered (what a re-run skips), with its design key;
- ``requested``: which sweep asked for which request, at which point index (several sweeps may
  share a store and ask for the same designs);
- ``accuracy``: the oracle's results by accuracy key (the cache);
- ``columns``: each column's role (``parameter`` or ``metric``) in first-seen order;
- ``meta``: the sweeps written (name, source file, digest, objectives, constraints).

Writing: every change (the schema, a finished batch, the requests of a sweep) is one ``BEGIN
IMMEDIATE`` transaction, and the columns are re-read inside it before any ``ALTER TABLE``, so
several sweeps may write one store at once, a new one included; a kill loses at most the batches
in flight and never leaves half a batch. A ``failed`` design is no answer: a re-run evaluates it
again and its row is replaced (an ``infeasible`` one is deterministic and stays). A sweep's rows
(``frame(sweep)``) are every design that sweep asked for, whichever sweep evaluated it first,
shown with that sweep's name and point index; stores written before ``requested`` existed read
as before (the rows each sweep evaluated) and are filled in when next opened for writing. A file
that holds other tables is not taken over: it is not a pimsim store.

Reading: ``ResultStore(path, readonly=True)`` and :func:`read_results` open the file with
``mode=ro``: they create no table, leave the journal mode as it is and refuse a file that is not
a pimsim store (sqlite may still create the ``-wal``/``-shm`` files it needs to read a store in
WAL mode). ``pandas.read_sql`` works on the file (``read_results`` does just that, in a stable
order).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from pathlib import Path

from pimsim.errors import PimsimError

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

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS points (
    key TEXT PRIMARY KEY, point INTEGER, sweep TEXT, status TEXT, error TEXT, arch TEXT,
    workload TEXT, request TEXT, accuracy_key TEXT, finished_at TEXT, eval_ms REAL)""",
    "CREATE TABLE IF NOT EXISTS requests (request TEXT PRIMARY KEY, key TEXT)",
    """CREATE TABLE IF NOT EXISTS accuracy (
    key TEXT PRIMARY KEY, accuracy REAL, accuracy_worst REAL, accuracy_std REAL,
    per_chip TEXT, eval_s REAL, finished_at TEXT, training TEXT)""",
    "CREATE TABLE IF NOT EXISTS columns (name TEXT PRIMARY KEY, role TEXT, position INTEGER)",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)",
    """CREATE TABLE IF NOT EXISTS requested (
    sweep TEXT, request TEXT, point INTEGER, PRIMARY KEY (sweep, request))""",
)
#: The tables every pimsim store has had (``requested`` came later).
_STORE_TABLES = frozenset({"points", "requests", "accuracy", "columns", "meta"})
_ALL_TABLES = _STORE_TABLES | {"requested"}
#: How long a writer waits for another one (sqlite's busy timeout), in seconds.
BUSY_TIMEOUT_S = 60.0


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _plain(value):
    """sqlite-bindable: numpy scalars to Python; lists/dicts to JSON text."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return value


def _tables(db: sqlite3.Connection) -> set[str]:
    return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _not_a_store(path: Path, why: str) -> PimsimError:
    return PimsimError(f"{path}: not a pimsim results store ({why})")


def _check_store(path: Path, db: sqlite3.Connection, new_ok: bool) -> set[str]:
    """The tables of ``db``; raises unless it is a pimsim store (or, with ``new_ok``, empty)."""
    try:
        tables = _tables(db)
    except sqlite3.DatabaseError as exc:
        raise _not_a_store(path, str(exc)) from None
    if not tables and new_ok:
        return tables
    missing = sorted(_STORE_TABLES - tables)
    if missing:
        what = f"it has no {missing[0]} table" if tables else "it holds no tables"
        raise _not_a_store(path, what)
    return tables


def _connect_readonly(path: Path) -> sqlite3.Connection:
    if not path.exists():
        raise PimsimError(f"{path}: no such results store (run pimsim sweep first)")
    if not path.is_file():
        raise PimsimError(f"{path}: not a file")
    uri = path.resolve().as_uri() + "?mode=ro"
    try:
        return sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error as exc:
        raise PimsimError(f"{path}: cannot open the results store ({exc})") from None


class ResultStore:
    """A sweep's results in sqlite (see the module docstring). Use as a context manager.

    ``readonly=True`` opens an existing store for reading only (``mode=ro``): nothing is created
    or changed, and a file that is not a pimsim store is refused with a :class:`PimsimError`.
    Opened for writing, a missing or empty file becomes a new store, and a file with other
    tables is refused too."""

    def __init__(self, path: str | os.PathLike, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if readonly:
            self._db = _connect_readonly(self.path)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            if readonly:
                _check_store(self.path, self._db, new_ok=False)
            else:
                self._prepare()
            self._refresh_columns()
        except BaseException:
            self._db.close()
            raise

    def _prepare(self) -> None:
        """Check that the file is a store (or empty), switch it to WAL, complete the schema."""
        tables = _check_store(self.path, self._db, new_ok=True)
        self._wal()
        self._db.execute("PRAGMA synchronous=NORMAL")
        if _ALL_TABLES <= tables and "training" in self._table_columns("accuracy"):
            return
        with self._write():  # the schema is re-read under the write lock: creation may race
            had = _tables(self._db)
            for statement in _SCHEMA:
                self._db.execute(statement)
            if "training" not in self._table_columns("accuracy"):  # stores before training
                self._db.execute("ALTER TABLE accuracy ADD COLUMN training TEXT")
            if "requested" not in had and "points" in had:  # stores before shared sweeps
                self._db.execute(
                    "INSERT OR IGNORE INTO requested (sweep, request, point) "
                    "SELECT p.sweep, r.request, p.point FROM requests r "
                    "JOIN points p ON p.key = r.key"
                )

    def _wal(self) -> None:
        """WAL mode (which needs a moment alone with the file: retried while it is busy)."""
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                if self._db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    @contextlib.contextmanager
    def _write(self):
        """One write transaction, begun with the write lock taken (``BEGIN IMMEDIATE``)."""
        if self.readonly:
            raise PimsimError(f"{self.path}: the results store is open read-only")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _table_columns(self, table: str) -> list[str]:
        return [row[1] for row in self._db.execute(f"PRAGMA table_info({_q(table)})")]

    def _refresh_columns(self) -> None:
        self._columns = {
            row[0]: row[1]
            for row in self._db.execute("SELECT name, role FROM columns ORDER BY position")
        }
        self._existing = set(self._table_columns("points"))

    def close(self) -> None:
        """Close the connection (everything committed is on disk)."""
        self._db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- what is done -------------------------------------------------------------------------
    def answered(self) -> set[str]:
        """Request keys already answered (a ``failed`` design is not an answer: it is retried)."""
        cur = self._db.execute(
            "SELECT r.request FROM requests r JOIN points p ON p.key = r.key "
            "WHERE p.status IS NOT 'failed'"
        )
        return {row[0] for row in cur}

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
        with self._write():
            self._db.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"sweep:{name}", json.dumps(info))
            )

    def sweeps(self) -> dict[str, dict]:
        """The sweeps recorded in this store."""
        cur = self._db.execute("SELECT name, value FROM meta WHERE name LIKE 'sweep:%'")
        return {name[6:]: json.loads(value) for name, value in cur}

    def note_requests(self, sweep: str, requests, only: bool = False) -> None:
        """Record that sweep ``sweep`` asks for ``requests`` (``(request key, point index)``
        pairs; the first index of a key counts). ``only=True``: these are all it asks for, and
        whatever else it asked for before is forgotten (its rows stay in the store)."""
        first: dict[str, int] = {}
        for request, point in requests:
            first.setdefault(request, point)
        with self._write():
            if only:
                cur = self._db.execute("SELECT request FROM requested WHERE sweep = ?", (sweep,))
                stale = {row[0] for row in cur} - set(first)
                self._db.executemany(
                    "DELETE FROM requested WHERE sweep = ? AND request = ?",
                    [(sweep, r) for r in stale],
                )
            self._db.executemany(
                "INSERT INTO requested (sweep, request, point) VALUES (?, ?, ?) "
                "ON CONFLICT(sweep, request) DO UPDATE SET point = excluded.point",
                [(sweep, r, p) for r, p in first.items()],
            )

    def _add_columns(self, rows, roles: dict[str, str]) -> None:
        """Add the columns of ``rows`` that the table lacks (inside a write transaction: the
        columns are re-read first, as another writer may have added them)."""
        names = list(dict.fromkeys(name for row in rows for name in row))
        if all(name in self._existing for name in names):
            return
        self._refresh_columns()
        for name in names:
            if name in self._existing:
                continue
            self._db.execute(f"ALTER TABLE points ADD COLUMN {_q(name)}")
            self._existing.add(name)
            role = roles.get(name, "metric")
            self._db.execute(
                "INSERT OR IGNORE INTO columns VALUES "
                "(?, ?, (SELECT COALESCE(MAX(position) + 1, 0) FROM columns))",
                (name, role),
            )
            self._columns[name] = role

    def _answer(self, request: str, key: str) -> None:
        """Map ``request`` to design ``key``; a request that had failed (its row under another
        key, when it failed before its design key was known) is moved, its old row dropped."""
        old = self._db.execute("SELECT key FROM requests WHERE request = ?", (request,)).fetchone()
        if old is None:
            self._db.execute("INSERT INTO requests VALUES (?, ?)", (request, key))
            return
        if old[0] == key:
            return
        status = self._db.execute("SELECT status FROM points WHERE key = ?", old).fetchone()
        if status is not None and status[0] != "failed":
            return
        self._db.execute("UPDATE requests SET key = ? WHERE request = ?", (key, request))
        self._db.execute(
            "DELETE FROM points WHERE key = ? AND status = 'failed' AND NOT EXISTS "
            "(SELECT 1 FROM requests WHERE requests.key = points.key)",
            old,
        )

    def commit(self, rows: list[dict], accuracy: dict | None = None, roles=None) -> None:
        """Write finished ``rows`` (and new oracle results ``{accuracy key: record}``) in one
        transaction. A design already stored keeps the row of its lowest point index, except
        that a ``failed`` row always gives way and never replaces another."""
        with self._write():
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
                    f"SET {update} WHERE points.status IS 'failed' OR "
                    "(excluded.point < points.point AND excluded.status IS NOT 'failed')",
                    [_plain(row[n]) for n in names],
                )
                self._answer(row["request"], row["key"])

    # -- reading --------------------------------------------------------------------------------
    def roles(self) -> dict[str, str]:
        """``{column: "parameter" | "metric"}`` in first-seen order."""
        return dict(self._columns)

    def frame(self, sweep: str | None = None):
        """Every stored point as a DataFrame (ordered by sweep, point index, key); with
        ``sweep``, every design that sweep asked for (one row per design, with that sweep's
        name and its lowest point index), whichever sweep evaluated it."""
        import pandas as pd

        self._refresh_columns()
        if sweep is None:
            frame = pd.read_sql("SELECT * FROM points ORDER BY sweep, point, key", self._db)
        elif "requested" in _tables(self._db):
            pick = ", ".join(
                "s.point AS point" if c == "point" else "s.sweep AS sweep" if c == "sweep"
                else f"p.{_q(c)}"
                for c in self._table_columns("points")
            )
            frame = pd.read_sql(
                f"SELECT {pick} FROM (SELECT q.sweep AS sweep, r.key AS key, "
                "MIN(q.point) AS point FROM requested q JOIN requests r ON r.request = q.request "
                "WHERE q.sweep = ? GROUP BY q.sweep, r.key) s JOIN points p ON p.key = s.key "
                "ORDER BY s.point, p.key",
                self._db,
                params=(sweep,),
            )
        else:  # a store from before ``requested``, opened read-only: the rows it evaluated
            frame = pd.read_sql(
                "SELECT * FROM points WHERE sweep = ? ORDER BY point, key",
                self._db,
                params=(sweep,),
            )
        params = [c for c, r in self._columns.items() if r == "parameter" and c in frame]
        metrics = [c for c, r in self._columns.items() if r == "metric" and c in frame]
        info = [c for c in INFO_COLUMNS if c in frame]
        return frame[info[:7] + params + metrics + info[7:]]


def read_results(path: str | os.PathLike, sweep: str | None = None):
    """The results store at ``path`` as a pandas DataFrame (see :class:`ResultStore`), read
    read-only; with ``sweep``, every design that sweep asked for. Raises :class:`PimsimError`
    for a missing file or one that is not a pimsim store."""
    path = Path(path)
    try:
        with ResultStore(path, readonly=True) as store:
            return store.frame(sweep)
    except sqlite3.DatabaseError as exc:
        raise _not_a_store(path, str(exc)) from None
