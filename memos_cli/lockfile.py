"""One writer at a time: an exclusive, non-blocking ``fcntl`` lock on a ``.lock`` file."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from memos_cli.errors import UsageError


@contextlib.contextmanager
def exclusive(directory: Path, busy: str) -> Iterator[None]:
    """Hold ``directory/.lock`` exclusively for the block (the directory is made if missing).
    A second holder is refused at once, not queued; the kernel drops the lock when the
    process dies, so a kill never leaves it held.

    Raises:
        UsageError: ``busy``, naming ``directory``, when another process holds the lock.
    """
    import fcntl

    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a+b") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise UsageError(busy, path=directory) from e
        yield
