"""Chat transcripts: a JSON list of ``{"role", "content"}`` messages (spec/memcube.md §8.3).

Also accepted: ``{"messages": [...]}`` and OpenAI-style content lists
(``[{"type": "text", "text": ...}]``, whose text parts are joined). One memory per message:
``dialog_turn`` (``task_prompt`` for the system role), speaker = ``name`` or ``role``,
turn id = the 1-based message number, conversation id = the file name without suffix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memos_cli.errors import SourceError
from memos_cli.memory import parse_time
from memos_cli.sources.base import Defaults, SourceResult, make_memory


def looks_like(data: Any) -> bool:
    """True for a list of role/content messages or an object with such a ``messages`` list."""
    msgs = data.get("messages") if isinstance(data, dict) else data
    return (
        isinstance(msgs, list)
        and bool(msgs)
        and all(isinstance(m, dict) and "role" in m and "content" in m for m in msgs)
    )


def _text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        if all(isinstance(p, str) for p in parts):
            return "\n".join(p for p in parts if p)
    return None


def read(path: Path, shown: str, data: Any, defaults: Defaults) -> SourceResult:
    msgs = data["messages"] if isinstance(data, dict) else data
    result = SourceResult(path=shown, format="chat", sha256="", size=0)
    skipped = 0
    for i, msg in enumerate(msgs, start=1):
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str) \
                or "content" not in msg:
            raise SourceError(f"message {i}: not an object with a string 'role' and a "
                              "'content'", path=path)
        text = _text(msg["content"])
        if text is None:
            raise SourceError(f"message {i}: content is neither text nor a list of text parts",
                              path=path)
        if not text.strip():
            skipped += 1
            continue
        role = str(msg["role"])
        when = msg.get("timestamp") or msg.get("created_at")
        try:
            event_time = parse_time(when) if isinstance(when, str) else None
        except ValueError as e:
            raise SourceError(f"message {i}: bad timestamp {when!r}", path=path) from e
        extra = {k: v for k, v in msg.items()
                 if k not in ("role", "content", "name", "timestamp", "created_at")}
        result.add(
            make_memory(
                path, f"message {i}", text, now=defaults.now, origin="conversation",
                semantic_type="task_prompt" if role == "system" else "dialog_turn",
                source_file=shown, conversation_id=path.stem, turn_id=str(i),
                speaker=str(msg.get("name") or role), event_time=event_time,
                extra={"role": role, **extra}, **defaults.governance(),
            )
        )
    if skipped:
        result.notes.append(f"{skipped} empty messages skipped")
    return result
