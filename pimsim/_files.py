"""Reading the small files a user hands pimsim (checkpoint sidecars, training summaries):
regular files only, a size limit, one JSON object; every problem is the caller's error type
with the file named, what it is and what to do."""

from __future__ import annotations

import json
import stat
from pathlib import Path


def file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as a data file (missing, a directory, a FIFO, a device or a
    socket: only regular files are read, so nothing blocks or reads without end), or None."""
    try:
        mode = Path(path).stat().st_mode
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or type(exc).__name__})"
    if stat.S_ISDIR(mode):
        return "a directory, not a file"
    if not stat.S_ISREG(mode):
        return "not a regular file (a FIFO, device or socket): only regular files are read"
    return None


def json_kind(value) -> str:
    """What a JSON value is, for messages ("a list", "a string", ...)."""
    kinds = {list: "a list", str: "a string", bool: "a boolean", type(None): "null",
             dict: "an object"}
    return kinds.get(type(value), "a number")


def read_json_object(path, max_bytes: int, error: type[Exception], what: str,
                     remedy: str) -> dict:
    """The JSON object in ``path``, a regular file of at most ``max_bytes``; else ``error``
    with ``path: ...``: the file problem, or "not WHAT (why); REMEDY"."""
    path = Path(path)
    problem = file_problem(path)
    if problem is not None:
        raise error(f"{path}: {problem}")
    with path.open("rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise error(f"{path}: larger than {max_bytes // 2**20} MiB: not {what}; {remedy}")
    try:
        record = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise error(f"{path}: not valid JSON, so not {what} ({reason}); {remedy}") from None
    if not isinstance(record, dict):
        raise error(f"{path}: not {what} (a JSON object expected, not {json_kind(record)}); "
                    f"{remedy}")
    return record
