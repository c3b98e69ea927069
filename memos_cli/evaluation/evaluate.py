"""``memos eval``: answer a question file with each tier and compare accuracy, speed and size.

A question file is JSONL, one object a line: ``{"question": str, "answers": [str, ...]}``, and
optionally ``"kind"`` (e.g. ``direct`` / ``paraphrased``; accuracy is also reported per kind).
An answer is correct when, after lower-casing and replacing every run of characters other than
letters and digits by one space, it contains one of the accepted forms as whole words.

Tiers: ``none`` (the question alone), ``text`` (retrieved memories in the prompt), ``kv`` (the
cube's precomputed KV cache), ``lora`` (the cube's adapter, the question alone in the prompt).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memos_cli.errors import SourceError, UsageError
from memos_cli.evaluation import forgetting
from memos_cli.models.chat import ChatModel
from memos_cli.sources.base import json_lines, read_text
from memos_cli.tiers import lora
from memos_cli.tiers.decode import generate_ids
from memos_cli.tiers.plaintext import Answer, answer

TIERS = ("none", "text", "kv", "lora")


@dataclass(frozen=True)
class Question:
    question: str
    answers: tuple[str, ...]
    kind: str | None = None


def load_questions(path: str | Path) -> list[Question]:
    """Read a question file (see the module docstring).

    Raises:
        SourceError: unreadable, not UTF-8, a line that is not such an object (line named), or
            no question at all.
    """
    p = Path(path)
    if not p.is_file():
        raise SourceError("no such question file", path=p)
    out = []
    for n, obj in json_lines(read_text(p), p):
        q, answers = (obj.get("question"), obj.get("answers")) if isinstance(obj, dict) \
            else (None, None)
        if not isinstance(q, str) or not q.strip() or not isinstance(answers, list) or not \
                answers or not all(isinstance(a, str) and normalize(a).strip() for a in answers):
            raise SourceError(f"line {n}: needs \"question\" (text) and \"answers\" (a non-empty "
                              "list of texts)", path=p)
        kind = obj.get("kind")
        out.append(Question(q, tuple(answers), kind if isinstance(kind, str) else None))
    if not out:
        raise SourceError("question file holds no question", path=p)
    return out


def normalize(text: str) -> str:
    """Lower-case, every run of non-alphanumerics one space, padded with a space each side."""
    return " " + " ".join(re.sub(r"[\W_]+", " ", text.lower()).split()) + " "


def is_correct(answer: str, accepted: Sequence[str]) -> bool:
    """Whether ``answer`` contains one of the ``accepted`` forms (see :func:`normalize`)."""
    have = normalize(answer)
    return any(normalize(a) in have for a in accepted)


@dataclass
class TierResult:
    """One row of the table. Times in seconds (medians over the questions); ``bytes``: the
    tier's files in the cube."""

    tier: str
    questions: int
    correct: int
    ttft_s: float
    tokens_per_s: float
    prompt_tokens: float
    bytes: int
    by_kind: dict[str, dict[str, float]] = field(default_factory=dict)
    answers: list[dict[str, Any]] = field(default_factory=list)
    #: tier lora: what the adapter does to general questions and prompts (``forgetting``):
    #: ``questions``, ``correct``, ``base_correct``, ``accuracy``, ``base_accuracy``,
    #: ``kept`` (accuracy / base accuracy), ``kl`` (nats per token), ``kl_prompts``
    general: dict[str, Any] | None = None

    @property
    def accuracy(self) -> float:
        return self.correct / self.questions if self.questions else 0.0

    def to_dict(self, *, answers: bool = False) -> dict[str, Any]:
        d = {"tier": self.tier, "accuracy": round(self.accuracy, 4), "correct": self.correct,
             "questions": self.questions, "by_kind": self.by_kind,
             "ttft_s": round(self.ttft_s, 4), "tokens_per_s": round(self.tokens_per_s, 2),
             "prompt_tokens": self.prompt_tokens, "bytes": self.bytes}
        if self.general is not None:
            d["general"] = self.general
        if answers:
            d["answers"] = self.answers
        return d


