"""MemLoader's merge: the vault state after installing a cube's memories (version chains,
duplicates, conflicts), computed in memory; :mod:`memos_cli.vault.load` commits it."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from memos_cli.errors import UsageError
from memos_cli.memory import Memory
from memos_cli.vault.store import State

CONFLICT_POLICIES = ("version", "skip", "replace")


@dataclass
class LoadReport:
    """What :func:`load` did, by count and by memory id."""

    cube_id: str
    name: str
    signer: str
    added: list[str] = field(default_factory=list)
    versioned: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    skipped_conflict: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    #: ``role:`` readers naming no role of the vault (they grant nothing until defined)
    dangling: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"cube_id": self.cube_id, "name": self.name, "signer": self.signer,
                "dangling_roles": self.dangling,
                **{k: len(v) for k, v in (("added", self.added), ("versioned", self.versioned),
                                          ("replaced", self.replaced),
                                          ("skipped_conflict", self.skipped_conflict),
                                          ("duplicates", self.duplicates),
                                          ("expired", self.expired))}}


def merge(state: State, cube_id: str, memories: Sequence[Memory], vectors: np.ndarray, *,
          on_conflict: str = "version", now: datetime | None = None) -> tuple[State, LoadReport]:
    """The state after installing ``memories`` (with their ``vectors``) from cube ``cube_id``.

    Expired memories are not installed. A memory whose content hash is already installed is a
    duplicate and skipped. A memory that updates an installed one extends its version chain:
    same id (a clash; ``on_conflict`` decides: ``version`` keeps the old one in the history
    and installs the new one with the next version number, ``skip`` keeps the old one,
    ``replace`` overwrites it without history) or ``parent_id`` naming an installed memory
    (the parent moves to the history).
    """
    if on_conflict not in CONFLICT_POLICIES:
        raise UsageError(f"--on-conflict {on_conflict!r} is not one of "
                         f"{', '.join(CONFLICT_POLICIES)}")

    now = now or datetime.now(timezone.utc)
    report = LoadReport(cube_id, "", "")
    current = {m.id: i for i, m in enumerate(state.memories)}
    hashes = {m.content_hash for m in state.memories}
    mems = list(state.memories)
    vecs = [v for v in state.vectors] if len(state.memories) else []
    history = list(state.history)
    origin = dict(state.origin)
    drop: set[int] = set()
    for m, v in zip(memories, vectors, strict=True):
        if m.expired(now):
            report.expired.append(m.id)
            continue
        if m.content_hash in hashes:
            report.duplicates.append(m.id)
            continue
        if m.id in current and current[m.id] not in drop:
            i = current[m.id]
            old = mems[i]
            if on_conflict == "skip":
                report.skipped_conflict.append(m.id)
                continue
            if on_conflict == "version":
                history.append(old)
                m = dataclasses.replace(m, version=max(m.version, old.version + 1))
                report.versioned.append(m.id)
            else:
                report.replaced.append(m.id)
            mems[i], vecs[i] = m, v
        else:
            if m.parent_id is not None and m.parent_id in current and \
                    current[m.parent_id] not in drop:
                parent = current[m.parent_id]
                history.append(mems[parent])
                drop.add(parent)
                report.versioned.append(m.id)
            else:
                report.added.append(m.id)
            current[m.id] = len(mems)
            mems.append(m)
            vecs.append(v)
        hashes.add(m.content_hash)
        origin[m.id] = cube_id
    keep = [i for i in range(len(mems)) if i not in drop]
    for i in drop:
        origin.pop(mems[i].id, None)
    out = State([mems[i] for i in keep], history,
                np.stack([vecs[i] for i in keep]).astype(np.float32) if keep
                else np.zeros((0, 0), np.float32),
                dict(state.cubes), origin, state.embedding)
    return out, report

