"""A write that runs out of space mid-way (#11 item 5): named, exit 12, nothing changed.

The file-size limit (``RLIMIT_FSIZE``, with ``SIGXFSZ`` ignored) makes every write past it
fail with ``EFBIG`` inside the real writers (Arrow, Lance, safetensors, Python), the same path
a full disk takes with ``ENOSPC``.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.attacks.corpus import tree_digest

LIMIT = 4 << 10  # bytes: smaller than a cube's manifest and memories


def limited() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def memos(*args: object, full: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "memos_cli", *map(str, args)],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "MEMOS_NO_USAGE": "1"},
                          preexec_fn=limited if full else None)


@pytest.mark.parametrize("command", ["dump", "convert", "load", "reindex"])
def test_disk_full_is_named_and_changes_nothing(packed_cube: Path, tiny_llama: Path,
                                                tmp_path: Path, command: str) -> None:
    cube = tmp_path / "team.memcube"
    shutil.copytree(packed_cube, cube)
    vault = tmp_path / "vault"
    args: dict[str, list[object]] = {
        "dump": ["dump", cube, "-o", tmp_path / "out.memcube", "--format", "memcube"],
        "convert": ["convert", cube, "--to", "kv", "--model", tiny_llama],
        "load": ["load", cube, "--vault", vault, "--allow-unsigned"],
        "reindex": ["reindex", cube],
    }
    before, files_before = tree_digest(cube), sorted(p.name for p in tmp_path.iterdir())
    r = memos(*args[command], full=True)
    assert r.returncode == 12, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "no space left" in lines[0]
    assert tree_digest(cube) == before
    left = sorted(p.name for p in tmp_path.iterdir())
    assert [n for n in left if n not in files_before and n != "vault"] == []
    if command == "load":
        assert memos("vault", "ls", "--vault", vault).returncode == 0
        assert "0 cubes" in memos("vault", "ls", "--vault", vault).stdout  # nothing committed
