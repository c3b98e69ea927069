"""The vault's store: one Lance table (:mod:`memos_cli.vault.rows`) whose every change is one
atomic, versioned Lance commit, read whole (``State``) or in part, as it is now or as it was
at an earlier version. See :mod:`memos_cli.vault` for the layout."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from memos_cli.config import default_vault
from memos_cli.errors import FormatError, RemoteError
from memos_cli.governance import seal
from memos_cli.governance.roles import active, use_vault
from memos_cli.memory import Memory, format_time
from memos_cli.objstore.place import Place
from memos_cli.vault import audit, commit
from memos_cli.vault import rows as R
from memos_cli.vault.audit import AUDIT as AUDIT
from memos_cli.vault.layout import (
    CHECKOUT,
    DB_DIR,
    READ_VERSIONS,
    TABLE,
    VAULT_FORMAT,
    remove_legacy,
)

T = TypeVar("T")

#: A filter or ``IN`` list names at most this many keys at a time.
_BATCH = 2000


def default_path() -> str | Path:
    """``$MEMOS_VAULT``, else the config file's ``vault``, else ``MEMOS_HOME/vault`` (a path,
    or an object-storage URI as given): :func:`memos_cli.config.default_vault`."""
    return default_vault()


@dataclass
class State:
    """The vault (or part of it) read into memory."""

    memories: list[Memory] = field(default_factory=list)
    history: list[Memory] = field(default_factory=list)
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    cubes: dict[str, dict[str, Any]] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)  # memory id -> cube id
    embedding: dict[str, Any] | None = None
    archived: list[Memory] = field(default_factory=list)
    archived_origin: dict[str, str] = field(default_factory=dict)  # archived id -> cube id


class Vault:
    """A vault, in a directory or in object storage (``path`` a URI). Reading never changes
    it; changes go through :func:`change` and :func:`apply` (one Lance commit each).
    ``version`` reads the vault as it was at that Lance version; so does a ``memos vault
    checkout`` pin, and either refuses changes.

    Raises (from the methods):
        FormatError: a table that is missing columns or unreadable; a layout of an older memos
            (run ``memos vault migrate``); an unreadable ``CHECKOUT``.
        UsageError: a change to a vault read at an earlier version, or one that kept meeting
            other writers' commits.
        RemoteError: a vault in object storage that cannot be reached or refuses.
    """

    def __init__(self, path: str | Path | None = None, *, version: int | None = None) -> None:
        self.place = Place(path if path is not None else default_path())
        #: the directory, or the URI of a vault in object storage (messages name it)
        self.path: Path | str = self.place.local if self.place.local is not None \
            else self.place.key

        use_vault(self.place)  # access checks use this vault's roles
        active()  # read now: a damaged role table refuses every command, reads and writes
        self.place.check_regular(AUDIT)  # before a change, which the log would then miss
        pin = None if version is not None else self.place.read_text(CHECKOUT)
        self.pinned = version is not None or pin is not None
        if version is None and pin is not None and not re.fullmatch(r"[0-9]{1,15}",
                                                                    pin.strip()):
            raise FormatError("CHECKOUT holds no version number; `memos vault checkout "
                              "latest` removes it", path=f"{self.path}/{CHECKOUT}")
        self.at = version if version is not None else (int(pin.strip()) if pin else None)
        self._tbl: Any = None
        self._ds: Any = None
        self._frozen = False  # inside change(): every read sees the version first read
        self.attempts = 0  # how many times the last change() ran its body
        self._seals: seal.Checker | None = None

    @classmethod
    def staging(cls, directory: Path) -> Vault:
        """A vault in ``directory`` that is being built to replace another (a migration):
        access checks keep using the vault being replaced."""
        v = cls.__new__(cls)
        v.place, v.path, v.pinned, v.at = Place(directory), directory, False, None
        v._tbl, v._ds, v._frozen, v.attempts, v._seals = None, None, False, 0, None
        return v

    # -- the table ----------------------------------------------------------------------------
    def legacy(self) -> bool:
        """Whether this is a vault of the generation layout (``CURRENT``), not migrated. The
        old layout's files left by a migration killed after its rename are removed here."""
        if self.place.local is None or not (self.place.local / "CURRENT").is_file():
            return False
        if (self.place.local / DB_DIR).is_dir():
            remove_legacy(self.place.local)
            return False
        return True

    def table(self) -> Any | None:
        """The Lance table at the version read, else at its latest version, which another
        process may have made since the last call (``None`` for a new vault)."""
        if self._tbl is not None:
            if self.at is None and not self._frozen:
                try:
                    self._tbl.checkout_latest()
                except Exception as e:
                    raise FormatError(f"cannot read the vault table: "
                                      f"{str(e).splitlines()[0]}", path=self._db) from e
            return self._tbl
        if self.legacy():
            raise FormatError("vault has the layout of an older memos; run `memos vault "
                              "migrate` once (it keeps everything)", path=self.path)
        if self.place.local is not None and not (self.place.local / DB_DIR).is_dir():
            return None
        try:
            db = self.place.connect(DB_DIR)
            if self.place.remote and TABLE not in db.table_names():
                return None
            tbl = db.open_table(TABLE)
            if self.at is not None:
                tbl.checkout(self.at)
        except Exception as e:  # lancedb raises bare ValueError/RuntimeError/OSError
            if self.place.remote:
                raise RemoteError(f"store not reachable or refusing while opening the vault "
                                  f"({str(e).strip().splitlines()[0][:300]})",
                                  path=self._db) from e
            raise FormatError(f"cannot open the vault table: {str(e).splitlines()[0]}",
                              path=self._db) from e
        self._tbl = tbl
        return tbl

    def exists(self) -> bool:
        """Whether there is a vault here (its directory, or in a bucket its table or log)."""
        if self.place.local is not None:
            return self.place.local.is_dir()
        return self.place.exists(DB_DIR) or self.place.exists("audit")

    @property
    def _db(self) -> str:
        return self.place.db(DB_DIR)

    def dataset(self) -> Any:
        """The table as a pylance dataset at the version :meth:`table` reads, kept between
        calls while the version stays (its index caches go with it: a dataset opened per
        search read the vector index from disk each time)."""
        tbl = self.table()
        if tbl is None:
            return None
        if self._ds is None or self._ds.version != tbl.version:
            self._ds = tbl.to_lance()
        return self._ds

    @property
    def version(self) -> int | None:
        """The Lance version read (``None`` for a new vault)."""
        tbl = self.table()
        return None if tbl is None else int(tbl.version)

    @property
    def seals(self) -> seal.Checker:
        """How this command checks rows' seals (:func:`memos_cli.governance.seal.checker`)."""
        if self._seals is None:
            self._seals = seal.checker()
        return self._seals

    def sealed_columns(self, tbl: Any) -> list[str]:
        """The columns a row's seal is checked over, with ``seal`` where the table has it."""
        return list(seal.SEALED) + (["seal"] if "seal" in tbl.schema.names else [])

    def _rows(self, where: str | None, columns: Sequence[str]) -> Any:
        """Rows of the table (an Arrow table with at least ``columns``). Rows read for their
        ``record`` or ``cube_id`` have their seals checked (spec §16.5).

        Raises:
            FormatError: unreadable, or a row whose seal refuses it.
        """
        tbl = self.table()
        if tbl is None:
            return None
        cols = list(columns)
        check = bool({"record", "cube_id"} & set(cols)) and self.seals.active
        if check:
            cols += [c for c in self.sealed_columns(tbl) if c not in cols]
        try:
            q = tbl.search().select(cols)
            if where is not None:
                q = q.where(where)
            t = q.limit(None).to_arrow()
        except Exception as e:
            raise FormatError(f"vault table is unreadable: {str(e).splitlines()[0]}",
                              path=self._db) from e
        if check:
            seal.check_table(t, self.seals, self._db)
        return t

    def meta(self) -> dict[str, Any]:
        """The vault entry (format, embedding, next_seq); empty for a new vault."""
        t = self._rows(f"key = '{R.META_KEY}'", ["record"])
        if t is None or t.num_rows == 0:
            return {}
        return self._meta_of(t.column("record")[0].as_py())

    def _meta_of(self, record: str) -> dict[str, Any]:
        data = R.object_of(record, self._db, "vault entry")
        if data.get("format") != VAULT_FORMAT or data.get("version") not in READ_VERSIONS:
            raise FormatError(f"not a {VAULT_FORMAT} table of version "
                              f"{' or '.join(map(str, READ_VERSIONS))}", path=self._db)
        return data

    # -- reading ------------------------------------------------------------------------------
    def state(self, *, vectors: bool = True) -> State:
        """Everything, in install order (an empty state for a new vault). Without ``vectors``
        the embeddings are not read (``State.vectors`` stays empty)."""
        cols = ["key", "kind", "id", "cube_id", "seq", "record"] + (["vector"] if vectors else [])
        return self._state(self._rows(None, cols), vectors)

    def part(self, ids: Sequence[str], hashes: Sequence[str]) -> State:
        """The current memories whose id is in ``ids`` or whose content hash is in ``hashes``,
        with every installed cube and the embedding: what a load needs to decide, read by
        key and hash (the table's scalar indexes), not by scanning the vault."""
        cols = ["key", "kind", "id", "cube_id", "seq", "record"]
        found = []
        keys = [R.memory_key(i) for i in dict.fromkeys(ids)]
        for n in range(0, len(keys), _BATCH):
            found.append(self._rows(f"key IN ({R.quoted(keys[n:n + _BATCH])})", cols))
        hs = list(dict.fromkeys(hashes))
        for n in range(0, len(hs), _BATCH):
            found.append(self._rows(f"kind = '{R.MEMORY}' AND content_hash IN "
                                    f"({R.quoted(hs[n:n + _BATCH])})", cols))
        found.append(self._rows(f"kind IN ('{R.CUBE}', '{R.META}')", cols))
        import pyarrow as pa

        parts = [t for t in found if t is not None]
        table = pa.concat_tables(parts) if parts else None
        state = self._state(table, False)
        unique: dict[str, Memory] = {}
        for m in state.memories:
            unique.setdefault(m.id, m)
        state.memories = list(unique.values())
        return state

    def linked(self, ids: Sequence[str]) -> State:
        """The memories whose id is in ``ids`` (current, superseded and archived) with their
        earlier versions, read by id rather than by scanning the vault: what one memory's
        history needs (:func:`memos_cli.api.reading.history`)."""
        cols = ["key", "kind", "id", "cube_id", "seq", "record"]
        kinds = f"'{R.MEMORY}', '{R.HISTORY}', '{R.ARCHIVED}'"
        wanted = list(dict.fromkeys(ids))
        found = [self._rows(f"kind IN ({kinds}) AND id IN ({R.quoted(wanted[n:n + _BATCH])})",
                            cols) for n in range(0, len(wanted), _BATCH)]
        import pyarrow as pa

        parts = [t for t in found if t is not None]
        return self._state(pa.concat_tables(parts) if parts else None, False)

    def memories(self, ids: Sequence[str],
                 cubes: dict[str, str] | None = None) -> dict[str, Memory]:
        """The current memories of ``ids`` that exist, by id; with ``cubes``, their cube ids
        are put there too (both read from the same checked rows)."""
        out: dict[str, Memory] = {}
        keys = [R.memory_key(i) for i in dict.fromkeys(ids)]
        where = self._db  # named in errors; computed once, not once a row
        for n in range(0, len(keys), _BATCH):
            t = self._rows(f"key IN ({R.quoted(keys[n:n + _BATCH])})", ["record", "cube_id"])
            if t is None:
                continue
            for rec, cube in zip(t.column("record").to_pylist(),
                                 t.column("cube_id").to_pylist(), strict=True):
                m = R.memory_of(rec, where)
                out[m.id] = m
                if cubes is not None:
                    cubes[m.id] = cube
        return out

    def _state(self, table: Any, vectors: bool) -> State:
        state = State()
        if table is None or table.num_rows == 0:
            return state
        order = np.argsort(np.asarray(table.column("seq").to_numpy()), kind="stable")
        kinds = table.column("kind").to_pylist()
        records = table.column("record").to_pylist()
        cubes = table.column("cube_id").to_pylist()
        vec_rows: list[int] = []
        where = self._db
        for i in order.tolist():
            kind = kinds[i]
            if kind == R.META:
                state.embedding = self._meta_of(records[i]).get("embedding")
            elif kind == R.CUBE:
                state.cubes[cubes[i]] = R.object_of(records[i], where, "cube")
            elif kind == R.MEMORY:
                m = R.memory_of(records[i], where)
                state.memories.append(m)
                state.origin[m.id] = cubes[i]
                vec_rows.append(i)
            elif kind == R.HISTORY:
                state.history.append(R.memory_of(records[i], where))
            elif kind == R.ARCHIVED:
                m = R.memory_of(records[i], where)
                state.archived.append(m)
                state.archived_origin[m.id] = cubes[i]
            else:
                raise FormatError(f"vault table holds a row of unknown kind {kind!r}",
                                  path=where)
        if vectors and vec_rows:
            col = table.column("vector").combine_chunks()
            matrix = col.flatten().to_numpy().reshape(len(col), col.type.list_size)
            state.vectors = matrix[vec_rows].astype(np.float32)
        return state

    # -- writing (memos_cli.vault.commit) -------------------------------------------------------
    def change(self, body: Callable[[], T], *, what: str = "change") -> T:
        """Run ``body`` (read, decide, :func:`apply`) as one optimistic transaction:
        :func:`memos_cli.vault.commit.change`."""
        return commit.change(self, body, what=what)

    def apply(self, delta: R.Delta, *, dim: int | None = None) -> int:
        """Write ``delta`` as one Lance commit on the version read; the new version:
        :func:`memos_cli.vault.commit.apply`."""
        return commit.apply(self, delta, dim=dim)

    def commit(self, state: State) -> int:
        """Make the vault hold exactly ``state`` (read in the same :func:`change`), writing
        only the rows that differ: one :func:`apply`. Returns the new version."""
        now = self.state(vectors=False)
        delta = R.diff(now, state)
        if not delta:
            v = self.version
            return 0 if v is None else v
        dim = state.vectors.shape[1] if state.vectors.size else None
        return self.apply(delta, dim=dim)

    # -- audit (memos_cli.vault.audit) ---------------------------------------------------------
    def log(self, user: str, op: str, *, cube_id: str | None = None,
            memory_ids: Sequence[str] = (), detail: dict[str, Any] | None = None,
            version: int | None = None) -> None:
        """Append one access-log record: :func:`memos_cli.vault.audit.append`."""
        audit.append(self, user, op, cube_id=cube_id, memory_ids=memory_ids, detail=detail,
                     version=version)

    def read_log(self, **filters: Any) -> list[dict[str, Any]]:
        """Access-log records: :func:`memos_cli.vault.audit.read` (same filters)."""
        return audit.read(self, **filters)

    def versions(self) -> list[dict[str, Any]]:
        """Every version Lance keeps: ``{version, time, rows}``, oldest first."""
        tbl = self.table()
        if tbl is None:
            return []
        return [{"version": int(v["version"]), "time": format_time(v["timestamp"].replace(
                    tzinfo=timezone.utc)) if isinstance(v["timestamp"], datetime)
                 else str(v["timestamp"]),
                 "rows": int(v.get("metadata", {}).get("total_rows", 0))}
                for v in tbl.list_versions()]
