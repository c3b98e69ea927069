"""Import a Letta agent file (``.af``, letta-ai/agent-file).

An agent file is JSON (some exports are a JSON string holding the JSON, which is read too)
with ``agents`` (each with ``messages``), ``blocks`` (core memory: ``label``, ``value``), and
``tools``. Memory blocks become memories (``persona`` as ``task_prompt``, others as ``fact``,
the label as section); messages become ``dialog_turn`` memories (system ones ``task_prompt``)
with role, agent and time. Fields without a column go to ``extra``. Tools are code, not
memory: they are skipped and counted, as are messages without text (tool calls).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memos_cli.errors import SourceError
from memos_cli.memory import parse_time
from memos_cli.sources.base import Defaults, SourceResult, load_json, make_memory, read_text


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content
                         if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def read(path: Path, shown: str, defaults: Defaults) -> SourceResult:
    data = load_json(path, read_text(path))
    if isinstance(data, str):  # double-encoded export
        data = load_json(path, data)
    if not isinstance(data, dict) or not isinstance(data.get("agents"), list):
        raise SourceError("not a Letta agent file (no 'agents' list)", path=path)
    result = SourceResult(path=shown, format="letta", sha256="", size=0)
    blocks = [b for b in data.get("blocks") or [] if isinstance(b, dict)]
    for agent in data["agents"]:
        if isinstance(agent, dict):
            blocks += [b for b in agent.get("memory_blocks") or [] if isinstance(b, dict)]
    empty_blocks = 0
    for i, block in enumerate(blocks):
        value = block.get("value")
        if not isinstance(value, str) or not value.strip():
            empty_blocks += 1
            continue
        label = str(block.get("label") or f"block-{i}")
        extra = {k: v for k, v in block.items() if k not in ("value", "label") and v is not None}
        result.add(make_memory(
            path, f"block {label}", value.strip(), now=defaults.now, origin="import",
            semantic_type="task_prompt" if label == "persona" else "fact", source_file=shown,
            section=label, extra=extra, **defaults.governance()))
    skipped_messages = 0
    for a, agent in enumerate(data["agents"]):
        if not isinstance(agent, dict):
            raise SourceError(f"agent {a} is not an object", path=path)
        conv = str(agent.get("id") or agent.get("name") or f"agent-{a}")
        for j, msg in enumerate(agent.get("messages") or []):
            text = _text(msg.get("content")) if isinstance(msg, dict) else ""
            if not text.strip():
                skipped_messages += 1
                continue
            role = str(msg.get("role") or "unknown")
            when = msg.get("created_at")
            try:
                event_time = parse_time(when) if isinstance(when, str) else None
            except ValueError:
                event_time = None
            extra = {k: v for k, v in msg.items()
                     if k not in ("content", "role", "created_at") and v is not None}
            extra["agent_name"] = agent.get("name")
            result.add(make_memory(
                path, f"agent {a} message {j}", text.strip(), now=defaults.now,
                origin="conversation", semantic_type="task_prompt" if role == "system"
                else "dialog_turn", source_file=shown, conversation_id=conv,
                turn_id=str(msg.get("id") or j), speaker=str(msg.get("name") or role),
                event_time=event_time, extra=extra, **defaults.governance()))
    tools = len(data.get("tools") or [])
    result.notes.append(f"mapped {len(result.memories)} memories from {len(blocks)} memory "
                        f"blocks and the agents' messages")
    skipped = [f"{n} {what}" for n, what in ((tools, "tools (code, not memory)"),
                                             (skipped_messages, "messages without text"),
                                             (empty_blocks, "empty blocks")) if n]
    if skipped:
        result.notes.append("skipped " + ", ".join(skipped))
    return result
