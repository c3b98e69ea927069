"""Byte-exact test vectors for the canonical serialization and digests (spec §2)."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memos_cli.digest import (
    accepted_json_sha256,
    canonical_json,
    json_sha256,
    legacy_canonical_json,
    sha256_bytes,
)


def test_canonical_json_vector() -> None:
    obj = {"b": [1, "ü"], "a": None, "c": {"z": True, "y": 1.5}}
    assert canonical_json(obj) == b'{"a":null,"b":[1,"\xc3\xbc"],"c":{"y":1.5,"z":true}}'


def test_sha256_vector() -> None:
    assert sha256_bytes(b"abc") == (
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


def test_non_finite_floats_are_refused() -> None:
    with pytest.raises(ValueError):
        canonical_json({"x": math.nan})


def test_canonical_json_is_rfc8785() -> None:
    """Numbers in ECMAScript's form: a KV segment's ``rope_theta`` of 100000.0 hashes as a
    JavaScript, Go or Rust JCS library would write it (spec §2)."""
    assert canonical_json({"rope_theta": 100000.0, "eps": 1e-05, "big": 1e21}) == \
        b'{"big":1e+21,"eps":0.00001,"rope_theta":100000}'
    assert canonical_json({"\U0001f600": 1, "\uffff": 2}) == \
        '{"\U0001f600":1,"\uffff":2}'.encode()  # keys by UTF-16 code units
    assert canonical_json("\x01\n\u2028") == b'"\\u0001\\n\xe2\x80\xa8"'


def test_legacy_form_differs_only_in_numbers() -> None:
    strings = {"content": "Zoë said \"hi\"\n\x1f", "speaker": None, "event_time": "x"}
    assert legacy_canonical_json(strings) == canonical_json(strings)
    assert legacy_canonical_json({"t": 100000.0}) == b'{"t":100000.0}'
    assert accepted_json_sha256({"t": 100000.0}, "1.4") == {
        json_sha256({"t": 100000.0}), json_sha256({"t": 100000.0}, legacy=True)}
    assert accepted_json_sha256({"t": 100000.0}, "1.5") == {json_sha256({"t": 100000.0})}


def test_integers_beyond_doubles_are_refused() -> None:
    with pytest.raises(ValueError, match="safe integer"):
        canonical_json({"n": 2**53})
    assert canonical_json({"n": 2**53 - 1}) == b'{"n":9007199254740991}'


def test_every_code_point_is_escaped_as_rfc8785_escapes_it() -> None:
    """The orjson path of canonical_json writes strings byte for byte as rfc8785 does."""
    import rfc8785

    for c in [*range(0xD800), *range(0xE000, 0x10000), 0x1F600, 0x10FFFF]:
        s = chr(c)
        assert canonical_json({"k": s}) == rfc8785.dumps({"k": s}), hex(c)


#: Any code point, and often a lone surrogate or a character RFC 8785 sorts or escapes
#: differently from other writers.
ANY_CHAR = st.characters() | st.sampled_from(["\ud800", "\udfff", "\U0001f600", "\uffff",
                                              "\u007f", "\u2028", "\x00", "\x1f"])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.text(ANY_CHAR)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.text(ANY_CHAR, max_size=4), inner, max_size=5),
    max_leaves=30)


@settings(max_examples=1500, deadline=None)
@given(json_values)
def test_canonical_json_is_rfc8785_on_any_value(value: object) -> None:
    """Any JSON value (floats, astral and non-ASCII keys, lone surrogates and integers past
    2**53 among them): the same bytes as rfc8785, or the same refusal."""
    import rfc8785

    try:
        want: bytes | type = rfc8785.dumps(value)
    except Exception as e:
        want = type(e)
    try:
        got: bytes | type = canonical_json(value)
    except Exception as e:
        got = type(e)
    assert got == want
