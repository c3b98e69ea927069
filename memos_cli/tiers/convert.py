"""``convert --to kv``: memories -> a KV-cache segment in the cube. The pipeline behind
``memos convert``; the only place where a chat model meets the cube format."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memos_cli.cube import Cube, layout, open_cube
from memos_cli.cube.cube import write_plaintext
from memos_cli.cube.kv import (
    STORAGE_DTYPES,
    SegmentMeta,
    read_meta,
    read_segment,
    segment_id,
    write_segment,
)
from memos_cli.cube.lora import FILES as LORA_FILES
from memos_cli.cube.lora import MEMORIES as LORA_MEMORIES
from memos_cli.cube.lora import META_VERSION, check_adapter, file_entries, lora_memories, write_meta
from memos_cli.cube.lora import read_meta as read_lora_meta
from memos_cli.cube.memories import write_memories
from memos_cli.cube.rewrite import check_writable, rewrite
from memos_cli.cube.signature import check_private_key
from memos_cli.digest import sha256_file
from memos_cli.errors import FormatError, UsageError
from memos_cli.lifecycle.pack import embed_memories
from memos_cli.memory import Memory, resolve_id
from memos_cli.models.chat import ChatModel
from memos_cli.models.embedder import Embedder
from memos_cli.models.fingerprint import fingerprint_digest
from memos_cli.tiers import kv, lora
from memos_cli.tiers.plaintext import retrieve
from memos_cli.version import __version__


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
    live = [m for m in cube.memories if not m.expired(now) and m.current]
    if ids:
        if query:
            raise UsageError("give --ids or --query, not both")
        by_id = {m.id: m for m in live}
        ids = [resolve_id(i, by_id, "live memory", strict=False) for i in ids]
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
        raw["tiers"] = with_tier(raw["tiers"], "activation")
        if drop_text:
            drop_plaintext(tmp, raw, cube)
    return ConvertReport(str(cube.path), sid, len(memories), meta.num_tokens, storage_dtype,
                         entry["size"], build_s, key is not None)


def restore_text(path: str | Path, chat: ChatModel | None, embedder: Embedder, *,
                 key: str | Path | None = None) -> dict[str, Any]:
    """Rebuild the plaintext tier of a cube that lost it, atomically.

    From the parameter tier when there is one (``lora/memories.arrow``, no model needed),
    otherwise from the KV segments' token ids decoded by ``chat``'s tokenizer. Every memory is
    checked against its content hash; the search index is rebuilt with ``embedder``. Signing
    as in :func:`convert_to_kv`.

    Raises:
        UsageError: the cube already has a plaintext tier, or has no tier to restore from.
        FormatError: the model's tokenizer is not the segments' (named), or a restored memory
            does not match its hash.
    """
    if key is not None:
        check_private_key(Path(key))
    cube = open_cube(path)
    check_writable(cube)  # before the embedding work
    if cube.has_plaintext:
        raise UsageError("cube already has a plaintext tier", path=cube.path)
    if cube.has_lora:
        memories, source = lora_memories(cube), "the LoRA tier's memories"
    elif cube.segments:
        if chat is None:
            raise UsageError("restoring from KV segments needs the model", path=cube.path)
        memories, source = _segment_memories(cube, chat), "KV token ids"
    else:
        raise UsageError("cube has no KV segment or LoRA adapter to restore from",
                         path=cube.path)

    vectors = embed_memories(embedder, memories)
    with rewrite(cube, key=key) as (tmp, raw):
        raw.update(write_plaintext(tmp, memories, vectors), embedding=embedder.describe())
        raw["counts"]["memories"] = len(memories)
        raw["tiers"] = with_tier(raw["tiers"], "plaintext")
    return {"path": str(cube.path), "memories": len(memories), "from": source,
            "signed": key is not None}


def _segment_memories(cube: Cube, chat: ChatModel) -> list[Memory]:
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
    return list(restored.values())


def drop_plaintext(tmp: Path, raw: dict[str, Any], cube: Cube) -> None:
    """Remove the plaintext tier (memories.arrow, the index, their manifest keys) from the
    private copy ``tmp`` of ``cube`` being rewritten."""
    (tmp / layout.MEMORIES).unlink()
    layout.remove_tree(tmp / (cube.manifest.index or {}).get("path", layout.INDEX_FILE))
    for k in ("files", "index", "embedding"):
        raw.pop(k, None)
    raw["tiers"].remove("plaintext")


def with_tier(tiers: list[str], tier: str) -> list[str]:
    """``tiers`` plus ``tier``, in the spec's order (plaintext, activation, parameter)."""
    return [t for t in ("plaintext", "activation", "parameter") if t in tiers or t == tier]


#: Default most memories ``convert --to lora`` trains on: about 10 minutes on 2 CPU cores with
#: SmolLM2-135M and the default recipe (README, "Parameter tier").
LORA_BUDGET = 64


