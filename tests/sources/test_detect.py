"""Format detection, directory walks and the errors for bad sources."""

from pathlib import Path

import pytest

from memos_cli.errors import SourceError
from memos_cli.sources import Defaults, read_source, read_sources
from tests.conftest import CORPUS, FIXED_TIME

D = Defaults(now=FIXED_TIME)


def test_directory_walk_is_sorted_and_skips_others(tmp_path: Path) -> None:
    (tmp_path / "b.md").write_text("B")
    (tmp_path / "a.txt").write_text("A")
    (tmp_path / "img.png").write_bytes(b"\x89PNG")
    (tmp_path / ".hidden.md").write_text("H")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.jsonl").write_text('{"content": "C"}\n')
    got = read_sources([tmp_path], D)
    assert [Path(r.path).name for r in got.results] == ["a.txt", "b.md", "c.jsonl"]
    assert [Path(p).name for p in got.skipped] == ["img.png"]


def test_corpus_formats() -> None:
    got = read_sources([CORPUS], D)
    assert sorted({r.format for r in got.results}) == ["chat", "jsonl", "markdown", "text"]


@pytest.mark.parametrize("name, data, message", [
    ("x.pdf", b"%PDF", "unsupported file type '.pdf'"),
    ("x.json", b'{"a": ', "malformed JSON at line 1 column 7"),
    ("x.json", b'{"a": 1}', "JSON layout not recognised"),
    ("x.md", b"caf\xe9", "is not UTF-8"),
])
def test_bad_files(tmp_path: Path, name: str, data: bytes, message: str) -> None:
    p = tmp_path / name
    p.write_bytes(data)
    with pytest.raises(SourceError, match=message) as e:
        read_source(p, name, D)
    assert str(e.value).startswith(str(p) + ": ")


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file or directory"):
        read_sources([tmp_path / "nope.md"], D)
