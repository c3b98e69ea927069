"""The plaintext tier: retrieval, prompt, timed greedy generation (tiny random Llama)."""

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memos_cli.cli.app import app
from memos_cli.cube import open_cube
from memos_cli.memory import Memory
from memos_cli.models import chat
from memos_cli.tiers.decode import generate
from memos_cli.tiers.plaintext import answer, build_messages, retrieve

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny(tiny_llama: Path) -> chat.ChatModel:
    return chat.load(str(tiny_llama))


def test_retrieve_ranks_and_skips_expired(packed_cube: Path, embedder) -> None:
    cube = open_cube(packed_cube)
    hits = retrieve(cube, embedder, "Which sensor did we pick for the gripper?", k=3)
    assert [h.rank for h in hits] == [1, 2, 3]
    assert any("Aurelia T4" in h.memory.content for h in hits)
    # pretend the sensor memory expired: it must not come back
    sensor = next(h.memory for h in hits if "Aurelia T4" in h.memory.content)
    expired = Memory.from_dict({**sensor.to_dict(),
                                "expires_at": "2000-01-01T00:00:00.000000Z"})
    cube.by_id[sensor.id] = expired
    hits = retrieve(cube, embedder, "Which sensor did we pick for the gripper?", k=3)
    assert sensor.id not in [h.memory.id for h in hits] and len(hits) == 3


def test_messages_list_memories_in_order() -> None:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    mems = [Memory.create("A fact.", now=now), Memory.create("B fact.", now=now, speaker="Ann")]
    msgs = build_messages("Q?", mems)
    assert msgs[0]["role"] == "system" and msgs[1] == {"role": "user", "content": "Q?"}
    assert "[1] A fact.\n[2] Ann: B fact." in msgs[0]["content"]


def test_greedy_generation_is_deterministic_and_timed(tiny: chat.ChatModel) -> None:
    msgs = build_messages("What is the budget cap?", [])
    a = generate(tiny, msgs, max_new_tokens=8)
    b = generate(tiny, msgs, max_new_tokens=8)
    assert a.text == b.text
    assert a.new_tokens >= 1 and a.prompt_tokens > 10
    assert 0 < a.ttft_s <= a.total_s


def test_answer_reports_memories_and_timings(packed_cube: Path, embedder,
                                             tiny: chat.ChatModel) -> None:
    res = answer(open_cube(packed_cube), embedder, tiny, "What budget did we agree on?", k=2,
                 max_new_tokens=5)
    d = res.to_dict()
    assert len(d["memories"]) == 2 and "48,000" in d["memories"][0]["text"]
    assert set(d["timings"]) == {"model_load_s", "retrieval_s", "ttft_s", "generate_s",
                                 "tokens_per_s"}
    assert d["timings"]["retrieval_s"] > 0 and d["timings"]["ttft_s"] > 0
    # the prompt the model saw is exactly the chat template over the retrieved memories
    want = tiny.tokenizer.apply_chat_template(
        build_messages("What budget did we agree on?", [r.memory for r in res.memories]),
        add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    assert d["prompt_tokens"] == len(want)


def test_run_cli_json_with_tiny_model(packed_cube: Path, tiny_llama: Path) -> None:
    result = runner.invoke(app, ["run", str(packed_cube), "Who owns the vision stack?",
                                 "--model", str(tiny_llama), "-k", "3", "--max-new-tokens",
                                 "4", "--tier", "text", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["tier"] == "text" and len(data["memories"]) == 3
    assert any("Priya Okonkwo owns the vision stack" in m["text"] for m in data["memories"])
    assert 1 <= data["new_tokens"] <= 4


def test_missing_model_is_a_clear_error(packed_cube: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(packed_cube), "q", "--model",
                                 str(tmp_path / "no-model")])
    assert result.exit_code == 10
    assert "no such model directory" in result.stderr
    result = runner.invoke(app, ["run", str(packed_cube), "q", "--model", "acme/never-seen"])
    assert result.exit_code == 10
    assert "not in the local Hugging Face cache" in result.stderr
