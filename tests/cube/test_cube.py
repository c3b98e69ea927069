"""Opening, verifying, atomic writes and re-indexing of whole cubes (spec §3, §6)."""

import json
import os
from pathlib import Path

import pytest

from memos_cli.cube import open_cube, verify
from memos_cli.cube.index_file import list_files
from memos_cli.errors import (
    CubeExistsError,
    CubeNotFoundError,
    EmptyCorpusError,
    IntegrityError,
    SourceError,
)
from memos_cli.lifecycle.pack import rebuild_index
from tests.conftest import ROOT, pack_corpus


def siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


def test_open_checks_memories_digest(cube_copy: Path) -> None:
    with open(cube_copy / "memories.arrow", "ab") as f:
        f.write(b"x")
    with pytest.raises(IntegrityError, match="does not match the digest"):
        open_cube(cube_copy)


def test_not_a_cube(tmp_path: Path) -> None:
    with pytest.raises(CubeNotFoundError, match="no such cube"):
        open_cube(tmp_path / "none.memcube")
    (tmp_path / "plain").mkdir()
    with pytest.raises(CubeNotFoundError, match=r"has no manifest\.json"):
        open_cube(tmp_path / "plain")
    (tmp_path / "file.memcube").write_text("x")
    with pytest.raises(CubeNotFoundError, match="is not a directory"):
        open_cube(tmp_path / "file.memcube")


def test_existing_cube_is_not_overwritten(cube_copy: Path, embedder) -> None:
    before = (cube_copy / "manifest.json").read_bytes()
    with pytest.raises(CubeExistsError):
        pack_corpus(cube_copy, embedder)
    assert (cube_copy / "manifest.json").read_bytes() == before
    assert (cube_copy / "memcube.sig").is_file()
    report = pack_corpus(cube_copy, embedder, force=True)  # unsigned this time
    assert not (cube_copy / "memcube.sig").exists()
    assert report.cube_id == json.loads(before)["cube_id"]  # derived from the same memories
    assert siblings(cube_copy) == ["team.memcube"]


def test_failure_mid_pack_leaves_nothing(tmp_path: Path, embedder, monkeypatch) -> None:
    out = tmp_path / "x.memcube"

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("memos_cli.cube.cube.write_index_file", boom)
    with pytest.raises(KeyboardInterrupt):
        pack_corpus(out, embedder)
    assert siblings(out) == []


def test_interrupted_force_repack_keeps_old_cube(cube_copy: Path, embedder, monkeypatch,
                                                 keys: tuple[Path, Path]) -> None:
    before = {p: p.read_bytes() for p in cube_copy.rglob("*") if p.is_file()}

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("memos_cli.cube.cube.sign_cube", boom)
    with pytest.raises(KeyboardInterrupt):
        pack_corpus(cube_copy, embedder, key=keys[0], force=True)
    after = {p: p.read_bytes() for p in cube_copy.rglob("*") if p.is_file()}
    assert after == before
    assert siblings(cube_copy) == ["team.memcube"]


def test_empty_corpus(tmp_path: Path, embedder) -> None:
    from memos_cli.lifecycle.pack import pack
    from memos_cli.sources import Defaults
    from tests.conftest import FIXED_TIME

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "blank.md").write_text("\n\n")
    with pytest.raises(EmptyCorpusError, match="no memories found"):
        pack([tmp_path / "src"], tmp_path / "e.memcube", embedder=embedder,
             defaults=Defaults(now=FIXED_TIME))
    assert not (tmp_path / "e.memcube").exists()


def test_bad_source_after_good_ones_writes_nothing(tmp_path: Path, embedder) -> None:
    from memos_cli.lifecycle.pack import pack
    from memos_cli.sources import Defaults
    from tests.conftest import CORPUS, FIXED_TIME

    bad = tmp_path / "z.json"
    bad.write_text("{oops")
    with pytest.raises(SourceError, match="malformed JSON"):
        pack([CORPUS, bad], tmp_path / "e.memcube", embedder=embedder,
             defaults=Defaults(now=FIXED_TIME))
    assert sorted(os.listdir(tmp_path)) == ["z.json"]


def test_reindex_without_key_drops_signature(cube_copy: Path, embedder,
                                             keys: tuple[Path, Path]) -> None:
    cube = rebuild_index(cube_copy, embedder)
    assert not cube.signed
    assert verify(cube_copy).ok
    cube = rebuild_index(cube_copy, embedder, key=keys[0])
    assert cube.signed and verify(cube_copy, keys[1]).signature == "verified"
    assert siblings(cube_copy) == ["team.memcube"]


