"""What reaches the prompt (#32): the best-ranked memories that fit in `--context-tokens`, a
prompt that never runs past the model's context window, on every tier that retrieves."""

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memos_cli.api import AnswerOptions
from memos_cli.cli.app import app
from memos_cli.cube import open_cube
from memos_cli.errors import UsageError
from memos_cli.memory import Memory
from memos_cli.models import chat
from memos_cli.tiers import budget, chunks, prompt
from memos_cli.tiers.convert import select_memories
from memos_cli.tiers.convert_chunks import convert_to_chunks
from memos_cli.tiers.plaintext import Retrieved, answer_hits, retrieve
from tests.conftest import make_tiny_model

runner = CliRunner()
Q = "Who owns the vision stack?"


@pytest.fixture(scope="module")
def tiny(tiny_llama: Path) -> chat.ChatModel:
    return chat.load(str(tiny_llama))


def memory_tokens(tok, memories: list[Memory]) -> int:  # type: ignore[no-untyped-def]
    """The memories' share of the prompt, measured on the whole prompt's ids."""
    whole = prompt.prompt_ids(tok, memories, Q)
    return len(whole) - len(prompt.prefix_ids(tok)) - len(prompt.closing_ids(tok, Q))


def test_fit_keeps_the_best_ranked_that_fit(tiny: chat.ChatModel, packed_cube: Path) -> None:
    tok = tiny.tokenizer
    mems = open_cube(packed_cube).memories[:6]
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    long = Memory.create(" ".join(["vision stack owner"] * 60), now=now)
    ranked = [mems[0], long, *mems[1:]]
    hits = [Retrieved(m, 1.0 / n, n, n, None) for n, m in enumerate(ranked, start=1)]
    first = budget.piece_tokens(tok, 1, [mems[0]])
    assert budget.piece_tokens(tok, 2, [long]) > 150
    limit = first + 60
    got = budget.fit(tok, hits, limit)
    # the long memory at rank 2 is skipped, shorter ones after it fill what is left
    assert got.kept[0].memory is mems[0] and long not in [h.memory for h in got.kept]
    assert len(got.kept) >= 2 and got.left_out == len(hits) - len(got.kept) >= 1
    assert [h.rank for h in got.kept] == sorted(h.rank for h in got.kept)  # rank order kept
    assert got.memory_tokens == memory_tokens(tok, [h.memory for h in got.kept]) <= limit
    # the next memory in rank order that was left out would not have fitted
    nxt = next(h for h in hits if h not in got.kept and h.memory is not long)
    assert got.memory_tokens + budget.piece_tokens(tok, len(got.kept) + 1, [nxt.memory]) > limit
    every = budget.fit(tok, hits, None, k=3)
    assert [h.rank for h in every.kept] == [1, 2, 3] and every.left_out == 4
    assert every.memory_tokens == memory_tokens(tok, [h.memory for h in every.kept])
    assert budget.limit_of(None, None) is None and budget.limit_of(300, 120) == 120


def test_options_for_the_budget_are_checked() -> None:
    assert AnswerOptions().top_k == 5
    assert AnswerOptions(context_tokens=512).top_k == budget.POOL
    assert AnswerOptions(k=3, context_tokens=512).top_k == 3
    with pytest.raises(UsageError, match="--context-tokens must be at least 16"):
        AnswerOptions(context_tokens=8).checked(cubes=1, vault=False, user=False)
    for opts in (AnswerOptions(tier="lora", context_tokens=100),
                 AnswerOptions(tier="kv", segment="abc", context_tokens=100)):
        with pytest.raises(UsageError, match="--context-tokens goes with retrieval"):
            opts.checked(cubes=1, vault=False, user=False)


