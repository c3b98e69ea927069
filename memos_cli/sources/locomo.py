"""LoCoMo conversations (Maharana et al., ACL 2024; snap-research/locomo): one memory per turn.

Accepted layouts: the conversation object itself (``speaker_a``, ``session_N``,
``session_N_date_time`` ...) or a sample holding it under ``conversation`` (locomo10.json).
Each turn becomes a ``dialog_turn`` memory of origin ``conversation`` with speaker, session id
(``session_N``), turn id (``dia_id``, e.g. ``D1:3``) and the session date as ``event_time``. A
shared image is kept in the text as ``[shares a photo: CAPTION]`` (its caption is what the other
speaker sees), and the image URL and search query go to ``extra``. The QA annotations,
summaries, observations and event lists are not memories; the pack report names them.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

from memos_cli.errors import SourceError
from memos_cli.sources.base import Defaults, SourceResult, make_memory

_SESSION = re.compile(r"^session_(\d+)$")


def looks_like(data: Any) -> bool:
    conv = data.get("conversation", data) if isinstance(data, dict) else None
    return isinstance(conv, dict) and "speaker_a" in conv and any(
        _SESSION.match(k) for k in conv)


def parse_date(text: str) -> datetime | None:
    """``'1:56 pm on 8 May, 2023'`` -> ``datetime(2023, 5, 8, 13, 56)`` (read as UTC)."""
    for fmt in ("%I:%M %p on %d %B, %Y", "%I:%M %p on %d %b, %Y"):
        try:
            return datetime.strptime(text.strip(), fmt)
        except ValueError:
            pass
    return None


def read(path: Path, shown: str, data: dict[str, Any], defaults: Defaults) -> SourceResult:
    conv = data.get("conversation", data)
    conv_id = str(data.get("sample_id") or path.stem)
    result = SourceResult(path=shown, format="locomo", sha256="", size=0)
    sessions = sorted((int(m.group(1)), k) for k in conv if (m := _SESSION.match(k)))
    undated = 0
    for number, key in sessions:
        turns = conv[key]
        if not isinstance(turns, list):
            raise SourceError(f"{key} is not a list of turns", path=path)
        raw_date = conv.get(f"{key}_date_time")
        when = parse_date(raw_date) if isinstance(raw_date, str) else None
        if when is None:
            undated += 1
        for j, turn in enumerate(turns):
            if not isinstance(turn, dict) or not isinstance(turn.get("text"), str):
                raise SourceError(f"{key} turn {j}: not an object with a 'text' string",
                                  path=path)
            text = turn["text"]
            caption = turn.get("blip_caption")
            if isinstance(caption, str) and caption.strip():
                text = f"{text} [shares a photo: {caption.strip()}]"
            extra = {k: v for k, v in turn.items()
                     if k not in ("speaker", "dia_id", "text")}
            if when is None and raw_date:
                extra["session_date_time"] = raw_date
            result.add(
                make_memory(
                    path, f"{key} turn {j}", text, now=defaults.now, origin="conversation",
                    semantic_type="dialog_turn", source_file=shown, conversation_id=conv_id,
                    session_id=f"session_{number}", turn_id=str(turn.get("dia_id", j)),
                    speaker=str(turn["speaker"]) if turn.get("speaker") else None,
                    event_time=when, extra=extra,
                    **defaults.governance(),
                )
            )
    not_memories = sorted(k for k in (*data, *conv) if k == "qa" or k.startswith(
        ("event_summary", "events_session", "observation", "session_summary"))
        or k.endswith(("_observation", "_summary")))
    if not_memories:
        result.notes.append(f"not packed as memories: {len(not_memories)} annotation keys "
                            f"(qa, summaries, observations, events)")
    if undated:
        result.notes.append(f"{undated} sessions without a parseable date")
    return result