def tier_bytes(cube: Any, tier: str) -> int:
    """Bytes on disk of a tier's files in ``cube`` (0 for ``none``)."""
    if tier == "none":
        return 0
    if tier == "text":
        index = cube.manifest.index["path"]
        files = [cube.manifest.memories_file.path] + [
            f for f in cube.files if f == index or f.startswith(index + "/")]
        return sum((cube.path / f).stat().st_size for f in files)
    if tier == "kv":
        return sum(int(e["size"]) for e in cube.segments) + sum(s.bytes for s in
                                                                cube.chunk_sets)
    return sum(int(f["size"]) for f in cube.manifest.lora["files"])


def check_tiers(cube: Any, tiers: Sequence[str]) -> None:
    """Refuse unknown tiers and tiers the cube does not hold.

    Raises:
        UsageError: naming the tier and how to build it.
    """
    for t in tiers:
        if t not in TIERS:
            raise UsageError(f"unknown tier {t!r}; tiers are {', '.join(TIERS)}")
    if "text" in tiers:
        cube.require_plaintext()
    if "kv" in tiers and not cube.segments and not cube.chunk_sets:
        raise UsageError("cube has no KV segment; build one with `memos convert CUBE --to kv` "
                         "or leave kv out of --tiers", path=cube.path)
    if "lora" in tiers and not cube.has_lora:
        raise UsageError("cube has no LoRA adapter; build one with `memos convert CUBE --to "
                         "lora` or leave lora out of --tiers", path=cube.path)


def default_tiers(cube: Any) -> list[str]:
    """``none`` and every tier the cube holds."""
    return ["none"] + [t for t, has in (("text", cube.has_plaintext), ("kv", bool(cube.segments or
                                                                       cube.chunk_sets)),
                                        ("lora", cube.has_lora)) if has]


def run_tier(tier: str, ask: Callable[[str], Any], questions: Sequence[Question], nbytes: int,
             progress: Callable[[str, int, int], None] | None = None) -> TierResult:
    """Ask every question with ``ask(question) -> Answer`` and score the answers."""
    rows: list[dict[str, Any]] = []
    ttft, rate, prompt = [], [], []
    if progress:  # the bar shows from the start: one answer can take a minute
        progress(tier, 0, len(questions))
    for i, q in enumerate(questions, start=1):
        a = ask(q.question)
        ok = is_correct(a.answer, q.answers)
        t = a.timings
        ttft.append(t["ttft_s"] + t.get("retrieval_s", 0.0) + t.get("segment_load_s", 0.0))
        rate.append(t["tokens_per_s"])
        prompt.append(a.prompt_tokens)
        rows.append({"question": q.question, "kind": q.kind, "answer": a.answer,
                     "correct": ok})
        if progress:
            progress(tier, i, len(questions))
    by_kind: dict[str, dict[str, float]] = {}
    for kind in sorted({r["kind"] for r in rows if r["kind"]}):
        sel = [r for r in rows if r["kind"] == kind]
        n_ok = sum(r["correct"] for r in sel)
        by_kind[kind] = {"questions": len(sel), "correct": n_ok,
                         "accuracy": round(n_ok / len(sel), 4)}
    return TierResult(tier, len(rows), sum(r["correct"] for r in rows),
                      statistics.median(ttft), statistics.median(rate),
                      statistics.median(prompt), nbytes, by_kind, rows)


