"""``convert --to kv --chunks``: memories -> KV chunks of the cube (spec/memcube.md §12).

Chunks are content-addressed, so a chunk the cube already holds for the same model, layout
and dtype is copied, not computed again; a budget in bytes bounds the set.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memos_cli.cube import open_cube
from memos_cli.cube.chunks import (
    CHUNKS_DIR,
    GROUPS,
    PREFIX_FILE,
    ChunkEntry,
    ChunkSet,
    group_memories,
    layout_digest,
    set_id,
)
from memos_cli.cube.kv import STORAGE_DTYPES, read_meta, write_segment
from memos_cli.cube.rewrite import check_writable, rewrite
from memos_cli.cube.signature import check_private_key
from memos_cli.digest import sha256_file
from memos_cli.errors import UsageError
from memos_cli.memory import Memory
from memos_cli.models.chat import ChatModel
from memos_cli.models.fingerprint import fingerprint_digest
from memos_cli.tiers import chunk_build, prompt, rope
from memos_cli.tiers.convert import with_tier


@dataclass
class ChunksReport:
    path: str
    chunk_set: str
    group: str
    chunks: int
    reused: int
    memories: int
    skipped_for_budget: int
    tokens: int
    storage_dtype: str
    bytes: int
    build_s: float
    signed: bool

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "build_s": round(self.build_s, 3),
                "bytes_per_token": round(self.bytes / max(self.tokens, 1), 1)}


def _write(tmp: Path, rel: str, built: chunk_build.Built) -> dict[str, Any]:
    p = tmp / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    write_segment(p, built.meta, built.token_ids, built.layers)
    read_meta(p)  # what we write must pass our own reader
    return {"path": rel, "sha256": sha256_file(p), "size": p.stat().st_size,
            "tokens": built.meta.num_tokens}


#: Chunks prefilled in one forward pass (``chunk_build.build_chunks``: right-padded rows, each equal
#: to its own pass up to float rounding): 1.7x faster than one per pass (bench/chunk_build.py).
BATCH = 8
#: Chunks are built a window at a time, sorted by length within it so that a pass pads little,
#: and written in priority order (the ``--max-bytes`` budget keeps the first ones): at most
#: this many groups, and at most :data:`WINDOW_BYTES` of computed keys and values held.
WINDOW = 64
WINDOW_BYTES = 256 * 2**20


def _window(chat: ChatModel, groups: list[Any], first: int, old: dict[str, Any]) -> list[int]:
    """Indexes of the groups to build next, from ``first`` on, skipping those already
    stored: up to :data:`WINDOW` of them and :data:`WINDOW_BYTES` of keys and values at the
    model's compute dtype (the first always)."""
    fp = chat.fingerprint()
    per_token = (2 * fp["num_layers"] * fp["num_kv_heads"] * fp["head_dim"]
                 * chat.model.dtype.itemsize)
    out: list[int] = []
    held = 0
    for i in range(first, len(groups)):
        if chunk_build.key_of(groups[i]) in old:
            continue
        size = len(prompt.chunk_ids(chat.tokenizer, groups[i])) * per_token
        if out and (len(out) == WINDOW or held + size > WINDOW_BYTES):
            break
        out.append(i)
        held += size
    return out


def default_dtype(chat: ChatModel) -> str:
    """The storage dtype ``convert --to kv --chunks`` uses unless told: float16 for a model
    that computes in float32 (on 40 held-out LoCoMo questions the composed answers were the
    same token for token, at half the bytes: bench/chunk_dtype.py), else the model's own
    compute dtype (bfloat16 or float16, stored as computed)."""
    compute = str(chat.model.dtype).removeprefix("torch.")
    return compute if compute in ("bfloat16", "float16") else "float16"


