"""Markdown export (``memos dump --format markdown``) and its reader: lossless for the
plaintext tier (spec §8.7).

The file opens with the line :data:`MARKER`. Each memory is a level-2 heading (for people;
readers ignore headings and other prose), its content in a fenced block whose info string is
``memory`` and whose backtick fence is longer than any backtick run in the content, then its
other fields as one line of JSON (``Memory.to_dict()`` without ``content``, ASCII-escaped) in a
block fenced with three backticks and info string ``json``. Reading maps each memory exactly
as a JSONL line (§8.2), so a Markdown export imports to the same memories as a JSONL one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from memos_cli.errors import SourceError
from memos_cli.memory import Memory, derived_reader
from memos_cli.sources.base import Defaults, SourceResult, read_text
from memos_cli.sources.jsonl import record_to_memory

MARKER = "<!-- memos export: markdown 1 -->"
_OPEN = re.compile(r"^(`{3,})memory$")


def to_markdown(memories: Sequence[Memory], *, title: str) -> bytes:
    """The Markdown export of ``memories`` (UTF-8)."""
    parts = [MARKER, f"# {title}", ""]
    for i, m in enumerate(memories, start=1):
        runs = [len(r) for r in re.findall(r"`+", m.content)]
        fence = "`" * max(3, max(runs, default=0) + 1)
        heading = " ".join(m.content.split())[:60]
        if (reader := derived_reader(m)) is not None:
            heading = f"(derived by memos reader {reader}) {heading}"
        meta = {k: v for k, v in m.to_dict().items() if k != "content"}
        parts += [f"## {i}. {heading}", "", f"{fence}memory", m.content, fence, "",
                  "```json", json.dumps(meta, ensure_ascii=True), "```", ""]
    return "\n".join(parts).encode("utf-8")


def looks_like(text: str) -> bool:
    return text.startswith(MARKER)


def read(path: Path, shown: str, defaults: Defaults) -> SourceResult:
    """Read a Markdown export; errors name the line.

    Raises:
        SourceError: a content block without its closing fence or its JSON block, or JSON that
            is not a memory's fields.
    """
    lines = read_text(path).split("\n")
    result = SourceResult(path=shown, format="markdown-export", sha256="", size=0)
    n = 1
    while n < len(lines):
        opened = _OPEN.match(lines[n])
        if not opened:
            n += 1
            continue
        start, fence = n + 1, opened.group(1)
        try:
            end = lines.index(fence, start)
        except ValueError as e:
            raise SourceError(f"line {start}: memory block is not closed by {fence}",
                              path=path) from e
        content = "\n".join(lines[start:end])
        j = end + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        if j + 2 >= len(lines) or lines[j] != "```json" or lines[j + 2] != "```":
            raise SourceError(f"line {j + 1}: expected the memory's ```json block",
                              path=path)
        try:
            meta = json.loads(lines[j + 1])
        except json.JSONDecodeError as e:
            raise SourceError(f"line {j + 2}: malformed JSON: {e.msg}", path=path) from e
        if not isinstance(meta, dict) or "content" in meta:
            raise SourceError(f"line {j + 2}: not a memory's fields", path=path)
        result.add(record_to_memory({**meta, "content": content}, path, shown,
                                                start, defaults))
        n = j + 3
    return result
