"""The search index as the spec defines it from format 1.8 (spec/memcube.md §6): one Arrow IPC
file, ``index.arrow``, whose bytes depend on its rows alone, so two packs of the same input
are byte-identical and a rebuilt cube publishes no new blob. Searching needs a vector and a
full-text index: they are derived from the file into a LanceDB table in a cache,
``MEMOS_HOME/index/<sha256 of index.arrow>/``, built once per machine and never part of the
cube.

Rows (in this column order): ``id`` utf8, ``text`` utf8, ``kind`` utf8 (only when reader rows
are present, §6.1), ``vector`` fixed_size_list<float32>[dimension]; no nulls. Schema metadata
``memcube.schema`` = ``index/1``. One record batch per 65,536 rows, no compression.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from memos_cli import config, progress
from memos_cli.cube import layout
from memos_cli.cube.index import (
    MEMORY_KIND,
    TABLE,
    Index,
    ReaderRows,
    build_index,
    build_table,
    rows_table,
)
from memos_cli.digest import sha256_file
from memos_cli.errors import FormatError, IntegrityError
from memos_cli.localfiles import plain_dir

INDEX_FILE = layout.INDEX_FILE
#: ``index.engine`` of an Arrow index file (format 1.8); older cubes say ``lancedb``.
ENGINE = "arrow"
SCHEMA_NAME = "index/1"
BATCH_ROWS = 65536
#: The cache's size bound (bytes): after a build, the least recently used entries go until
#: the rest fit (``MEMOS_INDEX_CACHE_BYTES``).
CACHE_BYTES = 8 << 30
_DONE = "complete"


def schema(dim: int, *, kinds: bool) -> pa.Schema:
    """The Arrow schema of an index file of ``dim``-dimensional vectors."""
    fields = [pa.field("id", pa.string(), nullable=False),
              pa.field("text", pa.string(), nullable=False),
              *([pa.field("kind", pa.string(), nullable=False)] if kinds else []),
              pa.field("vector", pa.list_(pa.field("item", pa.float32(), nullable=False), dim),
                       nullable=False)]
    return pa.schema(fields, metadata={"memcube.schema": SCHEMA_NAME})


def write_index_file(path: Path, ids: list[str], texts: list[str], vectors: np.ndarray,
                     extra: ReaderRows | None = None) -> None:
    """Write ``index.arrow``: the memories' rows (``ids``, their rendered ``texts``, and
    ``vectors`` ``[n, dim] float32``, L2-normalised), then the reader rows of ``extra``
    (embedded) with a ``kind`` column. The same rows give the same bytes.

    Raises:
        ValueError: lengths or dimensions disagree.
    """
    table = rows_table(ids, texts, vectors, extra)
    sch = schema(vectors.shape[1], kinds="kind" in table.schema.names)
    table = table.cast(sch)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, sch) as writer:
        writer.write_table(table, max_chunksize=BATCH_ROWS)


def list_files(cube_dir: Path, index_rel: str) -> list[dict[str, Any]]:
    """The manifest's ``index.files`` (spec §6, format 1.4): every file under the index
    directory as ``{"path", "sha256", "size"}``, paths relative to the cube, sorted."""
    root = cube_dir / index_rel
    out = []
    for p in [root] if root.is_file() else sorted(q for q in root.rglob("*") if q.is_file()):
        out.append({"path": p.relative_to(cube_dir).as_posix(), "sha256": sha256_file(p),
                    "size": p.stat().st_size})
    return out


def check_files(cube_dir: Path, index_rel: str, files: list[dict[str, Any]], *,
                digests: bool) -> None:
    """Check the index directory against the manifest's ``index.files``: the same files, the
    same sizes, and with ``digests`` the same SHA-256.

    Raises:
        IntegrityError: a file missing, added, of another size or (with ``digests``) content.
    """
    root = cube_dir / index_rel
    have = {q.relative_to(cube_dir).as_posix() for q in root.rglob("*") if q.is_file()} \
        if root.is_dir() else {index_rel} if root.is_file() else set()
    want = {f["path"]: f for f in files}
    if extra := sorted(have - set(want)):
        raise IntegrityError(f"index file {extra[0]} is not listed in the manifest",
                             path=cube_dir / extra[0])
    if gone := sorted(set(want) - have):
        raise IntegrityError(f"index file {gone[0]} is listed in the manifest but missing",
                             path=cube_dir)
    for rel, f in sorted(want.items()):
        p = cube_dir / rel
        if p.stat().st_size != f["size"] or (digests and sha256_file(p) != f["sha256"]):
            raise IntegrityError("index file does not match the digest in manifest.json "
                                 "(changed or truncated)", path=p)


def read_index_file(path: Path, dim: int) -> pa.Table:
    """Read and check ``index.arrow``: the columns of :func:`schema` (with or without
    ``kind``) for vectors of ``dim`` dimensions, no nulls.

    Raises:
        FormatError: naming the file and the problem.
    """
    try:
        with pa.memory_map(str(path)) as src:
            table = pa.ipc.open_file(src).read_all()
        table.validate(full=True)
    except (OSError, pa.ArrowException) as e:
        raise FormatError(f"search index is not an Arrow IPC file: {str(e).splitlines()[0]}",
                          path=path) from e
    kinds = "kind" in table.schema.names
    want = schema(dim, kinds=kinds)
    if table.schema.names != want.names or any(
            a.type != b.type for a, b in zip(table.schema, want, strict=True)):
        got = ", ".join(f"{f.name}: {f.type}" for f in table.schema)
        raise FormatError(f"search index columns are ({got}), expected "
                          f"({', '.join(f'{f.name}: {f.type}' for f in want)})", path=path)
    if (table.schema.metadata or {}).get(b"memcube.schema") != SCHEMA_NAME.encode():
        raise FormatError(f"search index schema metadata is not memcube.schema = {SCHEMA_NAME}",
                          path=path)
    vec = table.column("vector")
    if any(table.column(c).null_count for c in table.schema.names) or any(
            chunk.values.null_count for chunk in vec.chunks):
        raise FormatError("search index holds null values", path=path)
    return table


def matrix(table: pa.Table) -> np.ndarray:
    """The ``vector`` column as ``[rows, dim] float32``."""
    column = table.column("vector").combine_chunks()
    return np.asarray(column.flatten().to_numpy(zero_copy_only=False)).reshape(
        len(column), column.type.list_size)


class IndexFile(Index):
    """An ``index.arrow`` opened for reading: ids, vectors and reader rows come from the
    file; :meth:`search` opens the derived LanceDB table in the cache (built on first use)."""

    def __init__(self, path: Path, digest: str | None, dim: int) -> None:
        self.index_dir = path
        self._digest, self._dim = digest, dim
        self._table: pa.Table | None = None
        self._lance: Index | None = None
        self.where = None
        self.approximate = False
        self.has_kinds = "kind" in self._arrow().schema.names

    def _arrow(self) -> pa.Table:
        if self._table is None:
            self._table = read_index_file(Path(self.index_dir), self._dim)
        return self._table

    def count(self) -> int:
        return int(self._arrow().num_rows)

    def _rows_per_memory(self) -> int:
        return self.searcher()._rows_per_memory()

    def searcher(self) -> Index:
        """The derived LanceDB table (:func:`cached`), opened once."""
        if self._lance is None:
            digest = self._digest or sha256_file(Path(self.index_dir))
            self._lance = cached(self._arrow(), digest, Path(self.index_dir))
        return self._lance

    def ready(self) -> Index:
        self.searcher()
        return self

    def search(self, query: str, vector: np.ndarray, k: int, **kw: Any) -> list[Any]:
        return self.searcher().search(query, vector, k, **kw)


def open_index(cube_dir: Path, index: dict[str, Any], dimension: int,
               files: list[dict[str, Any]] | None = None) -> Index:
    """The index a manifest's ``index`` entry names under ``cube_dir``: an ``index.arrow``
    (engine ``arrow``, 1.8) or a LanceDB database (engine ``lancedb``, 1.0-1.7). ``files``
    (``index_files``) gives the Arrow file's digest, the cache's key; without it the digest
    is computed when a search needs it.

    Raises:
        FormatError: missing or unreadable.
    """
    path = cube_dir / index["path"]
    if index.get("engine") == ENGINE:
        if not path.is_file():
            raise FormatError(f"search index {index['path']} is missing (rebuild it with "
                              "`memos reindex`)", path=cube_dir)
        digest = next((f["sha256"] for f in files or [] if f["path"] == index["path"]), None)
        return IndexFile(path, digest, dimension)
    if not path.is_dir():
        raise FormatError(f"search index {index['path']}/ is missing (rebuild it with "
                          "`memos reindex`)", path=cube_dir)
    return Index(path, index.get("table", TABLE))


def index_entry() -> dict[str, Any]:
    """The manifest's ``index`` entry for an index memos writes (spec §5, §6)."""
    return {"engine": ENGINE, "path": INDEX_FILE, "table": TABLE, "text_column": "text",
            "vector_column": "vector", "metric": "cosine"}


