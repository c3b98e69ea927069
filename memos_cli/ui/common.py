"""What every page of ``memos ui`` shares: the :class:`Viewer` (the session, the one user it
reads as, what that user may read) and a memory as a page shows it (:func:`card`)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from memos_cli.api.scheduling import scope_name
from memos_cli.errors import MemosError, SignatureError, UsageError
from memos_cli.governance.policy import can_read
from memos_cli.governance.trust import check_trust
from memos_cli.memory import Memory, format_time, resolve_id
from memos_cli.scheduler.chunks import ChunkStore
from memos_cli.scheduler.policy import stored_for
from memos_cli.scheduler.usage import UsageStore, cube_store

if TYPE_CHECKING:
    from memos_cli.api.session import Session
    from memos_cli.cube import Cube


class PageError(MemosError):
    """A page that cannot be shown: ``status`` is the HTTP status (400 a bad parameter, 403
    not readable by this user, 404 no such thing)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Viewer:
    """The session a server reads, and the user it reads as, fixed at start.

    Served cubes without ``--as`` are read whole, as ``memos search CUBE`` reads them (who
    holds the file reads it); a vault, and cubes with ``--as``, are read as that user, with
    the access rules of spec §14. ``lock`` serialises calls into the session, which is not
    thread-safe."""

    session: Session

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self._signers: dict[str, str] = {}

    @property
    def user(self) -> str:
        """Whose view this is (the access log names this user)."""
        return self.session.actor

    @property
    def whole_cubes(self) -> bool:
        """Cubes read without ``--as``: every memory is shown."""
        return bool(self.session.cubes) and self.session.user is None

    @property
    def label(self) -> str:
        """The line every page shows: whose view it is."""
        if self.whole_cubes:
            return f"every memory of the cube (no --as); reads are logged as {self.user}"
        return f"what {self.user} may read"

    def may_read(self, m: Memory) -> bool:
        return self.whole_cubes or can_read(m, self.user)

    def readable(self, memories: Iterable[Memory]) -> tuple[list[Memory], int]:
        """The memories this user may read, and how many others were left out."""
        mine, hidden = [], 0
        for m in memories:
            if self.may_read(m):
                mine.append(m)
            else:
                hidden += 1
        return mine, hidden

    def cube(self, cube_id: str) -> Cube | None:
        """A served cube by its place on the command line (``1``, ``2``, ...: two versions
        of one cube share an id) or by id or unique prefix (:func:`memory.resolve_id`)."""
        cubes = self.session.cubes
        if cube_id.isdigit() and 1 <= int(cube_id) <= len(cubes):
            return cubes[int(cube_id) - 1]
        try:
            full = resolve_id(cube_id, {c.manifest.cube_id for c in cubes}, "cube",
                              strict=False)
        except UsageError as e:  # several served cubes start with it
            raise PageError(400, str(e)) from None
        return next((c for c in cubes if c.manifest.cube_id == full), None)

    def signer(self, cube: Cube) -> str:
        """The trusted key's name that signed a served cube, ``unsigned``, ``untrusted`` or
        ``changed since signing`` (checked once per server)."""
        cid = cube.manifest.cube_id
        if cid not in self._signers:
            try:
                self._signers[cid] = check_trust(cube.path, allow_unsigned=True)
            except SignatureError:
                self._signers[cid] = "changed since signing"
        return self._signers[cid]

    def tiers(self, memories: Iterable[Memory],
              cubes: Iterable[Cube] | None = None) -> dict[str, list[str]]:
        """Memory id -> the tiers beyond text that hold it, for ``memories`` (those a page
        shows): ``kv segment``, ``kv chunk`` (a chunk set of ``cubes``, default every served
        cube), ``kv chunk (scheduler)`` (the chunk store of ``memos schedule``, by content
        hash), ``lora`` (a cube's LoRA adapter)."""
        wanted = {m.id: m for m in memories}
        out: dict[str, list[str]] = {}

        def add(ids: Iterable[str], tier: str) -> None:
            for i in ids:
                if i in wanted and tier not in out.setdefault(i, []):
                    out[i].append(tier)

        for c in self.session.cubes if cubes is None else cubes:
            for seg in c.segments:
                add(seg["memory_ids"], "kv segment")
            for cs in c.chunk_sets:
                for ch in cs.chunks:
                    add(ch.memory_ids, "kv chunk")
            add((c.manifest.lora or {}).get("memory_ids", []), "lora")
        keys = self._scheduled_keys() if wanted else set()
        add((i for i, m in wanted.items()
             if m.content_hash.removeprefix("sha256:") in keys), "kv chunk (scheduler)")
        return out

    def _scheduled_keys(self) -> set[str]:
        s = self.session
        scope = scope_name(None if s.cubes else s.vault_name, s.cubes)
        keys: set[str] = set()
        for store_set in ChunkStore().sets():
            keys |= set(stored_for(store_set, scope))
        return keys

    def pool(self) -> list[Memory]:
        """Every memory served, current or not (before access control)."""
        if self.session.cubes:
            return [m for c in self.session.cubes if c.has_plaintext for m in c.memories]
        state = self.session.vault.state(vectors=False)
        return state.memories + state.archived

    def usage_store(self, cube_id: str | None) -> Any:
        """The usage store that records a memory's use: the vault's, or a cube's own."""
        if self.session.cubes:
            return cube_store(cube_id or self.session.cubes[0].manifest.cube_id)
        return UsageStore(self.session.vault.place.usage_dir())


def where(m: Memory) -> str:
    """The memory's source as ``file:line-line`` or ``file#turn``."""
    text = m.source_file or ""
    if m.line_start:
        text += f":{m.line_start}-{m.line_end}"
    elif m.turn_id:
        text += f"#{m.turn_id}"
    return text


def card(m: Memory, tiers: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """A memory as lists and pages show it: id, text, source, dates, validity and tiers."""
    return {"id": m.id, "text": m.render(), "content": m.content, "source": where(m),
            "type": m.semantic_type, "owner": m.owner, "visibility": m.visibility,
            "version": m.version, "valid_from": format_time(m.valid_from),
            "valid_to": format_time(m.valid_to), "current": m.current,
            "superseded_by": m.superseded_by, "supersedes": m.supersedes,
            "event_time": format_time(m.event_time),
            "tiers": ["text", *((tiers or {}).get(m.id, []))]}


def day(dt: datetime) -> str:
    """The UTC date of ``dt`` (YYYY-MM-DD)."""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%d")
