"""Plain text and Markdown: one memory per paragraph, with its line range and heading trail.

Chunking rules (spec/memcube.md §8.1): blank lines end a paragraph; in Markdown an ATX heading
(``#`` to ``######``) ends a paragraph and sets the section trail (``Budget > Q3``) for the
paragraphs under it, and a fenced code block is never split. A paragraph longer than
``max_chars`` is cut at line boundaries into several memories.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from memos_cli.sources.base import Defaults, SourceResult, make_memory, read_text

_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
MAX_CHARS = 1500


@dataclass(frozen=True)
class Chunk:
    text: str
    line_start: int  # 1-based, inclusive
    line_end: int
    section: str | None


def chunk(text: str, *, markdown: bool, max_chars: int = MAX_CHARS) -> list[Chunk]:
    """Split ``text`` into paragraph chunks; see the module docstring for the rules."""
    chunks: list[Chunk] = []
    trail: list[tuple[int, str]] = []
    para: list[tuple[int, str]] = []
    fence: str | None = None

    def section() -> str | None:
        return " > ".join(t for _, t in trail) or None

    def flush() -> None:
        while para and not para[-1][1].strip():
            para.pop()
        piece: list[tuple[int, str]] = []
        size = 0
        for lineno, line in para:
            if piece and size + len(line) + 1 > max_chars:
                chunks.append(_make(piece, section()))
                piece, size = [], 0
            piece.append((lineno, line))
            size += len(line) + 1
        if piece:
            chunks.append(_make(piece, section()))
        para.clear()

    for lineno, line in enumerate(text.splitlines(), start=1):
        if markdown:
            fm = _FENCE.match(line)
            if fence is not None:
                para.append((lineno, line))
                if fm and fm.group(1)[0] == fence[0] and len(fm.group(1)) >= len(fence):
                    fence = None
                continue
            if fm:
                fence = fm.group(1)
                para.append((lineno, line))
                continue
            hm = _HEADING.match(line)
            if hm:
                flush()
                level = len(hm.group(1))
                trail = [(lv, t) for lv, t in trail if lv < level]
                if hm.group(2):
                    trail.append((level, hm.group(2)))
                continue
        if not line.strip():
            flush()
        else:
            para.append((lineno, line))
    flush()
    return chunks


def _make(lines: list[tuple[int, str]], section: str | None) -> Chunk:
    return Chunk("\n".join(t for _, t in lines).strip(), lines[0][0], lines[-1][0], section)


def read(path: Path, shown: str, defaults: Defaults, *, markdown: bool) -> SourceResult:
    """Read a ``.txt`` or ``.md`` file into ``document_chunk`` memories of origin ``file``."""
    text = read_text(path)
    result = SourceResult(path=shown, format="markdown" if markdown else "text", sha256="",
                          size=0)
    for c in chunk(text, markdown=markdown):
        result.add(
            make_memory(
                path, f"lines {c.line_start}-{c.line_end}", c.text,
                now=defaults.now, origin="file", semantic_type="document_chunk",
                source_file=shown, line_start=c.line_start, line_end=c.line_end,
                section=c.section, **defaults.governance(),
            )
        )
    return result
