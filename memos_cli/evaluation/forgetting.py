"""What a LoRA adapter makes a model forget (the parameter tier's side effects).

Two measures, both against the base model with the adapter off:

- *general accuracy*: the share of short-answer general-knowledge questions (geography,
  science, arithmetic, language, common sense: ``memos_cli/data/general/questions.jsonl``,
  210 questions, or any question file) answered correctly, with and without the adapter;
- *mean KL*: the mean per-token KL divergence ``KL(base || adapted)`` over the base model's own
  greedy continuations of general prompts (``memos_cli/data/general/prompts.jsonl``: the
  questions and 105 open instructions, 315 prompts), in nats per token. It is 0 for an
  adapter that changes nothing and, unlike accuracy, sees every shift of the distribution.

None of these prompts is among those the recipes train on (``lora_data.REPLAY_PROMPTS``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memos_cli.models.chat import ChatModel
from memos_cli.tiers import lora
from memos_cli.tiers.lora.data import greedy, load_prompts, packaged, until_end

__all__ = ["CONTINUATION_TOKENS", "adapter_kl", "continuations", "load_prompts", "mean_kl",
           "packaged"]

#: Greedy continuation tokens per prompt for the KL measure.
CONTINUATION_TOKENS = 24


def continuations(chat: ChatModel, prompts: Sequence[str], *,
                  max_new_tokens: int = CONTINUATION_TOKENS, batch: int = 16
                  ) -> list[tuple[list[int], list[int]]]:
    """``(prompt ids, continuation ids)`` of the base model's greedy continuation of each
    prompt (chat template, question alone), in batches of ``batch`` (left-padded)."""
    return [(r, until_end(row, chat.tokenizer))
            for rows, gen, width in greedy(chat, prompts, max_new_tokens=max_new_tokens,
                                           batch=batch)
            for r, row in zip(rows, gen[:, width:].tolist(), strict=True)]


def mean_kl(base: Any, adapted: Any, pairs: Sequence[tuple[list[int], list[int]]]) -> float:
    """Mean per-token ``KL(base || adapted)`` in nats over the continuation tokens of
    ``pairs`` (full vocabulary, float32): ``base`` and ``adapted`` are causal LMs (``adapted``
    may be the PEFT model over ``base``'s weights, switched off for the base pass)."""
    import torch

    total, count = 0.0, 0
    for prompt, cont in pairs:
        if not cont:
            continue
        x = torch.tensor([prompt + cont], dtype=torch.long)
        span = slice(len(prompt) - 1, len(prompt) - 1 + len(cont))
        with torch.inference_mode():
            q = torch.log_softmax(adapted(input_ids=x).logits[0, span].float(), -1)
            p = torch.log_softmax(base(input_ids=x).logits[0, span].float(), -1)
        total += float((p.exp() * (p - q)).sum())
        count += len(cont)
    return total / count if count else 0.0


def adapter_kl(chat: ChatModel, cube: Any, pairs: Sequence[tuple[list[int], list[int]]]
               ) -> float:
    """:func:`mean_kl` of the base model against it with the cube's adapter attached
    (unmerged, so the base pass runs with the adapter disabled); ``chat`` is left as it was."""
    tuned = lora.attach(chat, cube, merge=False)
    try:
        model = tuned.model

        def base(**kw: Any) -> Any:
            with model.disable_adapter():
                return model(**kw)

        return mean_kl(base, model, pairs)
    finally:
        chat.model = lora.detach(tuned.model)
