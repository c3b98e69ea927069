"""The activation tier: precompute the KV cache of a memory prefix once, answer with it later.

Memories as precomputed KV caches skip the prefill of known context (MemOS paper, arXiv
2507.03724, §4.2 "activation memory"). The prefix is exactly the system turn that the
plaintext tier would build for the same memories in the same order, so greedy output over a
float32 segment is the text tier's output; only the question is prefilled at run time.

Composition of independently built segments: every segment was computed at positions
``0..T-1``, so concatenating them as MemOS does gives the later segments wrong RoPE positions.
:func:`compose` re-rotates each segment's keys by its offset (RoPE rotations compose:
``R(p + o) = R(o) R(p)``, Su et al. 2021) and can recompute the first ``recompute`` tokens
of every later segment against everything before it, the selective-recompute idea of
CacheBlend (Yao et al., EuroSys 2025), to restore some cross-segment attention.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from memos_cli.cube.kv import QUANT_INT8, Segment, SegmentMeta, read_segment
from memos_cli.errors import FormatError, UsageError
from memos_cli.memory import Memory, content_hash
from memos_cli.models.chat import ChatModel
from memos_cli.tiers import rope
from memos_cli.tiers.plaintext import (
    SYSTEM_PROMPT,
    Answer,
    Generation,
    Retrieved,
    build_messages,
    generate_ids,
)

#: How the prefix was built; stored in every segment and compared at run time.
PROMPT_TEMPLATE = {
    "system_prompt": SYSTEM_PROMPT,
    "memory_line": "[{i}] {rendered}",
    "layout": "the model's chat template applied to one system message; the segment ends "
              "where the system turn ends, the question's user turn follows",
}
_PLACEHOLDER = {"role": "system", "content": "x"}


def _template_ids(tokenizer: Any, messages: list[dict[str, str]], generation: bool) -> list[int]:
    out = tokenizer.apply_chat_template(messages, add_generation_prompt=generation,
                                        tokenize=True, return_dict=True)
    return list(out["input_ids"])


def prefix_ids(tokenizer: Any, memories: list[Memory]) -> list[int]:
    """Token ids of the system turn listing ``memories`` (the cached prefix)."""
    return _template_ids(tokenizer, build_messages("", memories)[:1], False)


def suffix_ids(tokenizer: Any, question: str) -> list[int]:
    """Token ids that follow the system turn: the question's user turn and the assistant
    header.

    Raises:
        UsageError: the model's chat template renders the system turn differently when a user
            turn follows, so no prefix can be cached for it.
    """
    pre = _template_ids(tokenizer, [_PLACEHOLDER], False)
    full = _template_ids(tokenizer, [_PLACEHOLDER, {"role": "user", "content": question}], True)
    if full[:len(pre)] != pre:
        raise UsageError("this model's chat template changes the system turn when a question "
                         "follows, so its KV cache cannot be reused")
    return full[len(pre):]


def build_segment(chat: ChatModel, memories: list[Memory], storage_dtype: str = "float32"
                  ) -> tuple[SegmentMeta, torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
    """Prefill the prefix of ``memories`` once and return the segment to store.

    Runs the decoder stack only (no language-model head, so no logits at all): the cost is one
    prefill of the prefix. Returns ``(meta, token_ids [T] int64, layers)`` with
    ``layers[i] = (keys, values)``, each ``[kv_heads, T, head_dim]`` in the compute dtype.
    """
    ids = prefix_ids(chat.tokenizer, memories)
    fp = chat.fingerprint()
    limit = int(getattr(chat.model.config, "max_position_embeddings", 1 << 30))
    if len(ids) + 256 > limit:
        raise UsageError(f"the memory prefix is {len(ids)} tokens, over the model's context of "
                         f"{limit} less 256 for the question; select fewer memories "
                         "(--ids, or --query with --top)")
    input_ids = torch.tensor([ids], dtype=torch.long, device=chat.model.device)
    records = memory_records(chat.tokenizer.decode(ids), memories)
    with torch.inference_mode():
        out = chat.model.base_model(input_ids=input_ids, use_cache=True)
    layers = [(layer.keys[0].cpu().clone(), layer.values[0].cpu().clone())
              for layer in out.past_key_values.layers]
    meta = SegmentMeta(
        model=chat.name, model_fingerprint=fp, prompt_template=PROMPT_TEMPLATE,
        memory_ids=tuple(m.id for m in memories),
        content_hashes=tuple(m.content_hash for m in memories),
        storage_dtype=storage_dtype,
        quantization=QUANT_INT8 if storage_dtype == "int8" else "none",
        num_tokens=len(ids), num_layers=fp["num_layers"], num_kv_heads=fp["num_kv_heads"],
        head_dim=fp["head_dim"], memories=tuple(records))
    return meta, input_ids[0].cpu(), layers


def memory_records(decoded: str, memories: list[Memory]) -> list[dict[str, Any]]:
    """Each memory's record without its text, which is located in the decoded prefix
    (``content_span``); a memory the decoded text does not hold verbatim keeps its
    ``content``. Enough to restore the plaintext tier exactly (spec §10)."""
    out = []
    cursor = 0
    for m in memories:
        rec = m.to_dict()
        content = rec.pop("content")
        at = decoded.find(content, cursor)
        if at >= 0:
            rec["content_span"] = [at, at + len(content)]
            cursor = at + len(content)
        else:
            rec["content"] = content
        out.append(rec)
    return out


def restore_memories(segment: Segment, tokenizer: Any) -> list[Memory]:
    """The memories a segment holds, rebuilt from its token ids and records.

    Raises:
        FormatError: a record is malformed, or a restored memory does not match its content
            hash (e.g. another tokenizer decoded the ids).
    """
    if segment.meta.memory_ids and not segment.meta.memories:
        raise FormatError("KV segment holds no memory records (written by an early 1.1 "
                          "writer): it cannot restore the plaintext tier")
    decoded = tokenizer.decode(segment.token_ids.tolist())
    out = []
    for rec in segment.meta.memories:
        rec = dict(rec)
        span = rec.pop("content_span", None)
        try:
            if span is not None:
                start, end = span
                rec["content"] = decoded[start:end]
            mem = Memory.from_dict(rec)
        except (ValueError, TypeError, KeyError) as e:
            raise FormatError(f"memory record {rec.get('id')!r} is malformed: {e}",
                              path="kv segment") from e
        if content_hash(mem.content, mem.speaker, mem.event_time) != mem.content_hash:
            raise FormatError(f"memory {mem.id} restored from the token ids does not match its "
                              "content hash (was it decoded with the segment's tokenizer?)",
                              path="kv segment")
        out.append(mem)
    return out


def check_segment(chat: ChatModel, meta: SegmentMeta, where: str) -> None:
    """Refuse a segment made by another model, tokenizer, template or transformers major.

    Raises:
        FormatError: naming every mismatching field.
    """
    diff = chat.fingerprint_mismatches(meta.model_fingerprint)
    if meta.prompt_template != PROMPT_TEMPLATE:
        diff.append("prompt template differs from this memos version's")
    if diff:
        raise FormatError(f"KV segment was made by {meta.model} and does not fit "
                          f"{chat.name}: " + "; ".join(diff), path=where)


def rerotate(keys: torch.Tensor, offset: int, inv_freq: torch.Tensor) -> torch.Tensor:
    """Move post-RoPE ``keys [kv_heads, T, head_dim]`` from positions ``p`` to ``p + offset``
    for a full-width rotate-half RoPE with inverse frequencies ``inv_freq`` (the layout of
    Llama-family models; :func:`memos_cli.tiers.rope.rerotate` handles every family)."""
    return rope.rerotate(keys, offset, rope.LayerRope(inv_freq.double().cpu(), False, 1.0))


def compose(chat: ChatModel, segments: list[Segment], *, mode: str = "rerotate",
            recompute: int = 0) -> tuple[Any, list[int]]:
    """Build one fresh ``DynamicCache`` from ``segments`` placed one after another.

    ``mode``: ``naive`` (concatenate as stored, MemOS's behaviour), ``rerotate`` (keys moved
    to their offsets). ``recompute``: with ``rerotate``, the first N tokens of every segment
    after the first are recomputed by the model over the cache before them (CacheBlend-style).
    Returns ``(cache, token_ids)``. The segments' tensors are never modified.
    """
    from transformers import DynamicCache

    if mode not in ("naive", "rerotate"):
        raise UsageError(f"composition mode {mode!r} is not naive or rerotate")
    total = sum(int(s.token_ids.shape[0]) for s in segments)
    ropes = rope.describe(chat.model, total) if mode == "rerotate" and len(segments) > 1 \
        else None
    cache = DynamicCache(config=chat.model.config)
    tokens: list[int] = []
    dtype, dev = chat.model.dtype, chat.model.device
    for n, seg in enumerate(segments):
        offset = len(tokens)
        ids = seg.token_ids.tolist()
        redo = min(recompute, len(ids)) if n > 0 and mode == "rerotate" else 0
        if redo:
            with torch.inference_mode():
                chat.model.base_model(input_ids=torch.tensor([ids[:redo]], device=dev),
                                      past_key_values=cache, use_cache=True)
        for i, (k, v) in enumerate(seg.layers):
            k = k[:, redo:].to(dev, dtype)
            if ropes is not None:
                k = rope.rerotate(k, offset, ropes[i])
            cache.update(k.unsqueeze(0), v[:, redo:].to(dev, dtype).unsqueeze(0), i)
        tokens += ids
    return cache, tokens


@dataclass
class KVRun:
    """A kv-tier generation (its ``ttft_s`` counts from the loaded segments) and the number
    of cached prefix tokens."""

    generation: Generation
    prefix_tokens: int


def generate_with_segments(chat: ChatModel, segments: list[Segment], question: str, *,
                           max_new_tokens: int = 128, temperature: float = 0.0,
                           mode: str = "rerotate", recompute: int = 0) -> KVRun:
    """Answer ``question`` over the cached prefix of ``segments``: only the question is
    prefilled. ``ttft_s`` counts from here: building the cache from the loaded tensors,
    the question's prefill and the first decode step."""
    t0 = time.perf_counter()
    cache, tokens = compose(chat, segments, mode=mode, recompute=recompute)
    ids = tokens + suffix_ids(chat.tokenizer, question)
    gen = generate_ids(chat, ids, cache=cache, max_new_tokens=max_new_tokens,
                       temperature=temperature, started=t0)
    return KVRun(gen, len(tokens))


