"""Composition variants of #34: APE's attention temperature and scale on cached chunk tokens,
and deviation chosen over a group of layers; each checked against its definition computed
another way on a tiny Llama."""

from pathlib import Path

import pytest
import torch

from memos_cli.cube import open_cube
from memos_cli.errors import UsageError
from memos_cli.models import chat
from memos_cli.tiers import chunk_build, prompt
from memos_cli.tiers import compose as comp

Q = "Who owns the vision stack?"


@pytest.fixture(scope="module")
def tiny(tiny_llama: Path) -> chat.ChatModel:
    return chat.load(str(tiny_llama))


def _spans(tiny: chat.ChatModel, packed_cube: Path, n: int = 3,
           divide: float = 1.0) -> list[comp.Span]:
    """Prefix, then ``n`` one-memory chunks, then the question; chunk keys divided by
    ``divide``."""
    mems = open_cube(packed_cube).memories[:n]
    prefix = chunk_build.build_prefix(tiny)
    spans = [comp.Span(prefix.token_ids.tolist(), prefix.layers, 0)]
    for slot, m in enumerate(mems, start=1):
        b = chunk_build.build_chunk(tiny, prefix, [m])
        layers = [(k / divide, v) for k, v in b.layers]
        spans += [comp.Span(prompt.marker_ids(tiny.tokenizer, slot)),
                  comp.Span(b.token_ids.tolist(), layers, b.meta.start_position, True)]
    spans.append(comp.Span(prompt.closing_ids(tiny.tokenizer, Q)))
    return spans


def test_temperature_is_the_chunk_keys_divided(tiny: chat.ChatModel, packed_cube: Path) -> None:
    """Dividing the attention logits on chunk tokens by T is dividing their keys by T (RoPE
    is linear): compose(temperature=T) equals composing chunks whose stored keys were divided
    beforehand, and its cache holds the divided keys; the shared prefix is untouched."""
    plain = comp.compose(tiny.model, _spans(tiny, packed_cube))
    ape = comp.compose(tiny.model, _spans(tiny, packed_cube), temperature=0.5)
    by_hand = comp.compose(tiny.model, _spans(tiny, packed_cube, divide=0.5))
    torch.testing.assert_close(ape.logits, by_hand.logits, atol=1e-5, rtol=1e-5)
    assert (ape.logits - plain.logits).abs().max() > 1e-4
    p = len(_spans(tiny, packed_cube)[0].ids)
    for i in range(len(ape.cache.layers)):
        a, b, c = (x.cache.layers[i].keys for x in (ape, by_hand, plain))
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(a[:, :, :p], c[:, :, :p])  # the prefix as it was


def test_a_vanishing_scale_hides_the_chunks(tiny: chat.ChatModel, packed_cube: Path) -> None:
    """APE's scale S multiplies the attention weights on chunk tokens; as S goes to 0 the
    fresh tokens see the prefix and each other only. The reference is a forward pass over
    the same fresh tokens, at the same positions, with the chunk tokens left out of the
    cache."""
    spans = _spans(tiny, packed_cube)
    ids = [t for s in spans for t in s.ids]
    hidden = comp.compose(tiny.model, spans, scale=1e-30)
    from transformers import DynamicCache

    pre = spans[0]
    chunk_at, at = set(), 0
    for s in spans:
        if s.chunk:
            chunk_at.update(range(at, at + len(s.ids)))
        at += len(s.ids)
    pre_pos = list(range(len(pre.ids)))
    fresh = [p for p in range(len(ids)) if p >= len(pre.ids) and p not in chunk_at]
    cache = DynamicCache()
    for i, (k, v) in enumerate(pre.kv or []):
        cache.update(k.unsqueeze(0), v.unsqueeze(0), i)
    with torch.inference_mode():
        ref = tiny.model(input_ids=torch.tensor([[ids[p] for p in fresh]]),
                         position_ids=torch.tensor([fresh]),
                         attention_mask=comp.attention_masks(tiny.model, fresh, pre_pos + fresh),
                         past_key_values=cache, use_cache=True).logits[0, -1]
    torch.testing.assert_close(hidden.logits, ref, atol=1e-4, rtol=1e-4)
    plain = comp.compose(tiny.model, spans)
    assert (plain.logits - ref).abs().max() > 1e-4  # the chunks mattered


def test_deviation_over_a_layer_group(tiny: chat.ChatModel, packed_cube: Path) -> None:
    """``group`` sums the per-layer deviations over layers up to ``check_layer``: the same
    number of tokens is recomputed, and a group of one is the single-layer rule."""
    one = comp.compose(tiny.model, _spans(tiny, packed_cube), ratio=0.3, check_layer=1)
    same = comp.compose(tiny.model, _spans(tiny, packed_cube), ratio=0.3, check_layer=1,
                        group=1)
    two = comp.compose(tiny.model, _spans(tiny, packed_cube), ratio=0.3, check_layer=1,
                       group=2)
    assert one.recomputed_tokens == two.recomputed_tokens > 0
    torch.testing.assert_close(one.logits, same.logits)
    full = comp.compose(tiny.model, _spans(tiny, packed_cube), ratio=1.0, group=2)
    with torch.inference_mode():
        ref = tiny.model(input_ids=torch.tensor([full.ids])).logits[0, -1]
    torch.testing.assert_close(full.logits, ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("bad", [{"temperature": 0.0}, {"scale": -1.0}, {"group": 0}])
def test_bad_variant_settings_are_refused(tiny: chat.ChatModel, packed_cube: Path,
                                          bad: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(UsageError, match="above 0"):
        comp.compose(tiny.model, _spans(tiny, packed_cube, n=1), **bad)
