"""Reading JSON from files memos did not write: the standard parser with the checks that
canonical JSON (spec §2) implies. Duplicate object keys, ``NaN`` and ``Infinity`` are refused,
and nesting past the interpreter's recursion limit or integers past its digit limit become a
:class:`StrictJSONError` instead of escaping as ``RecursionError``."""

from __future__ import annotations

import json
from typing import Any


class StrictJSONError(ValueError):
    """JSON that parses but breaks the rules above (or cannot be parsed at this depth)."""


class Lexeme(str):
    """A JSON number kept as written (``10000.0``, ``1E5``): what the legacy canonical form
    of spec §2.1 copies, where a parser's float would lose the difference."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise StrictJSONError(f"duplicate key {k[:80]!r}")
        out[k] = v
    return out


def _constant(name: str) -> Any:
    raise StrictJSONError(f"{name} is not a JSON number")


def loads(text: str | bytes, *, lexemes: bool = False) -> Any:
    """``json.loads`` with the checks of the module docstring; with ``lexemes``, every number
    is a :class:`Lexeme` holding its text instead of an ``int`` or ``float``.

    Raises:
        json.JSONDecodeError: malformed JSON (line and column).
        StrictJSONError: duplicate keys, NaN or Infinity, too deep, or an integer too long.
    """
    try:
        if lexemes:
            return json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant,
                              parse_float=Lexeme, parse_int=Lexeme)
        return json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant)
    except (json.JSONDecodeError, StrictJSONError):
        raise
    except RecursionError as e:
        raise StrictJSONError("JSON nested too deeply") from e
    except ValueError as e:  # e.g. "Exceeds the limit (4300 digits) for integer string"
        raise StrictJSONError(str(e).split(";")[0][:200]) from e
