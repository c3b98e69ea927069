"""The types every MemReader shares (spec §6.1): reader names, the pack-time budget, what one
reader made and what a run of them made. The readers themselves are the package's other
modules; :func:`memos_cli.readers.run_readers` runs them."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from memos_cli.cube.index import ReaderRows
from memos_cli.errors import UsageError
from memos_cli.memory import Memory
from memos_cli.models.fingerprint import fingerprint_digest

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
    fp = chat.fingerprint()
    return {"name": chat.name, "fingerprint": fp,
            "model_fingerprint_sha256": fingerprint_digest(fp)}
