"""What reaches the prompt: retrieved memories fitted to a token budget.

``memos run --context-tokens N`` puts the best-ranked memories in the prompt while the
memories' part of it (each memory's marker and chunk, the layout of
:mod:`memos_cli.tiers.prompt`, spec §12.2) holds at most ``N`` tokens. A memory that does not
fit is skipped and the next one is tried, as a greedy knapsack in rank order. Whatever the
budget, the prompt must also fit the model's context window (``max_position_embeddings``)
with the answer's ``max_new_tokens``: memories that would overflow it are left out, where a
longer prompt would run the model past the positions it was trained on.

Why a budget: when candidates are not ranked well, a fixed cut loses most of the evidence
(SmartSearch measured 22.5% of gold evidence surviving truncation); a budget spends the
prompt on as many of the best-ranked memories as fit. The kept memories stay in rank order,
best first: ordering them by valid time instead answered worse with the default model
(``bench/context_budget.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from memos_cli.memory import Memory
from memos_cli.tiers import prompt

#: Smallest budget accepted: one marker and a short memory.
MIN_TOKENS = 16
#: Memories retrieved as candidates when a budget decides how many go in (``-k`` unset).
POOL = 100


@dataclass(frozen=True)
class Fit:
    """The memories kept (rank order) and what the budget did: ``memory_tokens`` (the kept
    memories' markers and chunks, tokens), ``left_out`` (retrieved memories that did not
    fit), ``limit`` (the budget applied, tokens: the smaller of ``--context-tokens`` and the
    room the model's context window leaves, ``None`` when neither bounds it)."""

    kept: list[Any]
    memory_tokens: int
    left_out: int
    limit: int | None

    def to_dict(self) -> dict[str, Any]:
        return {"limit": self.limit,
                "memory_tokens": self.memory_tokens, "kept": len(self.kept),
                "left_out": self.left_out}


def piece_tokens(tokenizer: Any, slot: int, memories: Sequence[Memory]) -> int:
    """Tokens one prompt slot takes: the marker ``[slot]`` and the chunk of ``memories``."""
    return len(prompt.marker_ids(tokenizer, slot)) + len(prompt.chunk_ids(tokenizer, memories))


def room(chat: Any, question: str, max_new_tokens: int) -> int | None:
    """Tokens the model's context window leaves for memories after the prefix, the closing
    with ``question`` and ``max_new_tokens`` of answer; ``None`` when the model's config
    names no window. Never below 0."""
    window = getattr(getattr(chat.model, "config", None), "max_position_embeddings", None)
    if not isinstance(window, int) or window <= 0:
        return None
    tok = chat.tokenizer
    used = len(prompt.prefix_ids(tok)) + len(prompt.closing_ids(tok, question))
    return max(0, window - used - max_new_tokens)


def limit_of(context_tokens: int | None, space: int | None) -> int | None:
    """The budget that applies: the smaller of the two bounds given."""
    bounds = [b for b in (context_tokens, space) if b is not None]
    return min(bounds) if bounds else None


def fit(tokenizer: Any, hits: Sequence[Any], limit: int | None, k: int | None = None) -> Fit:
    """The best-ranked of ``hits`` (``Retrieved``, best first) whose slots fit in ``limit``
    tokens, at most ``k`` of them: each hit in turn is kept when its marker and chunk fit in
    what is left, else skipped. ``limit`` ``None``: the first ``k`` (all with ``k`` None).
    """
    kept: list[Any] = []
    used = 0
    for h in hits:
        if k is not None and len(kept) >= k:
            break
        n = piece_tokens(tokenizer, len(kept) + 1, [h.memory])
        if limit is None or used + n <= limit:
            kept.append(h)
            used += n
    return Fit(kept, used, len(hits) - len(kept), limit)

