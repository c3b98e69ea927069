"""MkDocs hook: the spec page (docs/spec.md) is spec/memcube.md, read whole at build time so
the format has one text. Its relative links name files beside it in the repository (the JSON
Schema, the goldens, the conformance vectors); on the site they become the repository path in
code, since those files are not pages."""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

LINK = re.compile(r"\[([^\]]+)\]\(((?!https?://|#)[^)\s]+)\)")
SPEC = Path(__file__).resolve().parents[1] / "spec" / "memcube.md"


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if page.file.src_uri != "spec.md":
        return markdown

    def repo_path(m: re.Match[str]) -> str:
        target = m.group(2)
        if target.endswith(".md"):
            return m.group(0)
        where = posixpath.normpath(posixpath.join("spec", target))
        return f"{m.group(1)} (repository: `{where}`)"

    return LINK.sub(repo_path, SPEC.read_text(encoding="utf-8"))
