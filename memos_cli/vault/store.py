"""The vault's store: its layout on disk, one generation read into memory (``State``), and the
atomic commit of a new generation (``Vault``). See :mod:`memos_cli.vault` for the layout."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from memos_cli.cube.layout import atomic_write_bytes
from memos_cli.errors import FormatError, UsageError
from memos_cli.memory import Memory, format_time

CURRENT = "CURRENT"
STATE = "vault.json"
HISTORY = "history.arrow"
ARCHIVE = "archive.arrow"
AUDIT = "audit.jsonl"
VAULT_FORMAT = "memos-vault"
VAULT_VERSION = 1


def default_path() -> Path:
    """``$MEMOS_VAULT``, else the config file's ``vault``, else ``MEMOS_HOME/vault``."""
    from memos_cli.config import home, path_value

    return path_value("vault") or home() / "vault"


@dataclass
class State:
    """One generation of the vault, read into memory."""

    memories: list[Memory] = field(default_factory=list)
    history: list[Memory] = field(default_factory=list)
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    cubes: dict[str, dict[str, Any]] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)  # memory id -> cube id
    embedding: dict[str, Any] | None = None
    archived: list[Memory] = field(default_factory=list)
    archived_origin: dict[str, str] = field(default_factory=dict)  # archived id -> cube id


class Vault:
    """A vault directory. Reading never changes it; changes go through :meth:`commit`.

    Raises (from the methods):
        FormatError: a generation that is missing or unreadable.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        if self.path.exists() and not self.path.is_dir():
            raise UsageError("vault path is not a directory", path=self.path)
        from memos_cli.roles import use_vault

        use_vault(self.path)  # access checks use this vault's roles

    # -- reading ------------------------------------------------------------------------------
    def generation(self) -> Path | None:
        """The live generation directory, or ``None`` for an empty (new) vault."""
        cur = self.path / CURRENT
        if not cur.is_file():
            return None
        name = cur.read_text("utf-8").strip()
        gen = self.path / name
        if not name.startswith("gen-") or "/" in name or not (gen / STATE).is_file():
            raise FormatError(f"CURRENT names {name!r}, which is not a generation of this "
                              "vault", path=cur)
        return gen

    def state(self, *, vectors: bool = True) -> State:
        """Everything in the live generation (an empty state for a new vault). Without
        ``vectors`` the index is not read (``State.vectors`` stays empty): for readers that
        only list or search."""
        from memos_cli.cube.index import Index
        from memos_cli.cube.memories import read_memories

        gen = self.generation()
        if gen is None:
            return State()
        try:
            meta = json.loads((gen / STATE).read_text("utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise FormatError(f"unreadable vault state: {e}", path=gen / STATE) from e
        if meta.get("format") != VAULT_FORMAT or meta.get("version") != VAULT_VERSION:
            raise FormatError(f"not a {VAULT_FORMAT} {VAULT_VERSION} state", path=gen / STATE)
        memories = read_memories(gen / "memories.arrow")
        history = read_memories(gen / HISTORY, unique_ids=False)
        vecs = (Index(gen / "index").vectors([m.id for m in memories]) if memories and vectors
                else np.zeros((0, 0), np.float32))
        archived = read_memories(gen / ARCHIVE) if (gen / ARCHIVE).is_file() else []
        return State(memories, history, vecs, meta["cubes"], meta["origin"],
                     meta.get("embedding"), archived, dict(meta.get("archived", {})))

    # -- writing ------------------------------------------------------------------------------
    def lock(self) -> contextlib.AbstractContextManager[None]:
        """One writer at a time: hold this around read-change-:meth:`commit` (an exclusive
        ``fcntl`` lock on ``vault/.lock``; a second writer is refused, not queued)."""
        from memos_cli.lockfile import exclusive

        return exclusive(self.path, "another memos command is changing this vault")

    def commit(self, state: State) -> Path:
        """Write ``state`` as a new generation and make it live (see the module docstring).
        Call it under :meth:`lock`, with a state read under the same lock."""
        from memos_cli.cube.cube import write_plaintext
        from memos_cli.cube.memories import write_memories

        old = self.generation()
        number = int(old.name.split("-")[1]) + 1 if old is not None else 1
        name = f"gen-{number:06d}"
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=self.path))
        try:
            if state.memories:
                write_plaintext(tmp, state.memories, state.vectors)
            else:  # an index needs a vector dimension: an empty vault has none
                write_memories(tmp / "memories.arrow", [])
            write_memories(tmp / HISTORY, state.history)
            meta = {"format": VAULT_FORMAT, "version": VAULT_VERSION,
                    "embedding": state.embedding, "cubes": state.cubes,
                    "origin": state.origin}
            if state.archived:
                write_memories(tmp / ARCHIVE, state.archived)
                meta["archived"] = state.archived_origin
            atomic_write_bytes(tmp / STATE, (json.dumps(meta, indent=1, sort_keys=True)
                                             + "\n").encode("utf-8"))
            shutil.rmtree(self.path / name, ignore_errors=True)  # left by a killed change
            os.rename(tmp, self.path / name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        atomic_write_bytes(self.path / CURRENT, (name + "\n").encode("utf-8"))
        for stale in self.path.iterdir():  # older generations and leftovers of kills
            if stale.name != name and (stale.name.startswith("gen-") or
                                       stale.name.startswith(".gen-")):
                shutil.rmtree(stale, ignore_errors=True)
        return self.path / name

    # -- audit --------------------------------------------------------------------------------
    def log(self, user: str, op: str, *, cube_id: str | None = None,
            memory_ids: Sequence[str] = (), detail: dict[str, Any] | None = None) -> None:
        """Append one access-log record (one JSON object a line, flushed and fsynced)."""
        self.path.mkdir(parents=True, exist_ok=True)
        rec = {"time": format_time(datetime.now(timezone.utc)), "user": user, "op": op,
               "cube_id": cube_id, "memory_ids": list(memory_ids), **(detail or {})}
        with open(self.path / AUDIT, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def read_log(self, *, user: str | None = None, op: str | None = None,
                 cube_id: str | None = None, memory_id: str | None = None
                 ) -> list[dict[str, Any]]:
        """Access-log records matching every given filter, oldest first."""
        path = self.path / AUDIT
        if not path.is_file():
            return []
        from memos_cli.sources.base import json_lines

        out = []
        for _, rec in json_lines(path.read_text("utf-8"), path, FormatError):
            if ((user is None or rec.get("user") == user) and (op is None or rec.get("op") == op)
                    and (cube_id is None or rec.get("cube_id") == cube_id)
                    and (memory_id is None or memory_id in rec.get("memory_ids", []))):
                out.append(rec)
        return out

