"""What of a conversation turn is worth remembering: the MemReader of ``memos chat`` (MemOS
paper, §7.2.1: "salient elements are extracted after each user input").

A turn is split into sentences; questions, greetings and thanks, hypotheticals and very short
sentences are passed over. Without a model (:func:`salient`), a sentence is kept when its
pattern says it states something lasting: a preference ("I prefer", "my favourite"), a
decision ("we decided", "let's", "we'll go with"), a fact about the user ("I work", "my
daughter", "our office", "I went") or a fact about the task holding a value (a number, a date, a
name). With the local model (:func:`salient_with_model`), every declarative sentence is put
to it as a yes/no question, decoded constrained to those two answers (the logits of "yes"
and "no" compared; small models fail at free-form extraction, Graphiti issue #868).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

#: Sentence ends: a full stop, question or exclamation mark followed by space, or a newline.
_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"[A-Za-z0-9][\w'’-]*")
_CHIT_CHAT = re.compile(
    r"^(hi|hello|hey|thanks|thank you|thx|ok|okay|sure|great|cool|nice|awesome|wow|lol|"
    r"haha|good (morning|night|evening|afternoon)|bye|see you|sounds good|got it|yes|no|"
    r"yeah|yep|nope|perfect|exactly|right|indeed|of course|congrats|congratulations)\b",
    re.I)
_QUESTION = re.compile(r"^(who|what|when|where|which|why|how|is|are|was|were|do|does|did|"
                       r"can|could|should|would|will|shall|may|have|has|any)\b", re.I)
_HYPOTHETICAL = re.compile(r"^(if|maybe|perhaps|suppose|imagine|what if|i wonder)\b", re.I)
_PREFERENCE = re.compile(
    r"\b(i|we)\s+(really\s+|now\s+|still\s+|also\s+)?(prefer|like|love|enjoy|hate|dislike|"
    r"want|need|would rather|'d rather|can't stand)\b|\bfavou?rite\b|\binstead of\b|"
    r"\brather than\b", re.I)
_DECISION = re.compile(
    r"\b(we|i)\s+(have\s+)?(decided|agreed|chose|picked|settled on|will|'ll|are going to|"
    r"am going to|plan to|switched|changed|moved|cancelled|canceled)\b|\blet'?s\b|"
    r"\bgo with\b|\bfrom now on\b|\bno longer\b|\bdon'?t want\b", re.I)
_ABOUT_ME = re.compile(
    r"\b(i am|i'm|i've|i have|i work|i live|i was|my|our|we are|we're|we have|i got|"
    r"i started|i just|i recently|i'll be|mine)\b", re.I)
_EVENT = re.compile(
    r"\b(i|we)\s+(just\s+|recently\s+|finally\s+|also\s+)?(went|[a-z]{3,}ed|got|took|made|"
    r"saw|met|ran|bought|began|won|lost|gave|had|found|left|came|became|wrote|built|sold|"
    r"did|started|joined|adopted)\b", re.I)
_STATEMENT = re.compile(r"\b(is|are|was|were|costs?|must|should|needs?|has|have|starts?|"
                        r"ends?|due|takes?)\b", re.I)
_VALUE = re.compile(r"\d|(?<!^)(?<![.!?]\s)\b[A-Z][a-z]+")


@dataclass(frozen=True)
class Salient:
    """A sentence worth remembering and its kind: ``preference``, ``decision`` or ``fact``
    (the memory's semantic type is ``preference`` for the first, ``fact`` otherwise)."""

    text: str
    kind: str

    @property
    def semantic_type(self) -> str:
        return "preference" if self.kind == "preference" else "fact"


def sentences(turn: str) -> list[str]:
    """The sentences of a turn, stripped, empty ones left out."""
    return [s.strip() for s in _SPLIT.split(turn) if s and s.strip()]


def declarative(sentence: str) -> bool:
    """Whether a sentence states something: not a question, a greeting or thanks, a
    hypothetical, or shorter than three words."""
    words = _WORD.findall(sentence)
    return not (len(words) < 3 or sentence.rstrip().endswith("?")
                or _QUESTION.match(sentence) or _HYPOTHETICAL.match(sentence)
                or (_CHIT_CHAT.match(sentence) and len(words) < 6))


def kind_of(sentence: str) -> str | None:
    """The rule that keeps a declarative sentence (``preference``, ``decision``, ``fact``),
    or ``None``."""
    if _PREFERENCE.search(sentence):
        return "preference"
    if _DECISION.search(sentence):
        return "decision"
    if _ABOUT_ME.search(sentence) or _EVENT.search(sentence):
        return "fact"
    if _STATEMENT.search(sentence) and _VALUE.search(sentence):
        return "fact"
    return None


def salient(turn: str) -> list[Salient]:
    """The sentences of ``turn`` worth remembering, by rules (no model)."""
    out = []
    for s in sentences(turn):
        if declarative(s) and (kind := kind_of(s)) is not None:
            out.append(Salient(s, kind))
    return out


PROMPT = ("Does this sentence state a fact about the speaker or their task, a preference or a "
          "decision that is worth remembering later? Answer yes or no.\n\nSentence: {s}")


def salient_with_model(turn: str, chat: Any) -> list[Salient]:
    """The sentences of ``turn`` worth remembering, as the local model ``chat`` (a
    :class:`~memos_cli.models.chat.ChatModel`) judges each declarative one: one forward pass
    a sentence, the answer constrained to "yes" or "no" (their first tokens' logits). The
    kind is the rules' when they have one, else ``fact``."""
    import torch

    tok = chat.tokenizer
    yes = tok.encode("yes", add_special_tokens=False)[0]
    no = tok.encode("no", add_special_tokens=False)[0]
    out = []
    for s in sentences(turn):
        if not declarative(s):
            continue
        ids = tok.apply_chat_template([{"role": "user", "content": PROMPT.format(s=s)}],
                                      add_generation_prompt=True, tokenize=True,
                                      return_dict=True)["input_ids"]
        with torch.inference_mode():
            logits = chat.model(torch.tensor([list(ids)], device=chat.model.device)
                                ).logits[0, -1]
        if float(logits[yes]) > float(logits[no]):
            out.append(Salient(s, kind_of(s) or "fact"))
    return out
