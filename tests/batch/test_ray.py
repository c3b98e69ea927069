"""Batch work on a local Ray cluster (#16): ``pack --ray`` gives the same cube as packing in
process; ``batch convert`` converts many cubes as Ray tasks and reports each failure alone;
a Ray address that does not answer is one line, exit 14, within the timeout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.memstore.conftest import free_port
from tests.memstore.test_push_pull import cli, js

QUERIES = ["What budget did we agree on?", "who owns the launch", "deadline", "database"]


def test_a_cube_packed_on_ray_is_the_cube_packed_in_process(
        ray_cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from memos_cli.cube import open_cube
    from tests.conftest import ROOT

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    corpus = ROOT / "fixtures/corpus"
    here, there = tmp_path / "here" / "team.memcube", tmp_path / "ray" / "team.memcube"
    local = js("pack", corpus, "-o", here)
    on_ray = js("pack", corpus, "-o", there, "--ray", "auto", "--workers", "2")
    assert on_ray["cube_id"] == local["cube_id"] and on_ray["memories"] == local["memories"]
    assert (here / "memories.arrow").read_bytes() == (there / "memories.arrow").read_bytes()
    a, b = open_cube(here), open_cube(there)
    ids = [m.id for m in a.memories]
    assert np.allclose(a.index().vectors(ids), b.index().vectors(ids), atol=1e-6)
    manifests = [json.loads((c / "manifest.json").read_text()) for c in (here, there)]
    for m in manifests:
        m.pop("index_files")  # Lance names its data files at random
    assert manifests[0] == manifests[1]
    for q in QUERIES:
        hits = [[r["id"] for r in js("search", c, q, "-k", "5")["results"]]
                for c in (here, there)]
        assert hits[0] == hits[1] and hits[0]
    assert js("verify", there)["ok"]


def test_batch_convert_on_ray_fails_each_cube_alone(ray_cluster: str, packed_cube: Path,
                                                    tiny_llama: Path, tmp_path: Path) -> None:
    cubes = []
    for n in range(2):
        c = tmp_path / f"c{n}.memcube"
        shutil.copytree(packed_cube, c)
        cubes.append(c)
    broken = tmp_path / "broken.memcube"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    result = cli("batch", "convert", *cubes, broken, "--to", "kv", "--model", tiny_llama,
                 "--ray", "auto", "--json", code=6)
    report = json.loads(result.stdout)
    assert (report["converted"], report["failed"]) == (2, 1)
    by_cube = {Path(r["cube"]).name: r for r in report["results"]}
    assert by_cube["broken.memcube"]["exit_code"] == 6
    assert "manifest" in by_cube["broken.memcube"]["error"]
    for c in cubes:
        assert by_cube[c.name]["exit_code"] == 0
        assert "activation" in json.loads((c / "manifest.json").read_text())["tiers"]
        assert js("verify", c)["ok"]


def test_batch_convert_without_ray_runs_here(packed_cube: Path, tiny_llama: Path,
                                             tmp_path: Path) -> None:
    c = tmp_path / "one.memcube"
    shutil.copytree(packed_cube, c)
    report = js("batch", "convert", c, "--to", "kv", "--model", tiny_llama,
                "--set", "max-new-tokens=1", code=2)
    assert report["results"][0]["exit_code"] == 2  # convert has no such option: its error
    assert "max-new-tokens" in report["results"][0]["error"]
    assert js("batch", "convert", c, "--to", "kv", "--model", tiny_llama)["converted"] == 1


def test_a_ray_address_that_does_not_answer(tmp_path: Path) -> None:
    from tests.conftest import ROOT

    env = {**os.environ, "MEMOS_REMOTE_TIMEOUT": "2"}
    started = time.monotonic()
    for address in (f"127.0.0.1:{free_port()}", "nonsense"):
        r = subprocess.run([sys.executable, "-m", "memos_cli", "pack",
                            str(ROOT / "fixtures/corpus"), "-o", str(tmp_path / "x.memcube"),
                            "--ray", address], capture_output=True, text=True, env=env,
                           timeout=120)
        assert r.returncode == (14 if address != "nonsense" else 2), r.stderr
        assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1
    assert time.monotonic() - started < 60
    assert not (tmp_path / "x.memcube").exists()
