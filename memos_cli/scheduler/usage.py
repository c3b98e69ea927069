"""Usage indicators per memory (MemOS paper §4.2, "behavioural usage indicators"): what the
scheduler ranks memories by (spec/memcube.md §13.1).

Every ``search`` and ``run`` appends one row per memory it retrieved or put in the prompt to a
LanceDB table, ``usage``, in the vault (``VAULT/usage/``) or, for a cube used outside a vault,
under ``MEMOS_HOME/usage/<cube id>/``. It never goes into a cube, whose files (and signature)
stay unchanged.

Rows are events, never updated in place, so concurrent writers cannot lose counts: Lance
commits each append atomically and retries on a conflict with another append. A process killed
mid-append leaves at most an unreferenced data file; the table stays at its last committed
version. ``memos schedule`` compacts the files of many small appends (Lance ``optimize``). The
indicators are computed when read:

- ``retrievals``, ``uses``: rows with ``retrieved`` / ``used`` set;
- ``accesses``: rows (one per memory per search or run);
- ``first_use``, ``last_use``: the earliest and latest ``at``;
- ``score``: the decayed access frequency ``sum(0.5 ** (age / half_life))`` over the memory's
  rows (an exponentially decayed count, as in mem0 issue #5330's ``0.5^(days/7)``, summed per
  access instead of applied to a capped total).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from memos_cli.errors import FormatError, MemosError, UsageError
from memos_cli.localfiles import plain_files
from memos_cli.memory import format_time
from memos_cli.models.chat import memos_home

TABLE = "usage"
FORMAT = "memos-usage"
VERSION = 1
#: Default half-life of the decayed score (mem0 issue #5330 uses 7 days).
DEFAULT_HALF_LIFE = timedelta(days=7)

SCHEMA = pa.schema([
    pa.field("memory_id", pa.string(), nullable=False),
    pa.field("content_hash", pa.string(), nullable=False),
    pa.field("op", pa.string(), nullable=False),
    pa.field("retrieved", pa.bool_(), nullable=False),
    pa.field("used", pa.bool_(), nullable=False),
    pa.field("rank", pa.int32()),
    pa.field("text_match", pa.bool_(), nullable=False),
    pa.field("at", pa.timestamp("us", tz="UTC"), nullable=False),
], metadata={"memos.format": FORMAT, "memos.version": str(VERSION)})


@dataclass(frozen=True)
class Use:
    """One memory in one ``search`` or ``run``: its retrieval ``rank`` (1-based, ``None`` when
    it was not retrieved, e.g. a chunk group's other members), whether it was retrieved, put
    in the answer's prompt (``used``), and matched the full-text query."""

    memory_id: str
    content_hash: str
    rank: int | None
    retrieved: bool = True
    used: bool = False
    text_match: bool = False


@dataclass(frozen=True)
class Indicators:
    """A memory's usage: counts, first and last use (UTC), the decayed score at the time asked
    for, the rank of its latest retrieval, how often it matched the full-text query, and
    whether every use saw the same content hash (``unchanged``)."""

    memory_id: str
    retrievals: int
    uses: int
    first_use: datetime
    last_use: datetime
    score: float
    last_rank: int | None
    text_matches: int
    content_hash: str
    unchanged: bool
    accesses: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The export fields (spec §13.1)."""
        return {"memory_id": self.memory_id, "retrievals": self.retrievals, "uses": self.uses,
                "first_use": format_time(self.first_use), "last_use": format_time(self.last_use),
                "score": round(self.score, 6), "last_rank": self.last_rank,
                "text_matches": self.text_matches, "accesses": self.accesses,
                "content_hash": self.content_hash, "unchanged": self.unchanged}


def cube_store(cube_id: str) -> UsageStore:
    """The usage store of a cube used outside a vault: ``MEMOS_HOME/usage/<cube id>``."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", cube_id):
        raise UsageError(f"cube id {cube_id!r} cannot name a usage store")
    return UsageStore(memos_home() / "usage" / cube_id)


#: Longest a process waits for another to finish creating the usage table (seconds).
CREATE_WAIT_S = 30.0


