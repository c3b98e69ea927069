"""Canonical serialization and digests. Both are part of the format contract (spec/memcube.md §2).

Every digest names its algorithm: ``sha256:<64 lowercase hex digits>``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def canonical_json(obj: Any) -> bytes:
    """Serialize ``obj`` to the canonical JSON bytes that memos hashes.

    Part of the format contract: keys sorted, no insignificant whitespace, UTF-8 without
    ``\\u`` escapes for non-ASCII characters, ``NaN``/``Infinity`` refused. Content hashes are
    taken over these bytes, so changing this function changes every memory's fingerprint.

    Raises:
        ValueError: ``obj`` holds a non-finite float.
        TypeError: ``obj`` holds a value JSON cannot represent.
    """
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_bytes(data: bytes) -> str:
    """Return ``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """Return ``sha256:<hex>`` of the file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()
