"""Access rules applied to the vault's changes (spec §14): who may version, replace, remove or
re-share an installed memory (``governance.decide_write``), and why a user may or may not read
one (``memos vault show MEMORY_ID --why``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from memos_cli.errors import UsageError
from memos_cli.governance.policy import Decision, decide_read, decide_write
from memos_cli.memory import VISIBILITIES, Memory
from memos_cli.principal import check_principal

if TYPE_CHECKING:
    from memos_cli.vault import State, Vault


def installer(state: State, memory_id: str) -> str | None:
    """The user who installed the cube a memory came from."""
    return state.cubes.get(state.origin.get(memory_id, ""), {}).get("installed_by")


def may_write(state: State, memory: Memory, user: str) -> Decision:
    return decide_write(memory, user, installed_by=installer(state, memory.id))


def check_updates(state: State, incoming: Sequence[Memory], user: str, on_conflict: str,
                  where: Any) -> None:
    """Refuse a load whose memories would version or replace an installed memory ``user``
    may not change (same id, or ``parent_id`` naming it). Nothing is changed.

    Raises:
        UsageError: naming the first such memory and the rule.
    """
    by_id = {m.id: m for m in state.memories}
    hashes = {m.content_hash for m in state.memories}
    for m in incoming:
        if m.content_hash in hashes:
            continue  # a duplicate: skipped, changes nothing
        target = by_id.get(m.id)
        if target is not None and on_conflict == "skip":
            continue
        if target is None and m.parent_id is not None:
            target = by_id.get(m.parent_id)
        if target is None:
            continue
        d = may_write(state, target, user)
        if not d.allowed:
            raise UsageError(f"{user} may not update memory {target.id} (memory {m.id} of the "
                             f"cube would replace it): {d.rule}", path=where)


def check_remove(state: State, cube_id: str, user: str, where: Any) -> None:
    """Refuse removing a cube unless ``user`` may change every current memory of it.

    Raises:
        UsageError: naming the first memory and the rule.
    """
    for m in state.memories:
        if state.origin.get(m.id) == cube_id:
            d = may_write(state, m, user)
            if not d.allowed:
                raise UsageError(f"{user} may not remove cube {cube_id}: memory {m.id}: "
                                 f"{d.rule}", path=where)


def share(vault: Vault, memory_id: str, *, user: str, readers: Sequence[str] = (),
          remove: Sequence[str] = (), visibility: str | None = None) -> Memory:
    """Change an installed memory's readers or visibility (a re-share), under the vault's
    lock, and log it (``op`` = ``share``). The memory keeps its id, content and version.
    Readers added to a private memory make it ``shared`` (a private memory is read by its
    owner alone, so readers would grant nothing); the log records the change of visibility.

    Raises:
        UsageError: no such memory, a malformed reader or visibility, readers given with
            ``visibility="private"``, or ``user`` may not change it
            (``governance.decide_write``).
    """
    for r in [*readers, *remove]:
        check_principal(r)
    if visibility is not None and visibility not in VISIBILITIES:
        raise UsageError(f"--visibility {visibility!r} is not one of {', '.join(VISIBILITIES)}")
    if readers and visibility == "private":
        raise UsageError("--reader with --visibility private grants nothing: a private memory "
                         "is read by its owner alone; give --visibility shared")

    def reshare() -> tuple[State, Memory, str, int, str]:
        state = vault.state()
        i = next((n for n, m in enumerate(state.memories) if m.id == memory_id), None)
        if i is None:
            raise UsageError(f"no memory {memory_id} in the vault", path=vault.path)
        old = state.memories[i]
        d = may_write(state, old, user)
        if not d.allowed:
            raise UsageError(f"{user} may not re-share memory {memory_id}: {d.rule}",
                             path=vault.path)
        kept = [r for r in dict.fromkeys([*old.readers, *readers]) if r not in remove]
        vis = visibility or old.visibility
        if readers and vis == "private":
            vis = "shared"  # readers are what sharing is; a private memory would ignore them
        new = dataclasses.replace(old, readers=tuple(kept), visibility=vis,
                                  updated_at=datetime.now(timezone.utc))
        state.memories[i] = new
        return state, new, d.rule, vault.commit(state), old.visibility

    state, new, rule, made, was = vault.change(reshare, what="share")
    vault.log(user, "share", cube_id=state.origin.get(memory_id), memory_ids=[memory_id],
              version=made,
              detail={"visibility": new.visibility, "readers": list(new.readers),
                      "rule": rule, "was": was})
    return new


def explain(state: State, memory_id: str, user: str) -> dict[str, Any]:
    """Why ``user`` may or may not read and change an installed memory: the rules that
    decided (``vault show MEMORY_ID --why``).

    Raises:
        UsageError: no such memory.
    """
    m = next((x for x in state.memories if x.id == memory_id), None)
    if m is None:
        raise UsageError(f"no memory {memory_id} in the vault")
    read, write = decide_read(m, user), may_write(state, m, user)
    return {"memory_id": m.id, "user": user, "owner": m.owner, "visibility": m.visibility,
            "readers": list(m.readers), "read": read.allowed, "read_rule": read.rule,
            "write": write.allowed, "write_rule": write.rule}
