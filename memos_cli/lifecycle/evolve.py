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
        # the vectors of the current memories: rows of a buffer that doubles as it fills,
        # rows of memories no longer current switched off (a pack of n memories costs
        # O(n) appends, not n copies of a growing matrix)
        self._rows: dict[str, int] = {}
        self._row_ids: list[str] = []
        self._buf = np.zeros((0, 0), np.float32)
        self._live = np.zeros(0, bool)
        self._pre: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._pre_names: list[str] = []
        held = list(held)
        for i, m in enumerate(held):
            self.memories[m.id] = m
            if m.current and eligible(m) and vectors is not None:
                self._add_row(m.id, vectors[i])

    # -- candidates -----------------------------------------------------------------------------
    def _reserve(self, rows: int, dim: int) -> None:
        """Make room for ``rows`` rows in all (one copy of the buffer)."""
        n = len(self._row_ids)
        grown = np.zeros((rows, dim), np.float32)
        grown[:n] = self._buf[:n] if n else grown[:0]
        live = np.zeros(rows, bool)
        live[:n] = self._live[:n]
        self._buf, self._live = grown, live

    def _add_row(self, memory_id: str, vector: np.ndarray) -> None:
        v = np.asarray(vector, np.float32)
        n = len(self._row_ids)
        if n == len(self._buf):
            self._reserve(max(64, 2 * n), v.shape[0])
        self._buf[n] = v
        self._live[n] = True
        self._rows[memory_id] = n
        self._row_ids.append(memory_id)

    def _drop_row(self, memory_id: str) -> None:
        row = self._rows.pop(memory_id, None)
        if row is not None:
            self._live[row] = False

    def _local(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        n = len(self._row_ids)
        if not self._rows:
            return []
        sims = self._buf[:n] @ np.asarray(vector, np.float32)
        sims[~self._live[:n]] = -np.inf
        take = min(k * 4, n)
        top = np.argpartition(-sims, take - 1)[:take]
        top = top[np.argsort(-sims[top], kind="stable")]
        return [(self._row_ids[j], float(sims[j])) for j in top.tolist()
                if np.isfinite(sims[j])]

    def prepare(self, memories: list[Memory], vectors: np.ndarray) -> None:
        """Find the candidates of a batch that will be offered in this order, in blocks of
        matrix products (:func:`nearest_before`): against the memories held now and the
        batch's earlier members. Without it each offer is one matrix-vector product over
        every current memory, which a pack of 100,000 memories cannot afford."""
        n = len(self._row_ids)
        held_ids = self._row_ids[:n]
        live = np.flatnonzero(self._live[:n])
        ids = [held_ids[j] for j in live.tolist()]
        matrix = self._buf[live] if len(live) else np.zeros((0, vectors.shape[1]), np.float32)
        every = np.concatenate([matrix, np.asarray(vectors, np.float32)]) if len(matrix) \
            else np.asarray(vectors, np.float32)
        top, sims = nearest_before(every, CANDIDATES * 4, start=len(matrix))
        del every, matrix
        if n + len(memories) > len(self._buf):  # room for the whole batch, once: no doubling
            self._reserve(n + len(memories), vectors.shape[1])
        names = ids + [m.id for m in memories]
        self._pre_names = names
        self._pre = {m.id: (top[j], sims[j]) for j, m in enumerate(memories)}

    def candidates(self, m: Memory, vector: np.ndarray) -> list[tuple[Memory, float]]:
        """The current memories nearest ``m`` (same owner), from the ledger and the store."""
        out: dict[str, tuple[Memory, float]] = {}
        pre = self._pre.pop(m.id, None) if self._pre else None
        pairs = self._local(vector, CANDIDATES) if pre is None else [
            (self._pre_names[j], float(x)) for j, x in zip(pre[0].tolist(), pre[1].tolist(),
                                                           strict=True) if j >= 0]
        for i, sim in pairs:
            held = self.memories.get(i)
            if held is not None and held.current and held.owner == m.owner:
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
            self._add_row(m.id, vector)

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
            self._drop_row(target.id)
            self._add_row(new.id, vector)
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
            self._drop_row(i)
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


#: Rows of a batch whose candidates one matrix product finds. It bounds the memory of a
#: block: 64 rows against 50,000 are 13 MB of similarities, and argpartition's int64
#: indices twice that (a block of 256 cost 160 MB more at the peak, and no less time).
BLOCK = 64
#: How many earlier memories of a batch each one is compared with, at most (the most recent
#: in offer order): bounds the cost of a pack of N memories to N x WINDOW, not N x N.
WINDOW = 50_000


def nearest_before(vectors: np.ndarray, k: int, *, start: int = 0) -> tuple[np.ndarray,
                                                                           np.ndarray]:
    """For each row ``i >= start`` of ``vectors`` (``[n, dim]`` float32 unit vectors), the
    ``k`` rows ``j < i`` of highest cosine similarity among the :data:`WINDOW` before it:
    ``(indices [n - start, k] int64, similarities [n - start, k] float32)``, best first,
    ``-1`` where there are fewer than ``k``. Computed in blocks of :data:`BLOCK` rows."""
    n = len(vectors)
    out_i = np.full((n - start, k), -1, np.int64)
    out_s = np.full((n - start, k), -np.inf, np.float32)
    for b0 in range(start, n, BLOCK):
        b1 = min(n, b0 + BLOCK)
        lo = max(0, b0 - WINDOW)
        if b1 - 1 <= lo:
            continue
        sims = vectors[b0:b1] @ vectors[lo:b1 - 1].T  # [block, window]
        cols = np.arange(lo, b1 - 1)
        sims[cols[None, :] >= np.arange(b0, b1)[:, None]] = -np.inf  # only earlier rows
        take = min(k, sims.shape[1])
        top = np.argpartition(-sims, take - 1, axis=1)[:, :take]
        got = np.take_along_axis(sims, top, 1)
        order = np.argsort(-got, axis=1, kind="stable")
        top, got = np.take_along_axis(top, order, 1), np.take_along_axis(got, order, 1)
        idx = np.where(np.isfinite(got), cols[top], -1)
        out_i[b0 - start:b1 - start, :take] = idx
        out_s[b0 - start:b1 - start, :take] = got
    return out_i, out_s


def evolve(memories: list[Memory], vectors: np.ndarray, *,
           thresholds: Thresholds = DEFAULT) -> tuple[list[int], list[Memory], Counts]:
    """Supersession across the memories of one pack (spec §4.6), in valid-time order (ties
    in input order). Returns the indices of the memories kept (duplicates dropped), in input
    order, the kept memories with their links, and the counts."""
    order = sorted(range(len(memories)), key=lambda i: (memories[i].valid_from, i))
    ledger = Ledger(thresholds=thresholds)
    in_order = order == list(range(len(memories)))  # no copy of the vectors when it is
    ledger.prepare([memories[i] for i in order],
                   np.asarray(vectors) if in_order else np.asarray(vectors)[order])
    for i in order:
        ledger.offer(memories[i], vectors[i])
    kept = [i for i in range(len(memories)) if memories[i].id in ledger.memories]
    return kept, [ledger.memories[memories[i].id] for i in kept], ledger.counts
