"""The parameter tier: distil memories into a LoRA adapter, attach it, answer without a prompt.

Training follows the synthetic question-answer recipe of Ovadia et al. ("Fine-Tuning or
Retrieval?", 2023): a fact sticks in the weights when the model sees it as the answer to many
differently worded questions, not when it reads it once. The questions come from the base model
itself (sampled, ``recipe="selfqa"``), from templates over the memory's noun phrases and named
entities (spaCy, ``recipe="anchors"``), or both (``"mixed"``); ``recipe="text"`` is plain
next-token training on the memory text, kept as the baseline. Against forgetting, the default
``"guarded"`` trains on ``mixed``'s questions while every batch also holds a few general prompts
whose base-model continuations are distilled into the adapter (KL toward the base model: the
self-distillation regulariser of context distillation, Snell et al. 2022; replay of general
data, Biderman et al. 2024); ``"distill"`` and ``"mixed-kl"`` are in ``tiers.distill``. The
measurement that chose the default is in the README ("Parameter tier"). The adapter is a LoRA
(Hu et al., ICLR 2022) made with PEFT, trained on the CPU in float32 with AdamW.

At run time the question is the only prompt (the chat template's user turn), so the time to first
token equals the base model's (tier ``none``).
"""

from __future__ import annotations

import random
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from memos_cli.errors import UsageError
from memos_cli.memory import Memory
from memos_cli.models.chat import ChatModel
from memos_cli.tiers.lora_data import (  # noqa: F401  (re-exported: the recipes' data)
    ANCHOR_TEMPLATES,
    GUARD_TOKENS,
    QGEN_PROMPT,
    REPLAY_PROMPTS,
    Example,
    base_answers,
    build_examples,
    encode,
    general_prompts,
    prompt_ids,
    sample_questions,
    spacy_anchors,
)

RECIPES = ("selfqa", "anchors", "mixed", "text", "distill", "mixed-kl", "guarded")
#: The projections of a Llama-style block; an adapter targets those the model has.
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Recipe:
    """How an adapter is trained; stored in the cube's ``lora/memcube_lora.json``.

    ``epochs`` passes over the examples in batches of ``batch_size`` at learning rate ``lr``
    (AdamW, linear warm-up over the first 5 % of steps then linear decay to 0);
    ``questions_per_memory`` sampled questions (``selfqa``) at ``qgen_temperature``;
    ``replay``: how many of :data:`REPLAY_PROMPTS` are answered by the base model (greedy, 48
    tokens at most) and trained on as they are, against forgetting;
    ``rank``/``alpha``/``dropout`` of the LoRA; ``max_tokens``: examples are cut to this many
    tokens. The dataclass defaults are those of ``mixed``; :meth:`named` applies a recipe's
    own (:data:`RECIPE_DEFAULTS`).
    """

    name: str = "mixed"
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: tuple[str, ...] = TARGET_MODULES
    lr: float = 1e-3
    epochs: int = 3
    batch_size: int = 8
    questions_per_memory: int = 4
    qgen_temperature: float = 0.7
    replay: int = len(REPLAY_PROMPTS)
    max_tokens: int = 160
    seed: int = 0
    #: recipe ``distill``: teacher tokens kept per position, and the weight of the general
    #: prompts' KL toward the base model against the memories' (``tiers.distill``)
    kl_top_k: int = 32
    general_weight: float = 1.0
    #: recipe ``guarded``: general prompts in every batch of ``batch_size`` (the rest are the
    #: memories' questions), drawn in turn from the packaged training set
    general_per_batch: int = 2

    @classmethod
    def named(cls, name: str, **overrides: Any) -> Recipe:
        """Recipe ``name`` with its own defaults (:data:`RECIPE_DEFAULTS`), then ``overrides``
        (``None`` values are left at the default)."""
        return cls(name=name, **(RECIPE_DEFAULTS.get(name, {}) |
                                 {k: v for k, v in overrides.items() if v is not None}))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["target_modules"] = list(self.target_modules)
        return d


