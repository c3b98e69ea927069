"""Reading one memory's story through the entry point: its history (supersession chain and
versions, spec §4.6) and the access decision about it (``--why``), over cubes or a vault."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memos_cli import validity
from memos_cli.errors import UsageError
from memos_cli.governance.access import explain
from memos_cli.governance.policy import can_read, decide_read
from memos_cli.memory import Memory, format_time, resolve_id

if TYPE_CHECKING:
    from memos_cli.api.session import Session


@dataclass
class MemoryHistory:
    """One memory's history, oldest first: its supersession chain and versions (``current``
    false when it was superseded, removed or archived), and the installed cube it came from
    (vault only)."""

    memory_id: str
    versions: list[Memory] = field(default_factory=list)
    current: bool = True
    cube_id: str | None = None
    #: access-log records of supersessions undone or made by hand (vault only)
    events: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"memory_id": self.memory_id, "cube_id": self.cube_id, "current": self.current,
                "versions": [{**m.to_dict(), "valid_from": format_time(m.valid_from)}
                             for m in self.versions],
                "events": self.events}


def history(session: Session, memory_id: str) -> MemoryHistory:
    """The history of memory ``memory_id`` that the user may read, oldest first: its
    supersession chain (spec §4.6: the memories it superseded and those that superseded
    it, each with the decision that linked them), each memory with its earlier versions
    (``version`` 1, 2, ..., and through ``parent_id`` those of the memory it replaced).
    In a vault, the access log's ``supersede`` and ``unsupersede`` records that name
    these memories are in ``events``.

    Raises:
        UsageError: no such memory, or none of its versions readable by the user.
    """
    if session.cubes:
        pool = [m for c in session.cubes for m in c.memories]
        live, cube_id = pool, None
    else:
        state = _linked(session.vault, memory_id)
        live = state.memories + state.archived
        pool = live + state.history
    current = {m.id for m in live if m.current}
    memory_id = resolve_id(memory_id, {m.id for m in pool}, strict=False)
    if not session.cubes:
        cube_id = state.origin.get(memory_id) or state.archived_origin.get(memory_id)
    by_id = {m.id: m for m in live}
    chain = validity.chain(memory_id, by_id) or \
        [m for m in pool if m.id == memory_id][-1:]
    versions: list[Memory] = []
    seen: set[str] = set()
    for link in chain:
        seen.add(link.id)
        older = sorted((m for m in pool if m.id == link.id and m is not link),
                       key=lambda m: m.version)
        versions += [*older, link]
    mid = chain[0].parent_id if chain else None
    while mid is not None and mid not in seen:
        seen.add(mid)
        mine = sorted((m for m in pool if m.id == mid), key=lambda m: m.version)
        versions = mine + versions
        mid = next((m.parent_id for m in mine if m.parent_id), None)
    if not versions:
        raise UsageError(f"no memory {memory_id} in {session.where}")
    readable = [m for m in versions if can_read(m, session.actor)]
    if not readable:
        raise UsageError(f"memory {memory_id} is not readable by {session.actor}")
    events = [] if session.cubes else [
        r for r in session.vault.read_log() if r.get("op") in ("supersede", "unsupersede")
        and seen & set(r.get("memory_ids") or ())]
    return MemoryHistory(memory_id, readable, current=memory_id in current,
                         cube_id=cube_id, events=events)


#: The most memories, and rounds of reads, one history makes by id before it reads the whole
#: vault instead (each round follows the links of the memories the last one found).
_LINKED_MAX, _LINKED_ROUNDS = 2000, 32


def _linked(vault: Any, memory_id: str) -> Any:
    """The vault's memories linked to ``memory_id`` (supersession and version links, followed
    to their end), read by id; the whole vault when ``memory_id`` is a prefix or the links
    reach more than :data:`_LINKED_MAX` memories or :data:`_LINKED_ROUNDS` reads."""
    ids = {memory_id}
    for _ in range(_LINKED_ROUNDS):
        if len(ids) > _LINKED_MAX:
            break
        state = vault.linked(sorted(ids))
        found = state.memories + state.archived + state.history
        if not found:
            break  # an id prefix, or no such memory: resolved against every id
        links = {i for m in found for i in (m.supersedes, m.superseded_by, m.parent_id) if i}
        if links <= ids:
            return state
        ids |= links
    return vault.state(vectors=False)


def why(session: Session, memory_id: str) -> dict[str, Any]:
    """Why the user may or may not read and change memory ``memory_id`` (an id or a
    unique prefix): the rules that decided (``vault show ID --why``).

    Raises:
        UsageError: no such memory.
    """
    if not session.cubes:
        state = session.vault.part([memory_id], [])
        if not state.memories:
            full = session.vault.state(vectors=False)
            memory_id = resolve_id(memory_id, [m.id for m in full.memories])
            state = session.vault.part([memory_id], [])
        return explain(state, memory_id, session.actor)
    pool = {m.id: m for c in session.cubes for m in c.memories}
    m = pool[resolve_id(memory_id, list(pool))]
    read = decide_read(m, session.actor)
    return {"memory_id": m.id, "user": session.actor, "owner": m.owner,
            "visibility": m.visibility, "readers": list(m.readers), "read": read.allowed,
            "read_rule": read.rule}
