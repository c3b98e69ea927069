"""Cubes in buckets (spec/memcube.md §15.5): a cube is stored as its own directory of objects
under a prefix, ``PREFIX/NAME.memcube/manifest.json`` and the rest, and ``manifest.json`` is
written last.

Object stores have no rename, so a writer makes a cube visible by its manifest: it first
deletes the manifest of a cube it replaces (readers then see an incomplete cube, not a mixed
one), writes every other file, removes objects the new cube does not hold, and puts
``manifest.json`` last, in one request. A reader takes a prefix without ``manifest.json`` as an
incomplete cube and refuses it, and verifies every digest after download, so a cube replaced
while it was read fails verification instead of being read half old, half new.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from memos_cli import strictjson
from memos_cli.cube import layout, open_cube, verify
from memos_cli.cube.layout import SIGNATURE
from memos_cli.cube.manifest import Manifest
from memos_cli.errors import CubeExistsError, CubeNotFoundError, FormatError
from memos_cli.localfiles import plain_files
from memos_cli.memory import format_time
from memos_cli.objstore.uri import StoreURI, filesystem, parse, remote_errors
from memos_cli.pausepoints import pause

#: A reader lists at most this many objects under one cube (a cube has a few dozen files).
MAX_OBJECTS = 100_000
#: The largest manifest read (spec "Edge cases").
MAX_MANIFEST_BYTES = 16 << 20
_CHUNK = 1 << 20


def _objects(fs: Any, uri: StoreURI, limit: int = MAX_OBJECTS) -> dict[str, int]:
    """Every object under ``uri`` as ``{relative key: size}``. A ``file://`` store is walked
    without following links: a bucket has none, and following one would read or write
    outside it (spec §15.5).

    Raises:
        FormatError: more than ``limit`` objects, a key that is not a plain relative path, or
            (``file://``) a symbolic link or special file at or under ``uri``.
    """
    import pyarrow.fs as pafs

    if uri.scheme == "file":
        return _local_objects(uri, limit)
    infos = fs.get_file_info(pafs.FileSelector(uri.path, recursive=True,
                                               allow_not_found=True))
    out: dict[str, int] = {}
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        rel = info.path[len(uri.path.rstrip("/")) + 1:]
        if not layout.plain_relative(rel):
            raise FormatError(f"holds an object {rel!r} that is not a plain relative path",
                              path=uri.uri)
        out[rel] = int(info.size)
        if len(out) > limit:
            raise FormatError(f"holds more than {limit} objects", path=uri.uri)
    return out


def _local_objects(uri: StoreURI, limit: int) -> dict[str, int]:
    root = Path(uri.path)
    out: dict[str, int] = {}
    try:
        for p, size in plain_files(root):
            rel = p.relative_to(root).as_posix()
            if not layout.plain_relative(rel):
                raise FormatError(f"holds an object {rel!r} that is not a plain relative path",
                                  path=uri.uri)
            out[rel] = size
            if len(out) > limit:
                raise FormatError(f"holds more than {limit} objects", path=uri.uri)
    except OSError as e:
        where = Path(e.filename or root)
        rel = where.relative_to(root).as_posix() if where != root else "the location itself"
        raise FormatError(f"{rel} {e.strerror}; memos does not follow links or open special "
                          "files in a bucket", path=uri.uri) from e
    return out


def _copy(src: Any, dst: Any) -> int:
    n = 0
    while chunk := src.read(_CHUNK):
        dst.write(chunk)
        n += len(chunk)
    return n


def target_of(cube_path: Path, target: str) -> StoreURI:
    """``target`` itself, or ``target/NAME.memcube`` when it ends with ``/``."""
    return parse(target.rstrip("/") + "/" + cube_path.name if target.endswith("/") else target)


def upload(cube_path: str | Path, target: str, *, force: bool = False) -> dict[str, Any]:
    """Verify the cube, then write it under ``target`` (module docstring); a report.

    Raises:
        UsageError: not an object-storage URI. CubeExistsError: a complete cube is there and
        not ``force``. RemoteError: the store is unreachable or refuses. Whatever ``verify``
        raises.
    """
    src = Path(cube_path)
    cube = open_cube(src)
    verify(cube)
    uri = target_of(src, target)
    fs = filesystem(uri)
    files = layout.scan_members(cube.path)
    with remote_errors(uri, "writing the cube"):
        there = _objects(fs, uri)
        if layout.MANIFEST in there:
            if not force:
                raise CubeExistsError("a cube is already there (use --force to replace it)",
                                      path=uri.uri)
            fs.delete_file(uri.child(layout.MANIFEST))  # from here readers see "incomplete"
        elif there:
            logging.getLogger("memos").warning(
                "note: %s held %d objects but no manifest.json (an interrupted write); "
                "replacing them", uri.uri, len(there))
        for rel in sorted(set(there) - set(files)):
            fs.delete_file(uri.child(rel))
        total = 0
        for rel in [f for f in files if f != layout.MANIFEST] + [layout.MANIFEST]:
            if uri.scheme == "file":  # buckets have no directories to make
                fs.create_dir(uri.child(rel).rsplit("/", 1)[0], recursive=True)
            with open(cube.path / rel, "rb") as f, fs.open_output_stream(uri.child(rel)) as o:
                total += _copy(f, o)
            pause("bucket:object")
    return {"ref": uri.uri, "files": len(files), "bytes": total, "signed": cube.signed,
            "digest": _manifest_digest(cube.path / layout.MANIFEST)}


def _manifest_digest(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def read_manifest(fs: Any, uri: StoreURI) -> tuple[dict[str, Any], bytes]:
    """The cube manifest under ``uri``, parsed and validated, and its bytes.

    Raises:
        CubeNotFoundError: nothing there. FormatError: objects but no manifest (an incomplete
        cube), a manifest over 16 MiB, or one that breaks the format.
    """
    objects = _objects(fs, uri)
    if not objects:
        raise CubeNotFoundError("no cube there", path=uri.uri)
    if layout.MANIFEST not in objects:
        raise FormatError(f"incomplete cube: {len(objects)} objects but no manifest.json (a "
                          "writer was interrupted or is still writing); refused",
                          path=uri.uri)
    if objects[layout.MANIFEST] > MAX_MANIFEST_BYTES:
        raise FormatError("manifest.json is over 16 MiB", path=uri.uri)
    with fs.open_input_stream(uri.child(layout.MANIFEST)) as f:
        raw = f.read(MAX_MANIFEST_BYTES + 1)
    try:
        data = strictjson.loads(raw)
    except ValueError as e:
        raise FormatError(f"manifest.json is not JSON: {e}", path=uri.uri) from e
    Manifest.from_dict(data, path=f"{uri.uri}/{layout.MANIFEST}")
    return data, raw


def download(source: str, into: Path) -> tuple[dict[str, Any], str, int]:
    """Copy the cube at ``source`` into the empty directory ``into``; ``(origin record,
    manifest digest, bytes)``. The caller verifies (``memstore.pull.place``).

    Raises:
        UsageError, RemoteError, CubeNotFoundError, FormatError (see :func:`read_manifest`).
    """
    uri = parse(source)
    fs = filesystem(uri)
    with remote_errors(uri, "reading the cube"):
        data, raw = read_manifest(fs, uri)
        objects = _objects(fs, uri)
        total = 0
        for rel in sorted(objects):
            why = layout.refused_member(rel)
            if why:
                raise FormatError(f"holds {rel}, a file a cube may not hold: {why}",
                                  path=uri.uri)
            dest = into / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if rel == layout.MANIFEST:  # the bytes checked above, not a second read
                dest.write_bytes(raw)
                total += len(raw)
                continue
            with fs.open_input_stream(uri.child(rel)) as f, open(dest, "wb") as o:
                total += _copy(f, o)
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    origin = {"ref": uri.uri, "store": uri.scheme, "digest": digest,
              "created": data.get("created_at", ""), "revision": data.get("revision") or 1,
              "pulled_at": format_time(datetime.now(timezone.utc))}
    return origin, digest, total


def list_cubes(prefix: str, *, match: str | None = None) -> list[dict[str, Any]]:
    """The cubes under ``prefix`` (any depth), read from their manifests alone; objects that
    are not under a ``manifest.json`` are passed over."""
    uri = parse(prefix)
    fs = filesystem(uri)
    rows = []
    with remote_errors(uri, "listing"):
        objects = _objects(fs, uri, limit=1_000_000)
        roots = sorted(k[: -len(layout.MANIFEST)].rstrip("/") for k in objects
                       if k == layout.MANIFEST or k.endswith("/" + layout.MANIFEST))
        for root in roots:
            cube = parse(f"{uri.uri}/{root}" if root else uri.uri)
            try:
                data, raw = read_manifest(fs, cube)
            except FormatError:
                continue
            inside = {k: v for k, v in objects.items() if k.startswith(f"{root}/" if root
                                                                        else "")}
            rows.append({
                "ref": cube.uri, "digest": "sha256:" + hashlib.sha256(raw).hexdigest(),
                "name": data["name"], "description": data.get("description", ""),
                "cube_id": data["cube_id"], "format_version": data["format_version"],
                "tiers": list(data["tiers"]), "memories": data["counts"].get("memories"),
                "revision": data.get("revision") or 1, "created": data["created_at"],
                "signer": "signed" if f"{root}/{SIGNATURE}".lstrip("/") in inside
                else "unsigned",
                "size": sum(inside.values())})
    if match:
        needle = match.casefold()
        rows = [r for r in rows if any(needle in str(r[k]).casefold()
                                       for k in ("ref", "name", "description", "cube_id"))]
    return rows


def current(source: str) -> dict[str, Any]:
    """The digest, creation time and revision of the cube now at ``source`` (for
    ``memos outdated``)."""
    uri = parse(source)
    fs = filesystem(uri)
    with remote_errors(uri, "reading the manifest"):
        data, raw = read_manifest(fs, uri)
    return {"ref": uri.uri, "digest": "sha256:" + hashlib.sha256(raw).hexdigest(),
            "created": data.get("created_at", ""), "revision": data.get("revision") or 1}
