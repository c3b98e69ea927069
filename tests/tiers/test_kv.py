"""The activation tier with a tiny random Llama: identical output, no mutation, refusal of
foreign segments, RoPE re-rotation, composition, and the convert/run commands."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from memos_cli.cli.app import app
from memos_cli.cube import open_cube, verify
from memos_cli.cube.kv import Segment
from memos_cli.digest import sha256_file
from memos_cli.errors import FormatError, IntegrityError, SignatureError, UsageError
from memos_cli.models import chat
from memos_cli.tiers import kv, rope
from memos_cli.tiers.convert import convert_to_kv, select_memories
from memos_cli.tiers.decode import generate
from memos_cli.tiers.plaintext import build_messages
from tests.conftest import make_tiny_llama

runner = CliRunner()
Q = "Who owns the vision stack?"


@pytest.fixture(scope="module")
def tiny(tiny_llama: Path) -> chat.ChatModel:
    return chat.load(str(tiny_llama))


@pytest.fixture
def kv_cube(cube_copy: Path, tiny: chat.ChatModel, keys) -> Path:  # type: ignore[no-untyped-def]
    convert_to_kv(cube_copy, tiny, select_memories(open_cube(cube_copy)), key=keys[0])
    return cube_copy


def test_prefix_plus_suffix_is_the_text_prompt(tiny: chat.ChatModel, packed_cube: Path) -> None:
    mems = open_cube(packed_cube).memories[:4]
    full = tiny.tokenizer.apply_chat_template(build_messages(Q, mems), add_generation_prompt=True,
                                              tokenize=True, return_dict=True)["input_ids"]
    assert kv.prefix_ids(tiny.tokenizer, mems) + kv.suffix_ids(tiny.tokenizer, Q) == list(full)


def test_kv_output_is_text_output(kv_cube: Path, tiny: chat.ChatModel) -> None:
    cube = open_cube(kv_cube)
    mems = select_memories(cube)
    text = generate(tiny, build_messages(Q, mems), max_new_tokens=12)
    res = kv.answer_kv([cube], tiny, Q, max_new_tokens=12)
    assert res.tier == "kv" and res.answer == text.text
    assert res.new_tokens == text.new_tokens and res.prompt_tokens == text.prompt_tokens
    assert [r.memory.id for r in res.memories] == [m.id for m in mems]


def test_stored_cache_is_never_mutated(kv_cube: Path, tiny: chat.ChatModel) -> None:
    cube = open_cube(kv_cube)
    seg_path = cube.segment_path(cube.segments[0])
    before = sha256_file(seg_path)
    a = kv.answer_kv([cube], tiny, Q, max_new_tokens=8)
    b = kv.answer_kv([cube], tiny, Q, max_new_tokens=8)
    assert a.answer == b.answer and sha256_file(seg_path) == before
    segs, _ = kv.load_segments([cube], tiny)
    n = segs[0].meta.num_tokens
    kv.generate_with_segments(tiny, segs, Q, max_new_tokens=4)
    assert all(k.shape[1] == n for k, _ in segs[0].layers)  # in-memory tensors too


def test_segment_of_another_model_is_refused(kv_cube: Path, tmp_path: Path) -> None:
    other = chat.load(str(make_tiny_llama(tmp_path / "seed1", seed=1)))
    with pytest.raises(FormatError, match="weights_sample_sha256") as e:
        kv.answer_kv([open_cube(kv_cube)], other, Q)
    assert "config_sha256" not in str(e.value)
    deeper = chat.load(str(make_tiny_llama(tmp_path / "deep", layers=3)))
    with pytest.raises(FormatError, match="num_layers 2 != 3"):
        kv.answer_kv([open_cube(kv_cube)], deeper, Q)


def test_rerotation_equals_computing_at_the_offset(tiny: chat.ChatModel) -> None:
    ids = torch.tensor([list(range(5, 25))])
    offset = 37
    with torch.inference_mode():
        at0 = tiny.model.base_model(input_ids=ids, use_cache=True).past_key_values
        shifted = tiny.model.base_model(input_ids=ids, use_cache=True,
                                        position_ids=torch.arange(offset, offset + 20)[None]
                                        ).past_key_values
    inv = rope.describe(tiny.model)[0].inv_freq
    for a, b in zip(at0.layers, shifted.layers, strict=True):
        moved = kv.rerotate(a.keys[0], offset, inv)
        assert torch.allclose(moved, b.keys[0], atol=1e-5)
        assert not torch.allclose(a.keys[0], b.keys[0], atol=1e-3)
        assert torch.allclose(a.values[0], b.values[0], atol=1e-5)  # values carry no position


def test_composition_modes(packed_cube: Path, tiny: chat.ChatModel) -> None:
    mems = open_cube(packed_cube).memories
    parts = [mems[:6], mems[6:12]]
    segs = [Segment(*kv.build_segment(tiny, p)) for p in parts]
    full = [*kv.prefix_ids(tiny.tokenizer, parts[0]), *kv.prefix_ids(tiny.tokenizer, parts[1]),
            *kv.suffix_ids(tiny.tokenizer, Q)]
    with torch.inference_mode():
        ref = tiny.model(torch.tensor([full])).logits[0, -1]

    def err(mode: str, recompute: int = 0) -> float:
        cache, toks = kv.compose(tiny, segs, mode=mode, recompute=recompute)
        assert len(toks) == len(full) - len(kv.suffix_ids(tiny.tokenizer, Q))
        with torch.inference_mode():
            out = tiny.model(torch.tensor([full[len(toks):]]), past_key_values=cache)
        return float((out.logits[0, -1] - ref).abs().max())

    # recomputing the whole second segment is full recompute; anything less is not
    assert err("rerotate", 10_000) < 1e-4
    assert err("rerotate") > 1e-3 and err("naive") > 1e-3
    # (which of naive and rerotate is closer is measured on the real model: tests/
    # test_e2e_real_model.py and bench/kv.py; a random tiny model says nothing about it)


def test_convert_keeps_signature_only_with_key(kv_cube: Path, tiny: chat.ChatModel,
                                               keys) -> None:  # type: ignore[no-untyped-def]
    report = verify(kv_cube, keys[1])
    assert report.signature == "verified"
    m = json.loads((kv_cube / "manifest.json").read_text())
    assert m["tiers"] == ["plaintext", "activation"] and m["format_version"] == "1.8"
    convert_to_kv(kv_cube, tiny, select_memories(open_cube(kv_cube), top=3),
                  storage_dtype="int8")
    assert not (kv_cube / "memcube.sig").exists()
    with pytest.raises(SignatureError, match="unsigned"):
        verify(kv_cube, keys[1])
    assert len(open_cube(kv_cube).segments) == 2


def test_tampered_or_missing_segment(kv_cube: Path, tiny: chat.ChatModel, keys) -> None:  # type: ignore[no-untyped-def]
    cube = open_cube(kv_cube)
    seg = cube.segment_path(cube.segments[0])
    data = bytearray(seg.read_bytes())
    data[-10] ^= 0xFF
    seg.write_bytes(bytes(data))
    with pytest.raises((SignatureError, IntegrityError), match=seg.name):
        verify(kv_cube, keys[1])
    seg.write_bytes(bytes(data[:-100]))
    with pytest.raises(IntegrityError, match="differs from the manifest"):
        kv.answer_kv([open_cube(kv_cube)], tiny, Q)
    seg.unlink()
    with pytest.raises(IntegrityError, match="listed in the manifest but missing"):
        kv.answer_kv([open_cube(kv_cube)], tiny, Q)


def test_cube_without_kv_tier(packed_cube: Path, tiny: chat.ChatModel) -> None:
    with pytest.raises(UsageError, match="no KV segment"):
        kv.answer_kv([open_cube(packed_cube)], tiny, Q)


def test_select_memories(packed_cube: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    cube = open_cube(packed_cube)
    by_priority = select_memories(cube)
    assert by_priority[0].priority == 2 and len(by_priority) == 18
    ids = [cube.memories[3].id, cube.memories[1].id]
    assert [m.id for m in select_memories(cube, ids=ids)] == ids
    top = select_memories(cube, query="budget cap", top=2, embedder=embedder)
    assert len(top) == 2 and "48,000" in top[0].content
    with pytest.raises(UsageError, match="no live memory"):
        select_memories(cube, ids=["nope"])


def test_cli_convert_inspect_and_compose(cube_copy: Path, tiny_llama: Path,
                                         tmp_path: Path) -> None:
    second = tmp_path / "b.memcube"
    shutil.copytree(cube_copy, second)
    for cube, top in ((cube_copy, "3"), (second, "2")):
        res = runner.invoke(app, ["convert", str(cube), "--to", "kv", "--model",
                                  str(tiny_llama), "--top", top, "--json"])
        assert res.exit_code == 0, res.output
        data = json.loads(res.stdout)
        assert data["memories"] == int(top) and data["bytes_per_token"] > 0
    ins = json.loads(runner.invoke(app, ["inspect", str(cube_copy), "--json"]).stdout)
    seg = ins["manifest"]["kv"]["segments"][0]
    assert seg["storage_dtype"] == "float32" and len(seg["memory_ids"]) == 3
    res = runner.invoke(app, ["run", str(cube_copy), str(second), Q, "--tier", "kv",
                              "--model", str(tiny_llama), "--max-new-tokens", "3", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["tier"] == "kv" and len(out["memories"]) == 5
    assert out["timings"]["segment_load_s"] > 0 and out["timings"]["ttft_s"] > 0
    res = runner.invoke(app, ["run", str(cube_copy), str(second), Q, "--model",
                              str(tiny_llama), "--max-new-tokens", "3", "--json"])
    assert res.exit_code == 0, res.output  # --tier auto: the top k over both cubes (#34)
    assert json.loads(res.stdout)["tier"] == "auto"
    res = runner.invoke(app, ["convert", str(cube_copy), "--to", "weights"])
    assert res.exit_code == 2


def test_kv_only_cube_and_restoring_text(cube_copy: Path, tiny: chat.ChatModel, embedder,
                                         keys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from memos_cli.tiers.convert import restore_text

    original = [m.to_dict() for m in open_cube(cube_copy).memories]
    with pytest.raises(UsageError, match="needs a KV segment of every memory"):
        convert_to_kv(cube_copy, tiny, select_memories(open_cube(cube_copy), top=3),
                      drop_text=True)
    convert_to_kv(cube_copy, tiny, select_memories(open_cube(cube_copy)), drop_text=True,
                  key=keys[0])
    m = json.loads((cube_copy / "manifest.json").read_text())
    assert m["tiers"] == ["activation"] and "files" not in m and "embedding" not in m
    assert not (cube_copy / "memories.arrow").exists() and not (cube_copy / "index").exists()
    assert verify(cube_copy, keys[1]).memories == len(original)
    cube = open_cube(cube_copy)
    with pytest.raises(UsageError, match="no plaintext tier"):
        cube.index()
    assert kv.answer_kv([cube], tiny, Q, max_new_tokens=3).new_tokens >= 1
    # another tokenizer cannot decode the token ids
    other = chat.load(str(make_tiny_llama(tmp_path / "small-vocab", vocab=150)))
    with pytest.raises(FormatError, match="tokenizer"):
        restore_text(cube_copy, other, embedder)
    restore_text(cube_copy, tiny, embedder, key=keys[0])
    restored = open_cube(cube_copy)
    by_id = {d["id"]: d for d in original}
    assert sorted(m.id for m in restored.memories) == sorted(by_id)
    for mem in restored.memories:
        assert mem.to_dict() == by_id[mem.id]
    assert verify(cube_copy, keys[1]).signature == "verified"
    m = json.loads((cube_copy / "manifest.json").read_text())
    assert m["tiers"] == ["plaintext", "activation"]
    with pytest.raises(UsageError, match="already has a plaintext tier"):
        restore_text(cube_copy, tiny, embedder)


def test_cli_bad_segment_is_one_line_and_changes_nothing(kv_cube: Path, tiny_llama: Path
                                                         ) -> None:
    cube = open_cube(kv_cube)
    seg = cube.segment_path(cube.segments[0])
    seg.write_bytes(seg.read_bytes()[:-1000])
    before = {p: p.read_bytes() for p in kv_cube.rglob("*") if p.is_file()}
    res = runner.invoke(app, ["run", str(kv_cube), Q, "--tier", "kv", "--model",
                              str(tiny_llama)])
    assert res.exit_code == 7
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and seg.name in lines[0] and "differs from the manifest" in lines[0]
    assert {p: p.read_bytes() for p in kv_cube.rglob("*") if p.is_file()} == before


def test_every_file_has_the_usual_mode(kv_cube: Path) -> None:
    """safetensors writes 0600; a cube's files are 0666 less the umask (spec §3)."""
    import os

    mask = os.umask(0)
    os.umask(mask)
    modes = {p.relative_to(kv_cube).as_posix(): p.stat().st_mode & 0o777
             for p in kv_cube.rglob("*") if p.is_file()}
    assert any(k.startswith("kv/") for k in modes)
    assert set(modes.values()) == {0o666 & ~mask}, modes
