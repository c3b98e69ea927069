"""The ``context`` reader: index each memory again with its neighbourhood.

A short reply ("Yes, last Tuesday!") says little on its own; what it answers is in the turn
before. This reader adds, for each memory, one index row (kind ``context``, spec §6.1) holding
the session's date and speakers, the ``before`` turns before it, the memory itself and the
``after`` turns after it, each neighbour cut to ``neighbour_chars`` code points. Anthropic
("Introducing Contextual Retrieval", 2024) prepends a model-written situating context to
each chunk; here the context is the neighbourhood itself, so no model runs.

Neighbourhoods: dialog turns of one session (``conversation_id``, ``session_id``; either may
be missing, not both), in cube order; chunks of one document (``source_file``), by
``line_start``. A memory of neither kind (a fact, a preference) has no neighbourhood and gets
no row.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from memos_cli.cube.index import INDEX_CHARS
from memos_cli.errors import UsageError
from memos_cli.memory import MONTHS, Memory
from memos_cli.readers.base import ReaderResult

#: Defaults chosen on LoCoMo conversations 26, 30 and 41 (bench/retrieval.py; README).
BEFORE = 2
AFTER = 0
NEIGHBOUR_CHARS = 300


def neighbourhoods(memories: Sequence[Memory]) -> list[list[Memory]]:
    """The memories grouped into sessions and documents, each in reading order; memories with
    neither are left out."""
    groups: dict[tuple[str, ...], list[Memory]] = defaultdict(list)
    for m in memories:
        if m.semantic_type == "dialog_turn" and (m.session_id or m.conversation_id):
            groups[("turns", m.conversation_id or "", m.session_id or "")].append(m)
        elif m.semantic_type == "document_chunk" and m.source_file is not None:
            groups[("doc", m.source_file)].append(m)
    out = []
    for key, group in groups.items():
        if key[0] == "doc":
            group = sorted(group, key=lambda m: m.line_start or 0)  # stable: ties keep order
        out.append(group)
    return out


def _line(m: Memory, limit: int) -> str:
    text = m.content if len(m.content) <= limit else m.content[:limit] + "..."
    return f"{m.speaker}: {text}" if m.speaker else text


def context_text(group: Sequence[Memory], i: int, *, before: int = BEFORE, after: int = AFTER,
                 neighbour_chars: int = NEIGHBOUR_CHARS) -> str:
    """The ``context`` row of ``group[i]``: a header (date, speakers or document and section),
    then the neighbours before, the memory, the neighbours after, one per line; at most
    :data:`~memos_cli.cube.index.INDEX_CHARS` code points."""
    m = group[i]
    head = []
    if m.event_time is not None:
        et = m.event_time
        head.append(f"[{et.day} {MONTHS[et.month - 1]} {et.year}]")
    if m.semantic_type == "dialog_turn":
        speakers = sorted({g.speaker for g in group if g.speaker})
        if speakers:
            head.append("Conversation between " + " and ".join(speakers) + ".")
    else:
        head.append(f"Document {m.source_file}" + (f", {m.section}." if m.section else "."))
    lines = [" ".join(head)]
    lines += [_line(g, neighbour_chars) for g in group[max(0, i - before):i]]
    lines.append(_line(m, INDEX_CHARS))
    lines += [_line(g, neighbour_chars) for g in group[i + 1:i + 1 + after]]
    return "\n".join(lines)[:INDEX_CHARS]


def read(memories: Sequence[Memory], *, before: int = BEFORE, after: int = AFTER,
         neighbour_chars: int = NEIGHBOUR_CHARS) -> ReaderResult:
    """One ``context`` row per memory that has a neighbourhood (see the module docstring).

    Raises:
        UsageError: a negative window or ``neighbour_chars`` below 1.
    """
    if before < 0 or after < 0 or neighbour_chars < 1:
        raise UsageError("context reader: before and after must be >= 0, neighbour_chars >= 1")
    result = ReaderResult("context", {"before": before, "after": after,
                                      "neighbour_chars": neighbour_chars})
    for group in neighbourhoods(memories):
        for i, m in enumerate(group):
            result.rows.append((m.id, context_text(group, i, before=before, after=after,
                                                   neighbour_chars=neighbour_chars)))
    return result
