"""#34: convert builds chunks a window at a time, sorted by length within it, and writes them in
priority order; the window is bounded in groups and in bytes held, and what it builds does not
depend on the window."""

import shutil
from pathlib import Path

import pytest
import torch

from memos_cli.cube import open_cube
from memos_cli.cube.kv import read_segment
from memos_cli.models import chat
from memos_cli.tiers import convert_chunks, prompt
from memos_cli.tiers.convert import select_memories


@pytest.fixture(scope="module")
def tiny(tiny_llama: Path) -> chat.ChatModel:
    return chat.load(str(tiny_llama))


def test_the_window_is_bounded_in_groups_and_bytes(tiny: chat.ChatModel, packed_cube: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    mems = open_cube(packed_cube).memories
    groups = [[m] for m in mems]
    assert convert_chunks._window(tiny, groups, 0, {}) == list(range(len(groups)))
    monkeypatch.setattr(convert_chunks, "WINDOW", 3)
    assert convert_chunks._window(tiny, groups, 2, {}) == [2, 3, 4]
    fp = tiny.fingerprint()
    per_token = 2 * fp["num_layers"] * fp["num_kv_heads"] * fp["head_dim"] * 4
    first = len(prompt.chunk_ids(tiny.tokenizer, groups[0])) * per_token
    monkeypatch.setattr(convert_chunks, "WINDOW_BYTES", first)
    assert convert_chunks._window(tiny, groups, 0, {}) == [0]  # the first always
    monkeypatch.setattr(convert_chunks, "WINDOW_BYTES", 1)
    assert convert_chunks._window(tiny, groups, 1, {}) == [1]
    stored = {convert_chunks.chunk_build.key_of(groups[1]): object()}
    assert convert_chunks._window(tiny, groups, 1, stored) == [2]  # stored ones are skipped


def test_a_window_of_one_builds_the_same_chunk_set(tiny: chat.ChatModel, cube_copy: Path,
                                                   tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The chunk set written with windows of many groups (sorted by length, batched) is the
    one written a chunk a window: same ids, entries in the same priority order, and tensors
    equal up to the float rounding of batched products."""
    other = tmp_path / "other.memcube"
    shutil.copytree(cube_copy, other)
    wide = convert_chunks.convert_to_chunks(cube_copy, tiny, select_memories(open_cube(cube_copy)),
                                            storage_dtype="float32")
    monkeypatch.setattr(convert_chunks, "WINDOW", 1)
    narrow = convert_chunks.convert_to_chunks(other, tiny, select_memories(open_cube(other)),
                                              storage_dtype="float32")
    assert wide.chunk_set == narrow.chunk_set and wide.chunks == narrow.chunks > 3
    (a,), (b,) = open_cube(cube_copy).chunk_sets, open_cube(other).chunk_sets
    assert [c.key for c in a.chunks] == [c.key for c in b.chunks]
    assert [c.memory_ids for c in a.chunks] == [c.memory_ids for c in b.chunks]
    for x, y in zip(a.chunks, b.chunks, strict=True):
        s, t = read_segment(cube_copy / x.path), read_segment(other / y.path)
        assert torch.equal(s.token_ids, t.token_ids)
        for (k1, v1), (k2, v2) in zip(s.layers, t.layers, strict=True):
            torch.testing.assert_close(k1, k2, atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(v1, v2, atol=1e-4, rtol=1e-4)
