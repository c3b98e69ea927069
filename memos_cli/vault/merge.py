"""MemLoader's merge: what installing a cube's memories changes in the vault (version chains,
duplicates, conflicts), decided from the part of the vault they touch, as a
:class:`~memos_cli.vault.rows.Delta` that :mod:`memos_cli.vault.load` commits."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from memos_cli.errors import UsageError
from memos_cli.lifecycle.evolve import Ledger
from memos_cli.memory import Memory
from memos_cli.vault.rows import Delta, memory_key
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
    #: memories that superseded a current memory (spec §4.6), and every decision but "new"
    updates: list[str] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    #: ``role:`` readers naming no role of the vault (they grant nothing until defined)
    dangling: list[str] = field(default_factory=list)
    #: what reading a file of another system noted (``SourceResult.notes``, path first)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"cube_id": self.cube_id, "name": self.name, "signer": self.signer,
                "dangling_roles": self.dangling,
                **{k: len(v) for k, v in (("added", self.added), ("versioned", self.versioned),
                                          ("replaced", self.replaced),
                                          ("skipped_conflict", self.skipped_conflict),
                                          ("duplicates", self.duplicates),
                                          ("expired", self.expired),
                                          ("updates", self.updates))},
                "decisions": self.decisions, "notes": self.notes}


def merge(state: State, cube_id: str, memories: Sequence[Memory], vectors: np.ndarray, *,
          on_conflict: str = "version", now: datetime | None = None,
          ledger: Ledger | None = None,
          rows: Callable[[str], tuple[np.ndarray, str]] | None = None
          ) -> tuple[Delta, LoadReport]:
    """What installing ``memories`` (with their ``vectors``) from cube ``cube_id`` changes,
    given ``state``: the vault, or the part of it these memories touch (``Vault.part``: the
    current memories with their ids, parents' ids or content hashes).

    Expired memories are not installed. A memory whose content hash is already installed is a
    duplicate and skipped. A memory that updates an installed one extends its version chain:
    same id (a clash; ``on_conflict`` decides: ``version`` keeps the old one in the history
    and installs the new one with the next version number, ``skip`` keeps the old one,
    ``replace`` overwrites it without history) or ``parent_id`` naming an installed memory
    (the parent moves to the history).

    With a ``ledger`` (:func:`memos_cli.vault.evolve.ledger_for`), every other memory is
    decided against the vault's current memories of its owner (spec §4.6): a restatement is a
    duplicate, an update supersedes the memory it revises, whose row is rewritten with
    ``valid_to`` and ``superseded_by`` (its vector and cube from ``rows(id)``).
    """
    if on_conflict not in CONFLICT_POLICIES:
        raise UsageError(f"--on-conflict {on_conflict!r} is not one of "
                         f"{', '.join(CONFLICT_POLICIES)}")

    now = now or datetime.now(timezone.utc)
    report = LoadReport(cube_id, "", "")
    current = {m.id: m for m in state.memories}
    hashes = {m.content_hash for m in state.memories}
    delta = Delta()
    written: dict[str, int] = {}  # memory id -> its entry in delta.memories
    for m, v in zip(memories, vectors, strict=True):
        if m.expired(now):
            report.expired.append(m.id)
            continue
        if m.content_hash in hashes:
            report.duplicates.append(m.id)
            continue
        if m.id in current:
            old = current[m.id]
            if on_conflict == "skip":
                report.skipped_conflict.append(m.id)
                continue
            if on_conflict == "version":
                delta.history.append(old)
                m = dataclasses.replace(m, version=max(m.version, old.version + 1))
                report.versioned.append(m.id)
            else:
                report.replaced.append(m.id)
        elif m.parent_id is not None and m.parent_id in current:
            parent = current.pop(m.parent_id)
            delta.history.append(parent)
            delta.delete.add(memory_key(parent.id))
            if parent.id in written:  # installed by this load, superseded in it too
                delta.memories[written.pop(parent.id)] = None  # type: ignore[call-overload]
            report.versioned.append(m.id)
        elif ledger is not None:
            outcome = ledger.offer(m, v)
            if outcome.decision.kind != "independent":
                report.decisions.append(outcome.to_dict())
            if outcome.decision.kind == "duplicate":
                report.duplicates.append(m.id)
                continue
            m = ledger.memories[m.id]
            # a memory that arrives linked (a cube's own chain) supersedes too
            (report.updates if outcome.decision.kind == "update" or m.supersedes
             else report.added).append(m.id)
        else:
            report.added.append(m.id)
        if m.id in written:
            delta.memories[written[m.id]] = (m, v, cube_id)
        else:
            written[m.id] = len(delta.memories)
            delta.memories.append((m, v, cube_id))
        current[m.id] = m
        hashes.add(m.content_hash)
    if ledger is not None:  # links the decisions set, on memories of this load and before
        for i in ledger.written:
            if i in written:
                _, v, c = delta.memories[written[i]]
                delta.memories[written[i]] = (ledger.memories[i], v, c)
        for i in sorted(ledger.changed):
            if i in written:
                continue
            if rows is None:
                raise ValueError("merge needs rows() to rewrite a memory a decision changed")
            vec, cube = rows(i)
            delta.memories.append((ledger.memories[i], vec, cube))
    delta.memories = [x for x in delta.memories if x is not None]
    return delta, report