#: Defaults that differ from :class:`Recipe`'s for one recipe (chosen on half of the
#: measurement, README "Parameter tier").
RECIPE_DEFAULTS: dict[str, dict[str, Any]] = {
    "guarded": {"epochs": 2, "lr": 1.5e-3, "general_per_batch": 3, "general_weight": 2.0},
}


@dataclass
class TrainResult:
    """A trained adapter (``model``: the PEFT model) and what the metadata records."""

    model: Any
    examples: int
    steps: int
    train_s: float
    qgen_s: float
    losses: list[float] = field(default_factory=list)


def present_modules(model: Any, wanted: Sequence[str]) -> list[str]:
    """The module names of ``wanted`` that ``model`` has (last name component)."""
    have = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    return [m for m in wanted if m in have]


def train(chat: ChatModel, memories: Sequence[Memory], recipe: Recipe, *,
          progress: Callable[[int, int, float], None] | None = None) -> TrainResult:
    """Train a LoRA adapter on ``memories`` with ``recipe``; the base model is not changed.

    ``progress(step, total_steps, loss)`` is called after every optimizer step. A
    ``KeyboardInterrupt`` stops training at once and propagates; nothing is written here.
    PEFT injects the adapter into ``chat.model``'s modules: call :func:`detach` on the result
    (``ChatModel`` or ``TrainResult.model``) to get the plain base model back; on an error the
    injection is undone here.

    Raises:
        UsageError: no memories, or the model has none of the target modules.
    """
    import torch
    from peft import LoraConfig, get_peft_model

    if not memories:
        raise UsageError("no memories to train on")
    targets = present_modules(chat.model, recipe.target_modules)
    if not targets:
        raise UsageError(f"model {chat.name} has none of the modules a LoRA adapter targets "
                         f"({', '.join(recipe.target_modules)})")
    random.seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    examples, qgen_s = build_examples(chat, memories, recipe)
    guard: list[Any] = []
    if recipe.name == "guarded":  # the base model's answers and distributions at once
        from memos_cli.tiers import distill

        t1 = time.perf_counter()
        guard = distill.base_targets(chat, general_prompts(recipe), recipe,
                                     max_new_tokens=GUARD_TOKENS)
        qgen_s += time.perf_counter() - t1  # generating, as the replay answers are
    t0 = time.perf_counter()
    pad = chat.tokenizer.pad_token_id or chat.tokenizer.eos_token_id
    items: list[Any]
    if recipe.name == "distill":  # the teacher is the base model: before the adapter exists
        from memos_cli.tiers import distill

        items = distill.targets(chat, examples, {m.id: m for m in memories}, recipe)

        def loss_of(model: Any, batch: list[Any]) -> Any:
            return distill.batch_loss(model, batch, pad)
    elif recipe.name in ("mixed-kl", "guarded"):  # mixed's questions; general prompts distilled
        from memos_cli.tiers import distill

        items = [("ce", encode(chat.tokenizer, ex, recipe.max_tokens)) for ex in examples
                 if ex.memory_id]
        items += [("kl", t) for t in (guard if recipe.name == "guarded" else distill.targets(
            chat, [ex for ex in examples if not ex.memory_id], {}, recipe))]

        def loss_of(model: Any, batch: list[Any]) -> Any:
            ce = [x for kind, x in batch if kind == "ce"]
            kl = [x for kind, x in batch if kind == "kl"]
            parts = [len(ce) * _ce_loss(model, ce, pad)] if ce else []
            parts += [len(kl) * distill.batch_loss(model, kl, pad)] if kl else []
            return sum(parts) / len(batch)
    else:
        items = [encode(chat.tokenizer, ex, recipe.max_tokens) for ex in examples]

        def loss_of(model: Any, batch: list[Any]) -> Any:
            return _ce_loss(model, batch, pad)
    config = LoraConfig(r=recipe.rank, lora_alpha=recipe.alpha, lora_dropout=recipe.dropout,
                        target_modules=targets, bias="none", task_type="CAUSAL_LM")
    torch.manual_seed(recipe.seed)
    with warnings.catch_warnings():  # PEFT calls a transformers API deprecated for v6
        warnings.simplefilter("ignore", FutureWarning)
        peft_model = get_peft_model(chat.model, config)
    rng = random.Random(recipe.seed)
    plan = batches(items, recipe, rng)
    total = len(plan)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=0.0)
    warm = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(  # linear warm-up, then linear decay to 0
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)))
    losses: list[float] = []
    peft_model.train()
    step = 0
    try:
        for batch in plan:
            loss = loss_of(peft_model, [items[i] for i in batch])
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            losses.append(float(loss.detach()))
            if progress:
                progress(step, total, losses[-1])
    except BaseException:
        peft_model.unload()
        raise
    finally:
        peft_model.eval()
    return TrainResult(peft_model, len(examples) + len(guard), step, time.perf_counter() - t0,
                       qgen_s, losses)


