"""``memos vault compact``: Lance's ``optimize`` on the vault's table, and the approximate
vector index it builds once the vault is large."""

from __future__ import annotations

from datetime import timedelta

from memos_cli.errors import UsageError
from memos_cli.vault import rows as R
from memos_cli.vault.layout import DB_DIR
from memos_cli.vault.store import Vault

#: From this many current memories, ``compact`` builds an approximate vector index; below it,
#: search is exact.
ANN_MIN_ROWS = 100_000


def compact(vault: Vault, keep: timedelta) -> dict[str, int]:
    """Merge small files, bring the indexes up to date, prune versions older than ``keep``;
    then, past :data:`ANN_MIN_ROWS` current memories, build the approximate vector index if
    there is none. Byte and version counts before and after. Lance checks it against
    concurrent writers itself.

    Raises:
        UsageError: the vault is empty.
    """
    tbl = vault.table()
    if tbl is None:
        raise UsageError("the vault is empty", path=vault.path)

    def size() -> int:
        return vault.place.size(DB_DIR)

    before, n = size(), len(vault.versions())
    tbl.optimize(cleanup_older_than=keep, delete_unverified=keep == timedelta(0))
    built = ensure_ann(vault)
    return {"bytes_before": before, "bytes_after": size(), "versions_before": n,
            "versions_after": len(vault.versions()), "ann_index_built": int(built)}


def ensure_ann(vault: Vault) -> bool:
    """Build the IVF-PQ vector index (cosine distance; ``sqrt(n)`` partitions; 48 sub-vectors
    for 384 dimensions) once the vault holds :data:`ANN_MIN_ROWS` current memories; whether
    one was built. Searches then probe 32 partitions and re-rank 50 candidates per result
    exactly (``cube.index.NPROBES``, ``REFINE_FACTOR``)."""
    from lancedb.index import IvfPq

    tbl = vault.table()
    if tbl is None or any(i.columns == ["vector"] for i in tbl.list_indices()):
        return False
    rows = int(tbl.count_rows(f"kind = '{R.MEMORY}'"))
    if rows < ANN_MIN_ROWS:
        return False
    dim = tbl.schema.field("vector").type.list_size
    sub = next(d for d in (48, 32, 16, 8, 4, 2, 1) if dim % d == 0)
    tbl.create_index("vector", config=IvfPq(distance_type="cosine",
                                            num_partitions=max(16, int(rows ** 0.5)),
                                            num_sub_vectors=sub))
    return True
