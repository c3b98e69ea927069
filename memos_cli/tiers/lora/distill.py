"""Recipe ``distill`` of the parameter tier: context distillation of the text tier into the
adapter (Snell et al., 2022, "Learning by Distilling Context"; Kujanpää et al., TMLR 2025,
arXiv 2412.14964).

The *teacher* is the base model with the memory in its prompt, laid out as the text tier lays
it out (``plaintext.build_messages``); the *student* is the base model plus the adapter, with
the question alone. For each training question (sampled and templated, as recipe ``mixed``
makes them) the loss is the KL divergence ``KL(teacher || student)`` between their next-token
distributions over the answer tokens (the memory's text and the end-of-turn token). General
prompts (``lora.REPLAY_PROMPTS``, disjoint from the questions that measure forgetting) are
distilled from the base model itself, without memory: a KL regulariser toward the base model
instead of training on its greedy answers.

The teacher's distributions are computed once, before the adapter exists, and kept as their
top ``kl_top_k`` tokens per position plus one bin for the rest of the vocabulary: ``[A, k]``
indices and ``[A, k + 1]`` log-probabilities per example, a few kilobytes instead of
``A × vocabulary`` floats. The KL is exact on these ``k + 1`` bins (the student's mass is
binned the same way), so it is 0 when the student equals the teacher and it still pushes the
student's mass off the tokens the teacher does not rank.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memos_cli.tiers.lora.data import greedy, prompt_ids, until_end
from memos_cli.tiers.plaintext import build_messages

if TYPE_CHECKING:
    import torch

    from memos_cli.memory import Memory
    from memos_cli.models.chat import ChatModel
    from memos_cli.tiers.lora.data import Example
    from memos_cli.tiers.lora.recipe import Recipe


@dataclass
class Target:
    """One distillation example: the student's ``ids`` (question prompt, then answer), where
    the answer starts, and the teacher's top-k next-token ``index`` ``[A, k] int64`` and
    ``logp`` ``[A, k + 1] float32`` (log-probabilities of those tokens, then of all others)
    for the ``A`` answer tokens."""

    ids: list[int]
    start: int
    index: torch.Tensor
    logp: torch.Tensor
    weight: float
    #: a general prompt (teacher: the base model without memory), not a memory's question
    general: bool = False


def teacher_prompt(chat: ChatModel, question: str, memory: Memory | None) -> list[int]:
    """The teacher's prompt: the text tier's messages with ``memory`` listed (the base model's
    own prompt for a general example, ``memory`` ``None``)."""
    if memory is None:
        return prompt_ids(chat.tokenizer, question)
    ids = chat.tokenizer.apply_chat_template(build_messages(question, [memory]),
                                             add_generation_prompt=True, tokenize=True,
                                             return_dict=True)["input_ids"]
    return list(ids)


def targets(chat: ChatModel, examples: Sequence[Example], memories: dict[str, Memory],
            recipe: Recipe) -> list[Target]:
    """The teacher's top-k distributions for every question example (plain-text examples,
    without a question, are left out). Run before the adapter is injected."""
    import torch

    tok = chat.tokenizer
    out = []
    for ex in examples:
        if ex.question is None:
            continue
        answer = tok(ex.answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        student = prompt_ids(tok, ex.question)
        answer = answer[:max(1, recipe.max_tokens - len(student))]
        teacher = teacher_prompt(chat, ex.question, memories.get(ex.memory_id))
        x = torch.tensor([teacher + answer], dtype=torch.long)
        with torch.inference_mode():
            logits = chat.model(input_ids=x).logits[0, len(teacher) - 1:-1].float()
        top = torch.log_softmax(logits, -1).topk(recipe.kl_top_k, dim=-1)
        out.append(Target(student + answer, len(student), top.indices, with_rest(top.values),
                          1.0 if ex.memory_id else recipe.general_weight, not ex.memory_id))
    return out


def with_rest(logp: torch.Tensor) -> torch.Tensor:
    """``[A, k]`` log-probabilities of some tokens -> ``[A, k + 1]``: a last column with the
    log-probability of every other token, ``log(1 - sum(p))`` (clamped away from 0)."""
    import torch

    rest = torch.log1p(-logp.exp().sum(-1).clamp(max=1 - 1e-6))
    return torch.cat([logp, rest.unsqueeze(-1)], -1)


def batch_loss(model: Any, batch: Sequence[Target], pad: int) -> torch.Tensor:
    """Mean over the batch of each example's mean per-token ``KL(teacher || student)`` over
    its answer tokens (on the teacher's top-k tokens and the rest), times its weight. The
    language-model head runs only from the first answer position of the batch on."""
    import torch

    width = max(len(t.ids) for t in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for r, t in enumerate(batch):
        ids[r, :len(t.ids)] = torch.tensor(t.ids)
        mask[r, :len(t.ids)] = 1
    first = min(t.start for t in batch) - 1  # no logits are needed before it
    logits = model(input_ids=ids, attention_mask=mask,
                   logits_to_keep=width - first).logits.float()
    losses = []
    for r, t in enumerate(batch):
        a = t.index.shape[0]
        at = t.start - 1 - first
        student = torch.log_softmax(logits[r, at:at + a], -1)
        s = with_rest(student.gather(-1, t.index))
        p = t.logp.exp()
        losses.append(t.weight * (p * (t.logp - s)).sum(-1).mean())
    return torch.stack(losses).mean()


def mean_kl(chat: ChatModel, model: Any, batch: Sequence[Target]) -> float:
    """The mean per-token ``KL(teacher || model)`` over ``batch`` (no gradient): what training
    lowers."""
    import torch

    pad = chat.tokenizer.pad_token_id or chat.tokenizer.eos_token_id
    with torch.inference_mode():
        return float(batch_loss(model, [Target(t.ids, t.start, t.index, t.logp, 1.0)
                                        for t in batch], pad))


def base_targets(chat: ChatModel, prompts: Sequence[str], recipe: Recipe, *,
                 max_new_tokens: int, batch: int = 16) -> list[Target]:
    """General prompts distilled from the base model itself (recipe ``guarded``): the base
    model's greedy continuation of each prompt (chat template, question alone; at most
    ``max_new_tokens``, through the end-of-turn token) and, taken from the same ``generate``
    call (``output_logits``), its top ``kl_top_k`` next-token distribution at every
    continuation token, so no second teacher pass is needed. ``batch`` prompts per call,
    left-padded; the logits of one call (``batch × max_new_tokens × vocabulary`` float32, about
    100 MB for the default model) are kept only until their top-k is taken. Prompts the model
    answers with nothing are left out. Run before the adapter is injected."""
    import torch

    tok = chat.tokenizer
    out = []
    for rows, gen, width in greedy(chat, prompts, max_new_tokens=max_new_tokens, batch=batch,
                                   output_logits=True, return_dict_in_generate=True):
        top = [torch.log_softmax(step.float(), -1).topk(recipe.kl_top_k, dim=-1)
               for step in gen.logits]  # per new token: [batch, k]
        for r, (prompt, row) in enumerate(zip(rows, gen.sequences[:, width:].tolist(),
                                              strict=True)):
            cont = until_end(row, tok)
            if cont[0] in (tok.eos_token_id, tok.pad_token_id):
                continue
            index = torch.stack([t.indices[r] for t in top[:len(cont)]])
            logp = torch.stack([t.values[r] for t in top[:len(cont)]])
            out.append(Target(prompt + cont, len(prompt), index, with_rest(logp),
                              recipe.general_weight, True))
    return out
