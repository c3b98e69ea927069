"""Supersession in the vault (spec §4.6, §16): the candidates a load decides against, and
undoing a supersession (``memos vault unsupersede``).

The candidates of a batch of new memories are found in one pass over the vectors of the
vault's memory rows, batch by batch (bounded memory: :data:`SCAN_ROWS` rows at a time), so
that a load of 1,000 memories into a vault of 100,000 costs one scan and a matrix product,
not 1,000 vector searches.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

from memos_cli.errors import UsageError
from memos_cli.governance.access import may_write
from memos_cli.lifecycle.evolve import Ledger
from memos_cli.lifecycle.supersede import DEFAULT
from memos_cli.memory import Memory, resolve_id
from memos_cli.vault import rows as R

if TYPE_CHECKING:
    from memos_cli.vault.store import Vault

#: Rows of the vault's vectors held in memory at a time while finding candidates.
SCAN_ROWS = 32768
#: New memories compared with those rows at a time: a similarity block is at most
#: ``QUERY_ROWS x SCAN_ROWS`` float32 (64 MiB), whatever the size of the cube loaded.
QUERY_ROWS = 512
#: Nearest memory rows kept per new memory (before the owner filter), among those at least
#: as similar as a candidate must be (``Thresholds.candidate``).
NEAREST = 12
#: Columns of a similarity block whose maximum is taken together (:func:`_top_above`).
GROUP = 64


class Neighbours:
    """The nearest memory rows of the vault for each of a batch of vectors, found in one scan,
    with the vectors and cubes of those rows (to rewrite a row a decision changes)."""

    def __init__(self, vault: Vault, vectors: np.ndarray, k: int = NEAREST,
                 floor: float = DEFAULT.candidate) -> None:
        self.vault = vault
        self.vector: dict[str, np.ndarray] = {}
        self.cube: dict[str, str] = {}
        n = len(vectors)
        rows: list[np.ndarray] = []
        sims_kept: list[np.ndarray] = []
        ids_kept: list[np.ndarray] = []
        ds = vault.dataset() if n else None
        if ds is not None:
            queries = np.asarray(vectors, np.float32)
            scanner = ds.scanner(columns=["id", "cube_id", "vector"],
                                 filter=f"kind = '{R.MEMORY}'", batch_size=SCAN_ROWS)
            for batch in scanner.to_batches():
                if batch.num_rows == 0:
                    continue
                col = batch.column("vector")
                mat = col.flatten().to_numpy(zero_copy_only=False).reshape(
                    batch.num_rows, col.type.list_size).astype(np.float32, copy=False)
                r, c, v = _top_rows(queries, mat, floor, k)
                if not r.size:
                    continue
                ids = batch.column("id").to_pylist()
                cubes = batch.column("cube_id").to_pylist()
                for j in np.unique(c).tolist():
                    self.vector[ids[j]] = mat[j]
                    self.cube[ids[j]] = cubes[j]
                rows.append(r)
                sims_kept.append(v)
                ids_kept.append(np.asarray([ids[j] for j in c.tolist()], object))
        self.near: list[list[tuple[str, float]]] = [[] for _ in range(n)]
        if rows:
            r, v, i = np.concatenate(rows), np.concatenate(sims_kept), np.concatenate(ids_kept)
            order = np.lexsort((-v, r))  # by query, best first
            for q, sim, mid in zip(r[order].tolist(), v[order].tolist(), i[order].tolist(),
                                   strict=True):
                if len(self.near[q]) < k:
                    self.near[q].append((str(mid), float(sim)))
        found = sorted({i for row in self.near for i, _ in row})
        # the cube ids of the rows a change may rewrite come from the checked rows (§16.5)
        self.memories = vault.memories(found, cubes=self.cube) if found else {}

    def row(self, memory_id: str) -> tuple[np.ndarray, str]:
        """The vector and cube id of the memory row ``memory_id`` (to rewrite it)."""
        if memory_id not in self.vector:
            t = self.vault._rows(f"key = '{R.memory_key(memory_id)}'", ["vector", "cube_id"])
            if t is None or t.num_rows == 0:
                raise UsageError(f"memory {memory_id} is not in the vault", path=self.vault.path)
            self.vector[memory_id] = np.asarray(t.column("vector")[0].as_py(), np.float32)
            self.cube[memory_id] = t.column("cube_id")[0].as_py()
        return self.vector[memory_id], self.cube[memory_id]

    def lookup(self, order: dict[str, int]) -> Any:
        """A :data:`~memos_cli.lifecycle.evolve.Lookup` for the batch: the neighbours of the
        new memory ``m`` (``order`` maps its id to its row in the batch)."""
        def find(m: Memory, vector: np.ndarray, k: int) -> list[tuple[Memory, float]]:
            row = order.get(m.id)
            if row is None:
                return []
            return [(self.memories[i], s) for i, s in self.near[row] if i in self.memories]
        return find


def _top_rows(queries: np.ndarray, mat: np.ndarray, floor: float, k: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_top_above` of ``queries @ mat.T``, computed :data:`QUERY_ROWS` queries at a
    time so that the similarities held stay bounded."""
    found = []
    for i in range(0, len(queries), QUERY_ROWS):
        r, c, v = _top_above(queries[i:i + QUERY_ROWS] @ mat.T, floor, k)
        if r.size:
            found.append((r + i, c, v))
    if not found:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.float32)
    return (np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found]),
            np.concatenate([f[2] for f in found]))


