"""The search index of format 1.8 (spec §6): index.arrow in the cube, the LanceDB table with
its full-text index a cache in MEMOS_HOME/index/ built on the first search."""

import os
from pathlib import Path

import pytest

from memos_cli.cube import open_cube, verify
from memos_cli.cube.index_file import cache_root, read_index_file
from memos_cli.tiers.plaintext import retrieve
from tests.conftest import ROOT


@pytest.fixture(autouse=True)
def own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A MEMOS_HOME of this test's own: the session's shared one has other tests' caches."""
    monkeypatch.setenv("MEMOS_HOME", str(tmp_path / "home"))


def entries() -> list[str]:
    root = cache_root()
    return sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) \
        if root.is_dir() else []


def test_verify_reads_the_file_and_search_builds_the_cache_once(cube_copy: Path,
                                                                 embedder) -> None:  # type: ignore[no-untyped-def]
    digest = open_cube(cube_copy).manifest.index_files[0]["sha256"][7:]  # type: ignore[index]
    assert verify(cube_copy).ok and digest not in entries()  # verify never builds it
    hits = retrieve(open_cube(cube_copy), embedder, "What budget did we agree on?", 3)
    assert len(hits) == 3 and digest in entries()
    done = cache_root() / digest / "complete"
    built = done.stat().st_mtime_ns
    os.utime(done, ns=(1, 1))
    again = retrieve(open_cube(cube_copy), embedder, "What budget did we agree on?", 3)
    assert [h.memory.id for h in again] == [h.memory.id for h in hits]
    assert done.stat().st_mtime_ns > 1 and built  # reused (and marked used), not rebuilt
    assert not any(p.name.endswith(".tmp") for p in cache_root().iterdir())


def test_the_cache_is_bounded(packed_cube: Path, embedder,
                              monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Past MEMOS_INDEX_CACHE_BYTES the least recently used entry goes; the newest stays."""
    retrieve(open_cube(packed_cube), embedder, "budget", 2)
    first = entries()
    killed = cache_root() / ".0123456789abcdef.x.tmp"  # a build killed two days ago
    killed.mkdir()
    os.utime(killed, (1, 1))
    monkeypatch.setenv("MEMOS_INDEX_CACHE_BYTES", "1")
    c = open_cube(ROOT / "fixtures/golden/v1.8.memcube")  # other memories, another index
    retrieve(c, embedder, "budget", 2)
    assert entries() == [c.manifest.index_files[0]["sha256"][7:]]  # type: ignore[index]
    assert first and not set(first) & set(entries()) and not killed.exists()


def test_a_cache_root_that_is_a_link_is_not_written_through(cube_copy: Path, embedder,
                                                             tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    outside = tmp_path / "outside"
    outside.mkdir()
    root = cache_root()
    root.parent.mkdir(parents=True, exist_ok=True)
    if root.exists():
        import shutil

        shutil.rmtree(root)
    os.symlink(outside, root)
    assert len(retrieve(open_cube(cube_copy), embedder, "budget", 2)) == 2
    assert list(outside.iterdir()) == []


def test_index_file_bytes_depend_only_on_rows(packed_cube: Path, tmp_path: Path) -> None:
    from memos_cli.cube.index_file import matrix, write_index_file

    t = read_index_file(packed_cube / "index.arrow", 384)
    write_index_file(tmp_path / "again.arrow", t.column("id").to_pylist(),
                     t.column("text").to_pylist(), matrix(t))
    assert (tmp_path / "again.arrow").read_bytes() == (packed_cube / "index.arrow").read_bytes()


def test_a_rewrite_forgets_the_cache_of_the_index_it_replaced(cube_copy: Path,
                                                              embedder) -> None:  # type: ignore[no-untyped-def]
    """Text a cube no longer holds does not stay in MEMOS_HOME (spec §6): rm-memories rewrites
    the cube and removes the cache entry of its old index."""
    from typer.testing import CliRunner

    from memos_cli.cli.app import app

    c = open_cube(cube_copy)
    old = c.manifest.index_files[0]["sha256"][7:]  # type: ignore[index]
    retrieve(c, embedder, "budget", 2)
    assert old in entries()
    gone = c.memories[0].id
    r = CliRunner().invoke(app, ["rm-memories", str(cube_copy), "--ids", gone])
    assert r.exit_code == 0, r.output
    assert old not in entries()
    assert gone not in [h.memory.id for h in retrieve(open_cube(cube_copy), embedder,
                                                      c.memories[0].content, 5)]


def test_the_cache_takes_the_rows_as_written_or_puts_memory_rows_first(tmp_path: Path) -> None:
    """memos writes memory rows first and the cache takes the file's rows as they are; rows
    of another writer with a reader row first are reordered, memory rows first."""
    import numpy as np
    import pyarrow as pa

    from memos_cli.cube.index import Index, ReaderRows
    from memos_cli.cube.index_file import _build, write_index_file

    vec = np.eye(4, dtype=np.float32)
    rows = ReaderRows(["q1"], ["question"], ["what is tea?"], vec[3:])
    write_index_file(tmp_path / "a.arrow", ["m1", "m2", "m3"], ["tea", "river", "blue"],
                     vec[:3], rows)
    table = read_index_file(tmp_path / "a.arrow", 4)
    _build(table, tmp_path / "as-written", tmp_path / "a.arrow")
    shuffled = table.take(pa.array([3, 0, 1, 2]))
    _build(shuffled, tmp_path / "reordered", tmp_path / "a.arrow")
    for where in ("as-written", "reordered"):
        got = Index(tmp_path / where)._arrow()
        assert got.column("id").to_pylist() == ["m1", "m2", "m3", "q1"]
        assert got.column("kind").to_pylist() == ["memory"] * 3 + ["question"]
