"""Importers for other memory systems, on files those systems wrote (../shared/datasets) and,
for mem0 (no sample there), on a file built from its documented get_all fields."""

import json
import pickle
from datetime import datetime, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memos_cli.cli.app import app
from memos_cli.errors import SourceError
from memos_cli.sources import Defaults, read_source, read_sources
from tests.conftest import FIXED_TIME

D = Defaults(now=FIXED_TIME, owner="importer")


@pytest.fixture
def no_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*a, **k):  # type: ignore[no-untyped-def]
        raise AssertionError("something tried to unpickle")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)


def test_memos_general_text_cube(shared_datasets: Path, no_unpickling: None) -> None:
    got = read_sources([shared_datasets / "memos" / "mem_cube_2"], D)
    (res,) = got.results
    assert res.format == "memos" and len(res.memories) == 2
    eiffel = next(m for m in res.memories if "Eiffel" in m.content)
    assert eiffel.content == "The user loves the Eiffel Tower."
    assert eiffel.semantic_type == "preference" and eiffel.owner == "user_123"
    assert eiffel.event_time == datetime(2025, 6, 3, tzinfo=timezone.utc)
    assert "landmarks" in eiffel.tags and eiffel.origin == "import"
    assert eiffel.extra["memos_id"] == "a18c2ce3-7824-41de-9f67-e6ef9d7c66e7"
    assert eiffel.extra["entities"] == ["Eiffel Tower"] and eiffel.extra["confidence"] == 100.0
    assert "vector" not in eiffel.extra
    notes = " ".join(res.notes)
    assert "refused activation_memory.pickle" in notes and "never unpickles" in notes
    assert res.sha256.startswith("sha256:") and res.size > 0


def test_memos_tree_text_cube(tmp_path: Path) -> None:
    cube = tmp_path / "tree_cube"
    cube.mkdir()
    (cube / "config.json").write_text(json.dumps({
        "model_schema": "memos.configs.mem_cube.GeneralMemCubeConfig",
        "text_mem": {"backend": "tree_text", "config": {"memory_filename": "tree.json"}}}))
    (cube / "tree.json").write_text(json.dumps({
        "nodes": [{"id": "n1", "memory": "Ann moved to Oslo.", "metadata": {
            "type": "fact", "memory_time": "2024-01-02", "user_id": "ann", "key": "move"}},
                  {"id": "n2", "memory": "Ann likes skiing.", "metadata": {"type": "opinion"}}],
        "edges": [{"source": "n1", "target": "n2", "type": "RELATE"}]}))
    (res,) = read_sources([cube], D).results
    a, b = res.memories
    assert (a.content, a.owner, a.extra["key"]) == ("Ann moved to Oslo.", "ann", "move")
    assert a.extra["edges"] == [{"source": "n1", "target": "n2", "type": "RELATE"}]
    assert b.semantic_type == "preference" and b.owner == "importer"
    assert "mapped 2 tree_text memories" in res.notes


def test_memos_cube_with_escaping_memory_file(tmp_path: Path) -> None:
    cube = tmp_path / "bad_cube"
    cube.mkdir()
    (cube / "config.json").write_text(json.dumps({
        "model_schema": "memos.configs.mem_cube.GeneralMemCubeConfig",
        "text_mem": {"config": {"memory_filename": "../../etc/passwd"}}}))
    with pytest.raises(SourceError, match="points outside the cube"):
        read_sources([cube], D)


@pytest.mark.parametrize("name", ["memgpt_agent_with_convo.af", "customer_service.af",
                                  "memgpt_agent.af", "deep_research_agent.af"])
def test_letta_agent_files(shared_datasets: Path, name: str) -> None:
    path = shared_datasets / "letta" / name
    res = read_source(path, name, D)
    raw = json.loads(path.read_text())
    data = json.loads(raw) if isinstance(raw, str) else raw  # some exports are double-encoded
    blocks = [b for b in data["blocks"] if b.get("value", "").strip()]
    block_mems = [m for m in res.memories if m.section is not None]
    assert sorted(m.section for m in block_mems) == sorted(b["label"] for b in blocks)
    assert any("skipped" in n and "tools" in n for n in res.notes) == bool(data.get("tools"))
    for m in block_mems:
        original = next(b for b in blocks if b["label"] == m.section)
        assert m.content == original["value"].strip()
        assert m.extra["id"] == original["id"]


def test_letta_human_block(shared_datasets: Path) -> None:
    res = read_source(shared_datasets / "letta" / "memgpt_agent_with_convo.af", "a.af", D)
    human = next(m for m in res.memories if m.section == "human")
    assert "First name: Chad" in human.content and human.semantic_type == "fact"
    persona = next(m for m in res.memories if m.section == "persona")
    assert persona.semantic_type == "task_prompt"
    system = [m for m in res.memories if m.speaker == "system"]
    assert system and system[0].semantic_type == "task_prompt"


MEM0_ITEMS = [
    {"id": "892db2ae-06d9-49e5-8b3e-585ef9b85b8e", "memory": "Likes to play cricket on weekends",
     "hash": "285d07801ae42054732314853e9eadd7", "metadata": {"source": "chat"},
     "user_id": "alice", "agent_id": None, "run_id": "run-1", "categories": ["hobbies"],
     "created_at": "2024-07-26T10:29:36.630547-07:00", "updated_at": None},
    {"id": "a1b2c3", "memory": "Is allergic to peanuts", "hash": "e3b0c442",
     "metadata": None, "user_id": "alice", "agent_id": "health-bot",
     "created_at": "2024-07-27T08:00:00Z", "updated_at": "2024-07-28T09:00:00Z"},
]


@pytest.mark.parametrize("wrap", [True, False])
def test_mem0_export(tmp_path: Path, wrap: bool) -> None:
    p = tmp_path / "mem0.json"
    p.write_text(json.dumps({"results": MEM0_ITEMS} if wrap else MEM0_ITEMS))
    res = read_source(p, "mem0.json", D)
    assert res.format == "mem0"
    cricket, peanuts = res.memories
    assert cricket.id == "892db2ae-06d9-49e5-8b3e-585ef9b85b8e" and cricket.owner == "alice"
    assert cricket.conversation_id == "run-1" and cricket.tags == ("hobbies",)
    assert cricket.extra == {"hash": "285d07801ae42054732314853e9eadd7",
                             "metadata": {"source": "chat"}}
    assert cricket.created_at == datetime(2024, 7, 26, 17, 29, 36, 630547, tzinfo=timezone.utc)
    assert peanuts.extra["agent_id"] == "health-bot"
    assert peanuts.updated_at == datetime(2024, 7, 28, 9, tzinfo=timezone.utc)


def test_import_command_prints_mapping(shared_datasets: Path, tmp_path: Path) -> None:
    out = tmp_path / "imported.memcube"
    res = CliRunner().invoke(app, ["import", str(shared_datasets / "memos" / "mem_cube_2"),
                                   "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "refused activation_memory.pickle" in res.stderr
    assert "mapped 2 general_text memories" in res.stderr
    assert not list(out.rglob("*.pickle"))
    data = json.loads(CliRunner().invoke(app, ["inspect", str(out), "--json"]).stdout)
    assert data["manifest"]["provenance"]["sources"][0]["format"] == "memos"
