"""Answers of the parameter tier: the question alone in the prompt, the adapter attached."""

from __future__ import annotations

import time
from typing import Any

from memos_cli.errors import UsageError
from memos_cli.models.chat import ChatModel
from memos_cli.tiers.decode import generate_ids
from memos_cli.tiers.lora.adapter import attach, detach
from memos_cli.tiers.lora.combine import attach_many, check_all, route
from memos_cli.tiers.lora.data import prompt_ids
from memos_cli.tiers.plaintext import Answer


def answer_lora(cube: Any, chat: ChatModel, question: str, *, max_new_tokens: int = 128,
                temperature: float = 0.0, combine: str = "cat", embedder: Any = None) -> Any:
    """Answer ``question`` with the cube's adapter (or the adapters of a list of cubes, merged
    by :func:`memos_cli.tiers.lora.combine.attach_many`, or with ``combine="route"`` the one
    :func:`memos_cli.tiers.lora.combine.route` picks with ``embedder``) and nothing else in the
    prompt; ``chat`` is left without the adapter afterwards.

    Returns a ``plaintext.Answer`` with ``tier="lora"``, no memories, and ``timings``
    (``model_load_s``, ``adapter_load_s``, ``ttft_s``, ``generate_s``, ``tokens_per_s``; with
    routing also ``route_s``, and ``details`` with the chosen ``cube`` and every ``scores``).

    Raises:
        UsageError: ``route`` without an embedder.
    """
    timings: dict[str, float] = {}
    details: dict[str, Any] = {}
    if isinstance(cube, (list, tuple)) and combine == "route":
        if embedder is None:
            raise UsageError("--combine route needs the embedder")
        check_all(chat, cube)  # every adapter, not only the one chosen
        t0 = time.perf_counter()
        pick, scores = route(cube, embedder, question)
        timings["route_s"] = time.perf_counter() - t0
        details = {"cube": cube[pick].manifest.cube_id, "scores": [round(x, 4) for x in scores]}
        cube = cube[pick]
    t0 = time.perf_counter()
    tuned = attach_many(chat, cube, combine=combine) if isinstance(cube, (list, tuple)) \
        else attach(chat, cube)
    adapter_load_s = time.perf_counter() - t0
    try:
        gen = generate_ids(tuned, prompt_ids(chat.tokenizer, question),
                           max_new_tokens=max_new_tokens, temperature=temperature)
    finally:
        chat.model = detach(tuned.model)  # the base model, as it was
    return Answer(question, gen.text, [], chat.name,
                  {"model_load_s": chat.load_s, "adapter_load_s": adapter_load_s,
                   "ttft_s": gen.ttft_s, "generate_s": gen.total_s,
                   "tokens_per_s": gen.tokens_per_s, **timings},
                  gen.prompt_tokens, gen.new_tokens, tier="lora", details=details, stop=gen.stop)
