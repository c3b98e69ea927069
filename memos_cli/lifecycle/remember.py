"""``memos remember``: one memory written as it happens (the Memory API of the MemOS paper,
§7.1.2), into a cube here and into a vault by :mod:`memos_cli.vault.remember`. It takes the
path every write takes: governance defaults, the supersession decision (spec §4.6), one
atomic change."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from memos_cli.cube.cube import Cube
from memos_cli.cube.verify import open_verified
from memos_cli.errors import UsageError
from memos_cli.lifecycle.integrate import integrate
from memos_cli.lifecycle.rewrite import UpdateReport, updatable
from memos_cli.memory import MAX_CONTENT_CHARS, Memory
from memos_cli.tiers.plaintext import check_embedder


def new_memory(text: str, *, owner: str | None, now: datetime, tags: Sequence[str] = (),
               event_time: datetime | None = None, speaker: str | None = None,
               semantic_type: str = "fact", visibility: str = "private",
               readers: Sequence[str] = (), conversation_id: str | None = None,
               session_id: str | None = None, extra: dict[str, Any] | None = None) -> Memory:
    """A memory of origin ``user_input`` (or ``conversation`` with a ``conversation_id``),
    owned by ``owner``, private unless told, made ``now`` and valid from ``event_time`` (else
    ``now``).

    Raises:
        UsageError: empty text, text over :data:`~memos_cli.memory.MAX_CONTENT_CHARS`, or a
            field the memory schema refuses (the message names it).
    """
    content = text.strip()
    if not content:
        raise UsageError("nothing to remember: the text is empty")
    if len(content) > MAX_CONTENT_CHARS:
        raise UsageError(f"the text is {len(content)} characters, over the "
                         f"{MAX_CONTENT_CHARS} character limit of a memory")
    try:
        return Memory.create(
            content, now=now, origin="conversation" if conversation_id else "user_input",
            semantic_type=semantic_type, owner=owner, visibility=visibility,
            readers=tuple(readers), tags=tuple(dict.fromkeys(tags)), speaker=speaker,
            event_time=event_time or now, conversation_id=conversation_id,
            session_id=session_id, extra=extra or {})
    except ValueError as e:
        raise UsageError(str(e)) from e


def remember_in_cube(path: str | Path | Cube, memories: Sequence[Memory], *, embedder: Any,
                     key: str | Path | None = None, dry_run: bool = False) -> UpdateReport:
    """Write ``memories`` into the cube at ``path`` (or an opened, verified :class:`Cube`,
    which is not verified again): each is decided against the cube's
    current memories (a duplicate is not written, an update supersedes what it revises), and
    the cube is rewritten once, atomically, re-signed with ``key`` or left unsigned.

    Raises:
        CubeNotFoundError, FormatError, IntegrityError: not a sound cube.
        UsageError: a cube with tiers other than plaintext, or of a newer format.
        EmbedderMismatchError: ``embedder`` did not build the cube's index.
    """
    cube = path if isinstance(path, Cube) else open_verified(path)
    updatable(cube)
    check_embedder(cube, embedder)
    hashes = {m.content_hash for m in cube.memories}
    incoming = [m for m in memories if m.content_hash not in hashes]
    report = UpdateReport(str(cube.path), duplicates=len(memories) - len(incoming))
    report.decisions = [{"id": m.id, "kind": "duplicate", "target": m.id, "rule": "same text",
                         "score": 1.0} for m in memories if m.content_hash in hashes]
    if not incoming:
        report.revision = cube.manifest.revision or 1
        report.signed = cube.signed
        return report
    return integrate(cube, incoming, embedder=embedder, key=key, dry_run=dry_run,
                     report=report)
