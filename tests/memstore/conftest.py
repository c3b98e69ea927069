"""A real OCI registry on 127.0.0.1 (Debian's ``docker-registry``, the CNCF distribution
registry) for the MemStore tests, started on a free port with its own storage directory."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

BINARY = "docker-registry"
CONFIG = """version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalRegistry:
    def __init__(self, root: Path, port: int, proc: subprocess.Popen[bytes]) -> None:
        self.root, self.port, self.proc = root, port, proc
        self.host = f"127.0.0.1:{port}"

    def ref(self, path: str) -> str:
        return f"oci://{self.host}/{path}"

    def blob_file(self, digest: str) -> Path:
        """Where the filesystem driver keeps a blob (to tamper with it)."""
        hexd = digest.removeprefix("sha256:")
        return self.root / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    binary = shutil.which(BINARY) or shutil.which(BINARY, path="/usr/bin:/usr/sbin")
    if binary is None:
        message = (f"{BINARY} not installed (apt-get install docker-registry); "
                   ".ci/run installs it")
        if os.environ.get("MEMOS_REQUIRE_REGISTRY"):
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = root / "config.yml"
    config.write_text(CONFIG.format(root=root / "data", port=port))
    # its log goes to a file: an unread pipe fills up and the registry stops answering
    log = (root / "registry.log").open("wb")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2):
                break
        except OSError as e:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise RuntimeError("registry did not start: "
                                   f"{(root / 'registry.log').read_text()[-2000:]}") from e
            time.sleep(0.1)
    try:
        yield LocalRegistry(root / "data", port, proc)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.fixture(autouse=True)
def own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keys: tuple[Path, Path]) -> Path:
    """A MEMOS_HOME of the test's own (trust store, pull records), trusting the team key."""
    from memos_cli.governance.trust import trust_add

    home = tmp_path / "home"
    monkeypatch.setenv("MEMOS_HOME", str(home))
    monkeypatch.setenv("MEMOS_NO_USAGE", "1")
    monkeypatch.setenv("MEMOS_NO_ONNX", "1")  # no ONNX export of the embedder per test
    trust_add(keys[1], "team")
    return home
