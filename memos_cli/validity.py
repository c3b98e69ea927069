"""Valid time (spec §4.6): which memories hold at a moment, what a search sees, and the checks
on supersession links that every reader makes.

A memory is valid from ``valid_from`` (its ``event_time``, else its ``created_at``) until its
``valid_to`` (null while it is current). A memory that replaced it names it in
``supersedes``; it names its successor in ``superseded_by``. The links form chains, one
memory at each place, as in Graphiti's bi-temporal edges (Rasmussen et al., arXiv
2501.13956, §2.2.2), but decided without a language model (:mod:`memos_cli.lifecycle.supersede`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

from memos_cli.errors import UsageError
from memos_cli.memory import Memory, format_time, parse_time, utc

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}(-\d{2})?$")


def parse_as_of(value: str, *, option: str = "--as-of") -> datetime:
    """A moment given on the command line: ISO 8601 (``2026-03-01``, ``2026-03``,
    ``2026-03-01T12:00Z``, naive means UTC). A date alone means the end of that day (or month),
    so that ``--as-of 2026-03-01`` sees what was said on that day.

    Raises:
        UsageError: not such a date (the message names the option and the value).
    """
    text = value.strip()
    try:
        if _DATE_ONLY.match(text):
            if len(text) == 7:  # a month: its last microsecond
                start = datetime.strptime(text, "%Y-%m").replace(tzinfo=timezone.utc)
                nxt = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
                return nxt - timedelta(microseconds=1)
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=timezone.utc)
            return day + timedelta(days=1) - timedelta(microseconds=1)
        return parse_time(text)
    except ValueError:
        raise UsageError(f"{option} {value!r} is not a date (give YYYY-MM-DD, YYYY-MM or an "
                         "ISO 8601 time such as 2026-03-01T12:00Z)") from None


@dataclass(frozen=True)
class View:
    """Which memories a search sees: the current ones (default), those valid at ``as_of``,
    or with ``history`` every memory, superseded ones included. ``period`` (a question that
    names a time, :func:`named_period`): the dated memories valid at some moment of
    ``[start, end]``, and the undated current ones; a conversation turn is dated when it was
    said, and people talk about the past, so turns are seen as without a period.
    ``dates``: whether a query's named dates may set ``period`` (:meth:`for_query`);
    ``now``: what relative ones ("last week") count from; ``precedence``: whether a newer
    statement that answers the query as fully as an older one ranks above it
    (:mod:`memos_cli.lifecycle.precedence`, spec §4.6)."""

    as_of: datetime | None = None
    history: bool = False
    period: tuple[datetime, datetime] | None = None
    dates: bool = True
    #: what relative dates in a query count from (``--now``); default: the search's time
    now: datetime | None = None
    precedence: bool = True

    def admits(self, memory: Memory) -> bool:
        """Whether ``memory`` belongs to this view."""
        if self.history:
            return True
        if self.as_of is not None:
            return memory.valid_at(self.as_of)
        if self.period is not None and memory.event_time is not None and \
                memory.semantic_type != "dialog_turn":
            start, end = self.period
            return memory.valid_from <= end and (memory.valid_to is None
                                                 or memory.valid_to > start)
        return memory.current

    def for_query(self, query: str, now: datetime) -> View:
        """This view, narrowed to the period ``query`` names (``in February 2026``, ``last
        week``, ``on 8 May 2023``, relative to ``now``) when it is the default view."""
        if self.history or self.as_of is not None or self.period is not None or not self.dates:
            return self
        found = named_period(query, self.now or now)
        return self if found is None else replace(self, period=found)

    def to_dict(self) -> dict[str, object]:
        return {"as_of": format_time(self.as_of), "history": self.history,
                **({"period": [format_time(t) for t in self.period]} if self.period else {})}


CURRENT = View()

def view_of(as_of: str | None, history: bool, now: str | None = None,
            dates: bool = True) -> View:
    """The :class:`~memos_cli.validity.View` of the options.

    Raises:
        UsageError: --as-of with --history, or a date that does not parse.
    """
    if as_of is not None and history:
        raise UsageError("give --as-of or --history, not both")
    start = parse_time_opt(now, "--now") if now is not None else None
    if as_of is not None:
        return View(as_of=parse_as_of(as_of), now=start)
    if history:
        return View(history=True, now=start)
    return View(now=start, dates=dates) if start is not None or not dates else CURRENT


def parse_time_opt(value: str, option: str) -> datetime:
    """A moment given as ``--now``: the start of a date alone, else the time given."""
    moment = parse_as_of(value, option=option)
    if len(value.strip()) <= 10:  # a date alone: its start, not its end
        moment = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment


#: Words dateparser takes for dates that name no period of the past.
_NOT_A_PERIOD = {"now", "today", "currently", "current", "present", "at present", "nowadays",
                 "still", "recently", "a", "an", "second", "may", "march", "sun", "sat"}
#: What a query must hold for dateparser to be asked (it takes 0.4 s to load).
_MAY_NAME_A_DATE = re.compile(
    r"\d|\b(yesterday|last|past|previous|ago|week|month|year|jan|feb|mar|apr|may|jun|jul|"
    r"aug|sep|oct|nov|dec)", re.I)
#: How long each granularity dateparser reports lasts.
_SPAN = {"day": timedelta(days=1), "week": timedelta(days=7), "month": None,
         "year": None}


def named_period(query: str, now: datetime) -> tuple[datetime, datetime] | None:
    """The period a question names, as ``(start, end)`` in UTC, or ``None``: the first date
    expression found by ``dateparser`` (``search_dates``, English, dates relative to ``now``
    in the past), widened to its granularity (the day, week, month or year it names). Words
    that name the present ("now", "today") or that dateparser misreads alone ("may",
    "march") name no period.
    """
    if not _MAY_NAME_A_DATE.search(query):  # most questions: dateparser is not even loaded
        return None
    from dateparser.date import DateDataParser
    from dateparser.search import search_dates

    base = utc(now).replace(tzinfo=None)
    settings = {"RELATIVE_BASE": base, "PREFER_DATES_FROM": "past",
                "RETURN_AS_TIMEZONE_AWARE": False, "REQUIRE_PARTS": []}
    try:
        found = search_dates(query, languages=["en"], settings=settings)
    except Exception:  # dateparser raises on some inputs; a question is still a question
        return None
    for text, _ in found or []:
        words = text.strip().lower()
        for prefix in ("in ", "on ", "during ", "at ", "since ", "by "):
            if words.startswith(prefix):
                words = words[len(prefix):]
        relative = words.split()[0] in ("last", "yesterday", "this", "past", "previous")
        if words in _NOT_A_PERIOD or not (any(c.isdigit() for c in words) or relative):
            continue
        data = DateDataParser(languages=["en"], settings=settings).get_date_data(text)
        if data.date_obj is None:
            continue
        return _widen(data.date_obj, data.period or "day")
    return None


def _widen(point: datetime, period: str) -> tuple[datetime, datetime]:
    point = point.replace(tzinfo=timezone.utc)
    tiny = timedelta(microseconds=1)
    if period == "year":
        start = point.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
        return start, start.replace(year=start.year + 1) - tiny
    if period == "month":
        start = point.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        nxt = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
        return start, nxt - tiny
    start = point.replace(hour=0, minute=0, second=0, microsecond=0)
    span = _SPAN.get(period) or timedelta(days=1)
    if period == "week":  # the week holding the day dateparser names
        start -= timedelta(days=start.weekday())
    return start, start + span - tiny


def note(memory: Memory) -> str | None:
    """``superseded on DATE by ID`` (or ``ended on DATE``) for a memory that is not current."""
    if memory.valid_to is None:
        return None
    day = memory.valid_to.strftime("%Y-%m-%d")
    if memory.superseded_by:
        return f"superseded on {day} by {memory.superseded_by[:8]}"
    return f"ended on {day}"


def link_problems(memories: Iterable[Memory],
                  outside: Mapping[str, Memory] | None = None) -> list[str]:
    """What is wrong with the supersession links of a set of memories (a cube's, spec §4.6):
    a link to an id that is not there (``outside`` may hold memories of a vault that a link
    may name), links that do not agree (``A.superseded_by = B`` but ``B.supersedes`` is not
    ``A``), a memory superseded whose ``valid_to`` is not its successor's ``valid_from``, and
    cycles. Empty when the links are sound."""
    by_id = {m.id: m for m in memories}
    known = dict(outside or {}) | by_id
    out: list[str] = []
    for m in by_id.values():
        if m.superseded_by is not None:
            nxt = known.get(m.superseded_by)
            if nxt is None:
                out.append(f"memory {m.id}: superseded_by {m.superseded_by} is not a memory "
                           "here")
            elif nxt.supersedes != m.id:
                out.append(f"memory {m.id}: superseded_by {nxt.id}, which does not name it in "
                           "supersedes")
            elif m.valid_to != nxt.valid_from:
                out.append(f"memory {m.id}: valid_to {format_time(m.valid_to)} is not the "
                           f"valid_from of its successor {nxt.id} "
                           f"({format_time(nxt.valid_from)})")
        if m.supersedes is not None:
            prev = known.get(m.supersedes)
            if prev is None:
                out.append(f"memory {m.id}: supersedes {m.supersedes}, which is not a memory "
                           "here")
            elif prev.superseded_by != m.id:
                out.append(f"memory {m.id}: supersedes {prev.id}, which does not name it in "
                           "superseded_by")
    for m in by_id.values():  # a cycle: following supersedes comes back
        seen = {m.id}
        walk: Memory | None = m
        while walk is not None and walk.supersedes is not None:
            walk = known.get(walk.supersedes)
            if walk is not None and walk.id in seen:
                out.append(f"memory {m.id}: its supersedes links form a cycle")
                break
            if walk is not None:
                seen.add(walk.id)
        if len(out) > 20:
            break
    return out


def detach(memories: list[Memory]) -> list[Memory]:
    """``memories`` with every supersession link to a memory not among them removed (an
    export that leaves some out): a memory superseded by one left out keeps its ``valid_to``
    (it still ended then); one that superseded a memory left out no longer names it."""
    import dataclasses

    ids = {m.id for m in memories}
    out = []
    for m in memories:
        changes: dict[str, object] = {}
        if m.superseded_by is not None and m.superseded_by not in ids:
            changes["superseded_by"] = None
        if m.supersedes is not None and m.supersedes not in ids:
            changes |= {"supersedes": None, "supersession": None}
        out.append(dataclasses.replace(m, **changes) if changes else m)  # type: ignore[arg-type]
    return out


def chain(memory_id: str, by_id: Mapping[str, Memory]) -> list[Memory]:
    """The supersession chain through ``memory_id``, oldest first (what ``memos history``
    prints). Ids that are missing end the chain; a cycle is not followed twice."""
    start = by_id.get(memory_id)
    if start is None:
        return []
    back: list[Memory] = []
    seen = {start.id}
    cur = start
    while cur.supersedes and (p := by_id.get(cur.supersedes)) is not None and p.id not in seen:
        back.append(p)
        seen.add(p.id)
        cur = p
    fwd: list[Memory] = []
    cur = start
    while cur.superseded_by and (n := by_id.get(cur.superseded_by)) is not None \
            and n.id not in seen:
        fwd.append(n)
        seen.add(n.id)
        cur = n
    return [*reversed(back), start, *fwd]


def summary(problems: list[str]) -> str:
    """The first of :func:`link_problems`, and how many more there are, for one error line."""
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"supersession links: {problems[0]}{more}"
