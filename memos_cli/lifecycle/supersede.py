"""Supersession: is a new memory a duplicate of one already held, an update of it, or
independent of it? (MemOS paper, arXiv 2507.03724, §7.2.2: "replacement"; spec §4.6.)

The decision is made without a language model, from the statements themselves: embedding
similarity finds candidates that are *about* the same thing, and the pattern of the two
statements decides whether they *contradict*. Similarity alone measures aboutness, not
contradiction (the criticism of mem0's similarity-threshold update, mem0 issue #5867), so a
candidate is an update only when

* the two statements share their attribute (the content words that are not values: "lab
  meeting", "parser work", "office budget");
* they differ in a value (numbers, dates, codes, names, states such as "open" and
  "closed"; or the remaining content words: "tea" against "coffee"), or one negates what the
  other says;
* they do not differ in a subject: when names differ on both sides and another value differs
  too ("the Paris office budget is 2M" against "the Berlin office budget is 1.5M"), or content
  words differ on both sides as well as a value without a word of change ("moved", "now",
  "took over", "went up"), or several words differ on both sides and no value does, or the
  old statement's name is gone and new words came without a word of change, the two are
  about different things. Words of change (on either side) and the words of a reason or
  circumstance ("because of the light", "after the renovation": ``statement.ADJUNCT``) are not
  counted as differing attribute words;
* the new statement takes something back: one that only adds words or values to the old one
  ("note to self: ...") without a word of change revises nothing, and a negation decides only
  when it reaches (``statement.NEGATION_SCOPE`` words) what the other statement says ("so no
  renewal needed yet" negates nothing the passport's expiry date said);
* the new statement is an assertion: questions, hypotheticals, deliberations and opinions
  ("if the budget were cut to ...", "whether the fee should rise", "Karen thinks it should
  be ..."), figures quoted from someone else ("according to ...", "someone said ..."), and
  someone else's own values ("my brother says his ...") supersede nothing;
* two undated parts of one source file never supersede each other: the file says both
  (``memos add`` decides the edits of a file, as source edits);
* a turn of a conversation (``dialog_turn``) revises only with a word of change: people
  talk about many things of one kind ("I love painting", later "I love pottery") without
  taking anything back.

An unchanged restatement (the same words and values) is a duplicate. Each decision carries the
rule that made it and the values that differed, for ``memos history``. The thresholds and
rules were tuned on ``bench/data/updates.jsonl`` (both splits),
``bench/data/updates_fresh.jsonl``, ``bench/data/updates_third.jsonl``, and for the opinion
and hearsay guards ``updates_fifth.jsonl`` and ``updates_sixth.jsonl``;
``updates_fourth.jsonl`` and ``updates_seventh.jsonl`` are held out (``bench/updates.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from memos_cli.lifecycle.statement import (
    CALENDAR,
    SEASONS,
    Statement,
    analyse,
    cue_stems,
)
from memos_cli.memory import Memory, derived_reader


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
    wn = new.words - old.words - cue_stems()
    wc = old.words - new.words
    changed = {"from": sorted(vc) + sorted(wc), "to": sorted(vn) + sorted(wn)}
    if not vn and not vc and new.negated == old.negated and not (wn and wc):
        # the same values, words added on one side at most: a restatement
        if similarity >= (th.same_text if not (wn or wc) else th.same_text_extra):
            return Decision("duplicate", rule="restatement", score=similarity)
        return None
    if new.guard is not None or old.guard is not None:
        return None
    lost = wc - cue_stems()  # what the old statement said that the new one does not
    if not new.cue and not vc and not lost and new.negated == old.negated:
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
    # the words that may name another attribute: neither words of change (on either side)
    # nor those of a reason or circumstance ("because of the light")
    qn, qc = wn - new.adjunct, lost - old.adjunct
    slight = cue and len(qn) <= 1 and len(qc) <= 1  # "now goes into" against "is paid into"
    if other_names and (other_values or (qn and qc and not slight)):
        return None  # a name and a value differ: another subject's value
    if (not cue or len(qc) > 1 or len(qn) > 1) and (
            (qn and qc and (vn or vc)) or (len(vn) > 1 and len(vc) > 1)):
        return None  # a qualifier and a value differ on both sides: another attribute
    if not (vn or vc) and not (new.words & old.words) - cue_stems():
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


def same_document(a: Memory, b: Memory) -> bool:
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
                old.owner != new.owner or same_document(new, old):
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
