"""``memos push``: publish a cube to an OCI registry as an artifact (spec/memcube.md §15)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memos_cli.cube import open_cube, verify
from memos_cli.cube.signature import key_fingerprint, verify_cube
from memos_cli.errors import SignatureError, TamperedError, UsageError
from memos_cli.governance.trust import trust_list
from memos_cli.memstore import artifact
from memos_cli.memstore.ref import parse_ref
from memos_cli.memstore.registry import Registry
from memos_cli.objstore.cubes import upload
from memos_cli.objstore.uri import is_store_uri


@dataclass
class PushReport:
    ref: str
    digest: str
    files: int
    bytes: int
    uploaded: int  # blobs sent; the rest were in the repository already
    signer: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def signer_of(cube: Any, public_key: str | Path | None) -> str:
    """The fingerprint of the key whose signature verifies the cube: ``public_key`` when
    given (it must verify), else the first key of the trust store that does; ``unknown`` when
    signed by none of them, ``unsigned`` without a signature.

    Raises:
        SignatureError, KeyFileError: ``public_key`` given and it does not verify the cube.
    """
    if not cube.signed:
        return "unsigned"
    if public_key is not None:
        verify_cube(cube.path, public_key)
        return key_fingerprint(public_key)
    for key in trust_list():
        try:
            verify_cube(cube.path, key["path"])
            return key["fingerprint"]
        except TamperedError:
            raise
        except SignatureError:
            continue
    return "unknown"


def push(cube_path: str | Path, target: str, *, public_key: str | Path | None = None,
         plain_http: bool = False, force: bool = False) -> PushReport:
    """Verify the cube, upload each of its files as a blob (skipping those the repository
    holds), then put the image manifest under the tag: readers of the tag see the old artifact
    or the new one, never a part. An object-storage ``target`` (``s3://``, ``gs://``,
    ``az://``, ``file://``; ending in ``/`` for ``target/NAME.memcube``) gets the cube's files
    with ``manifest.json`` last (:func:`memos_cli.objstore.cubes.upload`); replacing a cube
    there needs ``force``.

    Raises:
        UsageError: ``target`` is neither an ``oci://`` reference with a tag (not a digest)
            nor an object-storage URI.
        CubeExistsError: a cube is at the object-storage target and not ``force``.
        CubeNotFoundError, FormatError, IntegrityError, SignatureError: the cube fails
            ``verify``.
        RemoteError: the registry is unreachable or refuses.
    """
    if is_store_uri(target):
        signer = signer_of(open_cube(cube_path), public_key)
        done = upload(cube_path, target, force=force)
        return PushReport(ref=done["ref"], digest=done["digest"], files=done["files"],
                          bytes=done["bytes"], uploaded=done["files"], signer=signer)
    ref = parse_ref(target)
    if ref.digest:
        raise UsageError(f"{target!r}: push to a tag; a digest is what the registry gives back")
    if ref.tag is None:
        ref = ref.with_tag("latest")
    cube = open_cube(cube_path)
    verify(cube, public_key)
    signer = signer_of(cube, public_key)
    layers, manifest = artifact.build(cube, signer)
    registry = Registry(ref, plain_http=plain_http)
    sent = sum(registry.upload(ref, path, d) for path, d in layers)
    digest = registry.put_manifest(ref, manifest)
    return PushReport(ref=str(ref), digest=digest, files=len(layers),
                      bytes=sum(d["size"] for _, d in layers), uploaded=sent, signer=signer)
