"""What memos checks in a model directory before transformers sees it (spec/memcube.md §6.4):
a model directory is data, never code.

- No custom code: a ``config.json`` or ``tokenizer_config.json`` whose ``auto_map`` names
  Python classes is refused. Every load also passes ``trust_remote_code=False``, so even a
  file this check does not read cannot make transformers ask on stdin (and run the code on
  ``y``).
- No pickles: weights must be safetensors. A directory whose only weights are pickled
  (``pytorch_model.bin``, ``*.pt``, ``*.ckpt``...) is refused; every load passes
  ``use_safetensors=True``.
- JSON memos can read: every JSON file transformers reads is a regular file of at most
  :data:`MAX_JSON_BYTES`, strict JSON (:mod:`memos_cli.strictjson`) nested at most
  :data:`MAX_DEPTH` deep (the tokenizers library stops at 128), and an object (an array
  for sentence-transformers' ``modules.json``).
- Nothing outside: a symbolic link in the directory must resolve inside it or, for a Hugging
  Face cache snapshot (``models--OWNER--NAME/snapshots/REV``), inside its ``models--`` folder,
  where the cache keeps the files the snapshot links to.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from memos_cli import strictjson
from memos_cli.errors import ModelNotFoundError

#: The JSON files transformers and tokenizers read from a model directory.
JSON_FILES = ("config.json", "tokenizer_config.json", "tokenizer.json",
              "generation_config.json", "special_tokens_map.json", "added_tokens.json",
              "model.safetensors.index.json", "sentence_bert_config.json",
              "config_sentence_transformers.json", "modules.json")
MAX_JSON_BYTES = 128 << 20
MAX_DEPTH = 64
PICKLED = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
#: The keyword arguments every ``from_pretrained`` call of memos passes.
SAFE_LOAD: dict[str, Any] = {"trust_remote_code": False, "local_files_only": True}


def first_line(error: BaseException) -> str:
    """The first line of a library's error message, at most 200 characters."""
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:200]


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > MAX_DEPTH:
            return deepest
        if isinstance(v, dict):
            stack += [(x, d + 1) for x in v.values()]
        elif isinstance(v, list):
            stack += [(x, d + 1) for x in v]
    return deepest


def _home(root: Path) -> Path:
    """Where links in ``root`` may point: ``root``, or the ``models--*`` folder of a Hugging
    Face cache snapshot."""
    real = root.resolve()
    if real.parent.name == "snapshots" and real.parent.parent.name.startswith("models--"):
        return real.parent.parent
    return real


def _read_json(path: Path, what: str) -> Any:
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise ModelNotFoundError(f"{what}: {path.name} is not a regular file", path=path)
    if st.st_size > MAX_JSON_BYTES:
        raise ModelNotFoundError(f"{what}: {path.name} is over {MAX_JSON_BYTES >> 20} MiB",
                                 path=path)
    try:
        data = strictjson.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelNotFoundError(f"{what}: {path.name} is not JSON memos can read: "
                                 f"{str(e)[:160]}", path=path) from e
    if not isinstance(data, list if path.name == "modules.json" else dict):
        raise ModelNotFoundError(f"{what}: {path.name} is not a JSON "
                                 f"{'array' if path.name == 'modules.json' else 'object'}",
                                 path=path)
    if _depth(data) > MAX_DEPTH:
        raise ModelNotFoundError(f"{what}: {path.name} is nested more than {MAX_DEPTH} deep",
                                 path=path)
    return data


def _code(data: dict[str, Any]) -> bool:
    """Whether a config names custom code: ``auto_map`` at the top or in a sub-config."""
    return "auto_map" in data or any(isinstance(v, dict) and "auto_map" in v
                                     for v in data.values())


def check_model_dir(root: Path, what: str = "model") -> None:
    """Refuse a model directory memos must not hand to transformers (module docstring).

    Raises:
        ModelNotFoundError: not a directory; a link leading outside it; a JSON file that is
            not a small, shallow, strict JSON object; custom code (``auto_map``); only pickled
            weights.
    """
    if not root.is_dir():
        raise ModelNotFoundError(f"{what} is not a directory", path=root)
    home = _home(root)
    names = []
    with os.scandir(root) as it:
        for entry in it:
            names.append(entry.name)
            if entry.is_symlink():
                target = Path(entry.path).resolve()
                if not target.is_relative_to(home):
                    raise ModelNotFoundError(f"{what}: {entry.name} is a link to outside the "
                                             "model directory", path=root)
    for name in JSON_FILES:
        p = root / name
        if not os.path.lexists(p):
            continue
        if not p.exists():
            raise ModelNotFoundError(f"{what}: {name} is a dangling link", path=root)
        data = _read_json(p, what)
        if name in ("config.json", "tokenizer_config.json") and _code(data):
            raise ModelNotFoundError(
                f"{what}: {name} names custom code (auto_map); memos never runs a model's "
                "code: use a model that transformers supports natively", path=root)
    weights = [n for n in names if n.endswith(".safetensors") or n.endswith(".gguf")]
    pickled = [n for n in names if n.endswith(PICKLED) and not n.startswith("training_args")]
    if pickled and not weights:
        raise ModelNotFoundError(f"{what}: its weights are pickled ({sorted(pickled)[0]}); "
                                 "memos loads only safetensors weights, which cannot run code",
                                 path=root)
