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
as before (the rows each sweep evaluated) and are filled in when next opened for writing.

Identity: a store carries pimsim's application id and its format (:data:`STORE_VERSION`) in the
sqlite header (``PRAGMA application_id``, ``PRAGMA user_version``), and the format with the
pimsim that wrote it in ``meta`` (row ``store``); a store with pimsim's tables and no mark is
format 1 (written before the format was kept) and is marked when next opened for writing. Every
open checks the file first, reading only: a file that is not sqlite (text, random bytes), a
damaged one (truncated, corrupted: sqlite's quick check), another program's database, a newer
format or unreadable ``meta`` is refused with a one-line :class:`~pimsim.errors.StoreError`
naming the file, and is never written. Any sqlite error later (a full disk, a read-only file or
folder) is a :class:`~pimsim.errors.StoreError` too; the transaction in flight is rolled back
and everything committed before stays.

Reading: ``ResultStore(path, readonly=True)`` and :func:`read_results` open the file with
``mode=ro``: they create no table, mark nothing, leave the journal mode as it is and refuse a
file that is not a pimsim store (sqlite may still create the ``-wal``/``-shm`` files it needs
to read a store in WAL mode). ``pandas.read_sql`` works on the file (``read_results`` does just
that, in a stable order).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sqlite3
import sys
import time
from pathlib import Path

from pimsim.errors import StoreError

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
#: sqlite's application id of a pimsim results store ("PIMS", in the file's header).
APPLICATION_ID = 0x50494D53
#: The store format this pimsim writes (and the newest it reads). 1: the stores written before
#: the format was recorded (pimsim's tables, no application id); 2: the application id and the
#: format in the file's header (``PRAGMA user_version``) and in ``meta`` (row ``store``).
STORE_VERSION = 2
_SQLITE_HEADER = b"SQLite format 3\x00"


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


def _advice(readonly: bool) -> str:
    """What to do about a file that cannot be used as a store."""
    if readonly:
        return "give the path of a store that pimsim sweep wrote"
    return "choose another --store path"


def _not_a_store(path: Path, why: str, readonly: bool = True) -> StoreError:
    return StoreError(f"{path}: not a pimsim results store ({why}): {_advice(readonly)}")


def _damaged(path: Path, why, readonly: bool) -> StoreError:
    return StoreError(
        f"{path}: damaged results store ({why}); pimsim leaves it as it is: restore it from a "
        f"backup, or {_advice(readonly)}"
    )


def _error_name(exc: sqlite3.Error) -> str:
    """sqlite's name of the error (``SQLITE_FULL``...; guessed from the text before 3.11)."""
    name = getattr(exc, "sqlite_errorname", None)
    if name:
        return name
    text = str(exc)
    for part, guess in (
        ("disk is full", "SQLITE_FULL"),
        ("readonly", "SQLITE_READONLY"),
        ("unable to open", "SQLITE_CANTOPEN"),
        ("malformed", "SQLITE_CORRUPT"),
        ("not a database", "SQLITE_NOTADB"),
        ("locked", "SQLITE_BUSY"),
        ("I/O error", "SQLITE_IOERR"),
    ):
        if part in text:
            return guess
    return ""


def _failure(path: Path, exc: sqlite3.Error, readonly: bool) -> StoreError:
    """The :class:`StoreError` for an sqlite error met while using the store at ``path``."""
    name = _error_name(exc)
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return _damaged(path, f"an sqlite file that is truncated or corrupted: {exc}", readonly)
    if name.startswith("SQLITE_FULL"):
        why = "the disk is full"
    elif name.startswith("SQLITE_READONLY"):
        why = "the file or its folder is read-only"
    elif name.startswith("SQLITE_CANTOPEN"):
        why = "sqlite cannot open it (the folder must be writable: a store keeps its -wal and "
        why += "-shm files beside it)"
    elif name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        why = f"another process has kept it locked for over {BUSY_TIMEOUT_S:.0f} s"
    elif name.startswith("SQLITE_IOERR"):
        why = f"the disk reported an error ({exc})"
    else:
        why = str(exc)
    if readonly:
        return StoreError(f"{path}: cannot read the results store: {why}")
    return StoreError(
        f"{path}: cannot write the results store: {why}; everything committed before is kept "
        "(fix that and run the sweep again: finished designs are skipped)"
    )


def _sniff(path: Path, readonly: bool) -> None:
    """Refuse a file whose first bytes are not sqlite's header (saying whether it is text); an
    empty file passes (a new store). Reads the first bytes only."""
    try:
        with open(path, "rb") as file:
            head = file.read(512)
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the results store ({exc.strerror})") from None
    if not head or head.startswith(_SQLITE_HEADER):
        return
    if _SQLITE_HEADER.startswith(head):
        raise _damaged(path, "an sqlite file cut short inside its header", readonly)
    text = None
    for cut in range(4):  # the 512 bytes may end inside a UTF-8 character
        try:
            text = head[: len(head) - cut].decode("utf-8")
            break
        except UnicodeDecodeError:
            continue
    if text is not None and all(ch.isprintable() or ch in "\t\r\n\f" for ch in text):
        raise _not_a_store(path, "it is a text file, not an sqlite database", readonly)
    raise _not_a_store(path, "it is not an sqlite database: it lacks sqlite's header", readonly)


def _check_meta(path: Path, db: sqlite3.Connection, readonly: bool) -> None:
    """Refuse a store whose ``meta`` rows (the sweeps, the format) are not JSON objects."""
    for name, value in db.execute("SELECT name, value FROM meta"):
        if not (isinstance(name, str) and (name.startswith("sweep:") or name == "store")):
            continue
        try:
            problem = None if isinstance(json.loads(value), dict) else "is not a JSON object"
        except (TypeError, ValueError) as exc:
            problem = f"is not valid JSON: {exc}"
        if problem:
            raise _damaged(path, f"its meta row {name!r} {problem}", readonly)


def _identify(path: Path, db: sqlite3.Connection, *, new_ok: bool, readonly: bool, check=True):
    """``(format version, tables)`` of the store ``db``; version 0 is an empty database (a new
    store, accepted with ``new_ok`` only). Raises :class:`StoreError` for a file that is not a
    pimsim store, a damaged one (``check``: sqlite's quick check of every page included) or
    one of a newer format."""
    try:
        app = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = _tables(db)
        ours = app == APPLICATION_ID
        if app and not ours:
            raise _not_a_store(
                path, f"an sqlite database of another application, id {app:#x}", readonly
            )
        if not ours and version:
            raise _not_a_store(
                path, f"an sqlite database of another program (user_version {version})", readonly
            )
        if not tables:
            if new_ok and not ours:
                return 0, tables
            if not ours:
                raise _not_a_store(path, "an sqlite database that holds no tables", readonly)
        missing = sorted(_STORE_TABLES - tables)
        if missing and ours:
            raise _damaged(path, f"its {missing[0]} table is missing", readonly)
        if missing:
            others = sorted(tables - _ALL_TABLES)
            what = f"it has no {missing[0]} table"
            if others:
                listed = ", ".join(others[:4]) + (", ..." if len(others) > 4 else "")
                what = f"an sqlite database of another program, with the tables {listed}"
            raise _not_a_store(path, what, readonly)
        version = version if ours else 1  # stores from before the format was recorded
        if version > STORE_VERSION:
            raise StoreError(
                f"{path}: a pimsim results store of format {version}, newer than this pimsim "
                f"reads (up to {STORE_VERSION}): upgrade pimsim, or {_advice(readonly)}"
            )
        if version < 1:
            raise _damaged(path, f"its format version {version} is not one pimsim wrote", readonly)
        _check_meta(path, db, readonly)
        if check:
            problem = db.execute("PRAGMA quick_check(1)").fetchone()[0]
            if problem != "ok":
                lines = [line for line in problem.splitlines() if not line.startswith("***")]
                raise _damaged(path, f"sqlite finds it corrupted: {lines[0]}", readonly)
    except sqlite3.Error as exc:
        raise _failure(path, exc, readonly) from None
    return version, tables


def _connect_readonly(path: Path, readonly: bool = True) -> sqlite3.Connection:
    """A read-only connection; errors advise as for reading, or (``readonly=False``) as for a
    store about to be written."""
    if not path.exists():
        raise StoreError(f"{path}: no such results store (run pimsim sweep first)")
    if not path.is_file():
        raise StoreError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise _not_a_store(path, "an empty file", readonly)
    _sniff(path, readonly)
    uri = path.resolve().as_uri() + "?mode=ro"
    try:
        return sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error as exc:
        raise _failure(path, exc, readonly) from None


def _reads(method):
    """Run ``method`` with sqlite's errors raised as a :class:`StoreError`."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._errors():
            return method(self, *args, **kwargs)

    return wrapper


class ResultStore:
    """A sweep's results in sqlite (see the module docstring). Use as a context manager.

    ``readonly=True`` opens an existing store for reading only (``mode=ro``): nothing is created
    or changed. Opened for writing, a missing or empty file becomes a new store. Either way a
    file that is not a pimsim store (not sqlite, another program's database, a newer format) or
    a damaged one is refused with a :class:`StoreError` and left as it is, and every sqlite error
    later (a full disk, a read-only file) is raised as one too."""

    def __init__(self, path: str | os.PathLike, *, readonly: bool = False,
                 to_write: bool | None = None) -> None:
        self.path = Path(path)
        self.readonly = readonly
        # what an error advises: reading (another store), or writing (another --store path)
        reading = self._reading = readonly if to_write is None else not to_write
        self._db = _connect_readonly(self.path, reading) if readonly else self._connect()
        try:
            with self._errors():
                if readonly:
                    _identify(self.path, self._db, new_ok=False, readonly=reading)
                else:
                    self._prepare()
                self._refresh_columns()
        except BaseException:
            self._db.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        """A connection for writing, once an existing file is known to be a pimsim store (or
        empty): a file of another program is only ever read, and read-only."""
        path = self.path
        if path.exists() or path.is_symlink():
            if not path.is_file():
                kind = "a folder" if path.is_dir() else "not a regular file"
                raise StoreError(f"{path}: cannot be a results store ({kind}): {_advice(False)}")
            if path.stat().st_size:
                _sniff(path, readonly=False)
                with contextlib.closing(_connect_readonly(path)) as probe:
                    _identify(path, probe, new_ok=True, readonly=False)
        else:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"{path}: cannot create the results store's folder ({exc.strerror}): "
                    f"{_advice(False)}"
                ) from None
        try:
            return sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise _failure(path, exc, readonly=False) from None

    @contextlib.contextmanager
    def _errors(self):
        """sqlite's errors (and pandas' wrapping of them) as one :class:`StoreError`."""
        try:
            yield
        except sqlite3.Error as exc:
            raise _failure(self.path, exc, self._reading) from None
        except Exception as exc:
            pandas = sys.modules.get("pandas")  # no pandas imported: no pandas error
            if pandas is None or not isinstance(exc, pandas.errors.DatabaseError):
                raise
            cause = exc.__cause__
            if isinstance(cause, sqlite3.Error):
                raise _failure(self.path, cause, self._reading) from None
            raise StoreError(f"{self.path}: cannot read the results store ({exc})") from None

    def _prepare(self) -> None:
        """Check that the file is a store (or empty), switch it to WAL, complete the schema and
        record the format (the file's header and ``meta``)."""
        # an existing file was checked (read-only) before this connection was opened
        version, tables = _identify(self.path, self._db, new_ok=True, readonly=False, check=False)
        self._wal()
        self._db.execute("PRAGMA synchronous=NORMAL")
        if (
            version == STORE_VERSION
            and _ALL_TABLES <= tables
            and "training" in self._table_columns("accuracy")
        ):
            return
        with self._write():  # the schema is re-read under the write lock: creation may race
            version, had = _identify(
                self.path, self._db, new_ok=True, readonly=False, check=False
            )
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
            if version < STORE_VERSION:  # a new store, or one from before the format was kept
                from pimsim import __version__

                self._db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                self._db.execute(f"PRAGMA user_version = {STORE_VERSION}")
                record = {"format": "pimsim results store", "version": STORE_VERSION,
                          "written_by": f"pimsim {__version__}"}
                self._db.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('store', ?)", (json.dumps(record),)
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
        """One write transaction, begun with the write lock taken (``BEGIN IMMEDIATE``); an
        sqlite error (a full disk, a read-only file) rolls it back and is raised as a
        :class:`StoreError` (what earlier transactions committed stays)."""
        if self.readonly:
            raise StoreError(f"{self.path}: the results store is open read-only")
        with self._errors():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                raise

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
    @_reads
    def answered(self) -> set[str]:
        """Request keys already answered (a ``failed`` design is not an answer: it is retried)."""
        cur = self._db.execute(
            "SELECT r.request FROM requests r JOIN points p ON p.key = r.key "
            "WHERE p.status IS NOT 'failed'"
        )
        return {row[0] for row in cur}

    @_reads
    def accuracy_cache(self) -> dict[str, dict]:
        """The oracle's results by accuracy key."""
        cur = self._db.execute(f"SELECT key, {', '.join(ACCURACY_COLUMNS)} FROM accuracy")
        return {row[0]: dict(zip(ACCURACY_COLUMNS, row[1:], strict=True)) for row in cur}

    @_reads
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

    @_reads
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

    @_reads
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
    read-only; with ``sweep``, every design that sweep asked for. Raises :class:`StoreError`
    (a :class:`PimsimError`) for a missing file, one that is not a pimsim store, a damaged one
    or one of a newer format."""
    with ResultStore(path, readonly=True) as store:
        return store.frame(sweep)
