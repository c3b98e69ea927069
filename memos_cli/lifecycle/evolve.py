"""Memory evolution on every write path (spec §4.6): each new memory is decided against the
current memories of its owner (:func:`memos_cli.lifecycle.supersede.decide`) and either
dropped (a duplicate), linked into a supersession chain (an update), or added.

A :class:`Ledger` holds the memories being written and those already held, and applies each
decision to the links: the memory it updates gets ``valid_to`` equal to the new memory's
``valid_from`` and ``superseded_by``; the new memory gets ``supersedes`` and the decision
(``supersession``). A statement older than the memory it updates goes into the chain's
history at its place in time; it never replaces the current memory. Of two updates with the
same ``valid_from``, the one written later supersedes the other (input order within a pack).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memos_cli.lifecycle.supersede import DEFAULT, Decision, Thresholds, decide, eligible
from memos_cli.memory import Memory

#: How many nearest current memories a decision looks at.
CANDIDATES = 8


@dataclass
class Outcome:
    """What became of one new memory: its id, the :class:`Decision`, and ``history`` when it
    was older than the memory it updates (it went into the chain's past)."""

    id: str
    decision: Decision
    history: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, **self.decision.to_dict(),
                **({"history": True} if self.history else {})}


@dataclass
class Counts:
    """Decisions by kind, for reports: ``duplicates`` (not written), ``updates`` (linked;
    ``into_history`` of them older than what they update), ``independent``."""

    duplicates: int = 0
    updates: int = 0
    independent: int = 0
    into_history: int = 0
    outcomes: list[Outcome] = field(default_factory=list)

    def add(self, o: Outcome) -> None:
        self.outcomes.append(o)
        kind = o.decision.kind
        if kind == "duplicate":
            self.duplicates += 1
        elif kind == "update":
            self.updates += 1
            self.into_history += o.history
        else:
            self.independent += 1

    def to_dict(self, *, decisions: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"duplicates": self.duplicates, "updates": self.updates,
                               "independent": self.independent,
                               "into_history": self.into_history}
        if decisions:
            out["decisions"] = [o.to_dict() for o in self.outcomes
                                if o.decision.kind != "independent"]
        return out


#: ``lookup(memory, vector, k)``: more candidates from a store (a vault): current memories
#: with their cosine similarity to ``vector``, best first.
Lookup = Callable[[Memory, np.ndarray, int], list[tuple[Memory, float]]]


