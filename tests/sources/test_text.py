"""Paragraph/heading chunking with line ranges (spec §8.1)."""

import itertools
from pathlib import Path

from memos_cli.sources import Defaults, read_source
from memos_cli.sources.text import chunk
from tests.conftest import CORPUS, FIXED_TIME

MD = """# Title

First paragraph
goes on.

## Sub

Second.
```
# not a heading

still code
```
### Deeper ###
Third.
# Other
Fourth.
"""


def test_markdown_chunks_sections_and_lines() -> None:
    got = [(c.text.splitlines()[0], c.line_start, c.line_end, c.section)
           for c in chunk(MD, markdown=True)]
    assert got == [
        ("First paragraph", 3, 4, "Title"),
        ("Second.", 8, 13, "Title > Sub"),
        ("Third.", 15, 15, "Title > Sub > Deeper"),
        ("Fourth.", 17, 17, "Other"),
    ]
    code = chunk(MD, markdown=True)[1].text
    assert "# not a heading" in code and "still code" in code


def test_plain_text_ignores_headings() -> None:
    got = chunk("# not a heading\nline\n\nnext", markdown=False)
    assert [(c.text, c.line_start, c.line_end, c.section) for c in got] == [
        ("# not a heading\nline", 1, 2, None), ("next", 4, 4, None)]


def test_long_paragraph_is_cut_at_lines() -> None:
    text = "\n".join(f"line {i} " + "x" * 90 for i in range(40))
    parts = chunk(text, markdown=False, max_chars=500)
    assert len(parts) > 1
    assert all(len(p.text) <= 500 for p in parts)
    assert parts[0].line_start == 1 and parts[-1].line_end == 40
    assert all(a.line_end + 1 == b.line_start for a, b in itertools.pairwise(parts))


def test_read_markdown_file_keeps_provenance() -> None:
    path = CORPUS / "notes" / "budget-meeting.md"
    res = read_source(path, "notes/budget-meeting.md", Defaults(now=FIXED_TIME, owner="o"))
    assert res.format == "markdown" and res.size == path.stat().st_size
    cap = next(m for m in res.memories if "48,000" in m.content)
    lines = path.read_text().splitlines()[cap.line_start - 1:cap.line_end]
    assert "\n".join(lines) == cap.content
    assert cap.section == "Budget meeting, 14 March 2026 > Decisions"
    assert cap.source_file == "notes/budget-meeting.md" and cap.owner == "o"
    assert cap.semantic_type == "document_chunk" and cap.origin == "file"


def test_empty_text_file_gives_no_memories(tmp_path: Path) -> None:
    p = tmp_path / "empty.md"
    p.write_text("\n\n# Only a heading\n\n")
    assert read_source(p, "empty.md", Defaults(now=FIXED_TIME)).memories == []
