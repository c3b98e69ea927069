"""Open, write, verify and re-index a ``.memcube`` directory (spec/memcube.md).

This module ties the per-section modules together; it knows nothing of models: vectors and
the embedder's description come in from the caller.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from memos_cli.cube import layout
from memos_cli.cube.chunks import ChunkSet, check_sets
from memos_cli.cube.index import Index, ReaderRows, index_text
from memos_cli.cube.index_file import (
    INDEX_FILE,
    index_entry,
    open_index,
    write_index_file,
)
from memos_cli.cube.index_file import check_files as check_index_files
from memos_cli.cube.index_file import list_files as list_index_files
from memos_cli.cube.listing import check_closed
from memos_cli.cube.manifest import (
    FORMAT_VERSION,
    FileEntry,
    Manifest,
    read_manifest,
    write_manifest,
)
from memos_cli.cube.memories import content_digest, read_memories, write_memories
from memos_cli.cube.signature import sign_cube
from memos_cli.digest import sha256_file
from memos_cli.errors import FormatError, IntegrityError, UsageError
from memos_cli.memory import Memory, format_time
from memos_cli.version import __version__


class Cube:
    """An opened cube. Opening checks the manifest, paths and the memories file digest; it
    never runs code from the cube and never writes to it.

    Raises (from the constructor):
        CubeNotFoundError, FormatError, IntegrityError.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = layout.require_cube_dir(path)
        self._index: Index | None = None
        self.manifest: Manifest = read_manifest(self.path)
        self.files = layout.scan_members(self.path)
        m = self.manifest
        for entry in self.segments:
            layout.check_member(self.path, entry["path"], what="KV segment path")
        for f in (m.lora or {}).get("files", []):
            layout.check_member(self.path, f["path"], what="LoRA file path")
        if m.memories_file is None or m.index is None:  # a KV-only cube: no plaintext tier
            if m.version >= (1, 5):
                check_closed(self.path, self.files, m.listed_files())
            return
        self.memories_path = layout.check_member(self.path, m.memories_file.path, what="file")
        self.index_path = layout.check_member(self.path, m.index["path"], what="index path")
        if m.index_files is not None:
            check_index_files(self.path, m.index["path"], m.index_files, digests=False)
        elif m.version >= (1, 4):
            raise FormatError("manifest has no 'index_files' (required from format 1.4)",
                              path=self.path / layout.MANIFEST)
        if m.version >= (1, 5):
            check_closed(self.path, self.files, m.listed_files())
        if not self.memories_path.is_file():
            raise IntegrityError(f"{m.memories_file.path} is listed in the manifest but missing",
                                 path=self.path)
        size = self.memories_path.stat().st_size
        if size != m.memories_file.size or sha256_file(self.memories_path) != \
                m.memories_file.sha256:
            raise IntegrityError(
                "file does not match the digest in manifest.json (changed or truncated)",
                path=self.memories_path,
            )

    @property
    def signed(self) -> bool:
        return (self.path / layout.SIGNATURE).is_file()

    @property
    def has_plaintext(self) -> bool:
        return self.manifest.memories_file is not None

    def require_plaintext(self) -> None:
        if not self.has_plaintext:
            held = " and ".join(t for t in ("activation", "parameter") if t in self.manifest.tiers)
            raise UsageError(f"cube has no plaintext tier (it holds only the {held} tier); "
                             "restore it with `memos convert CUBE --to text`", path=self.path)

    @cached_property
    def memories(self) -> list[Memory]:
        """Every memory, in file order.

        Raises:
            FormatError: a bad row. UsageError: the cube has no plaintext tier.
        """
        self.require_plaintext()
        return read_memories(self.memories_path, validity=self.manifest.version >= (1, 7))

    @cached_property
    def by_id(self) -> dict[str, Memory]:
        return {m.id: m for m in self.memories}

    def index(self) -> Index:
        """The search index, opened once. Raises ``FormatError`` if missing or unreadable."""
        if self._index is not None:
            return self._index
        self.require_plaintext()
        assert self.manifest.index is not None and self.manifest.embedding is not None
        self._index = open_index(self.path, self.manifest.index,
                                 int(self.manifest.embedding["dimension"]),
                                 self.manifest.index_files)
        return self._index

    @property
    def segments(self) -> list[dict[str, Any]]:
        """The manifest's KV segment entries (empty without an activation tier)."""
        return list((self.manifest.kv or {}).get("segments", []))

    def segment_path(self, entry: dict[str, Any]) -> Path:
        """Path of a listed KV segment, checked to be inside the cube, present, and of the
        listed size (the digest is checked by :func:`verify`).

        Raises:
            FormatError: unsafe path. IntegrityError: missing or of another size.
        """
        p = layout.check_member(self.path, entry["path"], what="KV segment path")
        if not p.is_file():
            raise IntegrityError(f"KV segment {entry['path']} is listed in the manifest but "
                                 "missing", path=self.path)
        if p.stat().st_size != entry["size"]:
            raise IntegrityError(f"size {p.stat().st_size} differs from the manifest's "
                                 f"{entry['size']} (changed or truncated)", path=p)
        return p

    @cached_property
    def chunk_sets(self) -> list[ChunkSet]:
        """The manifest's KV chunk sets, checked against the cube (spec §12): paths, ids,
        and that every chunk's memories are in the cube with the content its key names.

        Raises:
            FormatError, IntegrityError: see ``cube.chunks.check_sets``.
        """
        sets = [ChunkSet.from_dict(d) for d in (self.manifest.kv_chunks or {}).get("sets", [])]
        if sets:
            hashes = {m.id: m.content_hash for m in self.memories} if self.has_plaintext \
                else None
            check_sets(self.path, sets, hashes)
        return sets

    @property
    def has_lora(self) -> bool:
        return self.manifest.lora is not None

    @property
    def lora_dir(self) -> Path:
        """``CUBE/lora``, whose files are checked to be present with the listed sizes (digests
        by :func:`verify`).

        Raises:
            UsageError: the cube has no parameter tier. IntegrityError: a file missing or of
            another size.
        """
        if self.manifest.lora is None:
            raise UsageError("cube has no parameter tier (LoRA adapter); build one with "
                             "`memos convert CUBE --to lora`", path=self.path)
        for f in self.manifest.lora["files"]:
            p = layout.check_member(self.path, f["path"], what="LoRA file path")
            if not p.is_file():
                raise IntegrityError(f"{f['path']} is listed in the manifest but missing",
                                     path=self.path)
            if p.stat().st_size != f["size"]:
                raise IntegrityError(f"size {p.stat().st_size} differs from the manifest's "
                                     f"{f['size']} (changed or truncated)", path=p)
        return self.path / layout.LORA_DIR

    def memory_ids(self) -> list[str]:
        """The ids of every memory the cube holds in any tier, plaintext first."""
        if self.has_plaintext:
            return [m.id for m in self.memories]
        ids = [i for e in self.segments for i in e["memory_ids"]]
        ids += (self.manifest.lora or {}).get("memory_ids", [])
        return list(dict.fromkeys(ids))

    def size_bytes(self) -> int:
        return sum((self.path / f).stat().st_size for f in self.files)


