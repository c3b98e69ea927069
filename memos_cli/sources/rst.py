"""reStructuredText (``.rst``): parsed with docutils, one memory per run of blocks of one
section, up to ``text.MAX_CHARS`` characters (spec §8.1).

Blocks are paragraphs (list items and definitions included) and literal blocks, with their
section trail (``Guide > Install``) and line numbers. Directives that read files or pass raw
content (``include``, ``raw``) are disabled, so a source never pulls in another file, and
docutils' warnings are not printed.
"""

from __future__ import annotations

import io
from pathlib import Path

from memos_cli.sources.base import Defaults, SourceResult, make_memory, read_text
from memos_cli.sources.text import MAX_CHARS

SETTINGS = {"file_insertion_enabled": False, "raw_enabled": False, "report_level": 5,
            "halt_level": 5, "input_encoding": "unicode", "_disable_config": True,
            "doctitle_xform": False, "sectsubtitle_xform": False}


def blocks(text: str) -> list[tuple[str | None, int, int, str]]:
    """``(section trail, first line, last line, text)`` of each block, in document order."""
    from docutils import nodes
    from docutils.core import publish_doctree

    tree = publish_doctree(text, settings_overrides={**SETTINGS,
                                                     "warning_stream": io.StringIO()})
    out = []
    for n in tree.findall(lambda n: isinstance(n, (nodes.paragraph, nodes.literal_block))):
        if n.line is None or any(isinstance(a, nodes.system_message) for a in _ancestors(n)):
            continue
        trail = [s[0].astext() for s in _ancestors(n)
                 if isinstance(s, nodes.section) and s.children
                 and isinstance(s[0], nodes.title)]
        body = n.astext().strip()
        if body:
            out.append((" > ".join(reversed(trail)) or None, n.line, n.line + body.count("\n"),
                        body))
    return out


def _ancestors(node: object) -> list[object]:
    out = []
    p = getattr(node, "parent", None)
    while p is not None:
        out.append(p)
        p = getattr(p, "parent", None)
    return out


def read(path: Path, shown: str, defaults: Defaults) -> SourceResult:
    """Read a ``.rst`` file into ``document_chunk`` memories. Raises ``SourceError``."""
    # provenance records the reader family "text" (spec §5 lists the formats a 1.3 reader knows)
    result = SourceResult(path=shown, format="text", sha256="", size=0,
                          notes=["read as reStructuredText (docutils)"])
    run: list[tuple[str | None, int, int, str]] = []

    def flush() -> None:
        if run:
            result.add(make_memory(
                path, f"lines {run[0][1]}-{run[-1][2]}", "\n\n".join(b[3] for b in run),
                now=defaults.now, origin="file", semantic_type="document_chunk",
                source_file=shown, line_start=run[0][1], line_end=max(b[2] for b in run),
                section=run[0][0], **defaults.governance()))
            run.clear()

    for b in blocks(read_text(path)):
        if run and (b[0] != run[0][0] or sum(len(x[3]) for x in run) + len(b[3]) > MAX_CHARS):
            flush()
        run.append(b)
    flush()
    return result
