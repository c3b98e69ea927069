"""Import a mem0 export: what mem0's ``Memory.get_all`` returns (mem0ai/mem0 docs).

Either ``{"results": [...]}`` or a plain list of items, each with ``id``, ``memory`` (the
text), ``hash``, ``metadata``, ``user_id``/``agent_id``/``run_id``, ``created_at`` and
``updated_at``. The id is kept, ``user_id`` becomes the owner, ``run_id`` the conversation,
``categories`` become tags, and everything else (``hash``, ``metadata``, ``agent_id``, ...)
goes to ``extra``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memos_cli.errors import SourceError
from memos_cli.memory import parse_time
from memos_cli.sources.base import Defaults, SourceResult, make_memory


def _items(data: Any) -> Any:
    return data.get("results") if isinstance(data, dict) else data


def looks_like(data: Any) -> bool:
    items = _items(data)
    return (isinstance(items, list) and bool(items)
            and all(isinstance(i, dict) and isinstance(i.get("memory"), str) for i in items)
            and any("hash" in i or "user_id" in i or "agent_id" in i for i in items))


def read(path: Path, shown: str, data: Any, defaults: Defaults) -> SourceResult:
    result = SourceResult(path=shown, format="mem0", sha256="", size=0)
    for i, item in enumerate(_items(data)):
        fields: dict[str, Any] = {}
        for key in ("created_at", "updated_at"):
            if isinstance(item.get(key), str):
                try:
                    fields[key] = parse_time(item[key])
                except ValueError as e:
                    raise SourceError(f"item {i}: bad {key} {item[key]!r}", path=path) from e
        gov = defaults.governance(fields.get("created_at"))
        if item.get("user_id"):
            gov["owner"] = str(item["user_id"])
        cats = item.get("categories") or (item.get("metadata") or {}).get("categories") or []
        gov["tags"] = tuple(dict.fromkeys((*gov["tags"], *(str(c) for c in cats))))
        extra = {k: v for k, v in item.items()
                 if k not in ("id", "memory", "user_id", "run_id", "created_at", "updated_at",
                              "categories") and v is not None}
        result.add(make_memory(
            path, f"item {i}", item["memory"], now=defaults.now,
            id=str(item["id"]) if item.get("id") else None, origin="import",
            semantic_type="fact", source_file=shown,
            conversation_id=str(item["run_id"]) if item.get("run_id") else None,
            extra=extra, **fields, **gov))
    result.notes.append(f"mapped {len(result.memories)} mem0 memories")
    return result
