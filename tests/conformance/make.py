"""Write the conformance vectors of spec/conformance/ (spec §9.1).

Each vector is a small cube and the verdict a conforming reader must give when it verifies
it: ``valid``, or ``invalid`` with the rule broken. Invalid cubes are valid ones changed as
a writer with a bug or an attacker without the key would (digests in the manifest made to
match, so that the rule under test is the one that fails). memos's own message for each is
checked here, when the vectors are written, and by ``tests/conformance/test_conformance.py``.

    python -m tests.conformance.make      # rewrites spec/conformance/cubes and vectors.json
    python -m tests.conformance.make --add NAME...   # writes only these vectors, keeps the rest
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "spec" / "conformance"
CUBES = OUT / "cubes"
CUBE_ID = "00000000-0000-4000-8000-00000000c0de"


def memos(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "memos_cli", *args], env=env, check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)


def bases(work: Path) -> dict[str, Path]:
    """The valid cubes every vector starts from, made by this memos with the golden model."""
    from tests.golden.model import build

    env = {**os.environ, "SOURCE_DATE_EPOCH": "1709285400", "MEMOS_NO_USAGE": "1"}
    model = str(build(work / "model"))
    memos("keygen", "-o", str(work / "conf"), env=env)
    corpus = str(ROOT / "fixtures" / "golden" / "corpus")
    out: dict[str, Path] = {}

    def pack(name: str, *extra: str) -> Path:
        p = work / f"{name}.memcube"
        memos("pack", corpus, "-o", str(p), "--cube-id", CUBE_ID, "--name", name, "--owner",
              "conformance", *extra, env=env)
        out[name] = p
        return p

    pack("plain")
    pack("signed", "--key", str(work / "conf.key"))
    memos("convert", str(pack("kv")), "--to", "kv", "--model", model, env=env)
    memos("convert", str(pack("kv-int8")), "--to", "kv", "--dtype", "int8", "--model", model,
          env=env)
    memos("convert", str(pack("chunks")), "--to", "kv", "--chunks", "--model", model, env=env)
    lora = ("--to", "lora", "--model", model, "--recipe", "text", "--epochs", "1", "--rank",
            "2", "--seed", "0")
    memos("convert", str(pack("lora")), *lora, env=env)
    memos("convert", str(pack("kv-only")), "--to", "kv", "--model", model, "--drop-text",
          env=env)
    memos("convert", str(pack("lora-only")), *lora, "--drop-text", env=env)
    pack("context", "--reader", "context")
    out["derived"] = derived_base(pack("derived"))
    return out


def derived_base(c: Path) -> Path:
    """The ``derived`` base (spec §4.5): the corpus with one fact derived from its first
    dialog turn, as the facts reader would write it (the golden model is random, so the fact
    is written here rather than generated)."""
    from memos_cli.cube import open_cube, reindex
    from memos_cli.lifecycle.pack import embed_memories
    from memos_cli.models.embedder import Embedder
    from memos_cli.readers import ReaderResult
    from memos_cli.readers.facts import derive

    cube = open_cube(c)
    turn = next(m for m in cube.memories if m.semantic_type == "dialog_turn")
    fact = derive("The user asked whether the memcube format is versioned.", [turn])
    mems = [*cube.memories, fact]
    enc = Embedder()
    record = ReaderResult("facts", {"window": 4}, memories=[fact]).record()
    reindex(c, embed_memories(enc, mems), enc.describe(), memories=mems, readers=[record])
    return c


# ---- changing a cube ------------------------------------------------------------------------

def manifest(c: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((c / "manifest.json").read_bytes())
    return data


def put(c: Path, m: dict[str, Any] | bytes) -> None:
    raw = m if isinstance(m, bytes) else (json.dumps(m, indent=2, ensure_ascii=False) + "\n"
                                          ).encode()
    (c / "manifest.json").write_bytes(raw)
    (c / "memcube.sig").unlink(missing_ok=True)


def redigest(c: Path, m: dict[str, Any]) -> dict[str, Any]:
    """Make every listed digest and size match the files (a forger's manifest)."""
    from memos_cli.digest import sha256_file

    entries = [*m.get("files", {}).values(), *m.get("index_files", []),
               *m.get("kv", {}).get("segments", []), *m.get("lora", {}).get("files", []),
               *m.get("attachments", [])]
    for s in m.get("kv_chunks", {}).get("sets", []):
        entries += [s["prefix"], *s["chunks"]]
    for e in entries:
        p = c / e["path"]
        if p.is_file():
            e.update(sha256=sha256_file(p), size=p.stat().st_size)
    return m


def edit(change: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    def run(c: Path) -> None:
        m = manifest(c)
        got = change(m)
        put(c, got if isinstance(got, bytes) else m)
    return run


def arrow(change: Callable[[pa.Table], pa.Table]) -> Callable[[Path], None]:
    def run(c: Path) -> None:
        from memos_cli.cube.memories import SCHEMA

        # read a copy: the file is rewritten below, a memory map of it would fault
        t = change(pa.ipc.open_file(pa.BufferReader((c / "memories.arrow").read_bytes()))
                   .read_all())
        with pa.OSFile(str(c / "memories.arrow"), "wb") as sink, pa.ipc.new_file(
                sink, t.schema if t.schema.names != SCHEMA.names else SCHEMA) as w:
            w.write_table(t)
        put(c, redigest(c, manifest(c)))
    return run


def add_file(rel: str, data: bytes = b"x\n") -> Callable[[Path], None]:
    def run(c: Path) -> None:
        (c / rel).parent.mkdir(parents=True, exist_ok=True)
        (c / rel).write_bytes(data)
        put(c, manifest(c))
    return run


def safetensors_edit(pick: Callable[[dict[str, Any]], str],
                     change: Callable[[dict[str, Any], dict[str, str]], None]
                     ) -> Callable[[Path], None]:
    """Rewrite one safetensors file (tensors and metadata), then forge the digests."""
    def run(c: Path) -> None:
        from safetensors import safe_open
        from safetensors.numpy import load_file, save_file

        rel = pick(manifest(c))
        with safe_open(str(c / rel), "np") as f:
            meta = dict(f.metadata() or {})
        tensors = load_file(str(c / rel))
        change(tensors, meta)
        save_file(tensors, str(c / rel), metadata=meta)
        put(c, redigest(c, manifest(c)))
    return run


def _row0(t: pa.Table, name: str, value: Any) -> pa.Table:
    i = t.schema.get_field_index(name)
    col = t.column(name).to_pylist()
    col[0] = value
    return t.set_column(i, t.schema.field(name), pa.array(col, t.schema.field(name).type))


def _dup_id(t: pa.Table) -> pa.Table:
    return _row0(t, "id", t.column("id")[1].as_py())


def _set_fp(key: str, where: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[..., None]:
    def change(m: dict[str, Any]) -> None:
        where(m)[key] = "sha256:" + "0" * 64
    return change


def _segment_wrong_id(c: Path) -> None:
    m = manifest(c)
    seg = m["kv"]["segments"][0]
    new = "0123456789abcdef"
    os.rename(c / seg["path"], c / f"kv/{new}.safetensors")
    seg.update(id=new, path=f"kv/{new}.safetensors")
    put(c, m)


def _set_wrong_id(c: Path) -> None:
    m = manifest(c)
    s = m["kv_chunks"]["sets"][0]
    new = "fedcba9876543210"
    os.rename(c / s["path"], c / f"kv/chunks/{new}")
    old = s["path"]
    s["id"], s["path"] = new, f"kv/chunks/{new}"
    for e in [s["prefix"], *s["chunks"]]:
        e["path"] = e["path"].replace(old, s["path"])
    put(c, m)


def _swap_ids(tensors: dict[str, Any], meta: dict[str, str]) -> None:
    ids = json.loads(meta["memory_ids"])
    meta["memory_ids"] = json.dumps(list(reversed(ids)))


def _extra_tensor(tensors: dict[str, Any], meta: dict[str, str]) -> None:
    import numpy as np

    tensors["extra.weight"] = np.zeros((2, 2), np.float32)


def _first_segment(m: dict[str, Any]) -> str:
    return str(m["kv"]["segments"][0]["path"])


def _lora_weights(m: dict[str, Any]) -> str:
    return "lora/adapter_model.safetensors"


def lance_edit(sql: str, values: dict[str, str]) -> Callable[[Path], None]:
    """Update rows of the index table with LanceDB (a new Lance version), then list the
    index files again and forge the digests."""
    def run(c: Path) -> None:
        import lancedb

        from memos_cli.cube.index import list_files

        lancedb.connect(str(c / "index")).open_table("memories").update(where=sql,
                                                                        values=values)
        m = manifest(c)
        m["index_files"] = list_files(c, "index")
        put(c, redigest(c, m))
    return run


def _derived_source_gone(c: Path) -> None:
    """Point the derived memory at a memory that is not in the cube, and forge the content
    digest so that only §4.5 fails."""
    from memos_cli.cube.memories import content_digest, read_memories

    def change(t: pa.Table) -> pa.Table:
        extra = t.column("extra").to_pylist()
        extra = [x.replace('"derived_from":["', '"derived_from":["00000000-dead-') for x in extra]
        return t.set_column(t.schema.get_field_index("extra"), t.schema.field("extra"),
                            pa.array(extra, pa.string()))
    arrow(change)(c)
    m = manifest(c)
    m["content_digest"] = content_digest(read_memories(c / "memories.arrow"))
    put(c, m)


def _reader_rows_plus_one(m: dict[str, Any]) -> None:
    m["readers"][0]["index_rows"] += 1


def _newer_minor(m: dict[str, Any]) -> None:
    m["format_version"] = "1.9"
    m["future_key"] = {"added": "by a newer minor"}


#: (name, base, change, verdict, rule, what memos's message holds)
VECTORS: list[tuple[str, str, Callable[[Path], None] | None, str, str, str]] = [
    ("plain", "plain", None, "valid", "§4-§6", ""),
    ("signed", "signed", None, "valid", "§7", ""),
    ("kv", "kv", None, "valid", "§10", ""),
    ("kv-int8", "kv-int8", None, "valid", "§10 int8", ""),
    ("kv-chunks", "chunks", None, "valid", "§12", ""),
    ("lora", "lora", None, "valid", "§11", ""),
    ("kv-only", "kv-only", None, "valid", "§10 KV-only", ""),
    ("lora-only", "lora-only", None, "valid", "§11 LoRA-only", ""),
    ("newer-minor", "plain", edit(_newer_minor), "valid",
     "§1 unknown top-level keys of a newer minor are ignored", ""),
    ("major-2", "plain", edit(lambda m: m.update(format_version="2.0")), "invalid",
     "§1 unknown MAJOR", "format version 2.0 is not supported"),
    ("unknown-key", "plain", edit(lambda m: m.update(colour="red")), "invalid",
     "§1 unknown key in the reader's own minor", "Additional properties"),
    ("missing-cube-id", "plain", edit(lambda m: m.pop("cube_id")), "invalid",
     "§5 required key", "'cube_id' is a required property"),
    ("month-13", "plain", edit(lambda m: m.update(created_at="2024-13-01T00:00:00Z")),
     "invalid", "§5 created_at", "created_at"),
    ("february-30", "plain", edit(lambda m: m.update(created_at="2024-02-30T00:00:00Z")),
     "invalid", "§5 created_at is a real time", "not a real time"),
    ("tiers-order", "kv", edit(lambda m: m.update(tiers=["activation", "plaintext"])),
     "invalid", "§5 tier order", "not in the order"),
    ("activation-without-kv", "plain",
     edit(lambda m: m.update(tiers=["plaintext", "activation"])), "invalid",
     "§5 activation exactly when KV data exist", "activation"),
    ("kv-in-1.0", "kv", edit(lambda m: m.update(format_version="1.0")), "invalid",
     "§1 a key newer than the declared version", "kv"),
    ("no-content-digest", "plain", edit(lambda m: m.pop("content_digest")), "invalid",
     "§1/§5 content_digest required from 1.5", "'content_digest' is a required property"),
    ("path-trailing-slash", "plain",
     edit(lambda m: m["files"]["memories"].update(path="memories.arrow/")), "invalid",
     "§5 paths", "files/memories/path"),
    ("path-escapes", "plain",
     edit(lambda m: m["files"]["memories"].update(path="../memories.arrow")), "invalid",
     "§3 paths", "files/memories/path"),
    ("path-twice", "plain",
     edit(lambda m: m.update(attachments=[dict(m["files"]["memories"])])), "invalid",
     "§5 no path twice", "listed twice"),
    ("duplicate-json-key", "plain",
     edit(lambda m: (json.dumps(m, indent=2)[:-1] + ',\n  "name": "again"\n}\n').encode()),
     "invalid", "§2 duplicate keys", "duplicate"),
    ("nan", "plain",
     edit(lambda m: json.dumps(m, indent=2).replace('"dedupe": "content_hash"',
                                                    '"dedupe": NaN').encode()),
     "invalid", "§2 NaN", "NaN"),
    ("stray-file", "plain", add_file("notes.txt"), "invalid", "§3 closed layout",
     "not listed in the manifest"),
    ("stray-index-file", "plain", add_file("index/memories.lance/extra.lance"), "invalid",
     "§3/§6 closed layout", "not listed in the manifest"),
    ("git-directory", "plain", add_file(".github/notes"), "invalid", "§3 .git* names",
     "git file"),
    ("forbidden-suffix-case", "plain", add_file("w.PT"), "invalid",
     "§3 code-running suffixes, any case", "can run code"),
    ("memories-changed", "plain",
     lambda c: (c / "memories.arrow").write_bytes((c / "memories.arrow").read_bytes()[:-8]
                                                  + b"\0" * 8), "invalid",
     "§5 files.memories digest", "does not match the digest"),
    ("content-hash", "plain", arrow(lambda t: _row0(t, "content", "Changed.")), "invalid",
     "§4.3 content hash", "does not match its content_hash"),
    ("duplicate-id", "plain", arrow(_dup_id), "invalid", "§4 unique ids", "repeats row"),
    ("content-digest", "plain",
     edit(lambda m: m.update(content_digest="sha256:" + "1" * 64)), "invalid",
     "§5 content_digest", "content_digest"),
    ("count", "plain", edit(lambda m: m["counts"].update(memories=7)), "invalid",
     "§5 counts.memories", "manifest counts 7 memories"),
    ("extra-column", "plain",
     arrow(lambda t: t.append_column("colour", pa.array(["red"] * t.num_rows))), "invalid",
     "§4 columns", "unknown column colour"),
    ("segment-id", "kv", _segment_wrong_id, "invalid", "§10 segment id", "segment id"),
    ("segment-fingerprint-digest", "kv",
     edit(_set_fp("model_fingerprint_sha256", lambda m: m["kv"]["segments"][0])), "invalid",
     "§5 model_fingerprint_sha256", "model_fingerprint_sha256"),
    ("segment-extra-tensor", "kv", safetensors_edit(_first_segment, _extra_tensor),
     "invalid", "§10 no other tensor", "extra.weight"),
    ("segment-records", "kv", safetensors_edit(_first_segment, _swap_ids), "invalid",
     "§10 memory ids and records agree", "memories do not match"),
    ("chunk-set-id", "chunks", _set_wrong_id, "invalid", "§12.4 set id", "set"),
    ("lora-fingerprint-digest", "lora",
     edit(_set_fp("model_fingerprint_sha256", lambda m: m["lora"])), "invalid",
     "§5 model_fingerprint_sha256", "model_fingerprint_sha256"),
    ("lora-extra-tensor", "lora", safetensors_edit(_lora_weights, _extra_tensor), "invalid",
     "§11 only lora_A/lora_B tensors", "extra.weight"),
    ("context", "context", None, "valid", "§6.1 reader rows", ""),
    ("derived", "derived", None, "valid", "§4.5 derived memories", ""),
    ("reader-row-unknown-kind", "context",
     lance_edit("kind = 'context'", {"kind": "summaries"}), "invalid", "§6.1 known kinds",
     "unknown kind 'summaries'"),
    ("reader-row-stray-id", "context",
     lance_edit("kind = 'context'", {"id": "00000000-0000-4000-8000-0000000000ff"}),
     "invalid", "§6.1 reader rows find memories of the cube", "is not in the cube"),
    ("reader-count", "context", edit(_reader_rows_plus_one), "invalid",
     "§6.1 readers counts", "readers entry for 'context'"),
    ("readers-in-1.5", "context", edit(lambda m: m.update(format_version="1.5")), "invalid",
     "§1 readers is a key of 1.6", "a key of format 1.6"),
    ("derived-source-gone", "derived", _derived_source_gone, "invalid",
     "§4.5 sources in the cube", "not in the cube"),
    ("signed-then-changed", "signed",
     lambda c: (c / "manifest.json").write_bytes(
         (c / "manifest.json").read_bytes().replace(b'"name": "signed"', b'"name": "forged"')),
     "invalid", "§7 any change after signing", "changed since it was signed"),
]
#: Vectors checked with a public key (``keys/conf.pub``, or ``keys/other.pub``).
KEYS = {"signed": "conf.pub", "signed-then-changed": "conf.pub"}


def main() -> None:
    import argparse

    from memos_cli.cube import verify
    from memos_cli.errors import MemosError

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--add", nargs="+", metavar="NAME",
                    help="write only these vectors (the others and the key stay as they are)")
    args = ap.parse_args()
    only = set(args.add or ())
    if unknown := only - {v[0] for v in VECTORS}:
        raise SystemExit(f"no such vector: {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base = bases(work)
        old = {r["cube"]: r for r in json.loads((OUT / "vectors.json").read_text())} \
            if only else {}
        if not only:
            shutil.rmtree(CUBES, ignore_errors=True)
            CUBES.mkdir(parents=True)
            (OUT / "keys").mkdir(exist_ok=True)
            shutil.copy(work / "conf.pub", OUT / "keys" / "conf.pub")
        rows = []
        for name, src, change, verdict, rule, reason in VECTORS:
            if only and name not in only:
                if f"cubes/{name}.memcube" in old:
                    rows.append(old[f"cubes/{name}.memcube"])
                continue
            if only and KEYS.get(name):
                raise SystemExit(f"{name}: a signed vector needs the whole set rewritten")
            shutil.rmtree(CUBES / f"{name}.memcube", ignore_errors=True)
            c = CUBES / f"{name}.memcube"
            shutil.copytree(base[src], c)
            if change is not None:
                change(c)
            key = KEYS.get(name)
            try:
                verify(c, OUT / "keys" / key if key else None)
                got = "valid"
                message = ""
            except MemosError as e:
                got, message = "invalid", str(e)
            if got != verdict or reason not in message:
                raise SystemExit(f"{name}: memos says {got} ({message}), the vector says "
                                 f"{verdict} ({reason})")
            rows.append({"cube": f"cubes/{name}.memcube", "key": f"keys/{key}" if key else None,
                         "verdict": verdict, "rule": rule, "memos_message": reason})
        (OUT / "vectors.json").write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} vectors to {OUT}")


if __name__ == "__main__":
    main()
