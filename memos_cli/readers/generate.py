"""Batched few-shot generation for the model readers, with the shared prefix prefilled once.

Every prompt of a reader is ``prefix + suffix``: the few-shot examples (the same for all) and
one memory or window. The prefix is prefilled once into a KV cache, which is repeated across
each batch (``DynamicCache.batch_repeat_interleave``); the suffixes are left-padded after it,
with the padding masked, so positions stay contiguous and the output is the same as without
the shared cache (checked in tests/readers/test_generate.py). Decoding is greedy with a
repetition penalty and an n-gram block, since small models loop otherwise.

Completion-style prompts, not chat templates: a 135M instruct model answers the message
instead of following an instruction about it, but continues a few-shot pattern.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from memos_cli.errors import ReaderError
from memos_cli.pausepoints import pause
from memos_cli.readers.base import Budget, Progress

BATCH = 16
REPETITION_PENALTY = 1.2
NO_REPEAT_NGRAM = 4


def generate(chat: Any, prefix: str, suffixes: Sequence[str], *, max_new_tokens: int,
             budget: Budget, progress: Progress | None = None, stage: str = "reading",
             batch: int = BATCH, stop: str | None = "\n\n") -> list[str | None]:
    """Continue ``prefix + s`` for each ``s`` in ``suffixes``; ``None`` for those the budget
    did not reach. Prompts run shortest first in batches of ``batch``.

    ``budget`` is charged the prompt and generated tokens of each batch and checked before
    each; ``progress(stage, done, total)`` is called after each batch. A batch stops early
    once every row has produced ``stop`` (the few-shot separator) or its end token.

    Raises:
        ReaderError: the model cannot generate (names the model and the first error line).
    """
    import torch
    from transformers import DynamicCache

    tok, lm = chat.tokenizer, chat.model
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    device = next(lm.parameters()).device
    out: list[str | None] = [None] * len(suffixes)
    stopping = None
    if stop:
        from transformers import StoppingCriteriaList, StopStringCriteria

        try:
            stopping = StoppingCriteriaList([StopStringCriteria(tok, [stop])])
        except ValueError:  # a tokenizer that cannot spell the stop string: run to the limit
            stopping = None
    try:
        prefix_ids = tok(prefix, return_tensors="pt").input_ids.to(device)
        encoded = [tok(s, add_special_tokens=False).input_ids for s in suffixes]
        with torch.no_grad():
            cache = DynamicCache(config=lm.config)
            lm(prefix_ids, past_key_values=cache, use_cache=True)
        order = sorted(range(len(suffixes)), key=lambda i: len(encoded[i]))
        done = 0
        for start in range(0, len(order), batch):
            if budget.exhausted():
                break
            chunk = order[start:start + batch]
            width = max(len(encoded[i]) for i in chunk)
            rows = [[pad] * (width - len(encoded[i])) + encoded[i] for i in chunk]
            masks = [[0] * (width - len(encoded[i])) + [1] * len(encoded[i]) for i in chunk]
            n = len(chunk)
            ids = torch.cat([prefix_ids.expand(n, -1), torch.tensor(rows, device=device)], 1)
            mask = torch.cat([torch.ones(n, prefix_ids.shape[1], dtype=torch.long,
                                         device=device),
                              torch.tensor(masks, device=device)], 1)
            shared = copy.deepcopy(cache)
            shared.batch_repeat_interleave(n)
            with torch.no_grad():
                gen = lm.generate(input_ids=ids, attention_mask=mask, past_key_values=shared,
                                  max_new_tokens=max_new_tokens, do_sample=False,
                                  repetition_penalty=REPETITION_PENALTY,
                                  no_repeat_ngram_size=NO_REPEAT_NGRAM, pad_token_id=pad,
                                  stopping_criteria=stopping)
            new = gen[:, ids.shape[1]:]
            budget.spend(int(sum(sum(m) for m in masks)) + int((new != pad).sum()))
            for i, text in zip(chunk, tok.batch_decode(new, skip_special_tokens=True),
                               strict=True):
                out[i] = text
            done += n
            if progress:
                progress(stage, done, len(suffixes))
            pause("reader:batch")
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ReaderError(f"model {chat.name} cannot generate: {first}") from e
    return out