@contextlib.contextmanager
def _creating(path: Path) -> Iterator[None]:
    """Hold ``path/.create.lock`` while the usage table is created. Two processes creating it
    at once made Lance commit an Overwrite after the other's first append (an append then
    failed, and rows could be lost). Waits at most :data:`CREATE_WAIT_S` (nothing blocks
    forever); the kernel drops the lock if the holder dies.

    Raises:
        UsageError: another process held the lock for longer than that.
    """
    import fcntl
    import time


    try:
        fd = os.open(path / ".create.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW |
                     os.O_NONBLOCK, 0o666)
    except OSError as e:
        raise FormatError(f".create.lock {e.strerror or e}", path=path) from e
    with os.fdopen(fd, "a+b") as f:
        deadline = time.monotonic() + CREATE_WAIT_S
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise UsageError("another memos process is creating the usage store",
                                     path=path) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class UsageStore:
    """The usage table in directory ``path`` (created on the first :meth:`record`).

    Raises (from the methods):
        FormatError: a table that is unreadable, not a usage table, or from a newer memos.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._opener: threading.Thread | None = None
        self._opened: Any = None
        self._failed: BaseException | None = None

    def warm(self) -> UsageStore:
        """Open (or create) the table in a background thread now, so that a later
        :meth:`record` only appends: a command calls this before its retrieval, which the
        opening then overlaps. Returns the store."""
        if os.environ.get("MEMOS_NO_USAGE") == "1" or self._opener is not None:
            return self

        def run() -> None:
            try:
                self._make()
                self._opened = self._open(create=True)
            except BaseException as e:  # reported by record()
                self._failed = e

        self._opener = threading.Thread(target=run, daemon=True)
        self._opener.start()
        return self

    def _writable(self) -> Any:
        if self._opener is not None:
            self._opener.join()
            self._opener = None
            if self._failed is not None:
                failed, self._failed = self._failed, None
                raise failed
        if self._opened is None:
            self._make()
            self._opened = self._open(create=True)
        return self._opened

    def _make(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise FormatError(f"usage store cannot be made: {e.strerror or e}",
                              path=self.path) from e

    def _own(self) -> None:
        """Refuse a store with links or special files in it: Lance would follow them out of
        ``MEMOS_HOME``."""
        try:
            for _ in plain_files(self.path):
                pass
        except OSError as e:
            raise FormatError(f"usage store holds {e.filename} ({e.strerror}); memos does not "
                              "follow it", path=self.path) from e

    def exists(self) -> bool:
        return (self.path / f"{TABLE}.lance").is_dir()

    @property
    def _uri(self) -> str:
        return str(self.path / f"{TABLE}.lance")  # LanceDB's layout of table ``usage``

    def _open(self, *, create: bool) -> Any:
        """The table as a Lance dataset (pylance: a third of LanceDB's import time, which a
        one-shot ``search`` would otherwise pay)."""
        import lance

        self._own()
        try:
            if not self.exists():
                if not create:
                    raise FileNotFoundError("no usage table")
                # one creator at a time (two would overwrite each other), and a table another
                # process is still creating is opened once it has finished
                with _creating(self.path):
                    if not self.exists():
                        lance.write_dataset(SCHEMA.empty_table(), self._uri, mode="create")
            table = lance.dataset(self._uri)
            schema = table.schema
        except MemosError:
            raise
        except Exception as e:  # Lance raises many kinds for a damaged table
            raise FormatError(f"unreadable usage store: {str(e).splitlines()[0][:200]}",
                              path=self.path) from e
        meta = schema.metadata or {}
        if meta.get(b"memos.format") != FORMAT.encode():
            raise FormatError("not a memos usage table", path=self.path)
        try:
            version = int(meta.get(b"memos.version", b"0"))
        except ValueError:
            version = 0
        if version > VERSION:
            raise FormatError(f"usage store is version {version}, newer than this memos "
                              f"reads ({VERSION}); upgrade memos", path=self.path)
        if version < 1 or not set(SCHEMA.names) <= set(schema.names):
            raise FormatError("usage table lacks the fields of version 1", path=self.path)
        return table

    def record(self, op: str, uses: Sequence[Use], *, at: datetime | None = None) -> None:
        """Append one row per ``Use`` of one operation (``search`` or ``run``) at ``at``
        (default now), in one atomic commit."""
        if not uses:
            return
        self._writable()  # opened (or created) now, or by warm() in the background
        when = at or datetime.now(timezone.utc)
        n = len(uses)
        batch = pa.table({
            "memory_id": [u.memory_id for u in uses],
            "content_hash": [u.content_hash for u in uses],
            "op": [op] * n, "retrieved": [u.retrieved for u in uses],
            "used": [u.used for u in uses], "rank": [u.rank for u in uses],
            "text_match": [u.text_match for u in uses], "at": [when] * n}, schema=SCHEMA)
        try:
            import lance

            self._opened = lance.write_dataset(batch, self._uri, mode="append")
        except Exception as e:
            raise FormatError(f"could not append to the usage store: {str(e)[:200]}",
                              path=self.path) from e

    def compact(self, table: Any = None) -> None:
        """Merge the small files of many appends and drop versions older than an hour (Lance
        ``optimize``). Safe beside concurrent appends; a conflict is left for the next time."""
        table = table if table is not None else self._open(create=False)
        with contextlib.suppress(Exception):  # a lost race with another compaction: harmless
            table.optimize.compact_files()
            table.cleanup_old_versions(older_than=timedelta(hours=1))

    def events(self) -> pa.Table:
        """Every row, in commit order (an empty table when nothing was recorded)."""
        if not self.exists():
            return SCHEMA.empty_table()
        table = self._open(create=False)
        try:
            return table.to_table().select(SCHEMA.names).cast(SCHEMA)
        except Exception as e:
            raise FormatError(f"unreadable usage store: {str(e).splitlines()[0][:200]}",
                              path=self.path) from e

    def indicators(self, *, now: datetime | None = None,
                   half_life: timedelta = DEFAULT_HALF_LIFE) -> dict[str, Indicators]:
        """Memory id -> :class:`Indicators` at ``now`` (default: the current time)."""
        return indicators(self.events(), now=now, half_life=half_life)


def indicators(events: pa.Table, *, now: datetime | None = None,
               half_life: timedelta = DEFAULT_HALF_LIFE) -> dict[str, Indicators]:
    """Aggregate usage rows (:data:`SCHEMA`) per memory, as :class:`Indicators`.

    Raises:
        UsageError: a half-life that is not positive.
    """
    if half_life.total_seconds() <= 0:
        raise UsageError("the half-life must be above 0")
    if events.num_rows == 0:
        return {}
    now = now or datetime.now(timezone.utc)
    ids = events.column("memory_id").to_pylist()
    at_us = events.column("at").cast(pa.int64()).to_numpy()
    age_s = np.maximum(now.timestamp() - at_us / 1e6, 0.0)
    weight = np.power(0.5, age_s / half_life.total_seconds())
    retrieved = events.column("retrieved").to_numpy(zero_copy_only=False)
    used = events.column("used").to_numpy(zero_copy_only=False)
    text = events.column("text_match").to_numpy(zero_copy_only=False)
    ranks = events.column("rank").to_pylist()
    hashes = events.column("content_hash").to_pylist()
    acc: dict[str, list[Any]] = {}
    for i, mid in enumerate(ids):
        a = acc.get(mid)
        t = int(at_us[i])
        if a is None:  # retrievals, uses, first, last, score, rank, text, hash, hashes, rows
            acc[mid] = [int(retrieved[i]), int(used[i]), t, t, float(weight[i]), ranks[i],
                        int(text[i]), hashes[i], {hashes[i]}, 1]
            continue
        a[9] += 1
        a[0] += int(retrieved[i])
        a[1] += int(used[i])
        a[2] = min(a[2], t)
        if t >= a[3]:
            a[3] = t
            a[7] = hashes[i]
            if ranks[i] is not None:
                a[5] = ranks[i]
        a[4] += float(weight[i])
        a[6] += int(text[i])
        a[8].add(hashes[i])

    def when(us: int) -> datetime:
        return datetime.fromtimestamp(us / 1e6, tz=timezone.utc)

    return {mid: Indicators(mid, a[0], a[1], when(a[2]), when(a[3]), a[4], a[5], a[6], a[7],
                            len(a[8]) == 1, a[9]) for mid, a in acc.items()}


def record_quietly(store: UsageStore, op: str, uses: Sequence[Use]) -> None:
    """:meth:`UsageStore.record`, but a store that cannot be written costs the caller nothing:
    one warning line on stderr (the store is left as it is) and the search or run goes on.
    ``MEMOS_NO_USAGE=1`` turns recording off."""
    if os.environ.get("MEMOS_NO_USAGE") == "1":
        return
    try:
        store.record(op, uses)
    except MemosError as e:
        print(f"warning: usage not recorded: {e}", file=sys.stderr)


@contextlib.contextmanager
def recording(store: UsageStore, op: str, uses: Sequence[Use]) -> Iterator[None]:
    """Record in a background thread while the block runs (printing the results), and wait
    for it at the end: the append overlaps the output instead of adding to it."""
    worker = threading.Thread(target=record_quietly, args=(store, op, uses), daemon=True)
    worker.start()
    try:
        yield
    finally:
        worker.join()


def uses_of(retrieved: Sequence[Any], used: Sequence[Any] = ()) -> list[Use]:
    """:class:`Use` rows from ``plaintext.Retrieved`` hits (``retrieved``) and the memories put
    in the prompt (``used``, in prompt order; those not retrieved get no rank)."""
    hit = {r.memory.id: r for r in retrieved}
    in_prompt = {m.id for m in used}
    out = [Use(r.memory.id, r.memory.content_hash, r.rank, True, r.memory.id in in_prompt,
               r.text_rank is not None) for r in retrieved]
    out += [Use(m.id, m.content_hash, None, False, True) for m in used if m.id not in hit]
    return out