def open_cube(path: str | Path) -> Cube:
    """Open the cube at ``path``; see :class:`Cube`."""
    return Cube(path)


@dataclass(frozen=True, kw_only=True)
class CubeSpec:
    """What :func:`write_cube` needs besides the memories and vectors."""

    name: str
    description: str = ""
    created_at: datetime
    embedding: dict[str, Any]
    sources: Sequence[dict[str, Any]] = ()
    pack_options: dict[str, Any] = field(default_factory=dict)
    parents: Sequence[str] = ()
    cube_id: str | None = None
    #: the MemReaders' records for the manifest (spec §6.1) and the index rows they made
    readers: Sequence[dict[str, Any]] = ()
    reader_rows: ReaderRows | None = None


def write_cube(
    target: str | Path,
    memories: Sequence[Memory],
    vectors: np.ndarray,
    spec: CubeSpec,
    *,
    key: str | Path | None = None,
    force: bool = False,
    extra_files: dict[str, bytes] | None = None,
) -> Path:
    """Write a complete cube to ``target`` atomically and return its path.

    Args:
        memories: in the order they are stored.
        vectors: ``[len(memories), dim] float32``, L2-normalised embeddings of
            ``m.render()`` for each memory, made by the embedder ``spec.embedding`` describes.
        key: EC P-256 private key (PEM) to sign with; ``None`` leaves the cube unsigned.
        force: replace an existing cube at ``target``.
        extra_files: further top-level files (name -> bytes), e.g. a dump's
            ``access_log.jsonl`` (spec §8.6); covered by the signature.

    Raises:
        CubeExistsError: ``target`` exists and ``force`` is false (checked before any work).
        KeyFileError: the key is not usable.
    """
    if vectors.shape[0] != len(memories):
        raise ValueError("one vector per memory is needed")
    with layout.atomic_directory(target, force=force) as tmp:
        plain = write_plaintext(tmp, memories, vectors, spec.reader_rows)
        attachments = []
        for name, data in sorted((extra_files or {}).items()):
            layout.check_member(tmp, name, what="extra file")
            if "/" in name:
                raise ValueError(f"attachment {name!r} is not a top-level file")
            layout.atomic_write_bytes(tmp / name, data)
            attachments.append({"path": name, "sha256": sha256_file(tmp / name),
                                "size": len(data)})
        manifest = Manifest(
            format_version=CURRENT,
            cube_id=spec.cube_id or content_cube_id(plain["content_digest"]),
            name=spec.name,
            description=spec.description,
            created_at=format_time(spec.created_at) or "",
            producer={"tool": "memos", "version": __version__},
            tiers=("plaintext",),
            counts={"memories": len(memories), "sources": len(spec.sources)},
            memories_file=FileEntry(**plain["files"]["memories"]),
            index=plain["index"],
            index_files=plain["index_files"],
            content_digest=plain["content_digest"],
            attachments=attachments or None,
            readers=[dict(r) for r in spec.readers] or None,
            embedding=dict(spec.embedding),
            provenance={
                "sources": [dict(s) for s in spec.sources],
                "pack_options": dict(spec.pack_options),
                "parents": list(spec.parents),
            },
        )
        Manifest.from_dict(manifest.to_dict())  # what we write must pass our own reader
        write_manifest(tmp, manifest)
        layout.normalize_modes(tmp)
        if key is not None:
            sign_cube(tmp, key, name=Path(target).name)
    return Path(target)


