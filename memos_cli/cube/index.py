"""The search index: a LanceDB table inside the cube, vector plus full-text (spec/memcube.md §6).

The index is derived data: every row comes from ``memories.arrow`` (``id`` and
``Memory.render()`` text) and the embedder recorded in the manifest, so ``memos reindex`` can
rebuild it at any time.

Retrieval is hybrid: an exact cosine search over the vectors and a BM25 full-text search
(LanceDB's native inverted index, English stemming and stop words), fused with weighted
Reciprocal Rank Fusion (Cormack, Clarke and Büttcher, SIGIR 2009):
``score = w_vector / (k + rank_vector) + w_text / (k + rank_text)``. The paper's k = 60 with
equal weights is the usual default; memos uses k = 10 and w_text = 1.5, chosen on the LoCoMo
benchmark in ``bench/retrieval.py`` (recall@10 0.674 against 0.616 for k = 60, equal weights;
the README has the table).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from memos_cli.errors import FormatError
from memos_cli.memory import Memory

TABLE = "memories"
#: ``kind`` of the row that indexes a memory's own text; reader rows (spec §6.1, format 1.6)
#: carry the reader's name (``context``, ``questions``) and find the memory in ``id``.
MEMORY_KIND = "memory"
ROW_KINDS = (MEMORY_KIND, "context", "questions")
RRF_K = 10
VECTOR_WEIGHT = 1.0
TEXT_WEIGHT = 1.5
#: How many candidates each retriever contributes before fusion.
CANDIDATES = 50
#: How the vault's approximate vector index is searched, by its Lance type: partitions probed,
#: candidates re-ranked exactly per result wanted, and for HNSW the candidate list (``ef``,
#: at least the rows asked for times the refine factor). IVF-PQ (vaults compacted before
#: 2026-12): refine 50 gave recall@10 0.995 at 100k, refine 10 0.927 (bench/scale.py).
#: IVF_HNSW_SQ at 1M memories (bench/vault_ann.py, tuned on 60 LoCoMo questions): 8 probes,
#: ef 128, refine 2 gave recall@10 0.98-0.99 there but 0.912 on held-out questions, so the
#: setting is 24 probes, ef 256, refine 4 (0.997 on the tuning questions, about 20 ms); its
#: held-out result is in docs/benchmarks/scale.md.
ANN_QUERY: dict[str, dict[str, Any]] = {
    "IVF_PQ": {"minimum_nprobes": 32, "maximum_nprobes": 32, "refine_factor": 50},
    "IVF_HNSW_SQ": {"minimum_nprobes": 24, "maximum_nprobes": 24, "ef": 256,
                    "refine_factor": 4},
}
NPROBES, REFINE_FACTOR = 32, 50  # IVF-PQ's, for bench/scale.py's recall check

# LanceDB's Rust core logs deprecation notices to stderr; they are not for our users.
os.environ.setdefault("LANCE_LOG", "error")


@dataclass(frozen=True)
class Hit:
    """One search result: memory ``id``, fused RRF ``score`` (higher is better), and the
    1-based rank it had in the vector and full-text lists (``None`` if absent there).

    ``via`` is the kind of the row that gave the memory its best rank (``memory`` for its own
    text, else the reader's name) and ``matched`` that row's text when it is a reader's."""

    id: str
    score: float
    vector_rank: int | None
    text_rank: int | None
    via: str = MEMORY_KIND
    matched: str | None = None
    #: the values of the extra columns a search asked for (the vault's ``record``), else None
    extra: dict[str, Any] | None = field(default=None, compare=False)


#: The index covers the first this many code points of each memory's rendered text (the
#: ``text`` column and the full-text index; the vector covers fewer, see the embedder), so
#: indexing costs a bounded amount of memory per memory (spec §6).
INDEX_CHARS = 1 << 16


def index_text(memory: Memory) -> str:
    """The text a memory is indexed and embedded by: ``memory.render()`` cut to
    :data:`INDEX_CHARS` code points."""
    return memory.render()[:INDEX_CHARS]


@dataclass
class ReaderRows:
    """Rows a MemReader adds to the index (spec §6.1): ``ids[i]`` is the memory that
    ``texts[i]`` finds, ``kinds[i]`` the reader's name; ``vectors`` is ``[n, dim] float32``
    or ``None`` until embedded."""

    ids: list[str]
    kinds: list[str]
    texts: list[str]
    vectors: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)


