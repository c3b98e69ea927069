"""A hostile ``MEMOS_HOME`` (#36): links, FIFOs, files where folders belong and deep JSON in
the trust store, the config file, the usage store, the chunk store and lock files. What memos
must trust (keys, config) is refused in one line naming the file; a cache it cannot use
(usage, chunks) is a warning and a miss. Nothing is read or written through a link, and no
FIFO is opened (each command runs under the corpus's hang guard)."""

from __future__ import annotations

import faulthandler
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memos_cli.cli.app import app
from memos_cli.errors import FormatError
from memos_cli.lockfile import exclusive
from memos_cli.scheduler.chunks import ChunkStore
from tests.attacks.cases_cube import deep
from tests.attacks.corpus import tree_digest

HANG_S = 120


def invoke(args: list[str]) -> tuple[int, str, str]:
    faulthandler.dump_traceback_later(HANG_S, exit=True)
    try:
        r = CliRunner().invoke(app, args)
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    return r.exit_code, r.stdout, r.stderr


def _one_error(code: int, err: str, name: str) -> None:
    lines = [x for x in err.splitlines() if x.strip()]
    assert code not in (0, 70), err
    assert len(lines) == 1 and lines[0].startswith("error: ") and name in lines[0], err


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("MEMOS_HOME", str(h))
    monkeypatch.delenv("MEMOS_NO_USAGE", raising=False)
    (tmp_path / "outside").mkdir()
    return h


def _fifo(p: Path) -> None:
    os.mkfifo(p)


def _link_out(p: Path) -> None:
    out = Path(os.environ["MEMOS_HOME"]).parent / "outside" / p.name
    out.write_text("x")
    os.symlink(out, p)


@pytest.mark.parametrize("make", [_fifo, lambda p: p.write_text("[a]\n" + "b = [" * 5000),
                                  lambda p: p.mkdir()], ids=["fifo", "deep", "dir"])
def test_config_file_that_cannot_be_read_is_one_line(home: Path,
                                                     make: Callable[[Path], None]) -> None:
    make(home / "config.toml")
    code, _, err = invoke(["config", "list"])
    _one_error(code, err, "config.toml")


def test_config_file_may_be_a_dotfile_link(home: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEMOS_REMOTE_TIMEOUT", raising=False)
    real = tmp_path / "dotfiles.toml"
    real.write_text('remote_timeout = "7"\n')
    os.symlink(real, home / "config.toml")
    code, out, err = invoke(["config", "get", "remote_timeout"])
    assert code == 0 and out.strip() == "7", err


@pytest.mark.parametrize("make", [_fifo, _link_out], ids=["fifo", "link"])
def test_trusted_key_that_is_not_a_file_is_refused_and_removable(
        home: Path, packed_cube: Path, tmp_path: Path, make: Callable[[Path], None]) -> None:
    (home / "trust").mkdir()
    make(home / "trust" / "evil.pub")
    outside = tree_digest(tmp_path / "outside")
    code, _, err = invoke(["load", str(packed_cube), "--vault", str(tmp_path / "v")])
    _one_error(code, err, "evil.pub")
    assert not (tmp_path / "v").exists()
    code, _, err = invoke(["trust", "rm", "evil"])
    assert code == 0, err
    assert not os.path.lexists(home / "trust" / "evil.pub")
    assert tree_digest(tmp_path / "outside") == outside


def _usage_link(home: Path, cube_id: str, tmp_path: Path) -> None:
    (home / "usage").mkdir()
    os.symlink(tmp_path / "outside", home / "usage" / cube_id)


def _usage_file(home: Path, cube_id: str, tmp_path: Path) -> None:
    (home / "usage").mkdir()
    (home / "usage" / cube_id).write_text("not a folder")


def _usage_inner_link(home: Path, cube_id: str, tmp_path: Path) -> None:
    (home / "usage" / cube_id).mkdir(parents=True)
    os.symlink(tmp_path / "outside", home / "usage" / cube_id / "usage.lance")


@pytest.mark.parametrize("make", [_usage_link, _usage_file, _usage_inner_link],
                         ids=["link", "file", "inner_link"])
def test_usage_store_memos_cannot_use_is_a_warning(
        home: Path, packed_cube: Path, tmp_path: Path,
        make: Callable[[Path, str, Path], None]) -> None:
    cube_id = json.loads((packed_cube / "manifest.json").read_text())["cube_id"]
    make(home, cube_id, tmp_path)
    outside = tree_digest(tmp_path / "outside")
    code, out, err = invoke(["search", str(packed_cube), "tea", "--json"])
    assert code == 0, err
    assert json.loads(out)["results"]
    assert "warning: usage not recorded" in err
    assert tree_digest(tmp_path / "outside") == outside


def test_chunk_store_links_are_not_followed(tmp_path: Path) -> None:
    store = ChunkStore(tmp_path / "chunks")
    s = store.create_set("tiny", "sha256:" + "0" * 64, {"layers": 1}, "float16")
    key = "a" * 64
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x").write_bytes(b"secret")
    os.symlink(tmp_path / "outside" / "x", s.chunk(key))
    assert not s.has(key) and key not in s.stored()
    # a set folder that is a link is unreadable, and nothing is written through it
    other = tmp_path / "elsewhere"
    shutil.copytree(s.path, other, symlinks=True)
    shutil.rmtree(s.path)
    os.symlink(other, s.path)
    with pytest.raises(FormatError, match="unreadable chunk-store set"):
        store.open_set(s.id)
    with pytest.raises(FormatError):
        store.create_set("tiny", "sha256:" + "0" * 64, {"layers": 1}, "float16")


def test_chunk_store_set_json_deep_or_fifo(tmp_path: Path) -> None:
    store = ChunkStore(tmp_path / "chunks")
    s = store.create_set("tiny", "sha256:" + "0" * 64, {"layers": 1}, "float16")
    (s.path / "set.json").write_text(deep(50_000))
    with pytest.raises(FormatError, match="unreadable"):
        store.open_set(s.id)
    (s.path / "set.json").unlink()
    os.mkfifo(s.path / "set.json")
    faulthandler.dump_traceback_later(HANG_S, exit=True)
    try:
        with pytest.raises(FormatError, match="unreadable"):
            store.open_set(s.id)
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.mark.parametrize("make", [_fifo, lambda p: os.symlink(p.parent / "elsewhere", p)],
                         ids=["fifo", "link"])
def test_lock_file_is_never_a_link_or_fifo(tmp_path: Path, make: Callable[[Path], None]
                                           ) -> None:
    d = tmp_path / "store"
    d.mkdir()
    make(d / ".lock")
    faulthandler.dump_traceback_later(HANG_S, exit=True)
    try:
        with pytest.raises(FormatError, match=r"\.lock"), exclusive(d, "busy"):
            pass
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert not (d / "elsewhere").exists()
