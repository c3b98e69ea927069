"""Write spec/conformance/legacy-json.json: test vectors for the legacy canonical JSON of
formats 1.0-1.4 (spec §2.1), defined on JSON text with every number copied as written.

Each vector is ``{"name", "text", "legacy", "sha256", "rfc8785_sha256", "note"}``: the input
JSON text, its legacy canonical form (UTF-8 text), the ``sha256:`` digest of that form, and,
for contrast, the digest of the input's RFC 8785 form. Two vectors are taken from the golden
cubes, so a reader can check its implementation against digests that a cube records.

    python -m tests.conformance.legacy     # rewrites the file
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "spec" / "conformance" / "legacy-json.json"
GOLDEN = ROOT / "fixtures" / "golden"


def inputs() -> list[tuple[str, str, str]]:
    """(name, JSON text, note) of every vector."""
    from safetensors import safe_open

    v11 = GOLDEN / "v1.1.memcube"
    seg = json.loads((v11 / "manifest.json").read_text())["kv"]["segments"][0]
    with safe_open(str(v11 / seg["path"]), "np") as f:
        meta = f.metadata()
    segment = {"template": json.loads(meta["prompt_template"]),
               "hashes": json.loads(meta["content_hashes"]),
               "fingerprint": json.loads(meta["model_fingerprint"]),
               "dtype": meta["storage_dtype"]}
    lora = json.loads((GOLDEN / "v1.2.memcube/lora/memcube_lora.json").read_text())
    return [
        ("floats", '{"rope_theta": 10000.0, "eps": 1e-05, "layers": 2, "big": 1e+16}',
         "integral floats keep .0; exponents as written"),
        ("lexemes", '{"y": [1.50, -0, 2E-7, 0.0], "x": 1E5}',
         "numbers are copied as written, never reformatted: 1.50 stays 1.50, 1E5 stays 1E5"),
        ("strings", '{"b": "\\u00fc\\u2028\\u007f", "a": "tab\\there \\"q\\" \\\\ \\u0001", '
         '"\\u00e9": 1, "Z": 2}',
         "keys sorted by code point (Z before a before é); strings escaped as RFC 8785 does"),
        ("nested", '{"c": {"z": true, "y": null}, "a": [], "b": {}}', "no whitespace"),
        ("golden-1.1-segment-id", json.dumps(segment, indent=2),
         "the object whose digest names the v1.1 golden's segment (spec §10): its first 16 "
         f"hex digits are the segment id {seg['id']}"),
        ("golden-1.2-lora-fingerprint", json.dumps(lora["model_fingerprint"], indent=2),
         "the model fingerprint of the v1.2 golden's LoRA adapter: the digest is its manifest's "
         "lora.model_fingerprint_sha256"),
    ]


def vectors() -> list[dict[str, Any]]:
    from memos_cli import strictjson
    from memos_cli.digest import canonical_json, legacy_canonical_json, sha256_bytes

    out = []
    for name, text, note in inputs():
        legacy = legacy_canonical_json(strictjson.loads(text, lexemes=True))
        out.append({"name": name, "text": text, "legacy": legacy.decode(),
                     "sha256": sha256_bytes(legacy),
                     "rfc8785_sha256": sha256_bytes(canonical_json(strictjson.loads(text))),
                     "note": note})
    return out


def main() -> None:
    OUT.write_text(json.dumps(vectors(), indent=1, ensure_ascii=False) + "\n", "utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
