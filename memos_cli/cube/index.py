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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from memos_cli.digest import sha256_file
from memos_cli.errors import FormatError, IntegrityError
from memos_cli.memory import Memory

TABLE = "memories"
RRF_K = 10
VECTOR_WEIGHT = 1.0
TEXT_WEIGHT = 1.5
#: How many candidates each retriever contributes before fusion.
CANDIDATES = 50

# LanceDB's Rust core logs deprecation notices to stderr; they are not for our users.
os.environ.setdefault("LANCE_LOG", "error")


@dataclass(frozen=True)
class Hit:
    """One search result: memory ``id``, fused RRF ``score`` (higher is better), and the
    1-based rank it had in the vector and full-text lists (``None`` if absent there)."""

    id: str
    score: float
    vector_rank: int | None
    text_rank: int | None


#: The index covers the first this many code points of each memory's rendered text (the
#: ``text`` column and the full-text index; the vector covers fewer, see the embedder), so
#: indexing costs a bounded amount of memory per memory (spec §6).
INDEX_CHARS = 1 << 16


def index_text(memory: Memory) -> str:
    """The text a memory is indexed and embedded by: ``memory.render()`` cut to
    :data:`INDEX_CHARS` code points."""
    return memory.render()[:INDEX_CHARS]


def build_index(index_dir: Path, ids: list[str], texts: list[str], vectors: np.ndarray) -> None:
    """Create the LanceDB database at ``index_dir`` with table ``memories``.

    Args:
        ids: memory ids, one per row.
        texts: :func:`index_text` of each memory, the text the full-text index covers.
        vectors: ``[n, dim] float32``, L2-normalised embeddings of ``texts``.
    """
    import lancedb  # deferred: importing LanceDB costs about a second
    from lancedb.index import FTS

    n, dim = vectors.shape
    if not (len(ids) == len(texts) == n):
        raise ValueError("ids, texts and vectors differ in length")
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), pa.float32())
    table = pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "text": pa.array(texts, pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(flat, dim),
        }
    )
    try:
        db = lancedb.connect(str(index_dir))
        tbl = db.create_table(TABLE, table)
        tbl.create_index("text", config=FTS(with_position=False))
    except (OSError, ValueError, RuntimeError) as e:  # e.g. a path LanceDB cannot parse
        raise FormatError(f"cannot write the search index: {str(e).splitlines()[0]}",
                          path=index_dir) from e


def list_files(cube_dir: Path, index_rel: str) -> list[dict[str, Any]]:
    """The manifest's ``index.files`` (spec §6, format 1.4): every file under the index
    directory as ``{"path", "sha256", "size"}``, paths relative to the cube, sorted."""
    root = cube_dir / index_rel
    out = []
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
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
        if root.is_dir() else set()
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


class Index:
    """An opened cube index. Opening reads; searching never writes to the cube."""

    def __init__(self, index_dir: Path, table: str = TABLE) -> None:
        import lancedb

        try:
            self._tbl = lancedb.connect(str(index_dir)).open_table(table)
        except Exception as e:  # lancedb raises bare ValueError/RuntimeError/OSError
            raise FormatError(f"cannot open the search index table {table!r}: {e}",
                              path=index_dir) from e
        self.index_dir = index_dir

    def _arrow(self) -> pa.Table:
        """The whole table, validated. Raises ``FormatError`` when Lance cannot read it."""
        try:
            table = self._tbl.to_arrow()
            table.validate(full=True)
        except Exception as e:  # Lance raises OSError/RuntimeError/ValueError on bad files
            raise FormatError(f"search index is unreadable: {str(e).splitlines()[0]}",
                              path=self.index_dir) from e
        return table

    def count(self) -> int:
        try:
            return int(self._tbl.count_rows())
        except Exception as e:
            raise FormatError(f"search index is unreadable: {str(e).splitlines()[0]}",
                              path=self.index_dir) from e

    def ids(self) -> list[str]:
        """Every id in the index. Raises ``FormatError`` (unreadable or null ids)."""
        column = self._arrow().column("id")
        if column.null_count:
            raise FormatError("search index holds rows without an id", path=self.index_dir)
        return [str(x) for x in column.to_pylist()]

    def vectors(self, ids: list[str]) -> np.ndarray:
        """The stored vectors of ``ids``, in that order: ``[len(ids), dim] float32``.

        Raises:
            KeyError: an id is not in the index.
        """
        table = self._arrow()
        row = {mid: n for n, mid in enumerate(table.column("id").to_pylist())}
        column = table.column("vector").combine_chunks()
        matrix = column.flatten().to_numpy().reshape(len(column), column.type.list_size)
        return np.stack([matrix[row[i]] for i in ids]).astype(np.float32)

    def search(self, query: str, vector: np.ndarray, k: int, *,
               candidates: int = CANDIDATES, rrf_k: int = RRF_K,
               vector_weight: float = VECTOR_WEIGHT,
               text_weight: float = TEXT_WEIGHT) -> list[Hit]:
        """Hybrid search. ``vector`` is the ``[dim] float32`` embedding of ``query``.

        Returns at most ``k`` hits, best first, ties broken by id. The fusion parameters are
        exposed for benchmarks; the defaults are the spec's.
        """
        from lancedb.query import MatchQuery

        pool = max(k, candidates)
        try:
            vec_rows = (
                self._tbl.search(vector.astype(np.float32), query_type="vector")
                .metric("cosine")  # type: ignore[attr-defined]
                .limit(pool).select(["id", "_distance"]).to_list()
            )
            txt_rows = []
            if query.strip():
                txt_rows = (
                    self._tbl.search(MatchQuery(query, "text"),  # type: ignore[call-arg]
                                     query_type="fts")
                    .limit(pool).select(["id", "_score"]).to_list()
                )
        except Exception as e:
            raise FormatError(f"search index is unreadable: {e}", path=self.index_dir) from e
        vrank = {r["id"]: i + 1 for i, r in enumerate(vec_rows)}
        trank = {r["id"]: i + 1 for i, r in enumerate(txt_rows)}
        scores: dict[str, float] = {}
        for ranks, weight in ((vrank, vector_weight), (trank, text_weight)):
            for mid, rank in ranks.items():
                scores[mid] = scores.get(mid, 0.0) + weight / (rrf_k + rank)
        best = sorted(scores, key=lambda m: (-scores[m], m))[:k]
        return [Hit(m, scores[m], vrank.get(m), trank.get(m)) for m in best]