def convert_to_chunks(path: str | Path, chat: ChatModel, memories: list[Memory], *,
                      group: str = "memory", storage_dtype: str = "float32",
                      max_bytes: int | None = None, key: str | Path | None = None,
                      progress: Any = None) -> ChunksReport:
    """Precompute the KV chunks of ``memories`` (grouped by ``group``) with ``chat`` and
    write them as one chunk set into the cube, atomically, replacing the set of the same id.

    Chunks are added in the order of ``memories`` (the caller's priority) until the next one
    would pass ``max_bytes`` (prefix included); those left out are counted. ``progress(done,
    total)`` is called after each chunk. Signing as in ``convert.convert_to_kv``.

    Raises:
        UsageError: unknown dtype or group, no memories, a budget too small for the prefix, a
            model whose RoPE cannot be re-rotated (checked before any work, see
            ``tiers.rope.calibrate``), or a cube without a plaintext tier.
        FormatError: the cube is of a newer format version.
    """
    if storage_dtype not in STORAGE_DTYPES:
        raise UsageError(f"--dtype {storage_dtype!r} is not one of {', '.join(STORAGE_DTYPES)}")
    if group not in GROUPS:
        raise UsageError(f"--group {group!r} is not one of {', '.join(GROUPS)}")
    if not memories:
        raise UsageError("no memories selected for KV chunks")
    if max_bytes is not None and max_bytes <= 0:
        raise UsageError("--max-bytes must be above 0")
    if key is not None:
        check_private_key(Path(key))
    cube = open_cube(path)
    check_writable(cube)
    cube.require_plaintext()
    rope.calibrate(chat.model, rope.describe(chat.model))  # refuse before the prefill work
    t0 = time.perf_counter()
    fp_digest = fingerprint_digest(chat.fingerprint())
    sid = set_id(fp_digest, layout_digest(prompt.LAYOUT), storage_dtype, group)
    base = f"{CHUNKS_DIR}/{sid}"
    old = {c.key: c for s in cube.chunk_sets if s.id == sid for c in s.chunks}
    wanted = {m.id for m in memories}
    groups = [g for g in group_memories(cube.memories, group)
              if any(m.id in wanted for m in g)]
    order = {m.id: n for n, m in enumerate(memories)}
    groups.sort(key=lambda g: min(order.get(m.id, len(order)) for m in g))
    prefix = chunk_build.build_prefix(chat, storage_dtype)
    entries: list[ChunkEntry] = []
    reused = skipped = 0
    with rewrite(cube, key=key) as (tmp, raw):
        shutil.rmtree(tmp / base, ignore_errors=True)
        pre = _write(tmp, f"{base}/{PREFIX_FILE}", prefix)
        total = pre["size"]
        if max_bytes is not None and total > max_bytes:
            raise UsageError(f"--max-bytes {max_bytes} is below the prefix's {total} bytes")
        if progress:  # the bar shows from the start, not after the first chunk
            progress(0, len(groups))
        built: dict[int, chunk_build.Built] = {}
        for n, g in enumerate(groups, start=1):
            ck = chunk_build.key_of(g)
            rel = f"{base}/{ck}.safetensors"
            info: dict[str, Any]
            if ck in old:
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(cube.path / old[ck].path, tmp / rel)
                info = {"path": rel, "sha256": old[ck].sha256, "size": old[ck].size,
                        "tokens": old[ck].tokens}
                reused += 1
            else:
                if n - 1 not in built:  # the next window of groups, BATCH a pass
                    todo = _window(chat, groups, n - 1, old)
                    built = {todo[j]: b for j, b in chunk_build.build_chunks(
                        chat, prefix, [groups[i] for i in todo], storage_dtype, batch=BATCH)}
                info = _write(tmp, rel, built.pop(n - 1))
            if max_bytes is not None and total + info["size"] > max_bytes:
                (tmp / rel).unlink()
                skipped += len(groups) - n + 1
                break
            total += info["size"]
            entries.append(ChunkEntry(ck, rel, info["sha256"], info["size"], info["tokens"],
                                      tuple(m.id for m in g)))
            if progress:
                progress(n, len(groups))
        chunk_set = ChunkSet(id=sid, path=base, model=chat.name,
                             model_fingerprint_sha256=fp_digest,
                             layout_sha256=layout_digest(prompt.LAYOUT),
                             storage_dtype=storage_dtype, group=group, prefix=pre,
                             chunks=tuple(entries))
        sets = [s for s in (raw.get("kv_chunks") or {}).get("sets", []) if s["id"] != sid]
        raw["kv_chunks"] = {"sets": [*sets, chunk_set.to_dict()]}
        raw["tiers"] = with_tier(raw["tiers"], "activation")
    return ChunksReport(str(cube.path), sid, group, len(entries), reused,
                        sum(len(c.memory_ids) for c in entries), skipped,
                        sum(c.tokens for c in entries) + pre["tokens"], storage_dtype, total,
                        time.perf_counter() - t0, key is not None)
