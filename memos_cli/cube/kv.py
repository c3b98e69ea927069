"""The activation tier on disk: KV-cache segments as safetensors files (spec/memcube.md §10).

A segment is ``kv/<segment-id>.safetensors`` holding, for a prefix of ``T`` tokens computed at
positions ``0..T-1``:

- ``token_ids``: ``[T] int64``, the exact tokens of the prefix;
- ``layers.<i>.keys`` and ``layers.<i>.values``: ``[kv_heads, T, head_dim]`` in the storage
  dtype (``float32``, ``bfloat16``, ``float16`` or ``int8``); keys are stored after RoPE, as
  the model's attention caches them;
- for ``int8`` (KIVI-style asymmetric quantization, Liu et al., ICML 2024: keys per channel
  in groups of ``KEY_GROUP`` = 32 tokens, values per token):
  ``layers.<i>.keys.scale``/``.zero`` ``[kv_heads, ceil(T / 32), head_dim] float16`` and
  ``layers.<i>.values.scale``/``.zero`` ``[kv_heads, T, 1] float16``, with
  ``x = (q + 128) * scale + zero`` computed in float32.

The safetensors metadata (string to string) holds ``memcube.kv`` (``"1"``), the model
fingerprint, the prompt template, memory ids and content hashes, storage dtype, quantization,
and the shape numbers. This module never loads a model and never unpickles anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where tensors are made: importing it costs a second
    import torch

from memos_cli import strictjson
from memos_cli.digest import canonical_json, json_sha256
from memos_cli.errors import FormatError

KV_FORMAT = "1"
#: Storage dtypes and their safetensors dtype codes.
STORAGE_DTYPES = {"float32": "F32", "bfloat16": "BF16", "float16": "F16", "int8": "I8"}
QUANT_INT8 = "kivi-int8-asym: keys per channel in groups of 32 tokens, values per token"
#: Tokens that share one key scale and zero point per channel (KIVI's group size).
KEY_GROUP = 32
#: Largest segment file memos reads (bytes); larger files are refused before parsing.
MAX_SEGMENT_BYTES = 8 << 30
#: What a KV file holds: a whole-prefix segment (§10), or a chunk set's prefix or chunk (§12).
KINDS = ("segment", "prefix", "chunk")
_META_KEYS = ("memcube.kv", "model", "model_fingerprint", "prompt_template", "memory_ids",
              "content_hashes", "storage_dtype", "quantization", "num_tokens",
              "num_layers", "num_kv_heads", "head_dim", "start_position")
#: Keys every segment memos writes holds, but the first 1.1 writers did not (spec §10): a
#: segment without ``memories`` is used as a cache but cannot restore the plaintext tier.
_LATER_KEYS = ("memories",)


@dataclass(frozen=True, kw_only=True)
class SegmentMeta:
    """The parsed metadata of a segment file."""

    model: str
    model_fingerprint: dict[str, Any]
    prompt_template: dict[str, Any]
    memory_ids: tuple[str, ...]
    content_hashes: tuple[str, ...]
    storage_dtype: str
    quantization: str
    num_tokens: int
    num_layers: int
    num_kv_heads: int
    head_dim: int
    #: per memory, in prefix order: its record (spec §4 fields) without ``content``, plus
    #: ``content_span`` ``[start, end)`` of its content in the decoded token ids, or
    #: ``content`` where the decoded text does not hold it verbatim
    memories: tuple[dict[str, Any], ...] = ()
    #: ``segment`` (a whole prefix, §10), or ``prefix`` / ``chunk`` of a chunk set (§12)
    kind: str = "segment"
    #: the position of the first token (0 except for chunks: the prefix's length)
    start_position: int = 0
    #: the ``model_fingerprint`` metadata value as stored: the legacy digests of spec §2.1
    #: are over its numbers as written ("" for metadata made in memory)
    fingerprint_text: str = field(default="", compare=False, repr=False)
    #: whether the file holds the ``memories`` key (required from format 1.3, spec §10)
    has_records: bool = field(default=True, compare=False, repr=False)

    def legacy_fingerprint(self) -> Any:
        """The fingerprint with its numbers as the file wrote them (``Lexeme``), what the
        legacy digests of formats 1.0-1.4 are over (spec §2.1); the object itself for
        metadata made in memory."""
        return strictjson.loads(self.fingerprint_text, lexemes=True) \
            if self.fingerprint_text else self.model_fingerprint

    def to_metadata(self) -> dict[str, str]:
        return {
            "memcube.kv": KV_FORMAT,
            "model": self.model,
            "model_fingerprint": canonical_json(self.model_fingerprint).decode(),
            "prompt_template": canonical_json(self.prompt_template).decode(),
            "memory_ids": canonical_json(list(self.memory_ids)).decode(),
            "content_hashes": canonical_json(list(self.content_hashes)).decode(),
            "memories": canonical_json(list(self.memories)).decode(),
            "storage_dtype": self.storage_dtype,
            "quantization": self.quantization,
            "num_tokens": str(self.num_tokens),
            "num_layers": str(self.num_layers),
            "num_kv_heads": str(self.num_kv_heads),
            "head_dim": str(self.head_dim),
            "start_position": str(self.start_position),
            **({"kind": self.kind} if self.kind != "segment" else {}),
        }

    @classmethod
    def from_metadata(cls, meta: dict[str, str] | None, path: Path) -> SegmentMeta:
        """Parse and check the metadata. Raises ``FormatError`` naming every problem."""
        meta = meta or {}
        missing = [k for k in _META_KEYS if k not in meta]
        if missing:
            raise FormatError(f"KV segment metadata lacks {', '.join(missing)}", path=path)
        if meta["memcube.kv"] != KV_FORMAT:
            raise FormatError(f"KV segment format {meta['memcube.kv']!r} is not supported "
                              f"(this memos reads {KV_FORMAT!r})", path=path)
        try:
            fields = {
                "model": meta["model"],
                "model_fingerprint": strictjson.loads(meta["model_fingerprint"]),
                "prompt_template": strictjson.loads(meta["prompt_template"]),
                "memory_ids": tuple(strictjson.loads(meta["memory_ids"])),
                "content_hashes": tuple(strictjson.loads(meta["content_hashes"])),
                "memories": tuple(strictjson.loads(meta.get("memories", "null")) or ()),
                "storage_dtype": meta["storage_dtype"],
                "quantization": meta["quantization"],
                "num_tokens": int(meta["num_tokens"]),
                "num_layers": int(meta["num_layers"]),
                "num_kv_heads": int(meta["num_kv_heads"]),
                "head_dim": int(meta["head_dim"]),
                "kind": meta.get("kind", "segment"),
                "start_position": int(meta["start_position"]),
                "fingerprint_text": meta["model_fingerprint"],
                "has_records": "memories" in meta,
            }
        except (ValueError, TypeError) as e:
            raise FormatError(f"KV segment metadata is malformed: {e}", path=path) from e
        problems = []
        if fields["storage_dtype"] not in STORAGE_DTYPES:
            problems.append(f"storage_dtype {fields['storage_dtype']!r} is unknown")
        want_q = QUANT_INT8 if fields["storage_dtype"] == "int8" else "none"
        if fields["quantization"] != want_q:
            problems.append(f"quantization {fields['quantization']!r} does not fit "
                            f"{fields['storage_dtype']}")
        if fields["kind"] not in KINDS:
            problems.append(f"kind {fields['kind']!r} is not one of {', '.join(KINDS)}")
        elif fields["kind"] != "chunk" and fields["start_position"] != 0:
            problems.append("start_position is not 0")
        elif not 0 <= fields["start_position"] < 1 << 24:
            problems.append(f"start_position {fields['start_position']} is out of range")
        if len(fields["memory_ids"]) != len(fields["content_hashes"]):
            problems.append("memory_ids and content_hashes differ in length")
        recs = fields["memories"]
        if "memories" in meta and (not all(isinstance(r, dict) for r in recs) or [
                (r.get("id"), r.get("content_hash")) for r in recs] != list(
                zip(fields["memory_ids"], fields["content_hashes"], strict=False))):
            problems.append("memories do not match memory_ids and content_hashes")
        for k in ("num_tokens", "num_layers", "num_kv_heads", "head_dim"):
            if not 0 < fields[k] < 1 << 24:
                problems.append(f"{k} {fields[k]} is out of range")
        fp = fields["model_fingerprint"]
        if not isinstance(fp, dict) or any(
                fp.get(k) != fields[k] for k in ("num_layers", "num_kv_heads", "head_dim")):
            problems.append("shape numbers disagree with the model fingerprint")
        if problems:
            raise FormatError("KV segment metadata: " + "; ".join(problems), path=path)
        return cls(**fields)


def segment_id(meta: SegmentMeta, *, legacy: bool = False) -> str:
    """Content-derived id (spec §10): the first 16 hex digits of SHA-256 over the canonical
    JSON of ``{"dtype": storage dtype string, "fingerprint": the model fingerprint object,
    "hashes": list of content-hash strings in prefix order, "template": the prompt template
    object}``; over the legacy canonical JSON (spec §2.1) when ``legacy``."""
    fp = meta.legacy_fingerprint() if legacy else meta.model_fingerprint
    digest = json_sha256({
        "fingerprint": fp, "template": meta.prompt_template,
        "hashes": list(meta.content_hashes), "dtype": meta.storage_dtype}, legacy=legacy)
    return digest[7:23]


def torch_dtype(code: str) -> torch.dtype:
    """The torch dtype of a safetensors dtype code (``F32``, ``BF16``, ``F16``, ``I8``,
    ``I64``)."""
    import torch

    return {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16,
            "I8": torch.int8, "I64": torch.int64}[code]


def quantize(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric int8 quantization reducing over ``dim`` (KIVI). Returns q, scale, zero."""
    import torch

    x = x.float()
    lo = x.amin(dim=dim, keepdim=True).half().float()
    hi = x.amax(dim=dim, keepdim=True)
    scale = ((hi - lo) / 255.0).clamp(min=1e-4).half().float()
    q = torch.round((x - lo) / scale).clamp(0, 255) - 128
    return q.to(torch.int8), scale.half(), lo.half()


