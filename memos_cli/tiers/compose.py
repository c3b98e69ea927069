"""Compose one KV cache from cached pieces and fresh tokens, with selective recompute
(spec/memcube.md §12.4).

A prompt is a list of :class:`Span` s. A span either carries a stored KV cache (the shared
prefix, a memory's chunk) computed at positions ``start..start+T-1``, or only token ids (the
markers, the question, a retrieved memory that has no chunk). Composition:

1. every cached span's keys are re-rotated from ``start`` to its place in the prompt
   (:mod:`memos_cli.tiers.rope`);
2. a fraction of the cached chunk tokens is chosen for recompute: by *deviation* (CacheBlend,
   Yao et al., EuroSys 2025, as LMCache's ``blend`` module does it: run the first
   ``check_layer + 1`` layers over the whole prompt, compare the fresh keys of layer
   ``check_layer`` with the re-rotated cached ones, and take the tokens that deviate most),
   or the *first* tokens of each chunk (EPIC, Hu et al., ICML 2025);
3. one forward pass runs the fresh tokens and the chosen ones at their true positions, over the
   cached keys and values of all the others, with an explicit attention mask (causal by
   position, and the sliding window where a layer has one); optionally with APE's attention
   temperature and scale on the cached chunk tokens (Yang et al., ICLR 2025, "APE: Faster and
   Longer Context-Augmented Generation via Adaptive Parallel Encoding", §3);
4. the cache is put in position order into a ``DynamicCache`` of the model's own layer types.

With every span fresh, this is a plain prefill. The same pass yields the logits after the last
prompt token, so the first answer token needs no further pass.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from memos_cli.errors import UsageError
from memos_cli.tiers import rope

RULES = ("deviation", "first", "none")
#: LMCache's blend module checks deviation on layer 1.
CHECK_LAYER = 1


@dataclass
class Span:
    """Part of a prompt. ``kv``: per layer ``(keys, values)``, each ``[kv_heads, T, head_dim]``
    in the compute dtype on the model's device, computed at positions ``start..start+T-1``;
    ``None`` for fresh tokens. ``chunk``: whether the span may be partly recomputed."""

    ids: list[int]
    kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    start: int = 0
    chunk: bool = False


@dataclass
class Composed:
    """The composed cache (holds every token of ``ids``), the ``logits [vocab]`` after the
    last token, and what it took. Times in seconds."""

    cache: Any
    logits: torch.Tensor
    ids: list[int]
    cached_tokens: int
    fresh_tokens: int
    recomputed_tokens: int
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"tokens": len(self.ids), "cached_tokens": self.cached_tokens,
                "fresh_tokens": self.fresh_tokens, "recomputed_tokens": self.recomputed_tokens,
                "timings": {k: round(v, 4) for k, v in self.timings.items()}}


def _text_config(model: Any) -> Any:
    cfg = model.config
    return cfg.get_text_config(decoder=True) if hasattr(cfg, "get_text_config") else cfg


def attention_masks(model: Any, q_pos: list[int] | torch.Tensor,
                    kv_pos: list[int] | torch.Tensor) -> Any:
    """Additive attention masks ``[1, 1, len(q_pos), len(kv_pos)]`` (0 where a query may look,
    the dtype's minimum elsewhere) for queries at ``q_pos`` over keys at ``kv_pos``: causal by
    position, limited to the sliding window on sliding layers. A dict by layer type for models
    that declare ``layer_types`` (their forward takes one), else one tensor."""
    cfg = _text_config(model)
    dev, dtype = model.device, model.dtype
    q = torch.as_tensor(q_pos, device=dev).reshape(-1, 1)
    k = torch.as_tensor(kv_pos, device=dev).reshape(1, -1)
    seen = k <= q
    window = getattr(cfg, "sliding_window", None)
    low = torch.finfo(dtype).min

    def build(win: int | None) -> torch.Tensor:
        ok = seen & (q - k < win) if win else seen
        return torch.where(ok, 0.0, low).to(dtype)[None, None]

    types = getattr(cfg, "layer_types", None)
    if types:
        return {t: build(window if t == "sliding_attention" else None) for t in set(types)}
    return build(window)


def _rotated(spans: list[Span], ropes: list[rope.LayerRope], n_layers: int
             ) -> tuple[list[int], list[tuple[torch.Tensor, torch.Tensor] | None]]:
    """Positions of the cached tokens, and per layer their keys (moved to those positions)
    and values, ``[kv_heads, C, head_dim]`` (``None`` when nothing is cached). Layers that
    share a rotation are turned together, one rotation per span."""
    pos: list[int] = []
    keys: list[list[torch.Tensor]] = [[] for _ in range(n_layers)]
    values: list[list[torch.Tensor]] = [[] for _ in range(n_layers)]
    shared: dict[int, list[int]] = {}
    for i, r in enumerate(ropes):
        shared.setdefault(id(r), []).append(i)
    at = 0
    for s in spans:
        if s.kv is not None:
            pos += range(at, at + len(s.ids))
            for layers in shared.values():
                stacked = torch.stack([s.kv[i][0] for i in layers])  # [L', H, T, D]
                turned = rope.rerotate(stacked, at - s.start, ropes[layers[0]])
                for j, i in enumerate(layers):
                    keys[i].append(turned[j])
                    values[i].append(s.kv[i][1])
        at += len(s.ids)
    return pos, [(torch.cat(keys[i], 1), torch.cat(values[i], 1)) if keys[i] else None
                 for i in range(n_layers)]


def select(model: Any, spans: list[Span], ids: list[int], cached_pos: list[int],
           layer_kv: Any, *, ratio: float, rule: str,
           check_layer: int = CHECK_LAYER, group: int = 1) -> tuple[set[int], Any]:
    """Positions of the cached chunk tokens to recompute, and for ``deviation`` the cache of
    layers ``0..check_layer`` computed fresh over ``ids`` (else ``None``).

    ``layer_kv``: per layer, the re-rotated cached keys and values ``[kv_heads, C, head_dim]``
    in the order of ``cached_pos`` (a list indexed by layer; one pair alone is layer
    ``check_layer``'s). ``group``: the deviation is summed over layers
    ``check_layer - group + 1 .. check_layer``, each divided by its mean over the tokens, so
    that every layer of the group counts alike (``1``: layer ``check_layer`` alone, as
    LMCache's blend does).
    """
    chunk_spans = list(_chunk_spans(spans))
    chunk_pos = [p for at, n in chunk_spans for p in range(at, at + n)]
    firsts = {p for at, n in chunk_spans for p in range(at, at + math.ceil(ratio * n))}
    if rule == "none" or ratio <= 0 or not chunk_pos:
        return set(), None
    if rule == "first":
        return firsts, None
    fresh = rope.layer_keys(model, ids, list(range(len(ids))), upto=check_layer)
    per_layer = layer_kv if isinstance(layer_kv, list) else {check_layer: layer_kv}
    index = {p: j for j, p in enumerate(cached_pos)}
    dev: Any = 0
    for layer in range(max(0, check_layer - group + 1), check_layer + 1):
        new_k = fresh.layers[layer].keys[0]  # [H, N, D]
        cols = torch.tensor([index[p] for p in chunk_pos], device=new_k.device)
        old_k = per_layer[layer][0].index_select(1, cols).float()
        d = (new_k.index_select(1, torch.tensor(chunk_pos, device=new_k.device)).float()
             - old_k).pow(2).sum(dim=(0, 2))
        dev = dev + (d / d.mean().clamp_min(1e-12) if group > 1 else d)
    n = min(len(chunk_pos), math.ceil(ratio * len(chunk_pos)))
    top = torch.topk(dev, n).indices.tolist()
    return {chunk_pos[j] for j in top}, fresh


def _chunk_spans(spans: list[Span]) -> Iterator[tuple[int, int]]:
    """``(first position, length)`` of each cached chunk span (not the shared prefix)."""
    at = 0
    for s in spans:
        if s.kv is not None and s.chunk:
            yield at, len(s.ids)
        at += len(s.ids)


def _chunk_mask(spans: list[Span], keep_pos: list[int], dev: Any) -> torch.Tensor:
    """``[len(keep_pos)]`` bool: which kept cached positions belong to a chunk span."""
    inside = {p for at, n in _chunk_spans(spans) for p in range(at, at + n)}
    return torch.tensor([p in inside for p in keep_pos], device=dev, dtype=torch.bool)


def compose(model: Any, spans: list[Span], *, ratio: float = 0.0, rule: str = "deviation",
            check_layer: int = CHECK_LAYER, group: int = 1, temperature: float = 1.0,
            scale: float = 1.0) -> Composed:
    """Compose ``spans`` into a ``DynamicCache`` of every token, and the logits after it.

    ``ratio``: the share of cached chunk tokens to recompute (0 to 1) by ``rule``
    (:data:`RULES`), chosen at ``check_layer`` (with ``group``, over that many layers up to
    it: :func:`select`). ``temperature`` and ``scale`` (APE, §3): the attention logits of
    the fresh tokens on the chunk tokens that stay cached are divided by ``temperature``
    (their keys are, in the returned cache too, so it holds while decoding) and their
    attention weights multiplied by ``scale`` (``log scale`` added to the mask, in the
    composing pass only, so for the first answer token). ``1.0`` and ``1.0``: plain
    attention. The stored tensors are never modified.

    Raises:
        UsageError: the last span is cached (the question must be fresh), an unknown rule, a
            ratio outside 0..1, a temperature or scale not above 0, or a model whose RoPE
            cannot be re-rotated (see :func:`rope.describe`).
    """
    from transformers import DynamicCache

    if rule not in RULES:
        raise UsageError(f"recompute rule {rule!r} is not one of {', '.join(RULES)}")
    if not 0 <= ratio <= 1:
        raise UsageError(f"recompute ratio {ratio} is not between 0 and 1")
    if temperature <= 0 or scale <= 0 or group < 1:
        raise UsageError("temperature and scale must be above 0, group at least 1")
    if not spans or spans[-1].kv is not None or not spans[-1].ids:
        raise UsageError("the prompt must end with fresh tokens (the question)")
    t0 = time.perf_counter()
    ids = [t for s in spans for t in s.ids]
    n_layers = int(_text_config(model).num_hidden_layers)
    ropes = rope.describe(model, len(ids))
    cached_pos, kv = _rotated(spans, ropes, n_layers)
    t_rot = time.perf_counter()
    body = len(ids)
    check = min(check_layer, n_layers - 1)
    chosen, fresh_early = select(model, spans, ids[:body], cached_pos, kv,
                                 ratio=ratio, rule=rule, check_layer=check,
                                 group=min(group, check + 1))
    t_sel = time.perf_counter()
    keep = [j for j, p in enumerate(cached_pos) if p not in chosen]
    keep_pos = [cached_pos[j] for j in keep]
    cached_set = set(keep_pos)
    fresh_pos = [p for p in range(body) if p not in cached_set]
    dev = model.device
    keep_idx = torch.tensor(keep, device=dev, dtype=torch.long)
    apart = temperature != 1.0 or scale != 1.0
    in_chunk = _chunk_mask(spans, keep_pos, dev) if apart else None
    work = DynamicCache()
    for i in range(n_layers):
        pair = kv[i]
        if pair is None or not keep:
            continue
        if fresh_early is not None and i <= check:  # exact: computed over the whole prompt
            exact: Any = fresh_early.layers[i]
            ek, ev = exact.keys[0], exact.values[0]
            k = ek.index_select(1, torch.tensor(keep_pos, device=dev))
            v = ev.index_select(1, torch.tensor(keep_pos, device=dev))
        else:
            k, v = pair[0].index_select(1, keep_idx), pair[1].index_select(1, keep_idx)
        if in_chunk is not None and temperature != 1.0:
            k = torch.where(in_chunk[None, :, None], k / temperature, k)
        work.update(k.unsqueeze(0), v.unsqueeze(0), i)
    mask = attention_masks(model, fresh_pos, keep_pos + fresh_pos)
    if in_chunk is not None and scale != 1.0:
        bias = torch.zeros(len(keep_pos) + len(fresh_pos), device=dev, dtype=model.dtype)
        bias[:len(keep_pos)] = torch.where(in_chunk, math.log(scale), 0.0)
        mask = ({t: m + bias for t, m in mask.items()} if isinstance(mask, dict)
                else mask + bias)
    with torch.inference_mode():  # the last token is always fresh
        logits = model(input_ids=torch.tensor([[ids[p] for p in fresh_pos]], device=dev),
                       position_ids=torch.tensor([fresh_pos], device=dev),
                       attention_mask=mask,
                       past_key_values=work, use_cache=True, logits_to_keep=1).logits[0, -1]
    order = torch.argsort(torch.tensor(keep_pos + fresh_pos, device=dev))
    cache = DynamicCache(config=model.config)
    for i in range(n_layers):
        layer: Any = work.layers[i]
        cache.update(layer.keys.index_select(2, order), layer.values.index_select(2, order), i)
    t1 = time.perf_counter()
    return Composed(cache, logits, ids, len(keep_pos), len(fresh_pos) - len(chosen), len(chosen),
                    {"rerotate_s": t_rot - t0, "select_s": t_sel - t_rot,
                     "recompute_s": t1 - t_sel, "compose_s": t1 - t0})
