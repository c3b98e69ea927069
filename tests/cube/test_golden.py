"""Golden files (spec §9): one cube per format version in fixtures/golden (``vM.N.memcube``)
must keep reading and verifying forever, and packing the golden corpus must keep giving the
same memories and manifest.

``pytest tests/cube/test_golden.py --update-goldens`` writes the golden cube of the current
format version (older ones are never rewritten) and memories.json.
"""

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from memos_cli.cube import FORMAT_VERSION, open_cube, verify
from memos_cli.lifecycle.pack import pack
from memos_cli.sources import Defaults
from tests.conftest import FIXTURES, ROOT

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
        pack(["corpus", "updates.jsonl"], out, embedder=embedder, key=key, force=True,
             cube_id=CUBE_ID,
             defaults=Defaults(now=TIME, owner="golden"), description="golden test cube",
             name="golden")
    finally:
        os.chdir(cwd)


def golden_memories(cube: Path) -> list[dict]:
    """The memories a golden holds: ``memories-vM.N.json`` beside it (from 1.7, whose pack
    added ``updates.jsonl``, a dated revision), else ``memories.json`` (the corpus alone)."""
    own = GOLDEN / f"memories-{cube.stem}.json"
    return json.loads((own if own.is_file() else GOLDEN / "memories.json").read_text())


def stable(manifest: dict) -> dict:
    return {k: v for k, v in manifest.items() if k not in VOLATILE}


def test_regenerate(update_goldens: bool, embedder, tmp_path: Path) -> None:
    """The current version's golden holds every tier (tests/golden/make.py); older ones
    were made by the commit that introduced their version and are never rewritten."""
    if not update_goldens:
        pytest.skip("run with --update-goldens to rewrite fixtures/golden")
    import subprocess
    import sys

    if CUBE.exists():
        pytest.skip(f"{CUBE.name} exists: goldens are never rewritten")
    subprocess.run([sys.executable, "-m", "tests.golden.make", "--src", str(ROOT),
                    "--tier", "kv", "--tier", "chunks", "--tier", "lora", "--tier", "context",
                    "--out", str(CUBE)],
                   check=True, cwd=ROOT)
    mems = [m.to_dict() for m in open_cube(CUBE).memories]
    (GOLDEN / f"memories-{CUBE.stem}.json").write_text(
        json.dumps(mems, indent=2, ensure_ascii=False) + "\n")


def test_there_is_a_golden_cube_for_every_version() -> None:
    assert [p.name for p in ALL] == [f"v1.{n}.memcube" for n in range(FORMAT_VERSION[1] + 1)]
    versions = [json.loads((p / "manifest.json").read_text())["format_version"] for p in ALL]
    assert versions == [f"1.{n}" for n in range(FORMAT_VERSION[1] + 1)]


@pytest.mark.parametrize("cube", ALL, ids=lambda p: p.name)
def test_golden_cube_reads_and_verifies(cube: Path) -> None:
    report = verify(cube, cube.with_suffix(".pub"))
    want = golden_memories(cube)
    assert report.ok and report.signature == "verified" and report.memories == len(want)
    assert [m.to_dict() for m in open_cube(cube).memories] == want


@pytest.fixture(scope="module")
def golden_model(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from memos_cli.models import chat
    from tests.golden.model import build

    return chat.load(str(build(tmp_path_factory.mktemp("golden-model"))))


TIERED = [p for p in ALL if json.loads((p / "manifest.json").read_text())["tiers"] != [
    "plaintext"]]


@pytest.mark.parametrize("cube", TIERED, ids=lambda p: p.name)
def test_golden_tiers_fit_the_golden_model(cube: Path, golden_model, embedder) -> None:  # type: ignore[no-untyped-def]
    """Each golden's KV segments, chunk sets and adapter were made by the golden model: the
    fingerprint recorded then (1.1-1.4 in legacy canonical JSON, spec §2.1) still names it,
    and each tier still answers."""
    from memos_cli.digest import json_sha256
    from memos_cli.tiers import chunks, kv, lora
    from memos_cli.tiers.decode import generate
    from memos_cli.tiers.plaintext import build_messages

    c = open_cube(cube)
    legacy = c.manifest.version < (1, 5)
    recorded = [e["model_fingerprint_sha256"] for e in c.segments]
    recorded += [s.model_fingerprint_sha256 for s in c.chunk_sets]
    recorded += [c.manifest.lora["model_fingerprint_sha256"]] if c.manifest.lora else []
    assert recorded and set(recorded) <= golden_model.fingerprint_digests()
    current = json_sha256(golden_model.fingerprint())
    assert all((r == current) != legacy for r in recorded)  # old cubes: the legacy form
    question = "Where do we store memories?"
    if c.segments:
        mems = [c.by_id[i] for i in c.segments[-1]["memory_ids"]]
        want = generate(golden_model, build_messages(question, mems), max_new_tokens=6)
        got = kv.answer_kv([c], golden_model, question, max_new_tokens=6)
        assert got.answer == want.text  # float32 segments: the plaintext tier's greedy output
    if c.chunk_sets and not legacy:
        got = chunks.answer_chunked(c, embedder, golden_model, question, k=2, ratio=0.0,
                                    max_new_tokens=6)
        assert got.tier == "kv" and got.prompt_tokens > 0
    if c.manifest.lora:
        assert lora.answer_lora(c, golden_model, question, max_new_tokens=6).tier == "lora"


def test_an_older_chunk_layout_is_never_composed(golden_model) -> None:  # type: ignore[no-untyped-def]
    """The 1.3 golden's chunks were made for the prompt layout of their day, which has
    changed since: they are not picked (spec §12.2), the memories are prefilled as text."""
    from memos_cli.tiers.chunks import pick_set

    c = open_cube(GOLDEN / "v1.3.memcube")
    assert c.chunk_sets and pick_set(c, golden_model) is None


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
    # the golden adds the other tiers to the same pack
    assert stable(got) == {k: want[k] for k in stable(got)} | {"tiers": ["plaintext"]}
    assert got["content_digest"] == want["content_digest"]
    assert [m.to_dict() for m in open_cube(out).memories] == golden_memories(ALL[-1])
