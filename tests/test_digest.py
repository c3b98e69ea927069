"""Byte-exact test vectors for the canonical serialization and digests (spec §2)."""

import math

import pytest

from memos_cli.digest import canonical_json, sha256_bytes


def test_canonical_json_vector() -> None:
    obj = {"b": [1, "ü"], "a": None, "c": {"z": True, "y": 1.5}}
    assert canonical_json(obj) == b'{"a":null,"b":[1,"\xc3\xbc"],"c":{"y":1.5,"z":true}}'


def test_sha256_vector() -> None:
    assert sha256_bytes(b"abc") == (
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


def test_non_finite_floats_are_refused() -> None:
    with pytest.raises(ValueError):
        canonical_json({"x": math.nan})
