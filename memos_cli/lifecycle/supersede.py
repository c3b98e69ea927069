"""Supersession: is a new memory a duplicate of one already held, an update of it, or
independent of it? (MemOS paper, arXiv 2507.03724, §7.2.2: "replacement"; spec §4.6.)

The decision is made without a language model, from the statements themselves: embedding
similarity finds candidates that are *about* the same thing, and the pattern of the two
statements decides whether they *contradict*. Similarity alone measures aboutness, not
contradiction (the criticism of mem0's similarity-threshold update, mem0 issue #5867), so a
candidate is an update only when

* the two statements share their attribute (the content words that are not values: "lab
  meeting", "parser work", "office budget");
* they differ in a value (numbers, dates, codes, names; or the remaining content words:
  "tea" against "coffee"), or one negates what the other says;
* they do not differ in a subject: when names differ on both sides and another value differs
  too ("the Paris office budget is 2M" against "the Berlin office budget is 1.5M"), or content
  words differ on both sides as well as a value without a word of change ("moved", "now",
  "took over"), the two are about different things;
* the new statement is an assertion: questions, hypotheticals ("if the budget were cut to
  ...") and figures quoted from someone else ("according to ...") supersede nothing;
* two undated parts of one source file never supersede each other: the file says both
  (``memos add`` decides the edits of a file, as source edits);
* a turn of a conversation (``dialog_turn``) revises only with a word of change: people
  talk about many things of one kind ("I love painting", later "I love pottery") without
  taking anything back.

An unchanged restatement (the same words and values) is a duplicate. Each decision carries the
rule that made it and the values that differed, for ``memos history``. The thresholds were
tuned on the even-numbered scenarios of ``bench/data/updates.jsonl``; the odd ones are held
out (``bench/updates.py``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import snowballstemmer

from memos_cli.memory import Memory, derived_reader

#: Function words: they carry no attribute and no value.
STOP = frozenset({
    "a", "an", "the", "this", "that", "these", "those", "it", "its", "it's", "is", "are",
    "was", "were", "be", "been", "being", "am", "do", "does", "did", "has", "have", "had",
    "having", "of", "in", "on", "at", "to", "for", "from", "by", "with", "about", "as",
    "into", "onto", "than", "then", "so", "and", "or", "but", "nor", "not", "no", "yes", "i",
    "me", "my", "mine", "we", "us", "our", "ours", "you", "your", "yours", "he", "him", "his",
    "she", "her", "hers", "they", "them", "their", "theirs", "there", "here", "which", "who",
    "whom", "whose", "what", "when", "where", "why", "how", "all", "any", "some", "each",
    "every", "both", "either", "neither", "also", "just", "very", "really", "too", "quite",
    "still", "again", "ever", "already", "yet", "will", "shall", "would", "should", "can",
    "could", "may", "might", "must", "up", "down", "out", "off", "over", "under", "own",
    "same", "other", "such", "only", "more", "most", "less", "least", "much", "many", "few",
    "one's", "let's", "i'm", "i've", "i'd", "i'll", "we're", "we've", "you're", "he's",
    "she's", "they're", "that's", "there's", "s", "t"
})
#: Words that say a value changed: with one of them, a weaker overlap suffices.
CUES = frozenset({
    "now", "moved", "move", "moving", "changed", "change", "changing", "switched", "switch",
    "switching", "took", "take", "taking", "over", "replaced", "replace", "replacing",
    "instead", "updated", "update", "revised", "revise", "cut", "cuts", "raised", "raise",
    "increased", "increase", "decreased", "decrease", "reduced", "reduce", "dropped", "drop",
    "rose", "taken", "slipped", "slip", "pushed", "push", "postponed", "postpone", "rescheduled",
    "reschedule", "delayed", "delay", "extended", "extend", "renamed", "rename", "new",
    "newly", "anymore", "longer", "became", "become", "becomes", "transferred", "transfer",
    "relocated", "relocate", "upgraded", "upgrade", "downgraded", "downgrade", "lowered",
    "lower", "bumped", "bump", "shifted", "shift", "migrated", "migrate"
})
_CUE_STEMS: frozenset[str] = frozenset()
#: Phrases that say a value changed back ("is back down to 800 IU"); "back" alone is too
#: common in conversation ("I'm back from the trip") to be a word of change.
_CUE_PHRASE = re.compile(r"\bback\s+(?:down\s+|up\s+)?to\b|\b(?:went|goes|gone)\s+(?:up|down)\b",
                         re.I)
#: Words that open an adjunct clause: a reason or a circumstance ("because of the light",
#: "after the renovation", "since the merger"). Its words are not the attribute: they may
#: differ between a statement and its revision.
ADJUNCT = frozenset({"because", "after", "since", "following", "thanks", "until", "till"})
#: Words of negation: a statement and its negation contradict.
NEGATIONS = frozenset({"not", "no", "never", "n't", "nobody", "none", "nothing", "stopped",
                       "quit", "longer", "anymore", "cancelled", "canceled"})
#: Negations that may follow what they negate ("the project was cancelled", "not any more"):
#: their scope reaches back as well as forward.
_NEGATES_BACK = frozenset({"stopped", "quit", "longer", "anymore", "cancelled", "canceled"})
#: Words and values a negation reaches (on each side it looks to).
NEGATION_SCOPE = 4
#: Content words an adjunct clause holds at most: one opening a sentence without a comma
#: ("After the renegotiation the rent is ...") must not take the main clause with it.
ADJUNCT_WORDS = 3
_QUESTION_START = frozenset({"who", "what", "when", "where", "which", "why", "how", "is",
                             "are", "was", "were", "do", "does", "did", "can", "could",
                             "should", "would", "will", "has", "have", "shall"})
_HYPOTHETICAL = re.compile(  # "even if" and "as if" concede or compare: not a condition
    r"(?<!even )(?<!as )\b(if|suppose|supposing|imagine|hypothetically|assuming|unless|"
    r"in case|what if|could|might|maybe|perhaps)\b", re.I)
_REPORTED = re.compile(
    r"\b(according to|claims?|claimed|reportedly|rumou?red|rumou?rs?|quoted|quotes?|"
    r"competitor'?s?|their figure)\b", re.I)
_TOKEN = re.compile(r"\w+(?:[.,:/@'’_-]\w+)*")
#: Titles before a name: the full stop after one does not end a sentence.
TITLES = frozenset({"mr", "mrs", "ms", "dr", "prof", "st", "mt", "sr", "jr"})
#: Month and weekday names: values of a date, not names of a subject.
CALENDAR = frozenset({
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep",
    "sept", "oct", "nov", "dec", "monday", "tuesday", "wednesday", "thursday", "friday",
    "saturday", "sunday", "mondays", "tuesdays", "wednesdays", "thursdays", "fridays",
    "saturdays", "sundays", "weekend", "weekends", "spring", "summer", "autumn", "winter"
})
#: Seasons: values of a time, but too coarse to be a date that must have a replacement.
SEASONS = frozenset({"spring", "summer", "autumn", "winter"})
_SENTENCE_START = re.compile(r"(?:^|[.!?:;]\s+|\n)\s*[\"'(\[]*$")
#: Longest text taken apart, in characters: a longer one (a document section) is compared
#: only for a duplicate of the same folded text.
MAX_ANALYSED = 2000


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    return snowballstemmer.stemmer("english")


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    """The Porter2 stem of a lowercase word (cached: a vocabulary repeats, and the pure-Python
    stemmer takes 70 microseconds a word)."""
    return str(_stemmer().stemWord(word))


@dataclass(frozen=True)
class Statement:
    """What a statement says, for comparison: ``words`` (stems of its content words, values
    excepted), ``values`` (numbers, codes such as ``B12``, and capitalised names, lowercase),
    ``names`` (the capitalised ones), whether it is ``negated``, whether it holds a word of
    change (``cue``), and ``guard``: ``question``, ``hypothetical``, ``reported`` or ``None``
    for a plain assertion. ``norm`` is the text folded for the duplicate check. ``adjunct``
    holds the stems of ``words`` read in an adjunct clause (:data:`ADJUNCT`, to the next
    punctuation, :data:`ADJUNCT_WORDS` at most) or in a phrase of change ("went up");
    ``negated_scope`` the words and values a negation reaches (:data:`NEGATION_SCOPE`)."""

    words: frozenset[str]
    values: frozenset[str]
    names: frozenset[str]
    negated: bool
    cue: bool
    guard: str | None
    norm: str
    length: int
    adjunct: frozenset[str] = frozenset()
    negated_scope: frozenset[str] = frozenset()


@lru_cache(maxsize=8192)
def analyse(text: str) -> Statement:
    """Take a statement apart (:class:`Statement`). Pure, no model: tokens, Porter2 stems
    (``snowballstemmer``), capitalisation and digits. Consecutive capitalised words are one
    name (``Harbour Road``, ``Google Cloud``); month and weekday names are values, not
    names."""
    if len(text) > MAX_ANALYSED:
        folded = " ".join(t.lower() for t in _TOKEN.findall(text))
        return Statement(frozenset(), frozenset(), frozenset(), False, False, None, folded,
                         len(folded.split()))
    words: set[str] = set()
    adjunct: set[str] = set()
    in_adjunct = 0  # adjunct words still to take
    seq: list[str] = []  # words and values in reading order, for the scope of a negation
    negations: list[tuple[int, bool]] = []  # (place in seq, whether it reaches back)
    values: set[str] = set()
    names: set[str] = set()
    negated = cue = False
    cue_stems = _cue_stems()
    count = 0
    run: list[str] = []  # the capitalised words of the name being read
    last_end = 0
    prev = ""

    def close() -> None:
        if run:
            name = " ".join(run)
            names.add(name)
            values.add(name)
            seq.append(name)
            run.clear()

    for m in _TOKEN.finditer(text):
        tok = m.group(0).replace("’", "'")
        between = text[last_end:m.start()].strip(" \t\"'()[]")
        if between or prev in STOP:
            close()  # punctuation or a function word between: the name has ended
        if between:
            in_adjunct = 0  # punctuation ends an adjunct clause
        last_end = m.end()
        low = tok.lower()
        prev_tok, prev = prev, low
        if any(c.isdigit() for c in tok) or "@" in tok:
            close()
            values.add(low.replace(",", ""))
            seq.append(low.replace(",", ""))
            continue
        if low.endswith("n't"):
            negated = True
            negations.append((len(seq), False))
            low = low[:-3]
        elif low.endswith("'s"):
            low = low[:-2]
        if low in NEGATIONS:
            negated = True
            close()
            negations.append((len(seq), low in _NEGATES_BACK))
        if low in CUES or _stem(low) in cue_stems:
            cue = True
        if low in ADJUNCT:
            in_adjunct = ADJUNCT_WORDS
        if low in STOP or len(low) < 2 or low in TITLES:
            close()
            continue
        count += 1
        if low in CALENDAR:
            close()
            values.add(low)
            seq.append(low)
            continue
        initial = bool(_SENTENCE_START.search(text[max(0, m.start() - 8):m.start()])) and \
            prev_tok not in TITLES
        # a capitalised possessive is a name wherever it stands ("Marcus's salary band",
        # "Grandma's phone"); so is a word that is not an English word of the stemmer's kind
        bare = tok[:len(low)]
        capital = tok[0].isupper() and (not initial or bare[1:].lower() != bare[1:] or (
            low not in CUES and low not in ADJUNCT and (
                len(bare) < len(tok) or _looks_like_name(bare))))
        if capital:
            run.append(low)
        else:
            close()
            words.add(_stem(low))
            seq.append(_stem(low))
            if in_adjunct:
                adjunct.add(_stem(low))
                in_adjunct -= 1
    close()
    scope: set[str] = set()
    for at, back in negations:
        scope.update(seq[max(0, at - NEGATION_SCOPE) if back else at:at + NEGATION_SCOPE])
    stripped = text.strip()
    guard = None
    first = _TOKEN.match(stripped.lstrip("\"'([ "))
    if stripped.endswith("?") or (first and first.group(0).lower() in _QUESTION_START
                                  and "?" in stripped):
        guard = "question"
    elif _HYPOTHETICAL.search(text):
        guard = "hypothetical"
    elif _REPORTED.search(text):
        guard = "reported"
    for phrase in _CUE_PHRASE.finditer(text):  # its words say a change, not an attribute
        cue = True
        adjunct.update(_stem(w.lower()) for w in phrase.group(0).split()
                       if w.lower() not in STOP)
    norm = " ".join(t.lower() for t in _TOKEN.findall(text))
    return Statement(frozenset(words), frozenset(values), frozenset(names), negated, cue,
                     guard, norm, count, frozenset(adjunct), frozenset(scope))


@lru_cache(maxsize=1)
def _cue_stems() -> frozenset[str]:
    return frozenset(_stem(w) for w in CUES)


def _looks_like_name(tok: str) -> bool:
    """A sentence-initial capitalised word is taken for a name when it is not an English
    word of the stemmer's kind: it does not change under stemming and ends as names do."""
    low = tok.lower()
    return _stem(low) == low and not low.endswith(("ed", "ing", "ly", "s")) and len(low) > 2


