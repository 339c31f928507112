"""Atomic file writes: a temporary file beside the target, then :func:`os.replace`.

A write that is interrupted (an exception, a full disk, a SIGKILL) never leaves a
partial file under the target's name and keeps any file that was there before:
readers see either the old or the new contents, never a mixture. Temporary files are
named ``.<name>.<random>.tmp`` in the target's folder (the same file system, so the
rename is atomic); an exception removes them, a kill may leave one behind, which
:func:`remove_stale` clears.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "remove_stale"]


@contextmanager
def atomic_path(path: str | os.PathLike, name: str = "path") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` if the block succeeds.

    Parameters
    ----------
    path : path
        The file to (re)write. Its folder must exist.
    name : str
        Argument name for error messages.

    Yields
    ------
    pathlib.Path
        Where the caller writes (an empty file exists there already).

    Raises
    ------
    ValueError
        If the folder of ``path`` does not exist.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"{name}: directory {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, name: str = "path") -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_path(path, name) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, name: str = "path") -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_path(path, name) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def remove_stale(folder: str | os.PathLike) -> int:
    """Delete temporary files that killed writes left in ``folder``; returns how many."""
    n = 0
    for stale in Path(folder).glob(".*.tmp"):
        stale.unlink(missing_ok=True)
        n += 1
    return n
