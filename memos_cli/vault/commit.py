"""Changing the vault: optimistic Lance commits. A change reads the vault at one version,
decides, and commits on that version (:func:`apply`); when another writer committed first,
Lance refuses the commit and :func:`change` decides again on the new version. No lock file:
writers on other machines and on object storage take part the same way (spec §16.3)."""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from memos_cli.errors import UsageError
from memos_cli.governance import seal
from memos_cli.pausepoints import pause
from memos_cli.vault import rows as R
from memos_cli.vault.layout import DB_DIR, SEALED_VERSION, TABLE, VAULT_FORMAT, VAULT_VERSION

if TYPE_CHECKING:
    from memos_cli.vault.store import Vault

T = TypeVar("T")
#: A change that finds the vault changed under it is decided again this many times at most.
ATTEMPTS = 8
#: A filter or ``IN`` list names at most this many keys at a time.
_BATCH = 2000


class Conflict(Exception):
    """Another writer committed since this change read the vault (Lance refused the commit
    made on the stale version); :func:`change` decides the change again."""


def change(vault: Vault, body: Callable[[], T], *, what: str = "change") -> T:
    """Run ``body`` (read the vault, decide, :func:`apply`) as one optimistic transaction:
    every read in it sees the version first read, and the commit is made on that version.
    When another writer committed in between, Lance refuses the commit (every change
    rewrites the vault's settings row, so any two changes conflict) and ``body`` runs
    again on the new version, up to :data:`ATTEMPTS` times with a random back-off of at
    most a second. No lock: writers on other machines and on object storage take part
    the same way. Returns what ``body`` returned.

    Raises:
        UsageError: the vault is checked out (read-only), or it kept changing for
            :data:`ATTEMPTS` attempts (busy).
    """
    if vault.pinned:
        raise UsageError(f"the vault is checked out at version {vault.at} (read-only); "
                         "`memos vault checkout latest` to change it", path=vault.path)
    for attempt in range(ATTEMPTS):
        vault._tbl, vault._frozen, vault.attempts = None, True, attempt + 1
        try:
            pause("vault:read")
            return body()
        except Conflict:
            time.sleep(random.uniform(0.02, min(1.0, 0.05 * 2 ** attempt)))
        finally:
            vault._frozen = False
            vault._tbl = None
    raise UsageError(f"the vault kept changing under this {what} ({ATTEMPTS} attempts); "
                     "try again", path=vault.path)


def apply(vault: Vault, delta: R.Delta, *, dim: int | None = None) -> int:
    """Write ``delta`` as one Lance commit on the version read (a ``merge_insert`` on
    ``key``: rows inserted or replaced, deleted keys removed in the same commit); the new
    version. A process killed before the commit leaves the vault as it was, after it as
    changed; a table that does not exist yet is created by this commit.

    Raises:
        Conflict: another writer committed since the version read (inside
            :func:`change`, which then decides again).
    """
    tbl = vault.table()
    meta = vault.meta() if tbl is not None else {}
    sealer = seal.sealer()
    sealed = sealer is not None if tbl is None else "seal" in tbl.schema.names
    if tbl is not None and sealer is not None and not sealed:
        _add_seal_column(vault, tbl)
        raise Conflict("the table gained its seal column")  # decided again on it
    meta = {**meta, "format": VAULT_FORMAT,
            "version": SEALED_VERSION if sealed else VAULT_VERSION, **delta.meta}
    if sealed and sealer is None:
        logging.getLogger("memos").warning(
            "warning: this change to %s is not sealed (no signing key: memos config set key "
            "KEY); readers with vault_seals = require will refuse its rows", vault.path)
    if tbl is None:
        if dim is None:
            raise UsageError("a new vault needs the vector dimension of its embedder")
        rows, _ = R.build(delta, dim, {}, 1, meta, sealed=sealed, sealer=sealer)
        _create(vault, rows)
    else:
        width = tbl.schema.field("vector").type.list_size
        written = [R.memory_key(m.id) for m, _, _ in delta.memories] + \
            [R.history_key(m) for m in delta.history] + \
            [R.archived_key(m.id) for m, _ in delta.archived] + \
            [R.cube_key(c) for c in delta.cubes] + [R.META_KEY]
        seqs: dict[str, int] = {}
        for n in range(0, len(written), _BATCH):
            t = vault._rows(f"key IN ({R.quoted(written[n:n + _BATCH])})", ["key", "seq"])
            seqs.update(zip(t.column("key").to_pylist(), t.column("seq").to_pylist(),
                            strict=True))
        rows, _ = R.build(delta, width, seqs, int(meta.get("next_seq", 1)), meta,
                          sealed=sealed, sealer=sealer)
        gone = sorted(delta.delete - set(written))
        _join_memory(rows)
        ds = tbl.to_lance()  # at the version read: Lance checks what was committed since
        q = ds.merge_insert("key").when_matched_update_all().when_not_matched_insert_all()
        if gone:
            q = q.when_not_matched_by_source_delete(f"key IN ({R.quoted(gone)})")
        pause("vault:before-commit")
        try:
            q.conflict_retries(0).execute(rows)
        except OSError as e:
            if "concurrent writer" in str(e).lower() or "conflict" in str(e).lower():
                raise Conflict(str(e).splitlines()[0]) from e
            raise
        made = int(ds.version)
    pause("vault:after-commit")
    vault._tbl = None
    version = made if tbl is not None else int(vault.version or 0)
    _refresh_indexes(vault)
    return version


