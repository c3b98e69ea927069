"""Reading memos's own state files (under ``MEMOS_HOME`` and in a vault), which anyone who can
write those directories may have replaced: a link is not followed, a FIFO or device is not
opened (it would block), and a file is read only up to a size. Floor 1.

Every refusal is an :class:`OSError`, so a caller that treats an unreadable cache as a miss
(``except OSError``) keeps doing so; callers that must trust the file (keys, config) turn it
into one line naming the file.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

#: Default size limit of :func:`read_small`.
SMALL = 16 << 20


def regular(path: str | Path, *, follow: bool = False) -> os.stat_result:
    """``lstat`` of ``path``, which must be a regular file (not a link, FIFO or device); with
    ``follow``, ``stat`` (a link to a regular file is accepted).

    Raises:
        FileNotFoundError: absent. OSError: a link (``ELOOP``) or not a regular file
            (``EINVAL``).
    """
    st = os.stat(path) if follow else os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise OSError(errno.ELOOP, "is a symbolic link, which memos does not follow", str(path))
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EINVAL, "is not a regular file", str(path))
    return st


def read_small(path: str | Path, limit: int = SMALL, *, follow: bool = False) -> bytes:
    """The bytes of the regular file ``path`` (see :func:`regular`), at most ``limit``.

    Raises:
        OSError: as :func:`regular`; over ``limit`` bytes (``EFBIG``); unreadable.
    """
    st = regular(path, follow=follow)
    if st.st_size > limit:
        raise OSError(errno.EFBIG, f"is over {limit} bytes", str(path))
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow else os.O_NOFOLLOW)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"is over {limit} bytes", str(path))
    return data


def plain_dir(path: str | Path) -> bool:
    """Whether ``path`` is a directory that is not a symbolic link."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def inside(path: str | Path, root: str | Path) -> bool:
    """Whether ``path``, with every link resolved, lies inside ``root`` (also resolved)."""
    return Path(path).resolve().is_relative_to(Path(root).resolve())
