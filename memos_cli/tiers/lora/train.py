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
from typing import Any

from memos_cli.errors import UsageError
from memos_cli.memory import Memory
from memos_cli.models.chat import ChatModel
from memos_cli.tiers.lora import distill
from memos_cli.tiers.lora.data import GUARD_TOKENS, build_examples, encode, general_prompts
from memos_cli.tiers.lora.recipe import Recipe, TrainResult


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
        t1 = time.perf_counter()
        guard = distill.base_targets(chat, general_prompts(recipe), recipe,
                                     max_new_tokens=GUARD_TOKENS)
        qgen_s += time.perf_counter() - t1  # generating, as the replay answers are
    t0 = time.perf_counter()
    pad = chat.tokenizer.pad_token_id or chat.tokenizer.eos_token_id
    items: list[Any]
    if recipe.name == "distill":  # the teacher is the base model: before the adapter exists
        items = distill.targets(chat, examples, {m.id: m for m in memories}, recipe)

        def loss_of(model: Any, batch: list[Any]) -> Any:
            return distill.batch_loss(model, batch, pad)
    elif recipe.name in ("mixed-kl", "guarded"):  # mixed's questions; general prompts distilled
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
