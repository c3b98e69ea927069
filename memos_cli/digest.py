"""Canonical serialization and digests. Both are part of the format contract (spec/memcube.md §2).

Every digest names its algorithm: ``sha256:<64 lowercase hex digits>``. Canonical JSON is the
JSON Canonicalization Scheme (RFC 8785, "JCS"), written by the ``rfc8785`` package; cubes of
format 1.4 and older computed some digests over the *legacy* form (§2.1), which readers still
accept for those cubes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import rfc8785

from memos_cli.strictjson import Lexeme

_CHUNK = 1 << 20
#: The first format version whose digests are all over RFC 8785 canonical JSON.
JCS_SINCE = (1, 5)


def canonical_json(obj: Any) -> bytes:
    """Serialize ``obj`` to RFC 8785 canonical JSON (UTF-8 bytes).

    Keys sorted by UTF-16 code units, no insignificant whitespace, strings escaped as
    ECMAScript's ``JSON.stringify`` does, numbers in ECMAScript's shortest round-trip form
    (``100000.0`` is written ``100000``, ``1e-05`` is ``0.00001``). Content hashes, segment and
    set ids and fingerprints are taken over these bytes.

    Raises:
        ValueError: ``obj`` holds a non-finite float, or an integer outside ±(2**53 - 1)
            (which an IEEE double, and so RFC 8785, cannot hold exactly).
        TypeError: ``obj`` holds a value JSON cannot represent.
    """
    if _plain(obj, 0):
        try:  # orjson writes exactly these bytes for such objects, 20 times faster
            return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:  # e.g. a lone surrogate: rfc8785 says what is wrong
            pass
    return rfc8785.dumps(obj)  # its CanonicalizationError is a ValueError


#: Integers that RFC 8785 writes as their digits (an IEEE double holds them exactly).
_SAFE_INT = 2**53


def _plain(v: Any, depth: int) -> bool:
    """Whether ``v`` holds only strings, integers within ±(2**53 - 1), booleans, nulls, lists
    and objects with ASCII keys, at most 64 deep. For such values orjson with sorted keys
    writes RFC 8785's bytes: its string escapes are ``JSON.stringify``'s (every code point is
    checked in ``tests/test_digest.py``), integers are their digits, and sorting ASCII keys by
    code point is sorting them by UTF-16 code unit. Floats (ECMAScript number formatting) and
    other keys go through :mod:`rfc8785`."""
    t = type(v)
    if t is str or t is bool or v is None:
        return True
    if t is int:
        return -_SAFE_INT < v < _SAFE_INT
    if depth >= 64:
        return False
    if t is dict:
        for k in v:
            if type(k) is not str or not k.isascii():
                return False
        items: Iterable[Any] = v.values()
    elif t is list:
        items = v
    else:
        return False
    for x in items:  # scalars inline: a memory record is one call, not thirty
        tx = type(x)
        if tx is str or tx is bool or x is None:
            continue
        if tx is int:
            if not -_SAFE_INT < x < _SAFE_INT:
                return False
        elif not _plain(x, depth + 1):
            return False
    return True


def legacy_canonical_json(obj: Any) -> bytes:
    """The canonical JSON of formats 1.0-1.4 (spec §2.1): keys sorted by code point,
    separators ``,``/``:``, strings escaped as RFC 8785 escapes them (non-ASCII literal), and
    numbers as written. A number read from JSON text with
    :func:`memos_cli.strictjson.loads` ``(lexemes=True)`` is a
    :class:`~memos_cli.strictjson.Lexeme` and is copied as it was written (``1E5`` stays
    ``1E5``); a Python ``float`` is written as ``repr`` writes it (``100000.0``, ``1e-05``),
    which is how memos 0.1 wrote it, so the stored texts of older cubes are their own legacy
    form. It equals :func:`canonical_json` for objects of strings, integers, booleans and nulls
    with ASCII keys.

    Raises:
        ValueError: a non-finite float. TypeError: a value JSON cannot hold.
    """
    out: list[str] = []
    _legacy(obj, out)
    return "".join(out).encode("utf-8")


def _legacy(v: Any, out: list[str]) -> None:
    if isinstance(v, Lexeme):
        out.append(str(v))
    elif isinstance(v, str):
        out.append(json.dumps(v, ensure_ascii=False))
    elif v is None or isinstance(v, bool | int | float):
        out.append(json.dumps(v, allow_nan=False))
    elif isinstance(v, dict):
        out.append("{")
        for n, k in enumerate(sorted(v)):
            if not isinstance(k, str):
                raise TypeError(f"object key {k!r} is not a string")
            out.append("," if n else "")
            out.append(json.dumps(k, ensure_ascii=False) + ":")
            _legacy(v[k], out)
        out.append("}")
    elif isinstance(v, list | tuple):
        out.append("[")
        for n, x in enumerate(v):
            out.append("," if n else "")
            _legacy(x, out)
        out.append("]")
    else:
        raise TypeError(f"{type(v).__name__} is not a JSON value")


def json_sha256(obj: Any, *, legacy: bool = False) -> str:
    """``sha256:<hex>`` of the canonical JSON of ``obj`` (the legacy form when ``legacy``)."""
    return sha256_bytes(legacy_canonical_json(obj) if legacy else canonical_json(obj))


def json_sha256_items(items: Iterable[Any]) -> str:
    """:func:`json_sha256` of the list of ``items``, computed one item at a time: RFC 8785
    writes an array as ``[``, its members' canonical forms joined by ``,``, and ``]``, so a
    list of 200,000 records is never held whole."""
    h = hashlib.sha256(b"[")
    for i, item in enumerate(items):
        if i:
            h.update(b",")
        h.update(canonical_json(item))
    h.update(b"]")
    return f"sha256:{h.hexdigest()}"


def accepted_json_sha256(obj: Any, format_version: str | tuple[int, int]) -> set[str]:
    """The digests of ``obj`` a reader accepts in a cube of ``format_version``: the RFC 8785
    one, plus the legacy one for cubes older than 1.5 (spec §2.1; over the numbers as written
    when ``obj`` was read with ``strictjson.loads(lexemes=True)``)."""
    if isinstance(format_version, str):
        major, _, minor = format_version.partition(".")
        format_version = (int(major), int(minor or 0))
    out = {json_sha256(obj)}
    if format_version < JCS_SINCE:
        out.add(json_sha256(obj, legacy=True))
    return out


def sha256_bytes(data: bytes) -> str:
    """Return ``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """Return ``sha256:<hex>`` of the file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()