def test_index_out_of_step_is_detected(cube_copy: Path, embedder) -> None:
    from memos_cli.cube.index_file import matrix, read_index_file, write_index_file

    rows = read_index_file(cube_copy / "index.arrow", 384)
    keep = rows.slice(0, rows.num_rows - 1)  # one memory's row gone
    write_index_file(cube_copy / "index.arrow", keep.column("id").to_pylist(),
                     keep.column("text").to_pylist(), matrix(keep))
    with pytest.raises(IntegrityError, match="index file does not match"):
        verify(cube_copy)  # the index file changed: caught by its size and digest
    m = json.loads((cube_copy / "manifest.json").read_text())  # forged to match the files
    m["index_files"] = list_files(cube_copy, "index.arrow")
    (cube_copy / "manifest.json").write_text(json.dumps(m))
    (cube_copy / "memcube.sig").unlink()
    with pytest.raises(IntegrityError, match="index does not hold exactly"):
        verify(cube_copy)


def test_rewriting_an_older_cube_moves_its_index_and_lists_its_attachments(
        tmp_path: Path) -> None:
    """A 1.4 dump kept access_log.jsonl unlisted; rewritten as the current format (closed
    layout) it is listed as an attachment, and its LanceDB index becomes index.arrow with the
    same rows (spec §1, §3, §5, §6)."""
    import shutil

    from memos_cli.cube import open_cube, verify
    from memos_cli.cube.index import Index
    from memos_cli.cube.rewrite import rewrite

    cube_copy = tmp_path / "old.memcube"
    shutil.copytree(ROOT / "fixtures/golden/v1.4.memcube", cube_copy)
    (cube_copy / "memcube.sig").unlink()
    before = Index(cube_copy / "index")._arrow()
    (cube_copy / "access_log.jsonl").write_text('{"op": "load"}\n')
    assert verify(cube_copy).ok  # 1.4: a stray top-level file is covered only by a signature
    with rewrite(open_cube(cube_copy)):
        pass
    c = open_cube(cube_copy)
    assert c.manifest.format_version == "1.8" and c.manifest.content_digest
    assert [a["path"] for a in c.manifest.attachments or []] == ["access_log.jsonl"]
    assert c.manifest.index["engine"] == "arrow" and not (cube_copy / "index").exists()
    assert [f["path"] for f in c.manifest.index_files or []] == ["index.arrow"]
    assert verify(c).ok
    after = c.index()._arrow()
    assert after.column("id").to_pylist() == before.column("id").to_pylist()
    assert after.column("vector").to_pylist() == before.column("vector").to_pylist()
    hits = c.index().search("versioned", after.column("vector")[0].values.to_numpy(), 3)
    assert hits and hits[0].id == after.column("id")[0].as_py()


def test_force_replaces_only_a_cube(tmp_path: Path) -> None:
    """#28 bug 1 at its root: ``atomic_directory(force=True)`` (pack, dump, convert, pull)
    replaces a cube directory, never a file, a symbolic link or another directory."""
    from memos_cli.cube.layout import atomic_directory
    from memos_cli.errors import CubeExistsError

    folder = tmp_path / "folder.memcube"
    folder.mkdir()
    (folder / "precious.txt").write_text("keep")
    plain = tmp_path / "plain.memcube"
    plain.write_text("keep")
    link = tmp_path / "link.memcube"
    link.symlink_to(folder)
    for target in (folder, plain, link):
        with pytest.raises(CubeExistsError, match="replaces only a cube"), \
                atomic_directory(target, force=True) as tmp:
            (tmp / "manifest.json").write_text("{}")
    assert (folder / "precious.txt").read_text() == "keep" and plain.read_text() == "keep"
    assert link.is_symlink() and sorted(p.name for p in tmp_path.iterdir()) == [
        "folder.memcube", "link.memcube", "plain.memcube"]  # no temporary left beside them

    cube = tmp_path / "a.memcube"
    cube.mkdir()
    (cube / "manifest.json").write_text("{}")
    with atomic_directory(cube, force=True) as tmp:
        (tmp / "manifest.json").write_text('{"new": 1}')
    assert (cube / "manifest.json").read_text() == '{"new": 1}'


def test_force_never_replaces_a_folder_that_appeared_meanwhile(tmp_path: Path) -> None:
    from memos_cli.cube.layout import atomic_directory
    from memos_cli.errors import CubeExistsError

    target = tmp_path / "x.memcube"
    with pytest.raises(CubeExistsError, match="not a cube"), \
            atomic_directory(target, force=True) as tmp:
        (tmp / "manifest.json").write_text("{}")
        target.mkdir()
        (target / "precious.txt").write_text("keep")
    assert [p.name for p in target.iterdir()] == ["precious.txt"]
