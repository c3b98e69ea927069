"""One writer at a time: an exclusive, non-blocking ``fcntl`` lock on a ``.lock`` file."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from memos_cli.errors import FormatError, UsageError


@contextlib.contextmanager
def exclusive(directory: Path, busy: str) -> Iterator[None]:
    """Hold ``directory/.lock`` exclusively for the block (the directory is made if missing).
    A second holder is refused at once, not queued; the kernel drops the lock when the
    process dies, so a kill never leaves it held.

    The lock file is opened without following a link and without blocking on a FIFO.

    Raises:
        UsageError: ``busy``, naming ``directory``, when another process holds the lock.
        FormatError: ``.lock`` is a link or not a regular file.
    """
    import fcntl

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / ".lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(errno.EINVAL, "is not a regular file")
    except OSError as e:
        raise FormatError(f".lock {e.strerror or e}; memos locks only a file of its own",
                          path=path) from e
    with os.fdopen(fd, "a+b") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise UsageError(busy, path=directory) from e
        yield