def from_lance(lance_dir: Path, table: str, path: Path) -> None:
    """Write the rows of an older cube's LanceDB index (formats 1.0-1.7) as ``index.arrow``
    at ``path``, reader rows included, vectors as stored (a rewrite moves an older cube to
    the current format without re-embedding)."""
    write_index_file(path, *split_rows(Index(lance_dir, table)._arrow()))


def split_rows(table: pa.Table) -> tuple[list[str], list[str], np.ndarray, ReaderRows | None]:
    """An index table as what :func:`write_index_file` and ``build_index`` take: the memory
    rows' ids, texts and vectors ``[n, dim] float32``, and the reader rows (``None`` without a
    ``kind`` column)."""
    vec = matrix(table)
    ids, texts = table.column("id").to_pylist(), table.column("text").to_pylist()
    if "kind" not in table.schema.names:
        return ids, texts, vec, None
    kinds = table.column("kind").to_pylist()
    own = [i for i, k in enumerate(kinds) if k == MEMORY_KIND]
    rest = [i for i, k in enumerate(kinds) if k != MEMORY_KIND]
    return ([ids[i] for i in own], [texts[i] for i in own], vec[own],
            ReaderRows([ids[i] for i in rest], [kinds[i] for i in rest],
                       [texts[i] for i in rest], vec[rest]))


