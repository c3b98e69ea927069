"""Import a MemCube directory written by MemOS (MemTensor/MemOS ``GeneralMemCube``).

Such a directory holds ``config.json`` and, for its textual memory, a JSON file named by
``text_mem.config.memory_filename`` (default ``textual_memory.json``) in one of two forms:

- ``general_text``: a list of ``{"id", "vector", "payload": {"id", "memory", "metadata"}}``
  (older dumps put ``memory`` and ``metadata`` at the top level);
- ``tree_text``: ``{"nodes": [{"id", "memory", "metadata"}], "edges": [...]}``.

Each memory becomes one memos memory of origin ``import``; known metadata is mapped
(``type`` -> semantic type, ``memory_time`` -> event time, ``user_id`` -> owner, ``tags``,
``session_id``, ``source``, ``updated_at``/``created_at``; a node ``status`` of ``archived``
or ``deleted`` ends the memory's validity at its ``updated_at``, spec §4.6), and every other
field, the MemOS
id and the graph edges go to ``extra``. The stored vectors are dropped (another embedder made
them; memos re-embeds). The activation memory (``activation_memory.pickle``) is a Python
pickle, so it is refused, never unpickled, and its KV cache is not imported (rebuild it with
``memos convert --to kv``); the parametric memory (a LoRA placeholder in MemOS) is skipped.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from memos_cli import strictjson
from memos_cli.digest import sha256_file
from memos_cli.errors import SourceError
from memos_cli.memory import parse_time
from memos_cli.sources.base import Defaults, SourceResult, load_json, make_memory, read_text

#: The textual memory file MemOS writes by default.
DEFAULT_FILE = "textual_memory.json"
_TYPE_MAP = {"fact": "fact", "opinion": "preference", "preference": "preference",
             "event": "event", "procedure": "task_prompt", "dialog": "dialog_turn"}


def looks_like(path: Path) -> bool:
    """A MemOS cube directory: a ``config.json`` whose ``model_schema`` names MemOS, or, as
    MemOS's tree-memory dump writes it, a directory holding ``textual_memory.json`` and no
    ``config.json``."""
    cfg = path / "config.json"
    if not path.is_dir():
        return False
    if cfg.is_symlink():  # read() refuses it by name, rather than a walk skipping it
        return True
    if not cfg.exists():
        return (path / DEFAULT_FILE).is_file() and not (path / "manifest.json").exists()
    try:
        data = strictjson.loads(read_text(cfg))
    except (SourceError, ValueError):  # a link, a FIFO, not JSON: read_source names it later
        return False
    return isinstance(data, dict) and "memos" in str(data.get("model_schema", "")).lower()


def looks_like_data(data: Any) -> bool:
    """MemOS textual memory given as a file: a ``tree_text`` ``{"nodes": [...], "edges"}``
    object whose nodes hold ``memory``, or a ``general_text`` list of ``{"payload":
    {"memory"}}`` items."""
    if isinstance(data, dict) and isinstance(data.get("nodes"), list):
        return all(isinstance(n, dict) and "memory" in n for n in data["nodes"][:20])
    if isinstance(data, list) and data:
        return all(isinstance(i, dict) and isinstance(i.get("payload"), dict)
                   and "memory" in i["payload"] for i in data[:20])
    return False


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


def read(path: Path, shown: str, defaults: Defaults) -> SourceResult:
    """Read the textual memory of a MemOS cube directory (with or without its
    ``config.json``). Raises ``SourceError``."""
    result = SourceResult(path=shown, format="memos", sha256="", size=0)
    backend, name = None, DEFAULT_FILE
    if (path / "config.json").exists():
        config = load_json(path / "config.json", read_text(path / "config.json"))
        if not isinstance(config, dict):
            raise SourceError("config.json is not an object", path=path / "config.json")
        text_cfg = config.get("text_mem") or {}
        backend = text_cfg.get("backend")
        name = (text_cfg.get("config") or {}).get("memory_filename") or DEFAULT_FILE
        if "/" in name or "\\" in name or name.startswith("."):
            raise SourceError(f"memory_filename {name!r} points outside the cube",
                              path=path / "config.json")
        if (config.get("para_mem") or {}).get("backend"):
            result.notes.append("skipped the parametric memory (MemOS stores a placeholder)")
    else:
        result.notes.append(f"no config.json: read {name} as MemOS's tree-memory dump")
    for pickled in sorted(path.glob("*.pickle")) + sorted(path.glob("*.pkl")):
        result.notes.append(f"refused {pickled.name}: a Python pickle can run code when "
                            "loaded, so memos never unpickles it; its KV cache is not "
                            "imported (rebuild one with `memos convert --to kv`)")
    mem_path = path / name
    if not mem_path.is_file():
        raise SourceError(f"textual memory file {name} is missing", path=path)
    data = load_json(mem_path, read_text(mem_path))
    result.sha256, result.size = sha256_file(mem_path), mem_path.stat().st_size
    return read_data(mem_path, f"{shown}/{name}", data, defaults, result, backend)


def read_data(mem_path: Path, source_file: str, data: Any, defaults: Defaults,
              result: SourceResult, backend: str | None = None) -> SourceResult:
    """Map MemOS textual memory ``data`` (read from ``mem_path``) into ``result``.
    Raises ``SourceError``."""
    edges: list[Any] = []
    if isinstance(data, dict) and isinstance(data.get("nodes"), list):
        items, edges = data["nodes"], list(data.get("edges") or [])
        form = "tree_text"
    elif isinstance(data, list):
        items, form = data, "general_text"
    else:
        raise SourceError("textual memory is neither a general_text list nor a tree_text "
                          "{nodes, edges} object", path=mem_path)
    if backend and backend not in ("general_text", "tree_text", "naive_text"):
        result.notes.append(f"text backend {backend!r} read as {form}")
    dropped_vectors = 0
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise SourceError(f"memory {i} is not an object", path=mem_path)
        payload: dict[str, Any] = item["payload"] if isinstance(item.get("payload"), dict) \
            else item
        text = payload.get("memory")
        if not isinstance(text, str):
            raise SourceError(f"memory {i} has no 'memory' text", path=mem_path)
        meta = dict(payload.get("metadata") or {})
        if "vector" in item or "embedding" in meta:
            dropped_vectors += 1
            meta.pop("embedding", None)
        mtype = _TYPE_MAP.get(str(meta.pop("type", "")).lower(), "fact")
        event_time = _time(meta.pop("memory_time", None))
        created = _time(meta.pop("created_at", None))
        updated = _time(meta.pop("updated_at", None))
        # MemOS's node status: an archived or deleted memory ended (spec §4.6); its last
        # update is when, never before it began
        status = str(meta.get("status") or "")
        ended = None
        if status in ("archived", "deleted"):
            start = event_time or created or defaults.now
            ended = max(updated or start, start)
        owner = meta.pop("user_id", None)
        tags = tuple(str(t) for t in meta.pop("tags", None) or ())
        session = meta.pop("session_id", None)
        mid = str(item.get("id") or payload.get("id") or "")
        extra = {"memos_id": mid, "memos_form": form,
                 **{k: v for k, v in meta.items() if v is not None}}
        node_edges = [e for e in edges if isinstance(e, dict)
                      and mid in (e.get("source"), e.get("target"))]
        if node_edges:
            extra["edges"] = node_edges
        gov = defaults.governance(created)
        if owner:
            gov["owner"] = str(owner)
        gov["tags"] = tuple(dict.fromkeys((*gov["tags"], *tags)))
        result.add(make_memory(
            mem_path, f"memory {i}", text, now=defaults.now, created_at=created,
            updated_at=updated, origin="import", semantic_type=mtype,
            source_file=source_file, session_id=str(session) if session else None,
            event_time=event_time, extra=extra, valid_to=ended, **gov))
    if dropped_vectors:
        result.notes.append(f"dropped {dropped_vectors} stored vectors (memos re-embeds)")
    result.notes.append(f"mapped {len(result.memories)} {form} memories")
    return result
