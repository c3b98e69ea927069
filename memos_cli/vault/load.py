"""MemLoader and MemGovernance on the vault: install a cube (``load``), remove one
(``remove``), drop expired memories (``gc``); each is one atomic commit and one access-log
record."""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from memos_cli.cube import open_cube, verify
from memos_cli.errors import EmbedderMismatchError, UsageError
from memos_cli.governance.access import check_remove, check_updates
from memos_cli.governance.roles import Roles
from memos_cli.governance.trust import check_trust
from memos_cli.lifecycle.evolve import Ledger
from memos_cli.lifecycle.pack import pack
from memos_cli.memory import format_time
from memos_cli.principal import check_principal
from memos_cli.sources import Defaults
from memos_cli.vault.evolve import check_supersede, ledger_for
from memos_cli.vault.merge import LoadReport, merge
from memos_cli.vault.store import State, Vault


def load(vault: Vault, source: str | Path, *, user: str, embedder: Any = None,
         on_conflict: str = "version", allow_unsigned: bool = False,
         now: datetime | None = None, origin: dict[str, Any] | None = None,
         owners: dict[str, str] | None = None, supersede: bool = True,
         dry_run: bool = False) -> LoadReport:
    """Install a cube, or a file of another memory system (imported on the way), into the vault.

    A cube is verified first (manifest, digests, index) and its signature checked against the
    trust store (:func:`memos_cli.governance.trust.check_trust`); files from other systems carry no
    signature and are recorded as ``import``. ``origin`` (a cube pulled from a registry,
    :func:`memos_cli.memstore.pull.fetched`) is recorded as its source, for ``memos outdated``.
    The cube's embedder must be the vault's. Then
    :func:`merge`, one atomic commit and one access-log record.

    ``owners`` maps the owners the cube records to owners in this vault (``{"ann": "bob"}``;
    ``"*"`` maps every owner): memory moved to a machine where its owner is another user, or
    handed over. The mapping is recorded in the access log; memories keep their ids and
    content hashes.

    With ``supersede`` (the default) each new memory is decided against the vault's current
    memories of its owner (spec §4.6): a restatement is not installed, an update supersedes
    the memory it revises (which ``user`` must be allowed to change). With ``dry_run`` the
    decisions are made and reported, and nothing is written or logged.

    Raises:
        CubeNotFoundError, SourceError, FormatError, IntegrityError, SignatureError,
        EmbedderMismatchError, UsageError (no plaintext tier, bad policy).
    """
    src = Path(source)
    notes: list[str] = []
    with contextlib.ExitStack() as stack:
        if (src / "manifest.json").is_file():
            cube = open_cube(src)
            verify(cube)
            signer = check_trust(src, allow_unsigned=allow_unsigned)
        else:
            if embedder is None:
                raise UsageError("importing a file of another memory system needs the embedder")

            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="memos-load-")))
            # a fixed name: the source's own may hold characters LanceDB cannot take
            # decided once, below, against the vault and the file's own memories together
            notes = pack([src], tmp / "import.memcube", embedder=embedder, supersede=False,
                         defaults=Defaults(now=now or datetime.now(timezone.utc),
                                           owner=user)).notes
            cube, signer = open_cube(tmp / "import.memcube"), "import"
        cube.require_plaintext()
        mems = [m if m.owner is None or not owners or not ({m.owner, "*"} & set(owners))
                else dataclasses.replace(m, owner=check_principal(
                    owners.get(m.owner) or owners["*"])) for m in cube.memories]
        vectors = cube.index().vectors([m.id for m in mems])
        cube_id = cube.manifest.cube_id

        def install() -> tuple[LoadReport, int]:
            state = vault.part([m.id for m in mems] + [m.parent_id for m in mems
                                                         if m.parent_id],
                               [m.content_hash for m in mems])
            if state.embedding is not None and cube.manifest.embedding is not None and (
                    state.embedding["fingerprint"] != cube.manifest.embedding["fingerprint"]):
                raise EmbedderMismatchError(
                    f"cube was indexed with {cube.manifest.embedding['model']}, the vault "
                    f"with {state.embedding['model']}; run `memos reindex` on the cube "
                    "first", path=cube.path)
            check_updates(state, mems, user, on_conflict, cube.path)
            ledger, near = ledger_for(vault, mems, vectors) if supersede else (None, None)
            delta, report = merge(state, cube_id, mems, vectors, on_conflict=on_conflict,
                                  now=now, ledger=ledger,
                                  rows=near.row if near is not None else None)
            if ledger is not None and ledger.changed:
                check_supersede(vault, [ledger.memories[i] for i in ledger.changed], user,
                                cube.path)
            report.name, report.signer = cube.manifest.name, signer
            report.dangling = sorted(set(Roles.load(vault.place).unknown(
                [r for m in mems for r in m.readers])))
            prev = state.cubes.get(cube_id, {})
            delta.cubes[cube_id] = {
                "name": cube.manifest.name, "description": cube.manifest.description,
                "installed_at": format_time(now or datetime.now(timezone.utc)),
                "installed_by": user, "signer": signer,
                "source": origin["ref"] if origin else str(src.resolve()),
                **({"origin": origin} if origin else {}),
                "format_version": cube.manifest.format_version,
                "loads": int(prev.get("loads", 0)) + 1}
            if state.embedding is None:
                delta.meta["embedding"] = cube.manifest.embedding
            dim = int(vectors.shape[1]) if vectors.size else None
            if dry_run:
                return report, 0
            return report, vault.apply(delta, dim=dim)

        report, made = vault.change(install, what="load")
        report.notes = notes
        if dry_run:
            return report
        installed = [*report.added, *report.versioned, *report.replaced, *report.updates]
    vault.log(user, "load", cube_id=cube_id, memory_ids=installed, version=made,
              detail={"signer": signer, **report.to_dict(),
                      **({"owners_mapped": owners} if owners else {}),
                      **({"attempts": vault.attempts} if vault.attempts > 1 else {})})
    return report


