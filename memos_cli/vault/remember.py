"""``memos remember`` into a vault: memories written one at a time (by a person, ``chat`` or
the MCP server) as one audited change each, through the load path (:func:`merge` with the
supersession decision, spec §4.6). A user's remembered memories belong to one entry of the
vault's cube list, ``remembered by USER``, so ``memos vault rm`` can remove them together."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

from memos_cli.cube.manifest import FORMAT_VERSION
from memos_cli.errors import EmbedderMismatchError
from memos_cli.lifecycle.pack import embed_memories
from memos_cli.memory import MEMORY_NAMESPACE, Memory, format_time
from memos_cli.vault.evolve import check_supersede, ledger_for
from memos_cli.vault.merge import LoadReport, merge

if TYPE_CHECKING:
    from memos_cli.vault.store import Vault

#: The format version a remembered memory is written in (spec §1).
FORMAT = f"{FORMAT_VERSION[0]}.{FORMAT_VERSION[1]}"


def remembered_cube(user: str) -> str:
    """The id of the cube entry that holds ``user``'s remembered memories: a UUIDv5 of
    ``remembered/USER`` in the memory namespace (the same on every machine)."""
    return str(uuid.uuid5(MEMORY_NAMESPACE, f"remembered/{user}"))


def remember(vault: Vault, memories: Sequence[Memory], *, user: str, embedder: Any,
             now: datetime | None = None, dry_run: bool = False,
             supersede: bool = True) -> LoadReport:
    """Write ``memories`` (made by :func:`memos_cli.lifecycle.remember.new_memory`) into the
    vault as ``user``: embedded, decided against the vault's current memories of their owner,
    committed as one change and logged as ``remember``. With ``dry_run`` the decisions are
    reported and nothing is written or logged.

    Raises:
        EmbedderMismatchError: the vault was indexed with another embedder.
        UsageError: a decision would supersede a memory ``user`` may not change; the vault
            is checked out or kept changing.
    """
    now = now or datetime.now(timezone.utc)
    cube_id = remembered_cube(user)
    vectors = np.asarray(embed_memories(embedder, list(memories)), np.float32)

    def write() -> tuple[LoadReport, int]:
        state = vault.part([m.id for m in memories], [m.content_hash for m in memories])
        if state.embedding is not None and state.embedding["fingerprint"] != \
                embedder.fingerprint:
            raise EmbedderMismatchError(f"vault was indexed with {state.embedding['model']}, "
                                        f"not {embedder.name}", path=vault.path)
        ledger, near = ledger_for(vault, list(memories), vectors) if supersede else (None,
                                                                                     None)
        delta, report = merge(state, cube_id, memories, vectors, now=now, ledger=ledger,
                              rows=near.row if near is not None else None)
        report.name, report.signer = f"remembered by {user}", "remember"
        if ledger is not None and ledger.changed:
            check_supersede(vault, [ledger.memories[i] for i in ledger.changed], user,
                            vault.path)
        prev = state.cubes.get(cube_id, {})
        delta.cubes[cube_id] = {
            "name": f"remembered by {user}", "description": "memories written by memos "
            "remember, chat and the MCP server", "installed_at": prev.get(
                "installed_at", format_time(now)), "installed_by": user, "signer": "remember",
            "source": "memos remember", "format_version": FORMAT,
            "loads": int(prev.get("loads", 0)) + 1}
        if state.embedding is None:
            delta.meta["embedding"] = embedder.describe()
        if dry_run:
            return report, 0
        return report, vault.apply(delta, dim=int(vectors.shape[1]))

    report, made = vault.change(write, what="remember")
    if not dry_run:
        vault.log(user, "remember", cube_id=cube_id,
                  memory_ids=[*report.added, *report.updates], version=made,
                  detail={**report.to_dict(),
                          **({"attempts": vault.attempts} if vault.attempts > 1 else {})})
    return report
