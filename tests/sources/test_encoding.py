"""#28: one Latin-1 file aborted a whole folder pack; --encoding reads it, --skip-unreadable
leaves it out, says which and counts it."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from memos_cli.cli.app import app
from memos_cli.cube import open_cube

runner = CliRunner()


def folder(tmp_path: Path) -> Path:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("# A\n\nThe café opens at eight.\n", encoding="utf-8")
    (notes / "b.md").write_bytes("# B\n\nJürgen ordered the crème brûlée.\n".encode("latin-1"))
    return notes


def test_a_latin1_file_fails_with_a_hint(tmp_path: Path) -> None:
    r = runner.invoke(app, ["pack", str(folder(tmp_path)), "-o", str(tmp_path / "x.memcube")])
    assert r.exit_code == 3 and "b.md" in r.stderr and "--encoding" in r.stderr
    assert "--skip-unreadable" in r.stderr and not (tmp_path / "x.memcube").exists()


def test_skip_unreadable_reports_and_counts(tmp_path: Path) -> None:
    out = tmp_path / "x.memcube"
    r = runner.invoke(app, ["pack", str(folder(tmp_path)), "-o", str(out),
                            "--skip-unreadable", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["memories"] == 1 and len(data["unreadable_files"]) == 1
    assert data["unreadable_files"][0].startswith("notes/b.md: is not UTF-8 text")
    assert "skipped 1 unreadable files" in r.stderr
    assert [m.content for m in open_cube(out).memories] == ["The café opens at eight."]


def test_encoding_reads_the_whole_folder(tmp_path: Path) -> None:
    notes = folder(tmp_path)
    (notes / "a.md").write_bytes("# A\n\nThe café opens at eight.\n".encode("latin-1"))
    out = tmp_path / "x.memcube"
    r = runner.invoke(app, ["pack", str(notes), "-o", str(out), "--encoding", "latin-1"])
    assert r.exit_code == 0, r.output
    assert sorted(m.content for m in open_cube(out).memories) == [
        "Jürgen ordered the crème brûlée.", "The café opens at eight."]
    bad = runner.invoke(app, ["pack", str(notes), "-o", str(tmp_path / "y.memcube"),
                              "--encoding", "klingon"])
    assert bad.exit_code == 2 and "--encoding 'klingon'" in bad.output
