"""bench/hostile.py --strace counts reads outside the input: the detector itself, on a real
strace of a process that reads through a link into ``work/outside`` (and one that does not)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.hostile import outside_reads

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")


def traced(work: Path, path: Path) -> Path:
    trace = work / "t.strace"
    subprocess.run(["strace", "-f", "-qq", "-y", "-e", "trace=open,openat,openat2", "-e",
                    "status=successful", "-o", str(trace), sys.executable, "-c",
                    f"open({str(path)!r}).read()"], check=True, timeout=60)
    return trace


def test_a_read_through_a_link_is_counted_and_a_plain_read_is_not(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("s")
    (tmp_path / "cube").mkdir()
    (tmp_path / "cube" / "memories.arrow").write_text("m")
    (tmp_path / "cube" / "link").symlink_to(tmp_path / "outside" / "secret")
    found = outside_reads(traced(tmp_path, tmp_path / "cube" / "link"), tmp_path)
    assert found == [f"{tmp_path / 'cube' / 'link'} -> {tmp_path / 'outside' / 'secret'}"]
    assert outside_reads(traced(tmp_path, tmp_path / "cube" / "memories.arrow"),
                         tmp_path) == []
    (tmp_path / "cube" / "pw").symlink_to("/etc/passwd")
    assert outside_reads(traced(tmp_path, tmp_path / "cube" / "pw"), tmp_path) == [
        f"{tmp_path / 'cube' / 'pw'} -> /etc/passwd"]
