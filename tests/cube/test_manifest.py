"""manifest.json: schema, version rules, and path safety (spec §5)."""

import json
import os
from pathlib import Path

import jsonschema
import pytest

from memos_cli.cube import open_cube
from memos_cli.cube.manifest import Manifest, read_manifest, schema
from memos_cli.errors import FormatError, IntegrityError
from tests.conftest import ROOT


def raw(cube: Path) -> dict:
    return json.loads((cube / "manifest.json").read_text())


def put(cube: Path, data: dict) -> None:
    (cube / "manifest.json").write_text(json.dumps(data))


def test_written_manifest_matches_schema(packed_cube: Path) -> None:
    data = raw(packed_cube)
    jsonschema.Draft202012Validator(schema()).validate(data)
    assert data["format"] == "memcube" and data["format_version"] == "1.8"
    assert data["tiers"] == ["plaintext"]
    assert data["counts"] == {"memories": 18, "sources": 5}
    assert data["embedding"]["model"] == "all-MiniLM-L6-v2"
    assert data["embedding"]["dimension"] == 384
    src = {s["path"]: s for s in data["provenance"]["sources"]}
    budget = ROOT / "fixtures/corpus/notes/budget-meeting.md"
    # recorded relative to the common parent of the sources given (fixtures/)
    assert src["corpus/notes/budget-meeting.md"]["size"] == budget.stat().st_size
    assert data["provenance"]["pack_options"]["duplicates_dropped"] == 1


def test_spec_schema_is_the_packaged_schema() -> None:
    """spec/ stands alone (a real file, not a link into memos_cli/), byte for byte the schema
    memos validates with."""
    spec = ROOT / "spec/manifest.schema.json"
    assert not spec.is_symlink()
    packaged = ROOT / "memos_cli/cube/manifest.schema.json"
    assert spec.read_bytes() == packaged.read_bytes()
    assert json.loads(spec.read_text()) == schema()


@pytest.mark.parametrize("version", ["1.00", "01.5", "1.", ".7", "1.7.0", "1.x", "\u0661.7",
                                     " 1.7", "1.1234567890"])
def test_malformed_format_version_is_refused(cube_copy: Path, version: str) -> None:
    data = raw(cube_copy)
    data["format_version"] = json.loads(f'"{version}"')
    put(cube_copy, data)
    with pytest.raises(FormatError, match=r"format_version .* is not MAJOR\.MINOR"):
        open_cube(cube_copy)


def test_minor_ten_is_newer_than_nine(cube_copy: Path) -> None:
    """Versions compare as numbers: 1.10 is a newer minor (its unknown keys ignored)."""
    data = raw(cube_copy)
    data["format_version"] = "1.10"
    data["added_by_1_10"] = True
    put(cube_copy, data)
    assert open_cube(cube_copy).manifest.version == (1, 10)


def test_unknown_major_version_is_refused(cube_copy: Path) -> None:
    data = raw(cube_copy)
    data["format_version"] = "2.0"
    put(cube_copy, data)
    with pytest.raises(FormatError, match=r"format version 2\.0 is not supported"):
        open_cube(cube_copy)


def test_newer_minor_version_ignores_unknown_keys(cube_copy: Path) -> None:
    data = raw(cube_copy)
    data["format_version"] = "1.9"
    data["future_field"] = {"x": 1}
    put(cube_copy, data)
    assert open_cube(cube_copy).manifest.format_version == "1.9"


def test_unknown_key_in_same_version_is_refused(cube_copy: Path) -> None:
    data = raw(cube_copy)
    data["surprise"] = 1
    put(cube_copy, data)
    with pytest.raises(FormatError, match="surprise"):
        open_cube(cube_copy)


def test_all_problems_are_reported_at_once(cube_copy: Path) -> None:
    data = raw(cube_copy)
    data["cube_id"] = "nope"
    data["created_at"] = "yesterday"
    del data["name"]
    put(cube_copy, data)
    with pytest.raises(FormatError) as e:
        read_manifest(cube_copy)
    text = str(e.value)
    assert "cube_id" in text and "created_at" in text and "'name' is a required property" in text
    assert text.startswith(str(cube_copy / "manifest.json"))


@pytest.mark.parametrize("bad", ["../memories.arrow", "/etc/passwd", "a/../memories.arrow",
                                 "./memories.arrow", "a\\b"])
def test_paths_outside_the_cube_are_refused(cube_copy: Path, bad: str) -> None:
    data = raw(cube_copy)
    data["files"]["memories"]["path"] = bad
    put(cube_copy, data)
    with pytest.raises(FormatError):
        open_cube(cube_copy)


def test_symlinked_member_is_refused(cube_copy: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.arrow"
    os.rename(cube_copy / "memories.arrow", outside)
    os.symlink(outside, cube_copy / "memories.arrow")
    with pytest.raises((FormatError, IntegrityError), match="symbolic link"):
        open_cube(cube_copy)


def test_round_trip_of_dict(packed_cube: Path) -> None:
    m = read_manifest(packed_cube)
    assert Manifest.from_dict(m.to_dict()) == m
    assert m.to_dict() == raw(packed_cube)
