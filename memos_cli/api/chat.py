"""A conversation with memory (``memos chat``; the MemOS paper's multi-turn scenario,
§7.2.1): before each answer the memories are retrieved (tier auto) and shown; after each
user turn its salient statements (:mod:`memos_cli.readers.salient`) are written as memories
of the user, dated at the turn and decided against what is held (spec §4.6), so a revision
supersedes what it revises.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from memos_cli.api.answering import AnswerOptions
from memos_cli.errors import MemosError, UsageError, one_line
from memos_cli.memory import format_time
from memos_cli.readers.salient import Salient, salient, salient_with_model

if TYPE_CHECKING:
    from memos_cli.api.session import Session

#: How chat finds what to remember: rules alone, or the local model judging each sentence.
EXTRACTORS = ("rules", "model")
COMMANDS = ("/forget ID", "/history ID", "/why ID", "/memories", "/quit")


@dataclass
class Turn:
    """One round: the user's text, the answer (``None`` for a command), the memories the
    answer used, what was remembered from the turn (``kind``: new, update, duplicate), and a
    command's output or error."""

    number: int
    user: str
    answer: str | None = None
    used: list[dict[str, Any]] = field(default_factory=list)
    remembered: list[dict[str, Any]] = field(default_factory=list)
    output: Any = None
    error: str | None = None
    quit: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"turn": self.number, "user": self.user, "answer": self.answer,
                "memories_used": self.used, "remembered": self.remembered,
                **({"output": self.output} if self.output is not None else {}),
                **({"error": self.error} if self.error else {})}


class Chat:
    """A conversation over a :class:`~memos_cli.api.Session` (a vault, or one cube).

    ``extract``: ``rules`` (no model call) or ``model`` (the chat model judges each sentence);
    ``answer``: whether to answer at all (``False`` only writes memories: a transcript
    replayed into memory); ``clock``: the time of each turn (default: now).
    """

    def __init__(self, session: Session, *, extract: str = "rules", tier: str = "auto",
                 k: int | None = None, max_new_tokens: int = 96, answer: bool = True,
                 clock: Callable[[], datetime] | None = None,
                 context_tokens: int | None = None) -> None:
        if extract not in EXTRACTORS:
            raise UsageError(f"--extract {extract!r} is not one of {', '.join(EXTRACTORS)}")
        self.session, self.extract, self.answering = session, extract, answer
        self.options = AnswerOptions(tier=tier, k=k, max_new_tokens=max_new_tokens,
                                     context_tokens=context_tokens)
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.id = f"chat-{uuid.uuid4().hex[:12]}"
        self.number = 0
        self.written: list[dict[str, Any]] = []
        self.transcript: list[dict[str, Any]] = []

    def turn(self, text: str) -> Turn:
        """Handle one line: a slash command, or a user turn (answered, then remembered)."""
        self.number += 1
        t = Turn(self.number, text)
        if text.startswith("/"):
            return self._command(t)
        when = self.clock()
        self.transcript.append({"role": "user", "name": self.session.actor, "content": text,
                                "timestamp": format_time(when)})
        try:
            if self.answering:
                got = self.session.answer(text, self.options)
                t.answer = got.answer
                t.used = [{"id": r.memory.id, "text": r.memory.render()} for r in got.memories]
                self.transcript.append({"role": "assistant", "content": got.answer,
                                        "timestamp": format_time(self.clock())})
            for s in self._salient(text):
                r = self.session.remember(s.text, speaker=self.session.actor,
                                          semantic_type=s.semantic_type, event_time=when,
                                          conversation_id=self.id,
                                          session_id=self.id, now=when)
                entry = {"id": r.memory.id, "kind": r.kind, "target": r.target,
                         "rule": r.rule, "text": s.text, "what": s.kind}
                t.remembered.append(entry)
                if r.kind != "duplicate":
                    self.written.append(entry)
        except MemosError as e:
            t.error = one_line(str(e))
        return t

    def _salient(self, text: str) -> list[Salient]:
        if self.extract == "model":
            return salient_with_model(text, self.session.chat())
        return salient(text)

    def _command(self, t: Turn) -> Turn:
        name, _, arg = t.user.strip().partition(" ")
        arg = arg.strip()
        try:
            if name in ("/quit", "/exit"):
                t.quit = True
            elif name == "/memories":
                t.output = list(self.written)
            elif name in ("/forget", "/history", "/why") and not arg:
                raise UsageError(f"{name} takes a memory id ({name} ID)")
            elif name == "/forget":
                gone = self.session.forget(arg)
                t.output = {"forgotten": gone.id, "text": gone.content}
            elif name == "/history":
                t.output = self.session.history(arg).to_dict()
            elif name == "/why":
                t.output = self.session.why(arg)
            else:
                raise UsageError(f"unknown command {name}; commands: {', '.join(COMMANDS)}")
        except MemosError as e:
            t.error = one_line(str(e))
        return t
