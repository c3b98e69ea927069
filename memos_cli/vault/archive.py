"""Archiving cold memories of a vault (``memos vault gc --cold``) and bringing them back
(``memos vault restore``): the demotion end of MemScheduler (MemOS paper §4.2).

An archived memory leaves the current memories and the index (so search and run no longer see
it) and is kept whole in an archived row of the vault's table; restoring embeds it again
with the vault's embedder and puts it back. Both are ordinary vault changes: one Lance commit,
atomic, logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from memos_cli.errors import EmbedderMismatchError, UsageError
from memos_cli.lifecycle.pack import embed_memories
from memos_cli.scheduler.usage import UsageStore
from memos_cli.vault import Vault, _drop


def cold_ids(vault: Vault, *, after: timedelta, now: datetime | None = None) -> list[str]:
    """Current memories with no recorded use for ``after`` (never used: created that long
    ago), by the vault's usage store."""
    now = now or datetime.now(timezone.utc)
    usage = UsageStore(vault.place.usage_dir()).indicators(now=now)
    out = []
    for m in vault.state(vectors=False).memories:
        u = usage.get(m.id)
        last = u.last_use if u is not None else m.created_at
        if last <= now - after:
            out.append(m.id)
    return out


def archive_cold(vault: Vault, *, user: str, after: timedelta,
                 now: datetime | None = None) -> list[str]:
    """Archive the cold memories (see :func:`cold_ids`); their ids."""
    ids = set(cold_ids(vault, after=after, now=now))
    if not ids:
        vault.log(user, "archive", memory_ids=[])
        return []

    def move() -> tuple[list[Any], int]:
        state = vault.state()
        rows = [i for i, m in enumerate(state.memories) if m.id in ids]
        moved = [state.memories[i] for i in rows]
        for m in moved:
            state.archived_origin[m.id] = state.origin.get(m.id, "")
        state.archived += moved
        _drop(state, rows)
        return moved, vault.commit(state)

    moved, made = vault.change(move, what="archive")
    vault.log(user, "archive", memory_ids=[m.id for m in moved], version=made,
              detail={"cold_after_days": after.total_seconds() / 86400})
    return [m.id for m in moved]


def restore(vault: Vault, ids: Sequence[str], *, user: str, embedder: Any) -> int:
    """Put archived memories back (re-embedded); how many.

    Raises:
        UsageError: an id that is not archived. EmbedderMismatchError: ``embedder`` is not
            the vault's.
    """
    def put_back() -> int:
        state = vault.state()
        by_id = {m.id: m for m in state.archived}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise UsageError(f"memory {missing[0]} is not archived in this vault",
                             path=vault.path)
        if state.embedding and state.embedding["fingerprint"] != embedder.fingerprint:
            raise EmbedderMismatchError(f"vault was indexed with {state.embedding['model']}, "
                                        f"not {embedder.name}", path=vault.path)
        back = [by_id[i] for i in dict.fromkeys(ids)]
        vecs = np.asarray(embed_memories(embedder, back), np.float32)
        state.vectors = np.concatenate([state.vectors, vecs]) if state.memories else vecs
        state.memories += back
        for m in back:
            state.origin[m.id] = state.archived_origin.pop(m.id, "")
        state.archived = [m for m in state.archived if m.id not in set(ids)]
        return vault.commit(state)

    made = vault.change(put_back, what="restore")
    vault.log(user, "restore", memory_ids=list(ids), version=made)
    return len(ids)
