"""Changing a cube in place, atomically (spec §1: a rewrite writes the current format version,
§3: atomic writes): the one path every in-place change takes (``add``, ``rm-memories``,
``convert``, ``reindex``, ``remember``, ``forget``)."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from memos_cli.cube import layout
from memos_cli.cube.cube import CURRENT, Cube, open_cube
from memos_cli.cube.index import ReaderRows, index_text
from memos_cli.cube.index_file import (
    ENGINE,
    INDEX_FILE,
    forget_cached,
    from_lance,
    index_entry,
    write_index_file,
)
from memos_cli.cube.index_file import list_files as list_index_files
from memos_cli.cube.listing import list_attachments
from memos_cli.cube.manifest import FORMAT_VERSION, Manifest, write_manifest
from memos_cli.cube.memories import content_digest, read_memories, write_memories
from memos_cli.cube.readers import recount_readers
from memos_cli.cube.signature import sign_cube
from memos_cli.digest import sha256_file
from memos_cli.errors import FormatError
from memos_cli.memory import Memory


def check_writable(cube: Cube) -> None:
    """Refuse to rewrite a cube of a newer format minor (it would lose what we don't know).

    Older 1.x cubes are rewritten as the current version.
    """
    major, minor = (int(x) for x in cube.manifest.format_version.split("."))
    if (major, minor) > FORMAT_VERSION:
        raise FormatError(
            f"cube has format {cube.manifest.format_version}, newer than this memos "
            f"({CURRENT}); upgrade memos to change it", path=cube.path / layout.MANIFEST)


@contextlib.contextmanager
def rewrite(cube: Cube, *, key: str | Path | None = None
            ) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Change a cube in place, atomically: yields a private copy of it and its manifest as a
    dict, already at the current format version. When the body ends, the manifest is checked
    by our own reader and written, the copy is signed with ``key`` (or left unsigned: an old
    signature never survives a change), and the copy replaces the cube. A failure leaves the
    cube exactly as it was.

    Raises:
        FormatError: the cube is of a newer format version (see :func:`check_writable`).
    """
    check_writable(cube)
    before = [f["sha256"] for f in cube.manifest.index_files or []
              if (cube.manifest.index or {}).get("engine") == ENGINE]
    with layout.rewrite_cube(cube.path) as tmp:
        (tmp / layout.SIGNATURE).unlink(missing_ok=True)
        raw = cube.manifest.to_dict()
        raw["format_version"] = CURRENT
        yield tmp, raw
        if raw.get("index"):  # (re)list the index files: an older cube has no list
            if raw["index"].get("engine") != ENGINE:  # 1.0-1.7: the rows move to index.arrow
                old = tmp / raw["index"]["path"]
                from_lance(old, raw["index"].get("table", "memories"), tmp / INDEX_FILE)
                shutil.rmtree(old)
                raw["index"] = index_entry()
            raw["index_files"] = list_index_files(tmp, raw["index"]["path"])
            raw["content_digest"] = content_digest(
                read_memories(tmp / raw["files"]["memories"]["path"]))
        else:
            raw.pop("index_files", None)
            raw.pop("content_digest", None)

        recount_readers(tmp, raw)
        list_attachments(tmp, raw)
        write_manifest(tmp, Manifest.from_dict(raw))
        layout.normalize_modes(tmp)
        if key is not None:
            sign_cube(tmp, key, name=cube.path.name)
    now = {f["sha256"] for f in raw.get("index_files") or []}
    for digest in before:
        if digest not in now:
            forget_cached(digest)


def reindex(path: str | Path, vectors: np.ndarray, embedding: dict[str, Any], *,
            key: str | Path | None = None, reader_rows: ReaderRows | None = None,
            readers: Sequence[dict[str, Any]] | None = None,
            memories: Sequence[Memory] | None = None) -> Cube:
    """Rebuild the search index of the cube at ``path`` from its memories, in place, atomically.

    Args:
        vectors: ``[n, dim] float32`` embeddings of ``m.render()`` for the cube's memories in
            file order, made by the embedder that ``embedding`` describes.
        reader_rows, readers: rows of the MemReaders run now (embedded by the same embedder)
            and their manifest records; without them, reader rows of earlier runs are dropped
            (the manifest's ``readers`` is recounted).
        memories: the memories to store instead of the cube's (a facts reader adds derived
            ones); ``vectors`` then follows their order.
        key: re-sign with this private key; without it an existing signature is removed, so the
            cube shows as unsigned rather than carrying a stale signature.
    """
    cube = open_cube(path)
    mems = list(cube.memories if memories is None else memories)
    with rewrite(cube, key=key) as (tmp, raw):
        if cube.manifest.index:
            layout.remove_tree(tmp / cube.manifest.index["path"])
        if memories is not None:
            write_memories(tmp / raw["files"]["memories"]["path"], mems)
            raw["files"]["memories"] = {
                "path": raw["files"]["memories"]["path"],
                "sha256": sha256_file(tmp / raw["files"]["memories"]["path"]),
                "size": (tmp / raw["files"]["memories"]["path"]).stat().st_size}
            raw["counts"]["memories"] = len(mems)
        write_index_file(tmp / INDEX_FILE, [m.id for m in mems],
                         [index_text(m) for m in mems], vectors, reader_rows)
        raw["index"] = index_entry()
        raw["embedding"] = dict(embedding)
        if readers is not None:  # the readers of this run replace those of earlier runs
            facts = [r for r in raw.get("readers", []) if r["name"] == "facts"
                     and not any(n["name"] == "facts" for n in readers)]
            raw["readers"] = facts + [dict(r) for r in readers]
    return open_cube(cube.path)
