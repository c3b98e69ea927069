"""MemOS textual memory as MemOS's tree-memory dump writes it: a directory holding only
``textual_memory.json``, or that file on its own (#12)."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

from memos_cli.sources import Defaults, read_sources

NOW = Defaults(now=datetime(2025, 1, 1, tzinfo=timezone.utc))


def test_directory_without_config(shared_datasets: Path, tmp_path: Path) -> None:
    d = tmp_path / "tree_dump"
    d.mkdir()
    shutil.copy(shared_datasets / "memos" / "mem_cube_2" / "textual_memory.json", d)
    with_config = read_sources([shared_datasets / "memos" / "mem_cube_2"], NOW).results[0]
    alone = read_sources([d], NOW).results[0]
    assert alone.format == "memos"
    assert [m.content for m in alone.memories] == [m.content for m in with_config.memories]
    assert any("tree-memory dump" in n for n in alone.notes)


def test_file_on_its_own(shared_datasets: Path, tmp_path: Path) -> None:
    f = tmp_path / "memories.json"
    shutil.copy(shared_datasets / "memos" / "mem_cube_2" / "textual_memory.json", f)
    res = read_sources([f], NOW).results[0]
    assert res.format == "memos" and len(res.memories) > 0
    assert any("memories" in n for n in res.notes)  # says which layout it mapped


def test_tree_text_nodes_and_edges(tmp_path: Path) -> None:
    import json

    d = tmp_path / "tree"
    d.mkdir()
    (d / "textual_memory.json").write_text(json.dumps({
        "nodes": [{"id": "n1", "memory": "Ann likes green tea", "metadata": {"type": "fact"}},
                  {"id": "n2", "memory": "Ann met Bo in May", "metadata": {}}],
        "edges": [{"source": "n1", "target": "n2", "type": "RELATE"}]}))
    res = read_sources([d], NOW).results[0]
    assert [m.content for m in res.memories] == ["Ann likes green tea", "Ann met Bo in May"]
    assert res.memories[0].extra["edges"][0]["target"] == "n2"
    assert any("tree_text" in n for n in res.notes)
