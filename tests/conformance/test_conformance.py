"""memos against the conformance vectors of spec/conformance/ (spec §9.1): every valid cube
verifies, every invalid one is refused, in one line naming the cube, with the reason the
vector gives. A second implementation runs the same vectors with its own reader."""

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memos_cli.cli.app import app
from memos_cli.cube import verify
from memos_cli.errors import MemosError
from tests.conftest import ROOT

HERE = ROOT / "spec" / "conformance"
VECTORS = json.loads((HERE / "vectors.json").read_text("utf-8"))


def test_every_rule_kind_is_covered() -> None:
    verdicts = {v["verdict"] for v in VECTORS}
    rules = " ".join(v["rule"] for v in VECTORS)
    assert verdicts == {"valid", "invalid"} and len(VECTORS) >= 40
    for section in ("§1", "§2", "§3", "§4", "§4.5", "§4.6", "§5", "§6.1", "§7", "§10", "§11",
                    "§12", "§12.2", "§12.3", "§12.4"):
        assert section in rules, section
    # the signature is exercised: a reader that ignores every key fails these (#33)
    keyed_invalid = [v for v in VECTORS if v["key"] and v["verdict"] == "invalid"]
    assert len(keyed_invalid) >= 6
    assert {v["key"] for v in VECTORS if v["key"]} == {"keys/conf.pub", "keys/other.pub"}
    # every key of §1 is refused in a cube older than the version that added it
    for key in ("kv", "lora", "kv_chunks", "index_files", "revision", "content_digest",
                "attachments", "readers"):
        assert any(key in v["rule"] and v["verdict"] == "invalid" for v in VECTORS), key
    for tier in ("kv", "kv-chunks", "lora", "kv-only", "lora-only", "plain"):
        assert any(v["cube"] == f"cubes/{tier}.memcube" and v["verdict"] == "valid"
                   for v in VECTORS), tier


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: Path(v["cube"]).stem)
def test_vector(vector: dict, tmp_path: Path) -> None:
    cube = tmp_path / Path(vector["cube"]).name
    shutil.copytree(HERE / vector["cube"], cube)  # a reader must not change it; work on a copy
    key = HERE / vector["key"] if vector["key"] else None
    args = ["verify", str(cube), *(["--key", str(key)] if key else [])]
    result = CliRunner().invoke(app, args)
    if vector["verdict"] == "valid":
        report = verify(cube, key)
        assert report.ok and result.exit_code == 0, result.output
        return
    with pytest.raises(MemosError) as e:
        verify(cube, key)
    assert vector["memos_message"] in str(e.value)
    assert result.exit_code not in (0, 1, 70), result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(cube) in lines[0]


def test_legacy_json_vectors() -> None:
    """spec/conformance/legacy-json.json (spec §2.1) is what memos computes, and its two
    golden vectors give the digests the golden cubes record."""
    from tests.conformance.legacy import vectors

    written = json.loads((HERE / "legacy-json.json").read_text("utf-8"))
    assert written == vectors()
    by = {v["name"]: v for v in written}
    assert by["lexemes"]["legacy"] == '{"x":1E5,"y":[1.50,-0,2E-7,0.0]}'
    assert by["lexemes"]["sha256"] != by["lexemes"]["rfc8785_sha256"]
    seg = json.loads((ROOT / "fixtures/golden/v1.1.memcube/manifest.json").read_text())
    assert by["golden-1.1-segment-id"]["sha256"][7:23] == seg["kv"]["segments"][0]["id"]
    lora = json.loads((ROOT / "fixtures/golden/v1.2.memcube/manifest.json").read_text())
    assert by["golden-1.2-lora-fingerprint"]["sha256"] == lora["lora"]["model_fingerprint_sha256"]


def test_content_derived_cube_id() -> None:
    """The content-derived-id vector's cube_id is the UUIDv5 of its content_digest (§5)."""
    import uuid

    m = json.loads((HERE / "cubes/content-derived-id.memcube/manifest.json").read_text())
    ns = uuid.UUID("b5c0a7e2-6d1f-5c3a-8e47-6d656d637562")
    assert m["cube_id"] == str(uuid.uuid5(ns, m["content_digest"]))


def test_published_key_pair_matches() -> None:
    """keys/conf.key is published so that vectors can be added and a second implementation
    can test its signer; it is the key of keys/conf.pub."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key((HERE / "keys/conf.key").read_bytes(), None)
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    assert pub == (HERE / "keys/conf.pub").read_bytes()
