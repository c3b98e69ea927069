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
from memos_cli.lifecycle import precedence
from memos_cli.memory import Memory, derived_from, format_time
from memos_cli.models.chat import ChatModel
from memos_cli.models.embedder import Embedder
from memos_cli.tiers import budget
from memos_cli.tiers.decode import Generation, generate_ids
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
    #: ``{"id", "reason"}`` of the memory this one was put above by precedence (spec §4.6)
    precedes: dict[str, str] | None = None

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
                **({"derived_id": self.derived_id} if self.derived_id else {}),
                **({"precedes": self.precedes} if self.precedes else {})}


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
    pool = precedence.pool(k, view.precedence)
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
            return precede(query, out, k, view)
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
    ranked = sorted(best.values(), key=lambda r: (-r.score, r.memory.id))
    return precede(query, ranked, k, view)


def precede(query: str, found: list[Retrieved], k: int,
            view: View = CURRENT) -> list[Retrieved]:
    """The first ``k`` of ``found`` (best first) after precedence: among the first
    ``precedence.pool(k)``, a newer statement that answers ``query`` as fully as an older
    one goes above it (:func:`memos_cli.lifecycle.precedence.moves`; not when
    ``view.precedence`` is off). Ranks are renumbered from 1; scores are kept, so a memory
    that moved up keeps its fused score, and names the one it was put above in
    ``precedes``. Only the order of the pool changes, never which memories it holds: the
    first ``k`` are the same memories for ``k`` of 5 or more."""
    pool = found[:precedence.pool(k)]
    seq = precedence.moves(query, [r.memory for r in pool]) if view.precedence \
        else [(i, None) for i in range(len(pool))]
    return [replace(pool[i], rank=n, precedes=None if above is None else {
        "id": pool[above].memory.id, "reason": precedence.reason(pool[above].memory)})
        for n, (i, above) in enumerate(seq[:k], start=1)]


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
