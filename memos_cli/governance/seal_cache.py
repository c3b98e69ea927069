"""Seals this machine has verified already: ``MEMOS_HOME/seals.bin``, so that reading a sealed
vault whole (``vault ls``, ``dump``, a load's checks) does not verify the same ECDSA seals
again on every command (spec §16.5 leaves a reader free to remember them).

The file is a run of 16-byte entries, each the first 16 bytes of SHA-256 over a seal, a NUL
and the message it signs (:func:`memos_cli.governance.seal.message`): an entry says "this seal
verified over exactly this row", and a row or seal changed in any byte misses. An entry only
counts while its signer is still known (a key removed from the trust store is checked again,
and refused). It is a cache: a file memos cannot use (a link, a FIFO, a folder, unreadable)
is a warning and a miss, a torn last entry is ignored, and past :data:`MAX_BYTES` the older
half is dropped. Whoever can write ``MEMOS_HOME`` can add entries, as they can add trusted
keys.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat

from memos_cli.atomic import atomic_write_bytes
from memos_cli.config import home
from memos_cli.localfiles import read_small

FILE = "seals.bin"
ENTRY = 16
#: At most this many bytes of entries are kept (4,194,304 seals).
MAX_BYTES = 64 << 20
#: A table read checks seals through the cache from this many rows; fewer are verified.
MIN_ROWS = 256

_log = logging.getLogger("memos")


def key(seal: str, signed: bytes) -> bytes:
    """The entry of ``seal`` over the message ``signed``."""
    return hashlib.sha256(seal.encode("utf-8", "surrogatepass") + b"\0" + signed).digest()[
        :ENTRY]


class Verified:
    """The entries read from ``MEMOS_HOME/seals.bin``, and those this command adds."""

    def __init__(self) -> None:
        self.path = home() / FILE
        self.new: list[bytes] = []
        try:
            data = read_small(self.path, MAX_BYTES)
        except FileNotFoundError:
            data = b""
        except OSError as e:
            _log.warning("warning: %s %s; seals are verified again (remove it to use the "
                         "cache)", self.path, e.strerror or e)
            data = b""
        whole = len(data) - len(data) % ENTRY
        self.known = {data[i:i + ENTRY] for i in range(0, whole, ENTRY)}
        self._data = data[:whole]

    def __contains__(self, entry: bytes) -> bool:
        return entry in self.known

    def add(self, entry: bytes) -> None:
        if entry not in self.known:
            self.known.add(entry)
            self.new.append(entry)

    def save(self) -> None:
        """Append the entries this command verified (one ``write``; past :data:`MAX_BYTES`
        the file is rewritten with its newer half). A failure is a warning."""
        if not self.new:
            return
        added = b"".join(self.new)
        self.new = []
        try:
            if len(self._data) + len(added) > MAX_BYTES:
                keep = self._data[len(self._data) // 2 // ENTRY * ENTRY:]
                atomic_write_bytes(self.path, keep + added, mode=0o600)
                self._data = keep + added
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
                         | os.O_NONBLOCK, 0o600)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise OSError(errno.EINVAL, "is not a regular file")
                os.write(fd, added)
            finally:
                os.close(fd)
            self._data += added
        except OSError as e:
            _log.warning("warning: cannot remember verified seals in %s (%s)", self.path,
                         e.strerror or e)