@dataclass(frozen=True)
class Thresholds:
    """Where a candidate becomes an update. ``overlap``: shared attribute words over the
    smaller statement's; ``similarity``: cosine of the embeddings; ``*_cue`` apply when the
    new statement holds a word of change; ``same_text``: cosine at which equal words and
    values make a duplicate; ``max_words``: statements longer than this (document sections)
    are compared only for duplicates."""

    candidate: float = 0.45
    overlap: float = 0.5
    similarity: float = 0.62
    overlap_cue: float = 0.3
    similarity_cue: float = 0.5
    same_text: float = 0.8
    same_text_extra: float = 0.95
    max_words: int = 40


DEFAULT = Thresholds()


@dataclass(frozen=True)
class Decision:
    """The outcome for one new memory: ``kind`` is ``duplicate``, ``update`` or
    ``independent``; ``target`` the id it duplicates or updates; ``rule`` what decided;
    ``score`` the cosine similarity to the target; ``changed`` the values that differed
    (``{"from": [...], "to": [...]}``)."""

    kind: str
    target: str | None = None
    rule: str = "no candidate"
    score: float = 0.0
    changed: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "target": self.target, "rule": self.rule,
                "score": round(self.score, 4), **({"changed": self.changed}
                                                  if self.changed else {})}

    def record(self) -> dict[str, Any]:
        """The ``supersession`` object stored on the memory that supersedes (spec §4.6)."""
        return {"rule": self.rule, "score": round(self.score, 4), **self.changed}


