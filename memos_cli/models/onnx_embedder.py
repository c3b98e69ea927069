"""The embedder without torch, for one-shot searches: the same encoder exported once to ONNX
and run with ONNX Runtime, its text split by the ``tokenizers`` library from the model's own
``tokenizer.json``. Importing torch and transformers and loading the model took 5.3 s of a
5.8 s ``memos search``; ONNX Runtime and ``tokenizers`` take a fraction of that.

The export is made by :func:`export` the first time a search needs it (torch is loaded for
that search anyway), into ``MEMOS_HOME/onnx/<16 hex of the fingerprint>/``: ``model.onnx``
(torch's ONNX exporter, opset 17, the last hidden state; pooling stays in numpy) and
``meta.json`` (the embedder's fingerprint and the largest difference measured against the
torch encoder, or the exporter's error); ``index.json`` beside them maps each model directory
to its export with the size and modification time of its files. An export is used only when
that difference is at most :data:`TOLERANCE` on the check texts, and only while the model's
files keep their size and time; otherwise the torch encoder is used, and a failed export or
check is remembered so that it is not tried again.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from memos_cli import strictjson
from memos_cli.config import home
from memos_cli.cube.layout import atomic_write_bytes
from memos_cli.localfiles import read_small
from memos_cli.models.embedder import (
    FINGERPRINT_FILES,
    MAX_CHARS,
    MAX_TOKENS,
    Embedder,
    describe,
    resolve_dir,
)
from memos_cli.models.safety import check_model_dir

#: Largest difference of any vector component allowed between ONNX and torch vectors.
TOLERANCE = 1e-5
FORMAT = "memos-onnx-embedder"
#: Texts the export is checked on: short, long (cut at MAX_TOKENS), non-Latin, empty.
CHECK_TEXTS = ["What budget did we agree on?", "a", "",
               "Kestrel's launch moved to June after the T4 sensor review. " * 40,
               "Ilse Varga — réunion budgétaire, 14 mars 2026; 会议记录 и заметки."]


def _stat(model_dir: Path) -> dict[str, list[int]]:
    out = {}
    for name in FINGERPRINT_FILES:
        p = model_dir / name
        if p.is_file():
            st = p.stat()
            out[name] = [st.st_size, st.st_mtime_ns]
    return out


def cache_dir(model_dir: Path) -> Path | None:
    """Where the export of ``model_dir`` is (or would be) kept, found by the stat of its files
    through an index, without hashing them; ``None`` when there is none yet."""
    root = home() / "onnx"
    index = root / "index.json"
    try:
        known = strictjson.loads(read_small(index))
    except (OSError, ValueError):
        return None
    entry = known.get(str(model_dir.resolve())) if isinstance(known, dict) else None
    if not isinstance(entry, dict) or entry.get("stat") != _stat(model_dir):
        return None
    where = root / str(entry.get("dir", ""))
    return where if (where / "meta.json").is_file() else None


def _remember(model_dir: Path, where: Path) -> None:
    index = home() / "onnx" / "index.json"
    try:
        known = strictjson.loads(read_small(index))
        known = known if isinstance(known, dict) else {}
    except (OSError, ValueError):
        known = {}
    known[str(model_dir.resolve())] = {"dir": where.name, "stat": _stat(model_dir)}
    atomic_write_bytes(index, (json.dumps(known, indent=1) + "\n").encode("utf-8"))


class OnnxEmbedder:
    """The encoder of ``model_dir`` through its ONNX export (see the module docstring): the
    same ``dir``, ``name``, ``dimension``, ``fingerprint``, :meth:`describe` and
    :meth:`encode` as :class:`memos_cli.models.embedder.Embedder`.

    Raises (:meth:`open`):
        FileNotFoundError: no usable export (then use the torch encoder).
    """

    def __init__(self, model_dir: Path, name: str, where: Path, fingerprint: str,
                 dimension: int) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.dir, self.name = model_dir, name
        self.fingerprint = fingerprint
        self.dimension = dimension
        self.device = "cpu"
        self._tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tok.enable_truncation(max_length=MAX_TOKENS)
        self._tok.no_padding()
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(str(where / "model.onnx"), opts,
                                             providers=["CPUExecutionProvider"])

    @classmethod
    def open(cls, model_dir: Path, name: str) -> OnnxEmbedder:
        """The checked export of ``model_dir``'s encoder.

        Raises:
            FileNotFoundError: there is none, or its check failed.
        """
        where = cache_dir(model_dir)
        try:
            meta = strictjson.loads(read_small(where / "meta.json")) if where else {}
        except ValueError as e:
            raise FileNotFoundError("the ONNX export's meta.json is unreadable") from e
        if where is None or not isinstance(meta, dict) or meta.get("format") != FORMAT or \
                not meta.get("ok"):
            raise FileNotFoundError("no checked ONNX export of this embedder")
        return cls(model_dir, name, where, str(meta["fingerprint"]), int(meta["dimension"]))

    def describe(self) -> dict[str, Any]:
        return describe(self.name, self.dimension, self.fingerprint)

    def encode(self, texts: Sequence[str], *, batch_size: int = 64,
               progress: Callable[[int], None] | None = None) -> np.ndarray:
        """``[len(texts), dimension] float32`` unit vectors, one text at a time (no padding:
        a query is one text)."""
        out = np.zeros((len(texts), self.dimension), np.float32)
        for i, text in enumerate(texts):
            enc = self._tok.encode(text[:MAX_CHARS])
            ids = np.asarray([enc.ids], np.int64)
            mask = np.asarray([enc.attention_mask], np.int64)
            hidden = self._session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            pooled = (hidden * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True),
                                                                    1e-9)
            out[i] = pooled[0] / max(float(np.linalg.norm(pooled[0])), 1e-12)
            if progress is not None:
                progress(1)
        return out


def export(embedder: Any) -> bool:
    """Export the loaded torch ``embedder`` (:class:`~memos_cli.models.embedder.Embedder`) to
    ONNX, check it against the torch vectors on :data:`CHECK_TEXTS`, and keep it (atomically)
    with the outcome; whether it may be used. Never raises: when the exporter or the check
    fails the outcome is kept as not usable (so later searches do not try again), and without
    the ``onnx`` and ``onnxruntime`` packages nothing is kept; searches go on with torch."""
    import importlib.util

    if importlib.util.find_spec("onnx") is None or \
            importlib.util.find_spec("onnxruntime") is None:
        return False

    model_dir = Path(embedder.dir)
    fp = embedder.fingerprint
    root = home() / "onnx"
    final = root / fp.removeprefix("sha256:")[:16]
    tmp = root / f".{final.name}.{uuid.uuid4().hex[:8]}.tmp"
    meta: dict[str, Any] = {"format": FORMAT, "fingerprint": fp,
                            "dimension": embedder.dimension, "ok": False}
    try:
        tmp.mkdir(parents=True)
        try:
            _export_model(embedder, tmp / "model.onnx")
            meta = _check(embedder, tmp, meta)
        except Exception as e:  # the exporter raises many kinds; torch is still there
            import logging

            logging.getLogger("memos").info("ONNX export of the embedder failed: %s", e)
            meta["error"] = str(e).strip().splitlines()[0][:300] if str(e) else type(e).__name__
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
        _remember(model_dir, final)
        return bool(meta["ok"])
    except OSError:  # a cache that cannot be written: nothing kept, torch goes on
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _export_model(embedder: Any, path: Path) -> None:
    import contextlib
    import io
    import warnings

    import torch

    model = embedder._model

    class LastHidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.m(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=torch.zeros_like(input_ids)).last_hidden_state

    sample = embedder._tok(["a query", "another, longer query"], padding=True,
                           return_tensors="pt")
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
            "last_hidden_state": {0: "batch", 1: "tokens"}}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(LastHidden().eval(), (sample["input_ids"], sample["attention_mask"]),
                          str(path), input_names=["input_ids", "attention_mask"],
                          output_names=["last_hidden_state"], dynamic_axes=axes,
                          opset_version=17, dynamo=False)


def _check(embedder: Any, where: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` with the largest difference of the export's vectors from torch's and ``ok``."""
    model_dir = Path(embedder.dir)
    probe = OnnxEmbedder(model_dir, embedder.name, where, meta["fingerprint"],
                         embedder.dimension)
    diff = float(np.abs(probe.encode(CHECK_TEXTS) - embedder.encode(CHECK_TEXTS)).max())
    return {**meta, "max_abs_diff": diff, "ok": diff <= TOLERANCE}


def query_embedder(model_dir: Path | None) -> Any:
    """The encoder a one-shot search embeds its query with: the checked ONNX export when there
    is one, else the torch :class:`~memos_cli.models.embedder.Embedder`, which then makes the
    export for the next search.

    Raises:
        ModelNotFoundError: as the torch encoder's constructor.
    """
    where, name = resolve_dir(model_dir)
    check_model_dir(where, "embedder")
    if os.environ.get("MEMOS_NO_ONNX") != "1":
        try:
            return OnnxEmbedder.open(where, name)
        except (FileNotFoundError, ImportError, OSError, ValueError, KeyError):
            pass
    enc = Embedder(model_dir)
    if os.environ.get("MEMOS_NO_ONNX") != "1" and (where / "tokenizer.json").is_file() and \
            cache_dir(where) is None:
        export(enc)
    return enc

