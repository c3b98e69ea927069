"""RoPE re-rotation of cached keys, for every decoder family whose rotary frequencies do not
depend on the position (spec/memcube.md §12.4).

Rotary position embedding (Su et al., 2021) rotates each pair of key channels by ``p θ_j``.
Rotations compose, ``R(p + δ) = R(δ) R(p)``, so a key cached at position ``p`` moves to ``p + δ``
by one more rotation, without the model. What differs between families is *where* the
rotation acts, and this module reads it from the loaded model instead of assuming Llama:

- the frequencies ``θ`` of each layer: one rotary embedding for the model, or one per layer
  type (Gemma 3: ``sliding_attention_inv_freq`` and ``full_attention_inv_freq``);
- the rotary width: the first ``2 * len(θ)`` channels of a head (partial rotary: Phi-3 with
  ``partial_rotary_factor`` < 1, StableLM, GPT-NeoX); the rest pass through unchanged;
- the pairing: rotate-half (``x_j`` with ``x_{j + d/2}``, the Hugging Face default) or
  interleaved (``x_{2j}`` with ``x_{2j+1}``, GPT-J and Cohere);
- the attention scaling of YaRN and LongRoPE, which multiplies cos and sin once at compute
  time: the extra rotation must not apply it again.

Scaling types whose frequencies change with the sequence (``dynamic``) are refused, and
LongRoPE beyond its original context (where it switches to its long factors) too. Every
model's support is confirmed once by :func:`calibrate`: layer-0 keys computed at positions
``p`` and re-rotated by ``δ`` must equal those computed at ``p + δ``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from memos_cli.errors import UsageError

#: Scaling types with frequencies fixed for every position.
FIXED_ROPE_TYPES = ("default", "linear", "llama3", "yarn", "longrope", "proportional")
#: Architectures (``config.model_type``) that pair channels 2j and 2j+1.
INTERLEAVED = ("gptj", "cohere", "cohere2", "glm", "glm4", "chatglm")


@dataclass(frozen=True)
class LayerRope:
    """How one layer rotates its keys: ``inv_freq [R/2] float64`` (``R`` rotary channels),
    the pairing, and the attention scaling (already inside the cached keys)."""

    inv_freq: torch.Tensor
    interleaved: bool
    attention_scaling: float

    @property
    def rotary_dim(self) -> int:
        return 2 * int(self.inv_freq.shape[0])


def _rope_type(params: Any) -> str:
    if isinstance(params, dict):
        return str(params.get("rope_type") or params.get("type") or "default")
    return "default"


def describe(model: Any, total_tokens: int = 0) -> list[LayerRope]:
    """Per decoder layer, how it applies RoPE; ``total_tokens``: the longest sequence the
    caller will compose (LongRoPE's frequencies switch beyond its original context).

    Raises:
        UsageError: the model has no rotary embedding, a scaling whose frequencies depend on
            the sequence length, or a layer type without frequencies; the message names why.
    """
    base = model.base_model
    cfg = model.config.get_text_config(decoder=True) if hasattr(
        model.config, "get_text_config") else model.config
    rotary = getattr(base, "rotary_emb", None)
    if rotary is None:
        raise UsageError(f"{cfg.model_type} has no rotary position embedding (RoPE), so cached "
                         "keys cannot be moved to another position")
    n_layers = int(cfg.num_hidden_layers)
    layer_types = list(getattr(cfg, "layer_types", None) or [None] * n_layers)
    params = getattr(cfg, "rope_parameters", None) or {}
    interleaved = cfg.model_type in INTERLEAVED
    out = []
    made: dict[tuple[Any, ...], LayerRope] = {}  # one object per distinct rotation
    for i in range(n_layers):
        lt = layer_types[i]
        per_type = isinstance(params, dict) and lt in params and isinstance(params[lt], dict)
        p = params[lt] if per_type else params
        kind = _rope_type(p)
        if kind not in FIXED_ROPE_TYPES:
            raise UsageError(f"{cfg.model_type} uses RoPE scaling {kind!r}, whose frequencies "
                             "depend on the sequence length; cached keys cannot be re-rotated")
        if kind == "longrope":
            original = int(p.get("original_max_position_embeddings") or getattr(
                cfg, "original_max_position_embeddings", 0) or cfg.max_position_embeddings)
            if total_tokens > original:
                raise UsageError(f"LongRoPE switches to its long factors beyond {original} "
                                 f"tokens; {total_tokens} cannot be composed")
        inv = getattr(rotary, f"{lt}_inv_freq", None) if lt else None
        scaling = getattr(rotary, f"{lt}_attention_scaling", None) if lt else None
        if inv is None:
            inv = getattr(rotary, "inv_freq", None)
            scaling = getattr(rotary, "attention_scaling", 1.0)
        if inv is None:
            raise UsageError(f"{cfg.model_type}: layer {i} ({lt}) has no rotary frequencies")
        key = (id(inv), scaling)
        if key not in made:
            made[key] = LayerRope(inv.detach().to("cpu", torch.float64), interleaved,
                                  float(scaling if scaling is not None else 1.0))
        out.append(made[key])
    return out


def rerotate(keys: torch.Tensor, delta: int | torch.Tensor, rope: LayerRope) -> torch.Tensor:
    """Move post-RoPE ``keys [..., T, head_dim]`` from positions ``p`` to ``p + delta``.

    ``delta``: one offset for all tokens, or ``[T] int64`` (one per token). Only the first
    ``rope.rotary_dim`` channels turn; the attention scaling already in the keys is kept
    (the rotation itself is unscaled). Angles in float64, the rotation in float32 (float64
    keys stay float64), returned in ``keys.dtype``.
    """
    if isinstance(delta, int) and delta == 0:
        return keys
    d = torch.as_tensor(delta, dtype=torch.float64).reshape(-1, 1)  # [T or 1, 1]
    freqs = d * rope.inv_freq.reshape(1, -1)  # [T|1, R/2]
    work = torch.float64 if keys.dtype == torch.float64 else torch.float32
    cos = freqs.cos().to(keys.device, work)
    sin = freqs.sin().to(keys.device, work)
    r = rope.rotary_dim
    x = keys[..., :r].to(work)
    if rope.interleaved:
        even, odd = x[..., 0::2], x[..., 1::2]
        turned = torch.stack((even * cos - odd * sin, odd * cos + even * sin), dim=-1)
        turned = turned.flatten(-2)
    else:
        half = r // 2
        lo, hi = x[..., :half], x[..., half:]
        turned = torch.cat((lo * cos - hi * sin, hi * cos + lo * sin), dim=-1)
    if r == keys.shape[-1]:
        return turned.to(keys.dtype)
    return torch.cat((turned.to(keys.dtype), keys[..., r:]), dim=-1)


class _Stop(Exception):
    pass


def layer_keys(model: Any, ids: list[int], positions: list[int], upto: int = 0) -> Any:
    """Run decoder layers ``0..upto`` only over ``ids`` at ``positions`` (ascending, contiguous:
    the model's own causal mask applies) and return the
    ``DynamicCache`` they filled (post-RoPE keys and values of those layers, in the compute
    dtype, on the model's device). The later layers and the LM head are never run."""
    from transformers import DynamicCache

    layers = model.base_model.layers
    cache = DynamicCache()
    hook = None
    if upto + 1 < len(layers):
        def stop(*_: Any) -> None:
            raise _Stop
        hook = layers[upto + 1].register_forward_pre_hook(stop)
    dev = model.device
    try:
        with torch.inference_mode():
            model.base_model(input_ids=torch.tensor([ids], device=dev),
                             position_ids=torch.tensor([positions], device=dev),
                             past_key_values=cache, use_cache=True)
    except _Stop:
        pass
    finally:
        if hook is not None:
            hook.remove()
    return cache


def calibrate(model: Any, ropes: list[LayerRope]) -> float:
    """Check re-rotation against the model itself: layer-0 keys of a few tokens computed at
    positions ``0..n-1`` and re-rotated by ``δ`` against the same tokens computed at
    ``δ..δ+n-1`` (layer-0 keys depend on the token and its position alone). Returns the
    largest absolute difference relative to the keys' scale.

    Raises:
        UsageError: they differ beyond float tolerance (a RoPE layout this module does not
            know); composition would silently cost answers.
    """
    vocab = int(model.config.get_text_config(decoder=True).vocab_size)
    ids = [(7 * i + 3) % vocab for i in range(6)]
    delta = 37
    a = layer_keys(model, ids, list(range(6))).layers[0].keys[0]
    b = layer_keys(model, ids, [delta + i for i in range(6)]).layers[0].keys[0]
    moved = rerotate(a.float(), delta, ropes[0])
    scale = float(b.float().abs().max()) or 1.0
    err = float((moved - b.float()).abs().max()) / scale
    tol = 1e-4 if model.dtype == torch.float32 else 2e-2
    if err > tol:
        raise UsageError(f"{model.config.model_type}: re-rotated keys differ from the model's "
                         f"own by {err:.2g} (relative); its RoPE layout is not supported for "
                         "composing KV chunks")
    return err