def rows_table(ids: list[str], texts: list[str], vectors: np.ndarray,
               extra: ReaderRows | None = None) -> pa.Table:
    """The index's rows as a table: ``id``, ``text``, ``kind`` (only with reader rows) and
    ``vector`` ``fixed_size_list<float32>[dim]``, the memory rows first.

    Args:
        ids: memory ids, one per row.
        texts: :func:`index_text` of each memory, the text the full-text index covers.
        vectors: ``[n, dim] float32``, L2-normalised embeddings of ``texts``.
        extra: reader rows (embedded); when given and not empty, the table gets a ``kind``
            column (``memory`` for the rows above) and these rows after them.

    Raises:
        ValueError: lengths or dimensions disagree.
    """
    n, dim = vectors.shape
    if not (len(ids) == len(texts) == n):
        raise ValueError("ids, texts and vectors differ in length")
    columns: dict[str, Any] = {"id": list(ids), "text": list(texts)}
    if extra is not None and len(extra):
        if extra.vectors is None or extra.vectors.shape != (len(extra), dim):
            raise ValueError("reader rows are not embedded with the index's dimension")
        columns = {"id": [*ids, *extra.ids], "text": [*texts, *extra.texts],
                   "kind": [MEMORY_KIND] * n + list(extra.kinds)}
        vectors = np.concatenate([vectors, extra.vectors])
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), pa.float32())
    return pa.table({**{name: pa.array(values, pa.string()) for name, values in columns.items()},
                     "vector": pa.FixedSizeListArray.from_arrays(flat, dim)})


def build_index(index_dir: Path, ids: list[str], texts: list[str], vectors: np.ndarray,
                extra: ReaderRows | None = None) -> None:
    """Create the LanceDB database at ``index_dir`` with table ``memories`` holding
    :func:`rows_table` of the arguments, and its full-text index."""
    build_table(index_dir, rows_table(ids, texts, vectors, extra))


def build_table(index_dir: Path, table: pa.Table) -> None:
    """:func:`build_index` of a table of its columns (``id``, ``text``, optionally ``kind``,
    ``vector``; memory rows first): an ``index.arrow`` read as it is, with no Python lists.

    Raises:
        FormatError: LanceDB cannot write it there.
    """
    import lancedb  # deferred: importing LanceDB costs about a second
    from lancedb.index import FTS

    try:
        db = lancedb.connect(str(index_dir))
        tbl = db.create_table(TABLE, table)
        tbl.create_index("text", config=FTS(with_position=False))
    except (OSError, ValueError, RuntimeError) as e:  # e.g. a path LanceDB cannot parse
        raise FormatError(f"cannot write the search index: {str(e).splitlines()[0]}",
                          path=index_dir) from e


