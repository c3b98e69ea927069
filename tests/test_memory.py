"""The memory record: content hash vectors, ids, validation, dict round-trip."""

import hashlib
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memos_cli.memory import ORIGINS, SEMANTIC_TYPES, VISIBILITIES, Memory, content_hash, derived_id

NOW = datetime(2026, 3, 14, 12, 0, tzinfo=timezone.utc)


def test_content_hash_vectors() -> None:
    # spec §4.3: sha256 over {"content":"hello","event_time":null,"speaker":null}
    raw = b'{"content":"hello","event_time":null,"speaker":null}'
    assert content_hash("hello", None, None) == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert content_hash("hello", None, None) == (
        "sha256:74b77b2b66f2b6371703fdb10964e6816262f08cb2ffb80ae791ebd2dcfd1d34")
    assert content_hash("hello", "Ann", datetime(2023, 5, 8, 13, 56)) == (
        "sha256:adc1f3c9c0a3e811318f4b9f1cc895ab3f4c1745403474a5f89d516f1404c4c0")
    assert derived_id(content_hash("hello", None, None)) == (
        "685ce342-d414-5923-83ba-0c15ce22823f")


def test_speaker_and_time_change_identity() -> None:
    a = Memory.create("Bye!", now=NOW, speaker="Ann")
    b = Memory.create("Bye!", now=NOW, speaker="Bob")
    c = Memory.create("Bye!", now=NOW, speaker="Ann", event_time=NOW)
    assert len({a.content_hash, b.content_hash, c.content_hash}) == 3
    assert a.id == derived_id(a.content_hash)


def test_governance_does_not_change_identity() -> None:
    a = Memory.create("x", now=NOW, owner="ann", visibility="private")
    b = Memory.create("x", now=NOW, owner="bob", visibility="public", tags=("t",))
    assert a.content_hash == b.content_hash


@pytest.mark.parametrize("kwargs, message", [
    ({"origin": "dream"}, "origin"),
    ({"semantic_type": "poem"}, "semantic_type"),
    ({"visibility": "secret"}, "visibility"),
    ({"version": 0}, "version"),
    ({"line_start": 5, "line_end": 2}, "line range"),
    ({"line_start": 5}, "line range"),
])
def test_invalid_fields_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Memory.create("text", now=NOW, **kwargs)


def test_empty_content_is_refused() -> None:
    with pytest.raises(ValueError, match="content is empty"):
        Memory.create("  \n", now=NOW)


def test_render_includes_date_section_and_speaker() -> None:
    m = Memory.create("I went to the support group.", now=NOW, speaker="Caroline",
                      event_time=datetime(2023, 5, 8, 13, 56), section="S > T")
    assert m.render() == "[8 May 2023] (S > T) Caroline: I went to the support group."


_text = st.text(min_size=1, max_size=40).filter(lambda s: s.strip() != "")
_opt = st.none() | st.text(max_size=20)
_name = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,10}", fullmatch=True)
#: owners and readers (spec §14): plain names as other systems give them (no control
#: characters, no "/"), users under a persona, roles
_principal = (st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs"),
                                             blacklist_characters="/"), max_size=20)
              .filter(lambda s: not s.startswith("role:"))
              | st.builds(lambda u, p: f"{u}/{p}", _name, _name)
              | st.builds(lambda r: f"role:{r}", _name))
_time = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1),
                     timezones=st.just(timezone.utc))


@st.composite
def memories(draw: st.DrawFn) -> Memory:
    start = draw(st.integers(1, 1000))
    has_lines = draw(st.booleans())
    return Memory.create(
        draw(_text), now=draw(_time),
        origin=draw(st.sampled_from(ORIGINS)),
        semantic_type=draw(st.sampled_from(SEMANTIC_TYPES)),
        source_file=draw(_opt), section=draw(_opt), conversation_id=draw(_opt),
        session_id=draw(_opt), turn_id=draw(_opt), speaker=draw(_opt),
        line_start=start if has_lines else None,
        line_end=start + draw(st.integers(0, 50)) if has_lines else None,
        event_time=draw(st.none() | _time),
        owner=draw(st.none() | _principal), visibility=draw(st.sampled_from(VISIBILITIES)),
        readers=tuple(draw(st.lists(_principal, max_size=3))),
        expires_at=draw(st.none() | _time), priority=draw(st.integers(-5, 5)),
        sensitivity=tuple(draw(st.lists(st.text(max_size=8), max_size=3))),
        tags=tuple(draw(st.lists(st.text(max_size=8), max_size=3))),
        version=draw(st.integers(1, 9)), parent_id=draw(_opt),
        extra=draw(st.dictionaries(st.text(max_size=8),  # I-JSON numbers: spec §4
                                   st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=8),
                                   max_size=3)),
    )


@settings(max_examples=150, deadline=None)
@given(memories())
def test_dict_round_trip(m: Memory) -> None:
    assert Memory.from_dict(m.to_dict()) == m


def test_from_dict_refuses_unknown_keys() -> None:
    d = Memory.create("x", now=NOW).to_dict()
    d["colour"] = "red"
    with pytest.raises(ValueError, match="unknown memory fields: colour"):
        Memory.from_dict(d)


def test_times_are_utc_microseconds() -> None:
    m = Memory.create("x", now=datetime(2026, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1))))
    assert m.to_dict()["created_at"] == "2026-01-01T00:00:00.000000Z"