def _add_seal_column(vault: Vault, tbl: Any) -> None:
    """Give the table its ``seal`` column (format version 3, spec §16.5) at the first change
    of a writer with a signing key: one Lance commit that adds the column, empty on every row
    (rows written before stay unsealed until ``memos vault seal``); the change is then
    decided again on the table as it is after this commit. Two writers adding it at once:
    the second finds it there."""
    try:
        tbl.add_columns({"seal": "''"})
    except Exception as e:  # lancedb raises bare errors; another writer may have added it
        vault._tbl = None
        again = vault.table()
        if again is None or "seal" not in again.schema.names:
            raise UsageError(f"cannot add the seal column to the vault: "
                             f"{str(e).splitlines()[0][:200]}", path=vault.path) from e
    vault._tbl = None


#: The most memory Lance's merge join may take, whatever the change's size (bytes).
JOIN_MEMORY_CAP = 8 * 2**30
#: The pool size the user gave Lance, if any (left alone).
_USER_POOL = os.environ.get("LANCE_MEM_POOL_SIZE")


def _join_memory(rows: Any) -> None:
    """Let Lance's merge join hold the change: it hashes every written row in memory and
    cannot spill, and its default pool (150 MB per CPU) refuses a load of about 40,000
    memories. ``LANCE_MEM_POOL_SIZE`` (read by Lance for each operation) is raised to sixteen
    times the rows' size, at least 1 GiB and at most :data:`JOIN_MEMORY_CAP`; a value the
    user set is left alone."""
    if _USER_POOL is not None:
        return
    os.environ["LANCE_MEM_POOL_SIZE"] = str(min(JOIN_MEMORY_CAP,
                                                max(2**30, 16 * int(rows.nbytes))))


def _create(vault: Vault, rows: Any) -> None:
    """The first commit: the table with its indexes. Locally it is built in a hidden
    directory of its own and renamed into place, so it appears whole or not at all (a
    second writer's rename then fails: :class:`Conflict`). In a bucket, where nothing
    renames, LanceDB creates it (``mode="create"``: refused when another writer did
    first) and the indexes follow as later commits."""
    import shutil
    import uuid

    from lancedb.index import BTree

    def indexes(tbl: Any) -> None:
        for col in ("key", "content_hash", "kind"):
            tbl.create_index(col, config=BTree())
        create_fts(tbl)

    local = vault.place.local
    if local is None:
        try:
            pause("vault:before-commit")
            tbl = vault.place.connect(DB_DIR).create_table(TABLE, rows, mode="create")
        except (OSError, ValueError) as e:
            if "already exists" in str(e).lower():
                raise Conflict(str(e).splitlines()[0]) from e
            raise
        indexes(tbl)
        return
    local.mkdir(parents=True, exist_ok=True)
    for old in local.glob(f".{DB_DIR}-new-*.tmp"):  # left by killed first loads
        if time.time() - old.stat().st_mtime > 3600:
            shutil.rmtree(old, ignore_errors=True)
    tmp = local / f".{DB_DIR}-new-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    try:
        import lancedb

        indexes(lancedb.connect(str(tmp)).create_table(TABLE, rows))
        pause("vault:before-commit")
        try:
            os.rename(tmp, local / DB_DIR)
        except OSError as e:  # another first load renamed its table in first
            if (local / DB_DIR).is_dir():
                raise Conflict("the vault was created meanwhile") from e
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _refresh_indexes(vault: Vault) -> None:
    """Add the rows of the last change to the table's indexes as new index segments
    (pylance's ``optimize_indices`` with ``num_indices_to_merge=0``: work in proportion to
    the rows added, not to the vault), so that search does not scan them one by one.
    ``memos vault compact`` merges the segments. The change is committed already; a
    failure here only leaves that to ``compact``, and says so."""
    tbl = vault.table()
    try:
        if tbl is not None:
            tbl.to_lance().optimize.optimize_indices(num_indices_to_merge=0)
    except Exception as e:  # the commit stands; only the indexes lag
        logging.getLogger("memos").warning(
            "note: the vault's indexes were not brought up to date (%s); searches stay "
            "correct but slower until `memos vault compact`", str(e).splitlines()[0][:200])


def create_fts(tbl: Any) -> None:
    from lancedb.index import FTS

    tbl.create_index("text", config=FTS(with_position=False))

