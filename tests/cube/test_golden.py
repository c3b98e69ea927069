"""Golden files (spec §9): one cube per format version in fixtures/golden (``vM.N.memcube``)
must keep reading and verifying forever, and packing the golden corpus must keep giving the
same memories and manifest.

``pytest tests/cube/test_golden.py --update-goldens`` writes the golden cube of the current
format version (older ones are never rewritten) and memories.json.
"""

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from memos_cli.cube import FORMAT_VERSION, generate_keypair, open_cube, verify
from memos_cli.pack import pack
from memos_cli.sources import Defaults
from tests.conftest import FIXTURES

GOLDEN = FIXTURES / "golden"
CUBE = GOLDEN / f"v{FORMAT_VERSION[0]}.{FORMAT_VERSION[1]}.memcube"
ALL = sorted(GOLDEN.glob("v*.memcube"))
TIME = datetime(2024, 3, 1, 9, 30, tzinfo=timezone.utc)
CUBE_ID = "00000000-0000-4000-8000-000000000001"
#: Fields that legitimately change between releases or library versions.
VOLATILE = ("producer", "files", "format_version", "index_files")  # Lance names hold UUIDs


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
    shutil.copy(pub, CUBE.with_suffix(".pub"))
    pack_golden(CUBE, embedder, key=priv)
    mems = [m.to_dict() for m in open_cube(CUBE).memories]
    (GOLDEN / "memories.json").write_text(json.dumps(mems, indent=2, ensure_ascii=False) + "\n")


def test_there_is_a_golden_cube_for_1_0() -> None:
    assert GOLDEN / "v1.0.memcube" in ALL


@pytest.mark.parametrize("cube", ALL, ids=lambda p: p.name)
def test_golden_cube_reads_and_verifies(cube: Path) -> None:
    report = verify(cube, cube.with_suffix(".pub"))
    assert report.ok and report.signature == "verified" and report.memories == 6
    want = json.loads((GOLDEN / "memories.json").read_text())
    assert [m.to_dict() for m in open_cube(cube).memories] == want


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
    want = json.loads((ALL[-1] / "manifest.json").read_text())
    got = json.loads((out / "manifest.json").read_text())
    assert got["format_version"] == f"{FORMAT_VERSION[0]}.{FORMAT_VERSION[1]}"
    assert stable(got) == stable(want)
    assert [m.to_dict() for m in open_cube(out).memories] == \
        json.loads((GOLDEN / "memories.json").read_text())