class Ledger:
    """Memories held and written, with the vectors of the current ones, deciding each new
    memory in turn. ``memories`` (by id) holds every memory it has seen, changed ones in
    their new state; ``changed`` the ids of memories held before that a decision changed."""

    def __init__(self, held: Iterable[Memory] = (), vectors: np.ndarray | None = None, *,
                 lookup: Lookup | None = None, thresholds: Thresholds = DEFAULT,
                 fetch: Callable[[str], Memory | None] | None = None) -> None:
        self.memories: dict[str, Memory] = {}
        self.changed: set[str] = set()
        self.written: list[str] = []
        self.counts = Counts()
        self.lookup, self.th, self.fetch = lookup, thresholds, fetch
        self._ids: list[str] = []
        self._vecs: list[np.ndarray] = []
        self._matrix: np.ndarray | None = None
        held = list(held)
        for i, m in enumerate(held):
            self.memories[m.id] = m
            if m.current and eligible(m) and vectors is not None:
                self._ids.append(m.id)
                self._vecs.append(np.asarray(vectors[i], np.float32))

    # -- candidates -----------------------------------------------------------------------------
    def _local(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        if not self._ids:
            return []
        if self._matrix is None or len(self._matrix) != len(self._vecs):
            self._matrix = np.stack(self._vecs)
        sims = self._matrix @ np.asarray(vector, np.float32)
        top = np.argsort(-sims, kind="stable")[:k * 4]
        return [(self._ids[j], float(sims[j])) for j in top.tolist()]

    def candidates(self, m: Memory, vector: np.ndarray) -> list[tuple[Memory, float]]:
        """The current memories nearest ``m`` (same owner), from the ledger and the store."""
        out: dict[str, tuple[Memory, float]] = {}
        for i, sim in self._local(vector, CANDIDATES):
            held = self.memories[i]
            if held.current and held.owner == m.owner:
                out[i] = (held, sim)
            if len(out) >= CANDIDATES:
                break
        if self.lookup is not None:
            for held, sim in self.lookup(m, vector, CANDIDATES):
                held = self.memories.setdefault(held.id, held)
                if held.current and held.owner == m.owner and held.id not in out:
                    out[held.id] = (held, sim)
        return list(out.values())

    # -- deciding -------------------------------------------------------------------------------
    def offer(self, m: Memory, vector: np.ndarray) -> Outcome:
        """Decide ``m`` and apply the decision; returns the :class:`Outcome`."""
        if m.supersedes is not None or m.superseded_by is not None or not m.current:
            # carried links (an import of a cube that has them): taken as they are
            d = Decision("independent", rule="carried")
        else:
            d = decide(m, self.candidates(m, vector), self.th)
        return self.apply(m, vector, d)

    def apply(self, m: Memory, vector: np.ndarray, d: Decision) -> Outcome:
        """Apply decision ``d`` (made here or by the caller: a source edit) to ``m``."""
        history = False
        if d.kind == "duplicate":
            pass
        elif d.kind == "update" and d.target is not None:
            history = self._link(m, vector, self.memories[d.target], d)
        else:
            self._hold(m, vector)
        out = Outcome(m.id, d, history)
        self.counts.add(out)
        return out

    def _hold(self, m: Memory, vector: np.ndarray) -> None:
        self.memories[m.id] = m
        self.written.append(m.id)
        if m.current and eligible(m):
            self._ids.append(m.id)
            self._vecs.append(np.asarray(vector, np.float32))

    def _set(self, m: Memory, **changes: Any) -> Memory:
        new = dataclasses.replace(m, **changes)
        self.memories[m.id] = new
        if m.id not in self.written:
            self.changed.add(m.id)
        return new

    def _get(self, memory_id: str | None) -> Memory | None:
        if memory_id is None:
            return None
        got = self.memories.get(memory_id)
        if got is None and self.fetch is not None:
            got = self.fetch(memory_id)
            if got is not None:
                self.memories[got.id] = got
        return got

    def _link(self, new: Memory, vector: np.ndarray, target: Memory, d: Decision) -> bool:
        """Put ``new`` into ``target``'s chain; True when it went into the past."""
        record = d.record()
        self.written.append(new.id)
        if new.valid_from >= target.valid_from:  # the ordinary case: new becomes current
            self._set(target, valid_to=new.valid_from, superseded_by=new.id)
            self.memories[new.id] = dataclasses.replace(new, supersedes=target.id,
                                                        supersession=record)
            if target.id in self._ids:
                j = self._ids.index(target.id)
                del self._ids[j], self._vecs[j]
            self._ids.append(new.id)
            self._vecs.append(np.asarray(vector, np.float32))
            self._matrix = None
            return False
        # an older statement: its place is before the first memory of the chain that is
        # younger than it
        after = target
        while after.supersedes is not None:
            prev = self._get(after.supersedes)
            if prev is None or prev.valid_from <= new.valid_from:
                break
            after = prev
        before = self._get(after.supersedes)
        self.memories[new.id] = dataclasses.replace(
            new, valid_to=after.valid_from, superseded_by=after.id,
            supersedes=before.id if before else None,
            supersession=record if before else None)
        self._set(after, supersedes=new.id, supersession=after.supersession or record)
        if before is not None:
            self._set(before, valid_to=new.valid_from, superseded_by=new.id)
        return True

    def drop(self, ids: Iterable[str]) -> None:
        """Remove memories held (a source's text that left it, ``rm-memories``), splicing
        their chains: the memory before a removed one is superseded by the one after it, or
        is current again when none follows."""
        for i in list(ids):
            gone = self.memories.pop(i, None)
            if gone is None:
                continue
            self.changed.discard(i)
            if i in self.written:
                self.written.remove(i)
            if i in self._ids:
                j = self._ids.index(i)
                del self._ids[j], self._vecs[j]
                self._matrix = None
            before = self._get(gone.supersedes)
            after = self._get(gone.superseded_by)
            if after is not None:
                self._set(after, supersedes=before.id if before else None,
                          supersession=after.supersession if before else None)
            if before is not None:
                self._set(before, superseded_by=after.id if after else None,
                          valid_to=after.valid_from if after else None)
                # a memory current again takes part in later decisions only if its vector is
                # known; the caller re-reads the store for those (rare)

    def result(self) -> list[Memory]:
        """The memories written, in the order written, in their final state."""
        return [self.memories[i] for i in self.written]


def evolve(memories: list[Memory], vectors: np.ndarray, *,
           thresholds: Thresholds = DEFAULT) -> tuple[list[int], list[Memory], Counts]:
    """Supersession across the memories of one pack (spec §4.6), in valid-time order (ties
    in input order). Returns the indices of the memories kept (duplicates dropped), in input
    order, the kept memories with their links, and the counts."""
    order = sorted(range(len(memories)), key=lambda i: (memories[i].valid_from, i))
    ledger = Ledger(thresholds=thresholds)
    for i in order:
        ledger.offer(memories[i], vectors[i])
    kept = [i for i in range(len(memories)) if memories[i].id in ledger.memories]
    return kept, [ledger.memories[memories[i].id] for i in kept], ledger.counts
