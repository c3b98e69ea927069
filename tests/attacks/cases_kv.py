"""Hostile KV segments (spec §10): a KV cube's segment rewritten, with the manifest's digest
forged to match, so only the checks of the segment itself can catch it."""

from __future__ import annotations

import json
import pickle
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.attacks.cases_cube import Payload, copy, deep, forge_file, manifest, put
from tests.attacks.corpus import SENTINEL, Base, Case


def split(data: bytes) -> tuple[dict[str, Any], bytes]:
    """A safetensors file as (header, tensor bytes)."""
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def join(header: dict[str, Any], body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + body


def _segment(c: Path) -> str:
    return str(manifest(c)["kv"]["segments"][0]["path"])


def seg_case(name: str, change: Callable[[bytes, Path], bytes]) -> Case:
    def build(work: Path, base: Base) -> Path:
        c = copy(work, base, base.kv_cube)
        rel = _segment(c)
        forge_file(c, rel, change((c / rel).read_bytes(), work))
        return c
    return Case(f"kv_{name}", "kv", build)


def header_case(name: str, change: Callable[[dict[str, Any]], None]) -> Case:
    def edit(data: bytes, work: Path) -> bytes:
        header, body = split(data)
        change(header)
        return join(header, body)
    return seg_case(name, edit)


def _tensors(h: dict[str, Any]) -> list[str]:
    return sorted(k for k in h if k != "__metadata__")


def _negative_shape(h: dict[str, Any]) -> None:
    h[_tensors(h)[0]]["shape"][0] = -1


def _overlap(h: dict[str, Any]) -> None:
    a, b = _tensors(h)[:2]
    h[b]["data_offsets"] = list(h[a]["data_offsets"])


def _dtype(h: dict[str, Any]) -> None:
    name = next(k for k in _tensors(h) if k.endswith(".keys"))
    h[name]["dtype"] = "F16"


def _meta(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(h: dict[str, Any]) -> None:
        if value is None:
            h["__metadata__"].pop(key)
        else:
            h["__metadata__"][key] = value
    return change


def _extra_tensor(data: bytes, work: Path) -> bytes:
    header, body = split(data)
    header["evil"] = {"dtype": "U8", "shape": [8], "data_offsets": [len(body), len(body) + 8]}
    return join(header, body + b"\x00" * 8)


def _listed_twice(work: Path, base: Base) -> Path:
    c = copy(work, base, base.kv_cube)
    m = manifest(c)
    m["kv"]["segments"].append(dict(m["kv"]["segments"][0]))
    put(c, m)
    return c


def _segment_escape(work: Path, base: Base) -> Path:
    c = copy(work, base, base.kv_cube)
    m = manifest(c)
    m["kv"]["segments"][0]["path"] = "../../x.safetensors"
    put(c, m)
    return c


CASES: list[Case] = [
    seg_case("empty", lambda d, w: b""),
    seg_case("truncated", lambda d, w: d[: len(d) // 2]),
    seg_case("header_2e63", lambda d, w: struct.pack("<Q", 2**63) + d[8:]),
    seg_case("header_past_end", lambda d, w: struct.pack("<Q", len(d)) + d[8:]),
    seg_case("header_not_json", lambda d, w: struct.pack("<Q", 8) + b"{{{{{{{{" + d[16:]),
    seg_case("pickle", lambda d, w: pickle.dumps(Payload(w / SENTINEL))),
    seg_case("extra_tensor", _extra_tensor),
    seg_case("header_deep", lambda d, w: join({"__metadata__": {}, "x": json.loads(
        "[" * 500 + "]" * 500)}, b"")),
    header_case("negative_shape", _negative_shape),
    header_case("overlapping_offsets", _overlap),
    header_case("wrong_dtype", _dtype),
    header_case("no_metadata", lambda h: h.pop("__metadata__")),
    header_case("metadata_missing_key", _meta("num_layers", None)),
    header_case("metadata_deep_ids", _meta("memory_ids", deep())),
    header_case("metadata_huge_int", _meta("num_layers", "9" * 5000)),
    header_case("metadata_negative_tokens", _meta("num_tokens", "-4")),
    header_case("metadata_nan_fingerprint", _meta("model_fingerprint", '{"x": NaN}')),
    Case("kv_listed_twice", "kv", _listed_twice),
    Case("kv_segment_escape", "kv", _segment_escape),
]
