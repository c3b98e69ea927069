"""Building the activation tier's KV chunks: the shared prefix and one chunk per memory or
group, each computed where it stands at run time (spec/memcube.md §12).

A chunk holds a memory's keys and values after the shared prefix and the slot marker ``[1]``,
so a chunk in the first slot is exactly what a full prefill computes (Prompt Cache, Gim et al.,
MLSys 2024; APE, Yang et al., ICLR 2025). :mod:`memos_cli.tiers.chunks` answers over them;
:mod:`memos_cli.tiers.convert_chunks` and the scheduler write them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from memos_cli.cube.chunks import chunk_key
from memos_cli.cube.kv import QUANT_INT8, SegmentMeta
from memos_cli.errors import UsageError
from memos_cli.memory import Memory
from memos_cli.models.chat import ChatModel
from memos_cli.tiers import prompt

#: Per-layer keys and values, each ``[kv_heads, T, head_dim]``.
KV = list[tuple[torch.Tensor, torch.Tensor]]


def _layers(model: Any, ids: list[int]) -> KV:
    """Run the decoder over ``ids`` alone and return their keys and values per layer,
    ``[kv_heads, T, head_dim]``."""
    from transformers import DynamicCache

    work = DynamicCache()
    with torch.inference_mode():
        model.base_model(input_ids=torch.tensor([ids], device=model.device),
                         past_key_values=work, use_cache=True)
    layers: list[Any] = list(work.layers)
    return [(layer.keys[0].clone(), layer.values[0].clone()) for layer in layers]


def _meta(chat: ChatModel, kind: str, memories: Sequence[Memory], tokens: int, start: int,
          storage_dtype: str) -> SegmentMeta:
    fp = chat.fingerprint()
    return SegmentMeta(
        model=chat.name, model_fingerprint=fp, prompt_template=prompt.LAYOUT,
        memory_ids=tuple(m.id for m in memories),
        content_hashes=tuple(m.content_hash for m in memories),
        storage_dtype=storage_dtype, quantization=QUANT_INT8 if storage_dtype == "int8"
        else "none", num_tokens=tokens, num_layers=fp["num_layers"],
        num_kv_heads=fp["num_kv_heads"], head_dim=fp["head_dim"],
        memories=tuple({"id": m.id, "content_hash": m.content_hash} for m in memories),
        kind=kind, start_position=start)


@dataclass
class Built:
    """A computed prefix or chunk, ready for ``cube.kv.write_segment``: ``token_ids [T]
    int64`` and per-layer keys and values ``[kv_heads, T, head_dim]``."""

    meta: SegmentMeta
    token_ids: torch.Tensor
    layers: KV


def build_prefix(chat: ChatModel, storage_dtype: str = "float32") -> Built:
    """The KV cache of the shared prefix (positions ``0..P-1``)."""
    ids = prompt.prefix_ids(chat.tokenizer)
    return Built(_meta(chat, "prefix", (), len(ids), 0, storage_dtype),
                 torch.tensor(ids, dtype=torch.int64),
                 [(k.cpu(), v.cpu()) for k, v in _layers(chat.model, ids)])


def build_chunk(chat: ChatModel, prefix: Built | None, memories: Sequence[Memory],
                storage_dtype: str = "float32") -> Built:
    """The KV cache of the chunk holding ``memories``, computed where it stands in slot 1:
    after ``prefix`` and the marker ``[1]`` (positions ``S..S+T-1``, ``S`` = prefix + marker
    tokens), so a chunk in the first slot is exactly what a full prefill computes. With
    ``prefix`` ``None``: alone at ``0..T-1`` (the unconditioned variant the benchmark
    compares)."""
    if prefix is not None:
        return next(build_chunks(chat, prefix, [memories], storage_dtype, batch=1))[1]
    ids = prompt.chunk_ids(chat.tokenizer, memories)
    if not ids:
        raise UsageError(f"memory {memories[0].id} renders to no tokens")
    return Built(_meta(chat, "chunk", memories, len(ids), 0, storage_dtype),
                 torch.tensor(ids, dtype=torch.int64), _layers(chat.model, ids))


def build_chunks(chat: ChatModel, prefix: Built, groups: Sequence[Sequence[Memory]],
                 storage_dtype: str = "float32", batch: int = 8) -> Iterator[tuple[int, Built]]:
    """:func:`build_chunk` for many groups, ``batch`` per forward pass; yields ``(index in
    groups, Built)`` in order of length. Rows are right-padded: under causal attention a token
    never sees the padding after it, so each chunk equals its own pass up to float rounding
    of the batched matrix products."""
    from transformers import DynamicCache

    if batch < 1:
        raise UsageError("batch must be at least 1")
    tok = chat.tokenizer
    marker = prompt.marker_ids(tok, 1)
    past = int(prefix.token_ids.shape[0])
    start = past + len(marker)
    items = []
    for n, g in enumerate(groups):
        ids = prompt.chunk_ids(tok, g)
        if not ids:
            raise UsageError(f"memory {g[0].id} renders to no tokens")
        items.append((n, ids))
    items.sort(key=lambda x: len(x[1]))
    pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    dev = chat.model.device
    for b0 in range(0, len(items), batch):
        part = items[b0:b0 + batch]
        width = max(len(ids) for _, ids in part)
        rows = [marker + ids + [pad] * (width - len(ids)) for _, ids in part]
        work = DynamicCache()
        for i, (k, v) in enumerate(prefix.layers):
            work.update(k.to(dev).unsqueeze(0).expand(len(part), -1, -1, -1).contiguous(),
                        v.to(dev).unsqueeze(0).expand(len(part), -1, -1, -1).contiguous(), i)
        with torch.inference_mode():
            chat.model.base_model(input_ids=torch.tensor(rows, device=dev),
                                  past_key_values=work, use_cache=True)
        layers: list[Any] = list(work.layers)
        for r, (n, ids) in enumerate(part):
            end = start + len(ids)
            kv = [(layer.keys[r, :, start:end].cpu().clone(),
                   layer.values[r, :, start:end].cpu().clone()) for layer in layers]
            yield n, Built(_meta(chat, "chunk", groups[n], len(ids), start, storage_dtype),
                           torch.tensor(ids, dtype=torch.int64), kv)


def key_of(memories: Sequence[Memory]) -> str:
    return chunk_key([m.content_hash for m in memories])
