"""``convert --to kv``: memories -> a KV-cache segment in the cube. The pipeline behind
``memos convert``; the only place where a chat model meets the cube format."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memos_cli.cube import Cube, layout, open_cube
from memos_cli.cube.cube import check_writable, rewrite, write_plaintext
from memos_cli.cube.kv import STORAGE_DTYPES, SegmentMeta, read_meta, segment_id, write_segment
from memos_cli.cube.signature import check_private_key
from memos_cli.digest import sha256_file
from memos_cli.errors import UsageError
from memos_cli.memory import Memory
from memos_cli.models.chat import ChatModel
from memos_cli.models.embedder import Embedder
from memos_cli.models.fingerprint import fingerprint_digest
from memos_cli.tiers import kv
from memos_cli.tiers.plaintext import retrieve


def select_memories(cube: Cube, *, ids: list[str] | None = None, query: str | None = None,
                    top: int | None = None, embedder: Embedder | None = None) -> list[Memory]:
    """The memories of a segment, in prefix order.

    ``ids``: exactly these, in this order. ``query`` with ``top``: the top-N retrieved for the
    query, best first. Otherwise every memory, by priority (highest first), then file order.
    Expired memories are never included.

    Raises:
        UsageError: unknown ids, or options that contradict each other.
    """
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    live = [m for m in cube.memories if not m.expired(now)]
    if ids:
        if query:
            raise UsageError("give --ids or --query, not both")
        by_id = {m.id: m for m in live}
        unknown = [i for i in ids if i not in by_id]
        if unknown:
            raise UsageError(f"no live memory with id {', '.join(unknown[:3])} in {cube.path}")
        return [by_id[i] for i in ids]
    if query:
        if embedder is None:
            raise UsageError("--query needs the cube's embedder")
        return [r.memory for r in retrieve(cube, embedder, query, top or 10)]
    ordered = sorted(enumerate(live), key=lambda im: (-im[1].priority, im[0]))
    chosen = [m for _, m in ordered]
    return chosen[:top] if top else chosen


@dataclass
class ConvertReport:
    path: str
    segment_id: str
    memories: int
    tokens: int
    storage_dtype: str
    bytes: int
    build_s: float
    signed: bool

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "segment": self.segment_id, "memories": self.memories,
                "tokens": self.tokens, "storage_dtype": self.storage_dtype,
                "bytes": self.bytes, "bytes_per_token": round(self.bytes / self.tokens, 1),
                "build_s": round(self.build_s, 3), "signed": self.signed}


def convert_to_kv(path: str | Path, chat: ChatModel, memories: list[Memory], *,
                  storage_dtype: str = "float32", key: str | Path | None = None,
                  drop_text: bool = False) -> ConvertReport:
    """Precompute the KV cache of ``memories`` with ``chat`` and add it to the cube, atomically.

    A segment with the same id (same model, template, memories and dtype) is replaced. With
    ``key`` the cube is re-signed; without it an existing signature is removed, so the cube
    never carries a stale signature. ``drop_text`` removes the plaintext tier (memories.arrow
    and the index) afterwards, leaving a KV-only cube; it needs a segment of every memory.

    Raises:
        UsageError: unknown dtype, no memories, prefix longer than the model's context.
        FormatError: the cube is of a newer format version.
    """
    if storage_dtype not in STORAGE_DTYPES:
        raise UsageError(f"--dtype {storage_dtype!r} is not one of {', '.join(STORAGE_DTYPES)}")
    if not memories:
        raise UsageError("no memories selected for the KV segment")
    if key is not None:
        check_private_key(Path(key))
    cube = open_cube(path)
    check_writable(cube)  # before the prefill work
    if drop_text and {m.id for m in memories} != {m.id for m in cube.memories}:
        raise UsageError("--drop-text needs a KV segment of every memory in the cube "
                         "(select all memories, none of them expired)")
    t0 = time.perf_counter()
    meta, token_ids, layers = kv.build_segment(chat, memories, storage_dtype)
    build_s = time.perf_counter() - t0
    sid = segment_id(meta)
    rel = f"{layout.KV_DIR}/{sid}.safetensors"
    with rewrite(cube, key=key) as (tmp, raw):
        (tmp / layout.KV_DIR).mkdir(exist_ok=True)
        seg_path = tmp / rel
        write_segment(seg_path, meta, token_ids, layers)
        read_meta(seg_path)  # what we write must pass our own reader
        entry = segment_entry(sid, rel, seg_path, meta)
        segments = [s for s in (raw.get("kv") or {}).get("segments", []) if s["id"] != sid]
        raw["kv"] = {"segments": [*segments, entry]}
        raw["tiers"] = [t for t in ("plaintext", "activation", "parameter")
                        if t in raw["tiers"] or t == "activation"]
        if drop_text:
            (tmp / layout.MEMORIES).unlink()
            shutil.rmtree(tmp / (cube.manifest.index or {}).get("path", layout.INDEX_DIR))
            for k in ("files", "index", "embedding"):
                raw.pop(k, None)
            raw["tiers"].remove("plaintext")
    return ConvertReport(str(cube.path), sid, len(memories), meta.num_tokens, storage_dtype,
                         entry["size"], build_s, key is not None)


def restore_text(path: str | Path, chat: ChatModel, embedder: Embedder, *,
                 key: str | Path | None = None) -> dict[str, Any]:
    """Rebuild the plaintext tier of a KV-only cube from its segments' token ids, atomically.

    Every memory is checked against its content hash; the search index is rebuilt with
    ``embedder``. Signing as in :func:`convert_to_kv`.

    Raises:
        UsageError: the cube already has a plaintext tier, or has no segment.
        FormatError: the model's tokenizer is not the segments' (named), or a restored memory
            does not match its hash.
    """
    from memos_cli.cube.kv import read_segment
    from memos_cli.errors import FormatError
    from memos_cli.pack import embed_memories

    if key is not None:
        check_private_key(Path(key))
    cube = open_cube(path)
    check_writable(cube)  # before the embedding work
    if cube.has_plaintext:
        raise UsageError("cube already has a plaintext tier", path=cube.path)
    if not cube.segments:
        raise UsageError("cube has no KV segment to restore from", path=cube.path)
    want_tok = chat.fingerprint()["tokenizer_sha256"]
    restored: dict[str, Memory] = {}
    for entry in cube.segments:
        seg_path = cube.segment_path(entry)
        seg = read_segment(seg_path)
        if seg.meta.model_fingerprint.get("tokenizer_sha256") != want_tok:
            raise FormatError(f"segment was tokenized by {seg.meta.model}'s tokenizer, not "
                              f"{chat.name}'s; give --model with that tokenizer", path=seg_path)
        for m in kv.restore_memories(seg, chat.tokenizer):
            restored.setdefault(m.id, m)
    memories = list(restored.values())
    vectors = embed_memories(embedder, memories)
    with rewrite(cube, key=key) as (tmp, raw):
        raw.update(write_plaintext(tmp, memories, vectors), embedding=embedder.describe())
        raw["counts"]["memories"] = len(memories)
        raw["tiers"] = ["plaintext", *[t for t in raw["tiers"] if t != "plaintext"]]
    return {"path": str(cube.path), "memories": len(memories), "signed": key is not None}


def segment_entry(sid: str, rel: str, path: Path, meta: SegmentMeta) -> dict[str, Any]:
    """The manifest's description of a segment file."""
    return {"id": sid, "path": rel, "sha256": sha256_file(path), "size": path.stat().st_size,
            "model": meta.model,
            "model_fingerprint_sha256": fingerprint_digest(meta.model_fingerprint),
            "tokens": meta.num_tokens, "storage_dtype": meta.storage_dtype,
            "memory_ids": list(meta.memory_ids)}
