"""The identity of a chat model, as the activation tier records and checks it (spec §10.3).

A KV cache is only valid for the exact model, tokenizer and chat template that computed it
(MemOS issue #2300 shows what happens otherwise: a cache loads silently into another model).
The fingerprint names everything that changes the cached tensors or the token ids.
"""

from __future__ import annotations

from typing import Any

from memos_cli.digest import canonical_json, json_sha256, sha256_bytes

#: Config keys that say nothing about the computation (paths, versions, bookkeeping).
_VOLATILE_CONFIG = {"_name_or_path", "transformers_version", "torch_dtype", "dtype",
                    "_commit_hash", "_attn_implementation_autoset", "architectures",
                    "use_cache", "output_attentions", "output_hidden_states", "return_dict"}
#: Keys compared between a segment and a model, in the order mismatches are reported.
CHECKED = ("architecture", "config_sha256", "weights_sample_sha256", "tokenizer_sha256",
           "chat_template_sha256", "num_layers", "num_kv_heads", "head_dim", "rope",
           "compute_dtype", "transformers_major")
#: Values taken from the start of every parameter tensor for ``weights_sample_sha256``.
SAMPLE = 4096


def weights_sample(model: Any) -> str:
    """``sha256`` over each parameter's name, shape and first :data:`SAMPLE` values (float32
    little-endian), in ``named_parameters`` order: a cheap check (about 4 MB hashed for a
    135M model) that tells fine-tunes of one base apart, which the config cannot."""
    import hashlib

    import torch

    h = hashlib.sha256()
    with torch.no_grad():
        for name, p in model.named_parameters():
            h.update(f"{name}:{list(p.shape)};".encode())
            h.update(p.detach().reshape(-1)[:SAMPLE].float().contiguous().numpy().tobytes())
    return "sha256:" + h.hexdigest()


def model_fingerprint(model: Any, tokenizer: Any, *, legacy: bool = False) -> dict[str, Any]:
    """Fingerprint of a loaded causal LM and its tokenizer (spec §10, "Model fingerprint").

    Returns a JSON-ready dict: ``architecture``, ``config_sha256`` (RFC 8785 canonical JSON of
    the config without volatile keys; the legacy form of formats <= 1.4 when ``legacy``),
    ``weights_sample_sha256`` (:func:`weights_sample`),
    ``tokenizer_sha256`` (the fast tokenizer's serialized JSON plus its
    special tokens), ``chat_template_sha256``, ``num_layers``, ``num_kv_heads``, ``head_dim``,
    ``rope`` (theta and scaling), ``compute_dtype``, ``transformers_version`` and its major.
    """
    import transformers

    cfg = model.config.get_text_config(decoder=True) if hasattr(
        model.config, "get_text_config") else model.config
    num_layers, kv_heads, head_dim = kv_shape(model, cfg)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    tok_blob = {
        "tokenizer": backend.to_str() if backend is not None else repr(tokenizer.get_vocab()),
        "special": {k: str(v) for k, v in sorted(tokenizer.special_tokens_map.items())},
    }
    rope = getattr(cfg, "rope_parameters", None) or {
        "rope_theta": getattr(cfg, "rope_theta", None),
        "rope_scaling": getattr(cfg, "rope_scaling", None)}
    version = transformers.__version__
    return {
        "architecture": (model.config.architectures or [type(model).__name__])[0],
        "config_sha256": config_digest(model, legacy=legacy),
        "weights_sample_sha256": weights_sample(model),
        "tokenizer_sha256": sha256_bytes(canonical_json(tok_blob)),
        "chat_template_sha256": sha256_bytes((tokenizer.chat_template or "").encode("utf-8")),
        "num_layers": num_layers,
        "num_kv_heads": kv_heads,
        "head_dim": head_dim,
        "rope": _jsonable(rope),
        "compute_dtype": str(model.dtype).removeprefix("torch."),
        "transformers_version": version,
        "transformers_major": int(version.split(".")[0]),
    }


def kv_shape(model: Any, cfg: Any) -> tuple[int, int, int]:
    """``(layers, KV heads, head dimension)`` of the KV cache ``model`` writes, measured by a
    one-token prefill of the decoder stack (layer 0's keys ``[1, heads, 1, dim]``).

    The config can mislead: GPT-NeoX ignores ``num_key_value_heads`` and attends with every
    head, and a config may carry fields its architecture does not use (#34). A model whose
    decoder does not return a cache falls back to the config's numbers (``num_hidden_layers``,
    ``num_key_value_heads`` or ``num_attention_heads``, ``head_dim`` or hidden size / heads).
    """
    import torch

    heads = int(cfg.num_attention_heads)
    fallback = (int(cfg.num_hidden_layers),
                int(getattr(cfg, "num_key_value_heads", None) or heads),
                int(getattr(cfg, "head_dim", None) or cfg.hidden_size // heads))
    try:
        probe = torch.zeros((1, 1), dtype=torch.long, device=model.device)
        with torch.inference_mode():
            out = model.base_model(input_ids=probe, use_cache=True)
        layers = out.past_key_values.layers
        keys = layers[0].keys
    except (AttributeError, TypeError, IndexError, ValueError, RuntimeError):
        return fallback
    return len(layers), int(keys.shape[1]), int(keys.shape[-1])


def config_digest(model: Any, *, legacy: bool = False) -> str:
    """``config_sha256``: the digest of the model config without :data:`_VOLATILE_CONFIG`
    keys, over RFC 8785 canonical JSON (over the legacy form of spec §2.1 when ``legacy``)."""
    conf = {k: v for k, v in model.config.to_dict().items() if k not in _VOLATILE_CONFIG}
    return json_sha256(_jsonable(conf), legacy=legacy)


def fingerprint_digest(fp: dict[str, Any], *, legacy: bool = False) -> str:
    """``sha256`` of the RFC 8785 canonical JSON of a fingerprint (the manifest's
    ``model_fingerprint_sha256``); of its legacy form (spec §2.1) when ``legacy``."""
    return json_sha256(fp, legacy=legacy)


def mismatches(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Names of the fingerprint fields that differ (``CHECKED`` order), with both values."""
    out = []
    for key in CHECKED:
        a, b = recorded.get(key), current.get(key)
        if a != b:
            show = (lambda v: str(v)[:19] + "...") if key.endswith("sha256") else str
            out.append(f"{key} {show(a)} != {show(b)}")
    return out


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, int) and not isinstance(obj, bool) and abs(obj) >= 1 << 53:
        return str(obj)  # outside RFC 8785's exact integers
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else str(obj)
    return str(obj)
