"""The vault (MemVault, MemOS paper §5.4): a local store of installed cubes and their memories.

Layout (``MEMOS_HOME/vault`` by default)::

    vault/
      CURRENT          name of the live generation, replaced atomically
      gen-000007/      one generation: the whole state after one change
        memories.arrow current version of every installed memory (spec §4 schema)
        history.arrow  superseded versions (version chains), same schema
        archive.arrow  cold memories archived by ``vault gc --cold`` (kept, not searched)
        index/         LanceDB table over the current memories (spec §6)
        vault.json     installed cubes, which cube each memory came from, the embedder
      audit.jsonl      append-only access log: time, user, operation, cube id, memory ids

A change (load, rm, gc) builds a new generation in a temporary directory, renames it into
place, then replaces ``CURRENT``. A process killed at any point leaves ``CURRENT`` naming
either the old or the new generation, so the vault is exactly as before or exactly as after;
stale generations are removed by the next change.
"""

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

from memos_cli.access import check_remove, check_updates
from memos_cli.cube.layout import atomic_write_bytes
from memos_cli.errors import FormatError, UsageError
from memos_cli.memory import Memory, format_time
from memos_cli.pausepoints import pause

CURRENT = "CURRENT"
STATE = "vault.json"
HISTORY = "history.arrow"
ARCHIVE = "archive.arrow"
AUDIT = "audit.jsonl"
VAULT_FORMAT = "memos-vault"
VAULT_VERSION = 1
CONFLICT_POLICIES = ("version", "skip", "replace")


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


@dataclass
class LoadReport:
    """What :func:`load` did, by count and by memory id."""

    cube_id: str
    name: str
    signer: str
    added: list[str] = field(default_factory=list)
    versioned: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    skipped_conflict: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    #: ``role:`` readers naming no role of the vault (they grant nothing until defined)
    dangling: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"cube_id": self.cube_id, "name": self.name, "signer": self.signer,
                "dangling_roles": self.dangling,
                **{k: len(v) for k, v in (("added", self.added), ("versioned", self.versioned),
                                          ("replaced", self.replaced),
                                          ("skipped_conflict", self.skipped_conflict),
                                          ("duplicates", self.duplicates),
                                          ("expired", self.expired))}}


def merge(state: State, cube_id: str, memories: Sequence[Memory], vectors: np.ndarray, *,
          on_conflict: str = "version", now: datetime | None = None) -> tuple[State, LoadReport]:
    """The state after installing ``memories`` (with their ``vectors``) from cube ``cube_id``.

    Expired memories are not installed. A memory whose content hash is already installed is a
    duplicate and skipped. A memory that updates an installed one extends its version chain:
    same id (a clash; ``on_conflict`` decides: ``version`` keeps the old one in the history
    and installs the new one with the next version number, ``skip`` keeps the old one,
    ``replace`` overwrites it without history) or ``parent_id`` naming an installed memory
    (the parent moves to the history).
    """
    if on_conflict not in CONFLICT_POLICIES:
        raise UsageError(f"--on-conflict {on_conflict!r} is not one of "
                         f"{', '.join(CONFLICT_POLICIES)}")
    import dataclasses

    now = now or datetime.now(timezone.utc)
    report = LoadReport(cube_id, "", "")
    current = {m.id: i for i, m in enumerate(state.memories)}
    hashes = {m.content_hash for m in state.memories}
    mems = list(state.memories)
    vecs = [v for v in state.vectors] if len(state.memories) else []
    history = list(state.history)
    origin = dict(state.origin)
    drop: set[int] = set()
    for m, v in zip(memories, vectors, strict=True):
        if m.expired(now):
            report.expired.append(m.id)
            continue
        if m.content_hash in hashes:
            report.duplicates.append(m.id)
            continue
        if m.id in current and current[m.id] not in drop:
            i = current[m.id]
            old = mems[i]
            if on_conflict == "skip":
                report.skipped_conflict.append(m.id)
                continue
            if on_conflict == "version":
                history.append(old)
                m = dataclasses.replace(m, version=max(m.version, old.version + 1))
                report.versioned.append(m.id)
            else:
                report.replaced.append(m.id)
            mems[i], vecs[i] = m, v
        else:
            if m.parent_id is not None and m.parent_id in current and \
                    current[m.parent_id] not in drop:
                parent = current[m.parent_id]
                history.append(mems[parent])
                drop.add(parent)
                report.versioned.append(m.id)
            else:
                report.added.append(m.id)
            current[m.id] = len(mems)
            mems.append(m)
            vecs.append(v)
        hashes.add(m.content_hash)
        origin[m.id] = cube_id
    keep = [i for i in range(len(mems)) if i not in drop]
    for i in drop:
        origin.pop(mems[i].id, None)
    out = State([mems[i] for i in keep], history,
                np.stack([vecs[i] for i in keep]).astype(np.float32) if keep
                else np.zeros((0, 0), np.float32),
                dict(state.cubes), origin, state.embedding)
    return out, report