def eligible(m: Memory) -> bool:
    """Whether ``m`` takes part in supersession: a user's own statement (not a MemReader's
    derived memory, not a task prompt)."""
    return derived_reader(m) is None and m.semantic_type != "task_prompt"


def compare(new: Statement, old: Statement, similarity: float,
            th: Thresholds = DEFAULT) -> Decision | None:
    """The decision between a new statement and one candidate, or ``None`` when they are
    independent. ``similarity`` is the cosine of their embeddings."""
    if new.norm == old.norm:
        return Decision("duplicate", rule="same text", score=similarity)
    vn, vc = new.values - old.values, old.values - new.values
    wn = new.words - old.words - _cue_stems()
    wc = old.words - new.words
    changed = {"from": sorted(vc) + sorted(wc), "to": sorted(vn) + sorted(wn)}
    if not vn and not vc and new.negated == old.negated and not (wn and wc):
        # the same values, words added on one side at most: a restatement
        if similarity >= (th.same_text if not (wn or wc) else th.same_text_extra):
            return Decision("duplicate", rule="restatement", score=similarity)
        return None
    if new.guard is not None or old.guard is not None:
        return None
    if not new.cue and not vc and not (wc - _cue_stems()) and new.negated == old.negated:
        return None  # the new statement adds to the old one and takes nothing back
    if max(new.length, old.length) > th.max_words:
        return None
    mine, theirs = new.words | new.names, old.words | old.names
    small = min(len(mine), len(theirs))
    overlap = len(mine & theirs) / small if small else 0.0
    cue = new.cue
    if overlap < (th.overlap_cue if cue else th.overlap) or \
            similarity < (th.similarity_cue if cue else th.similarity):
        return None
    shared_name = bool(new.names & old.names)
    other_names = not shared_name and new.names - old.values and old.names - new.values
    other_values = (vn - new.names) or (vc - old.names)
    if other_names and (other_values or (wn and wc)):
        return None  # a name and a value differ: another subject's value
    # the words that may name another attribute: neither words of change (on either side)
    # nor those of a reason or circumstance ("because of the light")
    qn, qc = wn - new.adjunct, wc - old.adjunct - _cue_stems()
    if (not cue or len(qc) > 1 or len(qn) > 1) and (
            (qn and qc and (vn or vc)) or (len(vn) > 1 and len(vc) > 1)):
        return None  # a qualifier and a value differ on both sides: another attribute
    if not (vn or vc) and not (new.words & old.words) - _cue_stems():
        return None  # only words differ and none is shared: the subject alone is common
    if _quantities(vc) and not _quantities(vn) and new.negated == old.negated:
        return None  # the old statement's number or date has no replacement in the new
    negative, other = (new, old) if new.negated else (old, new)
    if new.negated != old.negated and not negative.negated_scope & (other.words | other.values):
        return None  # the negation is of something the other statement does not say
    if not cue and not (vn or vc) and len(qn) > 1 and len(qc) > 1:
        return None  # several words replaced on each side and no value: another attribute
    if not cue and not new.names and vc & old.names and len(qn) > 1:
        return None  # the old statement's subject is gone and new words came: another subject
    if new.negated != old.negated:
        rule = "negation"
    elif vn or vc:
        rule = "changed value" + (" with a word of change" if cue else "")
    else:
        rule = "changed wording" + (" with a word of change" if cue else "")
    return Decision("update", rule=rule, score=similarity, changed=changed)


