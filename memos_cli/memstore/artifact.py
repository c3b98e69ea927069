"""A cube as an OCI artifact (spec/memcube.md §15): media types, annotations, and the checks a
puller makes on a manifest before it downloads anything.

Each file of the cube is one layer whose ``org.opencontainers.image.title`` is its path in the
cube, so ``oras pull`` alone recreates the directory; the config blob is the cube's own
``manifest.json`` (the same bytes as its layer, stored once by the registry), under a media type
that says "this is a MemCube".
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from memos_cli.cube import layout
from memos_cli.digest import sha256_file
from memos_cli.errors import FormatError

ARTIFACT_TYPE = "application/vnd.memos.memcube.v1"
CONFIG_TYPE = "application/vnd.memos.memcube.config.v1+json"
MANIFEST_LAYER_TYPE = "application/vnd.memos.memcube.manifest.v1+json"
SIGNATURE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
MEMORIES_TYPE = "application/vnd.apache.arrow.file"
#: by the first part of the path; anything else is FILE_TYPE
PART_TYPES = {"index": "application/vnd.memos.memcube.index.v1",
              "kv": "application/vnd.memos.memcube.kv.v1",
              "lora": "application/vnd.memos.memcube.lora.v1"}
FILE_TYPE = "application/vnd.memos.memcube.file.v1"
TITLE = "org.opencontainers.image.title"
#: Manifest annotations (all values strings, as OCI requires).
A_ID, A_FORMAT, A_TIERS = "dev.memos.cube.id", "dev.memos.cube.format", "dev.memos.cube.tiers"
A_MEMORIES, A_REVISION = "dev.memos.cube.memories", "dev.memos.cube.revision"
A_CONTENT, A_SIGNER = "dev.memos.cube.content_digest", "dev.memos.cube.signer"
A_EMBEDDER = "dev.memos.cube.embedder"
A_NAME, A_DESCRIPTION = "org.opencontainers.image.title", "org.opencontainers.image.description"
A_CREATED = "org.opencontainers.image.created"
#: A pull refuses manifests with more layers than this (a cube has a few dozen files).
MAX_LAYERS = 100_000
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def media_type(rel: str) -> str:
    """The layer media type of the cube file at ``rel``."""
    if rel == layout.MANIFEST:
        return MANIFEST_LAYER_TYPE
    if rel == layout.SIGNATURE:
        return SIGNATURE_TYPE
    if rel == layout.MEMORIES:
        return MEMORIES_TYPE
    return PART_TYPES.get(rel.split("/", 1)[0], FILE_TYPE)


def descriptor(path: Path, kind: str, **annotations: str) -> dict[str, Any]:
    d: dict[str, Any] = {"mediaType": kind, "digest": sha256_file(path),
                         "size": path.stat().st_size}
    if annotations:
        d["annotations"] = annotations
    return d


def build(cube: Any, signer: str) -> tuple[list[tuple[Path, dict[str, Any]]], dict[str, Any]]:
    """The layers (file, descriptor) of an opened, verified cube, and the image manifest that
    lists them (``config`` is the manifest.json blob). ``signer``: a key fingerprint,
    ``unsigned`` or ``unknown``."""
    layers = [(cube.path / rel, descriptor(cube.path / rel, media_type(rel), **{TITLE: rel}))
              for rel in layout.scan_members(cube.path)]
    m = cube.manifest
    config = descriptor(cube.path / layout.MANIFEST, CONFIG_TYPE)
    annotations = {
        A_NAME: m.name, A_DESCRIPTION: m.description, A_CREATED: m.created_at,
        A_ID: m.cube_id, A_FORMAT: m.format_version, A_TIERS: ",".join(m.tiers),
        A_MEMORIES: str(m.counts.get("memories", 0)), A_REVISION: str(m.revision or 1),
        A_SIGNER: signer,
        **({A_CONTENT: m.content_digest} if m.content_digest else {}),
        **({A_EMBEDDER: str(m.embedding.get("model", ""))} if m.embedding else {}),
    }
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "artifactType": ARTIFACT_TYPE, "config": config,
                "layers": [d for _, d in layers], "annotations": annotations}
    return layers, manifest


def is_cube(manifest: dict[str, Any]) -> bool:
    config = manifest.get("config")
    return isinstance(config, dict) and config.get("mediaType") == CONFIG_TYPE


def check(manifest: dict[str, Any], where: str) -> list[tuple[str, dict[str, Any]]]:
    """Check an image manifest is a cube a puller may write, before anything is downloaded;
    return ``(path in the cube, layer descriptor)`` for every file.

    Raises:
        FormatError: not a cube (config media type), a descriptor without a sha256 digest or
            a size, a title that is missing, escapes the target directory, names a git file or
            a pickle-like format, or appears twice; no ``manifest.json`` layer, or one that
            differs from the config blob.
    """
    if not is_cube(manifest):
        config = manifest.get("config")
        kind = config.get("mediaType") if isinstance(config, dict) else None
        raise FormatError(f"not a MemCube artifact (config media type {kind!r}, expected "
                          f"{CONFIG_TYPE})", path=where)
    layers = manifest.get("layers")
    if not isinstance(layers, list) or not 0 < len(layers) <= MAX_LAYERS:
        raise FormatError("manifest has no layers list of a sane length", path=where)
    out: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    for i, layer in enumerate([manifest["config"], *layers]):
        if not isinstance(layer, dict) or not isinstance(layer.get("digest"), str) or \
                not _DIGEST.match(layer["digest"]) or type(layer.get("size")) is not int or \
                layer["size"] < 0:
            raise FormatError(f"layer {i - 1} has no sha256 digest or size" if i else
                              "config has no sha256 digest or size", path=where)
        if i == 0:
            continue
        notes = layer.get("annotations")
        title = notes.get(TITLE) if isinstance(notes, dict) else None
        if not isinstance(title, str) or not layout.plain_relative(title):
            raise FormatError(f"layer {i - 1} title {title!r} is not a plain relative path "
                              "inside the cube (it would escape the target directory)",
                              path=where)
        why = layout.refused_member(title)
        if why:
            raise FormatError(f"layer {i - 1} is {title!r}, a file a cube may not hold: {why}",
                              path=where)
        if title.casefold() in seen:
            raise FormatError(f"layer title {title!r} appears twice", path=where)
        seen.add(title.casefold())
        out.append((title, layer))
    folders = {p.casefold() for t, _ in out for p in _parents(t)}
    for title, _ in out:
        if title.casefold() in folders:
            raise FormatError(f"layer title {title!r} is also a folder of another layer",
                              path=where)
    first = dict(out).get(layout.MANIFEST)
    if first is None:
        raise FormatError("artifact has no manifest.json layer", path=where)
    if first["digest"] != manifest["config"]["digest"]:
        raise FormatError("the manifest.json layer differs from the config blob", path=where)
    return out


def _parents(title: str) -> list[str]:
    parts = title.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def summary(ref: str, manifest: dict[str, Any], digest: str) -> dict[str, Any]:
    """What ``memos ls`` shows of one tagged cube, from its annotations alone."""
    a = {k: v for k, v in (manifest.get("annotations") or {}).items() if isinstance(v, str)} \
        if isinstance(manifest.get("annotations"), dict) else {}
    return {"ref": ref, "digest": digest, "name": a.get(A_NAME, ""),
            "description": a.get(A_DESCRIPTION, ""), "cube_id": a.get(A_ID, ""),
            "format_version": a.get(A_FORMAT, ""), "tiers": [t for t in a.get(A_TIERS,
                                                                                 "").split(",")
                                                            if t],
            "memories": int(a[A_MEMORIES]) if str(a.get(A_MEMORIES, "")).isdigit() else None,
            "revision": int(a[A_REVISION]) if str(a.get(A_REVISION, "")).isdigit() else None,
            "created": a.get(A_CREATED, ""), "signer": a.get(A_SIGNER, ""),
            "size": sum(int(x.get("size", 0)) for x in manifest.get("layers") or []
                        if isinstance(x, dict) and isinstance(x.get("size"), int))}
