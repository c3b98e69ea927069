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

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from memos_cli.cube.index import ReaderRows
from memos_cli.errors import UsageError
from memos_cli.memory import Memory, derived_reader

#: Reader names, in the order they run and are recorded. Derived memories never get reader
#: rows of their own.
READERS = ("context", "questions", "facts")
MODEL_READERS = ("questions", "facts")

Progress = Callable[[str, int, int], None]


def parse_names(names: Sequence[str]) -> list[str]:
    """``["context,questions", "facts"]`` -> ``["context", "questions", "facts"]``, in
    :data:`READERS` order, without repeats.

    Raises:
        UsageError: an unknown reader name (names the known ones).
    """
    wanted = {n.strip() for item in names for n in item.split(",") if n.strip()}
    unknown = sorted(wanted - set(READERS))
    if unknown:
        raise UsageError(f"--reader {unknown[0]!r} is not a reader; the readers are "
                         f"{', '.join(READERS)}")
    return [n for n in READERS if n in wanted]


@dataclass
class Budget:
    """A pack-time budget for the model readers: ``seconds`` of wall time and/or ``tokens``
    (prompt plus generated), shared by every reader of one run. ``None`` is unlimited. The
    clock starts when the readers start (:func:`run_readers`), after the model is loaded."""

    seconds: float | None = None
    tokens: int | None = None
    started: float = field(default_factory=time.perf_counter)
    spent_tokens: int = 0

    @classmethod
    def parse(cls, text: str | None) -> Budget:
        """``"600"``/``"600s"``/``"10m"``/``"1h"`` (time) or ``"200000tok"`` (tokens).

        Raises:
            UsageError: anything else, or a value that is not positive.
        """
        if text is None:
            return cls()
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h|tok|tokens)?\s*", text)
        if not m or float(m.group(1)) <= 0:
            raise UsageError(f"--reader-budget {text!r} is not a positive number of seconds "
                             "(600, 600s, 10m, 1h) or tokens (200000tok)")
        value, unit = float(m.group(1)), m.group(2) or "s"
        if unit in ("tok", "tokens"):
            return cls(tokens=int(value))
        return cls(seconds=value * {"s": 1, "m": 60, "h": 3600}[unit])

    def spend(self, tokens: int) -> None:
        self.spent_tokens += tokens

    def exhausted(self) -> bool:
        if self.tokens is not None and self.spent_tokens >= self.tokens:
            return True
        return self.seconds is not None and time.perf_counter() - self.started >= self.seconds

    def describe(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "tokens": self.tokens}


@dataclass
class ReaderResult:
    """What one reader made: index ``rows`` (memory id, text), derived ``memories``, and
    counts: ``unparsed`` (model outputs that gave nothing usable, parsed or kept),
    ``not_reached`` (memories or windows left when the budget ran out)."""

    name: str
    options: dict[str, Any]
    rows: list[tuple[str, str]] = field(default_factory=list)
    memories: list[Memory] = field(default_factory=list)
    unparsed: int = 0
    not_reached: int = 0
    seconds: float = 0.0
    model: dict[str, Any] | None = None

    def record(self) -> dict[str, Any]:
        """The manifest's ``readers`` entry (spec §6.1)."""
        return {"name": self.name, "options": dict(self.options), "model": self.model,
                "index_rows": len(self.rows), "derived_memories": len(self.memories),
                "unparsed": self.unparsed, "not_reached": self.not_reached,
                "seconds": round(self.seconds, 3)}


@dataclass
class ReaderRun:
    """Every reader of one pack: results in :data:`READERS` order."""

    results: list[ReaderResult]

    @property
    def memories(self) -> list[Memory]:
        return [m for r in self.results for m in r.memories]

    def rows(self) -> ReaderRows:
        """The index rows of every reader, not yet embedded."""
        ids, kinds, texts = [], [], []
        for r in self.results:
            for mid, text in r.rows:
                ids.append(mid)
                kinds.append(r.name)
                texts.append(text)
        return ReaderRows(ids, kinds, texts)

    def records(self) -> list[dict[str, Any]]:
        return [r.record() for r in self.results]


def model_record(chat: Any) -> dict[str, Any]:
    """``{"name", "fingerprint", "model_fingerprint_sha256"}`` of the model a reader used."""
    from memos_cli.models.fingerprint import fingerprint_digest

    fp = chat.fingerprint()
    return {"name": chat.name, "fingerprint": fp,
            "model_fingerprint_sha256": fingerprint_digest(fp)}


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
    from memos_cli.readers import context, facts, questions

    chosen = parse_names(names)
    own = [m for m in memories if derived_reader(m) is None]
    budget = budget or Budget()
    options = options or {}
    if chat is None and any(n in MODEL_READERS for n in chosen):
        from memos_cli.models.chat import load

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
