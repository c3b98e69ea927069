"""Answering a question with one tier (MemOS paper §4: plaintext, activation and parameter
memory): which options go together, and which tier's code answers.

:func:`answer` is what ``memos run`` does after parsing its flags; the CLI, ``chat``, the MCP
server and the benches call it through :class:`memos_cli.api.Session`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from memos_cli.errors import UsageError
from memos_cli.tiers import budget, generation
from memos_cli.tiers.lora import answer_lora
from memos_cli.tiers.plaintext import Answer, retrieve_many
from memos_cli.tiers.plaintext import answer as text_answer
from memos_cli.validity import CURRENT, View
from memos_cli.vault import answer as vault_answer
from memos_cli.vault import search as vault_search

#: The tiers an answer can use (``auto`` takes stored KV chunks where it can, spec §13.3).
TIERS = ("auto", "text", "kv", "lora")
#: How several cubes' KV segments are composed (``--tier kv``).
COMPOSE = ("rerotate", "naive")
#: How several cubes' adapters are combined (``--tier lora``).
COMBINE = ("route", "cat", "linear")
#: Which tokens of composed KV chunks are recomputed (CacheBlend's deviation, EPIC's first).
RECOMPUTE_RULES = ("deviation", "first", "none")


@dataclass(frozen=True)
class AnswerOptions:
    """How to answer: the tier and its knobs (``memos run --help`` says what each does).

    ``k``: memories retrieved (text, auto, kv with chunks; ``None``: 5, or with
    ``context_tokens`` up to :data:`~memos_cli.tiers.budget.POOL`); ``context_tokens``: the
    most tokens the memories may take in the prompt, filled with the best-ranked that fit
    (:mod:`memos_cli.tiers.budget`; ``None``: ``k`` memories, as many as the model's context
    window holds); ``max_new_tokens`` and
    ``temperature`` (0: greedy) bound generation; ``generation``: the decoding controls
    (:class:`~memos_cli.tiers.generation.GenerationOptions`, default
    :data:`~memos_cli.tiers.generation.DEFAULT`); ``system``: an instruction of the user's in
    place of memos's (text and auto tiers only).
    """

    tier: str = "auto"
    k: int | None = None
    context_tokens: int | None = None
    max_new_tokens: int = 128
    temperature: float = 0.0
    compose: str = "rerotate"
    combine: str = "route"
    recompute: int = 0
    recompute_ratio: float | None = None
    recompute_rule: str | None = None
    chunk_set: str | None = None
    segment: str | None = None
    system: str | None = None
    generation: generation.GenerationOptions = generation.DEFAULT
    #: which memories retrieval sees: current ones (default), those valid at a time, or all
    view: View = CURRENT

    def checked(self, *, cubes: int, vault: bool, user: bool) -> AnswerOptions:
        """These options, checked against what is answered from (``cubes`` cubes, or a
        ``vault``; ``user``: an identity to filter by was given); ``tier="auto"`` with a
        ``system`` instruction becomes ``text`` (stored chunks follow memos's instruction).

        Raises:
            UsageError: a value out of range, or options that do not go together (naming
                them as ``memos run`` spells them).
        """
        if ((self.k is not None and self.k < 0) or self.max_new_tokens < 1
                or self.temperature < 0 or self.recompute < 0):
            raise UsageError("-k, --recompute must be >= 0, --max-new-tokens >= 1, "
                             "--temperature >= 0")
        if self.context_tokens is not None and self.context_tokens < budget.MIN_TOKENS:
            raise UsageError(f"--context-tokens must be at least {budget.MIN_TOKENS}")
        if self.context_tokens is not None and (self.tier == "lora" or self.segment):
            raise UsageError("--context-tokens goes with retrieval (text, auto, kv with "
                             "chunks): a segment or an adapter holds its memories already")
        if self.tier not in TIERS:
            raise UsageError(f"--tier {self.tier!r} is not one of {', '.join(TIERS)}")
        for name, value, allowed in (("--compose", self.compose, COMPOSE),
                                     ("--combine", self.combine, COMBINE),
                                     ("--recompute-rule", self.recompute_rule or "deviation",
                                      RECOMPUTE_RULES)):
            if value not in allowed:
                raise UsageError(f"{name} {value!r} is not one of {', '.join(allowed)}")
        if vault and (cubes or self.tier not in ("text", "auto")):
            raise UsageError("--vault takes the question alone, with the text or auto tier")
        if not vault and not cubes:
            raise UsageError("nothing to answer from: give a cube or a vault")
        if user and self.tier not in ("text", "auto"):
            raise UsageError("--as applies to the text and auto tiers: a KV segment or an "
                             "adapter holds every memory it was built from")
        generation.with_flags(self.generation, system=self.system).check()
        if self.view != CURRENT and self.tier == "lora":
            raise UsageError("--as-of and --history go with retrieval (text, auto, kv with "
                             "chunks): an adapter holds the memories it was trained on")
        if self.system is not None and self.tier == "kv":
            raise UsageError("--system goes with the text and auto tiers: KV caches were "
                             "computed after memos's own instruction")
        if self.tier != "kv" and (self.segment or self.compose != "rerotate" or self.recompute):
            raise UsageError("--segment, --compose and --recompute apply to --tier kv")
        if not vault and self.tier not in ("kv", "lora", "auto") and cubes != 1:
            raise UsageError(f"--tier {self.tier} takes one cube; several cubes compose with "
                             "--tier kv, auto or lora")
        if self.combine != "route" and (self.tier != "lora" or cubes < 2):
            raise UsageError("--combine applies to --tier lora with several cubes")
        if self.system is not None and self.tier == "auto":
            return replace(self, tier="text")
        return self

    @property
    def top_k(self) -> int:
        """Memories retrieved: ``k``, else 5, else with a budget as many as
        :data:`~memos_cli.tiers.budget.POOL`."""
        if self.k is not None:
            return self.k
        return budget.POOL if self.context_tokens is not None else 5

    def chunked(self, opened: list[Any]) -> bool:
        """Whether ``--tier kv`` answers from KV chunks (spec §12): every cube given carries
        chunk sets (several cubes: the top-k over all, each memory's chunk from its cube)."""
        return self.tier == "kv" and self.segment is None and bool(opened) and all(
            c.chunk_sets for c in opened)

    def check_chunk_options(self, chunked: bool) -> None:
        """Raises ``UsageError`` for recompute options where no chunks are composed."""
        if ((self.recompute_ratio is not None or self.recompute_rule is not None)
                and not chunked and self.tier != "auto") or (self.chunk_set and not chunked):
            raise UsageError("--recompute-ratio and --recompute-rule apply to --tier auto, or "
                             "to --tier kv on cubes with KV chunks; --chunk-set to the "
                             "latter")


def answer(opts: AnswerOptions, question: str, *, cubes: list[Any], vault: Any, user: str | None,
           actor: str, chat: Any, encoder: Any) -> Answer:
    """Answer ``question`` with ``opts.tier`` over ``cubes`` (opened cubes) or ``vault`` (a
    :class:`~memos_cli.vault.Vault`). ``user`` filters what retrieval may return (``None``:
    a cube's every memory); ``actor`` is who the vault's log names; ``chat`` is the loaded
    model; ``encoder()`` loads the embedder when a tier needs it.

    Returns the tier's :class:`~memos_cli.tiers.plaintext.Answer`.

    Raises:
        UsageError: options that do not go together (:meth:`AnswerOptions.checked` first).
        FormatError, IntegrityError: a segment, chunk or adapter that does not fit the model.
    """
    from memos_cli.tiers.chunks import DEFAULT_RATIO, DEFAULT_RULE

    chunked = opts.chunked(cubes)
    opts.check_chunk_options(chunked)
    ratio = DEFAULT_RATIO if opts.recompute_ratio is None else opts.recompute_ratio
    rule = opts.recompute_rule or DEFAULT_RULE
    gen: dict[str, Any] = {"max_new_tokens": opts.max_new_tokens,
                           "temperature": opts.temperature}
    hidden: list[int] = []
    k = opts.top_k
    with generation.using(generation.with_flags(opts.generation, system=opts.system)):
        retrieving = opts.tier in ("auto", "text") or chunked
        limit = budget.limit_of(opts.context_tokens, budget.room(
            chat, question, opts.max_new_tokens)) if retrieving else None
        if opts.tier == "auto":
            result = _auto(cubes, vault, encoder(), chat, question, user, actor, k, ratio,
                           rule, gen, hidden, opts.view, limit)
        elif vault is not None:
            result = vault_answer(vault, encoder(), chat, question, user=actor, k=k,
                                  hidden=hidden, view=opts.view, limit=limit, **gen)
        elif chunked:
            from memos_cli.tiers import chunks

            result = chunks.answer_chunked(cubes, encoder(), chat, question, k=k,
                                           set_id=opts.chunk_set, ratio=ratio, rule=rule,
                                           view=opts.view, limit=limit, **gen)
        elif opts.tier == "kv":
            from memos_cli.tiers.kv import answer_kv

            result = answer_kv(cubes, chat, question, segment=opts.segment,
                               mode=opts.compose, recompute=opts.recompute, **gen)
        elif opts.tier == "lora":
            router = encoder() if opts.combine == "route" else None
            result = answer_lora(cubes, chat, question, combine=opts.combine,
                                 embedder=router, **gen)
        else:
            result = text_answer(cubes[0], encoder(), chat, question, k=k, user=user,
                                 hidden=hidden, view=opts.view, limit=limit, **gen)
    result.hidden = sum(hidden)
    if result.budget:
        result.budget = {"context_tokens": opts.context_tokens, **result.budget}
    return result


def _auto(cubes: list[Any], vault: Any, enc: Any, chat: Any, question: str, user: str | None,
          actor: str, k: int, ratio: float, rule: str, gen: dict[str, Any],
          hidden: list[int], view: View, limit: int | None) -> Answer:
    """``--tier auto`` over cubes (the top-k over all of them) or a vault (spec §13.3)."""
    from memos_cli.scheduler.auto import answer_auto, cube_sources, store_sources

    if vault is not None:
        t0 = time.perf_counter()
        hits = vault_search(vault, enc, question, k, user=actor, hidden=hidden, view=view)
    else:
        for cube in cubes:
            cube.index().ready()
        t0 = time.perf_counter()
        hits = retrieve_many(cubes, enc, question, k, user=user, hidden=hidden, view=view)
    took = time.perf_counter() - t0
    result = answer_auto(chat, question, hits, store_sources(chat) + cube_sources(chat, cubes),
                         ratio=ratio, rule=rule, retrieval_s=took, limit=limit, **gen)
    if vault is not None:
        vault.log(actor, "run", memory_ids=[r.memory.id for r in result.memories],
                  detail={"question": question, "tier": "auto"})
    return result
