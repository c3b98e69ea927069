"""memos as a library: one entry point over cubes and vaults.

A :class:`Session` reads and changes memory as one user. It offers search, answer (with the
tier ``auto``, ``text``, ``kv`` or ``lora``), add, dump, schedule and history;
:func:`prepare_conversion` converts a cube between tiers (``memos convert``). What it returns
are the dataclasses the CLI renders. The CLI, the benches, and the coming ``memos chat`` and
MCP server call it, so that access control, audit and usage records, and option checks are the
same everywhere::

    from memos_cli.api import AnswerOptions, Session

    with Session(["team.memcube"]) as s:
        for hit in s.search("budget cap", k=3).hits:
            print(hit.rank, hit.memory.text)
        print(s.answer("What budget did we agree on?", AnswerOptions(tier="text")).answer)

Importing this module imports neither torch nor transformers; the embedder and the chat model
load on first use.
"""

from memos_cli.api.answering import COMBINE, COMPOSE, RECOMPUTE_RULES, TIERS, AnswerOptions
from memos_cli.api.converting import Conversion, Converted, ConvertOptions, prepare_conversion
from memos_cli.api.reading import MemoryHistory
from memos_cli.api.scheduling import ScheduleResult
from memos_cli.api.session import SearchResult, Session
from memos_cli.tiers.plaintext import Answer, Retrieved

__all__ = ["COMBINE", "COMPOSE", "RECOMPUTE_RULES", "TIERS", "Answer", "AnswerOptions",
           "Conversion", "ConvertOptions", "Converted", "MemoryHistory", "Retrieved",
           "ScheduleResult", "SearchResult", "Session", "prepare_conversion"]