def _top_above(sims: np.ndarray, floor: float, k: int) -> tuple[np.ndarray, np.ndarray,
                                                               np.ndarray]:
    """``(query rows, columns, similarities)`` of the entries of ``sims`` (``[queries,
    rows]``) at or above ``floor``, at most ``k`` a query (its best; ties by column).

    The columns are cut into groups of :data:`GROUP`; a query's ``k`` best entries lie in the
    groups of its ``k`` highest group maxima (each of those groups holds an entry at least as
    high as the ``k``-th of them), so only those groups are gathered and sorted: one pass of
    maxima over the block, never a sort or partition of a whole row."""
    q, n = sims.shape
    empty = np.zeros(0, np.int64)
    if not q or not n:
        return empty, empty, np.zeros(0, np.float32)
    best = np.maximum.reduceat(sims, np.arange(0, n, GROUP), axis=1)  # [queries, groups]
    groups = best.shape[1]
    cut = np.full(q, floor, np.float32)
    if groups > k:
        cut = np.maximum(cut, np.partition(best, groups - k, axis=1)[:, groups - k])
    r, g = np.nonzero(best >= cut[:, None])  # ties at the cut are kept: none is lost
    if not r.size:
        return empty, empty, np.zeros(0, np.float32)
    c = (g[:, None] * GROUP + np.arange(GROUP)).reshape(-1)  # the picked groups' columns
    r = np.repeat(r, GROUP)
    inside = c < n  # the last group may be short
    r, c = r[inside], c[inside]
    v = sims[r, c]
    keep = v >= floor
    r, c, v = r[keep], c[keep], v[keep]
    order = np.lexsort((c, -v, r))  # by query, best first, ties by column
    r, c, v = r[order], c[order], v[order]
    starts = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
    rank = np.arange(r.size) - np.repeat(starts, np.diff(np.r_[starts, r.size]))
    keep = rank < k
    return r[keep], c[keep], v[keep]


def ledger_for(vault: Vault, memories: list[Memory], vectors: np.ndarray) -> tuple[Ledger,
                                                                                   Neighbours]:
    """A :class:`~memos_cli.lifecycle.evolve.Ledger` that decides ``memories`` against the
    vault's current memories (and each other)."""
    near = Neighbours(vault, vectors)
    order = {m.id: n for n, m in enumerate(memories)}

    def fetch(memory_id: str) -> Memory | None:
        return vault.memories([memory_id]).get(memory_id)

    ledger = Ledger(lookup=near.lookup(order), fetch=fetch)
    ledger.prepare(memories, vectors)  # the batch's members against each other
    return ledger, near


def check_supersede(vault: Vault, changed: list[Memory], user: str, where: Any) -> None:
    """Refuse a load whose decisions would supersede an installed memory ``user`` may not
    change (:func:`memos_cli.governance.access.may_write`).

    Raises:
        UsageError: naming the first such memory and the rule.
    """
    state = vault.part([m.id for m in changed], [])
    for m in changed:
        d = may_write(state, m, user)
        if not d.allowed:
            raise UsageError(f"{user} may not supersede memory {m.id}: {d.rule}", path=where)


def unsupersede(vault: Vault, memory_id: str, *, user: str) -> tuple[Memory, Memory]:
    """Undo the supersession of ``memory_id`` (the memory superseded, or the one that
    superseded it): the earlier memory is current again (``valid_to`` and ``superseded_by``
    cleared), the later one no longer names it. One commit and one access-log record
    (``unsupersede``, with the decision undone). Returns ``(earlier, later)`` as they are now.

    Raises:
        UsageError: no such memory, no supersession to undo, or ``user`` may not change it
            (only the owner, or the installer of its cube).
    """
    def body() -> tuple[Memory, Memory, dict[str, Any], int]:
        mid = memory_id if vault.memories([memory_id]) else \
            resolve_id(memory_id, _ids(vault), strict=True)
        m = vault.memories([mid]).get(mid)
        if m is None:
            raise UsageError(f"no memory {memory_id} in the vault", path=vault.path)
        other = m.superseded_by or m.supersedes
        if other is None:
            raise UsageError(f"memory {mid} neither supersedes another memory nor is "
                             "superseded", path=vault.path)
        pair = vault.memories([other]).get(other)
        if pair is None:
            raise UsageError(f"memory {mid} names memory {other}, which the vault does not "
                             "hold", path=vault.path)
        earlier, later = (m, pair) if m.superseded_by == other else (pair, m)
        state = vault.part([earlier.id, later.id], [])
        for x in (earlier, later):
            d = may_write(state, x, user)
            if not d.allowed:
                raise UsageError(f"{user} may not change memory {x.id}: {d.rule}",
                                 path=vault.path)
        undone = {"earlier": earlier.id, "later": later.id, **(later.supersession or {})}
        earlier2 = dataclasses.replace(earlier, valid_to=None, superseded_by=None)
        later2 = dataclasses.replace(later, supersedes=None, supersession=None)
        keys = [R.memory_key(earlier.id), R.memory_key(later.id)]
        rows = vault._rows(f"key IN ({R.quoted(keys)})", ["id", "cube_id", "vector"])
        found = {i: (np.asarray(v, np.float32), c) for i, c, v in zip(
            rows.column("id").to_pylist(), rows.column("cube_id").to_pylist(),
            rows.column("vector").to_pylist(), strict=True)}
        delta = R.Delta(memories=[(earlier2, *found[earlier.id]),
                                  (later2, *found[later.id])])
        return earlier2, later2, undone, vault.apply(delta)

    earlier, later, undone, made = vault.change(body, what="unsupersede")
    vault.log(user, "unsupersede", memory_ids=[earlier.id, later.id], version=made,
              detail={"undone": undone})
    return earlier, later


def _ids(vault: Vault) -> list[str]:
    t = vault._rows(f"kind = '{R.MEMORY}'", ["id"])
    return [] if t is None else t.column("id").to_pylist()
