"""Plain text and Markdown: one memory per paragraph, with its line range and heading trail.

Chunking rules (spec/memcube.md §8.1): blank lines end a paragraph; in Markdown an ATX heading
(``#`` to ``######``) ends a paragraph and sets the section trail (``Budget > Q3``) for the
paragraphs under it, and a fenced code block is never split. A paragraph longer than
``max_chars`` is cut at line boundaries into several memories.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from memos_cli.errors import SourceError
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
    """Read a ``.txt`` or ``.md`` file into ``document_chunk`` memories of origin ``file``.
    Markdown's YAML front matter is parsed (:func:`front_matter`), not packed as text."""
    text = read_text(path)
    result = SourceResult(path=shown, format="markdown" if markdown else "text", sha256="",
                          size=0)
    fm = FrontMatter()
    if markdown:
        fm = front_matter(text, path)
        if fm.data:
            result.notes.append("front matter: " + ", ".join(sorted(fm.data)))
    gov = defaults.governance()
    if fm.tags:
        gov["tags"] = tuple(dict.fromkeys((*gov["tags"], *fm.tags)))
    for c in chunk(fm.body if markdown else text, markdown=markdown):
        section = " > ".join(s for s in (fm.title, c.section) if s) or None
        result.add(
            make_memory(
                path, f"lines {c.line_start + fm.offset}-{c.line_end + fm.offset}", c.text,
                now=defaults.now, origin="file", semantic_type="document_chunk",
                source_file=shown, line_start=c.line_start + fm.offset,
                line_end=c.line_end + fm.offset, section=section, speaker=fm.author,
                event_time=fm.date, extra={"front_matter": fm.rest} if fm.rest else {},
                **gov,
            )
        )
    return result


#: Largest front matter read (bytes of YAML).
MAX_FRONT_MATTER = 64 << 10


@dataclass
class FrontMatter:
    """Markdown front matter: the known keys mapped, the rest kept (JSON-safe) for ``extra``;
    ``body`` is the text after it and ``offset`` the lines it took."""

    data: dict[str, Any] = field(default_factory=dict)
    body: str = ""
    offset: int = 0
    title: str | None = None
    author: str | None = None
    date: datetime | None = None
    tags: tuple[str, ...] = ()
    rest: dict[str, Any] = field(default_factory=dict)


def front_matter(text: str, path: Path) -> FrontMatter:
    """Split YAML front matter (``---`` ... ``---`` at the top) off ``text`` and map ``title``
    (-> the section trail's first part), ``author`` (-> speaker), ``date`` (-> event time) and
    ``tags`` (-> tags). Parsed by python-frontmatter with PyYAML's safe loader; aliases are
    refused (they can expand without bound) and so is front matter over 64 KiB.

    Raises:
        SourceError: front matter that is not YAML, too large, or holds an alias.
    """
    import frontmatter
    import yaml

    if not text.startswith("---"):
        return FrontMatter(body=text)
    handler = frontmatter.default_handlers.YAMLHandler()
    try:
        raw, body = handler.split(text)
    except ValueError:
        return FrontMatter(body=text)  # a rule (---) at the top, not front matter
    if len(raw.encode()) > MAX_FRONT_MATTER:
        raise SourceError(f"front matter is over {MAX_FRONT_MATTER} bytes", path=path)
    try:
        if any(isinstance(e, yaml.AliasEvent) for e in yaml.parse(raw, Loader=yaml.SafeLoader)):
            raise SourceError("front matter uses YAML aliases; memos refuses them", path=path)
        data = handler.load(raw)
    except yaml.YAMLError as e:
        raise SourceError(f"front matter is not YAML: {str(e).splitlines()[0]}",
                          path=path) from e
    if not isinstance(data, dict):
        return FrontMatter(body=text)
    fm = FrontMatter(data=data, body=body, offset=text[: len(text) - len(body)].count("\n"))
    title, author, date, tags = (data.get(k) for k in ("title", "author", "date", "tags"))
    fm.title = str(title) if title is not None else None
    fm.author = str(author) if author is not None else None
    if isinstance(date, datetime):
        fm.date = date
    elif isinstance(date, dt.date):
        fm.date = datetime(date.year, date.month, date.day)
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",") if t.strip()]
    if isinstance(tags, list):
        fm.tags = tuple(str(t) for t in tags)
    fm.rest = json.loads(json.dumps({k: v for k, v in data.items()
                                     if k not in ("title", "author", "date", "tags")},
                                    default=str))
    return fm
