"""Hostile plaintext cubes: the signed base cube changed as an attacker without the key would
(digests in the manifest forged to match, the signature dropped) or with it left in place."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from memos_cli.digest import sha256_file
from tests.attacks.corpus import SENTINEL, Base, Case

NAME = "c.memcube"


def copy(work: Path, base: Base, src: Path | None = None) -> Path:
    c = work / NAME
    shutil.copytree(src or base.cube, c, symlinks=True)
    return c


def manifest(c: Path) -> dict[str, Any]:
    return json.loads((c / "manifest.json").read_bytes())


def put(c: Path, data: dict[str, Any] | bytes, *, unsign: bool = True) -> None:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    (c / "manifest.json").write_bytes(raw)
    if unsign:
        (c / "memcube.sig").unlink(missing_ok=True)


def forge_file(c: Path, rel: str, data: bytes) -> None:
    """Replace a listed file and make the manifest's digest and size match it."""
    (c / rel).write_bytes(data)
    m = manifest(c)
    for entry in [*m.get("files", {}).values(), *m.get("kv", {}).get("segments", []),
                  *m.get("index_files", [])]:
        if entry["path"] == rel:
            entry.update(sha256=sha256_file(c / rel), size=len(data))
    put(c, m)


def index_table(c: Path) -> pa.Table:
    with pa.memory_map(str(c / "index.arrow")) as src:
        return pa.ipc.open_file(src).read_all()


def _narrow(t: pa.Table) -> pa.Table:
    """The index with 8-dimensional vectors (the manifest says 384)."""
    col = t.column("vector").combine_chunks()
    flat = col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), -1)[:, :8]
    vec = pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1), pa.float32()), 8)
    return t.set_column(t.schema.get_field_index("vector"), "vector", vec)


def table(c: Path) -> pa.Table:
    with pa.memory_map(str(c / "memories.arrow")) as src:
        return pa.ipc.open_file(src).read_all()


def ipc_bytes(t: pa.Table, *, stream: bool = False) -> bytes:
    sink = pa.BufferOutputStream()
    with (pa.ipc.new_stream if stream else pa.ipc.new_file)(sink, t.schema) as w:
        w.write_table(t)
    return sink.getvalue().to_pybytes()


def set_col(t: pa.Table, name: str, arr: pa.Array) -> pa.Table:
    i = t.schema.get_field_index(name)
    return t.set_column(i, pa.field(name, arr.type, t.schema.field(name).nullable), arr)


def strings_raw(values: list[bytes], offsets: list[int] | None = None) -> pa.Array:
    """A utf8 array built from raw bytes and offsets, unchecked (as a hostile writer could)."""
    data = b"".join(values)
    if offsets is None:
        offsets = [0]
        for v in values:
            offsets.append(offsets[-1] + len(v))
    return pa.Array.from_buffers(pa.string(), len(values),
                                 [None, pa.py_buffer(np.array(offsets, np.int32).tobytes()),
                                  pa.py_buffer(data)])


def arrow_case(name: str, change: Callable[[pa.Table], pa.Table | bytes],
               expect: str = "refuse") -> Case:
    def build(work: Path, base: Base) -> Path:
        c = copy(work, base)
        out = change(table(c))
        forge_file(c, "memories.arrow", out if isinstance(out, bytes) else ipc_bytes(out))
        return c
    return Case(f"arrow_{name}", "cube", build, expect)


def manifest_case(name: str, change: Callable[[dict[str, Any]], dict[str, Any] | bytes],
                  expect: str = "refuse", *, unsign: bool = True) -> Case:
    def build(work: Path, base: Base) -> Path:
        c = copy(work, base)
        put(c, change(manifest(c)), unsign=unsign)
        return c
    return Case(f"manifest_{name}", "cube", build, expect)


def entry_case(name: str, make: Callable[[Path, Path], None], expect: str = "refuse") -> Case:
    """A cube with something added or replaced at ``make(cube, work)``."""
    def build(work: Path, base: Base) -> Path:
        c = copy(work, base)
        make(c, work)
        return c
    return Case(name, "cube", build, expect)


class Payload:
    """Unpickling this creates the sentinel file: proof that code ran."""

    def __init__(self, where: Path) -> None:
        self.where = where

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.where), "w"))


def deep(n: int = 100_000) -> str:
    return "[" * n + "]" * n


def _offsets_past_end(t: pa.Table) -> bytes:
    """The file's bytes with the content column's last offset moved far past its data (a
    writer would refuse to make this, so the bytes are patched)."""
    t = t.combine_chunks()
    values = [v.encode() for v in t.column("content").to_pylist()]
    offsets = np.cumsum([0] + [len(v) for v in values]).astype(np.int32)
    data = ipc_bytes(t)
    at = data.find(offsets.tobytes())
    assert at >= 0, "content offsets not found in the file"
    end = at + 4 * (len(offsets) - 1)
    return data[:end] + np.int32(2**31 - 1).tobytes() + data[end + 4:]


