"""``memos pull`` and ``memos load oci://...``: fetch a cube artifact, verify it, and only
then place it (spec/memcube.md §15.3).

A pull checks the image manifest before it downloads a byte (a MemCube config, layer titles
that stay inside the target, sha256 digests and sizes), streams every blob into a hidden
temporary directory beside the target while hashing it, runs ``verify`` and the trust check on
the result, and renames it into place. A failure or a kill at any point leaves no target.
Where a cube came from is recorded on this machine, under ``MEMOS_HOME/pulled/``, keyed by the
digest of its ``manifest.json``; the cube's own files are never changed.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from memos_cli import strictjson
from memos_cli.config import home
from memos_cli.cube import layout, open_cube, verify
from memos_cli.digest import sha256_file
from memos_cli.errors import MemosError, UsageError
from memos_cli.governance.trust import check_trust
from memos_cli.memory import format_time
from memos_cli.memstore import artifact
from memos_cli.memstore.ref import OciRef, parse_ref
from memos_cli.memstore.registry import Registry
from memos_cli.objstore.cubes import download
from memos_cli.objstore.uri import is_store_uri
from memos_cli.pausepoints import pause


@dataclass
class PullReport:
    ref: str
    digest: str
    path: str
    files: int
    bytes: int
    signer: str
    cube_id: str
    name: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _fetch(registry: Registry, ref: OciRef, into: Path) -> tuple[dict[str, Any], str, int]:
    """Download the cube ``ref`` names into the empty directory ``into``; ``(origin record,
    manifest digest, bytes)``."""
    manifest, digest, _ = registry.manifest(ref)
    files = artifact.check(manifest, str(ref))
    total = 0
    for rel, d in sorted(files):
        dest = into / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        registry.download(ref, d, dest)
        total += d["size"]
        pause("pull:blob")
    shown = artifact.summary(str(ref), manifest, digest)
    origin = {"ref": str(ref.with_tag(ref.tag, digest)), "registry": ref.registry,
              "repository": ref.repository, "tag": ref.tag, "digest": digest,
              "created": shown["created"], "revision": shown["revision"] or 1,
              "pulled_at": format_time(datetime.now(timezone.utc))}
    return origin, digest, total


@contextlib.contextmanager
def naming(root: Path, where: str) -> Iterator[None]:
    """Re-raise memos errors about files under ``root`` (a temporary copy) as errors about
    ``where`` (the remote reference), naming the file inside the cube."""
    try:
        yield
    except MemosError as e:
        if not (e.path and Path(e.path).is_relative_to(root)):
            raise
        inner = Path(e.path).relative_to(root).as_posix() if Path(e.path) != root else None
        raise type(e)(f"{inner}: {e.message}" if inner else e.message, path=where) from e


def _check(path: Path, where: str, allow_unsigned: bool) -> tuple[Any, str]:
    """Verify the downloaded cube and check its signer, naming ``where`` in errors."""
    with naming(path, where):
        cube = open_cube(path)
        verify(cube)
        return cube, check_trust(path, allow_unsigned=allow_unsigned)


def place(where: str, out: str | Path, fill: Callable[[Path], tuple[dict[str, Any], str, int]],
          *, force: bool, allow_unsigned: bool) -> PullReport:
    """Fill a hidden temporary directory beside ``out`` with ``fill(tmp)`` (which returns the
    origin record, the artifact's digest and the bytes fetched), verify it and check its signer,
    rename it to ``out``, and record where it came from. Any failure leaves no ``out``."""
    dest = Path(out)
    with layout.atomic_directory(dest, force=force) as tmp:
        origin, digest, total = fill(tmp)
        cube, signer = _check(tmp, where, allow_unsigned)
        layout.normalize_modes(tmp)
        files = len(cube.files)
    origin["signer"] = signer
    record_origin(dest, origin)
    return PullReport(ref=origin["ref"], digest=digest, path=str(dest), files=files,
                      bytes=total, signer=signer, cube_id=cube.manifest.cube_id,
                      name=cube.manifest.name)


def pull(source: str, out: str | Path, *, force: bool = False, allow_unsigned: bool = False,
         plain_http: bool = False) -> PullReport:
    """Fetch the cube ``source`` to ``out``: an ``oci://REGISTRY/REPO:TAG`` (or
    ``@sha256:...``) reference, or an object-storage URI (``s3://``, ``gs://``, ``az://``,
    ``file://``; :mod:`memos_cli.objstore.cubes`).

    Raises:
        UsageError: neither kind of reference; ``out`` not usable (``target_path``).
        CubeExistsError: the target exists and not ``force``, or it is not a cube (``force``
            replaces a cube, never a file or another directory).
        RemoteError: registry or store unreachable, tag, blob or object missing, access refused.
        FormatError: not a cube artifact, a title escaping ``out``, a cube breaking the format,
            an incomplete cube in a bucket.
        IntegrityError: a blob or the pinned manifest not matching its digest; ``verify``.
        SignatureError: unsigned or untrusted without ``allow_unsigned``; tampered always.
    """
    if is_store_uri(source):
        name = source.rstrip("/").rsplit("/", 1)[-1]
        return place(source, target_path(out, name), lambda tmp: download(source, tmp),
                     force=force, allow_unsigned=allow_unsigned)
    ref = parse_ref(source)
    registry = Registry(ref, plain_http=plain_http)
    return place(str(ref), target_path(out, ref.repository.rsplit("/", 1)[-1]),
                 lambda tmp: _fetch(registry, ref, tmp), force=force,
                 allow_unsigned=allow_unsigned)


def target_path(out: str | Path, name: str) -> Path:
    """Where a pull to ``out`` places the cube named ``name`` (the last part of the reference):
    inside ``out`` when it is an existing directory that is not a cube, as ``cp``, ``git
    clone`` and ``oras pull -o`` do (``out/NAME.memcube``); else ``out`` itself, which must
    then end in ``.memcube`` like ``pack -o``.

    Raises:
        UsageError: ``out`` is neither an existing directory nor a ``NAME.memcube`` path.
    """
    dest = Path(out)
    if dest.is_dir() and not dest.is_symlink() and not layout.is_cube_dir(dest):
        stem = name.removesuffix(layout.SUFFIX) or "cube"
        return dest / f"{stem}{layout.SUFFIX}"
    if not dest.name.endswith(layout.SUFFIX):
        raise UsageError(f"--output {out} must end in {layout.SUFFIX}, or be an existing "
                         "directory to place the cube in")
    return dest


@contextlib.contextmanager
def fetched(source: str, *, plain_http: bool = False) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Download the cube ``source`` into a temporary directory and yield ``(path, origin)``;
    the directory is removed afterwards. The caller verifies (``vault.load`` does)."""
    with tempfile.TemporaryDirectory(prefix="memos-pull-") as tmp:
        path = Path(tmp) / "pulled.memcube"
        path.mkdir()
        if is_store_uri(source):
            origin = download(source, path)[0]
        else:
            ref = parse_ref(source)
            origin = _fetch(Registry(ref, plain_http=plain_http), ref, path)[0]
        yield path, origin


# --- where pulled cubes came from ------------------------------------------------------------
def _records() -> Path:
    return home() / "pulled"


def record_origin(cube_path: Path, origin: dict[str, Any]) -> None:
    """Remember where the cube at ``cube_path`` was pulled from (atomic write)."""
    d = _records()
    d.mkdir(parents=True, exist_ok=True)
    key = sha256_file(cube_path / layout.MANIFEST).removeprefix("sha256:")
    record = {**origin, "path": str(cube_path.resolve())}
    layout.atomic_write_bytes(d / f"{key}.json",
                              (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())


def origin_of(cube_path: Path) -> dict[str, Any] | None:
    """Where a cube with these exact ``manifest.json`` bytes (so the same files) was pulled
    from on this machine, with ``here``: whether it was pulled to ``cube_path`` itself (false
    for a copy, a move, or the cube that was pushed); ``None`` when none was, or the record is
    unreadable."""
    key = sha256_file(cube_path / layout.MANIFEST).removeprefix("sha256:")
    p = _records() / f"{key}.json"
    try:
        if p.is_symlink() or not p.is_file() or p.stat().st_size > 1 << 16:
            return None
        data = strictjson.loads(p.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    return {**data, "here": data.get("path") == str(cube_path.resolve())}
