"""A second validator for spec/manifest.schema.json (spec §5): Ajv 8 in strict mode, the
validator the Node.js reader of the interchange issue used. The schema must compile under
strict mode, and Ajv must give the verdict memos's validator (``jsonschema``) gives on every
manifest of the goldens and the conformance vectors, and on version strings that a string
comparison would get wrong."""

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from memos_cli import strictjson
from memos_cli.cube.manifest import schema
from tests.conftest import ROOT

HERE = Path(__file__).parent
SCHEMA = ROOT / "spec" / "manifest.schema.json"

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def ajv(docs: list[Any], tmp_path: Path) -> list[bool]:
    if not (HERE / "node_modules" / "ajv").is_dir():
        pytest.fail("Ajv is missing: `make install` runs `npm ci --prefix tests/interop`")
    (tmp_path / "docs.json").write_text(json.dumps(docs))
    out = subprocess.run(["node", str(HERE / "validate.js"), str(SCHEMA),
                          str(tmp_path / "docs.json")], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    verdicts: list[bool] = json.loads(out.stdout)
    return verdicts


def manifests() -> list[tuple[str, dict[str, Any]]]:
    """Every manifest the project ships: goldens and conformance vectors, with a newer
    minor's unknown keys left out as a reader of this minor leaves them out (spec §1)."""
    known = schema()["properties"]
    out = []
    for p in sorted([*ROOT.glob("fixtures/golden/*.memcube/manifest.json"),
                     *ROOT.glob("spec/conformance/cubes/*.memcube/manifest.json")]):
        try:
            data = strictjson.loads(p.read_text("utf-8"))
        except ValueError:  # json.JSONDecodeError and StrictJSONError
            continue  # the vectors of §2 (duplicate keys, NaN) are not JSON to validate
        if isinstance(data, dict) and str(data.get("format_version", "")).startswith("1.") \
                and data["format_version"][2:].isdigit() and int(data["format_version"][2:]) > 7:
            data = {k: v for k, v in data.items() if k in known}
        out.append((str(p.relative_to(ROOT)), data))
    return out


def version_cases() -> list[tuple[str, dict[str, Any]]]:
    base = json.loads((ROOT / "fixtures/golden/v1.8.memcube/manifest.json").read_text())
    cases = []
    for v in ("1.8", "1.08", "01.8", "1.10", "1.9", "1.", "1.8.0", "1e0", "١.8"):
        m = copy.deepcopy(base)
        m["format_version"] = v
        cases.append((f"format_version {v!r}", m))
    newer = json.loads((ROOT / "fixtures/golden/v1.0.memcube/manifest.json").read_text())
    newer["lora"] = {}  # a key of 1.2 in a 1.0 manifest
    cases.append(("lora in 1.0", newer))
    return cases


def test_schema_compiles_in_strict_mode_and_agrees(tmp_path: Path) -> None:
    cases = manifests() + version_cases()
    assert len(cases) > 60
    got = ajv([d for _, d in cases], tmp_path)
    ours = jsonschema.Draft202012Validator(schema())
    disagree = [name for (name, doc), a in zip(cases, got, strict=True)
                if a != ours.is_valid(doc)]
    assert disagree == []
    verdict = dict(zip([n for n, _ in cases], got, strict=True))
    assert verdict["format_version '1.8'"] and verdict["format_version '1.10'"]
    for bad in ("1.08", "01.8", "1.", "1.8.0", "1e0", "١.8"):
        assert not verdict[f"format_version {bad!r}"], bad
    assert not verdict["lora in 1.0"]
    assert all(verdict[f"fixtures/golden/v1.{n}.memcube/manifest.json"] for n in range(9))
