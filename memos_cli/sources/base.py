"""What every source reader shares: the pack-wide defaults and the reader result."""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, BinaryIO

from memos_cli import strictjson
from memos_cli.errors import MemosError, SourceError
from memos_cli.memory import Memory

#: Largest source streamed line by line (JSONL); larger files are refused.
MAX_SOURCE_BYTES = 512 << 20
#: Largest source read whole (JSON documents, Letta agent files, text and Markdown): its parse
#: tree costs several times its size, so the limit is lower than for streamed sources.
MAX_DOCUMENT_BYTES = 64 << 20
#: Longest line of a streamed source.
MAX_LINE_BYTES = 4 << 20
#: Most memories one ``read_sources`` call (one pack or import) may hold: each costs about
#: 9 KiB of memory until the cube is written (README, "Hostile input"), so the count bounds
#: the peak for inputs of many tiny memories.
MAX_MEMORIES = 500_000

_COUNT: ContextVar[list[int]] = ContextVar("memos_memory_count")


@contextmanager
def memory_budget(limit: int = MAX_MEMORIES) -> Iterator[None]:
    """Within this block, :meth:`SourceResult.add` refuses memory number ``limit + 1``."""
    token = _COUNT.set([0, limit])
    try:
        yield
    finally:
        _COUNT.reset(token)


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
    #: read files without an extension as this kind (``text``, ``markdown``, ``rst``); ``None``
    #: skips them in a directory walk and refuses them named directly
    extensionless: str | None = None
    #: absolute source paths are recorded relative to this directory (default: the working
    #: directory); one outside it, relative to the parent of the path given
    base: Path | None = None
    #: the text encoding of the source files (``--encoding``; any Python codec name)
    encoding: str = "utf-8"
    #: a file that cannot be read (``--skip-unreadable``) is left out, reported and counted,
    #: instead of failing the whole pack
    skip_unreadable: bool = False

    def governance(self, created_at: datetime | None = None) -> dict[str, Any]:
        start = created_at or self.now
        expires = None
        if self.ttl is not None:
            try:
                expires = start + self.ttl
            except OverflowError:  # past year 9999: the last representable moment
                expires = datetime.max.replace(tzinfo=timezone.utc)
        return {
            "owner": self.owner,
            "visibility": self.visibility,
            "readers": self.readers,
            "expires_at": expires,
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

    def add(self, memory: Memory) -> None:
        """Append ``memory``. Raises ``SourceError`` (naming this file) when the enclosing
        :func:`memory_budget` is spent."""
        count = _COUNT.get(None)
        if count is not None:
            count[0] += 1
            if count[0] > count[1]:
                raise SourceError(f"more than {count[1]} memories in one pack or import; "
                                  "split the sources into several cubes", path=self.path)
        self.memories.append(memory)


@contextmanager
def open_source(path: Path, limit: int = MAX_SOURCE_BYTES) -> Iterator[BinaryIO]:
    """Open a source for reading: a regular file, not a symbolic link, at most ``limit`` bytes.

    The file is opened without following a link and without blocking (a FIFO with no writer
    would otherwise wait forever), then checked with ``fstat`` on the open descriptor, so what
    is checked is what is read.

    Raises:
        SourceError: a symbolic link, anything but a regular file (FIFO, socket, device,
            directory), a file over ``limit``, or an unreadable one.
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
        if st.st_size > limit:
            raise SourceError(f"file is {st.st_size} bytes, over the {limit} byte limit "
                              "for this kind of source", path=path)
        os.set_blocking(fd, True)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        try:
            yield f
        except OSError as e:
            raise SourceError(f"cannot read: {e.strerror}", path=path) from e


def read_bytes(path: Path, limit: int = MAX_DOCUMENT_BYTES) -> bytes:
    """The bytes of a source read whole (see :func:`open_source`), at most ``limit``.

    Raises:
        SourceError: as :func:`open_source`, or the file grew past ``limit`` while read.
    """
    with open_source(path, limit) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise SourceError(f"file grew past the {limit} byte limit while read", path=path)
    return data


def read_lines(path: Path, limit: int = MAX_LINE_BYTES) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of each line of a UTF-8 source, streamed: at most one line of
    at most ``limit`` bytes is held at a time. Lines end at ``\n``; a trailing ``\r`` and a
    leading BOM are dropped.

    Raises:
        SourceError: as :func:`open_source` (up to ``MAX_SOURCE_BYTES``), a line over
            ``limit`` bytes, or a line that is not UTF-8 (naming its number).
    """
    with open_source(path) as f:
        lineno = 0
        read = 0
        while True:
            raw = f.readline(limit + 1)
            if not raw:
                return
            lineno += 1
            read += len(raw)
            if read > MAX_SOURCE_BYTES:
                raise SourceError(f"file grew past the {MAX_SOURCE_BYTES} byte limit while "
                                  "read", path=path)
            if len(raw) > limit and not raw.endswith(b"\n"):
                raise SourceError(f"line {lineno}: longer than the {limit} byte line limit",
                                  path=path)
            if lineno == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            try:
                line = raw.decode(ENCODING.get())
            except UnicodeDecodeError as e:
                raise SourceError(f"line {lineno}: not {_shown(ENCODING.get())} text "
                                  f"({e.reason} at byte {e.start} of the line; "
                                  f"{ENCODING_HINT})", path=path) from e
            yield lineno, line.removesuffix("\n").removesuffix("\r")


#: The encoding source files are read in (``Defaults.encoding``, set by
#: :func:`memos_cli.sources.read_sources` for the files it reads).
ENCODING: ContextVar[str] = ContextVar("memos_source_encoding", default="utf-8")
ENCODING_HINT = "give --encoding, e.g. --encoding latin-1, or --skip-unreadable"


def read_text(path: Path) -> str:
    """Read a text file in :data:`ENCODING` (UTF-8 unless a pack says otherwise; a UTF-8 BOM
    is dropped) with :func:`read_bytes`. Raises ``SourceError`` naming the problem."""
    data = read_bytes(path)
    encoding = ENCODING.get()
    try:
        return data.decode("utf-8-sig" if _shown(encoding) == "UTF-8" else encoding)
    except UnicodeDecodeError as e:
        raise SourceError(f"is not {_shown(encoding)} text ({e.reason} at byte {e.start}; "
                          f"{ENCODING_HINT})", path=path) from e


def _shown(encoding: str) -> str:
    """An encoding's name as messages give it: ``UTF-8`` for any spelling of it."""
    return "UTF-8" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding


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
    lines = ((n, line.removesuffix("\r")) for n, line in enumerate(text.split("\n"), start=1))
    return parse_lines(lines, path, error)


def parse_lines(lines: Iterable[tuple[int, str]], path: Path,
                error: type[MemosError] = SourceError) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed object)`` for every non-blank line of ``lines`` (as given by
    :func:`read_lines`), parsed with :mod:`memos_cli.strictjson`.

    Raises:
        ``error`` (default ``SourceError``): naming the line and column of malformed JSON.
    """
    for lineno, line in lines:
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
