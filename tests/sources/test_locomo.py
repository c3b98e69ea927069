"""LoCoMo conversations from ../shared/datasets/locomo (real files made by the LoCoMo authors)."""

import json
from datetime import datetime, timezone
from pathlib import Path

from memos_cli.sources import Defaults, read_source
from memos_cli.sources.locomo import parse_date
from tests.conftest import FIXED_TIME


def test_parse_date() -> None:
    assert parse_date("1:56 pm on 8 May, 2023") == datetime(2023, 5, 8, 13, 56)
    assert parse_date("10:37 am on 27 June, 2023") == datetime(2023, 6, 27, 10, 37)
    assert parse_date("someday") is None


def test_one_memory_per_turn(shared_datasets: Path) -> None:
    path = shared_datasets / "locomo" / "26.json"
    data = json.loads(path.read_text())
    turns = [t for k, v in data.items() if k.startswith("session_") and isinstance(v, list)
             for t in v]
    res = read_source(path, "26.json", Defaults(now=FIXED_TIME))
    assert res.format == "locomo"
    assert len(res.memories) == len(turns) == 419
    first = res.memories[0]
    assert (first.turn_id, first.speaker, first.session_id) == ("D1:1", "Caroline", "session_1")
    assert first.event_time == datetime(2023, 5, 8, 13, 56, tzinfo=timezone.utc)
    assert first.semantic_type == "dialog_turn" and first.conversation_id == "26"
    with_photo = [m for m in res.memories if "[shares a photo:" in m.content]
    captioned = [t for t in turns if t.get("blip_caption")]
    assert len(with_photo) == len(captioned) > 0
    assert all("blip_caption" in m.extra for m in with_photo)
    assert sum("img_url" in m.extra for m in with_photo) == 77
    assert any("qa" in n for n in res.notes)
