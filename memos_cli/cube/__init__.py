"""The ``.memcube`` on-disk format: one module per section of spec/memcube.md."""

from memos_cli.cube.cube import Cube, CubeSpec, open_cube, write_cube
from memos_cli.cube.index import Hit, Index
from memos_cli.cube.manifest import FORMAT_VERSION, Manifest
from memos_cli.cube.rewrite import reindex
from memos_cli.cube.signature import generate_keypair, key_fingerprint, sign_cube, verify_cube
from memos_cli.cube.verify import VerifyReport, open_verified, verify

__all__ = [
    "FORMAT_VERSION",
    "Cube",
    "CubeSpec",
    "Hit",
    "Index",
    "Manifest",
    "VerifyReport",
    "generate_keypair",
    "key_fingerprint",
    "open_cube",
    "open_verified",
    "reindex",
    "sign_cube",
    "verify",
    "verify_cube",
    "write_cube",
]
