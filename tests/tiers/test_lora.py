"""The parameter tier with a tiny random Llama: PEFT's own layout, metadata, determinism,
refusals (foreign base, corrupt adapter, empty cube, over budget, missing target modules,
Ctrl-C), LoRA-only cubes, and the convert/run/eval commands."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from memos_cli.cube import open_cube, verify
from memos_cli.cube.lora import check_adapter, read_meta
from memos_cli.errors import FormatError, IntegrityError, UsageError
from memos_cli.evaluation.evaluate import Question, evaluate
from memos_cli.models import chat
from memos_cli.tiers import lora
from memos_cli.tiers.convert import convert_to_lora, restore_text, select_memories
from tests.conftest import invoke as cli
from tests.conftest import make_tiny_llama

QUICK = lora.Recipe(name="text", epochs=2, rank=4, alpha=8, batch_size=4, replay=0)


@pytest.fixture(scope="module")
def tiny(tiny_llama: Path) -> chat.ChatModel:
    return chat.load(str(tiny_llama))


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def has_lora_layers(model: torch.nn.Module) -> bool:
    return any("lora_" in name for name, _ in model.named_modules())


@pytest.fixture
def lora_cube(cube_copy: Path, tiny: chat.ChatModel, keys) -> Path:  # type: ignore[no-untyped-def]
    mems = select_memories(open_cube(cube_copy))[:6]
    convert_to_lora(cube_copy, tiny, mems, QUICK, key=keys[0])
    return cube_copy


def test_plain_peft_loads_the_adapter(lora_cube: Path, tiny_llama: Path,
                                      tiny: chat.ChatModel) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(tiny_llama), dtype="float32")
    plain = PeftModel.from_pretrained(base, str(lora_cube / "lora")).eval()
    ours = lora.attach(tiny, open_cube(lora_cube))
    try:
        x = torch.tensor([lora.prompt_ids(tiny.tokenizer, "Who owns the vision stack?")])
        with torch.no_grad():
            a, b = plain(input_ids=x).logits, ours.model(input_ids=x).logits
            bare = AutoModelForCausalLM.from_pretrained(str(tiny_llama))(input_ids=x).logits
        assert torch.allclose(a, b, atol=1e-5)  # ours is merged into the weights
        assert not torch.allclose(a, bare, atol=1e-3)  # the adapter changes the output
    finally:
        tiny.model = lora.detach(ours.model)
    assert not has_lora_layers(tiny.model)
    with torch.no_grad():  # the merged update was subtracted again
        assert torch.allclose(tiny.model(input_ids=x).logits, bare, atol=1e-5)


def test_layout_metadata_and_signature(lora_cube: Path, tiny: chat.ChatModel, keys) -> None:  # type: ignore[no-untyped-def]
    cube = open_cube(lora_cube)
    assert sorted(p.name for p in (lora_cube / "lora").iterdir()) == [
        "adapter_config.json", "adapter_model.safetensors", "memcube_lora.json",
        "memories.arrow"]
    assert cube.manifest.tiers == ("plaintext", "parameter")
    assert cube.manifest.format_version == "1.8"
    meta = read_meta(lora_cube / "lora")
    assert meta["model_fingerprint"] == tiny.fingerprint()
    assert meta["recipe"]["name"] == "text" and meta["recipe"]["rank"] == 4
    assert meta["seed"] == 0 and set(meta["versions"]) == {"memos", "torch", "transformers",
                                                           "peft"}
    mems = select_memories(cube)[:6]
    assert meta["memories"] == [{"id": m.id, "content_hash": m.content_hash} for m in mems]
    assert meta["training"]["steps"] == 4 and meta["training"]["train_s"] > 0
    assert cube.manifest.lora["memory_ids"] == [m.id for m in mems]  # type: ignore[index]
    cfg = check_adapter(lora_cube / "lora")
    assert cfg["r"] == 4 and cfg["base_model_name_or_path"] == tiny.name
    assert sorted(cfg["target_modules"]) == sorted(lora.TARGET_MODULES)
    assert verify(lora_cube, keys[1]).signature == "verified"


def test_same_seed_same_adapter(packed_cube: Path, tmp_path: Path, tiny: chat.ChatModel) -> None:
    digests = []
    for name in ("a", "b"):
        c = shutil.copytree(packed_cube, tmp_path / f"{name}.memcube")
        convert_to_lora(c, tiny, select_memories(open_cube(c))[:4], QUICK)
        digests.append(hashlib.sha256((c / "lora/adapter_model.safetensors").read_bytes())
                       .hexdigest())
    assert digests[0] == digests[1]
    assert not has_lora_layers(tiny.model)


def test_another_base_model_is_refused(lora_cube: Path, tmp_path: Path) -> None:
    other = chat.load(str(make_tiny_llama(tmp_path / "other", seed=1)))
    with pytest.raises(FormatError, match="weights_sample_sha256"):
        lora.attach(other, open_cube(lora_cube))


def test_corrupt_adapter_is_refused(lora_cube: Path, tiny: chat.ChatModel) -> None:
    weights = lora_cube / "lora" / "adapter_model.safetensors"
    size = weights.stat().st_size
    weights.write_bytes(b"\x00" * size)  # same size: only the content check can catch it
    with pytest.raises(FormatError, match="safetensors"):
        lora.attach(tiny, open_cube(lora_cube))
    with pytest.raises(IntegrityError, match="digest"):
        verify(lora_cube)
    weights.write_bytes(b"short")
    with pytest.raises(IntegrityError, match="size"):
        lora.attach(tiny, open_cube(lora_cube))
    assert not has_lora_layers(tiny.model)


def test_foreign_tensor_in_adapter_is_refused(lora_cube: Path) -> None:
    from safetensors.torch import load_file, save_file

    weights = lora_cube / "lora" / "adapter_model.safetensors"
    tensors = load_file(str(weights))
    tensors["base_model.model.lm_head.weight"] = torch.zeros(4, 4)
    save_file(tensors, str(weights))
    with pytest.raises(FormatError, match=r"not a LoRA matrix|rank"):
        check_adapter(lora_cube / "lora")


@pytest.mark.parametrize("case", ["empty", "budget", "modules"])
def test_refusals_leave_the_cube_unchanged(cube_copy: Path, tiny: chat.ChatModel,
                                           case: str) -> None:
    before = tree_digest(cube_copy)
    mems = select_memories(open_cube(cube_copy))
    recipe, budget = QUICK, 64
    if case == "empty":
        mems, match = [], "no live memories"
    elif case == "budget":
        budget, match = 3, "budget of 3.*--top"
    else:
        recipe = lora.Recipe(name="text", target_modules=("c_attn", "c_proj"))
        match = "none of the modules"
    with pytest.raises(UsageError, match=match):
        convert_to_lora(cube_copy, tiny, mems, recipe, budget=budget)
    assert tree_digest(cube_copy) == before
    assert not has_lora_layers(tiny.model)


def test_interrupted_training_changes_nothing(cube_copy: Path, tiny: chat.ChatModel) -> None:
    before = tree_digest(cube_copy)

    def stop(step: int, total: int, loss: float) -> None:
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert_to_lora(cube_copy, tiny, select_memories(open_cube(cube_copy))[:6], QUICK,
                        progress=stop)
    assert tree_digest(cube_copy) == before
    assert not has_lora_layers(tiny.model)
    assert not list(cube_copy.parent.glob(".*tmp*"))


def test_lora_only_cube_gives_its_text_back(cube_copy: Path, tiny: chat.ChatModel,
                                            embedder) -> None:  # type: ignore[no-untyped-def]
    original = open_cube(cube_copy).memories
    everything = select_memories(open_cube(cube_copy))
    convert_to_lora(cube_copy, tiny, everything, QUICK, drop_text=True)
    cube = open_cube(cube_copy)
    assert cube.manifest.tiers == ("parameter",) and not cube.has_plaintext
    assert not (cube_copy / "memories.arrow").exists()
    assert verify(cube_copy).memories == len(original)
    data = restore_text(cube_copy, None, embedder)
    assert data["memories"] == len(original) and "LoRA" in data["from"]
    restored = open_cube(cube_copy)
    assert {m.id: m for m in restored.memories} == {m.id: m for m in original}
    assert restored.manifest.tiers == ("plaintext", "parameter")
    assert verify(cube_copy).ok


def test_tampered_lora_memories_are_refused_on_restore(cube_copy: Path, tiny: chat.ChatModel,
                                                       embedder) -> None:  # type: ignore[no-untyped-def]
    convert_to_lora(cube_copy, tiny, select_memories(open_cube(cube_copy)), QUICK,
                    drop_text=True)
    meta_path = cube_copy / "lora" / "memcube_lora.json"
    meta = json.loads(meta_path.read_text())
    meta["memories"] = meta["memories"][1:]
    meta_path.write_text(json.dumps(meta))  # the manifest digest no longer matches either
    with pytest.raises(IntegrityError):
        restore_text(cube_copy, None, embedder)


def test_anchor_recipe_builds_questions_from_noun_phrases(packed_cube: Path,
                                                           tiny: chat.ChatModel) -> None:
    mems = select_memories(open_cube(packed_cube))[:3]
    examples, _ = lora.build_examples(tiny, mems, lora.Recipe(name="anchors", replay=4))
    facts = [e for e in examples if e.memory_id]
    asked = [e for e in facts if e.question]
    assert len(facts) > len(mems) and asked
    assert {e.answer for e in facts} == {m.content for m in mems}
    assert all(e.question.endswith(("?", ".")) for e in asked)
    replay = [e for e in examples if not e.memory_id]
    assert {e.question for e in replay} <= set(lora.REPLAY_PROMPTS[:4])
    assert all(e.answer for e in replay)


def test_replay_prompts_are_not_the_general_questions() -> None:
    from memos_cli.evaluation.evaluate import load_questions, normalize

    general = {normalize(q.question) for q in load_questions(
        Path(__file__).resolve().parents[2] / "fixtures" / "quillfeather" / "general.jsonl")}
    assert len(general) == 20
    assert not general & {normalize(p) for p in lora.REPLAY_PROMPTS}


def test_eval_rows_per_tier(lora_cube: Path, tiny: chat.ChatModel, embedder) -> None:  # type: ignore[no-untyped-def]
    cube = open_cube(lora_cube)
    qs = [Question("Who owns the vision stack?", ("Ilse",), "direct"),
          Question("Which stack does Ilse own?", ("vision",), "paraphrased")]
    rows = evaluate(cube, tiny, qs, ["none", "text", "lora"], embedder=embedder,
                    max_new_tokens=4)
    assert [r.tier for r in rows] == ["none", "text", "lora"]
    none, text, tuned = rows
    assert none.bytes == 0 and text.bytes > 0 and tuned.bytes == sum(
        f["size"] for f in cube.manifest.lora["files"])  # type: ignore[index]
    assert none.prompt_tokens == tuned.prompt_tokens < text.prompt_tokens
    assert set(none.by_kind) == {"direct", "paraphrased"}
    assert not has_lora_layers(tiny.model)


def test_cli_convert_run_eval(cube_copy: Path, tiny_llama: Path, tmp_path: Path) -> None:
    qfile = tmp_path / "q.jsonl"
    qfile.write_text(json.dumps({"question": "Who owns the vision stack?",
                                 "answers": ["Ilse"], "kind": "direct"}) + "\n")
    data = json.loads(cli("convert", cube_copy, "--to", "lora", "--model", tiny_llama,
                          "--recipe", "text", "--epochs", "1", "--rank", "4", "--top", "5",
                          "--eval", qfile, "--json").stdout)
    assert data["memories"] == 5 and data["eval"]["questions"] == 1
    shown = cli("inspect", cube_copy).stdout
    assert "parameter tier: LoRA adapter" in shown and "text" in shown
    assert read_meta(cube_copy / "lora")["eval"]["tier"] == "lora"
    run = json.loads(cli("run", cube_copy, "Who owns the vision stack?", "--tier", "lora",
                         "--model", tiny_llama, "--max-new-tokens", "4", "--json").stdout)
    assert run["tier"] == "lora" and run["memories"] == []
    rows = json.loads(cli("eval", cube_copy, qfile, "--model", tiny_llama, "--tiers",
                          "none,lora", "--max-new-tokens", "4", "--json").stdout)
    assert [r["tier"] for r in rows] == ["none", "lora"]
    assert all({"accuracy", "ttft_s", "tokens_per_s", "bytes"} <= set(r) for r in rows)
    table = cli("eval", cube_copy, qfile, "--model", tiny_llama, "--tiers", "none,lora",
                "--max-new-tokens", "4").stdout
    assert "lora" in table and "direct" in table


@pytest.mark.parametrize("args,match", [
    (["--tiers", "none,kv"], "no KV segment"),
    (["--tiers", "none,magic"], "unknown tier"),
])
def test_cli_eval_refusals(cube_copy: Path, tiny_llama: Path, tmp_path: Path, args: list[str],
                           match: str) -> None:
    qfile = tmp_path / "q.jsonl"
    qfile.write_text('{"question": "x?", "answers": ["y"]}\n')
    res = cli("eval", cube_copy, qfile, "--model", tiny_llama, *args, code=2)
    assert match in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_cli_bad_question_file(cube_copy: Path, tiny_llama: Path, tmp_path: Path) -> None:
    qfile = tmp_path / "q.jsonl"
    qfile.write_text('{"question": "x?", "answers": ["y"]}\n{"question": "no answers"}\n')
    res = cli("eval", cube_copy, qfile, "--model", tiny_llama, "--tiers", "none", code=3)
    assert "line 2" in res.output and str(qfile.name) in res.output


def test_cli_run_lora_without_adapter(cube_copy: Path, tiny_llama: Path) -> None:
    res = cli("run", cube_copy, "q?", "--tier", "lora", "--model", tiny_llama, code=2)
    assert "no parameter tier" in res.output


def test_distill_lowers_the_kl_to_the_teacher(tiny: chat.ChatModel, packed_cube: Path) -> None:
    """Recipe distill (tiers/distill.py): the adapted model, given the question alone, moves
    toward the base model given the memory in its prompt (the text tier), while on the general
    prompts (KL to the base model itself, 0 before training) it stays close. A random 2-layer
    model barely reacts to its context, so the KL to the teacher starts small (~5e-4 nats a
    token); training divides it by about 100."""
    from memos_cli.tiers.lora import distill

    mems = select_memories(open_cube(packed_cube))[:4]
    recipe = lora.Recipe(name="distill", epochs=30, rank=8, alpha=16, batch_size=4, lr=1e-2,
                         questions_per_memory=2, replay=4)
    examples, _ = lora.build_examples(tiny, mems, recipe)
    targets = distill.targets(tiny, examples, {m.id: m for m in mems}, recipe)
    facts = [t for t in targets if not t.general]
    general = [t for t in targets if t.general]
    assert facts and general and all(
        t.index.shape == (len(t.ids) - t.start, recipe.kl_top_k)
        and t.logp.shape == (len(t.ids) - t.start, recipe.kl_top_k + 1) for t in targets)
    before = distill.mean_kl(tiny, tiny.model, facts)
    assert distill.mean_kl(tiny, tiny.model, general) < 1e-5  # the base model is its own teacher
    result = lora.train(tiny, mems, recipe)
    try:
        after = distill.mean_kl(tiny, result.model, facts)
        drift = distill.mean_kl(tiny, result.model, general)
    finally:
        tiny.model = lora.detach(result.model)
    assert after < 0.2 * before, (before, after)
    assert drift < before, drift
    assert result.examples == len(examples) and result.losses[-1] < result.losses[0]


def test_mixed_kl_keeps_general_prompts_near_the_base(tiny: chat.ChatModel,
                                                      packed_cube: Path) -> None:
    """Recipe mixed-kl: cross-entropy on the memories' questions (as mixed), KL toward the
    base model on the general prompts (as distill): the KL term holds the general prompts
    near the base model (weighted 5 against switched off)."""
    from memos_cli.tiers.lora import distill

    mems = select_memories(open_cube(packed_cube))[:4]
    drift = {}
    for weight in (0.0, 5.0):
        recipe = lora.Recipe(name="mixed-kl", epochs=6, rank=8, alpha=16, batch_size=4,
                             lr=1e-2, questions_per_memory=2, replay=8, general_weight=weight)
        examples, _ = lora.build_examples(tiny, mems, recipe)
        general = distill.targets(tiny, [e for e in examples if not e.memory_id], {}, recipe)
        result = lora.train(tiny, mems, recipe)
        try:
            drift[weight] = distill.mean_kl(tiny, result.model, general)
        finally:
            tiny.model = lora.detach(result.model)
    assert drift[5.0] < drift[0.0], drift


def test_guarded_training_prompts_are_not_the_measured_ones() -> None:
    """The general prompts recipe guarded trains on (memos_cli/data/general/train.jsonl) are
    never among those that measure forgetting (questions.jsonl, prompts.jsonl)."""
    from memos_cli.evaluation import forgetting
    from memos_cli.evaluation.evaluate import load_questions, normalize

    pool = [normalize(p) for p in lora.general_prompts(lora.Recipe(name="guarded"))]
    measured = {normalize(p) for p in forgetting.load_prompts(forgetting.packaged("prompts.jsonl"))}
    measured |= {normalize(q.question) for q in load_questions(
        forgetting.packaged("questions.jsonl"))}
    assert len(pool) == len(set(pool)) >= 300
    assert not set(pool) & measured
    assert lora.general_prompts(lora.Recipe(name="guarded", replay=0)) == []
    assert lora.general_prompts(lora.Recipe(name="mixed", replay=3)) == \
        list(lora.REPLAY_PROMPTS[:3])


def test_guarded_batches_hold_general_prompts_in_turn() -> None:
    """Every guarded batch holds general_per_batch general prompts, taken in turn so the pool
    is seen once before any repeats, and every memory example once per epoch."""
    import random

    items = [("ce", i) for i in range(20)] + [("kl", i) for i in range(7)]
    recipe = lora.Recipe(name="guarded", epochs=2, batch_size=6, general_per_batch=2)
    plan = lora.batches(items, recipe, random.Random(0))
    assert len(plan) == 2 * 5  # 20 memory examples, 4 a batch, two epochs
    general = [i for b in plan for i in b if items[i][0] == "kl"]
    assert all(sum(items[i][0] == "kl" for i in b) == 2 for b in plan)
    assert sorted(general[:7]) == list(range(20, 27))  # the whole pool before a repeat
    facts = [i for b in plan[:5] for i in b if items[i][0] == "ce"]
    assert sorted(facts) == list(range(20))
    mixed = lora.batches(items, lora.Recipe(name="mixed", epochs=2, batch_size=6),
                         random.Random(0))
    assert sorted(i for b in mixed for i in b) == sorted(2 * list(range(27)))


def test_guarded_general_targets_are_the_base_models_own(tiny: chat.ChatModel) -> None:
    """Recipe guarded takes the base model's distributions over its own continuation from the
    generate call that makes it: they equal a teacher pass over prompt + continuation (KL to
    the base model ~0, positions aligned)."""
    from memos_cli.tiers.lora import distill

    recipe = lora.Recipe(name="guarded", kl_top_k=8)
    prompts = lora.general_prompts(recipe)[:6]
    targets = distill.base_targets(tiny, prompts, recipe, max_new_tokens=6, batch=4)
    assert targets and all(t.general and t.weight == recipe.general_weight for t in targets)
    assert all(t.index.shape == (len(t.ids) - t.start, 8) and 1 <= len(t.ids) - t.start <= 6
               for t in targets)
    assert distill.mean_kl(tiny, tiny.model, targets) < 1e-4


def test_guarded_keeps_general_prompts_near_the_base(tiny: chat.ChatModel,
                                                     packed_cube: Path) -> None:
    """Recipe guarded: the general prompts in every batch hold them near the base model
    (weighted 5 against switched off), while the memories' loss still falls."""
    from memos_cli.tiers.lora import distill

    mems = select_memories(open_cube(packed_cube))[:4]
    drift = {}
    for weight in (0.0, 5.0):
        recipe = lora.Recipe(name="guarded", epochs=4, rank=8, alpha=16, batch_size=4,
                             lr=1e-2, questions_per_memory=2, general_weight=weight,
                             general_per_batch=2)
        probe = distill.base_targets(tiny, lora.general_prompts(recipe)[:40], recipe,
                                     max_new_tokens=8)
        result = lora.train(tiny, mems, recipe)
        try:
            drift[weight] = distill.mean_kl(tiny, result.model, probe)
        finally:
            tiny.model = lora.detach(result.model)
        assert result.examples > 380 and result.losses[-1] < result.losses[0]
    assert drift[5.0] < drift[0.0], drift


