"""Byte-exact test vectors for the canonical serialization and digests (spec §2)."""

import math

import pytest

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
