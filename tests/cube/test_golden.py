"""Golden files (spec §9): a v1.0 cube checked into fixtures/golden must keep reading and
verifying, and packing the golden corpus must keep giving the same memories and manifest.

Regenerate deliberately with ``pytest tests/cube/test_golden.py --update-goldens``.
"""

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from memos_cli.cube import generate_keypair, open_cube, verify
from memos_cli.pack import pack
from memos_cli.sources import Defaults
from tests.conftest import FIXTURES

GOLDEN = FIXTURES / "golden"
CUBE = GOLDEN / "v1.memcube"
TIME = datetime(2024, 3, 1, 9, 30, tzinfo=timezone.utc)
CUBE_ID = "00000000-0000-4000-8000-000000000001"
#: Fields that legitimately change between releases or library versions.
VOLATILE = ("producer", "files")


def pack_golden(out: Path, embedder, key: Path | None = None) -> None:  # type: ignore[no-untyped-def]
    cwd = os.getcwd()
    os.chdir(GOLDEN)
    try:
        pack(["corpus"], out, embedder=embedder, key=key, force=True, cube_id=CUBE_ID,
             defaults=Defaults(now=TIME, owner="golden"), description="golden test cube",
             name="golden")
    finally:
        os.chdir(cwd)


def stable(manifest: dict) -> dict:
    return {k: v for k, v in manifest.items() if k not in VOLATILE}


def test_regenerate(update_goldens: bool, embedder, tmp_path: Path) -> None:
    if not update_goldens:
        pytest.skip("run with --update-goldens to rewrite fixtures/golden")
    priv, pub = generate_keypair(tmp_path / "golden")
    shutil.copy(pub, GOLDEN / "golden.pub")
    pack_golden(CUBE, embedder, key=priv)
    mems = [m.to_dict() for m in open_cube(CUBE).memories]
    (GOLDEN / "memories.json").write_text(json.dumps(mems, indent=2, ensure_ascii=False) + "\n")


def test_golden_cube_reads_and_verifies() -> None:
    report = verify(CUBE, GOLDEN / "golden.pub")
    assert report.ok and report.signature == "verified" and report.memories == 6
    want = json.loads((GOLDEN / "memories.json").read_text())
    assert [m.to_dict() for m in open_cube(CUBE).memories] == want


def test_golden_memories_have_every_field() -> None:
    want = json.loads((GOLDEN / "memories.json").read_text())
    zoe = next(m for m in want if m["speaker"] == "Zoë")
    assert zoe["content"] == "Ünïcödé text survives the round trip: 東京, Zürich, naïve."
    assert zoe["event_time"] == "2024-02-29T23:59:59.000000Z"
    assert (zoe["visibility"], zoe["readers"], zoe["priority"]) == ("shared", ["ann", "bob"], 7)
    assert zoe["extra"] == {"source_note": "kept in extra"}
    assert [m["id"] for m in want if m["id"] == "golden-1"]


def test_packing_reproduces_the_golden_cube(embedder, tmp_path: Path) -> None:
    out = tmp_path / "again.memcube"
    pack_golden(out, embedder)
    want = json.loads((CUBE / "manifest.json").read_text())
    got = json.loads((out / "manifest.json").read_text())
    assert stable(got) == stable(want)
    assert [m.to_dict() for m in open_cube(out).memories] == \
        json.loads((GOLDEN / "memories.json").read_text())