def batches(items: Sequence[Any], recipe: Recipe, rng: random.Random) -> list[list[int]]:
    """The indices into ``items`` of every training step, all epochs.

    Each epoch shuffles the items into batches of ``recipe.batch_size``. Recipe ``guarded``
    shuffles only the memories' examples, into batches of ``batch_size - general_per_batch``,
    and fills each batch with ``general_per_batch`` general prompts taken in turn from a
    shuffled order of them (reshuffled when used up): every step holds the model to the base
    on a few general prompts, and the pool is seen once before any repeats.
    """
    if recipe.name != "guarded":
        out = []
        for _ in range(recipe.epochs):
            order = list(range(len(items)))
            rng.shuffle(order)
            out += [order[b:b + recipe.batch_size]
                    for b in range(0, len(order), recipe.batch_size)]
        return out
    facts = [i for i, (kind, _) in enumerate(items) if kind == "ce"]
    general = [i for i, (kind, _) in enumerate(items) if kind == "kl"]
    g = min(recipe.general_per_batch, recipe.batch_size - 1) if general else 0
    size = recipe.batch_size - g
    queue: list[int] = []
    out = []
    for _ in range(recipe.epochs):
        rng.shuffle(facts)
        for b in range(0, len(facts), size):
            while len(queue) < g:
                more = list(general)
                rng.shuffle(more)
                queue += more
            out.append(facts[b:b + size] + queue[:g])
            del queue[:g]
    return out


def _ce_loss(model: Any, batch: list[tuple[list[int], list[int]]], pad: int) -> Any:
    """Mean cross-entropy over the answer tokens of a batch of :func:`encode` pairs
    (right-padded). The language-model head runs only from the first answer token of the batch
    on (transformers' ``logits_to_keep``): the prompt positions need no logits."""
    import torch

    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for r, (x, y) in enumerate(batch):
        ids[r, :len(x)] = torch.tensor(x)
        labels[r, :len(y)] = torch.tensor(y)
        mask[r, :len(x)] = 1
    first = max(1, min(next((i for i, t in enumerate(y) if t != -100), len(y))
                       for _, y in batch))
    logits = model(input_ids=ids, attention_mask=mask,
                   logits_to_keep=width - first + 1).logits[:, :-1]  # predict first..width-1
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                             labels[:, first:].reshape(-1), ignore_index=-100)


def check_adapter_fits(chat: ChatModel, meta: dict[str, Any], where: str | Path) -> None:
    """Refuse an adapter trained on another base model, naming every mismatch.

    Raises:
        FormatError: the fingerprints differ (the fields of ``models.fingerprint.CHECKED``).
    """
    from memos_cli.errors import FormatError

    diff = chat.fingerprint_mismatches(meta["model_fingerprint"])
    if diff:
        raise FormatError(f"LoRA adapter was trained on {meta['model']} and does not fit "
                          f"{chat.name}: " + "; ".join(diff), path=where)


