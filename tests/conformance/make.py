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

import hashlib
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
    keys = OUT / "keys"
    if not (keys / "conf.key").is_file():  # the published test key pair is reused when there
        keys.mkdir(parents=True, exist_ok=True)
        memos("keygen", "-o", str(work / "conf"), env=env)
        for f in ("conf.key", "conf.pub"):
            shutil.copy(work / f, keys / f)
    if not (keys / "other.pub").is_file():
        memos("keygen", "-o", str(work / "other"), env=env)
        shutil.copy(work / "other.pub", keys / "other.pub")
    shutil.copy(keys / "conf.key", work / "conf.key")
    os.chmod(work / "conf.key", 0o600)
    golden = ROOT / "fixtures" / "golden"
    corpus = str(golden / "corpus")
    out: dict[str, Path] = {}

    def pack(name: str, *extra: str, sources: tuple[str, ...] = (corpus,),
             cube_id: str | None = CUBE_ID) -> Path:
        p = work / f"{name}.memcube"
        memos("pack", *sources, "-o", str(p), *(("--cube-id", cube_id) if cube_id else ()),
              "--name", name, "--owner", "conformance", *extra, env=env)
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
    pack("evolved", sources=(corpus, str(golden / "updates.jsonl")))
    pack("content-id", cube_id=None)
    for n in range(1, 8):  # older versions, as their own memos wrote them (spec §9)
        c = work / f"golden-1.{n}.memcube"
        shutil.copytree(golden / f"v1.{n}.memcube", c)
        (c / "memcube.sig").unlink()
        out[f"golden-1.{n}"] = c
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


def index_edit(change: Callable[[pa.Table], pa.Table],
               keep_schema: bool = True) -> Callable[[Path], None]:
    """Rewrite the rows of index.arrow (spec §6), then forge its digest in the manifest."""
    def run(c: Path) -> None:
        t = pa.ipc.open_file(pa.BufferReader((c / "index.arrow").read_bytes())).read_all()
        t = change(t)
        with pa.OSFile(str(c / "index.arrow"), "wb") as sink, pa.ipc.new_file(
                sink, t.schema) as w:
            w.write_table(t)
        m = manifest(c)
        m["index_files"] = [{"path": "index.arrow"}]
        put(c, redigest(c, m))
    return run


def _set_where(column: str, where_kind: str, value: str) -> Callable[[pa.Table], pa.Table]:
    def change(t: pa.Table) -> pa.Table:
        kinds = t.column("kind").to_pylist()
        col = [value if k == where_kind else v
               for k, v in zip(kinds, t.column(column).to_pylist(), strict=True)]
        i = t.schema.get_field_index(column)
        return t.set_column(i, t.schema.field(i), pa.array(col, pa.string()))
    return change


def _drop_last_row(t: pa.Table) -> pa.Table:
    return t.slice(0, t.num_rows - 1)


def _index_extra_column(t: pa.Table) -> pa.Table:
    return t.append_column("colour", pa.array(["red"] * t.num_rows))


def _index_no_schema_name(t: pa.Table) -> pa.Table:
    return t.replace_schema_metadata({})


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


# ---- signatures (spec §7): a signer with the conformance key, as a buggy writer would sign --

def _key() -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    return load_pem_private_key((OUT / "keys" / "conf.key").read_bytes(), None)


