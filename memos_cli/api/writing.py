"""Writing through the entry point: ``remember`` (one memory, as it happens) and ``forget``,
over a cube or a vault (the Memory API of the MemOS paper, §7.1.2), for ``memos remember``,
``chat`` and the MCP server alike; and ``load``, a cube or another system's file installed
into a vault (MemLoader, ``memos load``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memos_cli.errors import UsageError
from memos_cli.lifecycle.remember import new_memory, remember_in_cube
from memos_cli.lifecycle.update import remove
from memos_cli.memory import Memory, resolve_id
from memos_cli.memstore.pull import fetched
from memos_cli.memstore.ref import is_remote
from memos_cli.vault.forget import forget as vault_forget
from memos_cli.vault.load import load as vault_load
from memos_cli.vault.merge import LoadReport
from memos_cli.vault.remember import remember as vault_remember

if TYPE_CHECKING:
    from memos_cli.api.session import Session


@dataclass
class Remembered:
    """What became of a memory written by :meth:`Session.remember`: ``kind`` is
    ``duplicate`` (not written: ``target`` holds it already), ``update`` (it supersedes
    ``target``) or ``new``; ``rule`` is what decided; ``memory`` as given."""

    memory: Memory
    kind: str
    target: str | None
    rule: str
    where: str
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.memory.id, "kind": self.kind, "target": self.target,
                "rule": self.rule, "where": self.where, "dry_run": self.dry_run,
                "memory": self.memory.to_dict()}


def remember(session: Session, text: str, *, tags: Sequence[str] = (),
             event_time: datetime | None = None, speaker: str | None = None,
             semantic_type: str = "fact", conversation_id: str | None = None,
             session_id: str | None = None, key: str | Path | None = None,
             dry_run: bool = False, now: datetime | None = None) -> Remembered:
    """Write one memory as the session's user (its owner), through the path every write
    takes (spec §4.6). Over a cube the cube is rewritten atomically (re-signed with ``key``);
    over a vault it is one audited change.

    Raises:
        UsageError: empty or oversized text, several cubes, a decision that would supersede a
            memory the user may not change.
        EmbedderMismatchError: the embedder did not index the cube or vault.
    """
    if len(session.cubes) > 1:
        raise UsageError("remember writes to one cube (or a vault)")
    now = now or datetime.now(timezone.utc)
    m = new_memory(text, owner=session.actor, now=now, tags=tags, event_time=event_time,
                   speaker=speaker, semantic_type=semantic_type,
                   conversation_id=conversation_id, session_id=session_id)
    # one text: the checked ONNX export embeds it without loading torch (a one-shot
    # `memos remember` took 6.7 s with the torch encoder, most of it importing torch)
    enc = session.query_encoder()
    if session.cubes:
        report = remember_in_cube(session.cubes[0], [m], embedder=enc,
                                  key=key, dry_run=dry_run)
        decisions = report.decisions
        if not dry_run:
            session.reopen()
    else:
        rep = vault_remember(session.vault, [m], user=session.actor, embedder=enc, now=now,
                             dry_run=dry_run)
        decisions = rep.decisions
        if m.id in rep.duplicates and not decisions:
            decisions = [{"id": m.id, "kind": "duplicate", "target": m.id,
                          "rule": "same text"}]
    d = next((x for x in decisions if x.get("id") == m.id), None)
    kind = "new" if d is None else str(d["kind"])
    return Remembered(m, kind, None if d is None else d.get("target"),
                      "" if d is None else str(d.get("rule", "")), session.where, dry_run)


def forget(session: Session, memory_id: str, *, key: str | Path | None = None) -> Memory:
    """Remove one memory (an id or a unique prefix) as the session's user: from the vault as
    one audited change, or from the one cube (rewritten atomically). A supersession chain
    through it is mended.

    Raises:
        UsageError: no such memory, or the user may not change it.
    """
    if not session.cubes:
        return vault_forget(session.vault, memory_id, user=session.actor)
    if len(session.cubes) > 1:
        raise UsageError("forget changes one cube (or a vault)")
    cube = session.cubes[0]
    mid = resolve_id(memory_id, [m.id for m in cube.memories])
    gone = cube.by_id[mid]
    if gone.owner is not None and gone.owner.split("/")[0] != session.actor.split("/")[0]:
        raise UsageError(f"{session.actor} may not forget memory {mid}: only its owner "
                         f"({gone.owner}) may", path=cube.path)
    remove(cube.path, lambda m: m.id != mid, key=key)
    session.reopen()
    return gone


def load(session: Session, source: str | Path, *, on_conflict: str = "version",
         allow_unsigned: bool = False, owners: dict[str, str] | None = None,
         supersede: bool = True, dry_run: bool = False, plain_http: bool = False) -> LoadReport:
    """Install a cube (a directory, or an ``oci://`` reference pulled and verified first) or a
    file of another memory system into the session's vault, as the session's user (MemLoader,
    ``memos load``; :func:`memos_cli.vault.load.load` says what is checked and decided). A
    file of another system is embedded with the session's embedder.

    Raises:
        UsageError: the session reads cubes, not a vault. As :func:`memos_cli.vault.load.load`
        and, for a reference, :func:`memos_cli.memstore.pull.fetched`.
    """
    if session.cubes:
        raise UsageError("load installs into a vault; this session reads cubes")
    vault = session.vault
    options: dict[str, Any] = {"user": session.actor, "on_conflict": on_conflict,
                               "allow_unsigned": allow_unsigned, "owners": owners,
                               "supersede": supersede, "dry_run": dry_run}
    if is_remote(str(source)):
        with fetched(str(source), plain_http=plain_http) as (path, origin):
            return vault_load(vault, path, origin=origin, **options)
    src = Path(source)
    encoder = None if (src / "manifest.json").is_file() else session.encoder()
    return vault_load(vault, src, embedder=encoder, **options)