def forget_cached(digest: str) -> None:
    """Remove the cache entry derived from the index file of ``digest``: a rewrite that
    replaced that file calls it, so text the cube no longer holds (a forgotten memory) does
    not stay in the cache. Another cube with the same index file only rebuilds it."""
    entry = cache_root() / digest.removeprefix("sha256:")
    if plain_dir(entry) and len(entry.name) == 64:
        shutil.rmtree(entry, ignore_errors=True)


def cache_root() -> Path:
    return config.home() / "index"


def cached(table: pa.Table, digest: str, source: Path) -> Index:
    """The LanceDB table (with its full-text index) derived from the index file's ``table``,
    kept under ``MEMOS_HOME/index/<hex digest>/``; built there on first use, atomically (a
    temporary sibling renamed into place), or in a temporary folder removed at exit when
    ``MEMOS_HOME`` cannot be written or holds something else under that name.

    Raises:
        FormatError: the table cannot be built or opened.
    """
    root = cache_root()
    entry = root / digest.removeprefix("sha256:")
    if plain_dir(entry) and (entry / _DONE).is_file() and not (entry / _DONE).is_symlink():
        with contextlib.suppress(OSError):
            os.utime(entry / _DONE)  # least recently used goes first
        return Index(entry)
    try:
        if os.path.islink(root):  # never build through a link out of MEMOS_HOME
            raise OSError(f"{root} is a symbolic link")
        if not plain_dir(root):
            root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name[:16]}.", suffix=".tmp", dir=root))
    except OSError:
        tmp = Path(tempfile.mkdtemp(prefix="memos-index-"))
        atexit.register(shutil.rmtree, tmp, True)
        _build(table, tmp, source)
        return Index(tmp)
    try:
        _build(table, tmp, source)
        (tmp / _DONE).write_bytes(b"")
        if plain_dir(entry) and not (entry / _DONE).exists():  # an unfinished build
            shutil.rmtree(entry, ignore_errors=True)
        try:
            os.rename(tmp, entry)
        except OSError:  # another process finished first, or something else is there
            if plain_dir(entry) and (entry / _DONE).is_file():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                atexit.register(shutil.rmtree, tmp, True)
                return Index(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _evict(root, keep=entry)
    return Index(entry)


def _build(table: pa.Table, where: Path, source: Path) -> None:
    """The cache table from the index file's rows: handed to LanceDB as they are when the
    memory rows come first (as memos writes them), else reordered through Python lists."""
    if "kind" in table.schema.names:
        mine = np.asarray(pc.equal(table.column("kind"), MEMORY_KIND).to_numpy(
            zero_copy_only=False), bool)
        first = int(mine.sum())
        if not first:
            raise FormatError("search index holds no memory rows", path=source)
        if not mine[:first].all():
            build_index(where, *split_rows(table))
            return
    elif not table.num_rows:
        raise FormatError("search index holds no memory rows", path=source)
    progress.report("building the search index cache", 0, table.num_rows)
    build_table(where, table.replace_schema_metadata(None))
    progress.report("building the search index cache", table.num_rows, table.num_rows)


def _evict(root: Path, *, keep: Path) -> None:
    """Remove the least recently used cache entries until the cache fits its bound, and the
    temporary folders of builds that were killed (a day old or more)."""
    try:
        limit = int(os.environ.get("MEMOS_INDEX_CACHE_BYTES") or CACHE_BYTES)
    except ValueError:
        limit = CACHE_BYTES
    entries = []
    stale = time.time() - 86400
    for e in root.iterdir():
        if e.name.endswith(".tmp") and plain_dir(e) and e.stat().st_mtime < stale:
            shutil.rmtree(e, ignore_errors=True)  # a build killed a day ago or more
            continue
        done = e / _DONE
        if e == keep or not plain_dir(e) or not done.is_file():
            continue
        size = sum(f.stat().st_size for f in e.rglob("*") if f.is_file() and not
                   f.is_symlink())
        entries.append((done.stat().st_mtime, size, e))
    total = sum(s for _, s, _ in entries) + sum(
        f.stat().st_size for f in keep.rglob("*") if f.is_file())
    for _, size, e in sorted(entries):
        if total <= limit:
            break
        shutil.rmtree(e, ignore_errors=True)
        total -= size
