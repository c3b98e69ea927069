"""The query encoder without torch (#12, one-shot search speed): the first search exports the
real embedder to ONNX and checks it against torch; later searches use it, with the same
vectors to 1e-5 and the same results; a changed model file or MEMOS_NO_ONNX=1 falls back to
torch."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from memos_cli.models import onnx_embedder as ox
from tests.memstore.test_push_pull import js

TEXTS = ["What budget did we agree on?", "", "Ilse Varga — réunion budgétaire; 会议记录",
         "the T4 tactile sensor " * 200]


@pytest.fixture
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("MEMOS_HOME", str(home))
    monkeypatch.setenv("MEMOS_NO_USAGE", "1")
    monkeypatch.delenv("MEMOS_NO_ONNX", raising=False)
    return home


def test_export_matches_torch_and_search_uses_it(fresh_home: Path, embedder,  # type: ignore[no-untyped-def]
                                                 packed_cube: Path) -> None:
    from memos_cli.models.embedder import default_embedder_dir

    model = default_embedder_dir()
    assert ox.cache_dir(model) is None
    first = js("search", packed_cube, "budget", "-k", "5")  # torch, then the export
    where = ox.cache_dir(model)
    assert where is not None and (where / "model.onnx").is_file()
    meta = json.loads((where / "meta.json").read_text())
    assert meta["ok"] and meta["max_abs_diff"] <= ox.TOLERANCE
    assert meta["fingerprint"] == embedder.fingerprint

    fast = ox.query_embedder(None)
    assert isinstance(fast, ox.OnnxEmbedder)
    assert fast.describe() == embedder.describe()
    diff = np.abs(fast.encode(TEXTS) - embedder.encode(TEXTS)).max()
    assert diff <= ox.TOLERANCE
    again = js("search", packed_cube, "budget", "-k", "5")  # through the export now
    assert [r["id"] for r in again["results"]] == [r["id"] for r in first["results"]]
    assert [r["score"] for r in again["results"]] == [r["score"] for r in first["results"]]


def test_a_changed_model_or_no_onnx_falls_back_to_torch(fresh_home: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from memos_cli.models.embedder import Embedder, default_embedder_dir

    model = tmp_path / "encoder"
    shutil.copytree(default_embedder_dir(), model)
    enc = Embedder(model)
    assert ox.export(enc)
    assert isinstance(ox.query_embedder(model), ox.OnnxEmbedder)
    monkeypatch.setenv("MEMOS_NO_ONNX", "1")
    assert isinstance(ox.query_embedder(model), Embedder)
    monkeypatch.delenv("MEMOS_NO_ONNX")
    cfg = model / "config.json"
    os.utime(cfg, ns=(cfg.stat().st_atime_ns, cfg.stat().st_mtime_ns + 10**9))
    assert ox.cache_dir(model) is None  # the export belongs to the files as they were
    assert isinstance(ox.query_embedder(model), Embedder)  # and makes a new export
    assert isinstance(ox.query_embedder(model), ox.OnnxEmbedder)


def test_a_failed_check_is_kept_and_not_used(fresh_home: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from memos_cli.models.embedder import Embedder, default_embedder_dir

    monkeypatch.setattr(ox, "TOLERANCE", -1.0)  # no export can pass
    enc = Embedder(default_embedder_dir())
    assert not ox.export(enc)
    where = ox.cache_dir(default_embedder_dir())
    assert where is not None and not json.loads((where / "meta.json").read_text())["ok"]
    with pytest.raises(FileNotFoundError):
        ox.OnnxEmbedder.open(default_embedder_dir(), "x")
    assert isinstance(ox.query_embedder(None), Embedder)  # and no new export is tried
    assert ox.cache_dir(default_embedder_dir()) == where


def test_a_failed_export_is_kept_and_not_tried_again(fresh_home: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from memos_cli.models.embedder import Embedder, default_embedder_dir

    calls = []

    def broken(embedder, path):  # type: ignore[no-untyped-def]
        calls.append(path)
        raise RuntimeError("the exporter cannot trace this model")

    monkeypatch.setattr(ox, "_export_model", broken)
    assert isinstance(ox.query_embedder(None), Embedder)  # tried once, failed
    where = ox.cache_dir(default_embedder_dir())
    assert where is not None
    meta = json.loads((where / "meta.json").read_text())
    assert not meta["ok"] and "cannot trace" in meta["error"]
    assert isinstance(ox.query_embedder(None), Embedder)
    assert len(calls) == 1  # the second search did not pay for another attempt