def dequantize(q: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
    return (q.float() + 128.0) * scale.float() + zero.float()


def quantize_keys(k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``k [H, T, D]`` -> int8 ``[H, T, D]``, scale and zero ``[H, ceil(T/32), D]``: per
    channel within each group of :data:`KEY_GROUP` tokens (the last group may be shorter)."""
    import torch

    parts = [quantize(k[:, s:s + KEY_GROUP], 1) for s in range(0, k.shape[1], KEY_GROUP)]
    return (torch.cat([p[0] for p in parts], 1), torch.cat([p[1] for p in parts], 1),
            torch.cat([p[2] for p in parts], 1))


def dequantize_keys(q: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`quantize_keys` (float32)."""
    t = q.shape[1]
    return dequantize(q, scale.repeat_interleave(KEY_GROUP, dim=1)[:, :t],
                      zero.repeat_interleave(KEY_GROUP, dim=1)[:, :t])


def write_segment(path: Path, meta: SegmentMeta, token_ids: torch.Tensor,
                  layers: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Write a segment. ``layers[i] = (keys, values)``, each ``[kv_heads, T, head_dim]``
    float; they are converted to ``meta.storage_dtype`` (quantized for int8)."""
    import torch
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {"token_ids": token_ids.to(torch.int64).contiguous()}
    for i, (k, v) in enumerate(layers):
        if meta.storage_dtype == "int8":
            for name, (q, scale, zero) in (("keys", quantize_keys(k)),
                                           ("values", quantize(v, 2))):
                tensors[f"layers.{i}.{name}"] = q.contiguous()
                tensors[f"layers.{i}.{name}.scale"] = scale.contiguous()
                tensors[f"layers.{i}.{name}.zero"] = zero.contiguous()
        else:
            dt = torch_dtype(STORAGE_DTYPES[meta.storage_dtype])
            tensors[f"layers.{i}.keys"] = k.to(dt).contiguous()
            tensors[f"layers.{i}.values"] = v.to(dt).contiguous()
    save_file(tensors, str(path), metadata=meta.to_metadata())


def expected_tensors(meta: SegmentMeta) -> dict[str, tuple[tuple[int, ...], str]]:
    """Every tensor name a valid segment holds, with its shape and safetensors dtype code."""
    t, h, d = meta.num_tokens, meta.num_kv_heads, meta.head_dim
    dt = STORAGE_DTYPES[meta.storage_dtype]
    out: dict[str, tuple[tuple[int, ...], str]] = {"token_ids": ((t,), "I64")}
    for i in range(meta.num_layers):
        out[f"layers.{i}.keys"] = ((h, t, d), dt)
        out[f"layers.{i}.values"] = ((h, t, d), dt)
        if meta.storage_dtype == "int8":
            groups = -(-t // KEY_GROUP)
            for suffix in ("scale", "zero"):
                out[f"layers.{i}.keys.{suffix}"] = ((h, groups, d), "F16")
                out[f"layers.{i}.values.{suffix}"] = ((h, t, 1), "F16")
    return out


@dataclass
class Segment:
    """A loaded segment: metadata, ``token_ids [T] int64`` and per-layer float tensors
    ``(keys, values)``, each ``[kv_heads, T, head_dim]`` in ``dtype``."""

    meta: SegmentMeta
    token_ids: torch.Tensor
    layers: list[tuple[torch.Tensor, torch.Tensor]]


def read_meta(path: Path) -> SegmentMeta:
    """Read only the header of a segment (no tensor data). Raises ``FormatError``."""
    from safetensors import safe_open

    _check_size(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return SegmentMeta.from_metadata(f.metadata(), path)
    except FormatError:
        raise
    except Exception as e:  # safetensors raises SafetensorError/OSError on bad headers
        raise FormatError(f"not a readable safetensors file: {e}", path=path) from e


def _check_tensors(f: Any, meta: SegmentMeta, path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """Check the names, shapes and dtypes in an open safetensors header against ``meta``;
    return the expected tensors. Raises ``FormatError`` listing the first problems."""
    want = expected_tensors(meta)
    have = set(f.keys())
    problems = [f"missing tensor {n}" for n in sorted(set(want) - have)]
    problems += [f"unexpected tensor {n}" for n in sorted(have - set(want))]
    for name in sorted(set(want) & have):
        sl = f.get_slice(name)
        shape = tuple(sl.get_shape())
        dt = str(sl.get_dtype())
        wshape, wdt = want[name]
        if shape != wshape or wdt != dt:
            problems.append(f"tensor {name} is {dt}{list(shape)}, expected {wdt}{list(wshape)}")
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise FormatError("KV segment tensors: " + "; ".join(problems[:5]) + more, path=path)
    return want


def check_segment(path: Path) -> SegmentMeta:
    """Check a KV file without loading a model or any tensor data: the safetensors header
    (its length, JSON, and that the tensors' byte ranges tile the data exactly, which the
    safetensors library checks on open), the metadata, and every tensor's name, shape and
    dtype. Returns the metadata.

    Raises:
        FormatError: as :func:`read_segment`.
    """
    from safetensors import safe_open

    _check_size(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = SegmentMeta.from_metadata(f.metadata(), path)
            _check_tensors(f, meta, path)
    except FormatError:
        raise
    except Exception as e:
        raise FormatError(f"not a readable safetensors file: {e}", path=path) from e
    return meta


def read_segment(path: Path, *, dtype: torch.dtype | None = None) -> Segment:
    """Load a segment, checking every tensor's name, shape and dtype against the metadata
    before any tensor is used; tensors are returned in ``dtype`` (default float32), int8
    ones dequantized.

    Raises:
        FormatError: truncated or oversized file, bad header or metadata, missing, extra or
            misshapen tensors.
    """
    from safetensors import safe_open

    _check_size(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = SegmentMeta.from_metadata(f.metadata(), path)
            want = _check_tensors(f, meta, path)
            tensors = {n: f.get_tensor(n) for n in want}
    except FormatError:
        raise
    except Exception as e:
        raise FormatError(f"not a readable safetensors file: {e}", path=path) from e
    import torch

    dtype = dtype or torch.float32
    layers = []
    for i in range(meta.num_layers):
        pair = []
        for name in ("keys", "values"):
            x = tensors[f"layers.{i}.{name}"]
            if meta.storage_dtype == "int8":
                undo = dequantize_keys if name == "keys" else dequantize
                x = undo(x, tensors[f"layers.{i}.{name}.scale"],
                         tensors[f"layers.{i}.{name}.zero"])
            pair.append(x.to(dtype))
        layers.append((pair[0], pair[1]))
    return Segment(meta, tensors["token_ids"], layers)


def _check_size(path: Path) -> None:
    try:
        size = path.stat().st_size
    except OSError as e:
        raise FormatError(f"cannot read KV segment: {e.strerror}", path=path) from e
    if size > MAX_SEGMENT_BYTES:
        raise FormatError(f"KV segment is {size} bytes, over the {MAX_SEGMENT_BYTES} limit",
                          path=path)

