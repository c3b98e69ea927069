"""Chat transcripts (spec §8.3)."""

import json
from pathlib import Path

from memos_cli.sources import Defaults, read_source
from tests.conftest import CORPUS, FIXED_TIME


def test_fixture_chat() -> None:
    res = read_source(CORPUS / "chats.json", "chats.json", Defaults(now=FIXED_TIME))
    assert res.format == "chat"
    assert [(m.speaker, m.turn_id) for m in res.memories] == [
        ("user", "1"), ("assistant", "2"), ("user", "3"), ("assistant", "4")]
    assert all(m.semantic_type == "dialog_turn" and m.conversation_id == "chats"
               for m in res.memories)


def test_messages_object_parts_and_system(tmp_path: Path) -> None:
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "name": "ann", "content": [{"type": "text", "text": "Hi"},
                                                    {"type": "text", "text": "there"}]},
        {"role": "assistant", "content": "   "},
    ]}))
    res = read_source(p, "c.json", Defaults(now=FIXED_TIME))
    assert [(m.semantic_type, m.speaker, m.content) for m in res.memories] == [
        ("task_prompt", "system", "Be brief."), ("dialog_turn", "ann", "Hi\nthere")]
    assert res.notes == ["1 empty messages skipped"]