def evaluate(cube: Any, chat: ChatModel, questions: Sequence[Question], tiers: Sequence[str], *,
             embedder: Any = None, k: int = 5, max_new_tokens: int = 48,
             general: Sequence[Question] = (), kl_prompts: Sequence[str] = (),
             cache: dict[str, Any] | None = None,
             progress: Callable[[str, int, int], None] | None = None) -> list[TierResult]:
    """Answer ``questions`` with each tier in ``tiers`` (greedy decoding) and score them.

    For tier ``lora``, ``general`` questions are also answered with and without the adapter,
    and the mean KL from the base model is measured over its continuations of
    ``kl_prompts`` (``forgetting``); both go in the row's ``general``. General answers are
    cut at :data:`GENERAL_TOKENS` tokens. ``cache`` (a dict kept between calls with the same
    model and general set) keeps the base model's general answers and continuations.

    ``ttft_s`` counts from the question to the first token, retrieval (text, kv chunks),
    chunk or segment load and composition (kv) included; the model load and the adapter
    attach (once per run) are not. ``embedder`` is needed for ``text`` and kv chunks.

    Raises:
        UsageError: see :func:`check_tiers`. FormatError: a tier that does not fit the model.
    """
    from memos_cli.tiers import chunks, lora

    check_tiers(cube, tiers)
    results = []
    for tier in tiers:
        if tier == "none":
            results.append(run_tier(tier, bare_ask(chat, tier, max_new_tokens), questions, 0,
                                    progress))
        elif tier == "text":
            if embedder is None:
                raise UsageError("tier text needs the cube's embedder")
            results.append(run_tier(tier, lambda q: answer(cube, embedder, chat, q, k=k,
                                                           max_new_tokens=max_new_tokens),
                                    questions, tier_bytes(cube, tier), progress))
        elif tier == "kv" and chunks.pick_set(cube, chat) is not None:
            if embedder is None:
                raise UsageError("tier kv with chunks needs the cube's embedder")
            results.append(run_tier(tier, lambda q: chunks.answer_chunked(
                cube, embedder, chat, q, k=k, max_new_tokens=max_new_tokens), questions,
                tier_bytes(cube, tier), progress))
        elif tier == "kv":
            from memos_cli.tiers.kv import answer_kv

            results.append(run_tier(tier, lambda q: answer_kv([cube], chat, q,
                                                              max_new_tokens=max_new_tokens),
                                    questions, tier_bytes(cube, tier), progress))
        else:
            tuned = lora.attach(chat, cube)
            try:
                row = run_tier(tier, bare_ask(tuned, tier, max_new_tokens), questions,
                               tier_bytes(cube, tier), progress)
                after = run_tier("general", bare_ask(tuned, tier, GENERAL_TOKENS), general, 0,
                                 progress) if general else None
            finally:
                chat.model = lora.detach(tuned.model)
            if after is not None:
                row.general = general_row(cube, chat, general, after, kl_prompts,
                                          {} if cache is None else cache, progress)
            results.append(row)
    return results


#: Most tokens of an answer to a general question (they are short answers).
GENERAL_TOKENS = 24


def general_row(cube: Any, chat: ChatModel, general: Sequence[Question], after: TierResult,
                kl_prompts: Sequence[str], cache: dict[str, Any],
                progress: Callable[[str, int, int], None] | None) -> dict[str, Any]:
    """The ``general`` entry of a lora row: accuracy with and without the adapter, and the
    mean KL from the base model (``forgetting``); the base model's part comes from ``cache``
    when it holds it."""
    if "base" not in cache:
        cache["base"] = run_tier("general (base)", bare_ask(chat, "none", GENERAL_TOKENS),
                                 general, 0, progress)
    before = cache["base"]
    if kl_prompts and "pairs" not in cache:
        cache["pairs"] = forgetting.continuations(chat, kl_prompts)
    kl = forgetting.adapter_kl(chat, cube, cache["pairs"]) if kl_prompts else None
    return {"questions": len(general), "correct": after.correct,
            "base_correct": before.correct, "accuracy": round(after.accuracy, 4),
            "base_accuracy": round(before.accuracy, 4),
            "kept": round(after.correct / before.correct, 4) if before.correct else None,
            "kl": None if kl is None else round(kl, 6), "kl_prompts": len(kl_prompts),
            "lost": [r["question"] for r, b in zip(after.answers, before.answers, strict=True)
                     if b["correct"] and not r["correct"]],
            "gained": [r["question"] for r, b in zip(after.answers, before.answers, strict=True)
                       if r["correct"] and not b["correct"]]}


def bare_ask(chat: ChatModel, tier: str, max_new_tokens: int = 48) -> Callable[[str], Any]:
    """``ask(question) -> Answer`` with the question alone in the prompt, for ``chat`` as it is
    (the base model, tier ``none``, or one with an adapter attached, tier ``lora``)."""
    def ask(q: str) -> Answer:
        g = generate_ids(chat, lora.prompt_ids(chat.tokenizer, q),
                         max_new_tokens=max_new_tokens)
        return Answer(q, g.text, [], chat.name, {"ttft_s": g.ttft_s,
                                                 "tokens_per_s": g.tokens_per_s},
                      g.prompt_tokens, g.new_tokens, tier=tier, stop=g.stop)
    return ask