def load_segments(cubes: list[Any], chat: ChatModel, segment: str | None = None
                  ) -> tuple[list[Segment], float]:
    """For each cube, the segment made by ``chat`` (or the one with id ``segment``), loaded
    and checked: shapes and dtypes against the metadata, then the model fingerprint, before
    any tensor reaches the model. Returns the segments and the seconds spent loading.

    Raises:
        UsageError: a cube has no activation tier (``memos convert --to kv`` makes one).
        FormatError, IntegrityError: a bad segment file, or one made by another model (the
            message names every mismatching field).
    """
    t0 = time.perf_counter()
    want = chat.fingerprint_digests()
    out = []
    for cube in cubes:
        entries = cube.segments
        if segment is not None:
            entries = [e for e in entries if e["id"] == segment]
        if not entries:
            raise UsageError(f"{cube.path}: no KV segment{' ' + segment if segment else ''}; "
                             "make one with `memos convert CUBE --to kv`")
        entry = next((e for e in reversed(entries)
                      if e["model_fingerprint_sha256"] in want), entries[-1])
        path = cube.segment_path(entry)
        seg = read_segment(path, dtype=chat.model.dtype)
        if seg.meta.kind != "segment":
            raise FormatError(f"file is a KV {seg.meta.kind}, listed as a segment", path=path)
        check_segment(chat, seg.meta, str(path))
        if list(seg.meta.memory_ids) != entry["memory_ids"] or \
                seg.meta.num_tokens != entry["tokens"]:
            raise FormatError("segment does not match its manifest entry", path=path)
        out.append(seg)
    return out, time.perf_counter() - t0


