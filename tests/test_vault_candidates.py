"""The candidates a vault load decides against (spec §4.6): each new memory's nearest memory
rows at or above the floor, at most k, found in bounded blocks."""

import numpy as np
import pytest

from memos_cli.vault import evolve


def reference(sims: np.ndarray, floor: float, k: int) -> set[tuple[int, int]]:
    out = set()
    for q, row in enumerate(sims):
        cols = [c for c in np.argsort(-row, kind="stable") if row[c] >= floor][:k]
        out |= {(q, int(c)) for c in cols}
    return out


@pytest.mark.parametrize("group", [1, 4, 64])
@pytest.mark.parametrize("block", [1, 7, 512])
def test_top_rows_are_the_best_above_the_floor_in_any_block_size(
        block: int, group: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    queries = rng.normal(size=(40, 16)).astype(np.float32)
    rows = np.vstack([queries[:10] + rng.normal(0, 0.2, (10, 16)).astype(np.float32),
                      rng.normal(size=(60, 16)).astype(np.float32),
                      queries[:5]])  # exact copies: ties with the queries themselves
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    monkeypatch.setattr(evolve, "QUERY_ROWS", block)  # several blocks, or one
    monkeypatch.setattr(evolve, "GROUP", group)  # more groups than k, or fewer
    for floor, k in ((0.3, 3), (0.0, 12), (0.95, 2), (1.5, 4)):
        mat = rows
        r, c, v = evolve._top_rows(queries, mat, floor, k)
        assert set(zip(r.tolist(), c.tolist(), strict=True)) == reference(
            queries @ mat.T, floor, k)
        assert np.allclose(v, (queries @ mat.T)[r, c]) and (v >= floor).all()
        assert max(np.bincount(r, minlength=len(queries)), default=0) <= k
