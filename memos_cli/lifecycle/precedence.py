"""Precedence at read time: of two memories a search found, the newer one comes first when it
answers the question at least as fully as the older one (spec §4.6, "Precedence").

Supersession (:mod:`memos_cli.lifecycle.supersede`) decides when a memory is written, from the
two statements alone, and misses revisions that describe the new value in other words ("The
choir rehearses in the church hall on Elm Street", later "Choir rehearsals are now held in
the community centre on Mill Road") or that give it as someone's action ("Tomasz swapped
shifts with Priya, so he is on call this week" after "Priya is the on-call engineer this
week"). Both stay current, and similarity ranks them. At read time the question says which
attribute is asked for: a newer statement that holds every content word of the question the
older one holds (at least two, or all of a shorter question; its light verbs aside), and
what the question names (a subject, a day, a state) wherever the older one does, answers
the same question, and its value is the later one. It is put just above the older memory;
nothing is stored and no link is made, so a wrong precedence costs one order and nothing
else.

For the same reason a plain assertion comes before a question, a hypothetical, an opinion of
what should be or a figure quoted from someone else (``Statement.guard``) that answers no
more of the question, whatever their dates: "if my blood pressure stays high, the dose would
go up to 10 mg" is not the dose.

A later statement does not take precedence when it gives a value of another kind than the
older one's ("the team dinner has a budget of 50 per person" does not say where the dinner
is, :func:`_kinds`).

A statement does not take precedence when it is itself guarded, when it is another user's,
when both are undated parts of one source file, when either is longer than the statements
supersession compares (``Thresholds.max_words``: document sections), or, for a turn of a
conversation, as a later statement without a word of change (people talk about many things
of one kind) or as an assertion at all. These are the exclusions of
:func:`~memos_cli.lifecycle.supersede.decide`.

Lexical, like supersession: a newer statement that says the question's words in other words
("bedtime" for "go to bed") does not take precedence. Developed on the opened scenario sets
of ``bench/updates.py`` (the fifth and sixth included), held out on the fourth and seventh
(``docs/benchmarks/updates.md``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from memos_cli.lifecycle.statement import CALENDAR, Statement, analyse, stem
from memos_cli.lifecycle.supersede import DEFAULT, eligible, same_document
from memos_cli.memory import Memory

#: Memories a search looks at for precedence, at least: a newer statement ranked second to
#: fifth can come first in a search for one memory (``-k 1``).
POOL = 5


def pool(k: int, on: bool = True) -> int:
    """How many results a search for ``k`` reads and orders: at least :data:`POOL` with
    precedence ``on``, else ``k``."""
    return max(k, POOL) if on else k


#: A hyphenated word ("on-call", "five-a-side"): its parts count as words of the statement.
_HYPHENATED = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)+")
#: Stems of verbs a question asks with that say nothing of the attribute ("how much dry food
#: does the dog *get*" is answered by "the dog eats 300 grams").
LIGHT_VERBS = frozenset({"get", "have", "do", "take", "go", "make", "keep", "use", "need"})


def _said(s: Statement, text: str) -> frozenset[str]:
    """What statement ``s`` of ``text`` says, for coverage: its words and its values (a common
    word that opens a sentence may have been read as a name: "Choir rehearsals are now held
    ..."), and the stems of the parts of hyphenated words ("on-call" says "call")."""
    parts = {stem(p) for w in _HYPHENATED.findall(text.lower()) for p in w.split("-")}
    return s.words | s.values | parts


def _kinds(s: Statement) -> set[str]:
    """The kinds of value a statement holds: ``number`` (digits: amounts, times, codes; and
    addresses with ``@``), ``calendar`` (months, weekdays, seasons), ``state``
    (:data:`~memos_cli.lifecycle.statement.STATES`) and ``name``. A revision gives a value of
    the kind it replaces."""
    out = set()
    for v in s.values:
        if "@" in v or any(c.isdigit() for c in v):
            out.add("number")
        elif v in CALENDAR:
            out.add("calendar")
        elif v in s.names:
            out.add("name")
        else:
            out.add("state")
    return out


def takes_precedence(question: Statement, new: Memory, old: Memory) -> bool:
    """Whether ``new`` answers ``question`` (analysed) as fully as ``old`` and comes before it:
    as the later statement, or as an assertion where ``old`` is a question, a hypothetical or
    a quoted figure (module docstring)."""
    if new.owner != old.owner or not (eligible(new) and eligible(old)) or \
            same_document(new, old):
        return False
    sn, so = analyse(new.content), analyse(old.content)
    if sn.guard is not None or sn.norm == so.norm or \
            max(sn.length, so.length) > DEFAULT.max_words:
        return False
    turn = "dialog_turn" in (new.semantic_type, old.semantic_type)
    if so.guard is not None:  # what is asserted comes before what is asked or supposed
        before = not turn
    else:  # a turn of a conversation revises only with a word of change
        before = new.valid_from > old.valid_from and (sn.cue or not turn)
    if not before:
        return False
    asked = question.words - LIGHT_VERBS
    held = asked & _said(so, old.content)
    if len(held) < min(2, len(asked)) or not held <= _said(sn, new.content):
        return False  # the older one answers more of the question, or too little of it
    if so.guard is None and sn.values and so.values and not _kinds(sn) & _kinds(so):
        return False  # "a budget of 50 per person" does not say where the dinner is
    # what the question names (a subject, a day, a state) that the older one holds
    return question.values & so.values <= sn.values


def moves(question: str, memories: Sequence[Memory]) -> list[tuple[int, int | None]]:
    """The order of ``memories`` (ranked best first) with precedence applied: for each place,
    the index into ``memories`` of the memory there and the index of the memory it was put
    above (``None`` when it did not move). Each memory, in rank order, moves above the first
    memory ranked before it over which it takes precedence (:func:`takes_precedence`); the
    rest keep their order. Quadratic in ``len(memories)``, a search's pool (tens)."""
    q = analyse(question)
    out: list[tuple[int, int | None]] = [(i, None) for i in range(len(memories))]
    for pos in range(1, len(out)):
        b = out[pos][0]
        for i in range(pos):
            if takes_precedence(q, memories[b], memories[out[i][0]]):
                out.pop(pos)
                out.insert(i, (b, out[i][0]))
                break
    return out


_KIND = {"question": "a question", "hypothetical": "a hypothetical or an opinion",
         "reported": "a quoted figure"}


def reason(above: Memory) -> str:
    """Why a memory was put above ``above``, as a search shows it: ``a later statement``, or
    what ``above`` is (``a question``, ``a hypothetical or an opinion``, ``a quoted figure``)."""
    guard = analyse(above.content).guard
    return "a later statement" if guard is None else f"that one is {_KIND[guard]}"
