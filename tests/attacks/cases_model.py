"""Hostile model directories (spec §6.4): the tiny model copied and changed to carry custom
code, pickled weights, JSON that breaks parsers, links out of the directory, special files,
and damaged GGUF files. Each is tried as the chat model (``run --model``) and as the encoder
(``pack --embedder``), with ``y`` on stdin, which transformers takes as consent to run a
model's code when ``trust_remote_code`` is not given."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.attacks.cases_cube import Payload, deep
from tests.attacks.corpus import SENTINEL, Base, Case

EVIL = ("from pathlib import Path\n"
        "Path(__file__).resolve().parents[1].joinpath('PWNED').write_text('ran')\n"
        "from transformers import LlamaForCausalLM as EvilModel, LlamaConfig as EvilConfig\n"
        "from transformers import PreTrainedTokenizerFast as EvilTokenizer\n")


def model_copy(work: Path, base: Base) -> Path:
    d = work / "model"
    shutil.copytree(base.model, d)
    return d


def edit_json(d: Path, name: str, change: Callable[[dict[str, Any]], Any]) -> None:
    data = json.loads((d / name).read_text())
    out = change(data)
    (d / name).write_text(out if isinstance(out, str) else json.dumps(out))


def model_case(name: str, make: Callable[[Path, Path], None], expect: str = "refuse"
               ) -> Case:
    def build(work: Path, base: Base) -> Path:
        d = model_copy(work, base)
        make(d, work)
        return d
    return Case(f"model_{name}", "model", build, expect)


def json_case(name: str, file: str, change: Callable[[dict[str, Any]], Any]) -> Case:
    return model_case(name, lambda d, w: edit_json(d, file, change))


def _code(file: str, key: str, cls: str, sub: str | None = None) -> Callable[[Path, Path],
                                                                             None]:
    def make(d: Path, work: Path) -> None:
        (d / "evil.py").write_text(EVIL)

        def change(c: dict[str, Any]) -> dict[str, Any]:
            where = c.setdefault(sub, {}) if sub else c
            where["auto_map"] = {key: f"evil.{cls}"}
            return c
        edit_json(d, file, change)
    return make


def _pickled_only(d: Path, work: Path) -> None:
    (d / "model.safetensors").unlink()
    (d / "pytorch_model.bin").write_bytes(pickle.dumps(Payload(work / SENTINEL)))


def _pickled_beside(d: Path, work: Path) -> None:
    (d / "pytorch_model.bin").write_bytes(pickle.dumps(Payload(work / SENTINEL)))


def _link(name: str, to_dir: bool = False) -> Callable[[Path, Path], None]:
    def make(d: Path, work: Path) -> None:
        outside = work / "outside"
        outside.mkdir(exist_ok=True)
        target = outside / name
        if not to_dir:
            shutil.copy(d / name, target)
        (d / name).unlink()
        os.symlink(outside if to_dir else target, d / name)
    return make


def _replace(name: str, make_it: Callable[[Path], None]) -> Callable[[Path, Path], None]:
    def make(d: Path, work: Path) -> None:
        (d / name).unlink()
        make_it(d / name)
    return make


def _safetensors(header: bytes, length: int | None = None) -> Callable[[Path], None]:
    def write(p: Path) -> None:
        n = len(header) if length is None else length
        p.write_bytes(struct.pack("<Q", n) + header)
    return write


def _gguf(data: bytes) -> Callable[[Path, Base], Path]:
    def build(work: Path, base: Base) -> Path:
        p = work / "model.gguf"
        p.write_bytes(data)
        return p
    return build


CASES: list[Case] = [
    model_case("auto_map_config", _code("config.json", "AutoModelForCausalLM", "EvilModel")),
    model_case("auto_map_model", _code("config.json", "AutoModel", "EvilModel")),
    model_case("auto_map_config_class", _code("config.json", "AutoConfig", "EvilConfig")),
    model_case("auto_map_tokenizer", _code("tokenizer_config.json", "AutoTokenizer",
                                           "EvilTokenizer")),
    model_case("auto_map_sub_config", _code("config.json", "AutoModel", "EvilModel",
                                            sub="text_config")),
    model_case("pickled_weights_only", _pickled_only),
    model_case("pickled_beside_safetensors", _pickled_beside, expect="any"),
    json_case("config_list", "config.json", lambda c: [c]),
    json_case("config_not_json", "config.json", lambda c: "{model_type: llama"),
    json_case("config_deep", "config.json", lambda c: '{"a": ' + deep(50_000) + "}"),
    json_case("config_deep_200", "config.json", lambda c: '{"a": ' + deep(200) + "}"),
    json_case("config_nan", "config.json", lambda c: json.dumps(c)[:-1] + ', "x": NaN}'),
    json_case("config_duplicate_key", "config.json",
              lambda c: json.dumps(c)[:-1] + ', "model_type": "bert"}'),
    json_case("config_bigint", "config.json",
              lambda c: json.dumps(c)[:-1] + ', "x": ' + "9" * 5000 + "}"),
    json_case("config_unknown_type", "config.json", lambda c: {**c, "model_type": "evil"}),
    json_case("config_no_type", "config.json",
              lambda c: {k: v for k, v in c.items() if k != "model_type"}),
    json_case("config_huge_hidden", "config.json", lambda c: {**c, "hidden_size": 10 ** 9}),
    json_case("config_negative_vocab", "config.json", lambda c: {**c, "vocab_size": -5}),
    json_case("config_string_layers", "config.json",
              lambda c: {**c, "num_hidden_layers": "two"}),
    json_case("tokenizer_deep", "tokenizer.json", lambda c: '{"a": ' + deep(50_000) + "}"),
    json_case("tokenizer_deep_300", "tokenizer.json", lambda c: '{"a": ' + deep(300) + "}"),
    json_case("tokenizer_garbage", "tokenizer.json", lambda c: {"model": 5}),
    # transformers falls back to the tokenizer.json it can read: may be accepted
    model_case("tokenizer_config_class", lambda d, w: edit_json(
        d, "tokenizer_config.json", lambda c: {**c, "tokenizer_class": "EvilTokenizer"}),
        expect="any"),
    model_case("config_link_out", _link("config.json")),
    model_case("weights_link_out", _link("model.safetensors")),
    model_case("tokenizer_link_etc", lambda d, w: (os.unlink(d / "tokenizer.json"),
                                                   os.symlink("/etc/passwd",
                                                              d / "tokenizer.json"))),
    model_case("config_fifo", _replace("config.json", lambda p: os.mkfifo(p))),
    model_case("tokenizer_fifo", _replace("tokenizer.json", lambda p: os.mkfifo(p))),
    model_case("tokenizer_dir", _replace("tokenizer.json", lambda p: p.mkdir())),
    model_case("config_dangling", _replace("config.json",
                                           lambda p: os.symlink(p.parent / "gone", p))),
    model_case("weights_header_garbage", _replace("model.safetensors",
                                                  _safetensors(b"{not json"))),
    model_case("weights_header_huge", _replace("model.safetensors",
                                               _safetensors(b"{}", 1 << 60))),
    model_case("weights_header_deep", _replace("model.safetensors",
                                               _safetensors(deep(50_000).encode()))),
    model_case("weights_empty", _replace("model.safetensors", lambda p: p.write_bytes(b""))),
    model_case("weights_wrong_shapes", _replace("model.safetensors", _safetensors(
        json.dumps({"model.embed_tokens.weight": {"dtype": "F32", "shape": [1, 1],
                                                  "data_offsets": [0, 4]}}).encode()
        + b"\0\0\0\0"))),
    Case("model_gguf_garbage", "model", _gguf(b"GGUF" + os.urandom(64))),
    Case("model_gguf_empty", "model", _gguf(b"")),
    Case("model_gguf_counts", "model", _gguf(b"GGUF" + struct.pack("<IQQ", 3, 1 << 60,
                                                                     1 << 60))),
]