def _pae(payload_type: str, body: bytes) -> bytes:
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def resign(change: Callable[[dict[str, Any]], None], *,
           sign_other: bool = False) -> Callable[[Path], None]:
    """Change the signed in-toto statement of ``memcube.sig`` and sign it again with the
    conformance key (a writer that signed the wrong list), or, with ``sign_other``, keep the
    statement and put in a signature the key made over another payload."""
    def run(c: Path) -> None:
        import base64

        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        bundle = json.loads((c / "memcube.sig").read_bytes())
        env = bundle["dsseEnvelope"]
        statement = json.loads(base64.b64decode(env["payload"]))
        change(statement)
        if change is not _subject:  # a consistent statement: its subject digest over its list
            res = sorted(_resources(statement), key=lambda r: r["name"].split("/"))
            statement["predicate"]["resources"] = res
            statement["subject"][0]["digest"]["sha256"] = hashlib.sha256(
                b"".join(bytes.fromhex(r["digest"]) for r in res)).hexdigest()
        body = json.dumps(statement).encode()
        signed = body + b" " if sign_other else body
        sig = _key().sign(_pae(env["payloadType"], signed), ec.ECDSA(hashes.SHA256()))
        env["payload"] = base64.b64encode(body).decode()
        env["signatures"] = [{"sig": base64.b64encode(sig).decode(), "keyid": ""}]
        (c / "memcube.sig").write_text(json.dumps(bundle))
    return run


def _resources(statement: dict[str, Any]) -> list[dict[str, Any]]:
    res: list[dict[str, Any]] = statement["predicate"]["resources"]
    return res


def _ghost(statement: dict[str, Any]) -> None:
    _resources(statement).append({"name": "ghost.txt", "algorithm": "sha256",
                                  "digest": "0" * 64})


def _drop_memories(statement: dict[str, Any]) -> None:
    statement["predicate"]["resources"] = [r for r in _resources(statement)
                                           if r["name"] != "memories.arrow"]


def _subject(statement: dict[str, Any]) -> None:
    statement["subject"][0]["digest"]["sha256"] = "0" * 64


def _forge_keyless(c: Path) -> None:
    """Change the manifest after signing, keeping memcube.sig (verified without a key)."""
    raw = (c / "manifest.json").read_bytes()
    (c / "manifest.json").write_bytes(raw.replace(b'"name": "signed"', b'"name": "forged"'))


# ---- attachments, versions, newer minors -------------------------------------------------

def _attach(c: Path) -> None:
    from memos_cli.digest import sha256_file

    (c / "usage.jsonl").write_text('{"memory_id": "x", "retrievals": 1}\n')
    m = manifest(c)
    m["attachments"] = [{"path": "usage.jsonl", "sha256": sha256_file(c / "usage.jsonl"),
                         "size": (c / "usage.jsonl").stat().st_size}]
    put(c, m)


def both(first: Callable[[Any], Any], then: Callable[[Any], Any]) -> Callable[[Any], None]:
    def run(x: Any) -> None:
        first(x)
        then(x)
    return run


def attached(then: Callable[[Path], None]) -> Callable[[Path], None]:
    def run(c: Path) -> None:
        _attach(c)
        then(c)
    return run


def _as_version(version: str, drop: tuple[str, ...] = ()) -> Callable[[dict[str, Any]], None]:
    def change(m: dict[str, Any]) -> None:
        m["format_version"] = version
        for k in drop:
            m.pop(k, None)
    return change


def _future_file(listed: bool) -> Callable[[Path], None]:
    def run(c: Path) -> None:
        from memos_cli.digest import sha256_file

        (c / "future").mkdir()
        (c / "future" / "data.json").write_text('{"added": "by 1.9"}\n')
        m = manifest(c)
        m["format_version"] = "1.9"
        if listed:
            m["future_tier"] = {"files": [{"path": "future/data.json",
                                           "sha256": sha256_file(c / "future/data.json"),
                                           "size": (c / "future/data.json").stat().st_size}]}
        put(c, m)
    return run


# ---- KV files: int8, chunks, records ---------------------------------------------------

def _drop_tensor(name: str) -> Callable[[dict[str, Any], dict[str, str]], None]:
    def change(tensors: dict[str, Any], meta: dict[str, str]) -> None:
        del tensors[name]
    return change


def _meta(**values: str | None) -> Callable[[dict[str, Any], dict[str, str]], None]:
    def change(tensors: dict[str, Any], meta: dict[str, str]) -> None:
        for k, v in values.items():
            if v is None:
                meta.pop(k, None)
            else:
                meta[k] = v
    return change


