"""Reproducible packs (spec §9.2): the same sources, options and SOURCE_DATE_EPOCH give the
same bytes in every file of the cube from any working directory (from format 1.8 the index
too); the cube id and content digest come from the memories."""

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memos_cli.cli.app import app
from tests.conftest import FIXTURES


def tree(cube: Path) -> dict[str, bytes]:
    return {p.relative_to(cube).as_posix(): p.read_bytes() for p in sorted(cube.rglob("*"))
            if p.is_file()}


def pack_from(cwd: Path, source: str, out: Path, *extra: str) -> None:
    here = os.getcwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(app, ["pack", source, "-o", str(out), "-q", *extra])
    finally:
        os.chdir(here)
    assert result.exit_code == 0, result.output


def test_packing_twice_from_two_directories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    shutil.copytree(FIXTURES / "corpus", tmp_path / "corpus")
    (tmp_path / "a").mkdir()
    pack_from(tmp_path / "a", "../corpus", tmp_path / "one.memcube", "--owner", "ci")
    pack_from(tmp_path, str(tmp_path / "corpus"), tmp_path / "b" / "one.memcube",
              "--owner", "ci")
    a, b = tmp_path / "one.memcube", tmp_path / "b" / "one.memcube"
    assert tree(a) == tree(b)  # byte-identical in every file, the index included (1.8)
    assert sorted(tree(a)) == ["index.arrow", "manifest.json", "memories.arrow"]
    ma = json.loads((a / "manifest.json").read_text())
    assert ma["content_digest"].startswith("sha256:") and ma["cube_id"][14] == "5"  # UUIDv5
    assert {s["path"] for s in ma["provenance"]["sources"]} >= {"corpus/facts.jsonl"}
    shown = CliRunner().invoke(app, ["inspect", str(a), "--json"])
    assert json.loads(shown.output)["content_digest"] == ma["content_digest"]


def test_cube_id_can_be_given(tmp_path: Path) -> None:
    pack_from(tmp_path, str(FIXTURES / "corpus" / "facts.jsonl"), tmp_path / "x.memcube",
              "--cube-id", "0000000A-0000-4000-8000-000000000001")
    m = json.loads((tmp_path / "x.memcube" / "manifest.json").read_text())
    assert m["cube_id"] == "0000000a-0000-4000-8000-000000000001"
    bad = CliRunner().invoke(app, ["pack", str(FIXTURES / "corpus"), "-o",
                                   str(tmp_path / "y.memcube"), "--cube-id", "nope"])
    assert bad.exit_code == 2 and "not a UUID" in bad.output


def test_signed_packs_are_byte_identical(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Signatures use RFC 6979 nonces: two signed packs of the same input are byte-identical,
    memcube.sig included (spec §9.2), and still verify with the key and with model-signing's
    own verifier."""
    import subprocess
    import sys

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert CliRunner().invoke(app, ["keygen", "-o", str(tmp_path / "k")]).exit_code == 0
    src = str(FIXTURES / "corpus" / "facts.jsonl")
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        pack_from(tmp_path, src, tmp_path / d / "x.memcube", "--key", str(tmp_path / "k.key"))
    a, b = tree(tmp_path / "a/x.memcube"), tree(tmp_path / "b/x.memcube")
    assert "memcube.sig" in a and a == b
    ok = CliRunner().invoke(app, ["verify", str(tmp_path / "a/x.memcube"), "--key",
                                  str(tmp_path / "k.pub")])
    assert ok.exit_code == 0, ok.output
    cli = [sys.executable, "-m", "model_signing", "verify", "key", "--signature",
           str(tmp_path / "a/x.memcube/memcube.sig"), "--public_key", str(tmp_path / "k.pub"),
           str(tmp_path / "a/x.memcube")]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
