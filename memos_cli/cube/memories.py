"""``memories.arrow``: the Arrow IPC file that holds one memory a row (spec/memcube.md §4)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from memos_cli import progress, strictjson
from memos_cli.digest import canonical_json, json_sha256_items
from memos_cli.errors import FormatError, IntegrityError
from memos_cli.memory import (
    ORIGINS,
    SEMANTIC_TYPES,
    VALIDITY_FIELDS,
    VISIBILITIES,
    Memory,
    content_hash,
)

_TS = pa.timestamp("us", tz="UTC")
_STRS = pa.list_(pa.string())

#: The schema of memories.arrow, column order included. Part of the format contract.
SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("content", pa.string(), nullable=False),
        pa.field("content_hash", pa.string(), nullable=False),
        pa.field("created_at", _TS, nullable=False),
        pa.field("updated_at", _TS, nullable=False),
        pa.field("origin", pa.string(), nullable=False),
        pa.field("semantic_type", pa.string(), nullable=False),
        pa.field("source_file", pa.string()),
        pa.field("line_start", pa.int32()),
        pa.field("line_end", pa.int32()),
        pa.field("section", pa.string()),
        pa.field("conversation_id", pa.string()),
        pa.field("session_id", pa.string()),
        pa.field("turn_id", pa.string()),
        pa.field("speaker", pa.string()),
        pa.field("event_time", _TS),
        pa.field("owner", pa.string()),
        pa.field("visibility", pa.string(), nullable=False),
        pa.field("readers", _STRS, nullable=False),
        pa.field("expires_at", _TS),
        pa.field("priority", pa.int32(), nullable=False),
        pa.field("sensitivity", _STRS, nullable=False),
        pa.field("tags", _STRS, nullable=False),
        pa.field("version", pa.int32(), nullable=False),
        pa.field("parent_id", pa.string()),
        pa.field("extra", pa.string(), nullable=False),
        # format 1.7 (spec §4.6)
        pa.field("valid_to", _TS),
        pa.field("supersedes", pa.string()),
        pa.field("superseded_by", pa.string()),
        pa.field("supersession", pa.string()),
    ],
    metadata={
        b"memcube.schema": b"memories/2",
        b"memcube.enums": canonical_json(
            {"origin": ORIGINS, "semantic_type": SEMANTIC_TYPES, "visibility": VISIBILITIES}),
    },
)

#: The schema of formats 1.0-1.6 (``memories/1``): without the validity columns.
SCHEMA_1 = pa.schema([f for f in SCHEMA if f.name not in VALIDITY_FIELDS],
                     metadata={**SCHEMA.metadata, b"memcube.schema": b"memories/1"})

_LIST_FIELDS = ("readers", "sensitivity", "tags")
_JSON_FIELDS = ("extra", "supersession")


def to_table(memories: Iterable[Memory]) -> pa.Table:
    """Build the Arrow table of ``memories`` in the given order: with :data:`SCHEMA`, or
    :data:`SCHEMA_1` when no memory has a validity value (spec §4.6: the file is then the
    same as format 1.6 wrote, and readers of 1.6 read it)."""
    memories = list(memories)
    return _table(memories, _schema_of(memories))


def _schema_of(memories: Sequence[Memory]) -> pa.Schema:
    return SCHEMA if any(getattr(m, f) is not None for m in memories
                         for f in VALIDITY_FIELDS) else SCHEMA_1


def _table(memories: Sequence[Memory], schema: pa.Schema) -> pa.Table:
    columns: dict[str, list[Any]] = {f.name: [] for f in schema}
    for m in memories:
        for name, values in columns.items():
            value = getattr(m, name)
            if name in _LIST_FIELDS:
                value = list(value)
            elif name in _JSON_FIELDS and value is not None:
                value = canonical_json(value).decode("utf-8")
            values.append(value)
    return pa.table(columns, schema=schema)


def write_memories(path: Path, memories: Iterable[Memory]) -> int:
    """Write an Arrow IPC *file* (not stream) with the schema of :func:`to_table`; return its
    size in bytes. Written :data:`BATCH` memories at a time, so a pack of 200,000 short lines
    never holds all its columns as Python lists at once."""
    memories = list(memories)
    schema = _schema_of(memories)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for i in range(0, len(memories), BATCH):
            writer.write_table(_table(memories[i:i + BATCH], schema))
    return path.stat().st_size


#: Memories per record batch of ``memories.arrow``.
BATCH = 65536


def read_table(path: Path, *, validity: bool = True) -> pa.Table:
    """Read ``memories.arrow`` and check its schema: :data:`SCHEMA`, or :data:`SCHEMA_1` (a
    cube of format 1.6 or older, whose memories are all current), which is read with the
    validity columns null. Without ``validity`` (a cube that declares format 1.6 or older),
    only :data:`SCHEMA_1` is accepted.

    Raises:
        FormatError: not an Arrow IPC file, truncated, columns/types differ from
            :data:`SCHEMA` (extra columns are refused too), buffers that fail Arrow's full
            validation (offsets, UTF-8), or nulls in a non-nullable column.
    """
    try:
        with pa.memory_map(str(path), "r") as source:
            table = pa.ipc.open_file(source).read_all()
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as e:
        raise FormatError(f"not a readable Arrow IPC file: {e}", path=path) from e
    if not validity and table.schema.equals(SCHEMA, check_metadata=False):
        raise FormatError("memories table has the validity columns of format 1.7, but the "
                          "cube declares an older format", path=path)
    if table.schema.equals(SCHEMA_1, check_metadata=False):
        for f in SCHEMA:
            if f.name in VALIDITY_FIELDS:
                table = table.append_column(f, pa.nulls(table.num_rows, f.type))
    if not table.schema.equals(SCHEMA, check_metadata=False):
        want = {f.name: f.type for f in SCHEMA}
        have = {f.name: f.type for f in table.schema}
        problems = [f"missing column {n}" for n in want if n not in have]
        problems += [f"unknown column {n}" for n in have if n not in want]
        problems += [
            f"column {n} is {have[n]}, expected {want[n]}"
            for n in want
            if n in have and have[n] != want[n]
        ]
        if not problems:
            problems = ["columns are not in the order of the spec or nullability differs"]
        raise FormatError("memories table does not match the spec: " + "; ".join(problems),
                          path=path)
    try:  # offsets, UTF-8 and lengths, before any value reaches Python
        table.validate(full=True)
    except (pa.ArrowInvalid, pa.ArrowException) as e:
        raise FormatError(f"corrupt Arrow data: {str(e).splitlines()[0]}", path=path) from e
    nulls = [f.name for f in SCHEMA if not f.nullable and table.column(f.name).null_count]
    if nulls:
        raise FormatError(f"null values in non-nullable columns: {', '.join(nulls)}", path=path)
    return table


def read_memories(path: Path, *, unique_ids: bool = True,
                  validity: bool = True) -> list[Memory]:
    """Read every memory of ``memories.arrow``, in file order. ``unique_ids=False`` allows
    a repeated id (a vault's history holds several versions of one memory); ``validity``:
    as :func:`read_table`.

    Raises:
        FormatError: as :func:`read_table`, or a row breaks the memory schema (names the row).
        IntegrityError: a row's content does not match its ``content_hash``, or an id repeats.
    """
    table = read_table(path, validity=validity)
    out = []
    seen: dict[str, int] = {}
    for i, row in enumerate(_rows(table, path)):
        try:
            for name in _LIST_FIELDS:
                row[name] = tuple(row[name] or ())
            for name in _JSON_FIELDS:
                if row[name] == "{}":  # most memories' extra: no parser needed
                    row[name] = {}
                elif row[name] is not None:
                    value = strictjson.loads(row[name])
                    if not isinstance(value, dict):
                        raise ValueError(f"{name} is not a JSON object")
                    row[name] = value
            m = Memory(**row)
        except (ValueError, TypeError) as e:
            raise FormatError(f"row {i} (id {row.get('id')!r}): {e}", path=path) from e
        if content_hash(m.content, m.speaker, m.event_time) != m.content_hash:
            raise IntegrityError(f"row {i}: memory {m.id} does not match its content_hash",
                                 path=path)
        if unique_ids and m.id in seen:
            raise IntegrityError(f"row {i}: memory id {m.id} repeats row {seen[m.id]} (ids "
                                 "are unique)", path=path)
        seen[m.id] = i
        out.append(m)
    return out


def _rows(table: pa.Table, path: Path) -> Iterator[dict[str, Any]]:
    """The rows of ``table`` as dicts, :data:`BATCH` at a time: a million rows never exist
    as a million dicts at once (about 1.2 GB)."""
    done = 0
    for batch in table.to_batches(max_chunksize=BATCH):
        try:
            rows = batch.to_pylist()
        except (ValueError, OverflowError, pa.ArrowException) as e:  # a year past 9999
            raise FormatError(f"a value cannot be read: {e}", path=path) from e
        yield from rows
        done += len(rows)
        progress.report("reading memories", done, table.num_rows)


def content_digest(memories: Iterable[Memory]) -> str:
    """The manifest's ``content_digest`` (spec §5): ``sha256`` of the RFC 8785 canonical JSON
    of the list of the memories' records (§8.6: every column by name, times as
    ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, lists as arrays, ``extra`` as an object), in cube
    order. It depends on the memories only, not on how Arrow or Lance laid out the bytes."""
    memories = list(memories)
    n = len(memories)

    def records() -> Iterator[dict[str, Any]]:
        for i, m in enumerate(memories, start=1):
            yield m.to_dict()
            if i % BATCH == 0 or i == n:
                progress.report("checking the content digest", i, n)

    return json_sha256_items(records())