def _scale_groups(tensors: dict[str, Any], meta: dict[str, str]) -> None:
    s = tensors["layers.0.keys.scale"]
    tensors["layers.0.keys.scale"] = s[:, :0, :] if s.shape[1] > 1 else s.repeat(2, axis=1)


def _first_chunk(m: dict[str, Any]) -> str:
    return str(m["kv_chunks"]["sets"][0]["chunks"][0]["path"])


def _chunk_layout(tensors: dict[str, Any], meta: dict[str, str]) -> None:
    layout = json.loads(meta["prompt_template"])
    layout["marker"] = "<{i}>"
    meta["prompt_template"] = json.dumps(layout, sort_keys=True, separators=(",", ":"))


def _other_layout(c: Path) -> None:
    """Give the chunk set another prompt layout in every file, and the set the id and
    layout_sha256 that layout gives: consistent, but not memos's layout (spec §12.2)."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    from memos_cli.cube.chunks import set_id
    from memos_cli.digest import json_sha256

    m = manifest(c)
    s = m["kv_chunks"]["sets"][0]
    layout: dict[str, Any] = {}
    for e in [s["prefix"], *s["chunks"]]:
        with safe_open(str(c / e["path"]), "np") as f:
            meta = dict(f.metadata() or {})
        tensors = load_file(str(c / e["path"]))
        layout = json.loads(meta["prompt_template"])
        layout["name"] = "another-writer/1"
        meta["prompt_template"] = json.dumps(layout, sort_keys=True, separators=(",", ":"))
        save_file(tensors, str(c / e["path"]), metadata=meta)
    s["layout_sha256"] = json_sha256(layout)
    new = set_id(s["model_fingerprint_sha256"], s["layout_sha256"], s["storage_dtype"],
                 s["group"])
    os.rename(c / s["path"], c / f"kv/chunks/{new}")
    old = s["path"]
    s["id"], s["path"] = new, f"kv/chunks/{new}"
    for e in [s["prefix"], *s["chunks"]]:
        e["path"] = e["path"].replace(old, s["path"])
    put(c, redigest(c, m))


def _chunk_rekey(c: Path) -> None:
    m = manifest(c)
    s = m["kv_chunks"]["sets"][0]
    ch = s["chunks"][0]
    new = "ab" * 32
    os.rename(c / ch["path"], c / f"{s['path']}/{new}.safetensors")
    ch.update(key=new, path=f"{s['path']}/{new}.safetensors")
    put(c, m)


def _chunk_stray_memory(m: dict[str, Any]) -> None:
    m["kv_chunks"]["sets"][0]["chunks"][0]["memory_ids"] = [
        "00000000-0000-4000-8000-0000000000ee"]


def _chunk_tokens(m: dict[str, Any]) -> None:
    m["kv_chunks"]["sets"][0]["chunks"][0]["tokens"] += 1


def _supersession_disagrees(t: pa.Table) -> pa.Table:
    col = t.column("superseded_by").to_pylist()
    i = next(n for n, v in enumerate(col) if v)
    col[i] = t.column("id")[0 if i else 1].as_py()
    return t.set_column(t.schema.get_field_index("superseded_by"),
                        t.schema.field("superseded_by"),
                        pa.array(col, t.schema.field("superseded_by").type))


def with_content_digest(change: Callable[[Path], None]) -> Callable[[Path], None]:
    """Apply ``change`` (to memories.arrow), then forge content_digest to match, so that only
    the rule under test fails."""
    def run(c: Path) -> None:
        from memos_cli.cube.memories import content_digest, read_memories

        change(c)
        m = manifest(c)
        m["content_digest"] = content_digest(read_memories(c / "memories.arrow"))
        put(c, m)
    return run


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
    ("kv-in-1.0", "golden-1.1", edit(lambda m: m.update(format_version="1.0")), "invalid",
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
    ("stray-index-file", "golden-1.7", add_file("index/memories.lance/extra.lance"), "invalid",
     "§3/§6 closed layout (a 1.5-1.7 LanceDB index)", "not listed in the manifest"),
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
     index_edit(_set_where("kind", "context", "summaries")), "invalid", "§6.1 known kinds",
     "unknown kind 'summaries'"),
    ("reader-row-stray-id", "context",
     index_edit(_set_where("id", "context", "00000000-0000-4000-8000-0000000000ff")),
     "invalid", "§6.1 reader rows find memories of the cube", "is not in the cube"),
    ("reader-count", "context", edit(_reader_rows_plus_one), "invalid",
     "§6.1 readers counts", "readers entry for 'context'"),
    ("readers-in-1.5", "golden-1.6", edit(lambda m: m.update(format_version="1.5")), "invalid",
     "§1 readers is a key of 1.6", "a key of format 1.6"),
    ("derived-source-gone", "derived", _derived_source_gone, "invalid",
     "§4.5 sources in the cube", "not in the cube"),
    ("signed-then-changed", "signed",
     lambda c: (c / "manifest.json").write_bytes(
         (c / "manifest.json").read_bytes().replace(b'"name": "signed"', b'"name": "forged"')),
     "invalid", "§7 any change after signing", "changed since it was signed"),
    ("index-files-without-index", "kv-only",
     edit(lambda m: m.update(index_files=[])), "invalid",
     "§1/§5 index_files goes with the plaintext tier", "index_files"),
    ("content-digest-without-files", "kv-only",
     edit(lambda m: m.update(content_digest="sha256:" + "0" * 64)), "invalid",
     "§1/§5 content_digest goes with the plaintext tier", "content_digest"),
    # §5 paths that collide on some file system
    ("path-case-twice", "plain",
     edit(lambda m: m.update(attachments=[
         {"path": "Memories.arrow", "sha256": m["files"]["memories"]["sha256"],
          "size": m["files"]["memories"]["size"]}])),
     "invalid", "§5 paths equal but for case are one path", "differs only in case"),
    ("path-not-nfc", "plain",
     edit(lambda m: m.update(attachments=[{"path": "cafe\u0301.jsonl", "sha256": "sha256:"
                                           + "0" * 64, "size": 1}])),
     "invalid", "§5 paths are in Unicode NFC", "NFC"),
    ("path-file-and-folder", "kv",
     edit(lambda m: m.update(attachments=[{"path": "kv", "sha256": "sha256:" + "0" * 64,
                                           "size": 1}])),
     "invalid", "§5 a listed file is not the folder of another", "folder of another"),
    ("manifest-bom", "plain",
     lambda c: (c / "manifest.json").write_bytes(b"\xef\xbb\xbf"
                                                 + (c / "manifest.json").read_bytes()),
     "invalid", "§5 no byte-order mark before the manifest", "BOM"),
    # §7 signatures: each a cube whose signature a reader with the key MUST refuse
    ("signed-keyless", "signed", None, "valid",
     "§7 a signed cube verified without a key: the payload matches, the signature is not "
     "checked", ""),
    ("signed-wrong-key", "signed", None, "invalid", "§7 another key", "signature"),
    ("signed-bad-signature", "signed", resign(lambda s: None, sign_other=True), "invalid",
     "§7 a signature that is not over the payload", "signature"),
    ("signed-payload-extra-file", "signed", resign(_ghost), "invalid",
     "§7 the payload lists a file the cube lacks (validly signed)", "ghost.txt"),
    ("signed-payload-missing-file", "signed", resign(_drop_memories), "invalid",
     "§7 the payload lacks a file the cube holds (validly signed)", "memories.arrow"),
    ("signed-subject-digest", "signed", resign(_subject), "invalid",
     "§7 the subject digest is not over the resources (validly signed)", "signature"),
    ("unsigned-with-key", "plain", None, "invalid",
     "§7 a key given for an unsigned cube", "unsigned"),
    ("signed-changed-keyless", "signed", _forge_keyless, "invalid",
     "§7 keyless payload check: a change after signing, found without a key",
     "changed since it was signed"),
    # §5 attachments
    ("attachment", "plain", _attach, "valid", "§5 attachments", ""),
    ("attachment-digest", "plain",
     attached(lambda c: (c / "usage.jsonl").write_text('{"memory_id": "y", "retrievals": 1}\n')),
     "invalid", "§5 attachment digests", "does not match the digest"),
    ("attachment-missing", "plain", attached(lambda c: (c / "usage.jsonl").unlink()),
     "invalid", "§3 a listed file is missing", "usage.jsonl"),
    ("attachment-nested", "plain",
     edit(lambda m: m.update(attachments=[{"path": "a/usage.jsonl", "sha256": "sha256:"
                                           + "0" * 64, "size": 1}])),
     "invalid", "§5 attachments lie at the top", "attachments/0/path"),
    # §1 every version rule
    ("lora-in-1.1", "golden-1.2", edit(_as_version("1.1")),
     "invalid", "§1 lora is a key of 1.2", "a key of format 1.2"),
    ("kv_chunks-in-1.2", "golden-1.3", edit(_as_version("1.2")),
     "invalid", "§1 kv_chunks is a key of 1.3", "a key of format 1.3"),
    ("index_files-in-1.3", "golden-1.4", edit(_as_version("1.3")), "invalid",
     "§1 index_files is a key of 1.4", "a key of format 1.4"),
    ("revision-in-1.3", "golden-1.4",
     edit(both(_as_version("1.3", ("index_files",)),
               lambda m: m.update(revision=2))),
     "invalid", "§1 revision is a key of 1.4", "a key of format 1.4"),
    ("content_digest-in-1.4", "golden-1.5", edit(_as_version("1.4")), "invalid",
     "§1 content_digest is a key of 1.5", "a key of format 1.5"),
    ("attachments-in-1.4", "golden-1.4", attached(edit(_as_version("1.4"))),
     "invalid", "§1 attachments is a key of 1.5", "a key of format 1.5"),
    ("v1.4-no-index-files", "golden-1.4", edit(_as_version("1.4", ("index_files",))),
     "invalid", "§1 from 1.4 a cube with an index lists its files",
     "'index_files' is a required property"),
    ("v1.4-stray-file", "golden-1.4", add_file("notes.txt"),
     "valid", "§1/§3 1.0-1.4: a file outside index/ is covered only by a signature", ""),
    ("v1.3-plain", "golden-1.4", edit(_as_version("1.3", ("index_files",))),
     "valid", "§1 a 1.3 cube: no index_files", ""),
    ("validity-in-1.6", "golden-1.7", edit(_as_version("1.6")), "invalid",
     "§4.6 the validity columns are of 1.7", "1.7"),
    ("newer-minor-file", "plain", _future_file(listed=True), "valid",
     "§1/§3 a newer minor's file, listed under a key this reader does not know", ""),
    ("newer-minor-unlisted-file", "plain", _future_file(listed=False), "invalid",
     "§3 a newer minor's file listed nowhere", "not listed in the manifest"),
    # §4.6 valid time and supersession, §5 content-derived ids
    ("supersession", "evolved", None, "valid", "§4.6 supersession links", ""),
    ("supersession-disagrees", "evolved",
     with_content_digest(arrow(_supersession_disagrees)), "invalid",
     "§4.6 links agree", "supersed"),
    ("content-derived-id", "content-id", None, "valid",
     "§5 cube_id is the UUIDv5 of content_digest", ""),
    # §10 int8 and records
    ("int8-no-scale", "kv-int8",
     safetensors_edit(_first_segment, _drop_tensor("layers.0.keys.scale")), "invalid",
     "§10 int8 carries its scales and zero points", "layers.0.keys.scale"),
    ("int8-quantization", "kv-int8", safetensors_edit(_first_segment, _meta(quantization="none")),
     "invalid", "§10 quantization names the int8 scheme", "quantization"),
    ("int8-scale-groups", "kv-int8", safetensors_edit(_first_segment, _scale_groups),
     "invalid", "§10 one key scale per 32 tokens", "layers.0.keys.scale"),
    ("segment-without-records", "kv", safetensors_edit(_first_segment, _meta(memories=None)),
     "invalid", "§10 memories is required from 1.3", "lacks memories"),
    ("segment-without-records-1.2", "golden-1.1", edit(_as_version("1.2")),
     "valid", "§10 a 1.1-1.2 segment may lack memories (the 1.1 golden's, declared 1.2)", ""),
    # §6 the index file (1.8)
    ("index-row-missing", "plain", index_edit(_drop_last_row), "invalid",
     "§6 the index holds exactly the cube's memories", "index does not hold exactly"),
    ("index-extra-column", "plain", index_edit(_index_extra_column), "invalid",
     "§6 the index file's columns", "columns"),
    ("index-schema-name", "plain", index_edit(_index_no_schema_name), "invalid",
     "§6 the index file's schema metadata", "memcube.schema"),
    ("lancedb-index-in-1.8", "golden-1.7", edit(_as_version("1.8")), "invalid",
     "§1/§6 from 1.8 the index is index.arrow", "engine"),
    ("arrow-index-in-1.7", "plain", edit(_as_version("1.7")), "invalid",
     "§1/§6 before 1.8 the index is a LanceDB database", "engine"),
    # §12 chunk sets
    ("chunk-key", "chunks", _chunk_rekey, "invalid", "§12.4 a chunk key is its content",
     "other content"),
    ("chunk-stray-memory", "chunks", edit(_chunk_stray_memory), "invalid",
     "§12.4 a chunk's memories are in the cube", "no longer has"),
    ("chunk-tokens", "chunks", edit(_chunk_tokens), "invalid",
     "§12.4 a chunk's tokens are those listed", "tokens"),
    ("chunk-layout-digest", "chunks", safetensors_edit(_first_chunk, _chunk_layout), "invalid",
     "§12.4 every file's layout is its set's layout_sha256", "layout_sha256"),
    ("chunk-start-in-prefix", "chunks",
     safetensors_edit(_first_chunk, _meta(start_position="1")), "invalid",
     "§12.3 a chunk starts after the prefix", "inside the prefix"),
    ("chunk-layout-other", "chunks", _other_layout, "valid",
     "§12.2 a chunk set of another layout: the cube is valid, the set unusable", ""),
    # KV-only and LoRA-only cubes
    ("kv-only-count", "kv-only", edit(lambda m: m["counts"].update(memories=99)), "invalid",
     "§5 counts in a KV-only cube", "manifest counts 99 memories"),
    ("kv-only-tiers", "kv-only", edit(lambda m: m.update(tiers=["plaintext", "activation"])),
     "invalid", "§5 plaintext exactly when its keys are present", "tiers must list 'plaintext'"),
    ("lora-only-tiers", "lora-only", edit(lambda m: m.update(tiers=["activation"])),
     "invalid", "§5 tiers list exactly the tiers present", "tiers must list"),
    ("lora-only-count", "lora-only", edit(lambda m: m["counts"].update(memories=99)),
     "invalid", "§5 counts in a LoRA-only cube", "manifest counts 99 memories"),
]
#: Vectors checked with a public key (``keys/conf.pub``, or ``keys/other.pub``).
KEYS = {"signed": "conf.pub", "signed-then-changed": "conf.pub", "signed-wrong-key": "other.pub",
        "signed-bad-signature": "conf.pub", "signed-payload-extra-file": "conf.pub",
        "signed-payload-missing-file": "conf.pub", "signed-subject-digest": "conf.pub",
        "unsigned-with-key": "conf.pub"}


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
        rows = []
        for name, src, change, verdict, rule, reason in VECTORS:
            if only and name not in only:
                if f"cubes/{name}.memcube" in old:
                    rows.append(old[f"cubes/{name}.memcube"])
                continue
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
