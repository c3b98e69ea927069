"""The vault's approximate vector index (#34): ``compact`` builds IVF_HNSW_SQ past the size
threshold, replaces an IVF-PQ index of an earlier memos, and search uses the settings of the
index it finds (``cube.index.ANN_QUERY``)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memos_cli.cube.index import ann_type
from memos_cli.memory import Memory
from memos_cli.vault import Vault
from memos_cli.vault import compact as compact_mod
from memos_cli.vault.rows import Delta
from memos_cli.vault.search import search

NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)
COLOURS = ("blue", "green", "red", "grey", "white", "black", "pink", "gold", "teal", "rust")


def vault_of(path: Path, embedder: Any, n: int) -> tuple[Vault, list[str]]:
    texts = [f"Archive box {i} holds the {COLOURS[i % 10]} folders of year {1900 + i}."
             for i in range(n)]
    vecs = np.asarray(embedder.encode(texts), np.float32)
    mems = [Memory.create(t, now=NOW, owner="ann", visibility="public") for t in texts]
    delta = Delta(memories=[(m, x, "c") for m, x in zip(mems, vecs, strict=True)])
    delta.cubes["c"] = {"name": "c", "installed_by": "ann",
                        "installed_at": "2026-11-01T00:00:00.000000Z"}
    delta.meta["embedding"] = embedder.describe()
    v = Vault(path)
    v.apply(delta, dim=vecs.shape[1])
    return v, texts


def test_compact_builds_hnsw_and_replaces_ivf_pq(tmp_path: Path, embedder: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from lancedb.index import IvfPq

    monkeypatch.setattr(compact_mod, "ANN_MIN_ROWS", 300)
    v, texts = vault_of(tmp_path / "v", embedder, 400)
    assert ann_type(v.dataset()) is None  # small: exact search
    v.table().create_index("vector", config=IvfPq(distance_type="cosine", num_partitions=4,
                                                  num_sub_vectors=48))
    assert ann_type(Vault(tmp_path / "v").dataset()) == "IVF_PQ"  # as an earlier memos left it
    before = search(Vault(tmp_path / "v"), embedder, texts[123], 5, user="ann")
    assert before[0].memory.content == texts[123]
    report = compact_mod.compact(Vault(tmp_path / "v"), timedelta(0))
    assert report["ann_index_built"] == 1
    after = Vault(tmp_path / "v")
    assert ann_type(after.dataset()) == "IVF_HNSW_SQ"
    for i in (7, 123, 399):
        hits = search(after, embedder, texts[i], 5, user="ann")
        assert hits[0].memory.content == texts[i]
    assert compact_mod.compact(Vault(tmp_path / "v"), timedelta(0))["ann_index_built"] == 0
