"""The KV chunk store under ``MEMOS_HOME``: per-memory KV chunks for memories used outside a
cube's own chunk sets, filled and emptied by the scheduler (spec/memcube.md §13.2).

Layout, keyed exactly like a cube's chunk sets (§12), so a chunk that ships in a cube is the
same file and is copied rather than computed::

    MEMOS_HOME/chunks/
      .lock                       held by one scheduler at a time
      <set-id>/set.json           the set: model, fingerprint digest, layout, dtype, group
      <set-id>/prefix.safetensors
      <set-id>/<key>.safetensors  key = the memory's content hash (64 hex digits)

Only ``group = "memory"`` sets live here. Files are written to a temporary name and renamed,
so a reader sees a whole chunk or none; a chunk evicted while a run reads the set is simply a
miss for that run.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memos_cli import strictjson
from memos_cli.cube.chunks import PREFIX_FILE, layout_digest, set_id
from memos_cli.cube.layout import atomic_write_bytes
from memos_cli.errors import FormatError
from memos_cli.localfiles import plain_dir, read_small, regular
from memos_cli.lockfile import exclusive
from memos_cli.models.chat import memos_home

FORMAT = "memos-chunk-store"
VERSION = 1
SET_FILE = "set.json"
GROUP = "memory"
_KEY = re.compile(r"[0-9a-f]{64}")


def default_root() -> Path:
    """``MEMOS_HOME/chunks``."""
    return memos_home() / "chunks"


@dataclass(frozen=True)
class StoreSet:
    """One chunk set of the store: its directory and what it was made with."""

    id: str
    path: Path
    model: str
    model_fingerprint_sha256: str
    layout_sha256: str
    storage_dtype: str

    @property
    def prefix(self) -> Path:
        return self.path / PREFIX_FILE

    def chunk(self, key: str) -> Path:
        return self.path / f"{key}.safetensors"

    def has(self, key: str) -> bool:
        """Whether the chunk is stored: a regular file (a link is never followed)."""
        try:
            regular(self.chunk(key))
            return True
        except OSError:
            return False

    def stored(self) -> dict[str, int]:
        """Every stored chunk key -> its size in bytes (regular files only)."""
        out = {}
        for p in self.path.glob("*.safetensors"):
            if _KEY.fullmatch(p.stem):
                with contextlib.suppress(OSError):  # evicted meanwhile, or not a file
                    out[p.stem] = regular(p).st_size
        return out

    def bytes(self) -> int:
        """Bytes of the prefix and every chunk."""
        pre = self.prefix.stat().st_size if self.prefix.is_file() else 0
        return pre + sum(self.stored().values())


class ChunkStore:
    """The chunk store at ``root`` (default ``MEMOS_HOME/chunks``).

    Raises (from the methods):
        FormatError: a ``set.json`` that is unreadable, of another format, a newer version, or
            that does not match its directory's name.
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()

    def set_for(self, fingerprint_sha256: str, layout: dict[str, Any],
                storage_dtype: str) -> str:
        return set_id(fingerprint_sha256, layout_digest(layout), storage_dtype, GROUP)

    def open_set(self, sid: str) -> StoreSet | None:
        """The set ``sid`` if the store has it."""
        meta_path = self.root / sid / SET_FILE
        if not os.path.lexists(meta_path):
            return None
        try:
            if not plain_dir(self.root / sid):
                raise OSError(errno.ELOOP, "the set's folder is a link or not a folder")
            meta = strictjson.loads(read_small(meta_path, 1 << 20))
        except (OSError, ValueError) as e:
            raise FormatError(f"unreadable chunk-store set: {e}", path=meta_path) from e
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise FormatError("not a memos chunk-store set", path=meta_path)
        if not isinstance(meta.get("version"), int) or meta["version"] > VERSION:
            raise FormatError(f"chunk-store set version {meta.get('version')!r} is newer than "
                              f"this memos reads ({VERSION})", path=meta_path)
        try:
            s = StoreSet(sid, self.root / sid, str(meta["model"]),
                         str(meta["model_fingerprint_sha256"]), str(meta["layout_sha256"]),
                         str(meta["storage_dtype"]))
        except KeyError as e:
            raise FormatError(f"chunk-store set lacks {e.args[0]!r}", path=meta_path) from e
        if set_id(s.model_fingerprint_sha256, s.layout_sha256, s.storage_dtype, GROUP) != sid:
            raise FormatError("chunk-store set does not match its directory's id",
                              path=meta_path)
        return s

    def create_set(self, model: str, fingerprint_sha256: str, layout: dict[str, Any],
                   storage_dtype: str) -> StoreSet:
        """The set for this model, layout and dtype, made (without a prefix) if missing."""
        sid = self.set_for(fingerprint_sha256, layout, storage_dtype)
        found = self.open_set(sid)
        if found is not None:
            return found
        d = self.root / sid
        if os.path.lexists(d) and not plain_dir(d):
            raise FormatError("chunk-store set is a link or not a folder; memos writes only "
                              "into folders of its own", path=d)
        d.mkdir(parents=True, exist_ok=True)
        meta = {"format": FORMAT, "version": VERSION, "id": sid, "model": model,
                "model_fingerprint_sha256": fingerprint_sha256,
                "layout_sha256": layout_digest(layout), "storage_dtype": storage_dtype,
                "group": GROUP}
        atomic_write_bytes(d / SET_FILE, (json.dumps(meta, indent=1, sort_keys=True)
                                          + "\n").encode("utf-8"))
        found = self.open_set(sid)
        assert found is not None
        return found

    def sets(self) -> list[StoreSet]:
        """Every readable set (others raise)."""
        if not self.root.is_dir():
            return []
        out = []
        for d in sorted(self.root.iterdir()):
            if d.is_dir() and not d.is_symlink() and (d / SET_FILE).is_file():
                s = self.open_set(d.name)
                if s is not None:
                    out.append(s)
        return out

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """One scheduler at a time (an exclusive ``fcntl`` lock on ``.lock``; a second one is
        refused, not queued). Runs read without it."""
        return exclusive(self.root, "another memos schedule is changing the chunk store")


def write_atomic(target: Path, write: Any) -> int:
    """Call ``write(tmp_path)`` on a temporary file beside ``target`` and rename it to
    ``target``; returns the size in bytes. No fsync: the store is a cache, and a chunk that a
    crash left short is read as a miss (spec §13.2), so thousands of chunks are not flushed
    one by one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target.stat().st_size


def copy_atomic(src: Path, target: Path) -> int:
    """Copy ``src`` to ``target`` atomically; returns the size in bytes."""
    return write_atomic(target, lambda tmp: shutil.copyfile(src, tmp))


def evict(s: StoreSet, key: str) -> int:
    """Remove one chunk; returns the bytes freed (0 when it was already gone)."""
    p = s.chunk(key)
    try:
        size = p.stat().st_size
        p.unlink()
    except FileNotFoundError:
        return 0
    return size
