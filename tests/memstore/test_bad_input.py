"""MemStore's bad input, each against the real registry: one line, a distinct exit code, and
nothing written (#17 "Bad input")."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from memos_cli.memstore import artifact
from memos_cli.memstore.ref import parse_ref
from memos_cli.memstore.registry import Registry
from tests.attacks.corpus import tree_digest
from tests.attacks.test_concurrency import Held
from tests.memstore.conftest import LocalRegistry, free_port
from tests.memstore.test_push_pull import cli, files_of, js


def one_line_error(result: Any) -> str:
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "Traceback" not in result.output
    return lines[0]


def nothing_beside(out: Path) -> None:
    """Neither the target nor a temporary sibling of it is left."""
    assert not out.exists()
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")] == []


def craft(registry: LocalRegistry, cube: Path, ref: str, change: Any) -> None:
    """Push ``cube`` with its image manifest changed by ``change(manifest, layers)`` first."""
    from memos_cli.cube import open_cube

    layers, manifest = artifact.build(open_cube(cube), "unsigned")
    change(manifest, layers)
    parsed = parse_ref(ref)
    reg = Registry(parsed)
    for path, d in layers:
        reg.upload(parsed, path, d)
    reg.put_manifest(parsed, manifest)


@pytest.mark.parametrize("ref", ["ftp://example.org/x", "hdfs://namenode/team.memcube",
                                 "team/kestrel:1", "oci://127.0.0.1:1/Upper/case:1",
                                 "oci://127.0.0.1:1/team/x:bad/tag", "oci://127.0.0.1:1/t@sha256:12"])
def test_bad_references_are_usage_errors(ref: str, tmp_path: Path) -> None:
    out = tmp_path / "x.memcube"
    line = one_line_error(cli("pull", ref, "-o", out, code=2))
    assert ref.split("://")[0] in line or "scheme" in line
    nothing_beside(out)


def test_missing_tag_and_repository(registry: LocalRegistry, packed_cube: Path,
                                    tmp_path: Path) -> None:
    cli("push", packed_cube, registry.ref("bad/present:1"))
    out = tmp_path / "x.memcube"
    for ref in (registry.ref("bad/present:2"), registry.ref("bad/absent:1"),
                registry.ref("bad/present@sha256:" + "0" * 64)):
        assert "not found" in one_line_error(cli("pull", ref, "-o", out, code=14))
        nothing_beside(out)


def test_unreachable_registries_fail_within_the_timeout(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMOS_REMOTE_TIMEOUT", "2")
    out = tmp_path / "x.memcube"
    closed = f"oci://127.0.0.1:{free_port()}/team/x:1"  # nothing listens
    started = time.monotonic()
    assert "not reachable" in one_line_error(cli("pull", closed, "-o", out, code=14))
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        mute = f"oci://127.0.0.1:{silent.getsockname()[1]}/team/x:1"
        assert "within 2 s" in one_line_error(cli("pull", mute, "-o", out, code=14))
        assert "within 2 s" in one_line_error(cli("ls", mute.rsplit(":", 1)[0], code=14))
    assert time.monotonic() - started < 30  # not oras-py's retries (minutes)
    nothing_beside(out)


def test_an_artifact_that_is_not_a_cube(registry: LocalRegistry, tmp_path: Path) -> None:
    import oras.client

    plain = tmp_path / "model.bin.txt"
    plain.write_text("weights")
    oras.client.OrasClient(hostname=registry.host, insecure=True).push(
        target=f"{registry.host}/bad/plain:1", files=[str(plain)],
        disable_path_validation=True)
    out = tmp_path / "x.memcube"
    line = one_line_error(cli("pull", registry.ref("bad/plain:1"), "-o", out, code=6))
    assert "not a MemCube artifact" in line
    nothing_beside(out)
    vault = tmp_path / "vault"
    before = tree_digest(vault)
    cli("load", registry.ref("bad/plain:1"), "--vault", vault, code=6)
    assert tree_digest(vault) == before


@pytest.mark.parametrize("title,why", [("../escaped.arrow", "escape"),
                                       ("/tmp/absolute.arrow", "escape"),
                                       ("kv\\..\\..\\win.arrow", "escape"),
                                       ("kv/state.pkl", "may not hold"),
                                       (".git/config", "may not hold"),
                                       ("manifest.json", "twice")])
def test_layer_titles_that_would_escape_or_smuggle(registry: LocalRegistry, packed_cube: Path,
                                                   tmp_path: Path, title: str, why: str) -> None:
    def retitle(manifest: dict[str, Any], layers: list[Any]) -> None:
        victim = next(d for _, d in layers if d["annotations"][artifact.TITLE] ==
                      "memories.arrow")
        victim["annotations"][artifact.TITLE] = title

    ref = registry.ref(f"bad/titles:{abs(hash(title)) % 10**6}")
    craft(registry, packed_cube, ref, retitle)
    work = tmp_path / "work"
    work.mkdir()
    out = work / "x.memcube"
    assert why in one_line_error(cli("pull", ref, "-o", out, code=6))
    nothing_beside(out)
    assert list(work.iterdir()) == [] and not (tmp_path / "escaped.arrow").exists()
    assert not Path("/tmp/absolute.arrow").exists()


def test_a_tampered_blob_is_refused(registry: LocalRegistry, packed_cube: Path,
                                    tmp_path: Path) -> None:
    pushed = js("push", packed_cube, registry.ref("bad/tampered:1"))
    manifest = json.loads(registry.blob_file(pushed["digest"]).read_text())
    arrow = next(x for x in manifest["layers"]
                 if x["annotations"][artifact.TITLE] == "memories.arrow")
    blob = registry.blob_file(arrow["digest"])
    original = blob.read_bytes()
    data = bytearray(original)
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    blob.write_bytes(bytes(data))
    try:
        out = tmp_path / "x.memcube"
        line = one_line_error(cli("pull", registry.ref("bad/tampered:1"), "-o", out, code=7))
        assert arrow["digest"] in line
        nothing_beside(out)
        vault = tmp_path / "vault"
        cli("load", registry.ref("bad/tampered:1"), "--vault", vault, code=7)
        assert not (vault / "memories.arrow").exists()
    finally:  # blobs are shared by every repository of this registry
        blob.write_bytes(original)


def test_a_tampered_manifest_breaks_the_pinned_digest(registry: LocalRegistry,
                                                      packed_cube: Path, tmp_path: Path) -> None:
    pushed = js("push", packed_cube, registry.ref("bad/pin:1"))
    stored = registry.blob_file(pushed["digest"])
    original = stored.read_bytes()
    stored.write_bytes(original.replace(b'"schemaVersion":2', b'"schemaVersion":2 '))
    try:
        out = tmp_path / "x.memcube"
        line = one_line_error(cli("pull", registry.ref(f"bad/pin@{pushed['digest']}"), "-o",
                                  out, code=7))
        assert "pinned digest" in line
        nothing_beside(out)
    finally:
        stored.write_bytes(original)


def test_unsigned_cubes_need_allow_unsigned(registry: LocalRegistry, packed_cube: Path,
                                            tmp_path: Path) -> None:
    unsigned = tmp_path / "unsigned.memcube"
    import shutil

    shutil.copytree(packed_cube, unsigned)
    (unsigned / "memcube.sig").unlink()
    assert js("push", unsigned, registry.ref("bad/unsigned:1"))["signer"] == "unsigned"
    out = tmp_path / "x.memcube"
    line = one_line_error(cli("pull", registry.ref("bad/unsigned:1"), "-o", out, code=8))
    assert line.startswith(f"error: {registry.ref('bad/unsigned:1')}: cube is unsigned")
    nothing_beside(out)
    vault = tmp_path / "vault"
    cli("load", registry.ref("bad/unsigned:1"), "--vault", vault, code=8)
    cli("pull", registry.ref("bad/unsigned:1"), "-o", out, "--allow-unsigned")
    assert files_of(out) == files_of(unsigned)
    assert js("load", registry.ref("bad/unsigned:1"), "--vault", vault,
              "--allow-unsigned")["signer"] == "unsigned"


def test_an_interrupted_pull_leaves_nothing(registry: LocalRegistry, packed_cube: Path,
                                            tmp_path: Path) -> None:
    ref = registry.ref("bad/killed:1")
    cli("push", packed_cube, ref)
    out = tmp_path / "x.memcube"
    held = Held(tmp_path, "pull:blob", "pull", ref, "-o", out)
    held.reached()
    held.kill()
    assert not out.exists()  # the half-pulled files are in a hidden temporary only
    cli("pull", ref, "-o", out)  # the next pull clears what the killed one left
    assert files_of(out) == files_of(packed_cube)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".x.memcube")] == []


def test_a_dead_registry_is_one_line_without_library_warnings(packed_cube: Path,
                                                              tmp_path: Path) -> None:
    """#28: `push` to a dead registry printed urllib3's "Retrying (...)" lines before its
    error; a real process shows the one error line (the warnings come back with -v)."""
    import os
    import subprocess
    import sys

    closed = f"oci://127.0.0.1:{free_port()}/team/x:1"
    memos = Path(sys.executable).parent / "memos"
    env = {**os.environ, "MEMOS_REMOTE_TIMEOUT": "2"}
    r = subprocess.run([str(memos), "push", str(packed_cube), closed], capture_output=True,
                       text=True, env=env, timeout=120)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 14 and len(lines) == 1 and "not reachable" in lines[0], r.stderr
    loud = subprocess.run([str(memos), "push", str(packed_cube), closed, "-v"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert "Retrying" in loud.stderr and loud.returncode == 14