class Index:
    """An opened cube index, read through Lance's own Python API (pylance; importing it costs
    a third of importing LanceDB, which only writes indexes). Opening reads; searching never
    writes to the cube."""

    def __init__(self, index_dir: Path, table: str = TABLE) -> None:
        import lance

        path = Path(index_dir) / f"{table}.lance"  # LanceDB's layout of a table
        try:
            if not path.is_dir():
                raise FileNotFoundError(f"Table '{table}' was not found")
            self._tbl = lance.dataset(str(path))
        except Exception as e:  # Lance raises bare ValueError/RuntimeError/OSError
            raise FormatError(f"cannot open the search index table {table!r}: "
                              f"{str(e).splitlines()[0] if str(e) else type(e).__name__}",
                              path=index_dir) from e
        self.index_dir: Path | str = index_dir
        self.has_kinds = "kind" in self._tbl.schema.names
        self.where: str | None = None
        self.approximate = False  # a cube's index has no vector index: nothing to tune
        self.ann: str | None = None

    @classmethod
    def of_table(cls, ds: Any, where_path: Path | str, *, where: str | None) -> Index:
        """Search an open Lance dataset (the vault's, :meth:`Vault.dataset`), with one row per
        memory among the rows searches can match; ``where`` restricts them further (a Lance
        prefilter)."""
        index = cls.__new__(cls)
        index._tbl, index.index_dir, index.has_kinds = ds, where_path, True
        index.where = where
        index.approximate = True
        index._per_memory = 1
        index.ann = ann_type(ds)
        return index

    def _arrow(self) -> pa.Table:
        """The whole table, validated. Raises ``FormatError`` when Lance cannot read it."""
        try:
            table = self._tbl.to_table()
            table.validate(full=True)
        except Exception as e:  # Lance raises OSError/RuntimeError/ValueError on bad files
            raise FormatError(f"search index is unreadable: {str(e).splitlines()[0]}",
                              path=self.index_dir) from e
        return table

    def _memory_rows(self) -> pa.Table:
        """The rows that index memories' own text (all rows of an index without readers)."""
        table = self._arrow()
        if not self.has_kinds:
            return table
        import pyarrow.compute as pc

        return table.filter(pc.equal(table.column("kind"), MEMORY_KIND))

    def reader_rows(self) -> tuple[dict[str, int], set[str]]:
        """How many rows each reader added (``{kind: count}``) and the memory ids they point
        to, in one read of the table; both empty without readers.

        Raises:
            FormatError: unreadable, or a row of a kind this version does not know.
        """
        if not self.has_kinds:
            return {}, set()
        table = self._arrow()
        counts: dict[str, int] = {}
        ids: set[str] = set()
        for mid, kind in zip(table.column("id").to_pylist(), table.column("kind").to_pylist(),
                             strict=True):
            if kind not in ROW_KINDS:
                raise FormatError(f"search index holds a row of unknown kind {kind!r}",
                                  path=self.index_dir)
            if kind != MEMORY_KIND:
                counts[kind] = counts.get(kind, 0) + 1
                ids.add(str(mid))
        return counts, ids

    def ready(self) -> Index:
        """Have everything a search needs open, so that timing a search leaves out set-up
        (a cube's LanceDB table is open already; :class:`IndexFile` builds its cache)."""
        return self

    def count(self) -> int:
        try:
            return int(self._tbl.count_rows())
        except Exception as e:
            raise FormatError(f"search index is unreadable: {str(e).splitlines()[0]}",
                              path=self.index_dir) from e

    def ids(self) -> list[str]:
        """The id of every memory row (reader rows left out). Raises ``FormatError``
        (unreadable or null ids)."""
        column = self._memory_rows().column("id")
        if column.null_count:
            raise FormatError("search index holds rows without an id", path=self.index_dir)
        return [str(x) for x in column.to_pylist()]

    def vectors(self, ids: list[str]) -> np.ndarray:
        """The stored vectors of ``ids``, in that order: ``[len(ids), dim] float32``.

        Raises:
            KeyError: an id is not in the index.
        """
        table = self._memory_rows()
        row = {mid: n for n, mid in enumerate(table.column("id").to_pylist())}
        column = table.column("vector").combine_chunks()
        matrix = column.flatten().to_numpy().reshape(len(column), column.type.list_size)
        return np.stack([matrix[row[i]] for i in ids]).astype(np.float32)

    def _rows_per_memory(self) -> int:
        """Rows per memory row, rounded up (1 without readers): how many more rows to fetch so
        that ``candidates`` distinct memories remain after collapsing."""
        if not self.has_kinds:
            return 1
        if not hasattr(self, "_per_memory"):
            try:
                total = int(self._tbl.count_rows())
                own = int(self._tbl.count_rows(filter=f"kind = '{MEMORY_KIND}'"))
            except Exception as e:
                raise FormatError(f"search index is unreadable: {str(e).splitlines()[0]}",
                                  path=self.index_dir) from e
            self._per_memory = max(1, min(16, -(-total // max(own, 1))))
        return self._per_memory

    def search(self, query: str, vector: np.ndarray, k: int, *,
               candidates: int = CANDIDATES, rrf_k: int = RRF_K,
               vector_weight: float = VECTOR_WEIGHT,
               text_weight: float = TEXT_WEIGHT, columns: tuple[str, ...] = ()) -> list[Hit]:
        """Hybrid search. ``vector`` is the ``[dim] float32`` embedding of ``query``.

        Each retriever ranks rows; a memory takes the rank of its best row in each list (rows
        of one memory collapse into one entry, spec §6.1), and the two lists are fused.
        Returns at most ``k`` hits, best first, ties broken by id. The fusion parameters are
        exposed for benchmarks; the defaults are the spec's. ``columns``: more columns to read
        with the rows found, returned in ``Hit.extra`` (the vault reads its records so).
        """
        from lance.query import MatchQuery

        pool = max(k, candidates)
        rows = pool * self._rows_per_memory()
        cols = (["id", "kind", "text"] if self.has_kinds else ["id"]) + list(columns)
        where: dict[str, Any] = {"filter": self.where, "prefilter": True} if self.where \
            else {}
        try:
            nearest: dict[str, Any] = {"column": "vector", "q": vector.astype(np.float32),
                                       "k": rows, "metric": "cosine"}
            if self.approximate:  # the vault: an approximate index past 100k memories
                nearest |= ANN_QUERY.get(self.ann or "", {})
            # the full-text probe runs beside the vector probe (Lance releases the GIL)
            txt_job = _probes().submit(
                lambda: self._tbl.to_table(columns=[*cols, "_score"],
                                           full_text_query=MatchQuery(query, "text"),
                                           limit=rows, **where).to_pylist()) \
                if query.strip() else None
            vec_rows = self._tbl.to_table(columns=[*cols, "_distance"], nearest=nearest,
                                          **where).to_pylist()
            txt_rows = txt_job.result() if txt_job is not None else []
        except Exception as e:
            raise FormatError(f"search index is unreadable: {e}", path=self.index_dir) from e
        vrank, vrow = _collapse(vec_rows, pool)
        trank, trow = _collapse(txt_rows, pool)
        scores: dict[str, float] = {}
        for ranks, weight in ((vrank, vector_weight), (trank, text_weight)):
            for mid, rank in ranks.items():
                scores[mid] = scores.get(mid, 0.0) + weight / (rrf_k + rank)
        best = sorted(scores, key=lambda m: (-scores[m], m))[:k]
        out = []
        for m in best:
            # the row that contributed most: the better-weighted of the two first rows
            v = vector_weight / (rrf_k + vrank[m]) if m in vrank else -1.0
            t = text_weight / (rrf_k + trank[m]) if m in trank else -1.0
            row = vrow[m] if v >= t else trow[m]
            kind = row.get("kind") or MEMORY_KIND
            out.append(Hit(m, scores[m], vrank.get(m), trank.get(m), kind,
                           None if kind == MEMORY_KIND else row.get("text"),
                           {c: row.get(c) for c in columns} if columns else None))
        return out


_POOL: dict[int, ThreadPoolExecutor] = {}


def _probes() -> ThreadPoolExecutor:
    """The threads that run full-text probes beside vector probes: one pool per process (a
    forked child gets its own, since the parent's threads do not exist in it)."""
    pid = os.getpid()
    if pid not in _POOL:
        _POOL.clear()
        _POOL[pid] = ThreadPoolExecutor(max_workers=2, thread_name_prefix="memos-fts")
    return _POOL[pid]


def ann_type(ds: Any) -> str | None:
    """The Lance type of the approximate index on ``vector`` (``IVF_PQ``, ``IVF_HNSW_SQ``),
    or ``None`` when there is none."""
    try:
        found = [i.get("type") for i in ds.list_indices() if i.get("fields") == ["vector"]]
    except Exception:  # an index Lance cannot describe is searched with its defaults
        return None
    return str(found[0]) if found else None


def _collapse(rows: list[dict[str, Any]], pool: int
              ) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
    """Ranks of distinct memories in a ranked row list (a memory's first row gives its rank),
    at most ``pool`` of them, and that first row of each."""
    rank: dict[str, int] = {}
    first: dict[str, dict[str, Any]] = {}
    for r in rows:
        mid = r["id"]
        if mid not in rank:
            if len(rank) == pool:
                break
            rank[mid] = len(rank) + 1
            first[mid] = r
    return rank, first
