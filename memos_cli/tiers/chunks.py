"""The activation tier that follows retrieval: precompute a KV chunk per memory (or group), and
at run time compose the chunks of the retrieved memories (spec/memcube.md §12).

MemOS (arXiv 2507.03724, §4.2) pre-transforms frequently used plaintext memory into activation
memory. Here the unit is the memory the question retrieves, not a fixed prefix: the run
retrieves the top-k memories exactly as the plaintext tier does, lays them out with the same
prompt pieces (:mod:`memos_cli.tiers.prompt`), takes the cached chunks of those that have one,
prefills the rest as text, and recomputes a fraction of the cached tokens
(:mod:`memos_cli.tiers.compose`). Each chunk is computed after the shared prefix, so it has seen
the same attention sink and system text as at run time (Prompt Cache, Gim et al., MLSys 2024;
APE, Yang et al., ICLR 2025).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memos_cli.cube.chunks import ChunkSet, layout_digest, member
from memos_cli.cube.kv import SegmentMeta, read_segment
from memos_cli.errors import FormatError, UsageError
from memos_cli.memory import Memory
from memos_cli.models.chat import ChatModel
from memos_cli.tiers import compose as comp
from memos_cli.tiers import prompt
from memos_cli.tiers.budget import Fit
from memos_cli.tiers.chunk_build import KV
from memos_cli.tiers.decode import generate_ids
from memos_cli.tiers.plaintext import Answer, Retrieved, retrieve_many
from memos_cli.validity import CURRENT, View

#: Defaults chosen by bench/kv_chunks.py (README, "Activation tier: KV chunks").
DEFAULT_RATIO = 0.30
DEFAULT_RULE = "deviation"
#: The deviation that picks the recomputed tokens is summed over layers 0-3, each divided by
#: its mean (:func:`memos_cli.tiers.compose.select`), and those layers of the cached tokens are
#: taken from the fresh pass: chosen by bench/compose_variants.py on the tuning conversations
#: (next token equal to the full prefill's 0.756 -> 0.844), 0.875 -> 0.900 held out.
DEFAULT_CHECK_LAYER = 3
DEFAULT_GROUP = 4


def check_meta(chat: ChatModel, meta: SegmentMeta, path: Path, kind: str) -> None:
    """Refuse a prefix or chunk file made by another model, tokenizer, template or layout.

    Raises:
        FormatError: naming the file and every mismatching field.
    """
    diff = chat.fingerprint_mismatches(meta.model_fingerprint)
    if meta.prompt_template != prompt.LAYOUT:
        diff.append("prompt layout differs from this memos version's")
    if meta.kind != kind:
        diff.append(f"file is a {meta.kind}, not a {kind}")
    if diff:
        raise FormatError(f"KV {kind} was made by {meta.model} and does not fit {chat.name}: "
                          + "; ".join(diff), path=path)


def pick_set(cube: Any, chat: ChatModel, set_id: str | None = None) -> ChunkSet | None:
    """The cube's chunk set for ``chat`` (the one with id ``set_id`` when given), or
    ``None``. A set made by another model, or for another prompt layout (an older memos's,
    spec §12.2), is never picked: those memories are prefilled as text.

    Raises:
        UsageError: ``set_id`` names no set; FormatError: it belongs to another model or
        layout.
    """
    sets = cube.chunk_sets
    want = chat.fingerprint_digests()
    layout = layout_digest(prompt.LAYOUT)
    if set_id is not None:
        chosen = [s for s in sets if s.id == set_id]
        if not chosen:
            raise UsageError(f"no KV chunk set {set_id} in {cube.path}")
        if chosen[0].model_fingerprint_sha256 not in want:
            raise FormatError(f"KV chunk set {set_id} was made by {chosen[0].model}, not "
                              f"{chat.name}", path=cube.path)
        if chosen[0].layout_sha256 != layout:
            raise FormatError(f"KV chunk set {set_id} was made for another prompt layout "
                              "than this memos version's", path=cube.path)
        return chosen[0]
    fits = [s for s in sets if s.model_fingerprint_sha256 in want and s.layout_sha256 == layout]
    return fits[-1] if fits else None


@dataclass
class Source:
    """Where a run finds KV files: the prefix file, and per memory the chunk file with the
    memories it holds (``find``). A ``strict`` source (a cube's signed chunk set) refuses a
    bad file; a lenient one (the chunk store, a cache) treats it as a miss."""

    name: str
    prefix: Path | None
    find: Callable[[Memory], tuple[Path, list[Memory]] | None]
    strict: bool = True


def cube_source(cube: Any, chunk_set: ChunkSet) -> Source:
    """The chunk set ``chunk_set`` of ``cube`` as a :class:`Source` (files checked against
    the manifest's sizes when used)."""
    by_mem = chunk_set.by_memory()

    def find(m: Memory) -> tuple[Path, list[Memory]] | None:
        entry = by_mem.get(m.id)
        if entry is None:
            return None
        return (member(cube.path, entry, "KV chunk"),
                [cube.by_id[i] for i in entry.memory_ids])

    return Source(chunk_set.id, member(cube.path, chunk_set.prefix, "KV prefix"), find)


@dataclass
class Plan:
    """The prompt of a chunked run: spans for :func:`compose.compose`, the memories in prompt
    order, which chunks were found (hits) or prefilled as text (misses), and per hit the
    source it came from."""

    spans: list[comp.Span]
    memories: list[Memory]
    hits: int
    misses: int
    load_s: float
    sources: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: the memories' markers and chunks (tokens), and retrieved memories left out by the limit
    memory_tokens: int = 0
    left_out: int = 0


def _load(chat: ChatModel, path: Path, kind: str, ids: list[int], start: int | None) -> KV:
    seg = read_segment(path, dtype=chat.model.dtype)
    check_meta(chat, seg.meta, path, kind)
    if seg.token_ids.tolist() != ids:
        raise FormatError(f"KV {kind} tokens are not those of its text under this tokenizer "
                          "(changed memory or another tokenizer)", path=path)
    if start is not None and seg.meta.start_position != start:
        raise FormatError(f"KV chunk starts at {seg.meta.start_position}, not {start} (after "
                          "the prefix and the first marker)", path=path)
    dev = chat.model.device
    return [(k.to(dev), v.to(dev)) for k, v in seg.layers]


def plan(chat: ChatModel, sources: Sequence[Source], found: list[Memory],
         question: str, limit: int | None = None) -> Plan:
    """Lay out ``found`` (retrieved memories, best first) as spans: the prefix (stored when a
    source has it), then per memory (or per group, for a set built by session or section) a
    fresh marker and its cached chunk from the first source that has one, or its text to
    prefill, then the question. With ``limit``, the markers and chunks hold at most that many
    tokens: a group's chunk that does not fit gives way to its memory alone as text, and a
    memory that does not fit alone is left out (``Plan.left_out``).

    Raises:
        FormatError: a prefix or chunk file of a strict source that is unreadable, of another
            model or layout, or whose tokens are not its memories' text.
    """
    t0 = time.perf_counter()
    tok = chat.tokenizer
    pre_ids = prompt.prefix_ids(tok)
    out = Plan([comp.Span(pre_ids)], [], 0, 0, 0.0)

    def attempt(src: Source, path: Path, kind: str, ids: list[int], start: int | None
                ) -> KV | None:
        try:
            return _load(chat, path, kind, ids, start)
        except (FormatError, OSError) as e:
            if src.strict:
                raise
            out.warnings.append(f"{path}: {getattr(e, 'message', e)} (prefilled as text)")
            return None

    for src in sources:
        if src.prefix is not None and src.prefix.is_file():
            kv = attempt(src, src.prefix, "prefix", pre_ids, None)
            if kv is not None:
                out.spans[0] = comp.Span(pre_ids, kv, 0)
                break
    start = len(pre_ids) + len(prompt.marker_ids(tok, 1))
    placed: set[str] = set()
    slot = 0
    for m in found:
        if m.id in placed:
            continue
        marker = prompt.marker_ids(tok, slot + 1)
        room = None if limit is None else limit - out.memory_tokens - len(marker)
        if room is not None and len(prompt.chunk_ids(tok, [m])) > room:
            out.left_out += 1
            continue
        slot += 1
        out.spans.append(comp.Span(marker))
        span = None
        group = [m]
        for src in sources:
            hit = src.find(m)
            if hit is None:
                continue
            ids = prompt.chunk_ids(tok, hit[1])
            if room is not None and len(ids) > room:
                continue
            kv = attempt(src, hit[0], "chunk", ids, start)
            if kv is not None:
                group = hit[1]
                span = comp.Span(ids, kv, start, chunk=True)
                out.sources[src.name] = out.sources.get(src.name, 0) + 1
                break
        placed.update(x.id for x in group)
        out.memories += group
        if span is None:
            out.misses += 1
            span = comp.Span(prompt.chunk_ids(tok, group))
        else:
            out.hits += 1
        out.spans.append(span)
        out.memory_tokens += len(marker) + len(span.ids)
    if slot == 0:
        out.spans.append(comp.Span(prompt.no_memories_ids(tok)))
    out.spans.append(comp.Span(prompt.closing_ids(tok, question)))
    out.load_s = time.perf_counter() - t0
    return out


def answer_over(chat: ChatModel, question: str, hits: list[Retrieved], sources: list[Source],
                *, ratio: float = DEFAULT_RATIO, rule: str = DEFAULT_RULE,
                max_new_tokens: int = 128, temperature: float = 0.0, retrieval_s: float = 0.0,
                tier: str = "kv", limit: int | None = None) -> Answer:
    """Answer over the retrieved ``hits`` (best first) with the chunks ``sources`` have for
    them, prefilling the rest, and recomputing ``ratio`` of the cached tokens by ``rule``;
    with ``limit``, only what fits in that many tokens (:func:`plan`).

    ``timings`` (seconds): ``model_load_s``, ``retrieval_s``, ``chunk_load_s``, ``compose_s``
    (``rerotate_s``, ``select_s``: the fresh pass over the first layers that picks the tokens,
    and ``recompute_s``: the pass over the fresh and picked tokens), ``ttft_s`` (from the
    start of chunk loading to the first new token), ``generate_s``, ``tokens_per_s``.
    ``details``: hits, misses, hits per source, cached, fresh and recomputed tokens, and
    warnings about chunks prefilled instead.

    Raises:
        UsageError: composition is impossible for this model. FormatError: see :func:`plan`.
    """
    t1 = time.perf_counter()
    p = plan(chat, sources, [r.memory for r in hits], question, limit)
    composed = comp.compose(chat.model, p.spans, ratio=ratio, rule=rule,
                            check_layer=DEFAULT_CHECK_LAYER, group=DEFAULT_GROUP)
    gen = generate_ids(chat, composed.ids, cache=composed.cache, first_logits=composed.logits,
                       max_new_tokens=max_new_tokens, temperature=temperature, started=t1)
    scored = {r.memory.id: r for r in hits}  # a group's other members were not retrieved
    used = [Retrieved(m, scored[m.id].score if m.id in scored else 0.0, n,
                      scored[m.id].vector_rank if m.id in scored else None,
                      scored[m.id].text_rank if m.id in scored else None)
            for n, m in enumerate(p.memories, start=1)]
    details = {"chunk_sources": p.sources, "hits": p.hits, "misses": p.misses,
               "recompute_rule": rule, "recompute_ratio": ratio, "warnings": p.warnings,
               **{k: v for k, v in composed.to_dict().items() if k != "timings"}}
    return Answer(question, gen.text, used, chat.name,
                  {"model_load_s": chat.load_s, "retrieval_s": retrieval_s,
                   "chunk_load_s": p.load_s, "compose_s": composed.timings["compose_s"],
                   **{k: composed.timings[k] for k in ("rerotate_s", "select_s",
                                                        "recompute_s")},
                   "ttft_s": gen.ttft_s, "generate_s": gen.total_s,
                   "tokens_per_s": gen.tokens_per_s},
                  gen.prompt_tokens, gen.new_tokens, tier=tier, details=details, stop=gen.stop,
                  budget=Fit(used, p.memory_tokens, p.left_out, limit).to_dict())


def answer_chunked(cube: Any, embedder: Any, chat: ChatModel, question: str, *, k: int = 5,
                   ratio: float = DEFAULT_RATIO, rule: str = DEFAULT_RULE,
                   set_id: str | None = None, max_new_tokens: int = 128,
                   temperature: float = 0.0, view: View = CURRENT,
                   limit: int | None = None) -> Answer:
    """Retrieve ``k`` memories as the plaintext tier does (``view``: which memories, by
    valid time, spec §4.6; default the current ones) and answer over the KV chunks of the
    cube's chunk set for ``chat`` (:func:`answer_over`; ``details`` also name the set).
    ``cube`` may be a list of cubes: the top ``k`` over all of them
    (:func:`~memos_cli.tiers.plaintext.retrieve_many`), each memory's chunk taken from its
    own cube's set (``details["chunk_sets"]``).

    Raises:
        UsageError: a cube has no chunk set for this model (``memos convert --to kv
            --chunks`` makes one), ``set_id`` with several cubes, or composition is
            impossible for this model.
        FormatError: see :func:`plan`.
    """
    cubes = list(cube) if isinstance(cube, list | tuple) else [cube]
    if set_id is not None and len(cubes) > 1:
        raise UsageError("--chunk-set names a set of one cube; give one cube with it")
    sets: list[ChunkSet] = []
    for c in cubes:
        s = pick_set(c, chat, set_id)
        if s is None:
            raise UsageError("cube has no KV chunks for this model and memos version; make "
                             "them with `memos convert CUBE --to kv --chunks`", path=c.path)
        sets.append(s)
        c.index().ready()
    t0 = time.perf_counter()
    hits = retrieve_many(cubes, embedder, question, k, view=view)
    result = answer_over(chat, question, hits,
                         [cube_source(c, s) for c, s in zip(cubes, sets, strict=True)],
                         ratio=ratio, rule=rule, max_new_tokens=max_new_tokens,
                         temperature=temperature, retrieval_s=time.perf_counter() - t0,
                         limit=limit)
    one = {"chunk_set": sets[0].id, "group": sets[0].group} if len(sets) == 1 else {
        "chunk_sets": [s.id for s in sets]}
    result.details = {**one, **result.details}
    return result

