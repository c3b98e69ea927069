"""Documentation sources as packages ship them (#12): reStructuredText, YAML front matter,
files without an extension, and source paths recorded without the machine's layout."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from memos_cli.errors import SourceError
from memos_cli.sources import Defaults, read_sources

NOW = datetime(2025, 1, 1, tzinfo=timezone.utc)
RST = """Guide
=====

memos packs memories.

Install
-------

Run ``pip install memos``
on any machine.

::

   memos pack notes/ -o team.memcube

.. include:: /etc/passwd

.. raw:: html

   <script>alert(1)</script>
"""


def test_rst_sections_lines_and_no_file_inclusion(tmp_path: Path) -> None:
    p = tmp_path / "guide.rst"
    p.write_text(RST)
    res = read_sources([p], Defaults(now=NOW)).results[0]
    texts = [m.content for m in res.memories]
    assert texts[0] == "memos packs memories." and res.memories[0].section == "Guide"
    install = res.memories[1]
    assert install.section == "Guide > Install" and install.line_start == 9
    assert "memos pack notes/" in install.content
    assert not any("root:" in t or "<script>" in t for t in texts)  # include/raw disabled


FRONT = """---
title: Release notes
author: Ilse
date: 2024-05-08
tags: [release, budget]
audience: ops
---
# 1.0

The budget is 40k.
"""


def test_front_matter_is_mapped_not_packed(tmp_path: Path) -> None:
    p = tmp_path / "notes.md"
    p.write_text(FRONT)
    res = read_sources([p], Defaults(now=NOW, tags=("team",))).results[0]
    assert len(res.memories) == 1
    m = res.memories[0]
    assert m.content == "The budget is 40k." and "title:" not in m.content
    assert m.section == "Release notes > 1.0" and m.speaker == "Ilse"
    assert m.event_time == datetime(2024, 5, 8, tzinfo=timezone.utc)
    assert m.tags == ("team", "release", "budget") and m.extra == {"front_matter":
                                                                   {"audience": "ops"}}
    assert m.line_start == 10  # lines of the file, front matter counted


def test_front_matter_aliases_are_refused(tmp_path: Path) -> None:
    p = tmp_path / "bomb.md"
    p.write_text("---\na: &a [x, x]\nb: [*a, *a]\n---\nbody\n")
    with pytest.raises(SourceError, match="aliases"):
        read_sources([p], Defaults(now=NOW))


def test_extensionless_files_when_asked(tmp_path: Path) -> None:
    d = tmp_path / "pkg"
    d.mkdir()
    (d / "METADATA").write_text("Name: memos\n\nA memory toolkit.\n")
    (d / "a.md").write_text("hello\n")
    skipped = read_sources([d], Defaults(now=NOW))
    assert any(s.endswith("METADATA") for s in skipped.skipped)
    taken = read_sources([d], Defaults(now=NOW, extensionless="text"))
    assert sorted(r.path.rsplit("/", 1)[-1] for r in taken.results) == ["METADATA", "a.md"]


def test_absolute_paths_are_recorded_relative(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "docs"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "x.md").write_text("tea\n")
    monkeypatch.chdir(tmp_path)
    inside = read_sources([d.resolve()], Defaults(now=NOW)).results[0]
    assert inside.path == "docs/sub/x.md" and inside.memories[0].source_file == "docs/sub/x.md"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the working directory plays no part (spec §5)
    assert read_sources([d.resolve()], Defaults(now=NOW)).results[0].path == "docs/sub/x.md"
    monkeypatch.chdir(d / "sub")
    assert read_sources(["."], Defaults(now=NOW)).results[0].path == "sub/x.md"
    based = read_sources([d.resolve()], Defaults(now=NOW, base=d)).results[0]
    assert based.path == "sub/x.md"
    assert not os.path.isabs(based.memories[0].source_file or "")
