"""A statement taken apart for supersession (:mod:`memos_cli.lifecycle.supersede`): its
content words (Porter2 stems), values (numbers, codes, dates, capitalised names), whether it
negates, whether it holds a word of change, and whether it asserts at all (a question, a
hypothetical, a figure quoted from someone else). Pure, no model; the lexicons are English.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import snowballstemmer

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
#: Phrases that say a value changed back ("is back down to 800 IU"); "back" alone is too
#: common in conversation ("I'm back from the trip") to be a word of change.
_CUE_PHRASE = re.compile(
    r"\bback\s+(?:down\s+|up\s+)?to\b|\b(?:went|goes|gone)\s+(?:up|down)\b"
    # a validity start: "from September", "as of 1 May", "effective Monday", "from now on"
    r"|\b(?:from|as\s+of|effective)\s+(?:(?:next|this)\s+)?(?:january|february|march|april|"
    r"may|june|july|august|september|october|november|december|monday|tuesday|wednesday|"
    r"thursday|friday|saturday|sunday|today|tomorrow|now|\d)", re.I)
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
    r"in case|what if|could|might|maybe|perhaps|whether|proposed|proposal|proposes|"
    r"considering)\b"
    # an opinion of what should be: "Karen thinks the review should be on Friday"
    r"|\b(?:thinks|believes|suggests|suggested|feels|argues|wants)\b[^.?!]*\b(?:should|"
    r"ought)\b", re.I)
_REPORTED = re.compile(
    r"\b(according to|claims?|claimed|reportedly|rumou?red|rumou?rs?|quoted|quotes?|"
    r"competitor'?s?|their figure)\b"
    # someone else's own value: "my brother says his resting heart rate is 72"
    r"|\b(?:says|said|mentioned|told|thinks|heard)\b[^.?!]*\b(?:his|her|their)\b"
    # hearsay: "someone in the corridor said the deadline is 15 July", "I heard ..."
    r"|\b(?:someone|somebody|people|rumou?r)\b[^.?!]*\b(?:says|said|say|mentioned|told|"
    r"reckons?)\b|\bI heard\b", re.I)
_TOKEN = re.compile(r"\w+(?:[.,:/@'’_-]\w+)*")
#: Words of a state: values, like numbers and names ("the bridge is closed" against "open");
#: the words after one are its circumstance ("closed for resurfacing"), like an adjunct's.
#: Words of an event are not among them: "the project started on 5 January" is not a state
#: that "the demo moved to 9 June" replaces.
STATES = frozenset({
    "open", "reopened", "closed", "shut", "broken", "fixed", "repaired", "approved",
    "rejected", "pending", "waiting", "active", "inactive", "enabled", "disabled", "online",
    "offline", "available", "unavailable"
})
#: Irregular forms Porter2 leaves apart from their verb ("sent" and "send").
IRREGULAR = {
    "sent": "send", "went": "go", "gone": "go", "goes": "go", "took": "take", "taken": "take",
    "paid": "pay", "left": "leave", "rose": "rise", "risen": "rise", "fell": "fall",
    "fallen": "fall", "led": "lead", "held": "hold", "made": "make", "gave": "give",
    "given": "give", "got": "get", "ran": "run", "began": "begin", "begun": "begin",
    "chose": "choose", "chosen": "choose", "grew": "grow", "grown": "grow", "bought": "buy",
    "sold": "sell", "told": "tell", "said": "say", "kept": "keep", "met": "meet",
    "won": "win", "lost": "lose", "spent": "spend", "built": "build", "brought": "bring",
}
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
def stem(word: str) -> str:
    """The Porter2 stem of a lowercase word (cached: a vocabulary repeats, and the pure-Python
    stemmer takes 70 microseconds a word)."""
    return str(_stemmer().stemWord(IRREGULAR.get(word, word)))


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
    name (``Harbour Road``, ``Google Cloud``); month and weekday names and words of a state
    (:data:`STATES`) are values, not names."""
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
    change = cue_stems()
    count = 0
    run: list[str] = []  # the capitalised words of the name being read
    last_end = 0
    prev = ""

    def value(v: str) -> None:
        values.add(v)
        seq.append(v)

    def close() -> None:
        if run:
            names.add(" ".join(run))
            value(" ".join(run))
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
            value(low.replace(",", ""))
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
        if low in CUES or stem(low) in change:
            cue = True
        if low in ADJUNCT:
            in_adjunct = ADJUNCT_WORDS
        if low in STOP or len(low) < 2 or low in TITLES:
            close()
            continue
        count += 1
        if low in CALENDAR:
            close()
            value(low)
            continue
        if low in STATES:
            close()
            value(stem(low))
            in_adjunct = ADJUNCT_WORDS  # what follows a state is its circumstance
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
            root = stem(low)
            words.add(root)
            seq.append(root)
            if in_adjunct:
                adjunct.add(root)
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
        adjunct.update(stem(w.lower()) for w in phrase.group(0).split()
                       if w.lower() not in STOP)
    norm = " ".join(t.lower() for t in _TOKEN.findall(text))
    return Statement(frozenset(words), frozenset(values), frozenset(names), negated, cue,
                     guard, norm, count, frozenset(adjunct), frozenset(scope))


@lru_cache(maxsize=1)
def cue_stems() -> frozenset[str]:
    """The stems of :data:`CUES`: words of change wherever they stand, never an attribute."""
    return frozenset(stem(w) for w in CUES)


def _looks_like_name(tok: str) -> bool:
    """A sentence-initial capitalised word is taken for a name when it is not an English
    word of the stemmer's kind: it does not change under stemming and ends as names do."""
    low = tok.lower()
    return stem(low) == low and not low.endswith(("ed", "ing", "ly", "s")) and len(low) > 2
