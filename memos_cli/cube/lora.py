"""The parameter tier on disk: ``lora/`` (spec/memcube.md §11).

``lora/adapter_config.json`` and ``lora/adapter_model.safetensors`` are PEFT's own files, so
``PeftModel.from_pretrained(base, "team.memcube/lora")`` loads them unchanged. Beside them
``memcube_lora.json`` records the base-model fingerprint, the recipe, seed, library versions,
the memories trained on, training time and the eval at build time, and ``memories.arrow`` keeps
the memories themselves (the §4 schema) so that a LoRA-only cube can give its plaintext back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memos_cli.cube.layout import atomic_write_bytes
from memos_cli.cube.memories import read_memories
from memos_cli.digest import sha256_file
from memos_cli.errors import FormatError, IntegrityError

if TYPE_CHECKING:
    from memos_cli.cube.cube import Cube
    from memos_cli.memory import Memory

CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"
META = "memcube_lora.json"
MEMORIES = "memories.arrow"
FILES = (CONFIG, WEIGHTS, META, MEMORIES)
#: Marker and version of ``memcube_lora.json``.
META_VERSION = "1"
MAX_ADAPTER_BYTES = 4 << 30
META_KEYS = ("memcube.lora", "model", "model_fingerprint", "recipe", "seed", "versions",
             "memories", "training", "eval")


def write_meta(directory: Path, meta: dict[str, Any]) -> None:
    """Write ``memcube_lora.json`` (UTF-8, 2-space indent) atomically."""
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise ValueError(f"LoRA metadata lacks {missing}")
    text = json.dumps(meta, indent=2, ensure_ascii=False) + "\n"
    atomic_write_bytes(directory / META, text.encode("utf-8"))


def read_meta(directory: Path) -> dict[str, Any]:
    """Read and check ``lora/memcube_lora.json``.

    Raises:
        FormatError: missing, not JSON, another version, or lacking a key (named).
    """
    path = directory / META
    data = _read_json(path, "LoRA metadata")
    if not isinstance(data, dict) or data.get("memcube.lora") != META_VERSION:
        raise FormatError(f"not memos LoRA metadata version {META_VERSION}", path=path)
    missing = [k for k in META_KEYS if k not in data]
    if missing:
        raise FormatError(f"LoRA metadata lacks {', '.join(missing)}", path=path)
    return data


def check_adapter(directory: Path) -> dict[str, Any]:
    """Check PEFT's two files before any tensor reaches a model; return the adapter config.

    The config must be a LoRA config naming ``r`` and ``target_modules``; the weights file must
    be a readable safetensors file (at most 4 GiB) whose tensors are all ``lora_A``/``lora_B``
    matrices of rank ``r``, float32, bfloat16 or float16.

    Raises:
        FormatError: naming the file and the problem.
    """
    cfg_path, w_path = directory / CONFIG, directory / WEIGHTS
    cfg = _read_json(cfg_path, "adapter config")
    if not isinstance(cfg, dict) or cfg.get("peft_type") != "LORA" or not isinstance(
            cfg.get("r"), int) or not cfg.get("target_modules"):
        raise FormatError("not a PEFT LoRA adapter config (peft_type LORA, r, "
                          "target_modules)", path=cfg_path)
    if not w_path.is_file():
        raise FormatError("adapter weights are missing", path=w_path)
    if w_path.stat().st_size > MAX_ADAPTER_BYTES:
        raise FormatError(f"adapter weights exceed {MAX_ADAPTER_BYTES} bytes", path=w_path)
    from safetensors import SafetensorError, safe_open

    rank = cfg["r"]
    try:
        with safe_open(str(w_path), framework="pt") as f:
            names = list(f.keys())
            for name in names:
                sl = f.get_slice(name)
                shape, dtype = sl.get_shape(), sl.get_dtype()
                if dtype not in ("F32", "BF16", "F16") or len(shape) != 2:
                    raise FormatError(f"tensor {name} is {dtype} {shape}, not a float matrix",
                                      path=w_path)
                if (name.endswith("lora_A.weight") and shape[0] != rank) or \
                        (name.endswith("lora_B.weight") and shape[1] != rank):
                    raise FormatError(f"tensor {name} of shape {shape} is not of rank {rank}",
                                      path=w_path)
                if not name.endswith(("lora_A.weight", "lora_B.weight")):
                    raise FormatError(f"tensor {name} is not a LoRA matrix", path=w_path)
    except SafetensorError as e:
        raise FormatError(f"adapter weights are not a readable safetensors file: {e}",
                          path=w_path) from e
    except OSError as e:
        raise FormatError(f"cannot read adapter weights: {e}", path=w_path) from e
    if not names:
        raise FormatError("adapter weights hold no tensor", path=w_path)
    return cfg


def _read_json(path: Path, what: str) -> Any:
    """Parse a small JSON file of the tier. Raises ``FormatError`` naming ``what``."""
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError as e:
        raise FormatError(f"{what} is missing", path=path) from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"{what} is not valid JSON: {e}", path=path) from e


def file_entries(cube_dir: Path, rel_dir: str) -> list[dict[str, Any]]:
    """The manifest's ``lora.files``: path, digest and size of each file of the tier."""
    return [{"path": f"{rel_dir}/{name}", "sha256": sha256_file(cube_dir / rel_dir / name),
             "size": (cube_dir / rel_dir / name).stat().st_size} for name in FILES]


def lora_memories(cube: Cube) -> list[Memory]:
    """The memories kept beside the adapter, checked against the metadata's ids and hashes."""
    directory = cube.lora_dir
    memories = read_memories(directory / MEMORIES)  # checks every content hash
    recorded = [(r["id"], r["content_hash"]) for r in read_meta(directory)["memories"]]
    if [(m.id, m.content_hash) for m in memories] != recorded:
        raise IntegrityError("memories do not match the ids and hashes the adapter was "
                             "trained on", path=directory / MEMORIES)
    return memories