CURRENT = f"{FORMAT_VERSION[0]}.{FORMAT_VERSION[1]}"
#: The UUIDv5 namespace of content-derived cube ids (spec §5).
CUBE_NAMESPACE = uuid.UUID("b5c0a7e2-6d1f-5c3a-8e47-6d656d637562")


def content_cube_id(digest: str) -> str:
    """The cube id memos gives a cube packed without ``--cube-id``: the UUIDv5 of its
    ``content_digest`` string in :data:`CUBE_NAMESPACE`, so the same memories give the same
    id on every machine (spec §5)."""
    return str(uuid.uuid5(CUBE_NAMESPACE, digest))


def write_plaintext(directory: Path, memories: Sequence[Memory], vectors: np.ndarray,
                    reader_rows: ReaderRows | None = None) -> dict[str, Any]:
    """Write the plaintext tier (``memories.arrow`` and the index) into ``directory``.

    Returns the manifest's ``files`` and ``index`` entries for it. ``vectors`` as in
    :func:`write_cube`; ``reader_rows`` (embedded) are added to the index.
    """
    mem_path = directory / layout.MEMORIES
    write_memories(mem_path, memories)
    write_index_file(directory / INDEX_FILE, [m.id for m in memories],
                     [index_text(m) for m in memories], vectors, reader_rows)
    return {"files": {"memories": {"path": layout.MEMORIES, "sha256": sha256_file(mem_path),
                                   "size": mem_path.stat().st_size}},
            "index": index_entry(),
            "index_files": list_index_files(directory, INDEX_FILE),
            "content_digest": content_digest(memories)}
