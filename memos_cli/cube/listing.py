"""The closed layout of format 1.5 (spec/memcube.md §3): a cube holds exactly
``manifest.json``, ``memcube.sig`` and the files its manifest lists."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memos_cli.cube import layout
from memos_cli.cube.manifest import listed_paths
from memos_cli.digest import sha256_file
from memos_cli.errors import IntegrityError


def list_attachments(root: Path, raw: dict[str, Any]) -> None:
    """List the top-level files a manifest does not (an older cube's dump attachments, such
    as ``access_log.jsonl``) as ``attachments``, so that a cube rewritten as 1.5 keeps them
    under the closed layout (spec §3, §5)."""
    listed = set(listed_paths(raw)) | {layout.MANIFEST, layout.SIGNATURE}
    extra = [f for f in layout.scan_members(root) if "/" not in f and f not in listed]
    if extra:
        raw["attachments"] = [*raw.get("attachments", []), *(
            {"path": f, "sha256": sha256_file(root / f), "size": (root / f).stat().st_size}
            for f in extra)]


def check_closed(root: Path, found: Sequence[str], listed: Sequence[str]) -> None:
    """The closed layout of format 1.5 (spec §3): the cube's regular files are exactly
    ``manifest.json``, ``memcube.sig`` when signed, and the files the manifest lists.

    Raises:
        IntegrityError: naming the first file not listed, or listed and missing.
    """
    allowed = set(listed) | {layout.MANIFEST, layout.SIGNATURE}
    stray = sorted(set(found) - allowed)
    if stray:
        raise IntegrityError(f"cube holds {stray[0]}, which is not listed in the manifest "
                             f"({len(stray)} such file{'s' if len(stray) > 1 else ''})",
                             path=root / stray[0])
    missing = sorted(set(listed) - set(found))
    if missing:
        raise IntegrityError(f"{missing[0]} is listed in the manifest but missing",
                             path=root / missing[0])