def answer_kv(cubes: list[Any], chat: ChatModel, question: str, *,
              segment: str | None = None, mode: str = "rerotate", recompute: int = 0,
              max_new_tokens: int = 128, temperature: float = 0.0) -> Answer:
    """Answer with the KV segments of ``cubes`` (composed in the order given).

    ``timings``: ``model_load_s``, ``segment_load_s``, ``ttft_s`` (from the loaded segments
    to the first new token: cache assembly, the question's prefill, one decode step),
    ``generate_s``, ``tokens_per_s``.
    """
    segments, load_s = load_segments(cubes, chat, segment)
    run = generate_with_segments(chat, segments, question, max_new_tokens=max_new_tokens,
                                 temperature=temperature, mode=mode, recompute=recompute)
    used: list[Retrieved] = []
    for cube, seg in zip(cubes, segments, strict=True):
        held = [cube.by_id.get(i) for i in seg.meta.memory_ids] if cube.has_plaintext \
            else restore_memories(seg, chat.tokenizer)
        for mem in held:
            if mem is not None:
                used.append(Retrieved(mem, 0.0, len(used) + 1, None, None))
    gen = run.generation
    return Answer(question, gen.text, used, chat.name,
                  {"model_load_s": chat.load_s, "segment_load_s": load_s, "ttft_s": gen.ttft_s,
                   "generate_s": gen.total_s, "tokens_per_s": gen.tokens_per_s},
                  gen.prompt_tokens, gen.new_tokens, tier="kv", stop=gen.stop)
