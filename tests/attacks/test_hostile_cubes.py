"""Hostile cubes every loader must refuse, with a one-line error and nothing run or changed."""

import json
import os
import pickle
from pathlib import Path

import pyarrow as pa
import pytest

from memos_cli.cube import open_cube, verify
from memos_cli.digest import sha256_file
from memos_cli.errors import FormatError, IntegrityError, MemosError


def read_arrow(cube: Path) -> pa.Table:
    with pa.memory_map(str(cube / "memories.arrow")) as src:
        return pa.ipc.open_file(src).read_all()


def forge_table(cube: Path, table: pa.Table, tmp_path: Path) -> None:
    """Write ``table`` as the cube's memories.arrow with a matching digest."""
    p = tmp_path / "m.arrow"
    with pa.OSFile(str(p), "wb") as f, pa.ipc.new_file(f, table.schema) as w:
        w.write_table(table)
    set_memories(cube, p.read_bytes())


def set_memories(cube: Path, data: bytes) -> None:
    """Replace memories.arrow and fix its digest, as an attacker without the key could."""
    (cube / "memories.arrow").write_bytes(data)
    m = json.loads((cube / "manifest.json").read_text())
    m["files"]["memories"].update(sha256=sha256_file(cube / "memories.arrow"), size=len(data))
    (cube / "manifest.json").write_text(json.dumps(m))


class Boom:
    def __reduce__(self):  # would run on unpickling
        return (os.system, ("touch /tmp/memos-pwned",))


@pytest.mark.parametrize("name", ["activation_memory.pickle", "kv/cache.pt", "weights.bin",
                                  "x.pkl"])
def test_pickle_files_are_refused(cube_copy: Path, name: str) -> None:
    target = cube_copy / name
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(IntegrityError, match="can run code when loaded"):
        open_cube(cube_copy)
    assert not Path("/tmp/memos-pwned").exists()


def test_symlink_anywhere_is_refused(cube_copy: Path) -> None:
    (cube_copy / "index").mkdir()
    os.symlink("/etc/passwd", cube_copy / "index" / "passwd")
    with pytest.raises(IntegrityError, match="symbolic link"):
        open_cube(cube_copy)


def test_git_files_are_refused(cube_copy: Path) -> None:
    (cube_copy / ".gitignore").write_text("*")
    with pytest.raises(IntegrityError, match="signatures do not cover"):
        open_cube(cube_copy)


def test_fifo_is_refused(cube_copy: Path) -> None:
    os.mkfifo(cube_copy / "pipe")
    with pytest.raises(IntegrityError, match="special file"):
        open_cube(cube_copy)


@pytest.mark.parametrize("data, message", [
    (b"\xff\xfe{}", "not UTF-8"),
    (b"{\"format\": ", "malformed JSON at line 1"),
    (b"[]", "not a JSON object"),
    (b'{"format": "zip"}', "not a MemCube manifest"),
    (b'{"format": "memcube", "format_version": "one"}', "not MAJOR.MINOR"),
])
def test_bad_manifest_bytes(cube_copy: Path, data: bytes, message: str) -> None:
    (cube_copy / "manifest.json").write_bytes(data)
    with pytest.raises(FormatError, match=message) as e:
        open_cube(cube_copy)
    assert "\n" not in str(e.value)


def test_oversized_manifest(cube_copy: Path) -> None:
    with open(cube_copy / "manifest.json", "wb") as f:
        f.truncate(17 << 20)
    with pytest.raises(FormatError, match="over the"):
        open_cube(cube_copy)


def test_truncated_memories_with_forged_digest(cube_copy: Path) -> None:
    set_memories(cube_copy, (cube_copy / "memories.arrow").read_bytes()[:-200])
    with pytest.raises(FormatError, match="Arrow"):
        verify(cube_copy)


def test_extra_column_with_forged_digest(cube_copy: Path, tmp_path: Path) -> None:
    t = read_arrow(cube_copy)
    forge_table(cube_copy, t.append_column("payload", pa.array(["x"] * t.num_rows)), tmp_path)
    with pytest.raises(FormatError, match="unknown column payload"):
        verify(cube_copy)


def test_edited_content_with_forged_digest(cube_copy: Path, tmp_path: Path) -> None:
    t = read_arrow(cube_copy)
    content = t.column("content").to_pylist()
    content[0] = "The budget cap is 1,000,000 euros."
    forge_table(cube_copy, t.set_column(t.schema.get_field_index("content"),
                                        t.schema.field("content"), pa.array(content)), tmp_path)
    with pytest.raises(IntegrityError, match="does not match its content_hash"):
        verify(cube_copy)


def test_errors_are_memos_errors(cube_copy: Path) -> None:
    (cube_copy / "manifest.json").unlink()
    with pytest.raises(MemosError):
        open_cube(cube_copy)
