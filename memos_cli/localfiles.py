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
from collections.abc import Iterator
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


def plain_files(root: str | Path) -> Iterator[tuple[Path, int]]:
    """``(path, size)`` of every regular file under the folder ``root``, walked without
    following links; nothing when ``root`` is absent or not a folder.

    Raises:
        OSError: ``root`` or an entry under it is a symbolic link (``ELOOP``) or a special
            file (``EINVAL``); ``filename`` names it.
    """
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise OSError(errno.ELOOP, "is a symbolic link", str(root))
    if not stat.S_ISDIR(st.st_mode):
        return
    stack = [Path(root)]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except FileNotFoundError:  # removed while walked (a writer's temporary folder)
            continue
        with entries:
            for e in entries:
                try:
                    if e.is_symlink():
                        raise OSError(errno.ELOOP, "is a symbolic link", e.path)
                    if e.is_dir(follow_symlinks=False):
                        stack.append(Path(e.path))
                    elif e.is_file(follow_symlinks=False):
                        yield Path(e.path), e.stat(follow_symlinks=False).st_size
                    elif os.path.lexists(e.path):  # gone, it is neither (DirEntry says)
                        raise OSError(errno.EINVAL, "is not a regular file", e.path)
                except FileNotFoundError:  # a file another writer renamed or removed
                    continue