def remove(vault: Vault, cube_id: str, *, user: str) -> int:
    """Remove an installed cube and its current memories (their history stays); the number of
    memories removed.

    Raises:
        UsageError: no such cube, or ``user`` did not install it.
    """
    def drop_cube() -> tuple[list[str], int]:
        state = vault.state()
        info = state.cubes.get(cube_id)
        if info is None:
            raise UsageError(f"no cube {cube_id} in the vault", path=vault.path)
        check_remove(state, cube_id, user, vault.path)
        gone = [i for i, m in enumerate(state.memories) if state.origin.get(m.id) == cube_id]
        ids = [state.memories[i].id for i in gone]
        _splice(state, ids)
        _drop(state, gone)
        del state.cubes[cube_id]
        state.archived = [m for m in state.archived
                          if state.archived_origin.get(m.id) != cube_id]
        state.archived_origin = {i: c for i, c in state.archived_origin.items() if c != cube_id}
        return ids, vault.commit(state)

    ids, made = vault.change(drop_cube, what="rm")
    vault.log(user, "rm", cube_id=cube_id, memory_ids=ids, version=made)
    return len(ids)


def gc(vault: Vault, *, user: str, now: datetime | None = None) -> int:
    """Remove expired memories (current and history); how many were removed."""
    now = now or datetime.now(timezone.utc)

    def expire() -> tuple[list[str], int, int | None]:
        state = vault.state()
        gone = [i for i, m in enumerate(state.memories) if m.expired(now)]
        ids = [state.memories[i].id for i in gone]
        before = len(state.history)
        state.history = [m for m in state.history if not m.expired(now)]
        dropped = before - len(state.history)
        if not gone and not dropped:
            return ids, 0, None
        _drop(state, gone)
        return ids, dropped, vault.commit(state)

    ids, history_removed, made = vault.change(expire, what="gc")
    vault.log(user, "gc", memory_ids=ids, detail={"history_removed": history_removed},
              version=made)
    return len(ids) + history_removed


def _splice(state: State, ids: Sequence[str]) -> None:
    """Mend the supersession chains (spec §4.6) that run through memories about to be
    removed: the memory before a removed one is superseded by the one after it, or is current
    again."""
    ledger = Ledger(state.memories)
    ledger.drop(ids)
    state.memories = [ledger.memories.get(m.id, m) for m in state.memories]


def _drop(state: State, rows: Sequence[int]) -> None:
    drop = set(rows)
    keep = [i for i in range(len(state.memories)) if i not in drop]
    for i in drop:
        state.origin.pop(state.memories[i].id, None)
    state.vectors = state.vectors[keep] if keep else np.zeros((0, 0), np.float32)
    state.memories = [state.memories[i] for i in keep]

