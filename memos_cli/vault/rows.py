"""The vault's one Lance table, row by row: how a memory, a superseded version, an archived
memory, an installed cube and the vault's own settings are stored, and what one change writes
(:class:`Delta`).

Every row has a ``key`` that names it, unique in the table:

==========  ====================================  ============================================
kind        key                                   what
==========  ====================================  ============================================
memory      ``m/<memory id>``                     the current version, with its vector
history     ``h/<id>/<version>/<content hash>``   a superseded version (version chains)
archived    ``a/<memory id>``                     a cold memory, kept but not searched
cube        ``c/<cube id>``                       an installed cube (name, signer, source...)
vault       ``v``                                 format, embedder, the next ``seq``
==========  ====================================  ============================================

``seal`` (in a vault of format version 3) is the writer's signature over the row
(:mod:`memos_cli.governance.seal`), empty when its writer had no key.
``record`` holds the JSON of the memory (``Memory.to_dict``) or of the cube or vault entry;
``seq`` keeps the order memories were installed in; ``text`` is what full-text search reads
(current memories only); ``vector`` is the embedding (zeros on other rows).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from memos_cli import strictjson
from memos_cli.cube.index import index_text
from memos_cli.errors import FormatError
from memos_cli.governance.seal import ROW_DOMAIN, Sealer
from memos_cli.memory import Memory

if TYPE_CHECKING:
    from memos_cli.vault.store import State

MEMORY, HISTORY, ARCHIVED, CUBE, META = "memory", "history", "archived", "cube", "vault"
META_KEY = "v"


def memory_key(memory_id: str) -> str:
    return f"m/{memory_id}"


def history_key(m: Memory) -> str:
    return f"h/{m.id}/{m.version}/{m.content_hash}"


def archived_key(memory_id: str) -> str:
    return f"a/{memory_id}"


def cube_key(cube_id: str) -> str:
    return f"c/{cube_id}"


def schema(dim: int, sealed: bool = False) -> pa.Schema:
    """The table's columns; ``sealed`` (format version 3) adds ``seal``."""
    return pa.schema([
        pa.field("key", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("id", pa.string(), nullable=False),
        pa.field("cube_id", pa.string(), nullable=False),
        pa.field("content_hash", pa.string(), nullable=False),
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("record", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("vector", pa.list_(pa.float32(), dim), nullable=False),
    ] + ([pa.field("seal", pa.string(), nullable=False)] if sealed else []))


@dataclass
class Delta:
    """One change of the vault: rows to write (insert or replace, by key) and keys to delete.
    Applied as one Lance commit (``Vault.apply``)."""

    memories: list[tuple[Memory, np.ndarray, str]] = field(default_factory=list)
    history: list[Memory] = field(default_factory=list)
    archived: list[tuple[Memory, str]] = field(default_factory=list)
    cubes: dict[str, dict[str, Any]] = field(default_factory=dict)
    delete: set[str] = field(default_factory=set)
    #: the vault entry's fields to set (``embedding``)
    meta: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.memories or self.history or self.archived or self.cubes
                    or self.delete or self.meta)


def _record(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def build(delta: Delta, dim: int, seqs: dict[str, int], next_seq: int,
          meta: dict[str, Any], *, sealed: bool = False,
          sealer: Sealer | None = None) -> tuple[pa.Table, int]:
    """The Arrow rows ``delta`` writes, with the vault entry; ``seqs`` gives the ``seq`` of
    keys already in the table (kept on replace); new keys take ``next_seq`` on. With
    ``sealed`` (a table with a ``seal`` column) each row is sealed by ``sealer`` (an empty
    seal without one). Returns the rows and the next free ``seq``."""
    zero = np.zeros(dim, np.float32)
    table_schema = schema(dim, sealed)
    rows: dict[str, list[Any]] = {n: [] for n in table_schema.names}

    def add(key: str, kind: str, ident: str, cube: str, chash: str, record: str, text: str,
            vec: np.ndarray) -> None:
        nonlocal next_seq
        seq = seqs.get(key)
        if seq is None:
            seq, next_seq = next_seq, next_seq + 1
        for name, value in (("key", key), ("kind", kind), ("id", ident), ("cube_id", cube),
                            ("content_hash", chash), ("seq", seq), ("record", record),
                            ("text", text), ("vector", vec)):
            rows[name].append(value)
        if sealed:
            rows["seal"].append("" if sealer is None else sealer.seal(
                ROW_DOMAIN, [key, kind, ident, cube, chash, record]))

    for m, v, cube in delta.memories:
        add(memory_key(m.id), MEMORY, m.id, cube, m.content_hash, _record(m.to_dict()),
            index_text(m), np.asarray(v, np.float32))
    for m in delta.history:
        add(history_key(m), HISTORY, m.id, "", m.content_hash, _record(m.to_dict()), "", zero)
    for m, cube in delta.archived:
        add(archived_key(m.id), ARCHIVED, m.id, cube, m.content_hash, _record(m.to_dict()), "",
            zero)
    for cube_id, info in delta.cubes.items():
        add(cube_key(cube_id), CUBE, cube_id, cube_id, "", _record(info), "", zero)
    add(META_KEY, META, "", "", "", _record({**meta, "next_seq": next_seq + 1}), "", zero)
    vectors = np.stack(rows.pop("vector")).astype(np.float32).reshape(-1)
    arrays = {n: pa.FixedSizeListArray.from_arrays(pa.array(vectors, pa.float32()), dim)
              if n == "vector" else pa.array(rows[n], table_schema.field(n).type)
              for n in table_schema.names}
    return pa.table(arrays, schema=table_schema), next_seq


def memory_of(record: str, where: Any = None) -> Memory:
    """The memory a row's ``record`` holds.

    Raises:
        FormatError: (naming ``where``, the vault's table) the record is not strict JSON, or
            not a memory (a field of the wrong type, a time that is not ISO 8601...).
    """
    data = object_of(record, where, "memory")
    try:
        return Memory.from_dict(data)
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise FormatError(f"a memory row is damaged (id {str(data.get('id'))[:40]!r}: "
                          f"{str(e)[:160]})", path=where) from e


def object_of(record: str, where: Any, what: str) -> dict[str, Any]:
    """A row's ``record`` as a JSON object.

    Raises:
        FormatError: not strict JSON, or not an object.
    """
    try:
        data = strictjson.loads(record)
    except ValueError as e:
        raise FormatError(f"a {what} row is not JSON ({str(e)[:160]})", path=where) from e
    if not isinstance(data, dict):
        raise FormatError(f"a {what} row is not a JSON object", path=where)
    return data


def quoted(values: Sequence[str]) -> str:
    """A SQL list of string literals for a Lance filter (``'a','b'``)."""
    return ",".join("'" + v.replace("'", "''") + "'" for v in values)


def diff(old: State, new: State) -> Delta:
    """What turns ``old`` into ``new``: changed or new rows, and keys that went away. Memories
    are compared by their record and origin; a memory only in ``new`` needs its vector in
    ``new.vectors``."""
    delta = Delta()
    old_mem = {m.id: (m, old.origin.get(m.id, "")) for m in old.memories}
    new_index = {m.id: i for i, m in enumerate(new.memories)}
    for m in new.memories:
        prev = old_mem.get(m.id)
        if prev is None or prev[0] != m or prev[1] != new.origin.get(m.id, ""):
            delta.memories.append((m, new.vectors[new_index[m.id]], new.origin.get(m.id, "")))
    delta.delete |= {memory_key(i) for i in set(old_mem) - set(new_index)}
    old_hist = {history_key(m) for m in old.history}
    new_hist = {history_key(m): m for m in new.history}
    delta.history = [m for k, m in new_hist.items() if k not in old_hist]
    delta.delete |= old_hist - set(new_hist)
    old_arch = {m.id: (m, old.archived_origin.get(m.id, "")) for m in old.archived}
    new_arch = {m.id: (m, new.archived_origin.get(m.id, "")) for m in new.archived}
    delta.archived = [v for i, v in new_arch.items() if old_arch.get(i) != v]
    delta.delete |= {archived_key(i) for i in set(old_arch) - set(new_arch)}
    delta.cubes = {c: info for c, info in new.cubes.items() if old.cubes.get(c) != info}
    delta.delete |= {cube_key(c) for c in set(old.cubes) - set(new.cubes)}
    if new.embedding != old.embedding:
        delta.meta["embedding"] = new.embedding
    return delta
