"""Overlaps the other tests never produce by chance, forced with pause points
(``memos_cli.pausepoints``): one process is held at a chosen moment while another runs, or is
killed there (#11 item 11)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.attacks.corpus import tree_digest

MEMOS = [sys.executable, "-m", "memos_cli"]


class Held:
    """A memos command started with ``MEMOS_TEST_PAUSE=point``: wait until it is there, then
    release it or kill it."""

    def __init__(self, tmp: Path, point: str, *args: object) -> None:
        self.dir = tmp / f"pause-{point.replace(':', '-')}"
        self.dir.mkdir()
        self.tag = point.replace(":", "-")
        env = {**os.environ, "MEMOS_TEST_PAUSE": point, "MEMOS_TEST_PAUSE_DIR": str(self.dir),
               "MEMOS_NO_USAGE": "1"}
        self.proc = subprocess.Popen([*MEMOS, *map(str, args)], env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def reached(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not (self.dir / f"{self.tag}.reached").exists():
            if self.proc.poll() is not None:
                raise AssertionError(f"ended before the pause: {self.proc.communicate()}")
            assert time.monotonic() < deadline, "never reached the pause point"
            time.sleep(0.02)

    def release(self) -> subprocess.CompletedProcess[str]:
        (self.dir / f"{self.tag}.go").touch()
        out, err = self.proc.communicate(timeout=300)
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, out, err)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=60)


def memos(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MEMOS, *map(str, args)], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "MEMOS_NO_USAGE": "1"})


def cube_id(cube: Path) -> str:
    return str(json.loads((cube / "manifest.json").read_text())["cube_id"])


def test_two_loads_into_one_vault_both_land(packed_cube: Path, tmp_path: Path) -> None:
    """No lock: the second load commits while the first has decided but not committed; the
    first's commit is refused by Lance, and it decides again on the new version."""
    vault = tmp_path / "vault"
    assert memos("load", packed_cube, "--vault", vault, "--allow-unsigned").returncode == 0
    other = tmp_path / "other.jsonl"
    other.write_text('{"content": "the second load"}\n')
    third = tmp_path / "third.jsonl"
    third.write_text('{"content": "the third load"}\n')
    first = Held(tmp_path, "vault:before-commit", "load", other, "--vault", vault)
    first.reached()
    second = memos("load", third, "--vault", vault)  # commits while the first waits
    assert second.returncode == 0, second.stderr
    assert first.release().returncode == 0
    listed = json.loads(memos("vault", "ls", "--vault", vault, "--json").stdout)
    assert len(listed["cubes"]) == 3
    loads = [json.loads(line) for line in (vault / "audit.jsonl").read_text().splitlines()]
    retried = [r for r in loads if r["op"] == "load" and r.get("attempts")]
    assert [r["attempts"] for r in retried] == [2]  # the first load, decided twice
    assert len({r["version"] for r in loads if r["op"] == "load"}) == 3


