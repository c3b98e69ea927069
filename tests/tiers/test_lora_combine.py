"""Several adapters at once (PEFT ``add_weighted_adapter``) and the forgetting measures
(``memos_cli.evaluation.forgetting``) on the tiny model."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from memos_cli.cli.app import app
from memos_cli.cube import open_cube
from memos_cli.errors import FormatError, UsageError
from memos_cli.evaluation import forgetting
from memos_cli.evaluation.evaluate import Question, evaluate, load_questions, normalize
from memos_cli.models import chat
from memos_cli.tiers import lora
from memos_cli.tiers.convert import convert_to_lora, select_memories
from memos_cli.tiers.lora import combine
from tests.conftest import make_tiny_llama


@pytest.fixture(scope="module")
def tiny(tiny_llama: Path) -> chat.ChatModel:
    return chat.load(str(tiny_llama))


@pytest.fixture(scope="module")
def two_cubes(packed_cube: Path, tiny: chat.ChatModel, tmp_path_factory) -> list[Path]:  # type: ignore[no-untyped-def]
    """Two cubes whose adapters were trained apart, on other memories, with other ranks."""
    out = []
    for i, (rank, sl) in enumerate([(4, slice(0, 3)), (2, slice(3, 6))]):
        c = tmp_path_factory.mktemp(f"c{i}") / f"c{i}.memcube"
        shutil.copytree(packed_cube, c)
        recipe = lora.Recipe(name="text", epochs=2, rank=rank, alpha=2 * rank, batch_size=4,
                             replay=0, seed=i)
        convert_to_lora(c, tiny, select_memories(open_cube(c))[sl], recipe)
        out.append(c)
    return out


def weights(model: torch.nn.Module) -> dict:  # type: ignore[type-arg]
    """The (merged) weights of a PEFT model under the base model's parameter names."""
    return {n.replace("base_model.model.", "").replace(".base_layer", ""): p.detach().clone()
            for n, p in model.named_parameters() if "lora_" not in n}


def test_cat_combination_adds_the_updates_exactly(tiny: chat.ChatModel, two_cubes) -> None:  # type: ignore[no-untyped-def]
    base = {n: p.detach().clone() for n, p in tiny.model.named_parameters()}
    merged = []
    for c in two_cubes:
        tuned = lora.attach(tiny, open_cube(c))
        merged.append(weights(tuned.model))
        tiny.model = lora.detach(tuned.model)
    both = combine.attach_many(tiny, [open_cube(c) for c in two_cubes], combine="cat")
    combined = weights(both.model)
    tiny.model = lora.detach(both.model)
    changed = 0
    for name, w in base.items():
        want = w + (merged[0][name] - w) + (merged[1][name] - w)
        assert torch.allclose(combined[name], want, atol=1e-5), name
        changed += not torch.equal(combined[name], w)
    assert changed > 0
    after = {n: p for n, p in tiny.model.named_parameters()}
    assert all(torch.allclose(after[n], w, atol=1e-6) for n, w in base.items())


