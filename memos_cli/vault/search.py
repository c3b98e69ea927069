"""Reading the vault (MemVault, MemOS paper §5.4): hybrid retrieval over the current memories
that a user may read (spec §6, §14), and the plaintext tier over them."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from memos_cli.cube.index import Index
from memos_cli.errors import EmbedderMismatchError
from memos_cli.governance import seal
from memos_cli.lifecycle import precedence
from memos_cli.tiers.plaintext import answer_hits, precede, resolve_hits
from memos_cli.validity import CURRENT, View
from memos_cli.vault import rows as R

if TYPE_CHECKING:
    from memos_cli.vault.store import Vault


def search(vault: Vault, embedder: Any, query: str, k: int, *, user: str,
           now: datetime | None = None, hidden: list[int] | None = None,
           view: View = CURRENT) -> list[Any]:
    """Top-``k`` current memories of the vault for ``query`` that ``user`` may read, best first
    (hybrid retrieval as for a cube, spec §6; a derived memory gives way to its sources, §4.5).
    Returns ``plaintext.Retrieved`` items; ``view`` chooses current memories (default), those
    valid at a time, or all (spec §4.6). With
    ``hidden`` (a list), appends how many closer candidates access control left out.

    Raises:
        EmbedderMismatchError: ``embedder`` is not the vault's.
    """
    tbl = vault.table()
    if tbl is None:
        return []
    embedding = vault.meta().get("embedding")
    if embedding and embedding["fingerprint"] != embedder.fingerprint:
        raise EmbedderMismatchError(f"vault was indexed with {embedding['model']}, not "
                                    f"{embedder.name}", path=vault.path)
    # Only current memories can match: every other row (history, archived, cube, vault) has
    # empty text, which full-text search never returns, and a zero vector, which has no cosine
    # distance and which Lance leaves out of vector results. No row filter is needed, and
    # none is paid for (a prefilter costs 20-25 ms a query at 1M rows; bench/scale.py).
    index = Index.of_table(vault.dataset(), vault.path, where=None)
    now = now or datetime.now(timezone.utc)
    view = view.for_query(query, now)  # a period the query names (spec §4.6)
    vector = embedder.encode([query])[0]
    pool = precedence.pool(k, view.precedence)
    seals = vault.seals
    columns: tuple[str, ...] = ("record",)
    if seals.active:  # each hit's seal is checked as it is read (spec §16.5)
        columns = tuple(c for c in vault.sealed_columns(tbl) if c not in ("id", "kind"))
    while True:
        hits = index.search(query, vector, pool, columns=columns)  # no second read by key
        if seals.active:
            for h in hits:
                if h.extra:
                    seal.check_row(seals, {**h.extra, "id": h.id, "kind": h.via}, vault.path)
        by_id = {h.id: R.memory_of(h.extra["record"], vault.path) for h in hits
                 if h.extra and h.extra.get("record")}
        by_id |= vault.memories([h.id for h in hits if h.id not in by_id])
        out, denied = resolve_hits(hits, _Lookup(vault, by_id), k,
                                   now=now, user=user, view=view)
        if len(out) >= k or len(hits) < pool:
            if hidden is not None:
                hidden.append(denied)
            return precede(query, out, k, view)
        pool *= 4


class _Lookup(dict[str, Any]):
    """Memories by id, fetched from the vault on first use (a derived memory's sources)."""

    def __init__(self, vault: Vault, found: dict[str, Any]) -> None:
        super().__init__(found)
        self.vault = vault

    def __missing__(self, key: str) -> Any:
        got = self.vault.memories([key])
        if key not in got:
            raise KeyError(key)
        self[key] = got[key]
        return got[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None


def answer(vault: Vault, embedder: Any, chat: Any, question: str, *, user: str, k: int = 5,
           max_new_tokens: int = 128, temperature: float = 0.0,
           hidden: list[int] | None = None, view: View = CURRENT,
           limit: int | None = None) -> Any:
    """The plaintext tier over the vault: the top-``k`` memories ``user`` may read, as many
    as fit in ``limit`` tokens, in the prompt (``plaintext.answer_hits``). Returns a
    ``plaintext.Answer``; logged as ``run``. ``hidden``: as :func:`search`."""
    t0 = time.perf_counter()
    found = search(vault, embedder, question, k, user=user, hidden=hidden, view=view)
    result = answer_hits(chat, found, question, retrieval_s=time.perf_counter() - t0,
                         limit=limit, max_new_tokens=max_new_tokens, temperature=temperature)
    vault.log(user, "run", memory_ids=[r.memory.id for r in result.memories],
              detail={"question": question})
    return result
