"""Rewriting a cube's plaintext tier in place (``add``, ``rm-memories``, ``remember``): what
may be rewritten, how, and the report of a change (spec §5, ``revision``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from memos_cli.cube import layout
from memos_cli.cube.cube import Cube, write_plaintext
from memos_cli.cube.rewrite import check_writable, rewrite
from memos_cli.errors import UsageError
from memos_cli.memory import Memory


@dataclass
class UpdateReport:
    """What an update did; ``revision`` is the cube's new revision."""

    path: str
    added: int = 0
    changed: int = 0
    removed: int = 0
    duplicates: int = 0
    #: memories that superseded one held (spec §4.6), and the decisions other than "new"
    updates: int = 0
    decisions: list[dict[str, Any]] = field(default_factory=list)
    dry_run: bool = False
    #: the text of each memory a decision names (for ``--dry-run``)
    texts: dict[str, str] = field(default_factory=dict)
    embedded: int = 0
    revision: int = 1
    signed: bool = False
    #: the cube was signed and was written without a key: it is unsigned now
    signature_dropped: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def updatable(cube: Cube) -> None:
    check_writable(cube)
    cube.require_plaintext()
    other = [t for t in cube.manifest.tiers if t != "plaintext"]
    if other:
        raise UsageError(f"cube holds the {' and '.join(other)} tier, computed from its current "
                         "memories; update a cube with the plaintext tier only, then convert "
                         "it again", path=cube.path)


def write_plaintext_tier(cube: Cube, memories: list[Memory], vectors: np.ndarray,
                         key: str | Path | None,
                         sources: list[dict[str, Any]] | None = None) -> int:
    """Rewrite the plaintext tier with ``memories``; returns the new revision. MemReader
    index rows are not carried over (the manifest's ``readers`` is recounted, spec §6.1):
    a context row holds its neighbours' text, which may have changed or gone."""
    with rewrite(cube, key=key) as (tmp, raw):
        layout.remove_tree(tmp / raw["index"]["path"])
        (tmp / raw["files"]["memories"]["path"]).unlink(missing_ok=True)
        plain = write_plaintext(tmp, memories, vectors)
        raw["files"], raw["index"] = plain["files"], plain["index"]
        raw["counts"]["memories"] = len(memories)
        if sources:
            raw["provenance"]["sources"] = [*raw["provenance"]["sources"], *sources]
            raw["counts"]["sources"] = len(raw["provenance"]["sources"])
        raw["revision"] = revision = int(raw.get("revision", 1)) + 1
    return revision


