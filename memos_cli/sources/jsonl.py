"""JSONL: one memory per line (spec/memcube.md §8.2).

Each non-blank line is a JSON object with the memory text in ``content`` (or ``text`` or
``memory``). Keys that name a memory column are mapped to it; ``type`` and ``memory_type`` mean
``semantic_type``, ``role`` means ``speaker``, ``ttl`` (seconds) becomes ``expires_at``. Any other
key is kept in the memory's ``extra`` object, so nothing is dropped. ``content_hash`` is always
recomputed. ``valid_from`` means ``event_time`` (a memory is valid from its event time, spec
§4.6). A file with no event time on any line, whose lines carry a date under a name such as
``time`` or ``date``, gets a note saying that this key was kept in ``extra``, not read as the
event time.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from memos_cli.errors import SourceError
from memos_cli.memory import Memory, parse_time
from memos_cli.sources.base import Defaults, SourceResult, make_memory, parse_lines, read_lines

_CONTENT_KEYS = ("content", "text", "memory")
#: Longest ``ttl`` accepted, in seconds (about 3,000 years): longer ones overflow dates.
MAX_TTL_S = 1e11
_ALIASES = {"type": "semantic_type", "memory_type": "semantic_type", "role": "speaker",
            "valid_from": "event_time"}
#: Keys that often hold when a memory happened; kept in ``extra``, but named in a note when
#: a file gives no ``event_time`` (an appointment's ``date`` is not when it was said).
_TIME_LIKE = ("time", "date", "timestamp", "datetime", "when", "occurred_at")
_STR = ("id", "origin", "semantic_type", "source_file", "section", "conversation_id",
        "session_id", "turn_id", "speaker", "owner", "visibility", "parent_id", "supersedes",
        "superseded_by")
_INT = ("line_start", "line_end", "priority", "version")
_TIME = ("created_at", "updated_at", "event_time", "expires_at", "valid_to")
_LIST = ("readers", "sensitivity", "tags")
_DERIVED = ("content_hash",)
#: Columns where an explicit ``null`` means "none" rather than "use the pack default".
_NULLABLE = ("owner", "expires_at", "parent_id", "source_file", "line_start", "line_end",
             "section", "conversation_id", "session_id", "turn_id", "speaker", "event_time",
             "valid_to", "supersedes", "superseded_by", "supersession")


def parse_record(obj: Any) -> tuple[str, dict[str, Any]]:
    """Map one JSON object to ``(content, fields)`` for ``Memory.create``.

    Raises:
        ValueError: naming the offending key.
    """
    if not isinstance(obj, dict):
        raise ValueError("line is not a JSON object")
    content_key = next((k for k in _CONTENT_KEYS if k in obj), None)
    if content_key is None:
        raise ValueError("no 'content' (or 'text', 'memory') key")
    content = obj[content_key]
    if not isinstance(content, str):
        raise ValueError(f"'{content_key}' is not a string")
    fields: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    given: dict[str, str] = {}  # column -> the key that gave it
    ttl = None
    for key, value in obj.items():
        if key == content_key or key in _DERIVED:
            continue
        name = _ALIASES.get(str(key), str(key))
        if name in given:
            raise ValueError(f"'{key}' repeats '{given[name]}'")
        given[name] = key
        if value is None:
            if name in _NULLABLE:
                fields[name] = None
            elif name in _LIST:
                fields[name] = ()
            continue
        if name in _STR:
            if not isinstance(value, (str, int)) or isinstance(value, bool):
                raise ValueError(f"'{key}' is not a string")
            fields[name] = str(value)
        elif name in _INT:
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"'{key}' is not an integer")
            fields[name] = value
        elif name in _TIME:
            if not isinstance(value, str):
                raise ValueError(f"'{key}' is not an ISO 8601 string")
            fields[name] = parse_time(value)
        elif name in _LIST:
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"'{key}' is not a list of strings")
            fields[name] = tuple(value)
        elif name == "ttl":
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError("'ttl' is not a positive number of seconds")
            if value > MAX_TTL_S:
                raise ValueError(f"'ttl' of {value:.3g} seconds is over the {MAX_TTL_S:.0e} "
                                 "second limit (about 3,000 years)")
            ttl = timedelta(seconds=value)
        elif name == "extra":
            if not isinstance(value, dict):
                raise ValueError("'extra' is not an object")
            extra.update(value)
        elif name == "supersession":
            if not isinstance(value, dict) or not isinstance(value.get("rule"), str):
                raise ValueError("'supersession' is not an object with a 'rule' string")
            fields[name] = value
        else:
            extra[key] = value
    if ttl is not None:
        if "expires_at" in fields:
            raise ValueError("both 'ttl' and 'expires_at' are given")
        fields["_ttl"] = ttl
    fields["extra"] = extra
    return content, fields


def read(path: Path, shown: str, defaults: Defaults) -> SourceResult:
    """Read a JSONL file, streamed one line at a time; errors name the line number."""
    result = SourceResult(path=shown, format="jsonl", sha256="", size=0)
    for lineno, obj in parse_lines(read_lines(path), path):
        result.add(record_to_memory(obj, path, shown, lineno, defaults))
    if (key := _undated_time_key(result.memories)) is not None:
        result.notes.append(f"no line has an event_time, and '{key}' holds a date: it is kept "
                            "in extra, not read as the event time (name it event_time or "
                            "valid_from to date the memories; spec §8.2)")
    return result


def _undated_time_key(memories: list[Memory]) -> str | None:
    """The first of :data:`_TIME_LIKE` that holds an ISO 8601 time in a memory's ``extra``,
    when no memory has an event time; else ``None``."""
    if any(m.event_time is not None for m in memories):
        return None
    for m in memories:
        for key in _TIME_LIKE:
            value = m.extra.get(key)
            if isinstance(value, str):
                try:
                    parse_time(value)
                except ValueError:
                    continue
                return key
    return None


def record_to_memory(obj: Any, path: Path, shown: str, lineno: int, defaults: Defaults
                     ) -> Memory:
    """One JSON object (JSONL line ``lineno``, or a Markdown export's memory) as a memory.

    Raises:
        SourceError: naming the line and the key.
    """
    try:
        content, fields = parse_record(obj)
    except ValueError as e:
        raise SourceError(f"line {lineno}: {e}", path=path) from e
    ttl = fields.pop("_ttl", None)
    created = fields.get("created_at") or defaults.now
    merged = {**defaults.governance(created), **fields}
    if ttl is not None:
        try:
            merged["expires_at"] = created + ttl
        except OverflowError as e:
            raise SourceError(f"line {lineno}: created_at + ttl is past the year 9999",
                              path=path) from e
    merged.setdefault("origin", "import")
    merged.setdefault("semantic_type", "fact")
    if "source_file" not in fields:
        merged.update(source_file=shown, line_start=lineno, line_end=lineno)
    if merged.get("id") is None:
        merged.pop("id", None)
    return make_memory(path, f"line {lineno}", content, now=defaults.now, **merged)
