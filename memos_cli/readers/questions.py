"""The ``questions`` reader: doc2query (Nogueira, Yang, Lin and Cho, "Document Expansion by
Query Prediction", 2019).

The local chat model writes, for each memory, questions the memory answers; they are indexed
beside it as one row of kind ``questions`` (spec §6.1), for the full-text and the vector
search. Where the original appends the predicted queries to the document, memos keeps them in
a row of their own, so the memory's own row ranks as before and a question can only add a
route to it. A few-shot completion prompt (see :mod:`memos_cli.readers.generate`); an output
with no question in it counts as ``unparsed`` and the memory gets no row.

A small model writes many questions its memory does not answer ("How many people attended?"),
and such questions match any query of their shape. As in Doc2Query-- (Gospodinov, MacAvaney
and Macdonald, ECIR 2023, "Doc2Query--: When Less is More"), each question is kept only when
a relevance model scores it against its memory at least ``min_relevance``; here the relevance
model is the cube's own embedder (cosine of the two embeddings) rather than a cross-encoder.
A memory whose questions are all dropped counts as ``unparsed`` too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from memos_cli.memory import Memory
from memos_cli.readers.base import Budget, Progress, ReaderResult
from memos_cli.readers.generate import generate

PREFIX = """Message: Melanie: I ran a charity race for mental health last Saturday.
Questions: What did Melanie run for? When did Melanie run the charity race?

Message: John: My dog Max loves the beach, we go there every weekend.
Questions: What is the name of John's dog? Where does John take Max?

Message: Anna: I'm thinking of studying psychology next year.
Questions: What does Anna want to study? When will Anna start studying?

"""
PER_MEMORY = 3
MEMORY_CHARS = 600
MAX_NEW_TOKENS = 40
#: Chosen on LoCoMo conversations 26, 30 and 41 (bench/readers.py; README).
MIN_RELEVANCE = 0.6
_QUESTION = re.compile(r"[^?\n]{6,200}\?")


def suffix(m: Memory) -> str:
    text = " ".join(m.content.split())[:MEMORY_CHARS]
    return f"Message: {m.speaker}: {text}\nQuestions:" if m.speaker else \
        f"Message: {text}\nQuestions:"


def parse(output: str, limit: int = PER_MEMORY) -> list[str]:
    """The questions of one output: up to the first blank line or next ``Message:``, each
    ending in ``?``, 6-200 characters, without repeats, at most ``limit``."""
    head = re.split(r"\n\s*\n|\nMessage:", output, maxsplit=1)[0]
    out: list[str] = []
    for q in _QUESTION.findall(head):
        q = " ".join(q.split())
        if q not in out and not q.lower().startswith(("questions:", "message:")):
            out.append(q)
    return out[:limit]


def relevant(embedder: Any, memories: Sequence[Memory], found: list[list[str]],
             min_relevance: float) -> list[list[str]]:
    """``found[i]`` without the questions whose embedding's cosine with ``memories[i]``'s
    rendered text is below ``min_relevance`` (Doc2Query--)."""
    flat = [(i, q) for i, qs in enumerate(found) for q in qs]
    if not flat or min_relevance <= -1:
        return found
    import numpy as np

    q_vecs = embedder.encode([q for _, q in flat])
    owners = sorted({i for i, _ in flat})
    m_vecs = dict(zip(owners, embedder.encode([memories[i].render() for i in owners]),
                      strict=True))
    kept: list[list[str]] = [[] for _ in found]
    for (i, q), v in zip(flat, q_vecs, strict=True):
        if float(np.dot(v, m_vecs[i])) >= min_relevance:
            kept[i].append(q)
    return kept


def read(memories: Sequence[Memory], chat: Any, budget: Budget,
         progress: Progress | None = None, *, per_memory: int = PER_MEMORY,
         max_new_tokens: int = MAX_NEW_TOKENS, embedder: Any = None,
         min_relevance: float = MIN_RELEVANCE) -> ReaderResult:
    """One ``questions`` row per memory the model wrote a relevant question for (relevance
    is checked with ``embedder`` when one is given; the options record whether it was).

    Raises:
        ReaderError: the model cannot generate.
    """
    result = ReaderResult("questions", {
        "per_memory": per_memory, "max_new_tokens": max_new_tokens, "prompt": "few-shot-1",
        "min_relevance": min_relevance if embedder is not None else None})
    outputs = generate(chat, PREFIX, [suffix(m) for m in memories],
                       max_new_tokens=max_new_tokens, budget=budget, progress=progress,
                       stage="questions")
    found = [parse(text, per_memory) if text is not None else [] for text in outputs]
    if embedder is not None:
        found = relevant(embedder, memories, found, min_relevance)
    for m, text, qs in zip(memories, outputs, found, strict=True):
        if text is None:
            result.not_reached += 1
        elif qs:
            result.rows.append((m.id, " ".join(qs)))
        else:
            result.unparsed += 1
    return result
