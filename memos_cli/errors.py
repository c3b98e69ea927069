"""The exceptions of memos: one root, ``MemosError``, and one subclass per kind of failure.

Each subclass also inherits the matching built-in exception, so callers that do not know memos
can still catch ``FileNotFoundError`` or ``ValueError``. The CLI maps every ``MemosError`` to a
one-line message and its ``exit_code`` in one place (``memos_cli.cli.app``).
"""

from __future__ import annotations

from pathlib import Path

#: Longest error message shown; a value quoted from hostile input is cut to fit.
MAX_MESSAGE = 600


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` safe for one terminal line: control characters (newlines, escape sequences)
    written as ``\\xNN`` / ``\\uNNNN``, and cut to ``limit`` characters with a count of
    what was left out."""
    out = "".join(c if c.isprintable() or c == " " else
                  (f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}") for c in text)
    if len(out) > limit:
        out = out[:limit] + f"... ({len(out) - limit} more characters)"
    return out


class MemosError(Exception):
    """Root of every error memos raises on purpose.

    ``path`` names the file the problem is in, when there is one; ``str(err)`` is the one-line
    message shown to the user (``PATH: problem``).
    """

    exit_code = 1

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        self.message = one_line(message)
        self.path = None if path is None else str(path)
        super().__init__(f"{one_line(self.path)}: {self.message}" if self.path
                         else self.message)


class UsageError(MemosError, ValueError):
    """Options that contradict each other or name nothing usable."""

    exit_code = 2


class SourceError(MemosError, ValueError):
    """A source file that cannot be read into memories: missing, unsupported, malformed."""

    exit_code = 3


class EmptyCorpusError(SourceError):
    """The sources held no memory at all."""


class CubeNotFoundError(MemosError, FileNotFoundError):
    """The path is not an existing ``.memcube`` directory."""

    exit_code = 4


class CubeExistsError(MemosError, FileExistsError):
    """The target cube exists and ``force`` was not given."""

    exit_code = 5


class FormatError(MemosError, ValueError):
    """A cube file breaks the format spec: bad manifest, unknown version, unsafe path."""

    exit_code = 6


class IntegrityError(MemosError, ValueError):
    """A cube file does not match its recorded digest, or a forbidden file is present."""

    exit_code = 7


class SignatureError(MemosError, ValueError):
    """A signature is missing, malformed, made by another key, or does not cover the cube."""

    exit_code = 8


class TamperedError(SignatureError):
    """The signer's key verifies the signature, but the cube changed since it was signed."""


class KeyFileError(MemosError, ValueError):
    """A key file is missing, unreadable or not an EC P-256 PEM key."""

    exit_code = 9


class ModelNotFoundError(MemosError, FileNotFoundError):
    """A chat model or embedder is not available locally (memos never downloads)."""

    exit_code = 10


class ReaderError(MemosError, RuntimeError):
    """A MemReader cannot run (e.g. its model cannot generate)."""

    exit_code = 13


class EmbedderMismatchError(MemosError, ValueError):
    """The embedder given is not the one that built the cube's index."""

    exit_code = 11


class RemoteError(MemosError, OSError):
    """A registry or bucket that cannot be reached in time, refuses the request, or lacks
    the tag, digest or repository asked for (MemStore, spec §15)."""

    exit_code = 14


class DiskFullError(MemosError, OSError):
    """A write ran out of space (``ENOSPC``, ``EDQUOT``) or past the file-size limit
    (``EFBIG``). Every write is atomic, so nothing was changed."""

    exit_code = 12

#: What libraries that wrap the OS error (Arrow, Lance) put in their messages.
DISK_FULL_WORDS = ("No space left on device", "Disk quota exceeded", "File too large")


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) is a full disk, by errno or by the OS's words."""
    import errno

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT,
                                                         errno.EFBIG):
            return True
        if any(w in str(seen) for w in DISK_FULL_WORDS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