def _run(cube: Path, model: Path, *extra: str) -> dict:  # type: ignore[type-arg]
    r = runner.invoke(app, ["run", str(cube), Q, "--model", str(model), "--tier", "text",
                            "--max-new-tokens", "4", "--json", *extra])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def test_run_fills_the_budget(packed_cube: Path, tiny_llama: Path, tiny: chat.ChatModel) -> None:
    tok = tiny.tokenizer
    fixed = len(prompt.prefix_ids(tok)) + len(prompt.closing_ids(tok, Q))
    small = _run(packed_cube, tiny_llama, "--context-tokens", "60")
    large = _run(packed_cube, tiny_llama, "--context-tokens", "600")
    for got, n in ((small, 60), (large, 600)):
        b = got["budget"]
        assert b["context_tokens"] == b["limit"] == n and b["memory_tokens"] <= n
        assert b["kept"] == len(got["memories"]) and b["left_out"] >= 0
        assert got["prompt_tokens"] == fixed + b["memory_tokens"]  # what the model was given
    assert 1 <= len(small["memories"]) < len(large["memories"])
    assert small["memories"][0]["id"] == large["memories"][0]["id"]  # the best one first
    assert len(_run(packed_cube, tiny_llama, "--context-tokens", "600", "-k", "2")[
        "memories"]) == 2
    default = _run(packed_cube, tiny_llama)
    assert len(default["memories"]) == 5 and default["budget"]["context_tokens"] is None
    shown = runner.invoke(app, ["run", str(packed_cube), Q, "--model", str(tiny_llama),
                                "--tier", "text", "--max-new-tokens", "2",
                                "--context-tokens", "60"])
    assert shown.exit_code == 0, shown.output
    b = small["budget"]
    assert (f"memories in the prompt ({b['kept']}, {b['memory_tokens']} of 60 tokens; "
            f"{b['left_out']} more retrieved did not fit in --context-tokens 60)") in shown.stdout
    bad = runner.invoke(app, ["run", str(packed_cube), Q, "--model", str(tiny_llama),
                              "--tier", "lora", "--context-tokens", "60"])
    assert bad.exit_code == 2 and "--context-tokens goes with retrieval" in bad.output


def test_prompt_never_runs_past_the_context_window(packed_cube: Path, tmp_path: Path) -> None:
    """Twenty memories once overflowed a model whose window is small; now those that do not
    fit are left out, and the run says so."""
    model = make_tiny_model(tmp_path / "short", "llama", max_position_embeddings=220,
                            tie_word_embeddings=True)
    lm = chat.load(str(model))
    fixed = len(prompt.prefix_ids(lm.tokenizer)) + len(prompt.closing_ids(lm.tokenizer, Q))
    assert fixed + 8 < 220
    got = _run(packed_cube, model, "-k", "20", "--max-new-tokens", "8")
    b = got["budget"]
    assert b["limit"] == 220 - fixed - 8 and b["context_tokens"] is None
    assert b["left_out"] > 0 and got["prompt_tokens"] + 8 <= 220
    shown = runner.invoke(app, ["run", str(packed_cube), Q, "--model", str(model), "-k", "20",
                                "--tier", "text", "--max-new-tokens", "8"])
    assert "did not fit in the model's context window" in shown.stdout


def test_chunked_answers_keep_to_the_budget(cube_copy: Path, tiny: chat.ChatModel,
                                            embedder) -> None:  # type: ignore[no-untyped-def]
    convert_to_chunks(cube_copy, tiny, select_memories(open_cube(cube_copy)))
    cube = open_cube(cube_copy)
    hits = retrieve(cube, embedder, Q, 12)
    limit = 120
    kv = chunks.answer_chunked(cube, embedder, tiny, Q, k=12, ratio=1.0, max_new_tokens=6,
                               limit=limit)
    text = answer_hits(tiny, hits, Q, retrieval_s=0.0, limit=limit, max_new_tokens=6)
    # a full recompute is the text tier's prompt: same memories, same tokens, same answer
    assert [r.memory.id for r in kv.memories] == [r.memory.id for r in text.memories]
    assert kv.budget["memory_tokens"] == text.budget["memory_tokens"] <= limit
    assert kv.budget["left_out"] == text.budget["left_out"] > 0
    assert kv.prompt_tokens == text.prompt_tokens and kv.answer == text.answer
    assert kv.details["hits"] == len(kv.memories)


def test_a_group_chunk_too_big_gives_way_to_its_memory(tiny: chat.ChatModel,
                                                       packed_cube: Path) -> None:
    """A chunk set built by session holds a whole group; when the group does not fit, the
    retrieved memory goes in alone, as text, and nothing is loaded."""
    mems = open_cube(packed_cube).memories[:8]
    loads: list[Path] = []

    def find(m: Memory) -> tuple[Path, list[Memory]]:
        loads.append(Path("never-read.safetensors"))
        return Path("never-read.safetensors"), mems  # every memory's group: all eight

    src = chunks.Source("groups", None, find, strict=True)
    limit = budget.piece_tokens(tiny.tokenizer, 1, [mems[0]]) + budget.piece_tokens(
        tiny.tokenizer, 2, [mems[1]])
    assert budget.piece_tokens(tiny.tokenizer, 1, mems) > limit
    p = chunks.plan(tiny, [src], mems[:3], Q, limit)
    assert p.memories == mems[:2] and (p.hits, p.misses, p.left_out) == (0, 2, 1)
    assert p.memory_tokens == limit and loads  # looked up, never read
