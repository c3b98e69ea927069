"""Model resolution and the GGUF -> safetensors cache (real default model)."""

from pathlib import Path

import pytest

from memos_cli.errors import ModelNotFoundError
from memos_cli.models import chat


def test_default_model_is_the_packaged_gguf() -> None:
    ref = chat.resolve(None)
    assert ref.kind == "gguf" and ref.path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_non_gguf_file_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "model.bin"
    p.write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match=r"must be \.gguf"):
        chat.resolve(str(p))


def test_directory_without_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"no config\.json"):
        chat.resolve(str(tmp_path))
