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

from memos_cli.vault.load import _drop, gc, load, remove
from memos_cli.vault.merge import CONFLICT_POLICIES, LoadReport, merge
from memos_cli.vault.search import answer, search
from memos_cli.vault.store import (
    ARCHIVE,
    AUDIT,
    CURRENT,
    HISTORY,
    STATE,
    VAULT_FORMAT,
    VAULT_VERSION,
    State,
    Vault,
    default_path,
)

__all__ = ["ARCHIVE", "AUDIT", "CONFLICT_POLICIES", "CURRENT", "HISTORY", "STATE",
           "VAULT_FORMAT", "VAULT_VERSION", "LoadReport", "State", "Vault", "_drop", "answer",
           "default_path", "gc", "load", "merge", "remove", "search"]
