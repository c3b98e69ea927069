"""The plaintext tier: retrieve memories for a question, put them in the prompt, generate.

Retrieval-augmented generation as in Lewis et al. (NeurIPS 2020), with the hybrid retrieval of
``memos_cli.cube.index``. Generation is greedy by default and timed: time to first token
(tokenization, prefill and the first decode step) and decode speed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from memos_cli.cube import Cube
from memos_cli.errors import EmbedderMismatchError, IntegrityError
from memos_cli.governance.policy import can_read
from memos_cli.memory import Memory, derived_from, format_time
from memos_cli.models.chat import ChatModel
from memos_cli.models.embedder import Embedder
from memos_cli.tiers import budget, generation
from memos_cli.tiers.prompt import prompt_ids
from memos_cli.validity import CURRENT, View

SYSTEM_PROMPT = (
    "You are a helpful assistant with a memory. Answer the user's question using the "
    "memories below; they are the facts you know. Answer briefly. If the memories do not "
    "hold the answer, say that you do not know.\n\nMemories:\n{memories}"
)


@dataclass(frozen=True)
class Retrieved:
    """A memory found for a query, with its fused ``score`` and 1-based ``rank``.

    ``via`` says what matched: ``memory`` (its own text), ``context`` or ``questions`` (a
    reader's row for it, text in ``matched``) or ``facts`` (a derived memory resolved to this
    source; its text in ``matched``, its id in ``derived_id``). A context row's text holds
    neighbouring memories, so it is never shown: ``matched`` is ``None`` for ``context``."""

    memory: Memory
    score: float
    rank: int
    vector_rank: int | None
    text_rank: int | None
    via: str = "memory"
    matched: str | None = None
    derived_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "id": self.memory.id, "score": round(self.score, 6),
                "vector_rank": self.vector_rank, "text_rank": self.text_rank,
                "content": self.memory.content, "text": self.memory.render(),
                "source_file": self.memory.source_file,
                "line_start": self.memory.line_start, "line_end": self.memory.line_end,
                "turn_id": self.memory.turn_id, "via": self.via, "matched": self.matched,
                "valid_from": format_time(self.memory.valid_from),
                "valid_to": format_time(self.memory.valid_to),
                **({"superseded_by": self.memory.superseded_by}
                   if self.memory.superseded_by else {}),
                **({"derived_id": self.derived_id} if self.derived_id else {})}


def check_embedder(cube: Cube, embedder: Embedder) -> None:
    """Refuse an embedder that is not the one the cube's index was built with.

    Raises:
        EmbedderMismatchError: fingerprint or dimension differ; the message names both.
    """
    cube.require_plaintext()
    want = cube.manifest.embedding or {}
    if embedder.dimension != want["dimension"] or embedder.fingerprint != want["fingerprint"]:
        raise EmbedderMismatchError(
            f"index was built with embedder {want['model']} ({want['dimension']}-d, "
            f"{want['fingerprint'][:19]}...), not {embedder.name} ({embedder.dimension}-d, "
            f"{embedder.fingerprint[:19]}...); use that embedder or run `memos reindex`",
            path=cube.path)


def retrieve(cube: Cube, embedder: Embedder, query: str, k: int = 5, *,
             now: datetime | None = None, user: str | None = None,
             hidden: list[int] | None = None, view: View = CURRENT) -> list[Retrieved]:
    """Top-``k`` memories of ``cube`` for ``query``, best first; a derived memory (spec §4.5)
    is replaced by its sources, each memory appears once; expired memories are left out,
    so are those outside ``view`` (by default the superseded ones, spec §4.6; a query that
    names a period, "in February 2026" or "last week" relative to ``now``, sees the dated
    memories valid then, :meth:`~memos_cli.validity.View.for_query`),
    and with ``user`` so is every memory that user may not read (``governance.can_read``);
    with ``hidden`` (a list), how many of those would have ranked in the top ``k`` is appended.

    Raises:
        EmbedderMismatchError: see :func:`check_embedder`.
        FormatError: the index is missing or unreadable.
        IntegrityError: the index holds an id that is not a memory of the cube.
    """
    check_embedder(cube, embedder)
    now = now or datetime.now(timezone.utc)
    view = view.for_query(query, now)  # "in February 2026": the dated memories of then
    vector = embedder.encode([query])[0]
    index = cube.index()
    out: list[Retrieved] = []
    pool = k
    while True:
        hits = index.search(query, vector, pool)
        for h in hits:
            if h.id not in cube.by_id:
                raise IntegrityError(f"search index returned id {h.id!r}, which is not a memory "
                                     "of this cube (an index of another cube? run `memos "
                                     "reindex`)", path=cube.index_path)
        out, denied = resolve_hits(hits, cube.by_id, k, now=now, user=user, view=view)
        if len(out) >= k or len(hits) < pool:
            if hidden is not None:
                hidden.append(denied)
            return out[:k]
        pool *= 4  # expired or unreadable memories took places: look further


def retrieve_many(cubes: Sequence[Cube], embedder: Embedder, query: str, k: int = 5, *,
                  now: datetime | None = None, user: str | None = None,
                  hidden: list[int] | None = None, view: View = CURRENT) -> list[Retrieved]:
    """Top-``k`` memories over several cubes: each cube's top ``k`` (:func:`retrieve`),
    merged by fused score (every cube's index fuses with the same RRF constants, spec §6, so
    the scores compare), best first, ties by id; a memory held by several cubes (the same id)
    appears once, at its best. Ranks are renumbered ``1..k``. One cube: :func:`retrieve`.

    Raises:
        as :func:`retrieve`, naming the cube.
    """
    if len(cubes) == 1:
        return retrieve(cubes[0], embedder, query, k, now=now, user=user, hidden=hidden,
                        view=view)
    best: dict[str, Retrieved] = {}
    for cube in cubes:
        for r in retrieve(cube, embedder, query, k, now=now, user=user, hidden=hidden,
                          view=view):
            if r.memory.id not in best or r.score > best[r.memory.id].score:
                best[r.memory.id] = r
    ranked = sorted(best.values(), key=lambda r: (-r.score, r.memory.id))[:k]
    return [replace(r, rank=n) for n, r in enumerate(ranked, start=1)]


def resolve_hits(hits: list[Any], by_id: dict[str, Memory], k: int, *, now: datetime,
                 user: str | None, view: View = CURRENT) -> tuple[list[Retrieved], int]:
    """Index hits (``cube.index.Hit``) as ranked memories: a derived memory (spec §4.5) gives
    way to its sources, each memory appears once, ids not in ``by_id``, expired memories and
    those outside ``view`` (spec §4.6) are skipped, and with ``user`` so is what that user
    may not read. Returns the memories and how many unreadable ones would have ranked in the
    top ``k``."""
    out: list[Retrieved] = []
    denied = 0
    seen: set[str] = set()
    for h in hits:
        m = by_id.get(h.id)
        if m is None:
            continue
        found: list[tuple[Memory, str, str | None, str | None]] = [
            (m, h.via, None if h.via == "context" else h.matched, None)]
        if sources := derived_from(m):  # a derived memory: its sources stand for it
            if user is not None and not can_read(m, user, now=now):
                denied += len(out) < k
                continue
            found = [(s, "facts", m.content, m.id) for i in sources
                     if (s := by_id.get(i)) is not None]
        for mem, via, matched, did in found:
            if mem.id in seen or mem.expired(now) or not view.admits(mem):
                continue
            if user is not None and not can_read(mem, user, now=now):
                denied += len(out) < k
                continue
            seen.add(mem.id)
            out.append(Retrieved(mem, h.score, len(out) + 1, h.vector_rank, h.text_rank,
                                 via, matched, did))
    return out, denied


def build_messages(question: str, memories: list[Memory]) -> list[dict[str, str]]:
    """Chat messages of the whole-prefix KV segments (spec §10): a system message listing the
    memories, then the question. The plaintext tier itself lays its prompt out in pieces
    (:func:`memos_cli.tiers.prompt.prompt_ids`)."""
    listing = "\n".join(f"[{i}] {m.render()}" for i, m in enumerate(memories, start=1))
    return [
        {"role": "system", "content": SYSTEM_PROMPT.format(memories=listing or "(none)")},
        {"role": "user", "content": question},
    ]


@dataclass
class Generation:
    """Generated ``text`` and timings: ``ttft_s`` (seconds from the call to the first new
    token, prefill included), ``total_s``, ``new_tokens``, ``tokens_per_s`` (decode rate after
    the first token), ``prompt_tokens``."""

    text: str
    prompt_tokens: int
    new_tokens: int
    ttft_s: float
    total_s: float
    token_ids: list[int] = field(default_factory=list)
    #: why generation stopped: ``end`` (the model's end-of-sequence token), ``blank line``
    #: (the answer's first blank line, the default stop), ``max tokens`` (cut at the limit,
    #: likely mid-sentence), or ``""`` when not known
    stop: str = ""

    @property
    def tokens_per_s(self) -> float:
        decode = self.total_s - self.ttft_s
        return (self.new_tokens - 1) / decode if self.new_tokens > 1 and decode > 0 else 0.0


class _FirstTokenClock:
    """A transformers streamer that notes when the first generated token arrives."""

    def __init__(self) -> None:
        self.calls = 0
        self.first: float | None = None

    def put(self, value: Any) -> None:
        self.calls += 1
        if self.calls == 2 and self.first is None:  # call 1 is the prompt
            self.first = time.perf_counter()

    def end(self) -> None:
        pass


def generate(chat: ChatModel, messages: list[dict[str, str]], *, max_new_tokens: int = 128,
             temperature: float = 0.0) -> Generation:
    """Apply the chat template and generate (greedy when ``temperature`` is 0).

    ``ttft_s`` counts from this call: templating, tokenization, the prefill of the whole
    prompt (logits only for the last position) and the first decode step.
    """
    t0 = time.perf_counter()
    ids = chat.tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                             tokenize=True, return_dict=True)["input_ids"]
    return generate_ids(chat, list(ids), max_new_tokens=max_new_tokens,
                        temperature=temperature, started=t0)


def generate_ids(chat: ChatModel, ids: list[int], *, cache: Any = None,
                 max_new_tokens: int = 128, temperature: float = 0.0,
                 started: float | None = None, first_logits: Any = None) -> Generation:
    """Generate after the prompt ``ids``. With ``cache`` (a ``DynamicCache`` holding the
    first ``cache.get_seq_length()`` tokens of ``ids``), only the rest is prefilled; the cache
    is consumed (transformers extends it in place), so pass a fresh one each call.

    ``first_logits``: ``[vocab]`` logits after the last prompt token, when the caller has them
    already (``cache`` then holds every token of ``ids``): the first token is taken from them
    (argmax, or sampled at ``temperature``) and ``generate`` continues after it.
    ``started``: ``time.perf_counter()`` value that ``ttft_s`` counts from (default: now).
    """
    import torch

    tok = chat.tokenizer
    t0 = time.perf_counter() if started is None else started
    if first_logits is not None:
        return _continue(chat, ids, cache, first_logits, max_new_tokens, temperature, t0)
    input_ids = torch.tensor([ids], dtype=torch.long, device=chat.model.device)
    clock = _FirstTokenClock()
    kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "streamer": clock,
                              "pad_token_id": tok.pad_token_id or tok.eos_token_id}
    if cache is not None:
        kwargs["past_key_values"] = cache
    opts = generation.current()
    kwargs.update(opts.hf_kwargs(tok, len(ids)))
    if temperature > 0:
        kwargs.update(do_sample=True, temperature=temperature, top_p=opts.top_p)
        if opts.seed is not None:
            torch.manual_seed(opts.seed)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    with torch.inference_mode():
        out = chat.model.generate(input_ids=input_ids,
                                  attention_mask=torch.ones_like(input_ids), **kwargs)
    total = time.perf_counter() - t0
    new = out[0, input_ids.shape[1]:]
    raw = tok.decode(new, skip_special_tokens=True)
    text = raw.strip()
    blank = opts.stop_at_blank_line and "\n\n" in raw.lstrip("\n")
    if opts.stop_at_blank_line:  # the stop string itself is not part of the answer
        text = text.split("\n\n", 1)[0].strip()
    ttft = (clock.first - t0) if clock.first is not None else total
    return Generation(text, len(ids), int(new.shape[0]), ttft, total, new.tolist(),
                      stop=stop_reason(new.tolist(), tok, max_new_tokens, blank))


def stop_reason(new: list[int], tokenizer: Any, max_new_tokens: int, blank: bool) -> str:
    """Why generating ``new`` stopped (:attr:`Generation.stop`)."""
    eos = tokenizer.eos_token_id
    ends = set(eos) if isinstance(eos, list) else {eos}
    if new and new[-1] in ends:
        return "end"
    if blank:
        return "blank line"
    return "max tokens" if len(new) >= max_new_tokens else "end"


def _continue(chat: ChatModel, ids: list[int], cache: Any, logits: Any, max_new_tokens: int,
              temperature: float, t0: float) -> Generation:
    import torch

    opts = generation.current()
    if temperature > 0:
        if opts.seed is not None:
            torch.manual_seed(opts.seed)
        probs = torch.softmax(logits.float() / temperature, -1)
        if opts.top_p < 1.0:  # nucleus: keep the smallest set of tokens holding top_p
            sorted_p, order = torch.sort(probs, descending=True)
            drop = torch.cumsum(sorted_p, -1) - sorted_p > opts.top_p
            probs = probs.scatter(-1, order, sorted_p.masked_fill(drop, 0.0))
        first = int(torch.multinomial(probs / probs.sum(), 1))
    else:
        first = int(torch.argmax(logits))
    ttft = time.perf_counter() - t0
    eos = chat.tokenizer.eos_token_id
    new = [first]
    if max_new_tokens > 1 and first != eos:
        rest = generate_ids(chat, [*ids, first], cache=cache, max_new_tokens=max_new_tokens - 1,
                            temperature=temperature, started=t0)
        new += rest.token_ids
    total = time.perf_counter() - t0
    text = chat.tokenizer.decode(new, skip_special_tokens=True).strip()
    stop = rest.stop if max_new_tokens > 1 and first != eos else stop_reason(
        new, chat.tokenizer, max_new_tokens, False)
    return Generation(text, len(ids), len(new), ttft, total, new, stop=stop)


def answer_memories(chat: ChatModel, memories: list[Memory], question: str, *,
                    max_new_tokens: int = 128, temperature: float = 0.0) -> Generation:
    """Prompt ``chat`` with ``memories`` in this order (the layout of
    :mod:`memos_cli.tiers.prompt`) and the question, and generate. ``ttft_s`` counts
    tokenization, the prefill of the whole prompt and the first decode step."""
    t0 = time.perf_counter()
    ids = prompt_ids(chat.tokenizer, memories, question)
    return generate_ids(chat, ids, max_new_tokens=max_new_tokens, temperature=temperature,
                        started=t0)


@dataclass
class Answer:
    """What ``memos run`` reports: the answer, the memories used and the timings (seconds)."""

    question: str
    answer: str
    memories: list[Retrieved]
    model: str
    timings: dict[str, float] = field(default_factory=dict)
    prompt_tokens: int = 0
    new_tokens: int = 0
    tier: str = "text"
    #: tier-specific facts, e.g. the KV chunks' hits, misses and recomputed tokens
    details: dict[str, Any] = field(default_factory=dict)
    #: why the answer ended (:attr:`Generation.stop`): ``end``, ``blank line``, ``max tokens``
    stop: str = ""
    #: how many closer memories access control left out of retrieval (a count, never which)
    hidden: int = 0
    #: what the token budget did (:meth:`memos_cli.tiers.budget.Fit.to_dict`): the limit,
    #: the memories' tokens, how many were kept and left out
    budget: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"question": self.question, "answer": self.answer, "model": self.model,
                "tier": self.tier, "memories": [r.to_dict() for r in self.memories],
                "prompt_tokens": self.prompt_tokens, "new_tokens": self.new_tokens,
                "timings": {k: round(v, 4) for k, v in self.timings.items()},
                "stop": self.stop, "hidden_by_access": self.hidden,
                **({"budget": self.budget} if self.budget else {}),
                **({"details": self.details} if self.details else {})}


def answer(cube: Cube, embedder: Embedder, chat: ChatModel, question: str, *, k: int = 5,
           max_new_tokens: int = 128, temperature: float = 0.0,
           user: str | None = None, hidden: list[int] | None = None,
           view: View = CURRENT, limit: int | None = None) -> Answer:
    """Retrieve ``k`` memories (those ``user`` may read, when given), prompt ``chat`` with the
    best-ranked of them that fit in ``limit`` tokens (:func:`answer_hits`) and the question,
    generate.

    ``timings``: ``model_load_s``, ``retrieval_s``, ``ttft_s``, ``generate_s``,
    ``tokens_per_s``.
    """
    cube.index().ready()  # opening the table (building its cache) is set-up, not retrieval
    t0 = time.perf_counter()
    found = retrieve(cube, embedder, question, k, user=user, hidden=hidden, view=view)
    return answer_hits(chat, found, question, retrieval_s=time.perf_counter() - t0,
                       limit=limit, max_new_tokens=max_new_tokens, temperature=temperature)


def answer_hits(chat: ChatModel, hits: list[Retrieved], question: str, *, retrieval_s: float,
                limit: int | None = None, max_new_tokens: int = 128,
                temperature: float = 0.0, tier: str = "text") -> Answer:
    """Prompt ``chat`` with the best-ranked ``hits`` whose markers and chunks fit in ``limit``
    tokens (:func:`memos_cli.tiers.budget.fit`; ``None``: all), in rank order, and generate.
    ``Answer.budget`` says what the limit kept and left out."""
    fitted = budget.fit(chat.tokenizer, hits, limit)
    gen = answer_memories(chat, [r.memory for r in fitted.kept], question,
                          max_new_tokens=max_new_tokens, temperature=temperature)
    return Answer(question, gen.text, fitted.kept, chat.name,
                  {"model_load_s": chat.load_s, "retrieval_s": retrieval_s,
                   "ttft_s": gen.ttft_s, "generate_s": gen.total_s,
                   "tokens_per_s": gen.tokens_per_s},
                  gen.prompt_tokens, gen.new_tokens, tier=tier, stop=gen.stop,
                  budget=fitted.to_dict())