def test_the_same_cube_loaded_twice_at_once_is_installed_once(packed_cube: Path,
                                                              tmp_path: Path) -> None:
    """Two first loads into an empty vault: the second creates the table, the first's
    rename then fails, and it decides again: the memories are duplicates now, not copies."""
    vault = tmp_path / "vault"
    first = Held(tmp_path, "vault:before-commit", "load", packed_cube, "--vault", vault,
                 "--allow-unsigned")
    first.reached()
    second = memos("load", packed_cube, "--vault", vault, "--allow-unsigned")
    assert second.returncode == 0, second.stderr
    done = first.release()
    assert done.returncode == 0, done.stderr
    shown = json.loads(memos("vault", "ls", "--vault", vault, "--json").stdout)
    assert len(shown["cubes"]) == 1 and shown["cubes"][0]["loads"] == 2
    expected = json.loads((packed_cube / "manifest.json").read_text())["counts"]["memories"]
    assert shown["cubes"][0]["memories"] == expected  # installed once
    loads = [json.loads(line) for line in (vault / "audit.jsonl").read_text().splitlines()]
    assert sorted(r.get("attempts", 1) for r in loads if r["op"] == "load") == [1, 2]
    assert not [p for p in vault.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("point, want", [("write:before-commit", "old"),
                                         ("write:after-commit", "new")])
def test_verify_during_pack_force_sees_one_whole_cube(packed_cube: Path, tmp_path: Path,
                                                      point: str, want: str) -> None:
    cube = tmp_path / "team.memcube"
    shutil.copytree(packed_cube, cube)
    old = cube_id(cube)
    src = tmp_path / "new.jsonl"
    src.write_text('{"content": "a different memory"}\n')
    writer = Held(tmp_path, point, "pack", src, "-o", cube, "--force")
    writer.reached()
    seen = memos("verify", cube, "--json")  # the cube is being replaced right now
    assert seen.returncode == 0, seen.stderr
    assert (json.loads(seen.stdout)["cube_id"] == old) == (want == "old")
    assert writer.release().returncode == 0
    assert cube_id(cube) != old


def test_cube_replaced_under_a_running_verify_is_not_passed(packed_cube: Path,
                                                            tmp_path: Path) -> None:
    cube = tmp_path / "team.memcube"
    shutil.copytree(packed_cube, cube)
    src = tmp_path / "new.jsonl"
    src.write_text('{"content": "a different memory"}\n')
    reader = Held(tmp_path, "verify:opened", "verify", cube)
    reader.reached()  # the manifest is read; now the cube changes under it
    assert memos("pack", src, "-o", cube, "--force").returncode == 0
    done = reader.release()
    assert done.returncode != 0 and done.returncode != 70, done.stderr
    assert done.stderr.startswith("error: ")


@pytest.mark.parametrize("point", ["write:before-commit", "write:after-commit"])
@pytest.mark.parametrize("command", ["reindex", "convert"])
def test_kill_before_and_after_the_commit_point(packed_cube: Path, tiny_llama: Path,
                                                tmp_path: Path, point: str,
                                                command: str) -> None:
    cube = tmp_path / "team.memcube"
    shutil.copytree(packed_cube, cube)
    before = tree_digest(cube)
    args = ["reindex", cube] if command == "reindex" else \
        ["convert", cube, "--to", "kv", "--model", tiny_llama]
    writer = Held(tmp_path, point, *args)
    writer.reached()
    writer.kill()
    assert memos("verify", cube).returncode == 0
    if point == "write:before-commit":
        assert tree_digest(cube) == before  # exactly the old cube
    else:
        assert tree_digest(cube) != before  # the new one, whole
        if command == "convert":
            assert "activation" in json.loads((cube / "manifest.json").read_text())["tiers"]
        else:
            assert not (cube / "memcube.sig").exists()  # reindexed without a key: unsigned
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".team.memcube.")]
    assert leftovers  # what the kill left beside the cube ...
    assert memos("reindex", cube).returncode == 0  # ... the next write to it removes
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".team.memcube.")]


@pytest.mark.parametrize("command", ["pack", "reindex"])
def test_a_reader_killed_halfway_writes_nothing(tiny_llama: Path, tmp_path: Path,
                                                shared_datasets: Path, command: str) -> None:
    """A MemReader killed after its first batch (#15): pack leaves no cube, reindex leaves
    the cube exactly as it was."""
    src = shared_datasets / "locomo" / "26.json"
    cube = tmp_path / "talk.memcube"
    before = None
    if command == "reindex":
        assert memos("pack", src, "-o", cube).returncode == 0
        before = tree_digest(cube)
    args = ["pack", src, "-o", cube] if command == "pack" else ["reindex", cube]
    writer = Held(tmp_path, "reader:batch", *args, "--reader", "context,questions",
                  "--model", tiny_llama)
    writer.reached()
    writer.kill()
    if command == "pack":
        assert not cube.exists()
    else:
        assert tree_digest(cube) == before and memos("verify", cube).returncode == 0
