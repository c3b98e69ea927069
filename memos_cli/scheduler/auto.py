"""``--tier auto``: answer from the retrieved memories with whatever activation memory exists
for them, so the scheduler's work speeds up ordinary runs (spec/memcube.md §13.3).

The run retrieves the top-k memories as the text tier does. For each one it looks for a KV
chunk of this model: first in the chunk store under ``MEMOS_HOME`` (filled by ``memos
schedule``), then in the cube's own chunk sets. Memories with a chunk are composed from it
(:func:`memos_cli.tiers.chunks.answer_over`); the others are prefilled as text in the same
pass. When none of them has a chunk, the run is exactly the text tier.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memos_cli.cube.kv import STORAGE_DTYPES
from memos_cli.models.chat import ChatModel
from memos_cli.scheduler.chunks import ChunkStore
from memos_cli.tiers import prompt
from memos_cli.tiers.chunks import (
    DEFAULT_RATIO,
    DEFAULT_RULE,
    Source,
    answer_over,
    cube_source,
    pick_set,
)
from memos_cli.tiers.plaintext import Answer, Retrieved, answer_hits


def store_sources(chat: ChatModel, store: Any = None) -> list[Source]:
    """The chunk store's sets made by ``chat`` (any storage dtype) as lenient sources: a
    damaged or foreign file there is a miss with a warning, never a failed run."""
    store = store or ChunkStore()
    out = []
    for fp, dtype in ((f, d) for f in sorted(chat.fingerprint_digests())
                      for d in STORAGE_DTYPES):
        s = store.open_set(store.set_for(fp, prompt.LAYOUT, dtype))
        if s is None:
            continue

        def find(m: Any, s: Any = s) -> Any:
            key = m.content_hash.removeprefix("sha256:")
            return (s.chunk(key), [m]) if s.has(key) else None

        out.append(Source(f"store:{s.id}", s.prefix, find, strict=False))
    return out


def cube_sources(chat: ChatModel, cubes: Sequence[Any]) -> list[Source]:
    """Each cube's newest chunk set made by ``chat``."""
    out = []
    for cube in cubes:
        s = pick_set(cube, chat)
        if s is not None:
            out.append(cube_source(cube, s))
    return out


def answer_auto(chat: ChatModel, question: str, hits: list[Retrieved], sources: list[Source],
                *, ratio: float = DEFAULT_RATIO, rule: str = DEFAULT_RULE,
                max_new_tokens: int = 128, temperature: float = 0.0,
                retrieval_s: float = 0.0, limit: int | None = None) -> Answer:
    """Answer over ``hits`` (best first), as many as fit in ``limit`` tokens, with the chunks
    ``sources`` hold for them.

    ``details`` always hold ``hits`` and ``misses`` (memories with and without a chunk);
    ``timings`` as :func:`memos_cli.tiers.chunks.answer_over`, or as the text tier when no
    memory has a chunk. ``tier`` is ``auto``.

    Raises:
        FormatError: a damaged chunk of a cube (the store's are prefilled instead).
        UsageError: composition is impossible for this model.
    """
    have = any(src.find(r.memory) is not None for src in sources for r in hits)
    if have:
        return answer_over(chat, question, hits, sources, ratio=ratio, rule=rule,
                           max_new_tokens=max_new_tokens, temperature=temperature,
                           retrieval_s=retrieval_s, tier="auto", limit=limit)
    result = answer_hits(chat, hits, question, retrieval_s=retrieval_s, limit=limit,
                         max_new_tokens=max_new_tokens, temperature=temperature, tier="auto")
    result.timings = {**result.timings, "chunk_load_s": 0.0}
    result.details = {"hits": 0, "misses": len(result.memories), "chunk_sources": {},
                      "warnings": []}
    return result
