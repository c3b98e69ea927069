"""Sizes in bytes as people write them (``200MB``, ``1.5GiB``), for options and pages."""

from __future__ import annotations

import re

from memos_cli.errors import UsageError

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)$", re.IGNORECASE)


def parse_size(text: str, option: str = "--max-bytes") -> int:
    """``1000000``, ``500K``, ``200MB``, ``1.5GiB`` -> bytes (K, M, G, T are powers of 1000,
    KiB, MiB, GiB, TiB of 1024). Raises ``UsageError`` for anything else, zero or negative."""
    m = _SIZE.match(text.strip())
    if not m:
        raise UsageError(f"{option} {text!r} is not a size like 500000, 200MB or 1.5GiB")
    unit = m.group(2).lower().rstrip("b")
    base = 1024 if unit.endswith("i") else 1000
    power = "kmgt".find(unit[:1]) + 1 if unit else 0
    size = int(float(m.group(1)) * base ** power)
    if size <= 0:
        raise UsageError(f"{option} {text!r} must be above 0 bytes")
    return size
