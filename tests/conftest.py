"""Shared fixtures: an isolated MEMOS_HOME, the real embedder, a packed signed cube, and a tiny
random Llama (with a tokenizer trained here) for fast model tests."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from memos_cli.cli.app import app

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
CORPUS = FIXTURES / "corpus"
SHARED = Path(os.environ.get("MEMOS_SHARED", ROOT.parent / "shared")) / "datasets"
FIXED_TIME = datetime(2026, 3, 14, 12, 0, tzinfo=timezone.utc)


def invoke(*args: object, code: int = 0, input: str | None = None) -> Result:
    """``memos ARGS`` run in this process (Typer's ``CliRunner``), its exit status checked
    against ``code``; ``input``: what it reads on stdin."""
    r = CliRunner().invoke(app, [str(a) for a in args], input=input)
    assert r.exit_code == code, (r.exit_code, r.output, r.exception)
    return r


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-goldens", action="store_true",
                     help="Rewrite the golden files in fixtures/golden from the current code.")


@pytest.fixture
def update_goldens(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-goldens"))


@pytest.fixture(autouse=True)
def memos_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets MEMOS_HOME in a shared temp dir (the GGUF conversion cache is kept
    across tests of one session) and MEMOS_USER=tester."""
    home = tmp_path_factory.getbasetemp() / "memos-home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("MEMOS_HOME", str(home))
    monkeypatch.setenv("MEMOS_USER", "tester")
    return home


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED} (set MEMOS_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def embedder():  # type: ignore[no-untyped-def]
    from memos_cli.models.embedder import Embedder

    return Embedder()


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from memos_cli.cube import generate_keypair

    return generate_keypair(tmp_path_factory.mktemp("keys") / "team")


@pytest.fixture(scope="session")
def other_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from memos_cli.cube import generate_keypair

    return generate_keypair(tmp_path_factory.mktemp("keys2") / "other")


def pack_corpus(out: Path, embedder, key: Path | None = None, **kw):  # type: ignore[no-untyped-def]
    """Pack fixtures/corpus (paths shown relative to the repo root) at a fixed time."""
    from memos_cli.lifecycle.pack import pack
    from memos_cli.sources import Defaults

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        return pack(["fixtures/corpus"], out, embedder=embedder,
                    defaults=Defaults(now=FIXED_TIME, owner="tester"), key=key, **kw)
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="session")
def packed_cube(tmp_path_factory: pytest.TempPathFactory, embedder, keys) -> Path:  # type: ignore[no-untyped-def]
    """A signed cube of fixtures/corpus. Read-only: copy it (``cube_copy``) to change it."""
    out = tmp_path_factory.mktemp("packed") / "team.memcube"
    pack_corpus(out, embedder, key=keys[0])
    return out


@pytest.fixture
def cube_copy(packed_cube: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "team.memcube"
    shutil.copytree(packed_cube, dst)
    return dst


def tiny_tokenizer(vocab: int = 2000):  # type: ignore[no-untyped-def]
    """A word-level tokenizer trained on the fixture corpus, with a ChatML template."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<unk>", "<|im_start|>", "<|im_end|>"]
    tk = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    texts = [p.read_text("utf-8") for p in sorted(CORPUS.rglob("*")) if p.is_file()]
    texts.append("system user assistant You are a helpful memory answer question")
    tk.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=special,
                                                            vocab_size=vocab))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>",
                                  bos_token="<|im_start|>", eos_token="<|im_end|>",
                                  pad_token="<|im_end|>")
    tok.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    return tok


def make_tiny_llama(out: Path, *, seed: int = 0, layers: int = 2, vocab: int = 2000) -> Path:
    """Save a randomly initialised Llama (hidden 64, 4 heads, 2 KV heads) with a word-level
    tokenizer trained on the fixture corpus and a ChatML template to ``out``."""
    return make_tiny_model(out, "llama", seed=seed, layers=layers, vocab=vocab,
                           max_position_embeddings=2048, tie_word_embeddings=True)


def make_tiny_model(out: Path, family: str, *, seed: int = 0, layers: int = 2,
                    vocab: int = 2000, **config) -> Path:  # type: ignore[no-untyped-def]
    """Save a randomly initialised model of ``family`` (``AutoConfig.for_model``: hidden 64,
    4 heads, 2 KV heads, ``config`` on top) with :func:`tiny_tokenizer` to ``out``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    tok = tiny_tokenizer(vocab)
    tok.save_pretrained(out)
    torch.manual_seed(seed)
    kw = {"vocab_size": len(tok), "hidden_size": 64, "intermediate_size": 128,
          "num_hidden_layers": layers, "num_attention_heads": 4, "num_key_value_heads": 2,
          "max_position_embeddings": 1024, "bos_token_id": tok.bos_token_id,
          "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id, **config}
    cfg = AutoConfig.for_model(family, **kw)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama model directory (see :func:`make_tiny_llama`)."""
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def read_json(path: Path):  # type: ignore[no-untyped-def]
    return json.loads(Path(path).read_text("utf-8"))