# -- MemLoader ---------------------------------------------------------------------------------
def load(vault: Vault, source: str | Path, *, user: str, embedder: Any = None,
         on_conflict: str = "version", allow_unsigned: bool = False,
         now: datetime | None = None) -> LoadReport:
    """Install a cube, or a file of another memory system (imported on the way), into the vault.

    A cube is verified first (manifest, digests, index) and its signature checked against the
    trust store (:func:`memos_cli.trust.check_trust`); files from other systems carry no
    signature and are recorded as ``import``. The cube's embedder must be the vault's. Then
    :func:`merge`, one atomic commit and one access-log record.

    Raises:
        CubeNotFoundError, SourceError, FormatError, IntegrityError, SignatureError,
        EmbedderMismatchError, UsageError (no plaintext tier, bad policy).
    """
    from memos_cli.cube import open_cube, verify
    from memos_cli.errors import EmbedderMismatchError
    from memos_cli.trust import check_trust

    src = Path(source)
    with contextlib.ExitStack() as stack:
        if (src / "manifest.json").is_file():
            cube = open_cube(src)
            verify(cube)
            signer = check_trust(src, allow_unsigned=allow_unsigned)
        else:
            if embedder is None:
                raise UsageError("importing a file of another memory system needs the embedder")
            from memos_cli.pack import pack
            from memos_cli.sources import Defaults

            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="memos-load-")))
            # a fixed name: the source's own may hold characters LanceDB cannot take
            pack([src], tmp / "import.memcube", embedder=embedder,
                 defaults=Defaults(now=now or datetime.now(timezone.utc), owner=user))
            cube, signer = open_cube(tmp / "import.memcube"), "import"
        cube.require_plaintext()
        stack.enter_context(vault.lock())
        pause("vault:locked")
        state = vault.state()
        if state.embedding is not None and cube.manifest.embedding is not None and (
                state.embedding["fingerprint"] != cube.manifest.embedding["fingerprint"]):
            raise EmbedderMismatchError(
                f"cube was indexed with {cube.manifest.embedding['model']}, the vault with "
                f"{state.embedding['model']}; run `memos reindex` on the cube first",
                path=cube.path)
        mems = cube.memories
        check_updates(state, mems, user, on_conflict, cube.path)
        vectors = cube.index().vectors([m.id for m in mems])
        cube_id = cube.manifest.cube_id
        new, report = merge(state, cube_id, mems, vectors, on_conflict=on_conflict, now=now)
        report.name, report.signer = cube.manifest.name, signer
        from memos_cli.roles import Roles

        report.dangling = sorted(set(Roles.load(vault.path).unknown(
            [r for m in mems for r in m.readers])))
        installed = [*report.added, *report.versioned, *report.replaced]
        prev = new.cubes.get(cube_id, {})
        new.cubes[cube_id] = {
            "name": cube.manifest.name, "description": cube.manifest.description,
            "installed_at": format_time(now or datetime.now(timezone.utc)),
            "installed_by": user, "signer": signer, "source": str(src.resolve()),
            "format_version": cube.manifest.format_version,
            "loads": int(prev.get("loads", 0)) + 1}
        new.embedding = new.embedding or cube.manifest.embedding
        vault.commit(new)
    vault.log(user, "load", cube_id=cube_id, memory_ids=installed,
              detail={"signer": signer, **report.to_dict()})
    return report


def remove(vault: Vault, cube_id: str, *, user: str) -> int:
    """Remove an installed cube and its current memories (their history stays); the number of
    memories removed.

    Raises:
        UsageError: no such cube, or ``user`` did not install it.
    """
    with vault.lock():
        state = vault.state()
        info = state.cubes.get(cube_id)
        if info is None:
            raise UsageError(f"no cube {cube_id} in the vault", path=vault.path)
        check_remove(state, cube_id, user, vault.path)
        gone = [i for i, m in enumerate(state.memories) if state.origin.get(m.id) == cube_id]
        ids = [state.memories[i].id for i in gone]
        _drop(state, gone)
        del state.cubes[cube_id]
        state.archived = [m for m in state.archived
                          if state.archived_origin.get(m.id) != cube_id]
        state.archived_origin = {i: c for i, c in state.archived_origin.items() if c != cube_id}
        vault.commit(state)
    vault.log(user, "rm", cube_id=cube_id, memory_ids=ids)
    return len(ids)


def gc(vault: Vault, *, user: str, now: datetime | None = None) -> int:
    """Remove expired memories (current and history); how many were removed."""
    now = now or datetime.now(timezone.utc)
    with vault.lock():
        state = vault.state()
        gone = [i for i, m in enumerate(state.memories) if m.expired(now)]
        ids = [state.memories[i].id for i in gone]
        before = len(state.history)
        state.history = [m for m in state.history if not m.expired(now)]
        if gone or before != len(state.history):
            _drop(state, gone)
            vault.commit(state)
    vault.log(user, "gc", memory_ids=ids, detail={"history_removed": before - len(state.history)})
    return len(ids) + before - len(state.history)


def _drop(state: State, rows: Sequence[int]) -> None:
    drop = set(rows)
    keep = [i for i in range(len(state.memories)) if i not in drop]
    for i in drop:
        state.origin.pop(state.memories[i].id, None)
    state.vectors = state.vectors[keep] if keep else np.zeros((0, 0), np.float32)
    state.memories = [state.memories[i] for i in keep]


# retrieval over the vault lives in its own module; imported here for callers of vault.search
from memos_cli.vault_search import answer, search  # noqa: E402, F401