def attach(chat: ChatModel, cube: Any, *, merge: bool = True) -> ChatModel:
    """``chat`` with the cube's adapter attached (a PEFT model over the same base weights).

    The fingerprint is checked first, then PEFT's files (:func:`memos_cli.cube.lora.
    check_adapter`); only then does PEFT read the safetensors weights. With ``merge`` the
    low-rank update is added into the base weights (``W + B A * alpha / r``), so a forward pass
    costs what the base model's does; the answers equal the unmerged adapter's up to float32
    rounding. Call :func:`detach` to get the base model back.

    Raises:
        UsageError: the cube has no parameter tier. FormatError: another base model, or a
        malformed adapter. IntegrityError: a file missing or resized.
    """
    from peft import PeftModel

    from memos_cli.cube.lora import check_adapter, read_meta

    directory = cube.lora_dir
    meta = read_meta(directory)
    check_adapter_fits(chat, meta, directory)
    check_adapter(directory)
    chat.fingerprint()  # of the base, before PEFT renames its modules
    with warnings.catch_warnings():  # PEFT calls a transformers API deprecated for v6
        warnings.simplefilter("ignore", FutureWarning)
        model = PeftModel.from_pretrained(chat.model, str(directory), is_trainable=False).eval()
    if merge:
        model.base_model.merge_adapter()  # type: ignore[operator]
    return ChatModel(chat.name, chat.path, model, chat.tokenizer, chat.load_s,
                     chat._fingerprint)


def detach(model: Any) -> Any:
    """The base model under a PEFT model (from :func:`attach` or :func:`train`), with the
    adapter layers removed and a merged update subtracted again (the base weights come back
    up to float32 rounding)."""
    if any(getattr(m, "merged", False) for m in model.modules()):
        model.base_model.unmerge_adapter()
    return model.unload()


def answer_lora(cube: Any, chat: ChatModel, question: str, *, max_new_tokens: int = 128,
                temperature: float = 0.0, combine: str = "cat", embedder: Any = None) -> Any:
    """Answer ``question`` with the cube's adapter (or the adapters of a list of cubes, merged
    by :func:`memos_cli.tiers.combine.attach_many`, or with ``combine="route"`` the one
    :func:`memos_cli.tiers.combine.route` picks with ``embedder``) and nothing else in the
    prompt; ``chat`` is left without the adapter afterwards.

    Returns a ``plaintext.Answer`` with ``tier="lora"``, no memories, and ``timings``
    (``model_load_s``, ``adapter_load_s``, ``ttft_s``, ``generate_s``, ``tokens_per_s``; with
    routing also ``route_s``, and ``details`` with the chosen ``cube`` and every ``scores``).

    Raises:
        UsageError: ``route`` without an embedder.
    """
    from memos_cli.tiers.combine import attach_many, check_all, route
    from memos_cli.tiers.plaintext import Answer, generate_ids

    timings: dict[str, float] = {}
    details: dict[str, Any] = {}
    if isinstance(cube, (list, tuple)) and combine == "route":
        if embedder is None:
            raise UsageError("--combine route needs the embedder")
        check_all(chat, cube)  # every adapter, not only the one chosen
        t0 = time.perf_counter()
        pick, scores = route(cube, embedder, question)
        timings["route_s"] = time.perf_counter() - t0
        details = {"cube": cube[pick].manifest.cube_id, "scores": [round(x, 4) for x in scores]}
        cube = cube[pick]
    t0 = time.perf_counter()
    tuned = attach_many(chat, cube, combine=combine) if isinstance(cube, (list, tuple)) \
        else attach(chat, cube)
    adapter_load_s = time.perf_counter() - t0
    try:
        gen = generate_ids(tuned, prompt_ids(chat.tokenizer, question),
                           max_new_tokens=max_new_tokens, temperature=temperature)
    finally:
        chat.model = detach(tuned.model)  # the base model, as it was
    return Answer(question, gen.text, [], chat.name,
                  {"model_load_s": chat.load_s, "adapter_load_s": adapter_load_s,
                   "ttft_s": gen.ttft_s, "generate_s": gen.total_s,
                   "tokens_per_s": gen.tokens_per_s, **timings},
                  gen.prompt_tokens, gen.new_tokens, tier="lora", details=details)