def test_cli_default_recipe_is_guarded(cube_copy: Path, tiny_llama: Path) -> None:
    """`convert --to lora` without --recipe trains recipe guarded with its own defaults
    (lora.RECIPE_DEFAULTS), an option given on the command line winning."""
    data = json.loads(cli("convert", cube_copy, "--to", "lora", "--model", tiny_llama,
                          "--epochs", "1", "--rank", "4", "--top", "3", "--json").stdout)
    recipe = read_meta(cube_copy / "lora")["recipe"]
    assert recipe["name"] == "guarded" and recipe["epochs"] == 1 and recipe["rank"] == 4
    assert recipe["general_per_batch"] == lora.RECIPE_DEFAULTS["guarded"]["general_per_batch"]
    assert data["memories"] == 3 and data["examples"] > 300  # the general prompts count


def test_answer_only_logits_give_the_same_losses(tiny: chat.ChatModel) -> None:
    """The losses run the language-model head only over the answer positions
    (``logits_to_keep``): the cross-entropy equals transformers' own over every position, and
    the KL equals one computed from full logits."""
    import torch

    from memos_cli.tiers.lora import distill
    from memos_cli.tiers.lora.train import _ce_loss

    tok = tiny.tokenizer
    pad = tok.pad_token_id or tok.eos_token_id
    batch = [lora.encode(tok, lora.Example("Who owns the vision stack?", "Ilse does.", "m1"), 64),
             lora.encode(tok, lora.Example(None, "Ilse owns the vision stack.", "m1"), 64),
             lora.encode(tok, lora.Example("Hi?", "A longer answer than the first.", "m2"), 64)]
    width = max(len(x) for x, _ in batch)
    ids = torch.tensor([x + [pad] * (width - len(x)) for x, _ in batch])
    labels = torch.tensor([y + [-100] * (width - len(y)) for _, y in batch])
    mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x, _ in batch])
    with torch.inference_mode():
        ours = float(_ce_loss(tiny.model, batch, pad))
        theirs = float(tiny.model(input_ids=ids, attention_mask=mask, labels=labels).loss)
    assert abs(ours - theirs) < 1e-5, (ours, theirs)
    recipe = lora.Recipe(name="guarded", kl_top_k=8)
    targets = distill.base_targets(tiny, ["What is 2 plus 2?", "Name a color."], recipe,
                                   max_new_tokens=5)
    expected = []
    for t in targets:  # of other lengths: the batch keeps logits from the earlier start
        with torch.inference_mode():
            full = tiny.model(input_ids=torch.tensor([t.ids])).logits[0].float()
        student = torch.log_softmax(full[t.start - 1:len(t.ids) - 1], -1)
        s = distill.with_rest(student.gather(-1, t.index))
        expected.append(float((t.logp.exp() * (t.logp - s)).sum(-1).mean()))
    assert len(targets) == 2 and targets[0].start != targets[1].start
    assert abs(distill.mean_kl(tiny, tiny.model, targets) - sum(expected) / 2) < 1e-5
