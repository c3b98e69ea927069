"""What every source reader shares: the pack-wide defaults and the reader result."""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from memos_cli import strictjson
from memos_cli.errors import MemosError, SourceError
from memos_cli.memory import Memory

#: Files larger than this are refused rather than read into memory.
MAX_SOURCE_BYTES = 512 << 20


@dataclass(frozen=True, kw_only=True)
class Defaults:
    """Governance and time defaults for memories whose source does not set them.

    ``now`` is the pack time (UTC); ``ttl`` becomes ``expires_at = created_at + ttl``.
    """

    now: datetime
    owner: str | None = None
    visibility: str = "private"
    readers: tuple[str, ...] = ()
    ttl: timedelta | None = None
    tags: tuple[str, ...] = ()

    def governance(self, created_at: datetime | None = None) -> dict[str, Any]:
        start = created_at or self.now
        return {
            "owner": self.owner,
            "visibility": self.visibility,
            "readers": self.readers,
            "expires_at": None if self.ttl is None else start + self.ttl,
            "tags": self.tags,
        }


@dataclass
class SourceResult:
    """The memories read from one file, with what provenance records of it."""

    path: str
    format: str
    sha256: str
    size: int
    memories: list[Memory] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_bytes(path: Path) -> bytes:
    """The bytes of a regular file that is not a symbolic link, at most ``MAX_SOURCE_BYTES``.

    The file is opened without following a link and without blocking (a FIFO with no writer
    would otherwise wait forever), then checked with ``fstat`` on the open descriptor, so what
    is checked is what is read.

    Raises:
        SourceError: a symbolic link, anything but a regular file (FIFO, socket, device,
            directory), a file over the limit, or an unreadable one.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        if e.errno == errno.ELOOP or path.is_symlink():
            raise SourceError("is a symbolic link; memos reads no source through a link "
                              "(name the file it points to)", path=path) from e
        raise SourceError(f"cannot read: {e.strerror}", path=path) from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SourceError("is not a regular file (a FIFO, socket, device or directory); "
                              "memos reads only regular files", path=path)
        if st.st_size > MAX_SOURCE_BYTES:
            raise SourceError(f"file is {st.st_size} bytes, over the {MAX_SOURCE_BYTES} byte "
                              "limit", path=path)
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_SOURCE_BYTES + 1)
    except OSError as e:
        raise SourceError(f"cannot read: {e.strerror}", path=path) from e
    finally:
        os.close(fd)
    if len(data) > MAX_SOURCE_BYTES:
        raise SourceError(f"file grew past the {MAX_SOURCE_BYTES} byte limit while read",
                          path=path)
    return data


def read_text(path: Path) -> str:
    """Read a UTF-8 file (a BOM is dropped) with :func:`read_bytes`. Raises ``SourceError``
    naming the problem."""
    data = read_bytes(path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SourceError(f"is not UTF-8 text ({e.reason} at byte {e.start})", path=path) from e


def load_json(path: Path, text: str) -> Any:
    """Parse JSON, naming line and column on error. Raises ``SourceError``."""
    try:
        return strictjson.loads(text)
    except json.JSONDecodeError as e:
        raise SourceError(f"malformed JSON at line {e.lineno} column {e.colno}: {e.msg}",
                          path=path) from e
    except strictjson.StrictJSONError as e:
        raise SourceError(f"JSON refused: {e}", path=path) from e


def json_lines(text: str, path: Path, error: type[MemosError] = SourceError
               ) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed object)`` for every non-blank line of JSONL ``text``.

    Lines end at ``\n`` only (``str.splitlines()`` would also split inside strings holding
    U+0085 or U+2028, which JSON writes unescaped); a trailing ``\r`` is dropped.

    Raises:
        ``error`` (default ``SourceError``): naming the line and column of malformed JSON.
    """
    for lineno, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        try:
            yield lineno, strictjson.loads(line)
        except json.JSONDecodeError as e:
            raise error(f"line {lineno}: malformed JSON at column {e.colno}: {e.msg}",
                        path=path) from e
        except strictjson.StrictJSONError as e:
            raise error(f"line {lineno}: JSON refused: {e}", path=path) from e


def make_memory(path: Path | str, where: str, content: str, **fields: Any) -> Memory:
    """``Memory.create`` that turns a schema violation into ``SourceError`` naming ``where``."""
    try:
        return Memory.create(content, **fields)
    except (ValueError, TypeError) as e:
        raise SourceError(f"{where}: {e}", path=path) from e
