"""The model readers on the real default model (SmolLM2-135M-Instruct) and a real LoCoMo
session: what they write, what the manifest records, and the budget."""

import json
from pathlib import Path

import pytest

from memos_cli.cube import open_cube, verify
from memos_cli.digest import json_sha256
from memos_cli.memory import derived_from, derived_reader
from tests.cli.test_cli import as_json

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def session(shared_datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 20 turns of LoCoMo conversation 30, as a LoCoMo file of their own."""
    data = json.loads((shared_datasets / "locomo" / "30.json").read_text())
    keep = {k: data[k] for k in ("speaker_a", "speaker_b", "session_1", "session_1_date_time")}
    keep["session_1"] = keep["session_1"][:20]
    path = tmp_path_factory.mktemp("session") / "30-s1.json"
    path.write_text(json.dumps(keep))
    return path


def test_questions_and_facts_on_the_default_model(session: Path, tmp_path: Path) -> None:
    cube = tmp_path / "s.memcube"
    report = as_json("pack", session, "-o", cube, "--reader", "questions,facts")
    q, f = report["readers"]
    turns = report["memories"] - f["derived_memories"]
    assert q["index_rows"] + q["unparsed"] == turns  # every turn accounted for
    assert f["derived_memories"] > 0 and f["not_reached"] == 0
    c = open_cube(cube)
    rec = {r["name"]: r for r in c.manifest.readers}
    model = rec["questions"]["model"]
    assert model["name"].startswith("SmolLM2-135M")
    assert model["model_fingerprint_sha256"] == json_sha256(model["fingerprint"])
    derived = [m for m in c.memories if derived_reader(m) == "facts"]
    assert len(derived) == f["derived_memories"]
    for m in derived:  # grounded in turns of the cube, never a turn itself
        assert m.origin == "inference" and m.speaker is None
        assert all(c.by_id[i].semantic_type == "dialog_turn" for i in derived_from(m))
    assert verify(cube).memories == report["memories"]
    assert c.index().reader_rows()[0].get("questions", 0) == q["index_rows"]


def test_a_token_budget_stops_the_readers_and_counts_the_rest(session: Path,
                                                              tmp_path: Path) -> None:
    cube = tmp_path / "b.memcube"
    report = as_json("pack", session, "-o", cube, "--reader", "questions",
                     "--reader-budget", "50tok")
    q = report["readers"][0]
    n = report["memories"]  # 20 turns: the first batch of 16 runs, the budget stops the rest
    assert (q["index_rows"] + q["unparsed"], q["not_reached"]) == (16, n - 16)
    assert verify(cube).memories == report["memories"]


def test_the_default_model_writes_questions_and_the_filter_keeps_fewer(session: Path,
                                                                         embedder) -> None:
    from datetime import datetime, timezone

    from memos_cli.models.chat import load
    from memos_cli.readers import Budget, questions
    from memos_cli.sources import Defaults, read_sources

    mems = read_sources([session], Defaults(now=datetime(2026, 1, 1, tzinfo=timezone.utc))
                        ).results[0].memories
    chat = load(None)
    raw = questions.read(mems, chat, Budget())  # no embedder: no relevance check
    assert len(raw.rows) >= len(mems) // 2  # the few-shot prompt gives questions
    assert all(t.endswith("?") for _, t in raw.rows)
    kept = questions.read(mems, chat, Budget(), embedder=embedder)
    assert len(kept.rows) <= len(raw.rows) and kept.options["min_relevance"] == 0.6
