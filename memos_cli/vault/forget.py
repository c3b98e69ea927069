"""Forgetting one memory of the vault (``forget`` of ``chat`` and the MCP server): removed in
one audited change, its supersession chain mended (spec §4.6)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from memos_cli.errors import UsageError
from memos_cli.governance.access import may_write
from memos_cli.lifecycle.evolve import Ledger
from memos_cli.memory import Memory, resolve_id
from memos_cli.vault import rows as R

if TYPE_CHECKING:
    from memos_cli.vault.store import Vault


def forget(vault: Vault, memory_id: str, *, user: str) -> Memory:
    """Remove memory ``memory_id`` (an id or a unique prefix of 4+ characters) from the
    vault as ``user``: the memory before it in its chain is superseded by the one after it,
    or is current again. One commit, one ``forget`` record in the access log. Returns the
    memory removed.

    Raises:
        UsageError: no such memory, or ``user`` may not change it (owner, or an admin of a
            role it is shared with).
    """
    def body() -> tuple[Memory, int]:
        found = vault.memories([memory_id])
        if not found:
            t = vault._rows(f"kind = '{R.MEMORY}'", ["id"])
            ids = [] if t is None else t.column("id").to_pylist()
            found = vault.memories([resolve_id(memory_id, ids)])
        m = next(iter(found.values()))
        state = vault.part([m.id], [])
        d = may_write(state, m, user)
        if not d.allowed:
            raise UsageError(f"{user} may not forget memory {m.id}: {d.rule}", path=vault.path)
        near = vault.memories([i for i in (m.supersedes, m.superseded_by) if i])
        ledger = Ledger([m, *near.values()])
        ledger.drop([m.id])
        changed = [ledger.memories[i] for i in sorted(ledger.changed)]
        rows = vault._rows(f"key IN ({R.quoted([R.memory_key(x.id) for x in changed])})",
                           ["id", "cube_id", "vector"]) if changed else None
        kept = {} if rows is None else {
            i: (np.asarray(v, np.float32), c) for i, c, v in zip(
                rows.column("id").to_pylist(), rows.column("cube_id").to_pylist(),
                rows.column("vector").to_pylist(), strict=True)}
        delta = R.Delta(memories=[(x, *kept[x.id]) for x in changed],
                        delete={R.memory_key(m.id)})
        return m, vault.apply(delta)

    gone, made = vault.change(body, what="forget")
    vault.log(user, "forget", memory_ids=[gone.id], version=made)
    return gone
