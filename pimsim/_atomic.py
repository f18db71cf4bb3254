"""Atomic file writes: a file is either its old content or its complete new content, never a
half-written mix.

:func:`atomic_write` writes to a temporary file in the target's folder, flushes it and syncs it to
disk, then renames it over the target with :func:`os.replace` (atomic on POSIX and Windows within
one file system). When the writing fails (a full disk, a file-size limit, an error in the writer,
an interrupt) the temporary file is removed and the target is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["atomic_write"]

_MODES = ("w", "wb")


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new, empty file beside ``path`` (hidden name ending in ``.tmp``), opened for writing
    with the permissions a plain ``open`` would give it (the umask applies)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(temp, flags, 0o666), temp
        except FileExistsError:  # pragma: no cover - a 32-bit random name already taken
            continue


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable where the platform allows it (POSIX); best effort."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open a folder
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **open_kwargs) -> Iterator[IO]:
    """Context manager: a file object to write the new content of ``path`` to.

    ``mode`` is ``"wb"`` (bytes) or ``"w"`` (text; ``open_kwargs`` such as ``encoding`` and
    ``newline`` are passed to :func:`open`). The content goes to a temporary file in ``path``'s
    folder (created if missing); when the ``with`` block ends without an exception, the file is
    flushed, synced to disk and renamed over ``path``, keeping an existing ``path``'s permission
    bits. When the block raises, the temporary file is removed, ``path`` is untouched and the
    exception propagates. A symbolic link at ``path`` is replaced by a regular file::

        with atomic_write("run.csv", "w", newline="") as f:
            csv.writer(f).writerows(rows)
    """
    if mode not in _MODES:
        raise ValueError(f"atomic_write mode {mode!r} is not one of {_MODES}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = _create_temp(path)
    try:
        try:
            f = os.fdopen(fd, mode, **open_kwargs)
        except BaseException:
            os.close(fd)
            raise
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(OSError):  # keep the permissions of the file being replaced
            os.chmod(temp, stat.S_IMODE(os.stat(path).st_mode))
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _sync_folder(path.parent)
