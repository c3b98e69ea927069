"""MemReader data inside a cube (spec §4.5, §6.1): keeping the manifest's ``readers`` in line
with a rewritten cube, and checking reader rows and derived memories when a cube is verified."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memos_cli.cube import layout
from memos_cli.cube.index_file import open_index
from memos_cli.cube.memories import read_memories
from memos_cli.errors import IntegrityError
from memos_cli.memory import derived_from, derived_reader


def recount_readers(directory: Path, raw: dict[str, Any]) -> None:
    """Bring the manifest's ``readers`` in line with a rewritten cube (spec §6.1): a reader
    whose index rows or derived memories are all gone is dropped, the others recounted."""
    if not raw.get("readers"):
        raw.pop("readers", None)
        return

    rows = open_index(directory, raw["index"], int(raw["embedding"]["dimension"])
                      ).reader_rows()[0] if raw.get("index") else {}
    mems = read_memories(directory / raw["files"]["memories"]["path"]) if raw.get("files") \
        else []
    derived: dict[str, int] = {}
    for m in mems:
        if (name := derived_reader(m)) is not None:
            derived[name] = derived.get(name, 0) + 1
    kept = []
    for r in raw["readers"]:
        r = {**r, "index_rows": rows.get(r["name"], 0),
             "derived_memories": derived.get(r["name"], 0)}
        if r["index_rows"] or r["derived_memories"]:
            kept.append(r)
    if kept:
        raw["readers"] = kept
    else:
        raw.pop("readers", None)


def check_readers(cube: Any, ids: set[str]) -> None:
    """MemReader data (spec §4.5, §6.1): reader rows of known kinds that find memories of the
    cube, derived memories whose sources are in the cube, and counts that match the
    manifest's ``readers``.

    Raises:
        IntegrityError, FormatError: naming the index or the memories file.
    """
    index = cube.index()
    rows, found = index.reader_rows()
    if stray := sorted(found - ids):
        raise IntegrityError(f"a reader row of the search index finds memory {stray[0]}, which "
                             "is not in the cube", path=cube.index_path)
    derived: dict[str, int] = {}
    for m in cube.memories:
        if (name := derived_reader(m)) is not None:
            derived[name] = derived.get(name, 0) + 1
            if gone := [i for i in derived_from(m) if i not in ids]:
                raise IntegrityError(f"derived memory {m.id} names source {gone[0]}, which is "
                                     "not in the cube", path=cube.path / layout.MEMORIES)
    records = {r["name"]: r for r in cube.manifest.readers or []}
    for name in set(rows) | set(records) | set(derived):
        r = records.get(name, {})
        if (r.get("index_rows", 0), r.get("derived_memories", 0)) != \
                (rows.get(name, 0), derived.get(name, 0)):
            raise IntegrityError(f"manifest.json's readers entry for {name!r} does not match "
                                 f"the cube ({rows.get(name, 0)} index rows, "
                                 f"{derived.get(name, 0)} derived memories)",
                                 path=cube.path / layout.MANIFEST)
