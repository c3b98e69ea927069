"""``memos vault migrate``: a vault of the generation layout (memos up to 0.1: ``CURRENT``
naming ``gen-NNNNNN/`` with ``memories.arrow``, ``history.arrow``, ``archive.arrow``, a LanceDB
index and ``vault.json``) becomes the Lance table, once and atomically.

The table is built in a hidden temporary directory inside the vault and renamed to
``lance/`` in one step; only then are the generation directories removed. A kill before the
rename leaves the old vault untouched (the temporary is removed by the next attempt); a kill
after it leaves the new vault, and the old generations are removed the next time it opens.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from memos_cli.cube.index import Index
from memos_cli.cube.memories import read_memories
from memos_cli.errors import FormatError, UsageError
from memos_cli.lockfile import exclusive
from memos_cli.pausepoints import pause
from memos_cli.vault.layout import DB_DIR, LEGACY_CURRENT, remove_legacy
from memos_cli.vault.rows import diff
from memos_cli.vault.store import State, Vault

LEGACY_STATE = "vault.json"
_TMP = ".lance-migrate.tmp"


def read_legacy(path: Path) -> State:
    """The live generation of a generation-layout vault, whole.

    Raises:
        FormatError: ``CURRENT`` names no generation, or its files are unreadable.
    """
    cur = path / LEGACY_CURRENT
    name = cur.read_text("utf-8").strip()
    gen = path / name
    if not name.startswith("gen-") or "/" in name or not (gen / LEGACY_STATE).is_file():
        raise FormatError(f"CURRENT names {name!r}, which is not a generation of this vault",
                          path=cur)
    try:
        meta = json.loads((gen / LEGACY_STATE).read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise FormatError(f"unreadable vault state: {e}", path=gen / LEGACY_STATE) from e
    if meta.get("format") != "memos-vault" or meta.get("version") != 1:
        raise FormatError("not a memos-vault 1 state", path=gen / LEGACY_STATE)
    memories = read_memories(gen / "memories.arrow")
    history = read_memories(gen / "history.arrow", unique_ids=False)
    vectors = (Index(gen / "index").vectors([m.id for m in memories]) if memories
               else np.zeros((0, 0), np.float32))
    archived = read_memories(gen / "archive.arrow") if (gen / "archive.arrow").is_file() \
        else []
    return State(memories, history, vectors, meta["cubes"], meta["origin"],
                 meta.get("embedding"), archived, dict(meta.get("archived", {})))


def migrate(vault: Vault, *, user: str) -> dict[str, Any]:
    """Migrate ``vault`` to the Lance table; what was carried over, by count.

    Raises:
        UsageError: the vault is not of the generation layout (nothing to do).
        FormatError: its live generation is unreadable.
    """
    if not vault.legacy():
        raise UsageError("this vault needs no migration (it is a Lance table already, or "
                         "empty)", path=vault.path)

    path = vault.place.local
    assert path is not None  # legacy() is true of local directories only
    # the generation layout's own writer lock: an older memos on the same vault waits out
    with exclusive(path, "another memos command is changing this vault"):
        state = read_legacy(path)
        tmp = path / _TMP
        shutil.rmtree(tmp, ignore_errors=True)  # left by a killed attempt
        tmp.mkdir()
        try:
            staging = Vault.staging(tmp)
            delta = diff(State(), state)
            dim = int(state.vectors.shape[1]) if state.vectors.size else 384
            made = staging.apply(delta, dim=dim)
            pause("migrate:before-rename")
            os.rename(tmp / DB_DIR, path / DB_DIR)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        remove_legacy(path)
        vault._tbl = None
    counts = {"memories": len(state.memories), "history": len(state.history),
              "archived": len(state.archived), "cubes": len(state.cubes),
              "version": vault.version}
    vault.log(user, "migrate", detail=counts, version=made)
    return counts