def with_row0(t: pa.Table, name: str, value: Any, typ: pa.DataType) -> pa.Table:
    values = t.column(name).to_pylist()
    values[0] = value
    return set_col(t, name, pa.array(values, typ))


def _index_file_path(c: Path) -> Path:
    return c / "index.arrow"


def _in_index_dir(rel: str, make: Callable[[Path], None]) -> Callable[[Path, Path], None]:
    """Something at ``index/REL``: a folder the 1.8 layout does not have."""
    def run(c: Path, work: Path) -> None:
        (c / "index").mkdir(exist_ok=True)
        make(c / "index" / rel)
    return run


def _flip(p: Path) -> None:
    data = bytearray(p.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] ^= 0xFF
    p.write_bytes(bytes(data))


def _other_index(c: Path, work: Path) -> None:
    """The index of other memories, its digest forged in the manifest."""
    from memos_cli.cube.index_file import write_index_file

    v = np.random.default_rng(0).normal(size=(3, 384)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    write_index_file(work / "other.arrow", ["a1", "a2", "a3"],
                     ["tea is good", "tea time", "green tea"], v)
    forge_file(c, "index.arrow", (work / "other.arrow").read_bytes())


def _drop(rel: str) -> Callable[[Path, Path], None]:
    def make(c: Path, work: Path) -> None:
        p = c / rel
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return make


def _pickle_at(rel: str) -> Callable[[Path, Path], None]:
    def make(c: Path, work: Path) -> None:
        (c / rel).parent.mkdir(parents=True, exist_ok=True)
        (c / rel).write_bytes(pickle.dumps(Payload(work / SENTINEL)))
    return make


def _socket_in(c: Path, work: Path) -> None:
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(c / "sock"))
    s.close()


def _edit_after_signing(m: dict[str, Any]) -> dict[str, Any]:
    m["description"] = "edited after signing"
    return m


def _sig(data: bytes | Callable[[bytes], bytes]) -> Callable[[Path, Path], None]:
    def make(c: Path, work: Path) -> None:
        p = c / "memcube.sig"
        p.write_bytes(data(p.read_bytes()) if callable(data) else data)
    return make


def _sig_payload(c: Path, work: Path) -> None:
    import base64

    p = c / "memcube.sig"
    bundle = json.loads(p.read_bytes())
    env = bundle.get("dsseEnvelope") or bundle.get("dsse_envelope")
    stmt = json.loads(base64.b64decode(env["payload"]))
    stmt["predicate"]["resources"][0]["digest"] = "0" * 64
    env["payload"] = base64.b64encode(json.dumps(stmt).encode()).decode()
    p.write_text(json.dumps(bundle))


def _index_dir(c: Path, work: Path) -> None:
    (c / "index.arrow").unlink()
    (c / "index.arrow").mkdir()
    (c / "index.arrow" / "data").write_bytes(b"not a file")


MAX_I64 = 2**63 - 1
_TS = pa.timestamp("us", tz="UTC")
_MANIFEST_BYTES: dict[str, bytes] = {
    "deep_array": deep().encode(),
    "deep_object": ('{"a":' * 50_000 + "1" + "}" * 50_000).encode(),
    "invalid_utf8": b'{"format": "memcube\xff\xfe"}',
    "empty": b"",
    "truncated": b'{"format": "memcube", "format_',
    "not_object": b"[]",
    "nul_bytes": b"\x00" * 64,
    "utf16": json.dumps({"format": "memcube"}).encode("utf-16"),
}