def test_combination_refusals(tiny: chat.ChatModel, two_cubes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cubes = [open_cube(c) for c in two_cubes]
    with pytest.raises(UsageError, match="one rank"):
        combine.attach_many(tiny, cubes, combine="linear")  # ranks 4 and 2
    with pytest.raises(UsageError, match="not one of"):
        combine.attach_many(tiny, cubes, combine="svd-magic")
    other = chat.load(str(make_tiny_llama(tmp_path / "other", seed=1)))
    with pytest.raises(FormatError, match="does not fit"):
        combine.attach_many(other, cubes)
    narrow = tmp_path / "narrow.memcube"  # an adapter of the attention only
    shutil.copytree(two_cubes[0], narrow)
    recipe = lora.Recipe(name="text", epochs=1, rank=4, alpha=8, replay=0,
                         target_modules=("q_proj", "v_proj"))
    convert_to_lora(narrow, tiny, select_memories(open_cube(narrow))[:2], recipe)
    with pytest.raises(FormatError, match="cannot be combined"):
        combine.attach_many(tiny, [cubes[0], open_cube(narrow)])
    assert not any("lora_" in n for n, _ in tiny.model.named_modules())


def test_cli_runs_two_adapters(tiny_llama: Path, two_cubes) -> None:  # type: ignore[no-untyped-def]
    r = CliRunner().invoke(app, ["run", *map(str, two_cubes), "Who owns the vision stack?",
                                 "--tier", "lora", "--model", str(tiny_llama),
                                 "--max-new-tokens", "4", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["tier"] == "lora" and "cube" in json.loads(r.stdout)["details"]
    r = CliRunner().invoke(app, ["run", *map(str, two_cubes), "Who owns the vision stack?",
                                 "--tier", "lora", "--combine", "cat", "--model",
                                 str(tiny_llama), "--max-new-tokens", "4", "--json"])
    assert r.exit_code == 0, r.output
    assert "details" not in json.loads(r.stdout)  # merged: no adapter chosen
    r = CliRunner().invoke(app, ["run", *map(str, two_cubes), "q?", "--tier", "lora",
                                 "--combine", "linear", "--model", str(tiny_llama)])
    assert r.exit_code == 2 and "one rank" in r.output


def test_route_answers_with_the_adapter_of_the_nearest_memories(tiny: chat.ChatModel,
                                                                 two_cubes, embedder) -> None:  # type: ignore[no-untyped-def]
    """--combine route: a question about a memory of the second cube's adapter is answered by
    that adapter alone (the same answer as that cube alone), and the model is left bare."""
    cubes = [open_cube(c) for c in two_cubes]
    mems = select_memories(cubes[0])
    for want, memory in ((0, mems[1]), (1, mems[4])):
        pick, scores = combine.route(cubes, embedder, memory.content)
        assert pick == want and scores[want] == pytest.approx(1.0, abs=1e-4), scores
        routed = lora.answer_lora(cubes, tiny, memory.content, max_new_tokens=5,
                                  combine="route", embedder=embedder)
        alone = lora.answer_lora(cubes[want], tiny, memory.content, max_new_tokens=5)
        assert routed.answer == alone.answer
        assert routed.details["cube"] == cubes[want].manifest.cube_id
        assert "route_s" in routed.timings
    assert not any("lora_" in n for n, _ in tiny.model.named_modules())
    with pytest.raises(UsageError, match="embedder"):
        lora.answer_lora(cubes, tiny, "q?", combine="route")
    with pytest.raises(UsageError, match="per question"):
        combine.attach_many(tiny, cubes, combine="route")


def test_cli_routes_two_adapters(tiny_llama: Path, two_cubes) -> None:  # type: ignore[no-untyped-def]
    """Routing is the default of run with several adapters."""
    cubes = [open_cube(c) for c in two_cubes]
    question = select_memories(cubes[0])[4].content
    r = CliRunner().invoke(app, ["run", *map(str, two_cubes), question, "--tier", "lora",
                                 "--model", str(tiny_llama),
                                 "--max-new-tokens", "4", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["details"]["cube"] == cubes[1].manifest.cube_id


def test_general_set_is_large_and_apart_from_training() -> None:
    qs = load_questions(forgetting.packaged("questions.jsonl"))
    prompts = forgetting.load_prompts(forgetting.packaged("prompts.jsonl"))
    assert len(qs) >= 200 and len(prompts) >= 300
    trained = {normalize(p) for p in lora.REPLAY_PROMPTS}
    assert not {normalize(q.question) for q in qs} & trained
    assert not {normalize(p) for p in prompts} & trained


def test_forgetting_measures(tiny: chat.ChatModel, two_cubes) -> None:  # type: ignore[no-untyped-def]
    cube = open_cube(two_cubes[0])
    pairs = forgetting.continuations(tiny, ["Describe the ocean.", "What is 2 plus 2?"],
                                     max_new_tokens=6)
    assert all(p and c for p, c in pairs)
    assert forgetting.mean_kl(tiny.model, tiny.model, pairs) == pytest.approx(0.0, abs=1e-6)
    assert forgetting.adapter_kl(tiny, cube, pairs) > 0
    general = [Question("Who owns the vision stack?", ("Ilse",)), Question("x?", ("y",))]
    (row,) = evaluate(cube, tiny, [Question("q?", ("a",))], ["lora"], max_new_tokens=4,
                      general=general, kl_prompts=["Describe the ocean."])
    g = row.general
    assert g is not None and g["questions"] == 2 and g["kl"] > 0 and g["kl_prompts"] == 1
    assert set(g) >= {"correct", "base_correct", "accuracy", "base_accuracy", "kept", "lost",
                      "gained"}
    assert g["correct"] - g["base_correct"] == len(g["gained"]) - len(g["lost"])
    assert not any("lora_" in n for n, _ in tiny.model.named_modules())


def test_bad_general_file(tiny_llama: Path, two_cubes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    q = tmp_path / "q.jsonl"
    q.write_text('{"question": "x?", "answers": ["y"]}\n')
    for text in ("", '{"question": "no answers"}\n'):
        g = tmp_path / "g.jsonl"
        g.write_text(text)
        r = CliRunner().invoke(app, ["eval", str(two_cubes[0]), str(q), "--tiers", "lora",
                                     "--model", str(tiny_llama), "--general", str(g)])
        assert r.exit_code == 3 and "g.jsonl" in r.output, r.output
        assert len([ln for ln in r.output.splitlines() if ln.strip()]) == 1
