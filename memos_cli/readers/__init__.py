"""MemReaders: turn raw memories into what retrieval can find, at pack time (spec §6.1).

The MemOS paper's MemReader (arXiv 2507.03724, §5, §7.2.1) turns raw input into structured
memory units; MemOS, mem0 and Zep do it with a remote LLM at write time. memos does it locally
when a cube is packed (``memos pack --reader``) or re-indexed (``memos reindex --reader``), so a
query needs no LLM. Three readers:

- ``context`` (:mod:`.context`): each memory indexed again with its neighbourhood (previous
  and next turn, session date, speakers): contextual chunk indexing, as in Anthropic's
  "Contextual Retrieval" (2024). No model.
- ``questions`` (:mod:`.questions`): doc2query (Nogueira et al., 2019): the local chat model
  writes the questions each memory answers; they are indexed beside it.
- ``facts`` (:mod:`.facts`): the local chat model extracts atomic facts from each stretch of
  a session; they become derived memories (``origin = inference``, ``extra.derived_from``)
  that search resolves to their source turns.

Readers only add: a reader never changes or removes a memory of the user's own.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from memos_cli.memory import Memory, derived_reader
from memos_cli.models.chat import load
from memos_cli.readers import context, facts, questions
from memos_cli.readers.base import (
    MODEL_READERS,
    READERS,
    Budget,
    Progress,
    ReaderResult,
    ReaderRun,
    model_record,
    parse_names,
)

__all__ = ["MODEL_READERS", "READERS", "Budget", "Progress", "ReaderResult", "ReaderRun",
           "context", "facts", "model_record", "parse_names", "questions", "run_readers"]

def run_readers(names: Sequence[str], memories: Sequence[Memory], *, model: str | None = None,
                chat: Any = None, budget: Budget | None = None,
                progress: Progress | None = None, options: dict[str, Any] | None = None,
                embedder: Any = None) -> ReaderRun:
    """Run the readers ``names`` over ``memories`` (a cube's own; derived memories of an
    earlier run are skipped). ``chat`` is a loaded :class:`~memos_cli.models.chat.ChatModel`,
    else ``model`` is loaded when a model reader runs. ``progress(stage, done, total)``
    reports each batch. ``options`` overrides reader options (``{"context": {"before": 2}}``).
    ``embedder`` (the cube's) lets the questions reader drop irrelevant questions.

    Raises:
        UsageError: an unknown reader name.
        ModelNotFoundError: the model cannot be loaded.
        ReaderError: the model cannot generate.
    """
    chosen = parse_names(names)
    own = [m for m in memories if derived_reader(m) is None]
    budget = budget or Budget()
    options = options or {}
    if chat is None and any(n in MODEL_READERS for n in chosen):
        chat = load(model)
    budget.started = time.perf_counter()
    out = []
    for name in chosen:
        t0 = time.perf_counter()
        opts = options.get(name, {})
        if name == "context":
            result = context.read(own, **opts)
        elif name == "questions":
            result = questions.read(own, chat, budget, progress, embedder=embedder, **opts)
        else:
            result = facts.read(own, chat, budget, progress, **opts)
        result.seconds = time.perf_counter() - t0
        if name in MODEL_READERS:
            result.model = model_record(chat)
        out.append(result)
    return ReaderRun(out)