CASES: list[Case] = [
    *(manifest_case(n, lambda m, b=b: b) for n, b in _MANIFEST_BYTES.items()),
    manifest_case("huge_int_version", lambda m: json.dumps(m).replace(
        f'"format_version": "{m["format_version"]}"', '"format_version": ' + "9" * 5000
    ).encode()),
    manifest_case("huge_int_count", lambda m: json.dumps(m).replace(
        '"memories": ', '"memories": ' + "9" * 5000 + ", \"x\": ", 1).encode()),
    manifest_case("duplicate_keys", lambda m: json.dumps(m)[:-1].encode()
                  + b', "name": "again"}'),
    manifest_case("nan", lambda m: json.dumps({**m, "counts": {"memories": float("nan")}})
                  .encode()),
    manifest_case("infinity", lambda m: json.dumps({**m, "x": float("inf")}).encode()),
    manifest_case("name_escape", lambda m: {**m, "name": "\x1b[2J\x1b]0;owned\x07"}, "any"),
    manifest_case("name_newline", lambda m: {**m, "name": "a\nerror: fake\r"}, "any"),
    manifest_case("name_10mb", lambda m: {**m, "name": "n" * (10 << 20)}, "any"),
    manifest_case("dimension_2e62", lambda m: {**m, "embedding": {**m["embedding"],
                                                                  "dimension": 2**62}}),
    manifest_case("dimension_negative", lambda m: {**m, "embedding": {**m["embedding"],
                                                                      "dimension": -1}}),
    manifest_case("major_2", lambda m: {**m, "format_version": "2.0"}),
    manifest_case("newer_minor", lambda m: {**m, "format_version": "1.999", "x": 1}, "any"),
    manifest_case("memories_escape", lambda m: {**m, "files": {"memories": {
        **m["files"]["memories"], "path": "../../etc/passwd"}}}),
    manifest_case("memories_absolute", lambda m: {**m, "files": {"memories": {
        **m["files"]["memories"], "path": "/etc/passwd"}}}),
    manifest_case("memories_is_manifest", lambda m: {**m, "files": {"memories": {
        **m["files"]["memories"], "path": "manifest.json"}}}),
    manifest_case("index_escape", lambda m: {**m, "index": {**m["index"], "path": "../"}}),
    manifest_case("count_mismatch", lambda m: {**m, "counts": {**m["counts"],
                                                               "memories": 99999}}),
    manifest_case("size_2e63", lambda m: {**m, "files": {"memories": {
        **m["files"]["memories"], "size": 2**63}}}),
    manifest_case("size_negative", lambda m: {**m, "files": {"memories": {
        **m["files"]["memories"], "size": -5}}}),
    manifest_case("created_year_99999", lambda m: {**m, "created_at":
                                                   "99999-01-01T00:00:00Z"}),
    manifest_case("unknown_tier", lambda m: {**m, "tiers": ["plaintext", "telepathy"]}),
    manifest_case("no_tiers", lambda m: {**m, "tiers": []}),
    manifest_case("edited_after_signing", _edit_after_signing, unsign=False),
    manifest_case("cube_id_not_uuid", lambda m: {**m, "cube_id": "../../x"}),
    arrow_case("truncated", lambda t: ipc_bytes(t)[: len(ipc_bytes(t)) // 2]),
    arrow_case("empty", lambda t: b""),
    arrow_case("random", lambda t: os.urandom(4096)),
    arrow_case("pickle", lambda t: pickle.dumps(Payload(Path("/nonexistent") / SENTINEL))),
    arrow_case("stream_format", lambda t: ipc_bytes(t, stream=True)),
    arrow_case("invalid_utf8", lambda t: set_col(t, "content", strings_raw(
        [b"\xff\xfe" + v.encode() for v in t.column("content").to_pylist()]))),
    arrow_case("offsets_past_end", _offsets_past_end),
    arrow_case("offsets_decreasing", lambda t: set_col(t, "id", strings_raw(
        [v.encode() for v in t.column("id").to_pylist()],
        [0, -100] + [10] * (t.num_rows - 1)))),
    arrow_case("null_id", lambda t: with_row0(t, "id", None, pa.string())),
    arrow_case("null_content", lambda t: with_row0(t, "content", None, pa.string())),
    arrow_case("duplicate_ids", lambda t: with_row0(t, "id", t.column("id")[1].as_py(),
                                                    pa.string())),
    arrow_case("created_2e62us", lambda t: set_col(t, "created_at", pa.array(
        [2**62] * t.num_rows, pa.int64()).cast(_TS))),
    arrow_case("expires_max_i64", lambda t: set_col(t, "expires_at", pa.array(
        [MAX_I64] * t.num_rows, pa.int64()).cast(_TS))),
    arrow_case("event_time_min_i64", lambda t: set_col(t, "event_time", pa.array(
        [-MAX_I64] * t.num_rows, pa.int64()).cast(_TS))),
    arrow_case("extra_deep", lambda t: with_row0(t, "extra", deep(), pa.string())),
    arrow_case("extra_nan", lambda t: with_row0(t, "extra", '{"x": NaN}', pa.string())),
    arrow_case("extra_infinity", lambda t: with_row0(t, "extra", '{"x": -Infinity}',
                                                     pa.string())),
    arrow_case("extra_duplicate_keys", lambda t: with_row0(t, "extra", '{"a": 1, "a": 2}',
                                                           pa.string())),
    arrow_case("extra_huge_int", lambda t: with_row0(t, "extra", '{"a": ' + "7" * 5000 + "}",
                                                     pa.string())),
    arrow_case("extra_not_json", lambda t: with_row0(t, "extra", "{not json", pa.string())),
    arrow_case("extra_array", lambda t: with_row0(t, "extra", "[1, 2]", pa.string())),
    arrow_case("content_int", lambda t: set_col(t, "content", pa.array(
        range(t.num_rows), pa.int64()))),
    arrow_case("missing_column", lambda t: t.drop_columns(["tags"])),
    arrow_case("extra_column", lambda t: t.append_column("evil", pa.array(
        ["x"] * t.num_rows))),
    arrow_case("hash_mismatch", lambda t: with_row0(t, "content", "changed", pa.string())),
    arrow_case("content_2m", lambda t: with_row0(t, "content", "x" * (2 << 20), pa.string())),
    arrow_case("content_blank", lambda t: with_row0(t, "content", "   ", pa.string())),
    arrow_case("bad_origin", lambda t: with_row0(t, "origin", "alien", pa.string())),
    arrow_case("version_zero", lambda t: with_row0(t, "version", 0, pa.int32())),
    arrow_case("line_range_reversed", lambda t: with_row0(t, "line_end", -3, pa.int32())),
    arrow_case("zero_rows", lambda t: t.slice(0, 0)),
    entry_case("index_missing", _drop("index.arrow")),
    entry_case("index_is_dir", _index_dir),
    entry_case("index_not_arrow", lambda c, w: forge_file(c, "index.arrow", b"ARROW1" * 99)),
    entry_case("index_stream_format", lambda c, w: forge_file(
        c, "index.arrow", ipc_bytes(index_table(c), stream=True))),
    entry_case("index_truncated", lambda c, w: os.truncate(
        _index_file_path(c), _index_file_path(c).stat().st_size // 2)),
    entry_case("index_forged_truncated", lambda c, w: forge_file(
        c, "index.arrow", _index_file_path(c).read_bytes()[:-100])),
    entry_case("index_bitflip", lambda c, w: _flip(_index_file_path(c))),
    entry_case("index_sparse_8g", lambda c, w: os.truncate(_index_file_path(c), 8 << 30)),
    entry_case("index_of_another_cube", _other_index),
    entry_case("index_wrong_dimension", lambda c, w: forge_file(
        c, "index.arrow", ipc_bytes(_narrow(index_table(c))))),
    entry_case("index_junk_file", _in_index_dir("junk.bin", lambda p: p.write_bytes(b"x"))),
    entry_case("index_symlink", _in_index_dir("pw", lambda p: os.symlink("/etc/passwd", p))),
    entry_case("index_fifo", _in_index_dir("pipe", os.mkfifo)),
    *(entry_case(f"pickle_{rel.replace('/', '_').replace('.', '_')}", _pickle_at(rel))
      for rel in ("activation_memory.pickle", "kv/cache.pt", "weights.bin", "x.pkl",
                  "index/x.pickle", "lora/adapter_model.bin", "data.npy", "model.ckpt")),
    entry_case("symlink_top", lambda c, w: os.symlink("/etc/passwd", c / "passwd")),
    entry_case("symlink_dir", lambda c, w: os.symlink("/etc", c / "etc")),
    entry_case("memories_symlink", lambda c, w: (
        os.replace(c / "memories.arrow", w / "m.arrow"),
        os.symlink(w / "m.arrow", c / "memories.arrow"))),
    entry_case("fifo_top", lambda c, w: os.mkfifo(c / "pipe")),
    entry_case("socket_top", _socket_in),
    entry_case("unlisted_file", lambda c, w: (c / "notes.txt").write_text("hi")),
    entry_case("sig_garbage", _sig(b"\x00\xffgarbage")),
    entry_case("sig_deep_json", _sig(deep().encode())),
    entry_case("sig_duplicate_keys", _sig(lambda b: b[:-1] + b', "mediaType": "x"}')),
    entry_case("sig_payload_digest", _sig_payload),
    entry_case("sig_sparse_1g", lambda c, w: os.truncate(c / "memcube.sig", 1 << 30)),
    entry_case("file_added_after_signing", lambda c, w: (c / "x.txt").write_text("added")),
    entry_case("leftover_tmp_dir", lambda c, w: (c.parent / f".{c.name}.1.abc.tmp").mkdir(),
               "any"),
]


def _cube_is_file(work: Path, base: Base) -> Path:
    p = work / NAME
    p.write_text("not a directory")
    return p


def _cube_empty(work: Path, base: Base) -> Path:
    p = work / NAME
    p.mkdir()
    return p


def _cube_odd_name(work: Path, base: Base) -> Path:
    p = work / "odd\x1b[31m\nname.memcube"
    shutil.copytree(base.cube, p, symlinks=True)
    return p


CASES += [
    Case("cube_is_file", "cube", _cube_is_file),
    Case("cube_empty_dir", "cube", _cube_empty),
    Case("cube_missing", "cube", lambda work, base: work / NAME),
    Case("cube_odd_name", "cube", _cube_odd_name, "any"),
]
