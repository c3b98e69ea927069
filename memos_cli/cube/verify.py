"""``memos verify``: check a cube completely (spec/memcube.md §3-§12): manifest, layout,
digests of every listed file, content hashes, the index, KV segment and chunk headers, and
with a public key the signature."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memos_cli import strictjson
from memos_cli.cube import layout
from memos_cli.cube.chunks import ChunkSet, check_chunk_header, member
from memos_cli.cube.cube import Cube, open_cube
from memos_cli.cube.index_file import check_files as check_index_files
from memos_cli.cube.kv import SegmentMeta, check_segment, segment_id
from memos_cli.cube.lora import META as LORA_META
from memos_cli.cube.lora import check_adapter
from memos_cli.cube.lora import read_meta as read_lora_meta
from memos_cli.cube.memories import content_digest
from memos_cli.cube.readers import check_readers
from memos_cli.cube.signature import check_payload, verify_cube
from memos_cli.digest import JCS_SINCE, accepted_json_sha256, json_sha256, sha256_file
from memos_cli.errors import FormatError, IntegrityError
from memos_cli.pausepoints import pause
from memos_cli.validity import link_problems, summary

#: The format version from which every KV segment holds its memories' records (spec §10).
RECORDS_SINCE = (1, 3)


@dataclass
class VerifyReport:
    """Outcome of :func:`verify`; ``problems`` is empty when everything checked passed."""

    cube: str
    cube_id: str
    memories: int
    files: int
    signed: bool
    signature: str  # "verified" | "not checked (no key given)" | "unsigned"
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"cube": self.cube, "cube_id": self.cube_id, "ok": self.ok,
                "memories": self.memories, "files": self.files, "signed": self.signed,
                "signature": self.signature, "problems": self.problems}


def verify(path: str | Path | Cube, public_key: str | Path | None = None) -> VerifyReport:
    """Check a cube (a path, or a cube already opened) completely; raise on the first failure.

    Checks: manifest (schema, version, paths), no symlinks or code-running files, the
    memories file digest, every row's schema and content hash (on read), unique ids, the
    count in the manifest, KV segment and chunk headers and tensor layouts, that the index
    holds exactly the memory ids, and the signature: with ``public_key`` over every file;
    without it, that the signed statement still lists exactly the cube's files and digests
    (``signature.check_payload``).

    Raises:
        CubeNotFoundError, FormatError, IntegrityError, SignatureError, KeyFileError.
    """
    cube = path if isinstance(path, Cube) else open_cube(path)
    pause("verify:opened")
    if cube.has_plaintext:
        ids = [m.id for m in cube.memories]
        if len(set(ids)) != len(ids):
            raise IntegrityError("memory ids are not unique", path=cube.memories_path)
        if problems := link_problems(cube.memories):
            raise IntegrityError(summary(problems), path=cube.memories_path)
    else:
        ids = cube.memory_ids()
    if cube.manifest.counts["memories"] != len(ids):
        raise IntegrityError(
            f"manifest counts {cube.manifest.counts['memories']} memories, the cube holds "
            f"{len(ids)}", path=cube.path / layout.MANIFEST)
    version = cube.manifest.version
    legacy = version < (1, 5)
    if cube.has_plaintext and cube.manifest.content_digest is not None and content_digest(
            cube.memories) != cube.manifest.content_digest:
        raise IntegrityError("the memories do not match content_digest in manifest.json",
                             path=cube.path / layout.MANIFEST)
    for entry in cube.segments:
        seg = cube.segment_path(entry)
        if sha256_file(seg) != entry["sha256"]:
            raise IntegrityError("file does not match the digest in manifest.json", path=seg)
        meta = check_segment(seg)
        if not meta.has_records and version >= RECORDS_SINCE:
            raise FormatError("KV segment metadata lacks memories (required from format 1.3)",
                              path=seg)
        if meta.kind != "segment" or list(meta.memory_ids) != list(entry["memory_ids"]):
            raise IntegrityError(f"KV file is a {meta.kind} of {len(meta.memory_ids)} memories, "
                                 "not the segment the manifest lists", path=seg)
        names = {segment_id(meta)} | ({segment_id(meta, legacy=True)} if legacy else set())
        if entry["id"] not in names:
            raise IntegrityError(f"segment id {entry['id']} is not the digest of the segment's "
                                 f"fingerprint, template, memories and dtype", path=seg)
        check_fingerprint(entry["model_fingerprint_sha256"], meta.model_fingerprint, version,
                          seg, legacy_form=meta.legacy_fingerprint() if legacy else None)
    for s in cube.chunk_sets:
        prefix_tokens = 0
        for n, f in enumerate(s.files()):
            p = member(cube.path, f, "KV chunk")
            if sha256_file(p) != f["sha256"]:
                raise IntegrityError("file does not match the digest in manifest.json", path=p)
            head = check_chunk_header(p, "chunk" if n else "prefix", s.storage_dtype)
            check_fingerprint(s.model_fingerprint_sha256, head.model_fingerprint, version, p,
                              legacy_form=head.legacy_fingerprint() if legacy else None)
            listed = s.chunks[n - 1] if n else None
            check_chunk_file(s, head, prefix_tokens, p,
                             tokens=listed.tokens if listed else s.prefix["tokens"],
                             memory_ids=list(listed.memory_ids) if listed else [])
            prefix_tokens = prefix_tokens or head.num_tokens
    if cube.has_lora:
        cube.lora_dir  # noqa: B018  (presence and sizes)
        for f in cube.manifest.lora["files"]:  # type: ignore[index]
            if sha256_file(cube.path / f["path"]) != f["sha256"]:
                raise IntegrityError("file does not match the digest in manifest.json",
                                     path=cube.path / f["path"])
        check_adapter(cube.lora_dir)  # config and weights header: names, ranks, shapes, dtypes
        lmeta = read_lora_meta(cube.lora_dir)
        legacy_fp = strictjson.loads((cube.lora_dir / LORA_META).read_bytes(), lexemes=True)[
            "model_fingerprint"] if legacy else None  # numbers as written (spec §2.1)
        check_fingerprint(cube.manifest.lora["model_fingerprint_sha256"],  # type: ignore[index]
                          lmeta["model_fingerprint"], version, cube.lora_dir / LORA_META,
                          legacy_form=legacy_fp)
    for f in cube.manifest.attachments or []:
        p = layout.check_member(cube.path, f["path"], what="attachment")
        if not p.is_file() or p.stat().st_size != f["size"] or sha256_file(p) != f["sha256"]:
            raise IntegrityError("file does not match the digest in manifest.json", path=p)
    if cube.manifest.index is not None and cube.manifest.index_files is not None:
        check_index_files(cube.path, cube.manifest.index["path"], cube.manifest.index_files,
                          digests=True)
    if cube.has_plaintext and sorted(cube.index().ids()) != sorted(ids):
        raise IntegrityError("search index does not hold exactly the cube's memories "
                             "(rebuild it with `memos reindex`)", path=cube.index_path)
    if cube.has_plaintext:
        check_readers(cube, set(ids))
    if public_key is not None:
        verify_cube(cube.path, public_key)
        status = "verified"
    else:
        if cube.signed:
            check_payload(cube.path)  # a bundle that no longer describes the files: tampered
        status = "not checked (no key given)" if cube.signed else "unsigned"
    return VerifyReport(cube=str(cube.path), cube_id=cube.manifest.cube_id, memories=len(ids),
                        files=len(cube.files), signed=cube.signed, signature=status)


def check_fingerprint(recorded: str, fingerprint: Any, version: tuple[int, int],
                      where: Path, *, legacy_form: Any = None) -> None:
    """``model_fingerprint_sha256`` in the manifest must be the digest of the fingerprint the
    file holds (spec §10; the legacy digest is accepted in cubes older than 1.5, §2.1, over
    ``legacy_form``, the fingerprint read with its numbers as written, when given).

    Raises:
        IntegrityError: naming the file.
    """
    accepted = accepted_json_sha256(fingerprint, version)
    if legacy_form is not None and version < JCS_SINCE:
        accepted.add(json_sha256(legacy_form, legacy=True))
    if recorded not in accepted:
        raise IntegrityError("model_fingerprint_sha256 in manifest.json is not the digest of "
                             "the file's model fingerprint", path=where)


def check_chunk_file(s: ChunkSet, head: SegmentMeta, prefix_tokens: int, where: Path, *,
                     tokens: int, memory_ids: list[str]) -> None:
    """What a reader without the model checks of a prefix or chunk file (spec §12.3, §12.4):
    its layout is the one its set's ``layout_sha256`` names, its tokens are the count the
    manifest lists, a chunk's members are those the manifest lists, and a chunk starts at or
    after the end of the prefix (``P <= start_position``; ``P + M`` needs the tokenizer and is
    checked before use).

    Raises:
        IntegrityError: naming the file.
    """
    if json_sha256(head.prompt_template) != s.layout_sha256:
        raise IntegrityError("the file's prompt layout is not the one its set's layout_sha256 "
                             "names", path=where)
    if head.num_tokens != tokens or list(head.memory_ids) != memory_ids:
        raise IntegrityError(f"KV {head.kind} holds {head.num_tokens} tokens of "
                             f"{len(head.memory_ids)} memories, the manifest lists {tokens} "
                             f"of {len(memory_ids)}", path=where)
    if head.kind == "chunk" and head.start_position < prefix_tokens:
        raise IntegrityError(f"KV chunk starts at {head.start_position}, inside the prefix "
                             f"({prefix_tokens} tokens)", path=where)


def open_verified(path: str | Path) -> Cube:
    """Open a cube and :func:`verify` it (without a key): what every command that reads a
    cube does first, so each applies the same checks (spec §3).

    Raises:
        as :func:`verify`.
    """
    cube = open_cube(path)
    verify(cube)
    return cube
