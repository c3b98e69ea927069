"""Atomic writes of single files (spec §3): written beside the target, flushed with
``fsync`` and renamed over it, so a reader sees the old file or the new one, never a part.
Floor 1: the config file, model caches and cubes all write through it
(:mod:`memos_cli.cube.layout` builds whole cube directories on top of it)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` atomically (temp file beside it, fsync, rename).

    ``mode`` defaults to 0666 less the umask; the file never exists with a wider mode.
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.chmod(tmp, (0o666 & ~_umask()) if mode is None else mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
