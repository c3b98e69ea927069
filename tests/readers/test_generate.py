"""Batched generation with the shared few-shot prefix prefilled once (readers/generate.py), on
tiny random models: the same text as generating each prompt alone, the budget, and a model
that cannot generate."""

from pathlib import Path

import pytest
import torch

from memos_cli.errors import ReaderError
from memos_cli.models.chat import load
from memos_cli.readers import Budget
from memos_cli.readers.generate import NO_REPEAT_NGRAM, REPETITION_PENALTY, generate
from tests.conftest import make_tiny_model

PREFIX = "You are a helpful memory . The budget is 48,000 euros .\n"
SUFFIXES = ["question budget", "answer the question about the memory of the budget please",
            "memory", "the sensor we picked for the gripper is"]


def alone(chat, text: str, n: int) -> str:  # type: ignore[no-untyped-def]
    tok = chat.tokenizer
    ids = tok(text, return_tensors="pt").input_ids
    with torch.no_grad():
        out = chat.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n,
                                  do_sample=False, repetition_penalty=REPETITION_PENALTY,
                                  no_repeat_ngram_size=NO_REPEAT_NGRAM,
                                  pad_token_id=tok.pad_token_id)
    return str(tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True))


def test_shared_prefix_batches_give_what_each_prompt_gives_alone(tiny_llama: Path) -> None:
    chat = load(str(tiny_llama))
    seen: list[tuple[str, int, int]] = []
    got = generate(chat, PREFIX, SUFFIXES, max_new_tokens=6, budget=Budget(),
                   progress=lambda *a: seen.append(a), batch=3)
    for s, text in zip(SUFFIXES, got, strict=True):
        assert text == alone(chat, PREFIX + s, 6)
    assert seen == [("reading", 3, 4), ("reading", 4, 4)]


def test_budget_leaves_the_rest_unreached(tiny_llama: Path) -> None:
    chat = load(str(tiny_llama))
    budget = Budget(tokens=1)
    got = generate(chat, PREFIX, SUFFIXES, max_new_tokens=4, budget=budget, batch=2)
    assert sum(x is not None for x in got) == 2 and budget.spent_tokens > 1


def test_a_model_that_cannot_generate_is_one_error(tmp_path: Path) -> None:
    # GPT-2 has 16 learned positions here: the few-shot prefix does not fit
    path = make_tiny_model(tmp_path / "gpt2", "gpt2", max_position_embeddings=16)
    chat = load(str(path))
    with pytest.raises(ReaderError, match="cannot generate"):
        generate(chat, PREFIX * 4, SUFFIXES, max_new_tokens=4, budget=Budget())


def test_unparseable_outputs_are_counted_never_a_crash(tiny_llama: Path) -> None:
    """A random model writes no question and no grounded fact: every memory is counted as
    unparsed, nothing is derived, and nothing raises."""
    from datetime import datetime, timezone

    from memos_cli.memory import Memory
    from memos_cli.readers import facts, questions

    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    mems = [Memory.create(t, now=now, speaker="ann", semantic_type="dialog_turn",
                          session_id="s1", origin="conversation")
            for t in ("the budget is 48,000 euros", "we picked the sensor", "memory answer")]
    chat = load(str(tiny_llama))
    q = questions.read(mems, chat, Budget(), max_new_tokens=8)
    assert (len(q.rows), q.unparsed, q.not_reached) == (0, 3, 0)
    f = facts.read(mems, chat, Budget(), window=2, max_new_tokens=8)
    assert (len(f.memories), f.unparsed, f.not_reached) == (0, 2, 0)
