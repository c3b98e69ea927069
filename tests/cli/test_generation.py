"""Generation controls on `memos run` and citations of numbered memories (#12)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memos_cli.cli.app import app
from memos_cli.cli.run import cited
from memos_cli.errors import UsageError
from memos_cli.tiers import generation
from memos_cli.tiers.generation import GenerationOptions
from memos_cli.tiers.plaintext import Answer

runner = CliRunner()


def run(cube: Path, model: Path, *extra: str) -> dict:  # type: ignore[type-arg]
    r = runner.invoke(app, ["run", str(cube), "what does the team drink?", "--model", str(model),
                            "--tier", "text", "--max-new-tokens", "12", "--json", *extra])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def test_seeded_sampling_repeats_and_controls_change_the_answer(packed_cube: Path,
                                                                 tiny_llama: Path) -> None:
    sampled = ["--temperature", "1.5", "--top-p", "0.9", "--seed", "7"]
    assert run(packed_cube, tiny_llama, *sampled)["answer"] == \
        run(packed_cube, tiny_llama, *sampled)["answer"]
    from memos_cli.cube import open_cube
    from memos_cli.models import chat
    from memos_cli.tiers.plaintext import answer_memories

    lm = chat.load(str(tiny_llama))
    mems = open_cube(packed_cube).memories[:3]
    with generation.using(GenerationOptions(no_repeat_ngram_size=1)):
        g = answer_memories(lm, mems, "what does the team drink?", max_new_tokens=24)
    assert g.new_tokens > 3 and len(g.token_ids) == len(set(g.token_ids))  # no token twice
    with generation.using(GenerationOptions(repetition_penalty=3.0)):
        penalised = answer_memories(lm, mems, "what does the team drink?", max_new_tokens=24)
    plain = answer_memories(lm, mems, "what does the team drink?", max_new_tokens=24)
    assert len(set(penalised.token_ids)) >= len(set(plain.token_ids))


def test_system_prompt_replaces_the_instruction(packed_cube: Path, tiny_llama: Path) -> None:
    from memos_cli.tiers import prompt

    with generation.using(GenerationOptions(system="Reply in French.")):
        assert prompt.system_head() == "Reply in French.\n\nMemories:\n"
    assert prompt.system_head() == prompt.SYSTEM_HEAD
    r = runner.invoke(app, ["run", str(packed_cube), "q", "--model", str(tiny_llama),
                            "--tier", "kv", "--system", "Be brief."])
    assert r.exit_code == 2 and "--system goes with the text and auto tiers" in r.output
    assert run(packed_cube, tiny_llama, "--system", "Be brief.")["tier"] == "text"


def test_out_of_range_controls_are_refused() -> None:
    for bad in (GenerationOptions(repetition_penalty=9), GenerationOptions(top_p=0),
                GenerationOptions(no_repeat_ngram_size=-1), GenerationOptions(system=" ")):
        with pytest.raises(UsageError):
            bad.check()


def test_cited_memories_are_read_from_the_answer(packed_cube: Path) -> None:
    from memos_cli.cube import open_cube
    from memos_cli.tiers.plaintext import Retrieved

    mems = open_cube(packed_cube).memories[:3]
    got = [Retrieved(m, 1.0, i + 1, None, None) for i, m in enumerate(mems)]
    a = Answer("q", "Tea [2], says [3] and [2]; not [9].", got, "m")
    assert cited(a) == [2, 3]


def test_run_says_why_it_stopped_what_it_cited_and_takes_unquoted_words(
        packed_cube: Path, tiny_llama: Path) -> None:
    """#28: an unquoted question was refused; an answer cut at --max-new-tokens had no marker;
    the memories listed were not told apart from those the answer cites."""
    args = ["--tier", "text", "-k", "2", "--max-new-tokens", "3", "--model", str(tiny_llama),
            "--keep-going"]
    r = CliRunner().invoke(app, ["run", str(packed_cube), "what", "budget", "did", "we",
                                 "agree", "on?", *args, "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["question"] == "what budget did we agree on?"
    # the tiny random model never says its end token within 3 tokens: the answer is cut
    assert (data["stop"], data["new_tokens"], data["cited"]) == ("max tokens", 3, [])
    shown = CliRunner().invoke(app, ["run", str(packed_cube), "what", "budget?", *args])
    assert shown.exit_code == 0, shown.output
    assert "(cut at 3 tokens, --max-new-tokens: the answer may end mid-sentence)" in shown.stdout
    assert "memories in the prompt (2); cited by the answer: none" in shown.stdout
