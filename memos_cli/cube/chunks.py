"""KV chunks on disk: one KV cache per memory or group of memories, content-addressed
(spec/memcube.md §12).

A *chunk set* holds, for one model, prompt layout and storage dtype, the KV cache of the shared
prompt prefix and of any number of chunks computed after it::

    kv/chunks/<set-id>/prefix.safetensors
    kv/chunks/<set-id>/<key>.safetensors

- ``set-id``: the first 16 hex digits of SHA-256 over the canonical JSON of
  ``{"group", "layout_sha256", "model_fingerprint_sha256", "storage_dtype"}``;
- ``key``: the 64 hex digits of a memory's content hash (spec §4.3) for a one-memory chunk, or
  of SHA-256 over the canonical JSON list of the members' content hashes for a group. The same
  memory under the same model therefore has the same file name in every cube (and in the chunk
  store under ``MEMOS_HOME``).

Both files are KV files of §10 (same tensors, dtypes and quantization) with ``kind`` =
``prefix`` or ``chunk``; a chunk's ``start_position`` is the prefix's length. This module
never loads a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memos_cli.cube import layout

if TYPE_CHECKING:
    from memos_cli.cube.kv import SegmentMeta

from memos_cli.cube.kv import check_segment
from memos_cli.digest import canonical_json, sha256_bytes
from memos_cli.errors import FormatError, IntegrityError

CHUNKS_DIR = f"{layout.KV_DIR}/chunks"
PREFIX_FILE = "prefix.safetensors"
#: How memories are grouped into chunks.
GROUPS = ("memory", "session", "section")


def set_id(model_fingerprint_sha256: str, layout_sha256: str, storage_dtype: str,
           group: str) -> str:
    """The 16-hex-digit id of a chunk set."""
    return sha256_bytes(canonical_json({
        "group": group, "layout_sha256": layout_sha256,
        "model_fingerprint_sha256": model_fingerprint_sha256,
        "storage_dtype": storage_dtype}))[7:23]


def chunk_key(content_hashes: list[str] | tuple[str, ...]) -> str:
    """64 hex digits naming the chunk of memories with these content hashes, in order."""
    if len(content_hashes) == 1:
        return content_hashes[0].removeprefix("sha256:")
    return sha256_bytes(canonical_json(list(content_hashes)))[7:]


def layout_digest(layout_obj: dict[str, Any]) -> str:
    return sha256_bytes(canonical_json(layout_obj))


def group_key(memory: Any, group: str) -> tuple[Any, ...]:
    """What memories of one chunk share: nothing (``memory``), the conversation and session,
    or the source file and section heading trail. A memory without them is alone."""
    if group == "session" and memory.session_id is not None:
        return ("session", memory.conversation_id, memory.session_id)
    if group == "section" and memory.section is not None:
        return ("section", memory.source_file, memory.section)
    return ("memory", memory.id)


def group_memories(memories: list[Any], group: str) -> list[list[Any]]:
    """``memories`` grouped by :func:`group_key`, groups and members in first-seen order."""
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for m in memories:
        groups.setdefault(group_key(m, group), []).append(m)
    return list(groups.values())


@dataclass(frozen=True)
class ChunkEntry:
    """A chunk as the manifest lists it."""

    key: str
    path: str
    sha256: str
    size: int
    tokens: int
    memory_ids: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "path": self.path, "sha256": self.sha256, "size": self.size,
                "tokens": self.tokens, "memory_ids": list(self.memory_ids)}


@dataclass(frozen=True)
class ChunkSet:
    """A chunk set as the manifest lists it (``kv.chunk_sets[i]``)."""

    id: str
    path: str
    model: str
    model_fingerprint_sha256: str
    layout_sha256: str
    storage_dtype: str
    group: str
    prefix: dict[str, Any]
    chunks: tuple[ChunkEntry, ...]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChunkSet:
        return cls(id=d["id"], path=d["path"], model=d["model"],
                   model_fingerprint_sha256=d["model_fingerprint_sha256"],
                   layout_sha256=d["layout_sha256"], storage_dtype=d["storage_dtype"],
                   group=d["group"], prefix=dict(d["prefix"]),
                   chunks=tuple(ChunkEntry(c["key"], c["path"], c["sha256"], c["size"],
                                           c["tokens"], tuple(c["memory_ids"]))
                                for c in d["chunks"]))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "path": self.path, "model": self.model,
                "model_fingerprint_sha256": self.model_fingerprint_sha256,
                "layout_sha256": self.layout_sha256, "storage_dtype": self.storage_dtype,
                "group": self.group, "prefix": dict(self.prefix),
                "chunks": [c.to_dict() for c in self.chunks]}

    @property
    def bytes(self) -> int:
        return int(self.prefix["size"]) + sum(c.size for c in self.chunks)

    def by_memory(self) -> dict[str, ChunkEntry]:
        """Each memory id -> the chunk holding it."""
        return {i: c for c in self.chunks for i in c.memory_ids}

    def files(self) -> list[dict[str, Any]]:
        """``{path, sha256, size}`` of the prefix and every chunk."""
        return [{k: self.prefix[k] for k in ("path", "sha256", "size")}] + [
            {"path": c.path, "sha256": c.sha256, "size": c.size} for c in self.chunks]


def check_sets(root: Path, sets: list[ChunkSet], hashes: dict[str, str] | None) -> None:
    """Structural checks of the manifest's chunk sets against the cube.

    ``hashes``: memory id -> content hash of the cube's memories (``None`` for a cube without
    a plaintext tier, which cannot use chunks). Every path must lie in its set's directory
    under the name its key gives, ids must be unique, and every chunk's memories must be in
    the cube with the content hashes its key was made from.

    Raises:
        FormatError: a path or id that breaks the layout. IntegrityError: a chunk of a memory
            the cube no longer holds, or whose memory changed.
    """
    where = root / layout.MANIFEST
    seen: set[str] = set()
    for s in sets:
        if s.id in seen or s.group not in GROUPS:
            raise FormatError(f"chunk set {s.id}: duplicate id or unknown group {s.group!r}",
                              path=where)
        seen.add(s.id)
        if s.id != set_id(s.model_fingerprint_sha256, s.layout_sha256, s.storage_dtype,
                          s.group):
            raise FormatError(f"chunk set id {s.id} does not match its model, layout, dtype "
                              "and group", path=where)
        base = f"{CHUNKS_DIR}/{s.id}"
        if s.path != base or s.prefix["path"] != f"{base}/{PREFIX_FILE}":
            raise FormatError(f"chunk set {s.id}: paths must be {base} and "
                              f"{base}/{PREFIX_FILE}", path=where)
        layout.check_member(root, s.prefix["path"], what="KV prefix path")
        keys: set[str] = set()
        for c in s.chunks:
            if c.key in keys or c.path != f"{base}/{c.key}.safetensors":
                raise FormatError(f"chunk {c.key[:16]}: listed twice or not at "
                                  f"{base}/<key>.safetensors", path=where)
            keys.add(c.key)
            layout.check_member(root, c.path, what="KV chunk path")
            if hashes is None:
                raise FormatError("a cube with KV chunks needs its plaintext tier (chunks "
                                  "follow retrieval)", path=where)
            gone = [i for i in c.memory_ids if i not in hashes]
            if gone:
                raise IntegrityError(f"KV chunk {c.key[:16]} holds memory {gone[0]}, which the "
                                     "cube no longer has", path=root / c.path)
            if chunk_key([hashes[i] for i in c.memory_ids]) != c.key:
                raise IntegrityError(f"KV chunk {c.key[:16]} was made from other content than "
                                     "its memories now have", path=root / c.path)


def check_chunk_header(path: Path, kind: str, storage_dtype: str) -> SegmentMeta:
    """Check a prefix or chunk file's header and tensor layout (no tensor data, see
    ``kv.check_segment``) and refuse one of another kind or dtype than its set lists; return
    its metadata. Raises ``FormatError``."""
    meta = check_segment(path)
    if meta.kind != kind or meta.storage_dtype != storage_dtype:
        raise FormatError(f"KV file is a {meta.storage_dtype} {meta.kind}, the manifest lists a "
                          f"{storage_dtype} {kind}", path=path)
    return meta


def member(root: Path, entry: dict[str, Any] | ChunkEntry, what: str) -> Path:
    """The file of a prefix or chunk entry, present with the listed size.

    Raises:
        FormatError: unsafe path. IntegrityError: missing or of another size.
    """
    rel = entry["path"] if isinstance(entry, dict) else entry.path
    size = entry["size"] if isinstance(entry, dict) else entry.size
    p = layout.check_member(root, rel, what=what)
    if not p.is_file():
        raise IntegrityError(f"{what} {rel} is listed in the manifest but missing", path=root)
    if p.stat().st_size != size:
        raise IntegrityError(f"size {p.stat().st_size} differs from the manifest's {size} "
                             "(changed or truncated)", path=p)
    return p