def convert_to_lora(path: str | Path, chat: ChatModel, memories: list[Memory], recipe: Any, *,
                    key: str | Path | None = None, drop_text: bool = False,
                    budget: int = LORA_BUDGET, progress: Any = None,
                    evaluate: Any = None) -> dict[str, Any]:
    """Train a LoRA adapter on ``memories`` (``memos_cli.tiers.lora.train``) and write it into
    the cube as ``lora/`` (spec §11), atomically, replacing an adapter already there.

    ``evaluate(tuned_chat) -> dict``, when given, runs after training and its result is stored
    as the build-time eval. ``drop_text`` then removes the plaintext tier (it needs every
    memory of the cube). A ``KeyboardInterrupt`` during training or evaluation leaves the cube
    unchanged. Signing as in :func:`convert_to_kv`.

    Raises:
        UsageError: no memories, more than ``budget``, or the model lacks the target modules.
        FormatError: the cube is of a newer format version.
    """

    if not memories:
        raise UsageError("no live memories to train a LoRA adapter on", path=path)
    if len(memories) > budget:
        raise UsageError(
            f"{len(memories)} memories exceed the LoRA training budget of {budget} (about 10 "
            "minutes on 2 CPU cores); choose some with --ids, --query TEXT --top N or --top N "
            "(highest priority first), or raise --budget", path=path)
    if key is not None:
        check_private_key(Path(key))
    cube = open_cube(path)
    check_writable(cube)  # before the training work
    if drop_text and {m.id for m in memories} != set(cube.memory_ids()):
        raise UsageError("--drop-text needs an adapter trained on every memory in the cube "
                         "(select all memories, none of them expired)")
    fingerprint = chat.fingerprint()  # of the base model, before PEFT wraps it
    result = lora.train(chat, memories, recipe, progress=progress)
    try:
        return _write_lora(cube, chat, memories, recipe, result, fingerprint, key=key,
                           drop_text=drop_text, evaluate=evaluate)
    finally:
        chat.model = lora.detach(result.model)


def _write_lora(cube: Cube, chat: ChatModel, memories: list[Memory], recipe: Any,
                result: Any, fingerprint: dict[str, Any], *, key: str | Path | None,
                drop_text: bool, evaluate: Any) -> dict[str, Any]:
    import peft
    import torch
    import transformers

    tuned = ChatModel(chat.name, chat.path, result.model, chat.tokenizer, chat.load_s,
                      fingerprint)
    build_eval = evaluate(tuned) if evaluate is not None else None
    meta = {
        "memcube.lora": META_VERSION,
        "model": chat.name,
        "model_fingerprint": fingerprint,
        "recipe": recipe.to_dict(),
        "seed": recipe.seed,
        "versions": {"memos": __version__, "torch": torch.__version__,
                     "transformers": transformers.__version__, "peft": peft.__version__},
        "memories": [{"id": m.id, "content_hash": m.content_hash} for m in memories],
        "training": {"examples": result.examples, "steps": result.steps,
                     "train_s": round(result.train_s, 3),
                     "question_sampling_s": round(result.qgen_s, 3),
                     "final_loss": round(sum(result.losses[-5:]) / len(result.losses[-5:]), 4)},
        "eval": build_eval,
    }
    with rewrite(cube, key=key) as (tmp, raw):
        target = tmp / layout.LORA_DIR
        shutil.rmtree(target, ignore_errors=True)
        result.model.save_pretrained(str(target), safe_serialization=True)
        (target / "README.md").unlink(missing_ok=True)  # PEFT's model card template
        cfg_path = target / "adapter_config.json"
        cfg = json.loads(cfg_path.read_text("utf-8"))
        cfg["base_model_name_or_path"] = chat.name  # not this machine's path
        layout.atomic_write_bytes(cfg_path, (json.dumps(cfg, indent=2, sort_keys=True) + "\n")
                                  .encode("utf-8"))
        write_memories(target / LORA_MEMORIES, memories)
        write_meta(target, meta)
        check_adapter(target)  # what we write must pass our own reader
        read_lora_meta(target)
        extra = sorted(p.name for p in target.iterdir() if p.name not in LORA_FILES)
        if extra:
            raise RuntimeError(f"unexpected files from PEFT in lora/: {extra}")
        raw["lora"] = {"path": layout.LORA_DIR, "files": file_entries(tmp, layout.LORA_DIR),
                       "model": chat.name,
                       "model_fingerprint_sha256": fingerprint_digest(fingerprint),
                       "recipe": recipe.name, "memory_ids": [m.id for m in memories]}
        raw["tiers"] = with_tier(raw["tiers"], "parameter")
        if drop_text:
            drop_plaintext(tmp, raw, cube)
    return {"path": str(cube.path), "memories": len(memories), "recipe": recipe.name,
            "examples": result.examples, "steps": result.steps,
            "train_s": round(result.train_s, 2), "bytes": sum(
                f["size"] for f in raw["lora"]["files"]), "eval": build_eval,
            "signed": key is not None}


def segment_entry(sid: str, rel: str, path: Path, meta: SegmentMeta) -> dict[str, Any]:
    """The manifest's description of a segment file."""
    return {"id": sid, "path": rel, "sha256": sha256_file(path), "size": path.stat().st_size,
            "model": meta.model,
            "model_fingerprint_sha256": fingerprint_digest(meta.model_fingerprint),
            "tokens": meta.num_tokens, "storage_dtype": meta.storage_dtype,
            "memory_ids": list(meta.memory_ids)}