def _same_document(a: Memory, b: Memory) -> bool:
    """Two undated parts of one source file: the file says both at once (an edit of the file
    is a source edit, decided by ``memos add``, not here)."""
    return a.source_file is not None and a.source_file == b.source_file and \
        a.event_time is None and b.event_time is None


def _quantities(values: frozenset[str]) -> bool:
    """Whether ``values`` hold a number or a date (a digit, a month or weekday name)."""
    return any(any(c.isdigit() for c in v) or (v in CALENDAR and v not in SEASONS)
               for v in values)


def decide(new: Memory, candidates: Sequence[tuple[Memory, float]],
           th: Thresholds = DEFAULT) -> Decision:
    """Decide for ``new`` against ``candidates``: ``(memory, cosine similarity)`` pairs of
    memories already held (current ones, of the same owner), in any order. The candidate of
    highest similarity that is a duplicate or an update decides (a restatement is nearer than
    any revision of the same statement).

    Returns:
        :class:`Decision` with ``target`` the candidate's id (``independent`` when none)."""
    if not eligible(new):
        return Decision("independent", rule="not eligible")
    stmt: Statement | None = None
    for old, sim in sorted(candidates, key=lambda c: -c[1]):
        if sim < th.candidate or old.id == new.id or not eligible(old) or \
                old.owner != new.owner or _same_document(new, old):
            continue
        stmt = stmt or analyse(new.content)
        # the later statement in valid time is the one that revises (an older one arriving
        # now goes into the chain's past, :mod:`memos_cli.lifecycle.evolve`)
        other = analyse(old.content)
        later, earlier = (stmt, other) if new.valid_from >= old.valid_from else (other, stmt)
        got = compare(later, earlier, sim, th)
        if got is not None and got.kind == "update" and not later.cue and \
                "dialog_turn" in (new.semantic_type, old.semantic_type):
            continue  # a turn of a conversation revises only with a word of change
        if got is None:
            continue
        # the most similar candidate that is a duplicate or an update decides (a restatement
        # is nearer than any revision, so it comes first)
        return Decision(got.kind, old.id, got.rule, got.score, got.changed)
    if stmt is not None and stmt.guard is not None:
        return Decision("independent", rule=stmt.guard)
    return Decision("independent")
