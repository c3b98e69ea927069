"""The vault (MemVault, MemOS paper §5.4): the store of installed cubes and their memories, in
a directory or in object storage (``memos_cli.objstore.place``); spec §16.

Layout (``MEMOS_HOME/vault`` by default)::

    vault/
      lance/           a LanceDB database with one table, ``vault`` (see ``rows``): the
                       current memories with their vectors, superseded versions, archived
                       memories, installed cubes and the vault's settings, one row each
      audit.jsonl      append-only access log: time, user, operation, cube id, memory ids,
                       and the table version each change made or each read saw (in a
                       bucket: ``audit/``, one object per record; ``memos_cli.vault.audit``)
      usage/           usage indicators (``memos_cli.scheduler.usage``)
      roles.json       roles (spec §14)
      CHECKOUT         present while ``memos vault checkout VERSION`` pins reads (read-only)

Every change (load, rm, gc, share, archive, restore) is one Lance commit: a ``merge_insert``
on the row key that inserts, replaces and deletes only the rows the change touches. Lance
commits are atomic and versioned, so a process killed at any point leaves the table at the
version before the change or the one after, and earlier versions stay readable until
``memos vault compact`` prunes them. Writers take no lock: a change is decided and committed
on the version it read, and decided again when Lance refuses the commit because another
writer committed first (``Vault.change``). A vault of the older generation layout is converted
once by ``memos vault migrate`` (``memos_cli.vault.migrate``).
"""

from memos_cli.vault.layout import VAULT_VERSION
from memos_cli.vault.load import _drop, gc, load, remove
from memos_cli.vault.merge import CONFLICT_POLICIES, LoadReport, merge
from memos_cli.vault.search import answer, search
from memos_cli.vault.store import (
    AUDIT,
    DB_DIR,
    VAULT_FORMAT,
    State,
    Vault,
    default_path,
)

__all__ = ["AUDIT", "CONFLICT_POLICIES", "DB_DIR", "VAULT_FORMAT", "VAULT_VERSION",
           "LoadReport", "State", "Vault", "_drop", "answer", "default_path", "gc", "load",
           "merge", "remove", "search"]
