"""``memos chat`` and ``memos mcp`` killed during a write (#31): the vault is at the version
before the write or the one after it, never between, and reads and writes go on."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from memos_cli.vault import Vault

ROOT = Path(__file__).resolve().parents[2]
FACT = "Our budget cap for the servers is 300,000 euros."


def _env(pause_dir: Path, point: str) -> dict[str, str]:
    return {**os.environ, "MEMOS_TEST_PAUSE": point, "MEMOS_TEST_PAUSE_DIR": str(pause_dir),
            "MEMOS_NO_USAGE": "1"}


def _wait(path: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"never reached {path.name}"
        time.sleep(0.02)


def _seed(vault: Path) -> int:
    subprocess.run([sys.executable, "-m", "memos_cli", "remember", "The offsite is in Porto.",
                    "--vault", str(vault), "--as", "ann"], check=True, capture_output=True,
                   cwd=ROOT)
    v = Vault(vault).version
    assert v is not None
    return v


def _check(vault: Path, before: int, point: str) -> None:
    v = Vault(vault)
    texts = {m.content for m in v.state().memories}
    if point == "vault:before-commit":
        assert v.version == before and FACT not in texts  # exactly the vault before
    else:
        assert v.version is not None and v.version > before and FACT in texts  # the write, whole
    # the vault goes on: a new write lands
    subprocess.run([sys.executable, "-m", "memos_cli", "remember", "Bob sails on Sundays.",
                    "--vault", str(vault), "--as", "bob"], check=True, capture_output=True,
                   cwd=ROOT)
    assert "Bob sails on Sundays." in {m.content for m in Vault(vault).state().memories}


@pytest.mark.parametrize("point", ["vault:before-commit", "vault:after-commit"])
def test_chat_killed_during_a_write(tmp_path: Path, point: str) -> None:
    vault = tmp_path / "vault"
    before = _seed(vault)
    pause = tmp_path / "pause"
    pause.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "memos_cli", "chat", "--vault", str(vault),
                             "--as", "ann", "--no-answer"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=_env(pause, point), cwd=ROOT)
    assert proc.stdin is not None
    proc.stdin.write((FACT + "\n").encode())
    proc.stdin.flush()
    _wait(pause / f"{point.replace(':', '-')}.reached")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    _check(vault, before, point)


def _pid_of(marker: str) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"mcp" in cmd and marker.encode() in cmd:
                return int(entry.name)
    raise AssertionError("the server process was not found")


@pytest.mark.parametrize("point", ["vault:before-commit", "vault:after-commit"])
def test_mcp_killed_during_a_write(tmp_path: Path, point: str) -> None:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    vault = tmp_path / "vault"
    before = _seed(vault)
    pause = tmp_path / "pause"
    pause.mkdir()
    params = StdioServerParameters(command=sys.executable,
                                   args=["-m", "memos_cli", "mcp", "--vault", str(vault),
                                         "--as", "ann"], env=_env(pause, point), cwd=str(ROOT))

    async def main() -> None:
        async with Client(params) as c:
            async def write() -> None:
                # the server dies under the call: that is the test
                with contextlib.suppress(Exception):
                    await c.call_tool("remember", {"text": FACT})

            async with anyio.create_task_group() as tg:
                tg.start_soon(write)
                await anyio.to_thread.run_sync(
                    _wait, pause / f"{point.replace(':', '-')}.reached")
                os.kill(_pid_of(str(vault)), signal.SIGKILL)

    with contextlib.suppress(BaseException):  # the client sees its server gone
        anyio.run(main)
    _check(vault, before, point)
