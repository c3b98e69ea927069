"""JSONL memories: field mapping, extra, errors with line numbers (spec §8.2)."""

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from memos_cli.errors import SourceError
from memos_cli.sources import Defaults, read_source
from tests.conftest import FIXED_TIME


def write(tmp_path: Path, *lines: str) -> Path:
    p = tmp_path / "m.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def test_fields_are_mapped_and_unknown_go_to_extra(tmp_path: Path) -> None:
    p = write(tmp_path, json.dumps({
        "text": "Ann likes tea.", "type": "preference", "role": "Ann", "tags": "drinks",
        "priority": 3, "visibility": "public", "readers": ["bob"], "ticket": "KES-9",
        "created_at": "2026-01-01T00:00:00Z", "ttl": 3600, "content_hash": "sha256:bogus",
    }), "", json.dumps({"memory": "Second.", "id": "m-2", "parent_id": "m-1", "version": 2}))
    a, b = read_source(p, "m.jsonl", Defaults(now=FIXED_TIME, owner="o")).memories
    assert a.content == "Ann likes tea." and a.semantic_type == "preference"
    assert a.speaker == "Ann" and a.tags == ("drinks",) and a.priority == 3
    assert a.visibility == "public" and a.readers == ("bob",) and a.owner == "o"
    assert a.extra == {"ticket": "KES-9"}
    assert a.created_at == datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert a.expires_at == a.created_at + timedelta(hours=1)
    assert a.content_hash != "sha256:bogus"
    assert (a.source_file, a.line_start, a.line_end) == ("m.jsonl", 1, 1)
    assert (b.id, b.parent_id, b.version, b.line_start) == ("m-2", "m-1", 2, 3)
    assert b.origin == "import" and b.semantic_type == "fact"


@pytest.mark.parametrize("line, message", [
    ("{not json", "line 1: malformed JSON"),
    ("[1, 2]", "line 1: line is not a JSON object"),
    ('{"x": 1}', "line 1: no 'content'"),
    ('{"content": 5}', "line 1: 'content' is not a string"),
    ('{"content": "a", "priority": "high"}', "line 1: 'priority' is not an integer"),
    ('{"content": "a", "created_at": "yesterday"}', "line 1"),
    ('{"content": "a", "visibility": "secret"}', "line 1: visibility"),
    ('{"content": "a", "ttl": 5, "expires_at": "2030-01-01T00:00:00Z"}', "both 'ttl'"),
])
def test_bad_lines_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    p = write(tmp_path, line)
    with pytest.raises(SourceError, match=message) as e:
        read_source(p, "m.jsonl", Defaults(now=FIXED_TIME))
    assert str(e.value).startswith(str(p))


def test_valid_from_is_the_event_time(tmp_path: Path) -> None:
    p = write(tmp_path, json.dumps({"text": "Rent is 900.", "valid_from": "2026-02-01"}))
    (m,) = read_source(p, "m.jsonl", Defaults(now=FIXED_TIME)).memories
    assert m.event_time == datetime(2026, 2, 1, tzinfo=timezone.utc) == m.valid_from
    assert m.extra == {}
    both = write(tmp_path, json.dumps({"text": "x", "valid_from": "2026-02-01",
                                       "event_time": "2026-02-02"}))
    with pytest.raises(SourceError, match="line 1: 'event_time' repeats 'valid_from'"):
        read_source(both, "m.jsonl", Defaults(now=FIXED_TIME))


@pytest.mark.parametrize("rows, note", [
    ([{"text": "Lab in B12.", "time": "2026-01-10"}, {"text": "Lab in C3."}], "'time'"),
    ([{"text": "Lab in B12.", "date": "2026-01-10T09:00:00Z"}], "'date'"),
    ([{"text": "Standup.", "time": "09:30"}], None),  # a time of day is no event time
    ([{"text": "Lab in B12.", "time": "2026-01-10", "event_time": "2026-01-10"}], None),
    ([{"text": "Lab in B12.", "time": "2026-01-10"}, {"text": "C3.", "event_time": "2026-02-01"}],
     None),
])
def test_a_date_under_another_name_is_noted_not_guessed(tmp_path: Path, rows: list[dict],
                                                         note: str | None) -> None:
    p = write(tmp_path, *(json.dumps(r) for r in rows))
    res = read_source(p, "m.jsonl", Defaults(now=FIXED_TIME))
    if note is None:
        assert res.notes == []
    else:
        (said,) = res.notes
        assert note in said and "kept in extra" in said and "event_time" in said
        assert all(m.event_time is None for m in res.memories)  # nothing guessed
