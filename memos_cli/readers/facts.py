"""The ``facts`` reader: atomic facts, preferences and events extracted by the local model.

MemOS's MemReader and mem0's extraction, done offline: the chat model reads each window of
``window`` consecutive turns of a session (or chunks of a document) and lists the facts in it.
Each fact becomes a derived memory (spec §4.5): ``origin = inference``, ``semantic_type =
fact``, ``extra = {"reader": "facts", "derived_from": [source ids]}``, with the event time,
session and governance (owner, visibility, readers, expiry, sensitivity, tags) of its source.
Search resolves a derived memory to its sources (``tiers.plaintext.retrieve``), so a fact is
a way to find the user's words, never shown as them.

A fact is grounded by word overlap: its sources are the turns of its window that share the
most content words with it (at least :data:`MIN_OVERLAP`, at most two turns of the same
governance). A fact that shares fewer words with every turn is dropped as not grounded (a
small model invents); a window whose output yields no grounded fact counts as ``unparsed``.

``parent_id`` is not used for the sources: in memos it is the version chain, and a vault
would take a memory with a ``parent_id`` for a new version of that parent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from memos_cli.errors import UsageError
from memos_cli.memory import Memory
from memos_cli.readers.base import Budget, Progress, ReaderResult
from memos_cli.readers.context import neighbourhoods
from memos_cli.readers.generate import generate

PREFIX = """Conversation:
Melanie: I ran a charity race for mental health last Saturday.
John: Nice! My dog Max loves running too.
Facts:
- Melanie ran a charity race for mental health.
- John has a dog named Max.

Conversation:
Anna: We moved to Lisbon in March, and I started a pottery class.
Facts:
- Anna moved to Lisbon in March.
- Anna started a pottery class.

"""
WINDOW = 4
TURN_CHARS = 400
MAX_NEW_TOKENS = 80
MIN_OVERLAP = 2
_WORD = re.compile(r"[a-z0-9']{3,}")


def words(text: str) -> set[str]:
    """Lower-cased content words of ``text``: 3+ characters, not in spaCy's English stop
    words (a dependency through Presidio)."""
    from spacy.lang.en.stop_words import STOP_WORDS

    return {w for w in _WORD.findall(text.lower()) if w not in STOP_WORDS}


def windows(memories: Sequence[Memory], size: int) -> list[list[Memory]]:
    """Consecutive runs of ``size`` memories within each session or document."""
    return [group[i:i + size] for group in neighbourhoods(memories)
            for i in range(0, len(group), size)]


def suffix(window: Sequence[Memory]) -> str:
    lines = []
    for m in window:
        text = " ".join(m.content.split())[:TURN_CHARS]
        lines.append(f"{m.speaker}: {text}" if m.speaker else text)
    return "Conversation:\n" + "\n".join(lines) + "\nFacts:\n-"


def parse(output: str) -> list[str]:
    """The facts of one output: the ``- `` lines up to the first blank line or next
    ``Conversation:``, 8-300 characters each, without repeats."""
    head = re.split(r"\n\s*\n|\nConversation:", "-" + output, maxsplit=1)[0]
    out: list[str] = []
    for line in head.splitlines():
        fact = " ".join(line.strip().removeprefix("-").split())
        if line.strip().startswith("-") and 8 <= len(fact) <= 300 and fact not in out:
            out.append(fact)
    return out


def _governance(m: Memory) -> tuple[Any, ...]:
    return (m.owner, m.visibility, m.readers, m.expires_at, m.sensitivity, m.tags)


def ground(fact: str, window: Sequence[Memory]) -> list[Memory]:
    """The sources of ``fact`` in its window (see the module docstring); ``[]`` if none."""
    fw = words(fact)
    scored = [(len(fw & words(m.content)), i) for i, m in enumerate(window)]
    best = max((s for s, _ in scored), default=0)
    if best < MIN_OVERLAP:
        return []
    top = [window[i] for s, i in scored if s == best][:2]
    return [m for m in top if _governance(m) == _governance(top[0])]


def derive(fact: str, sources: Sequence[Memory]) -> Memory:
    """The derived memory of ``fact`` found in ``sources`` (the first gives time, session and
    governance; ``created_at`` is its ``created_at``, so a repacked cube is the same)."""
    first = sources[0]
    return Memory.create(
        fact, now=first.created_at, origin="inference", semantic_type="fact",
        source_file=first.source_file, conversation_id=first.conversation_id,
        session_id=first.session_id, event_time=first.event_time, owner=first.owner,
        visibility=first.visibility, readers=first.readers, expires_at=first.expires_at,
        sensitivity=first.sensitivity, tags=first.tags,
        extra={"reader": "facts", "derived_from": [m.id for m in sources]})


def read(memories: Sequence[Memory], chat: Any, budget: Budget,
         progress: Progress | None = None, *, window: int = WINDOW,
         max_new_tokens: int = MAX_NEW_TOKENS) -> ReaderResult:
    """Derived fact memories for ``memories`` (see the module docstring).

    Raises:
        UsageError: ``window`` below 1.
        ReaderError: the model cannot generate.
    """
    if window < 1:
        raise UsageError("facts reader: window must be at least 1")
    result = ReaderResult("facts", {"window": window, "max_new_tokens": max_new_tokens,
                                    "min_overlap": MIN_OVERLAP, "prompt": "few-shot-1"})
    wins = windows(memories, window)
    outputs = generate(chat, PREFIX, [suffix(w) for w in wins], max_new_tokens=max_new_tokens,
                       budget=budget, progress=progress, stage="facts", batch=8)
    seen = {m.content_hash for m in memories}
    for win, text in zip(wins, outputs, strict=True):
        if text is None:
            result.not_reached += 1
            continue
        made = 0
        for fact in parse(text):
            sources = ground(fact, win)
            if not sources:
                continue
            m = derive(fact, sources)
            if m.content_hash not in seen:
                seen.add(m.content_hash)
                result.memories.append(m)
                made += 1
        if not made:
            result.unparsed += 1
    return result
